//! Writing a turn to the chat history: the user message when the task starts, the assistant
//! reply when it ends (cancelled and failed replies too, with what was streamed), and loading
//! recent history into the prompt. Failures are retried, then reported; they never cost the client
//! the streamed answer.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use common::backoff::Backoff;
use common::envelope::DomainAction;
use common::events::{ErrorData, TaskEvents};
use common::history::{self, NewMessage};
use common::llm::content_text;
use common::worker::HandlerError;

use super::direct;
use super::payload::ChatPayload;
use super::stream::Progress;

/// Attempts per write before it is reported as failed.
const ATTEMPTS: u32 = 3;

/// Where a turn stands in the history.
pub struct Turn {
    started: Instant,
    user_message: Option<Uuid>,
    /// The user's message as stored (its text).
    user_text: String,
}

impl Turn {
    /// The user's message as stored: its id (when it was written) and its text.
    pub fn user_message(&self) -> (Option<Uuid>, String) {
        (self.user_message, self.user_text.clone())
    }
}

/// The session belongs to another tenant or user.
pub struct NotOwner;

async fn retried<T, F, Fut>(what: &str, mut op: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS && !permanent(&e) => {
                tracing::warn!(error = %e, attempt, "{what} failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a write can never succeed as it is (the data or a limit, not the database's state):
/// PostgreSQL's data exceptions (class 22), integrity violations (23) and program limits (54).
fn permanent(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54")),
        _ => false,
    }
}

async fn report(events: &TaskEvents, what: &str, e: &sqlx::Error) -> Result<(), HandlerError> {
    tracing::error!(error = %e, "{what} failed for good");
    let error = ErrorData::new(
        "persistence",
        "persistence_failed",
        format!("the {what} could not be saved; the answer is not in the history"),
        !permanent(e),
    );
    events.error(&error).await?;
    Ok(())
}

/// Takes the session for the action's tenant and stores the user's message.
pub async fn begin(
    pool: &PgPool,
    action: &DomainAction,
    payload: &ChatPayload,
    events: &TaskEvents,
) -> Result<Result<Turn, NotOwner>, HandlerError> {
    let started = Instant::now();
    let (content, parts) = match (&payload.prompt, payload.messages.last()) {
        (Some(prompt), _) => stored_user_message(prompt),
        (None, Some(last)) => (stored_user_message(&last["content"]).0, None),
        (None, None) => (String::new(), None),
    };
    let message = NewMessage {
        tenant_id: action.tenant_id,
        session_id: action.session_id,
        task_id: action.task_id,
        role: "user",
        content: &content,
        parts,
        model: None,
        provider: None,
        usage: None,
        latency_ms: None,
        status: "complete",
    };
    let written = retried("user message", || {
        history::start_turn(pool, action.user_id, &message)
    })
    .await;
    let user_message = match written {
        Ok(Some(id)) => Some(id),
        Ok(None) => return Ok(Err(NotOwner)),
        Err(e) => {
            report(events, "user message", &e).await?;
            None
        }
    };
    Ok(Ok(Turn {
        started,
        user_message,
        user_text: content,
    }))
}

/// What the history keeps of a user's message: its text, with a marker such as
/// `[audio: 3.2 s wav]` for each audio part, and its parts (a list prompt's) with the audio's
/// data left out. Audio is never stored: a later turn reads the text and the marker, and the
/// history stays the size of its text.
fn stored_user_message(content: &Value) -> (String, Option<Value>) {
    let Value::Array(parts) = content else {
        return (content_text(content), None);
    };
    let mut text = content_text(content);
    let mut stored = Vec::with_capacity(parts.len());
    for part in parts {
        match direct::describe(part) {
            Some(audio) => {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&audio.marker());
                stored.push(json!({"type": "input_audio", "input_audio": {
                    "format": audio.format, "bytes": audio.bytes, "duration_s": audio.duration_s}}));
            }
            None => stored.push(part.clone()),
        }
    }
    (text, Some(Value::Array(stored)))
}

/// The session's earlier turns, oldest first, within `budget` estimated tokens.
pub async fn load_history(
    pool: &PgPool,
    action: &DomainAction,
    max_messages: i64,
    budget: usize,
) -> Vec<Value> {
    let recent = history::recent_messages(
        pool,
        action.tenant_id,
        action.session_id,
        action.task_id,
        max_messages,
    )
    .await;
    let recent = match recent {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "history not loaded; answering without it");
            return Vec::new();
        }
    };
    let mut used = 0;
    let mut out = Vec::new();
    for m in recent {
        if m.content.is_empty() || !matches!(m.role.as_str(), "user" | "assistant") {
            continue;
        }
        // About four characters per token: a cheap, provider-independent estimate.
        let cost = m.content.len() / 4 + 4;
        if used + cost > budget {
            break;
        }
        used += cost;
        out.push(json!({"role": m.role, "content": m.content}));
    }
    out.reverse();
    out
}

/// Stores the assistant's reply as it ended and tells the client what was written; the reply's
/// id when it was.
pub async fn finish(
    pool: &PgPool,
    action: &DomainAction,
    turn: Turn,
    progress: &Progress,
    events: &TaskEvents,
) -> Result<Option<Uuid>, HandlerError> {
    let status = match progress.finish_reason() {
        "cancelled" => "cancelled",
        "error" => "error",
        _ => "complete",
    };
    let (provider, model) = progress.answered_by();
    let latency = i32::try_from(turn.started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let message = NewMessage {
        tenant_id: action.tenant_id,
        session_id: action.session_id,
        task_id: action.task_id,
        role: "assistant",
        content: progress.content(),
        parts: progress.tool_calls_json(),
        model,
        provider,
        usage: progress.usage().map(|u| json!(u)),
        latency_ms: Some(latency),
        status,
    };
    match retried("assistant reply", || history::save_message(pool, &message)).await {
        Ok(id) => {
            let ids = json!({"session_id": action.session_id,
                "user_message_id": turn.user_message, "assistant_message_id": id});
            events.db_operation("chat_turn_saved", ids).await?;
            Ok(Some(id))
        }
        Err(e) => report(events, "assistant reply", &e).await.map(|()| None),
    }
}
