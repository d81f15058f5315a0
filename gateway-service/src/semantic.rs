//! The semantic-worker's answers as the gateway waits for them (`POST /api/v1/semantic/search`,
//! `POST /v1/embeddings`): an action published in a session of its own, and the structured
//! result of its `text_completed`; plus the clean-up a deleted session asks of the index.

use common::auth::Claims;
use common::error::AppError;
use common::payloads::semantic::{BACKGROUND_CALLBACK, DELETE, DeletePayload};
use serde_json::Value;
use uuid::Uuid;

use crate::session::traced_action;
use crate::speech::Failure;
use crate::state::AppState;
use crate::task::Answered;

/// Publishes `action_type` with `data` for the caller, in a session of its own, and waits (up to
/// `CHAT_TIMEOUT_SECS`) for its result: the task's own failure inside, the gateway's (no session,
/// no bus) outside. A caller that goes away cancels it.
pub async fn run(
    state: &AppState,
    claims: &Claims,
    action_type: &str,
    data: Value,
) -> Result<Result<Answered, Failure>, AppError> {
    let session_id = state.claim_session(claims, None).await?;
    crate::task::answer(state, claims, session_id, action_type, data).await
}

/// Asks the semantic-worker to delete what a deleted session left in the index. Not waited
/// for: the session is gone from the history whatever the index does; a failure is logged.
pub async fn forget_session(state: &AppState, claims: &Claims, session_id: Uuid) {
    let payload = DeletePayload {
        session_id: Some(session_id),
        document_id: None,
    };
    let Ok(data) = serde_json::to_value(payload) else {
        return;
    };
    let (mut action, _span) = traced_action(DELETE, claims, session_id, data);
    action.callback_stream = Some(state.bus().names().callback_stream(BACKGROUND_CALLBACK));
    if let Err(e) = state.bus().publish(&action).await {
        tracing::warn!(%session_id, error = %e, "the session's index entries were not deleted");
    }
}
