//! One Chat Completions request through the gateway's pipeline: check the model, claim a fresh
//! session, subscribe to its response stream, publish the action, then answer from the task's
//! events, whole or as Server-Sent Events. A request that goes away before its answer is complete
//! cancels its task, so the upstream request is closed.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use common::auth::{Claims, unix_now};
use common::payloads::Payload;
use serde_json::json;

use super::chunks::ChunkWriter;
use super::error::OpenAiError;
use super::request::CompletionRequest;
use super::response::{CompletionMeta, TaskEvent, Transcript};
use crate::state::AppState;
use crate::task::{Abandon, TaskFeed};

/// Interval of SSE keep-alive comments while the model is silent.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Answers a parsed request: a `chat.completion`, or a stream of `chat.completion.chunk`s.
pub async fn create(
    state: &AppState,
    claims: &Claims,
    request: &CompletionRequest,
) -> Result<Response, OpenAiError> {
    let task = CompletionTask::start(state, claims, request).await?;
    if request.stream {
        streamed(task, request.include_usage).await
    } else {
        whole(task).await
    }
}

/// A published completion task and the feed of its events. Dropped before it finished (the
/// client went away), it cancels the task.
struct CompletionTask {
    state: AppState,
    feed: TaskFeed,
    meta: CompletionMeta,
}

impl CompletionTask {
    async fn start(
        state: &AppState,
        claims: &Claims,
        request: &CompletionRequest,
    ) -> Result<Self, OpenAiError> {
        state
            .models()
            .resolve(Some(&request.model))
            .map_err(|e| OpenAiError::model_not_found(&e))?;
        // The rules the worker applies (storable text, counts, ranges), checked before publishing.
        let data = request.action_data();
        common::payloads::chat::ChatPayload::parse(&data)
            .map_err(|e| OpenAiError::invalid_request(e.0, None))?;
        let created = unix_now();
        // Each request is a conversation of its own: the client sends the whole history.
        let session_id = state.claim_session(claims, None).await?;
        let feed = TaskFeed::chat(state, claims, session_id, data, Abandon::Cancel).await?;
        let task_id = feed.task_id().unwrap_or_default();
        Ok(Self {
            state: state.clone(),
            feed,
            meta: CompletionMeta {
                id: format!("chatcmpl-{task_id}"),
                created,
                model: request.model.clone(),
            },
        })
    }

    /// The task's next event; an `error` when the gateway shuts down meanwhile.
    async fn next(&mut self) -> TaskEvent {
        match self.feed.next().await {
            Some(event) => TaskEvent::new(&event.entry.kind, event.data()),
            None => TaskEvent::new(
                "error",
                json!({"stage": "gateway", "code": "bus_unavailable",
                    "message": "the gateway is shutting down", "retryable": true}),
            ),
        }
    }

    /// The task is over (or ends by itself after an error): nothing to cancel.
    async fn finished(&mut self) {
        self.feed.finished().await;
    }

    /// Gives up on the task and cancels it.
    async fn abandon(&mut self) {
        self.feed.abandon().await;
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(self.state.settings().chat_timeout_secs)
    }
}

async fn whole(mut task: CompletionTask) -> Result<Response, OpenAiError> {
    let wait = task.wait();
    let mut transcript = Transcript::new(task.meta.clone());
    let ended = tokio::time::timeout(wait, async {
        loop {
            let event = task.next().await;
            if event.kind == "complete" {
                return;
            }
            transcript.absorb(&event);
        }
    })
    .await;
    if ended.is_err() {
        task.abandon().await;
        return Err(OpenAiError::timeout(wait.as_secs()));
    }
    task.finished().await;
    match transcript.error() {
        Some(e) => Err(e),
        None => Ok(Json(transcript.completion()).into_response()),
    }
}

/// What the SSE body holds between two events.
struct Relay {
    task: CompletionTask,
    writer: ChunkWriter,
    pending: VecDeque<String>,
}

/// Streams the answer. The response starts only with the first output, so a failure before it
/// gets a proper HTTP status instead of an error inside a `200` stream.
async fn streamed(mut task: CompletionTask, include_usage: bool) -> Result<Response, OpenAiError> {
    let wait = task.wait();
    let mut writer = ChunkWriter::new(task.meta.clone(), include_usage);
    let first = tokio::time::timeout(wait, async {
        loop {
            let event = task.next().await;
            if event.is_decisive() {
                return event;
            }
            // Only `model_in_use` matters before the first output, and it writes nothing.
            writer.write(&event);
        }
    })
    .await;
    let first = match first {
        Ok(event) => event,
        Err(_) => {
            task.abandon().await;
            return Err(OpenAiError::timeout(wait.as_secs()));
        }
    };
    if first.kind == "error" {
        // The worker completes the task by itself after an error.
        task.finished().await;
        return Err(OpenAiError::from_event(&first.data));
    }
    let pending = writer.write(&first).into();
    if writer.is_done() {
        task.finished().await;
    }
    let relay = Relay {
        task,
        writer,
        pending,
    };
    let body = futures::stream::unfold(relay, move |mut r| async move {
        loop {
            if let Some(payload) = r.pending.pop_front() {
                return Some((Ok::<_, Infallible>(SseEvent::default().data(payload)), r));
            }
            if r.writer.is_done() {
                return None;
            }
            match tokio::time::timeout(wait, r.task.next()).await {
                Ok(event) => {
                    r.pending.extend(r.writer.write(&event));
                    if r.writer.is_done() {
                        r.task.finished().await;
                    }
                }
                Err(_) => {
                    r.pending
                        .extend(r.writer.fail(&OpenAiError::timeout(wait.as_secs())));
                    r.task.abandon().await;
                }
            }
        }
    });
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}
