//! Long jobs followed by their task id alone (a document ingestion, a video): the id → session
//! record written with the action, the owner check that reads it back, the job's state computed
//! from its session's response stream, and its events from the start. No HTTP types here.

use common::auth::Claims;
use common::envelope::DomainAction;
use common::error::AppError;
use redis::AsyncCommands;
use redis::streams::StreamRangeReply;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::hub::StreamId;
use crate::state::AppState;
use crate::task::TaskFeed;

/// Publishes a job's action and remembers the session it runs in (for the session owner's TTL,
/// which outlives the job's events), in one round trip: the record is there before any event.
pub async fn publish(state: &AppState, action: &DomainAction) -> Result<(), AppError> {
    let ttl = state.bus().settings().session_owner_ttl_secs();
    let mut conn = state.bus().conn();
    let _: () = redis::pipe()
        .set_ex(
            state.bus().names().job_session(action.task_id),
            action.session_id.to_string(),
            ttl,
        )
        .ignore()
        .add_command(state.bus().publish_cmd(action))
        .ignore()
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// The session a job of the caller runs in: `NotFound` ("no such {what}") for an unknown or
/// expired job and for another caller's (the session's owner is checked), so that another
/// user's job does not show it exists.
pub async fn session(
    state: &AppState,
    claims: &Claims,
    job_id: Uuid,
    what: &str,
) -> Result<Uuid, AppError> {
    let not_found = || AppError::NotFound(format!("no such {what}"));
    let mut conn = state.bus().conn();
    let session: Option<String> = conn.get(state.bus().names().job_session(job_id)).await?;
    let session = session
        .and_then(|s| s.parse::<Uuid>().ok())
        .ok_or_else(not_found)?;
    state
        .claim_session(claims, Some(session))
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => not_found(),
            e => e,
        })
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not ended yet (or not started: no worker took it yet).
    Processing,
    /// It answered (`text_completed`).
    Completed,
    /// It failed (`error`).
    Error,
    /// It was cancelled.
    Cancelled,
}

impl Status {
    /// Whether the job is over.
    pub fn is_over(self) -> bool {
        self != Self::Processing
    }

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A job's state, read from its events.
#[derive(Debug, Clone, Serialize)]
pub struct JobState {
    /// The session whose response stream carries its events.
    pub session_id: Uuid,
    /// Where it is.
    pub status: Status,
    /// The last `progress` event's data.
    pub progress: Option<Value>,
    /// The structured result: `text_completed.data.data` (`document_id`, `chunks`; `video`).
    pub result: Option<Value>,
    /// The `error` event's data (`stage`, `code`, `message`, `retryable`).
    pub error: Option<Value>,
}

/// The state of job `job_id` in `session_id`, from every event of the session's response stream
/// (`XRANGE`); a stream that expired (its TTL after the job ended) reads as `processing`.
pub async fn state_of(
    state: &AppState,
    session_id: Uuid,
    job_id: Uuid,
) -> Result<JobState, AppError> {
    let stream = state.bus().names().response_stream(session_id);
    let mut conn = state.bus().conn();
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await?;
    let job = job_id.to_string();
    let mut out = JobState {
        session_id,
        status: Status::Processing,
        progress: None,
        result: None,
        error: None,
    };
    for entry in &reply.ids {
        let field = |name: &str| -> Option<String> { entry.get(name) };
        if field("task_id").as_deref() != Some(job.as_str()) {
            continue;
        }
        let data = field("payload")
            .and_then(|p| serde_json::from_str::<Value>(&p).ok())
            .map(|mut v| v["data"].take());
        match field("type").as_deref() {
            Some("progress") => out.progress = data,
            Some("text_completed") => {
                out.status = Status::Completed;
                // The structured result, not the (empty) text answer around it.
                out.result = data.map(|mut d| d["data"].take());
            }
            Some("error") => {
                out.status = Status::Error;
                out.error = data;
            }
            Some("cancelled") => out.status = Status::Cancelled,
            _ => {}
        }
    }
    Ok(out)
}

/// The job's events after `after` (`StreamId::ZERO`: from its start), ending after its
/// `complete`; the job is left running when the feed is dropped.
pub fn follow(state: &AppState, session_id: Uuid, job_id: Uuid, after: StreamId) -> TaskFeed {
    TaskFeed::job(state, session_id, job_id, after)
}
