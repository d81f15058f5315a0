//! `POST /chat` (wait for the whole answer) and `POST /chat/stream` (Server-Sent Events).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use common::error::AppError;
use common::events::EventType;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::extract::{AuthUser, json_body};
use crate::session::ChatInput;
use crate::state::AppState;
use crate::task::{Abandon, TaskEvent, TaskFeed, task_error};

/// What `POST /chat` gathers from a task's events.
#[derive(Default)]
struct Answer {
    content: String,
    model: Value,
    usage: Value,
    finish_reason: Value,
    errors: Vec<Value>,
    cancelled: bool,
    /// The `tts_completed` of a chat that speaks.
    speech: Value,
}

impl Answer {
    fn absorb(&mut self, event: &TaskEvent) {
        let Some(kind) = event.kind else {
            return;
        };
        match kind {
            EventType::ModelInUse => self.model = event.data(),
            EventType::TextChunk => self
                .content
                .push_str(event.data()["content"].as_str().unwrap_or_default()),
            EventType::TextCompleted => {
                let data = event.data();
                self.usage = data["usage"].clone();
                self.finish_reason = data["finish_reason"].clone();
            }
            EventType::Error => self.errors.push(event.data()),
            EventType::Cancelled => self.cancelled = true,
            EventType::TtsCompleted => self.speech = event.data(),
            _ => {}
        }
    }
}

/// `POST /chat`: publishes the chat and waits for its `complete` (504 with the envelope on timeout).
pub async fn chat(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    body: Bytes,
) -> Result<Response, AppError> {
    let input: ChatInput = json_body(&body)?;
    input.validate()?;
    let session_id = state.claim_session(&claims, input.session_id).await?;
    let data = chat_data(&input)?;
    let mut feed = TaskFeed::chat(&state, &claims, session_id, data, Abandon::Cancel).await?;
    let timeout = Duration::from_secs(state.settings().chat_timeout_secs);
    let mut answer = Answer::default();
    let waited = tokio::time::timeout(timeout, async {
        while let Some(event) = feed.next().await {
            if event.is_complete() {
                return true;
            }
            answer.absorb(&event);
        }
        false
    })
    .await;
    match waited {
        Err(_) => {
            feed.abandon().await;
            return Err(AppError::Timeout(format!(
                "no answer within {} s; the task was cancelled",
                timeout.as_secs()
            )));
        }
        Ok(false) => {
            return Err(AppError::Unavailable(anyhow::anyhow!(
                "gateway shutting down"
            )));
        }
        Ok(true) => {}
    }
    if answer.content.is_empty()
        && let Some(error) = answer.errors.first()
    {
        return Err(task_error(error));
    }
    Ok(common::error::ok(json!({
        "session_id": session_id,
        "task_id": feed.task_id(),
        "content": answer.content,
        "model": answer.model,
        "usage": answer.usage,
        "finish_reason": answer.finish_reason,
        "cancelled": answer.cancelled,
        "errors": answer.errors,
        "tts": answer.speech,
    }))
    .into_response())
}

/// The action `data` of a chat request.
fn chat_data(input: &ChatInput) -> Result<Value, AppError> {
    serde_json::to_value(input.payload())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("chat payload: {e}")))
}

/// The body of a `POST /chat/stream` that resumes (with `Last-Event-ID`).
#[derive(Debug, Deserialize)]
struct ResumeBody {
    session_id: Uuid,
}

/// `POST /chat/stream`: the task's events as SSE (`id:` = event id). With `Last-Event-ID`, the
/// body names the session and the stream resumes after that event instead of starting a task.
pub async fn stream(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let last_event_id = super::sse::last_event_id(&headers)?;
    let feed = match last_event_id {
        Some(after) => {
            let resume: ResumeBody = json_body(&body)?;
            let session_id = state
                .claim_session(&claims, Some(resume.session_id))
                .await?;
            state.mark_resumed(session_id).await?;
            let running = state.running_task(session_id).await?;
            TaskFeed::resume(
                &state,
                session_id,
                after,
                running,
                Abandon::CancelUnlessResumed,
            )
        }
        None => {
            let input: ChatInput = json_body(&body)?;
            input.validate()?;
            let session_id = state.claim_session(&claims, input.session_id).await?;
            let data = chat_data(&input)?;
            TaskFeed::chat(
                &state,
                &claims,
                session_id,
                data,
                Abandon::CancelUnlessResumed,
            )
            .await?
        }
    };
    Ok(super::sse::response(feed))
}
