//! One task as the gateway follows it, for every surface that waits on a task (`POST /chat`, SSE,
//! `/v1/chat/completions`, session naming, images, a job's events): subscribe before publishing,
//! the task's events typed, lag handled by the subscription, what happens to the task when the
//! caller goes away, and the one mapping from a worker's `error` to an HTTP answer.

mod error;

use std::time::Duration;

use common::auth::Claims;
use common::error::AppError;
use common::events::EventType;
use serde_json::Value;
use uuid::Uuid;

pub use error::{RestError, fault, task_error};

use crate::hub::{Entry, StreamId, Subscription};
use crate::session::{entry_task, traced_action};
use crate::speech::Failure;
use crate::state::AppState;

/// What becomes of a task whose caller goes away before its `complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandon {
    /// Cancelled at once: the caller waited for the whole answer (`POST /chat`, `/v1`).
    Cancel,
    /// Cancelled after the resume grace unless a client resumes the session (SSE).
    CancelUnlessResumed,
    /// Left to finish: its result is kept even when nobody waits for it (session naming).
    Finish,
}

/// One event of the task.
#[derive(Debug)]
pub struct TaskEvent {
    /// Its type; `None` for a type this gateway does not know (relayed as it is).
    pub kind: Option<EventType>,
    /// The response-stream entry as stored.
    pub entry: Entry,
}

impl TaskEvent {
    /// Its `data`, decoded.
    pub fn data(&self) -> Value {
        let mut event: Value = serde_json::from_str(&self.entry.payload).unwrap_or(Value::Null);
        event["data"].take()
    }

    /// Whether it is the task's last event.
    pub fn is_complete(&self) -> bool {
        self.kind == Some(EventType::Complete)
    }
}

/// A task's events, from its session's response stream.
pub struct TaskFeed {
    state: AppState,
    sub: Subscription,
    session_id: Uuid,
    /// The task followed; `None` when resuming a session: then the first task to complete ends it.
    task_id: Option<Uuid>,
    /// The task to stop when the feed is dropped before its `complete`, and how.
    armed: Option<(Uuid, Abandon)>,
}

impl std::fmt::Debug for TaskFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskFeed")
            .field("session_id", &self.session_id)
            .field("task_id", &self.task_id)
            .finish_non_exhaustive()
    }
}

impl TaskFeed {
    /// Publishes a chat task with `data` in an owned session and follows it. The subscription
    /// starts before the action is published, so no event can be missed.
    pub async fn chat(
        state: &AppState,
        claims: &Claims,
        session_id: Uuid,
        data: Value,
        abandon: Abandon,
    ) -> Result<Self, AppError> {
        let sub = state.subscribe_live(session_id).await?;
        let started = state.publish_chat_data(claims, session_id, data).await?;
        Ok(Self::follow(
            state,
            sub,
            session_id,
            Some(started.task_id),
            abandon,
        ))
    }

    /// Publishes an action (built by the caller) in an owned session and follows its task.
    pub async fn action(
        state: &AppState,
        action: &common::DomainAction,
        abandon: Abandon,
    ) -> Result<Self, AppError> {
        let sub = state.subscribe_live(action.session_id).await?;
        state.bus().publish(action).await?;
        Ok(Self::follow(
            state,
            sub,
            action.session_id,
            Some(action.task_id),
            abandon,
        ))
    }

    /// Follows a session again after `after` (a resume): every event, until a task completes;
    /// `running`, the task still running there, is what a departure abandons.
    pub fn resume(
        state: &AppState,
        session_id: Uuid,
        after: StreamId,
        running: Option<Uuid>,
        abandon: Abandon,
    ) -> Self {
        let stream = state.bus().names().response_stream(session_id);
        let sub = state.hub().subscribe(&stream, after);
        let mut feed = Self::follow(state, sub, session_id, None, abandon);
        feed.armed = running.map(|t| (t, abandon));
        feed
    }

    /// Follows one task of a session from after `after` (a long job followed by its id: its
    /// events from the start, or after a reconnect's last one). The task is the job's, not the
    /// caller's: nothing happens to it when the feed is dropped.
    pub fn job(state: &AppState, session_id: Uuid, task_id: Uuid, after: StreamId) -> Self {
        let stream = state.bus().names().response_stream(session_id);
        let sub = state.hub().subscribe(&stream, after);
        Self::follow(state, sub, session_id, Some(task_id), Abandon::Finish)
    }

    fn follow(
        state: &AppState,
        sub: Subscription,
        session_id: Uuid,
        task_id: Option<Uuid>,
        abandon: Abandon,
    ) -> Self {
        Self {
            state: state.clone(),
            sub,
            session_id,
            task_id,
            armed: task_id.map(|t| (t, abandon)),
        }
    }

    /// The task followed (`None` when resuming).
    pub fn task_id(&self) -> Option<Uuid> {
        self.task_id
    }

