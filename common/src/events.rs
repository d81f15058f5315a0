//! Server events (DESIGN §5) and the task event emitter whose types enforce the completion rules.
//!
//! A worker handler gets a [`TaskEvents`]: it can send any event but `complete`. Only the
//! [`Completion`] can send `complete`, it is created by the worker runtime alone, and completing
//! consumes it. Across processes, completion is guarded by the processed-marker (set atomically with
//! the `complete` entry), so a redelivered action never completes twice.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bus::Conn;
use redis::{RedisResult, RetryMethod};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backoff::Backoff;

/// Every event type of the client protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Sent by the gateway when a WebSocket is ready.
    WebsocketReady,
    /// Task accepted.
    Working,
    /// Which provider and model answer.
    ModelInUse,
    /// A piece of the answer.
    TextChunk,
    /// A piece of the model's reasoning.
    ReasoningChunk,
    /// The model calls a tool.
    ToolStart,
    /// Semantic search results were added to the prompt.
    SemanticContextAdded,
    /// Speech synthesis started.
    TtsStarted,
    /// A piece of audio.
    AudioChunk,
    /// Speech synthesis finished.
    TtsCompleted,
    /// A transcription result.
    Transcription,
    /// Progress of a long task.
    Progress,
    /// The text answer is complete.
    TextCompleted,
    /// This task produces no text.
    TextNotRequested,
    /// This task produces no speech.
    TtsNotRequested,
    /// Something was persisted.
    DbOperationExecuted,
    /// The task was cancelled.
    Cancelled,
    /// Something failed.
    Error,
    /// The task's last event.
    Complete,
    /// Heartbeat reply.
    Pong,
}

impl EventType {
    /// The wire name (`text_chunk`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebsocketReady => "websocket_ready",
            Self::Working => "working",
            Self::ModelInUse => "model_in_use",
            Self::TextChunk => "text_chunk",
            Self::ReasoningChunk => "reasoning_chunk",
            Self::ToolStart => "tool_start",
            Self::SemanticContextAdded => "semantic_context_added",
            Self::TtsStarted => "tts_started",
            Self::AudioChunk => "audio_chunk",
            Self::TtsCompleted => "tts_completed",
            Self::Transcription => "transcription",
            Self::Progress => "progress",
            Self::TextCompleted => "text_completed",
            Self::TextNotRequested => "text_not_requested",
            Self::TtsNotRequested => "tts_not_requested",
            Self::DbOperationExecuted => "db_operation_executed",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
            Self::Complete => "complete",
            Self::Pong => "pong",
        }
    }
}

impl std::str::FromStr for EventType {
    type Err = String;

    /// The type of a wire name (`text_chunk`); unknown names are an error.
    fn from_str(name: &str) -> Result<Self, String> {
        serde_json::from_value(Value::String(name.to_owned()))
            .map_err(|_| format!("unknown event type {name:?}"))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One server event as the client sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The session it belongs to.
    pub session_id: Option<Uuid>,
    /// The task it belongs to.
    pub task_id: Option<Uuid>,
    /// The response-stream entry id; the resume cursor.
    pub event_id: Option<String>,
    /// Type-specific fields.
    pub data: Value,
}

/// The `data` of an `error` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorData {
    /// Where it failed: `provider`, `worker`, `validation`, `deadline`, `persistence`, ...
    pub stage: String,
    /// A stable machine-readable code.
    pub code: String,
    /// A sentence for people; never internals or secrets.
    pub message: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
    /// When the cause was a rate limit with a known wait: seconds to wait before retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl ErrorData {
    /// An error description.
    pub fn new(stage: &str, code: &str, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            stage: stage.into(),
            code: code.into(),
            message: message.into(),
            retryable,
            retry_after_secs: None,
        }
    }
}

