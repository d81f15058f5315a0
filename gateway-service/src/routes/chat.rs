//! `POST /chat` (wait for the whole answer) and `POST /chat/stream` (Server-Sent Events).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use common::error::AppError;
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::extract::{AuthUser, json_body};
use crate::hub::{Entry, StreamId, Subscription};
use crate::session::{AbandonGuard, ChatInput, client_event, entry_task, task_error};
use crate::state::AppState;

/// What `POST /chat` gathers from a task's events.
#[derive(Default)]
struct Answer {
    content: String,
    model: Value,
    usage: Value,
    finish_reason: Value,
    errors: Vec<Value>,
    cancelled: bool,
}

impl Answer {
    fn absorb(&mut self, entry: &Entry) {
        let event: Value = serde_json::from_str(&entry.payload).unwrap_or(Value::Null);
        let data = &event["data"];
        match entry.kind.as_str() {
            "model_in_use" => self.model = data.clone(),
            "text_chunk" => self
                .content
                .push_str(data["content"].as_str().unwrap_or_default()),
            "text_completed" => {
                self.usage = data["usage"].clone();
                self.finish_reason = data["finish_reason"].clone();
            }
            "error" => self.errors.push(data.clone()),
            "cancelled" => self.cancelled = true,
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
    let mut sub = state.subscribe_live(session_id).await?;
    let started = state.publish_chat(&claims, session_id, &input).await?;
    let mut guard = AbandonGuard::new(&state, session_id, Some(started.task_id), false);
    let timeout = Duration::from_secs(state.settings().chat_timeout_secs);
    let mut answer = Answer::default();
    let shutdown = state.shutdown().clone();
    let waited = tokio::time::timeout(timeout, async {
        loop {
            if shutdown.is_cancelled() {
                return false;
            }
            let Ok(entry) = sub.recv().await else {
                let last = sub.last_id();
                let key = sub.key().to_owned();
                sub = state.hub().subscribe(&key, last);
                continue;
            };
            if entry_task(&entry) != Some(started.task_id) {
                continue;
            }
            if entry.kind == "complete" {
                return true;
            }
            answer.absorb(&entry);
        }
    });
    let waited = tokio::select! {
        w = waited => w,
        () = shutdown.cancelled() => Ok(false),
    };
    match waited {
        Err(_) => {
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
        Ok(true) => guard.disarm(),
    }
    state.task_finished(session_id, started.task_id).await;
    if answer.content.is_empty()
        && let Some(error) = answer.errors.first()
    {
        return Err(task_error(error));
    }
    Ok(common::error::ok(json!({
        "session_id": session_id,
        "task_id": started.task_id,
        "content": answer.content,
        "model": answer.model,
        "usage": answer.usage,
        "finish_reason": answer.finish_reason,
        "cancelled": answer.cancelled,
        "errors": answer.errors,
    }))
    .into_response())
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
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (sub, task, session_id, guarded) = match last_event_id {
        Some(id) => {
            let after: StreamId = id
                .parse()
                .map_err(|_| AppError::BadRequest("Last-Event-ID is not an event id".into()))?;
            let resume: ResumeBody = json_body(&body)?;
            let session_id = state
                .claim_session(&claims, Some(resume.session_id))
                .await?;
            state.mark_resumed(session_id).await?;
            let stream = state.bus().names().response_stream(session_id);
            let running = state.running_task(session_id).await?;
            (
                state.hub().subscribe(&stream, after),
                None,
                session_id,
                running,
            )
        }
        None => {
            let input: ChatInput = json_body(&body)?;
            input.validate()?;
            let session_id = state.claim_session(&claims, input.session_id).await?;
            let sub = state.subscribe_live(session_id).await?;
            let started = state.publish_chat(&claims, session_id, &input).await?;
            (
                sub,
                Some(started.task_id),
                session_id,
                Some(started.task_id),
            )
        }
    };
    let guard = AbandonGuard::new(&state, session_id, guarded, true);
    let events = sse_events(state, sub, task, guard);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The events of one task (or, when resuming, of whatever task completes first), ending after its
/// `complete`.
fn sse_events(
    state: AppState,
    sub: Subscription,
    task: Option<Uuid>,
    guard: AbandonGuard,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold(Some((state, sub, guard)), move |st| async move {
        let (state, mut sub, mut guard) = st?;
        loop {
            // The stream ends when the gateway shuts down; the client resumes elsewhere.
            let received = tokio::select! {
                r = sub.recv() => r,
                () = state.shutdown().cancelled() => return None,
            };
            let entry = match received {
                Ok(e) => e,
                Err(_) => {
                    let (key, last) = (sub.key().to_owned(), sub.last_id());
                    sub = state.hub().subscribe(&key, last);
                    continue;
                }
            };
            let this = entry_task(&entry);
            if task.is_some() && this != task {
                continue;
            }
            let event = SseEvent::default()
                .id(entry.id.to_string())
                .data(client_event(&entry));
            if entry.kind == "complete" {
                guard.disarm();
                if let (Some(t), Some(session)) = (this, session_of(&entry)) {
                    state.task_finished(session, t).await;
                }
                return Some((Ok(event), None));
            }
            return Some((Ok(event), Some((state, sub, guard))));
        }
    })
}

fn session_of(entry: &Entry) -> Option<Uuid> {
    let v: Value = serde_json::from_str(&entry.payload).ok()?;
    v["session_id"].as_str()?.parse().ok()
}
