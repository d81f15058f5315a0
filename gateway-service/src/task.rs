//! One task as the gateway follows it, for every surface that waits on a task (`POST /chat`, SSE,
//! `/v1/chat/completions`, session naming): subscribe before publishing, the task's events typed,
//! lag handled by the subscription, what happens to the task when the caller goes away, and the
//! one mapping from a worker's `error` to an HTTP answer.

use common::auth::Claims;
use common::error::AppError;
use common::events::{ErrorCode, EventType, Fault};
use serde_json::Value;
use uuid::Uuid;

use crate::hub::{Entry, StreamId, Subscription};
use crate::session::entry_task;
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

/// The client-facing error for a task that failed before any answer, from its `error` event's
/// `data` (its message is safe to show: workers never put internals there).
pub fn task_error(error: &Value) -> AppError {
    let message = error["message"]
        .as_str()
        .unwrap_or("the task failed")
        .to_owned();
    let code = ErrorCode::parse(error["code"].as_str().unwrap_or_default());
    match code.fault(error["stage"].as_str().unwrap_or_default()) {
        Fault::NotFound => AppError::NotFound(message),
        Fault::Client => AppError::BadRequest(message),
        Fault::TooLarge => AppError::PayloadTooLarge(message),
        Fault::RateLimited => AppError::RateLimited {
            retry_after_secs: error["retry_after_secs"].as_u64().unwrap_or(1),
        },
        Fault::Unavailable => AppError::Unavailable(anyhow::anyhow!(message)),
        Fault::Upstream => AppError::Upstream(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn worker_errors_map_to_statuses() {
        let status = |e: Value| task_error(&e).status_code().as_u16();
        assert_eq!(
            status(json!({"code": "not_found", "stage": "validation"})),
            404
        );
        assert_eq!(
            status(json!({"code": "unknown_model", "stage": "validation"})),
            400
        );
        assert_eq!(
            status(json!({"code": "invalid_payload", "stage": "validation"})),
            400
        );
        assert_eq!(
            status(json!({"code": "rate_limited", "stage": "provider"})),
            429
        );
        assert_eq!(
            status(json!({"code": "bus_unavailable", "stage": "worker"})),
            503
        );
        assert_eq!(status(json!({"code": "provider_unavailable"})), 503);
        assert_eq!(
            status(json!({"code": "whatever", "stage": "persistence"})),
            503
        );
        assert_eq!(
            status(json!({"code": "upstream_error", "stage": "provider"})),
            502
        );
        assert_eq!(status(json!({})), 502);
        // The speech half's codes (stage `tts`): what the request asked for is the client's to
        // change; storage is ours; the provider's failures are the upstream's, as for chat.
        for code in [
            "unknown_provider",
            "provider_not_configured",
            "unsupported_option",
            "text_too_long",
            "audio_too_long",
            "empty_text",
        ] {
            assert_eq!(status(json!({"code": code, "stage": "tts"})), 400, "{code}");
        }
        assert_eq!(
            status(json!({"code": "storage_unavailable", "stage": "tts"})),
            503
        );
        for code in ["upstream_timeout", "upstream_connection", "no_audio"] {
            assert_eq!(status(json!({"code": code, "stage": "tts"})), 502, "{code}");
        }
        // Speech to text (stage `stt`).
        for (code, want) in [
            ("not_found", 404),
            ("file_too_large", 413),
            ("unsupported_format", 400),
            ("invalid_audio", 400),
            ("unknown_provider", 400),
            ("provider_not_configured", 400),
            ("storage_unavailable", 503),
            ("upstream_refused", 502),
            ("rate_limited", 429),
        ] {
            assert_eq!(
                status(json!({"code": code, "stage": "stt"})),
                want,
                "{code}"
            );
        }
    }
}