/// The `code`s of `error` events that more than one service acts on. Workers may send other
/// codes; those read as [`ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The session (or what the task names) is not the caller's, or does not exist.
    NotFound,
    /// The model is not in the registry.
    UnknownModel,
    /// The action's payload can never run as it is.
    InvalidPayload,
    /// The model cannot take this input (images, tools).
    UnsupportedInput,
    /// The request is malformed.
    BadRequest,
    /// The envelope could not be read.
    InvalidEnvelope,
    /// Over a rate limit (the provider's or ours); `retry_after_secs` may say when to retry.
    RateLimited,
    /// No provider serving the model is configured.
    ProviderUnavailable,
    /// Redis could not be written.
    BusUnavailable,
    /// The chat history could not be written.
    PersistenceFailed,
    /// The provider failed.
    UpstreamError,
    /// No answer in time.
    Timeout,
    /// The action's deadline passed before it ran.
    DeadlineExceeded,
    /// Speech: the request names a provider that does not exist.
    UnknownProvider,
    /// Speech: the request names a provider this deployment has no key for.
    ProviderNotConfigured,
    /// Speech: the provider cannot serve an option (a voice, model or format).
    UnsupportedOption,
    /// Speech: the text cannot be spoken in the format asked (too long for one piece).
    TextTooLong,
    /// Speech: the audio is longer than the worker keeps.
    AudioTooLong,
    /// Speech: there is nothing to speak.
    EmptyText,
    /// File storage could not be written (or read).
    StorageUnavailable,
    /// Speech to text: the recording is larger than the worker takes.
    FileTooLarge,
    /// Speech to text: the audio's format is neither named nor recognisable.
    UnsupportedFormat,
    /// Speech to text: the audio cannot be read (not base64, none at all).
    InvalidAudio,
    /// A voice turn: nothing was said (an empty transcript).
    NoSpeech,
    /// A voice turn with direct audio: no audio arrived (stage `audio`); the speech provider
    /// produced none (stage `tts`).
    NoAudio,
    /// A voice turn with direct live audio: no frame for the live-audio idle time.
    AudioTimeout,
    /// A voice turn with direct live audio: the client went away while it spoke.
    AudioDisconnected,
    /// A voice turn: no transcription worker took the audio in time.
    SttUnavailable,
    /// A voice turn: the transcription stopped answering.
    SttTimeout,
    /// Semantic search: the embedding model or provider failed.
    EmbeddingFailed,
    /// Semantic search: the vector store failed or cannot be reached.
    IndexUnavailable,
    /// Document ingestion: the file holds no text that can be read (empty, corrupt, not UTF-8,
    /// a PDF of scanned images).
    InvalidDocument,
    /// Media: the image given to start from cannot be used (not an image, unreachable, too
    /// large, an internal address).
    InvalidImage,
    /// Media: images asked inline (`save: false`) are larger than a stream entry may hold.
    InlineTooLarge,
    /// Media: the provider's safety system refused the prompt or the result.
    ContentFiltered,
    /// Media: the provider's job ended failed.
    JobFailed,
    /// Media: the provider's job did not end in time.
    JobTimeout,
    /// Media: the provider's result is larger than the worker keeps.
    OutputTooLarge,
    /// Any other code.
    #[serde(other)]
    Other,
}

/// What an `error` means for the caller, whatever surface answers it (REST status, OpenAI error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The caller's request was wrong (400).
    Client,
    /// Not there, or not the caller's (404).
    NotFound,
    /// The request, or a file it names, is too large (413).
    TooLarge,
    /// Retry later (429).
    RateLimited,
    /// Something of this deployment is down (503).
    Unavailable,
    /// The provider failed (502).
    Upstream,
}

impl ErrorCode {
    /// The code of a wire name (`not_found`), [`ErrorCode::Other`] for any other.
    pub fn parse(code: &str) -> Self {
        serde_json::from_value(Value::String(code.to_owned())).unwrap_or(Self::Other)
    }

