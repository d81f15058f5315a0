//! `POST /chat/session-name`: asks the chat-worker to title a session (`chat.session.name`) and
//! waits for the title, pseudo-synchronously like `POST /chat`.

use std::time::Duration;

use common::auth::Claims;
use common::error::AppError;
use common::events::EventType;
use common::payloads::Payload;
use common::payloads::chat::{NAME, NamePayload};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Viewer, not_found};
use crate::session::traced_action;
use crate::state::AppState;
use crate::task::{Abandon, TaskFeed, task_error};

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
    let payload = NamePayload {
        model: model.map(str::to_owned),
    };
    payload
        .validate()
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let viewer = Viewer::new(claims);
    common::history::find_session(
        state.db(),
        viewer.tenant_id,
        session_id,
        viewer.owner_filter(),
    )
    .await?
    .ok_or_else(not_found)?;
    let session_id = state.claim_session(claims, Some(session_id)).await?;
    let data = serde_json::to_value(&payload).map_err(|e| AppError::Internal(e.into()))?;
    let (action, _span) = traced_action(NAME, claims, session_id, data);
    let mut feed = TaskFeed::action(state, &action, Abandon::Finish).await?;
    let timeout = Duration::from_secs(state.settings().chat_timeout_secs);
    let Ok(outcome) = tokio::time::timeout(timeout, wait(&mut feed)).await else {
        let _ = state.cancel_task(action.task_id).await;
        return Err(AppError::Timeout(format!(
            "no title within {} s; the task was cancelled",
            timeout.as_secs()
        )));
    };
    match (outcome.title, outcome.errors.first()) {
        (Some(title), _) if !title.is_empty() => Ok(Named { session_id, title }),
        (_, Some(error)) => Err(task_error(error)),
        _ => Err(AppError::Internal(anyhow::anyhow!(
            "naming task {} completed without a title or an error",
            action.task_id
        ))),
    }
}

/// The task's events until its `complete` (or the gateway's shutdown).
async fn wait(feed: &mut TaskFeed) -> Outcome {
    let mut outcome = Outcome::default();
    while let Some(event) = feed.next().await {
        match event.kind {
            Some(EventType::Complete) => break,
            Some(EventType::TextCompleted) => {
                outcome.title = event.data()["content"].as_str().map(str::to_owned);
            }
            Some(EventType::Error) => outcome.errors.push(event.data()),
            _ => {}
        }
    }
    outcome
}
