//! Batch jobs, shared by the gateway (which creates, lists and cancels them) and the
//! batch-worker (which runs them): their lifecycle, their rows, the files of the batch API, the
//! JSONL line rules and the objects OpenAI's clients read (see `docs/batch.md`).

pub mod jsonl;
pub mod store;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// The only endpoint a batch line may call.
pub const CHAT_ENDPOINT: &str = "/v1/chat/completions";
/// The only completion window accepted (OpenAI's).
pub const COMPLETION_WINDOW: &str = "24h";
/// Lines one input file may hold (OpenAI's limit).
pub const MAX_LINES: usize = 50_000;
/// Bytes one input file may hold (OpenAI's limit: 200 MB).
pub const MAX_FILE_BYTES: u64 = 200 * 1024 * 1024;
/// Validation errors kept on a failed job (the first ones, in line order).
pub const MAX_REPORTED_ERRORS: usize = 100;
/// The storage folder of every batch file.
pub const FOLDER: &str = "batches";

/// Where a job is in its life, in OpenAI's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The input file is being checked.
    Validating,
    /// The input file was refused; `errors` says which lines and why.
    Failed,
    /// Lines are running.
    InProgress,
    /// Every line ran; the output files are being written.
    Finalizing,
    /// Done; results in the output file, failed lines in the error file.
    Completed,
    /// The completion window ended first; finished lines are in the output file.
    Expired,
    /// A cancel was asked for; running lines are being stopped.
    Cancelling,
    /// Cancelled; lines finished before the cancel are in the output file.
    Cancelled,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validating => "validating",
            Self::Failed => "failed",
            Self::InProgress => "in_progress",
            Self::Finalizing => "finalizing",
            Self::Completed => "completed",
            Self::Expired => "expired",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        }
    }

    /// Reads a wire name (a stored status is always one of them; anything else is `Failed`).
    pub fn parse(s: &str) -> Self {
        match s {
            "validating" => Self::Validating,
            "in_progress" => Self::InProgress,
            "finalizing" => Self::Finalizing,
            "completed" => Self::Completed,
            "expired" => Self::Expired,
            "cancelling" => Self::Cancelling,
            "cancelled" => Self::Cancelled,
            _ => Self::Failed,
        }
    }

    /// Whether the job will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Failed | Self::Completed | Self::Expired | Self::Cancelled
        )
    }
}

/// A new batch id (`batch_…`, as OpenAI's look).
pub fn new_batch_id() -> String {
    format!("batch_{}", Uuid::now_v7().simple())
}

/// A new file id (`file-…`, as OpenAI's look).
pub fn new_file_id() -> String {
    format!("file-{}", Uuid::now_v7().simple())
}

/// Who may see a job or a file: its tenant and, within it, its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The user, when known.
    pub user_id: Option<Uuid>,
}

/// A file of the batch API, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchFile {
    /// `file-…`.
    pub id: String,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its user.
    pub user_id: Option<Uuid>,
    /// `batch` (an input) or `batch_output` (written by a job).
    pub purpose: String,
    /// The name it was uploaded (or written) with.
    pub filename: String,
    /// Its size.
    pub bytes: i64,
    /// Where it is in storage.
    pub storage_key: String,
    /// Upload time.
    pub created_at: DateTime<Utc>,
    /// When the sweeper removes it.
    pub expires_at: DateTime<Utc>,
}

impl BatchFile {
    /// OpenAI's `FileObject`.
    pub fn to_openai(&self) -> Value {
        json!({
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at.timestamp(),
            "expires_at": self.expires_at.timestamp(),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        })
    }
}

/// A batch job, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `batch_…`.
    pub id: String,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Who submitted it.
    pub user_id: Option<Uuid>,
    /// The session its `progress` events go to.
    pub session_id: Uuid,
    /// The task those events belong to.
    pub task_id: Uuid,
    /// The endpoint every line calls.
    pub endpoint: String,
    /// The uploaded input.
    pub input_file_id: String,
    /// `24h`.
    pub completion_window: String,
    /// Where it is.
    pub status: String,
    /// The model of its lines, once validated.
    pub model: Option<String>,
    /// The provider that answers, once validated.
    pub provider: Option<String>,
    /// `provider` or `sequential`.
    pub mode: Option<String>,
    /// The provider's batch id.
    pub provider_batch_id: Option<String>,
    /// The provider's id of the uploaded input (OpenAI).
    pub provider_file_id: Option<String>,
    /// Successful lines' results.
    pub output_file_id: Option<String>,
    /// Failed lines.
    pub error_file_id: Option<String>,
    /// Lines in the input.
    pub total: i32,
    /// Lines answered.
    pub completed: i32,
    /// Lines failed.
    pub failed: i32,
    /// Validation errors of a failed job.
    pub errors: Option<Value>,
    /// The submitter's metadata.
    pub metadata: Option<Value>,
    /// Tokens used by the finished lines.
    pub usage: Option<Value>,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// When lines began to run.
    pub in_progress_at: Option<DateTime<Utc>>,
    /// When the output began to be written.
    pub finalizing_at: Option<DateTime<Utc>>,
    /// When it completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// When validation failed.
    pub failed_at: Option<DateTime<Utc>>,
    /// When the window ended with lines unfinished.
    pub expired_at: Option<DateTime<Utc>>,
    /// When a cancel was asked for.
    pub cancelling_at: Option<DateTime<Utc>>,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// End of the completion window.
    pub expires_at: DateTime<Utc>,
    /// When the job and its files are removed.
    pub delete_at: DateTime<Utc>,
}

fn ts(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(t.timestamp()))
}

impl Job {
    /// Its status.
    pub fn state(&self) -> Status {
        Status::parse(&self.status)
    }

    /// OpenAI's `Batch` object.
    pub fn to_openai(&self) -> Value {
        let errors = match &self.errors {
            Some(data) => json!({"object": "list", "data": data}),
            None => Value::Null,
        };
        json!({
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at.timestamp(),
            "in_progress_at": ts(self.in_progress_at),
            "expires_at": self.expires_at.timestamp(),
            "finalizing_at": ts(self.finalizing_at),
            "completed_at": ts(self.completed_at),
            "failed_at": ts(self.failed_at),
            "expired_at": ts(self.expired_at),
            "cancelling_at": ts(self.cancelling_at),
            "cancelled_at": ts(self.cancelled_at),
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
            "usage": self.usage,
        })
    }

    /// The job as the service's own API shows it (`/api/v1/batch`): OpenAI's object plus which
    /// provider and mode run it, its task and session, and when it is deleted.
    pub fn to_api(&self) -> Value {
        let mut v = self.to_openai();
        if let Value::Object(map) = &mut v {
            map.insert("provider".into(), json!(self.provider));
            map.insert("mode".into(), json!(self.mode));
            map.insert("task_id".into(), json!(self.task_id));
            map.insert("session_id".into(), json!(self.session_id));
            map.insert("delete_at".into(), json!(self.delete_at.timestamp()));
        }
        v
    }
}