    /// What an `error` of this code and `stage` means for the caller.
    pub fn fault(self, stage: &str) -> Fault {
        match self {
            Self::NotFound => Fault::NotFound,
            // The speech provider answered with no audio: its failure, not the request's.
            Self::NoAudio if stage == "tts" => Fault::Upstream,
            Self::UnknownModel
            | Self::InvalidPayload
            | Self::UnsupportedInput
            | Self::BadRequest
            | Self::InvalidEnvelope
            // A provider named explicitly but not configured is the request's to change (another
            // provider, or none), unlike a registry model without a provider (503).
            | Self::UnknownProvider
            | Self::ProviderNotConfigured
            | Self::UnsupportedOption
            | Self::TextTooLong
            | Self::AudioTooLong
            | Self::EmptyText
            | Self::UnsupportedFormat
            | Self::InvalidDocument
            // Another image, `save: true`, another prompt: the request's to change.
            | Self::InvalidImage
            | Self::InlineTooLarge
            | Self::ContentFiltered
            | Self::InvalidAudio
            | Self::NoSpeech
            | Self::NoAudio
            | Self::AudioTimeout
            | Self::AudioDisconnected => Fault::Client,
            Self::FileTooLarge => Fault::TooLarge,
            Self::RateLimited => Fault::RateLimited,
            Self::ProviderUnavailable
            | Self::BusUnavailable
            | Self::PersistenceFailed
            | Self::StorageUnavailable
            | Self::SttUnavailable
            | Self::IndexUnavailable => Fault::Unavailable,
            Self::UpstreamError
            | Self::Timeout
            | Self::SttTimeout
            | Self::DeadlineExceeded
            | Self::Other
                if stage == "persistence" =>
            {
                Fault::Unavailable
            }
            Self::UpstreamError
            | Self::Timeout
            | Self::SttTimeout
            | Self::EmbeddingFailed
            | Self::DeadlineExceeded
            | Self::JobFailed
            | Self::JobTimeout
            | Self::OutputTooLarge
            | Self::Other => Fault::Upstream,
        }
    }
}

/// The `data` of `text_completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextCompleted {
    /// The whole text.
    pub content: String,
    /// Token counts, `null` when unknown.
    pub usage: Value,
    /// `stop`, `length`, `tool_calls`, `cancelled`, `error`, ...
    pub finish_reason: String,
    /// The tool calls, in OpenAI's format, when the model made any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    /// A structured result beside the text (e.g. a health action's answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl TextCompleted {
    /// A text answer that ended for `finish_reason`.
    pub fn new(content: impl Into<String>, usage: Value, finish_reason: &str) -> Self {
        Self {
            content: content.into(),
            usage,
            finish_reason: finish_reason.to_owned(),
            tool_calls: None,
            data: None,
        }
    }
}

/// Where a task's events go and how long they stay.
#[derive(Debug, Clone)]
pub struct ResponseTarget {
    /// The response stream key.
    pub stream: String,
    /// The session id.
    pub session_id: Uuid,
    /// The task id.
    pub task_id: Uuid,
    /// `MAXLEN ~` of the stream.
    pub maxlen: usize,
    /// `EXPIRE` after completion, seconds.
    pub ttl_secs: u64,
    /// How long a write keeps retrying while Redis is unreachable.
    pub retry_for: Duration,
    /// The task's cancel flag: set when the stream was deleted on purpose (a session deleted
    /// while its task ran), so a missing stream is not created again.
    pub cancel_flag: String,
}

/// Why an event could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// `complete` may only be sent through [`Completion`].
    #[error("complete can only be sent by the owner of the task's completion")]
    NotOwner,
    /// Redis refused or is unreachable.
    #[error("response stream write failed: {0}")]
    Redis(#[from] redis::RedisError),
}

#[derive(Debug, Default)]
struct Flags {
    created: AtomicBool,
    completed: AtomicBool,
    text_done: AtomicBool,
    tts_done: AtomicBool,
    cancelled_sent: AtomicBool,
    output_sent: AtomicBool,
    /// The data of the task's `text_completed`: its result, for a callback action.
    result: std::sync::Mutex<Option<Value>>,
}

impl Flags {
    /// The completion rules for one event, without Redis: `complete` is refused, nothing is
    /// admitted after it, and what the event settles is noted (text, speech, cancel, output).
    fn admit(&self, kind: EventType) -> Result<bool, EmitError> {
        if kind == EventType::Complete {
            return Err(EmitError::NotOwner);
        }
        if self.completed.load(Ordering::SeqCst) {
            return Ok(false);
        }
        match kind {
            EventType::TextCompleted | EventType::TextNotRequested => {
                self.text_done.store(true, Ordering::SeqCst);
            }
            EventType::TtsCompleted | EventType::TtsNotRequested => {
                self.tts_done.store(true, Ordering::SeqCst);
            }
            EventType::Cancelled => self.cancelled_sent.store(true, Ordering::SeqCst),
            EventType::TextChunk
            | EventType::ReasoningChunk
            | EventType::ToolStart
            | EventType::AudioChunk => self.output_sent.store(true, Ordering::Relaxed),
            _ => {}
        }
        Ok(true)
    }
}

