//! `POST /chat/session-name`: asks the chat-worker to title a session (`chat.session.name`) and
//! waits for the title, pseudo-synchronously like `POST /chat`.

use std::time::Duration;

use common::auth::Claims;
use common::error::AppError;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Viewer, db_error, not_found};
use crate::hub::Subscription;
use crate::session::{entry_task, traced_action};
use crate::state::AppState;

/// The action type that titles a session.
pub const NAME_ACTION: &str = "chat.session.name";

/// A session's new title.
#[derive(Debug, Serialize)]
pub struct Named {
    /// The session.
    pub session_id: Uuid,
    /// The title, as stored.
    pub title: String,
}

/// What the naming task's events said.
#[derive(Debug, Default)]
struct Outcome {
    title: Option<String>,
    errors: Vec<Value>,
}

/// Has the session titled by the text provider (`model`, or the default) and returns the title.
/// Sessions the caller may not see are 404; no answer within the chat timeout is 504.
pub async fn name_session(
    state: &AppState,
    claims: &Claims,
    session_id: Uuid,
    model: Option<&str>,
) -> Result<Named, AppError> {
    let viewer = Viewer::new(claims);
    common::history::find_session(
        state.db(),
        viewer.tenant_id,
        session_id,
        viewer.owner_filter(),
    )
    .await
    .map_err(db_error)?
    .ok_or_else(not_found)?;
    let session_id = state.claim_session(claims, Some(session_id)).await?;
    // Subscribed before publishing, so no event of the task can be missed.
    let mut sub = state.subscribe_live(session_id).await?;
    let mut data = json!({});
    if let Some(model) = model {
        data["model"] = json!(model);
    }
    let (action, _span) = traced_action(NAME_ACTION, claims, session_id, data);
    let task_id = action.task_id;
    state.bus().publish(&action).await?;
    let timeout = Duration::from_secs(state.settings().chat_timeout_secs);
    let Ok(outcome) = tokio::time::timeout(timeout, wait(state, &mut sub, task_id)).await else {
        let _ = state.cancel_task(task_id).await;
        return Err(AppError::Timeout(format!(
            "no title within {} s; the task was cancelled",
            timeout.as_secs()
        )));
    };
    match (outcome.title, outcome.errors.first()) {
        (Some(title), _) if !title.is_empty() => Ok(Named { session_id, title }),
        (_, Some(error)) => Err(task_error(error)),
        _ => Err(AppError::Internal(anyhow::anyhow!(
            "naming task {task_id} completed without a title or an error"
        ))),
    }
}

/// The task's events until its `complete`.
async fn wait(state: &AppState, sub: &mut Subscription, task_id: Uuid) -> Outcome {
    let mut outcome = Outcome::default();
    loop {
        let Ok(entry) = sub.recv().await else {
            // Lagged: dropped by the hub; continue from the last entry seen.
            let (key, last) = (sub.key().to_owned(), sub.last_id());
            *sub = state.hub().subscribe(&key, last);
            continue;
        };
        if entry_task(&entry) != Some(task_id) {
            continue;
        }
        if entry.kind == "complete" {
            return outcome;
        }
        let event: Value = serde_json::from_str(&entry.payload).unwrap_or(Value::Null);
        match entry.kind.as_str() {
            "text_completed" => {
                outcome.title = event["data"]["content"].as_str().map(str::to_owned);
            }
            "error" => outcome.errors.push(event["data"].clone()),
            _ => {}
        }
    }
}

/// The client-facing error for a worker's `error` event (its message is safe to show).
fn task_error(error: &Value) -> AppError {
    let message = error["message"]
        .as_str()
        .unwrap_or("the session could not be named")
        .to_owned();
    match (error["stage"].as_str(), error["code"].as_str()) {
        (_, Some("not_found")) => not_found(),
        (Some("validation"), Some(code)) if code != "unknown_action_type" => {
            AppError::BadRequest(message)
        }
        (Some("persistence"), _) => AppError::Unavailable(anyhow::anyhow!(message)),
        _ => AppError::Upstream(message),
    }
}
