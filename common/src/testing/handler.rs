//! A worker handler for the runtime's own tests, driven by the action's `data`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::envelope::DomainAction;
use crate::events::{EventType, TextCompleted};
use crate::payloads::{Invalid, Payload};
use crate::worker::{Action, Actions, HandlerError, Task};

/// How the test handler fails (`data.fail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fail {
    /// [`HandlerError::retryable`].
    Retryable,
    /// [`HandlerError::fatal`].
    Fatal,
    /// [`HandlerError::rejected`].
    Reject,
    /// The handler panics.
    Panic,
}

/// What an action asks of the test handler. Unknown fields, wrong types and NUL characters are
/// refused as `invalid_payload` (a rejection), like a real handler's payload.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TestData {
    /// The answer, streamed in `chunks` pieces whose concatenation is the text.
    pub text: String,
    /// How many `text_chunk` events (some may be empty when the text is shorter).
    pub chunks: u32,
    /// The wait before each chunk, milliseconds (a cancel ends it early).
    pub delay_ms: u64,
    /// How to fail, if at all.
    pub fail: Option<Fail>,
    /// Fail on the first `fail_times` deliveries only (every delivery when absent).
    pub fail_times: Option<u64>,
    /// Fail after this many chunks were sent (before any, when absent).
    pub fail_after: Option<u32>,
}

impl Default for TestData {
    fn default() -> Self {
        Self {
            text: "hello".into(),
            chunks: 1,
            delay_ms: 0,
            fail: None,
            fail_times: None,
            fail_after: None,
        }
    }
}

impl Payload for TestData {
    fn validate(&self) -> Result<(), Invalid> {
        if self.text.contains('\0') {
            return Err(Invalid("text must not contain NUL characters".into()));
        }
        Ok(())
    }
}

/// Serves `<service>.test.run` actions: streams `text_chunk`s and a `text_completed` (its
/// `finish_reason` `stop`, or `cancelled` after a `cancelled` event when `task.cancel` fired), or
/// fails as `data` says.
#[derive(Debug, Clone, Copy)]
pub struct TestHandler;

impl TestHandler {
    /// The action table of a test worker of `service`: its one action type with this handler.
    pub fn actions(service: &str) -> Actions {
        Actions::new().action(&Self::action_type(service), TestHandler)
    }

    /// The action type it handles for `service`.
    pub fn action_type(service: &str) -> String {
        format!("{service}.test.run")
    }
}

/// A [`TestHandler`] action of `service` with `data`, in a new session of a new tenant and user.
pub fn test_action(service: &str, data: Value) -> DomainAction {
    let mut action = DomainAction::new(
        TestHandler::action_type(service),
        "test",
        Uuid::now_v7(),
        Uuid::now_v7(),
        data,
    );
    action.user_id = Some(Uuid::now_v7());
    action
}

fn failure(fail: Fail) -> HandlerError {
    match fail {
        Fail::Retryable => HandlerError::retryable("test", "test_retryable", "asked to fail"),
        Fail::Fatal => HandlerError::fatal("test", "test_fatal", "asked to fail for good"),
        Fail::Reject => HandlerError::rejected("test_rejected", "asked to reject"),
        Fail::Panic => panic!("the test handler was asked to panic"),
    }
}

/// The text cut into `n` pieces of nearly equal length, in characters.
fn pieces(text: &str, n: u32) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n as usize;
    (0..n)
        .map(|i| {
            chars[i * chars.len() / n..(i + 1) * chars.len() / n]
                .iter()
                .collect()
        })
        .collect()
}

#[async_trait]
impl Action<TestData> for TestHandler {
    async fn run(&self, task: Task, data: TestData) -> Result<(), HandlerError> {
        let fail = data
            .fail
            .filter(|_| data.fail_times.is_none_or(|k| task.delivery <= k));
        let events = &task.events;
        let mut sent = String::new();
        for (i, piece) in pieces(&data.text, data.chunks).into_iter().enumerate() {
            if let Some(fail) = fail.filter(|_| data.fail_after.unwrap_or(0) as usize == i) {
                return Err(failure(fail));
            }
            if data.delay_ms > 0 {
                tokio::select! {
                    () = task.cancel.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(data.delay_ms)) => {}
                }
            }
            if task.cancel.is_cancelled() {
                events.cancelled().await?;
                events
                    .text_completed(&TextCompleted::new(sent, Value::Null, "cancelled"))
                    .await?;
                return Ok(());
            }
            events
                .send(EventType::TextChunk, json!({"content": piece}))
                .await?;
            sent.push_str(&piece);
        }
        if let Some(fail) = fail {
            return Err(failure(fail));
        }
        events
            .text_completed(&TextCompleted::new(sent, Value::Null, "stop"))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_join_to_the_text() {
        assert_eq!(pieces("abcdef", 3), ["ab", "cd", "ef"]);
        assert_eq!(pieces("ab", 4).concat(), "ab");
        assert_eq!(pieces("ab", 4).len(), 4);
        assert_eq!(pieces("héllo", 1), ["héllo"]);
    }
}