/// Sends a task's events to its response stream. Cloneable; cannot complete the task.
#[derive(Clone)]
pub struct TaskEvents {
    conn: Conn,
    target: Arc<ResponseTarget>,
    flags: Arc<Flags>,
}

impl fmt::Debug for TaskEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskEvents")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl TaskEvents {
    /// The task these events belong to.
    pub fn task_id(&self) -> Uuid {
        self.target.task_id
    }

    /// The session these events belong to.
    pub fn session_id(&self) -> Uuid {
        self.target.session_id
    }

    /// Sends one event; returns its entry id, or `None` when it was dropped (task already complete,
    /// or the response stream expired).
    pub async fn send(&self, kind: EventType, data: Value) -> Result<Option<String>, EmitError> {
        if !self.admit(kind)? {
            return Ok(None);
        }
        self.remember(kind, &data);
        self.write(kind, &data).await
    }

    /// Keeps the task's result (the data of `text_completed`).
    fn remember(&self, kind: EventType, data: &Value) {
        if kind == EventType::TextCompleted
            && let Ok(mut result) = self.flags.result.lock()
        {
            *result = Some(data.clone());
        }
    }

    /// The data of the task's `text_completed`, once sent.
    pub fn result(&self) -> Option<Value> {
        self.flags.result.lock().ok().and_then(|r| r.clone())
    }

    /// Sends several events in order in one round trip (a pipeline of `XADD`s): for output that
    /// arrived faster than one write per event. Events after `complete` are dropped.
    pub async fn send_all(&self, events: Vec<(EventType, Value)>) -> Result<(), EmitError> {
        let mut events = events.into_iter();
        // The first write of a task creates its stream: that one goes alone.
        if !self.flags.created.load(Ordering::SeqCst) {
            let Some((kind, data)) = events.next() else {
                return Ok(());
            };
            self.send(kind, data).await?;
        }
        let mut admitted = Vec::new();
        for (kind, data) in events {
            if self.admit(kind)? {
                self.remember(kind, &data);
                admitted.push((kind, data));
            }
        }
        if admitted.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (kind, data) in &admitted {
            pipe.add_command(self.xadd(*kind, data));
        }
        match pipe
            .query_async::<Vec<Option<String>>>(&mut self.conn.clone())
            .await
        {
            Ok(ids) => {
                let dropped: Vec<_> = admitted
                    .iter()
                    .zip(&ids)
                    .filter_map(|(event, id)| id.is_none().then_some(event))
                    .collect();
                if dropped.is_empty() {
                    return Ok(());
                }
                if self.lost_with_redis().await {
                    // Written one by one: the first creates the stream again.
                    for (kind, data) in dropped {
                        self.write(*kind, data).await?;
                    }
                } else {
                    tracing::warn!(stream = %self.target.stream, "response stream is gone; events dropped");
                }
                Ok(())
            }
            Err(e) if transient(&e) => {
                // One by one from here, each retried until Redis is back.
                self.flags.created.store(false, Ordering::SeqCst);
                tracing::warn!(error = %e, "event write failed; retrying while Redis comes back");
                for (kind, data) in &admitted {
                    self.write(*kind, data).await?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs a Redis write, retrying while Redis is unreachable, up to the target's `retry_for`.
    /// A failed attempt forgets that the stream exists: it may be gone with the Redis that held
    /// it (a restart without persistence), and the next attempt may create it again.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> RedisResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let until = Instant::now() + self.target.retry_for;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            match op().await {
                Err(e) if transient(&e) && Instant::now() < until => {
                    self.flags.created.store(false, Ordering::SeqCst);
                    tracing::warn!(error = %e, task_id = %self.target.task_id,
                        "event write failed; retrying while Redis comes back");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => {
                    if transient(&e) {
                        self.flags.created.store(false, Ordering::SeqCst);
                    }
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    /// Whether an event may be written now, noting what it means for the completion rules.
    fn admit(&self, kind: EventType) -> Result<bool, EmitError> {
        let admitted = self.flags.admit(kind)?;
        if !admitted {
            tracing::warn!(event = %kind, task_id = %self.target.task_id, "event after complete dropped");
        }
        Ok(admitted)
    }

    /// Sends an `error` event.
    pub async fn error(&self, error: &ErrorData) -> Result<Option<String>, EmitError> {
        self.send(EventType::Error, json!(error)).await
    }

    /// `model_in_use`: who answers (`note` says why, e.g. the offline dummy provider).
    pub async fn model_in_use(
        &self,
        provider: &str,
        model: &str,
        note: Option<&str>,
    ) -> Result<Option<String>, EmitError> {
        let mut data = json!({"provider": provider, "model": model});
        if let Some(note) = note {
            data["note"] = json!(note);
        }
        self.send(EventType::ModelInUse, data).await
    }

    /// `tool_start`: the model calls a tool.
    pub async fn tool_start(
        &self,
        call_id: &str,
        name: &str,
        arguments: &str,
    ) -> Result<Option<String>, EmitError> {
        let data = json!({"call_id": call_id, "name": name, "arguments": arguments});
        self.send(EventType::ToolStart, data).await
    }

    /// `text_completed`: the text answer as it ended.
    pub async fn text_completed(&self, done: &TextCompleted) -> Result<Option<String>, EmitError> {
        self.send(EventType::TextCompleted, json!(done)).await
    }

    /// `cancelled`.
    pub async fn cancelled(&self) -> Result<Option<String>, EmitError> {
        self.send(EventType::Cancelled, json!({})).await
    }

    /// `progress` of a long task: `stage`, `fraction` (0 to 1) where known, a sentence, and the
    /// counts of what the stage works through where it has them.
    pub async fn progress(&self, progress: &Progress) -> Result<Option<String>, EmitError> {
        self.send(EventType::Progress, json!(progress)).await
    }

    /// `tts_started`: the speech half began, with whom and in which format.
    pub async fn tts_started(&self, started: &TtsStarted) -> Result<Option<String>, EmitError> {
        self.send(EventType::TtsStarted, json!(started)).await
    }

    /// `tts_completed`: the speech half ended, with the clip's URL when it was stored.
    pub async fn tts_completed(&self, done: &TtsCompleted) -> Result<Option<String>, EmitError> {
        self.send(EventType::TtsCompleted, json!(done)).await
    }

    /// `error` of the speech half: it settles that half (no `tts_not_requested` follows), the
    /// text half is not affected.
    pub async fn tts_failed(&self, error: &ErrorData) -> Result<Option<String>, EmitError> {
        if !self.flags.completed.load(Ordering::SeqCst) {
            self.flags.tts_done.store(true, Ordering::SeqCst);
        }
        self.error(error).await
    }

    /// `audio_chunk`: a piece of audio, base64, numbered from 0.
    pub async fn audio_chunk(
        &self,
        format: &str,
        data_base64: &str,
        sequence: u64,
    ) -> Result<Option<String>, EmitError> {
        let data = json!({"format": format, "data": data_base64, "sequence": sequence});
        self.send(EventType::AudioChunk, data).await
    }

    /// `db_operation_executed`: what was persisted (`operation` and the ids written).
    pub async fn db_operation(
        &self,
        operation: &str,
        ids: Value,
    ) -> Result<Option<String>, EmitError> {
        let mut data = json!({"operation": operation});
        if let (Some(out), Value::Object(ids)) = (data.as_object_mut(), ids) {
            out.extend(ids);
        }
        self.send(EventType::DbOperationExecuted, data).await
    }

    /// Whether any output (text, reasoning, tool call, audio) reached the client.
    pub fn output_sent(&self) -> bool {
        self.flags.output_sent.load(Ordering::Relaxed)
    }

    /// Whether `complete` was sent.
    pub fn is_completed(&self) -> bool {
        self.flags.completed.load(Ordering::SeqCst)
    }

    /// The `XADD` of an event after the task's first: it must not recreate an expired stream
    /// (the first write, which may create it, is [`FIRST_WRITE`]).
    fn xadd(&self, kind: EventType, data: &Value) -> redis::Cmd {
        let t = &self.target;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&t.stream).arg("NOMKSTREAM");
        cmd.arg("MAXLEN")
            .arg("~")
            .arg(t.maxlen)
            .arg("*")
            .arg("type")
            .arg(kind.as_str())
            .arg("task_id")
            .arg(t.task_id.to_string())
            .arg("payload")
            .arg(payload(kind, t, data));
        cmd
    }

    async fn write(&self, kind: EventType, data: &Value) -> Result<Option<String>, EmitError> {
        let t = &self.target;
        let id = self
            .retrying(|| async {
                let first = !self.flags.created.swap(true, Ordering::SeqCst);
                let mut conn = self.conn.clone();
                if first {
                    // A session's stream may still carry the EXPIRE of its previous task's
                    // completion: a running task's stream must not expire under it. One script,
                    // so a key that is no stream (XADD fails) keeps its TTL.
                    let mut invocation = FIRST_WRITE.prepare_invoke();
                    invocation
                        .key(&t.stream)
                        .arg(t.maxlen)
                        .arg(kind.as_str())
                        .arg(t.task_id.to_string())
                        .arg(payload(kind, t, data));
                    invocation.invoke_async(&mut conn).await.map(Some)
                } else {
                    self.xadd(kind, data).query_async(&mut conn).await
                }
            })
            .await?;
        if id.is_none() {
            if self.lost_with_redis().await {
                return Box::pin(self.write(kind, data)).await;
            }
            tracing::warn!(event = %kind, stream = %t.stream, "response stream is gone; event dropped");
        }
        Ok(id)
    }

    /// The running task's stream is missing. Unless the task was cancelled (its session deleted
    /// on purpose), it went with a Redis that restarted without its data: the next write creates
    /// it again, so the client still hears how the task ends.
    async fn lost_with_redis(&self) -> bool {
        let cancelled: RedisResult<bool> = redis::cmd("EXISTS")
            .arg(&self.target.cancel_flag)
            .query_async(&mut self.conn.clone())
            .await;
        let lost = matches!(cancelled, Ok(false));
        if lost {
            tracing::warn!(stream = %self.target.stream, "response stream lost with Redis; creating it again");
            self.flags.created.store(false, Ordering::SeqCst);
        }
        lost
    }
}

/// Whether a Redis error means "not reachable now" (worth waiting for), not "refused".
fn transient(e: &redis::RedisError) -> bool {
    e.is_unrecoverable_error()
        || e.is_timeout()
        || matches!(e.retry_method(), RetryMethod::WaitAndRetry)
}

fn payload(kind: EventType, t: &ResponseTarget, data: &Value) -> String {
    json!({"type": kind, "session_id": t.session_id, "task_id": t.task_id, "data": data})
        .to_string()
}

/// The data of `progress`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// What the task is doing (`reading`, `chunking`, `embedding`, `indexing`, ...).
    pub stage: String,
    /// How much of the whole task is done, 0 to 1, where known.
    pub fraction: Option<f64>,
    /// A sentence for people.
    pub message: String,
    /// Chunks done so far (document ingestion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks_processed: Option<u64>,
    /// Chunks in all (document ingestion), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_chunks: Option<u64>,
    /// The provider's id of the job (video generation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_job_id: Option<String>,
    /// The job's state in the provider's words (`queued`, `in_progress`, `processing`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    /// Requests answered so far (batch jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_completed: Option<u64>,
    /// Requests failed so far (batch jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_failed: Option<u64>,
    /// Requests in all (batch jobs), once the input is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_total: Option<u64>,
}

/// The data of `tts_started`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TtsStarted {
    /// The provider speaking (`espeak` is the offline one).
    pub provider: String,
    /// Its model.
    pub model: String,
    /// Its voice.
    pub voice: String,
    /// The format of the `audio_chunk`s.
    pub format: String,
    /// Whether the provider speaks the text while it is written (else once it is complete).
    pub input_streaming: bool,
}

/// The data of `tts_completed`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TtsCompleted {
    /// Where the whole clip plays (a presigned or signed URL, valid for a while); `null` when it
    /// was not stored (`save: false`).
    pub audio_url: Option<String>,
    /// The stored clip's key (`{tenant}/tts/...`), to ask for a fresh URL later.
    pub key: Option<String>,
    /// The format.
    pub format: String,
    /// How long it plays, seconds, where the format tells.
    pub duration_s: Option<f64>,
    /// Characters spoken.
    pub characters: usize,
    /// Audio bytes.
    pub bytes: usize,
    /// `audio_chunk` events sent.
    pub chunks: u64,
    /// The provider.
    pub provider: String,
    /// Its model.
    pub model: String,
    /// Its voice.
    pub voice: String,
}

/// The right to complete one task. Not `Clone`; `complete` consumes it.
#[derive(Debug)]
pub struct Completion {
    events: TaskEvents,
    marker: String,
    marker_ttl_secs: u64,
}

/// How completing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    /// `complete` was written with this entry id.
    Written(String),
    /// Another delivery of the same action completed it first; nothing was written.
    AlreadyCompleted,
}

