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
use uuid::Uuid;

use super::chunks::ChunkWriter;
use super::error::OpenAiError;
use super::request::CompletionRequest;
use super::response::{CompletionMeta, TaskEvent, Transcript};
use crate::hub::Subscription;
use crate::session::entry_task;
use crate::state::AppState;

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

/// A published completion task and the subscription to its events. Dropped before it finished
/// (the client went away), it cancels the task.
struct CompletionTask {
    state: AppState,
    sub: Subscription,
    session_id: Uuid,
    task_id: Uuid,
    meta: CompletionMeta,
    /// Cancel the task on drop.
    armed: bool,
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
        let sub = state.subscribe_live(session_id).await?;
        let started = state.publish_chat_data(claims, session_id, data).await?;
        Ok(Self {
            state: state.clone(),
            sub,
            session_id,
            task_id: started.task_id,
            meta: CompletionMeta {
                id: format!("chatcmpl-{}", started.task_id),
                created,
                model: request.model.clone(),
            },
            armed: true,
        })
    }

    /// The task's next event.
    async fn next(&mut self) -> TaskEvent {
        loop {
            match self.sub.recv().await {
                Ok(entry) if entry_task(&entry) == Some(self.task_id) => {
                    return TaskEvent::from_entry(&entry);
                }
                Ok(_) => {}
                Err(_) => {
                    // Fell behind: continue after the last entry seen, losing nothing.
                    let (key, last) = (self.sub.key().to_owned(), self.sub.last_id());
                    self.sub = self.state.hub().subscribe(&key, last);
                }
            }
        }
    }

    /// The task is over (or ends by itself): nothing to cancel.
    async fn finished(&mut self) {
        self.armed = false;
        self.state
            .task_finished(self.session_id, self.task_id)
            .await;
    }

    /// Gives up on the task and cancels it.
    async fn abandon(&mut self) {
        self.armed = false;
        if let Err(e) = self.state.cancel_task(self.task_id).await {
            tracing::warn!(task_id = %self.task_id, error = %e, "could not cancel the task");
        }
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(self.state.settings().chat_timeout_secs)
    }
}

impl Drop for CompletionTask {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (state, task_id) = (self.state.clone(), self.task_id);
        tracing::info!(%task_id, "client went away before the answer was complete");
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let cancel = async move {
                if let Err(e) = state.cancel_task(task_id).await {
                    tracing::warn!(%task_id, error = %e, "could not cancel the task");
                }
            };
            runtime.spawn(self.state.tracker().track_future(cancel));
        }
    }
}

/// Waits for `complete` and answers with the whole `chat.completion`.
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