    /// The session.
    pub fn session_id(&self) -> Uuid {
        self.session_id
    }

    /// The task's next event; after its `complete` the feed is finished (nothing to abandon,
    /// the session's running-task mark cleared). `None` when the gateway shuts down.
    pub async fn next(&mut self) -> Option<TaskEvent> {
        loop {
            let entry = tokio::select! {
                e = self.sub.next() => e,
                () = self.state.shutdown().cancelled() => return None,
            };
            let task = entry_task(&entry);
            if self.task_id.is_some() && task != self.task_id {
                continue;
            }
            let event = TaskEvent {
                kind: entry.kind.parse().ok(),
                entry,
            };
            if event.is_complete() {
                self.armed = None;
                if let Some(task) = task {
                    self.state.task_finished(self.session_id, task).await;
                }
            }
            return Some(event);
        }
    }

    /// The task ended (a caller that knows it completes by itself, e.g. after an `error`):
    /// nothing to abandon, the running-task mark cleared.
    pub async fn finished(&mut self) {
        if let Some((task, _)) = self.armed.take() {
            self.state.task_finished(self.session_id, task).await;
        }
    }

    /// Waits up to `wait` for the task's end and answers the `data` of the last `kind` event
    /// before its `complete` (the result of a task that answers once: a transcript, a search);
    /// its `error`, a cancel, a timeout (the task is then cancelled) or a `complete` without
    /// that event are the failures.
    pub async fn result(
        &mut self,
        kind: EventType,
        wait: std::time::Duration,
    ) -> Result<Value, crate::speech::Failure> {
        use crate::speech::Failure;
        let waited = tokio::time::timeout(wait, async {
            let mut result = None;
            loop {
                let Some(event) = self.next().await else {
                    return Err(Failure::ShuttingDown);
                };
                match event.kind {
                    Some(k) if k == kind => result = Some(event.data()),
                    Some(EventType::Error) => {
                        self.finished().await;
                        return Err(Failure::Task(event.data()));
                    }
                    Some(EventType::Cancelled) => {
                        self.finished().await;
                        return Err(Failure::Cancelled);
                    }
                    Some(EventType::Complete) => return result.ok_or(Failure::Incomplete),
                    _ => {}
                }
            }
        })
        .await;
        match waited {
            Ok(result) => result,
            Err(_) => {
                self.abandon().await;
                Err(Failure::Timeout(wait.as_secs()))
            }
        }
    }

    /// Gives up on the task now and cancels it (a timeout).
    pub async fn abandon(&mut self) {
        if let Some((task, _)) = self.armed.take()
            && let Err(e) = self.state.cancel_task(task).await
        {
            tracing::warn!(task_id = %task, error = %e, "could not cancel the task");
        }
    }
}

impl Drop for TaskFeed {
    fn drop(&mut self) {
        let Some((task_id, abandon)) = self.armed.take() else {
            return;
        };
        match abandon {
            Abandon::Finish => {}
            Abandon::CancelUnlessResumed => {
                self.state.cancel_unless_resumed(self.session_id, task_id);
            }
            Abandon::Cancel => {
                let state = self.state.clone();
                tracing::info!(%task_id, "client left before the answer; cancelling");
                self.state.tracker().spawn(async move {
                    if let Err(e) = state.cancel_task(task_id).await {
                        tracing::warn!(%task_id, error = %e, "could not cancel the task");
                    }
                });
            }
        }
    }
}

/// What a finished task answered once (a search, embeddings, images).
#[derive(Debug)]
pub struct Answered {
    /// The task.
    pub task_id: Uuid,
    /// Its session.
    pub session_id: Uuid,
    /// `text_completed.data`: the structured result.
    pub data: Value,
    /// `text_completed.usage`.
    pub usage: Value,
}

/// Publishes `action_type` with `data` for the caller in `session_id` (owned by the caller: claim
/// it first) and waits (up to `CHAT_TIMEOUT_SECS`) for its `text_completed`: the task's own
/// failure inside, the gateway's (no bus) outside. A caller that goes away cancels it.
pub async fn answer(
    state: &AppState,
    claims: &Claims,
    session_id: Uuid,
    action_type: &str,
    data: Value,
) -> Result<Result<Answered, Failure>, AppError> {
    let (action, span) = traced_action(action_type, claims, session_id, data);
    let mut feed = TaskFeed::action(state, &action, Abandon::Cancel).await?;
    span.in_scope(|| tracing::debug!("task published; waiting for its answer"));
    let wait = Duration::from_secs(state.settings().chat_timeout_secs);
    Ok(feed
        .result(EventType::TextCompleted, wait)
        .await
        .map(|mut done| Answered {
            task_id: action.task_id,
            session_id,
            data: done["data"].take(),
            usage: done["usage"].take(),
        }))
}