/// A task's first event: may create the stream, and clears the EXPIRE a previous task's
/// completion set on it. KEYS[1]: the stream. ARGV: MAXLEN, type, task id, payload. A failed
/// XADD (the key is not a stream) ends the script before PERSIST touches the key.
static FIRST_WRITE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
  'type', ARGV[2], 'task_id', ARGV[3], 'payload', ARGV[4])
redis.call('PERSIST', KEYS[1])
return id
",
    )
});

/// `complete` and the processed-marker together. KEYS[1]: the marker, KEYS[2]: the stream. The
/// marker is checked first and set only after the XADD succeeded, and the EXPIRE follows the
/// XADD: a key that is no stream makes the script fail with nothing changed.
const COMPLETE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local id
if ARGV[6] == '1' then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
    'type', 'complete', 'task_id', ARGV[3], 'payload', ARGV[4])
else
  id = redis.call('XADD', KEYS[2], 'NOMKSTREAM', 'MAXLEN', '~', ARGV[2], '*',
    'type', 'complete', 'task_id', ARGV[3], 'payload', ARGV[4])
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
if id then
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  return id
end
return ''
";

impl Completion {
    /// Creates the emitter pair for a task. Only the worker runtime (and the gateway for tasks it
    /// refuses before publishing) calls this.
    pub(crate) fn new(
        conn: Conn,
        target: ResponseTarget,
        marker: String,
        marker_ttl_secs: u64,
    ) -> Self {
        let events = TaskEvents {
            conn,
            target: Arc::new(target),
            flags: Arc::new(Flags::default()),
        };
        Self {
            events,
            marker,
            marker_ttl_secs,
        }
    }

    /// The event sender for this task, to hand to the code doing the work.
    pub fn events(&self) -> &TaskEvents {
        &self.events
    }

    /// Sends the completion events not yet sent (`text_not_requested`, `tts_not_requested`), then
    /// `complete` as the task's last event, and marks the action processed.
    pub async fn complete(self) -> Result<Completed, EmitError> {
        let e = &self.events;
        if !e.flags.text_done.load(Ordering::SeqCst) {
            e.send(EventType::TextNotRequested, json!({})).await?;
        }
        if !e.flags.tts_done.load(Ordering::SeqCst) {
            e.send(EventType::TtsNotRequested, json!({})).await?;
        }
        let t = &e.target;
        let script = redis::Script::new(COMPLETE_SCRIPT);
        let complete = payload(EventType::Complete, t, &json!({}));
        let result: Option<String> = e
            .retrying(|| {
                // Only a stream lost with an unreachable Redis is created again (the task's
                // other events were retried into it, or its client hears at least this).
                let create = !e.flags.created.swap(true, Ordering::SeqCst);
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(&self.marker)
                    .key(&t.stream)
                    .arg(self.marker_ttl_secs)
                    .arg(t.maxlen)
                    .arg(t.task_id.to_string())
                    .arg(&complete)
                    .arg(t.ttl_secs)
                    .arg(if create { "1" } else { "0" });
                let mut conn = e.conn.clone();
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        e.flags.completed.store(true, Ordering::SeqCst);
        Ok(match result {
            Some(id) => Completed::Written(id),
            None => {
                tracing::warn!(task_id = %t.task_id, "task already completed by another delivery");
                Completed::AlreadyCompleted
            }
        })
    }

    /// Sends `cancelled` unless the handler already did.
    pub async fn ensure_cancelled_sent(&self) -> Result<(), EmitError> {
        if !self.events.flags.cancelled_sent.load(Ordering::SeqCst) {
            self.events.send(EventType::Cancelled, json!({})).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(flag: &AtomicBool) -> bool {
        flag.load(Ordering::SeqCst)
    }

    #[test]
    fn complete_is_refused_to_task_events() {
        let flags = Flags::default();
        assert!(matches!(
            flags.admit(EventType::Complete),
            Err(EmitError::NotOwner)
        ));
        // Even after completion.
        flags.completed.store(true, Ordering::SeqCst);
        assert!(matches!(
            flags.admit(EventType::Complete),
            Err(EmitError::NotOwner)
        ));
    }

    #[test]
    fn events_after_completion_are_dropped_and_change_nothing() {
        let flags = Flags::default();
        flags.completed.store(true, Ordering::SeqCst);
        for kind in [
            EventType::TextChunk,
            EventType::TextCompleted,
            EventType::TtsCompleted,
            EventType::Cancelled,
            EventType::Error,
        ] {
            assert!(!flags.admit(kind).unwrap_or(true), "{kind}");
        }
        assert!(!set(&flags.text_done) && !set(&flags.tts_done));
        assert!(!set(&flags.cancelled_sent) && !set(&flags.output_sent));
    }

    #[test]
    fn text_and_speech_are_settled_by_their_completed_or_not_requested_events() {
        for kind in [EventType::TextCompleted, EventType::TextNotRequested] {
            let flags = Flags::default();
            assert!(flags.admit(kind).unwrap_or(false));
            assert!(set(&flags.text_done) && !set(&flags.tts_done), "{kind}");
        }
        for kind in [EventType::TtsCompleted, EventType::TtsNotRequested] {
            let flags = Flags::default();
            assert!(flags.admit(kind).unwrap_or(false));
            assert!(set(&flags.tts_done) && !set(&flags.text_done), "{kind}");
        }
        // Starting speech settles nothing.
        let flags = Flags::default();
        assert!(flags.admit(EventType::TtsStarted).unwrap_or(false));
        assert!(!set(&flags.tts_done));
    }

    #[test]
    fn output_is_what_a_retry_would_repeat() {
        for kind in [
            EventType::TextChunk,
            EventType::ReasoningChunk,
            EventType::ToolStart,
            EventType::AudioChunk,
        ] {
            let flags = Flags::default();
            assert!(flags.admit(kind).unwrap_or(false));
            assert!(set(&flags.output_sent), "{kind}");
        }
        for kind in [
            EventType::Working,
            EventType::ModelInUse,
            EventType::Progress,
            EventType::Error,
            EventType::TextCompleted,
        ] {
            let flags = Flags::default();
            assert!(flags.admit(kind).unwrap_or(false));
            assert!(!set(&flags.output_sent), "{kind}");
        }
    }

    #[test]
    fn a_cancelled_event_is_noted_so_the_runtime_does_not_send_another() {
        let flags = Flags::default();
        assert!(!set(&flags.cancelled_sent));
        assert!(flags.admit(EventType::Cancelled).unwrap_or(false));
        assert!(set(&flags.cancelled_sent));
    }

    #[test]
    fn a_voice_turn_that_heard_nothing_is_the_callers_and_a_missing_stt_worker_ours() {
        assert_eq!(ErrorCode::parse("no_speech").fault("stt"), Fault::Client);
        assert_eq!(
            ErrorCode::parse("stt_unavailable").fault("stt"),
            Fault::Unavailable
        );
        assert_eq!(
            ErrorCode::parse("stt_timeout").fault("stt"),
            Fault::Upstream
        );
        assert_eq!(
            ErrorCode::parse("audio_disconnected").fault("audio"),
            Fault::Client
        );
    }
}
