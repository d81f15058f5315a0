//! `POST /chat/session-name`: a title for a session, written by the text provider.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use common::error::{AppError, ok};
use serde::Deserialize;
use uuid::Uuid;

use crate::extract::{AuthUser, json_body};
use crate::history::naming;
use crate::state::AppState;

/// The request body.
#[derive(Debug, Deserialize)]
struct NameBody {
    session_id: Uuid,
    #[serde(default)]
    model: Option<String>,
}

/// `POST /chat/session-name` `{session_id, model?}` → `{session_id, title}`.
pub async fn name(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    body: Bytes,
) -> Result<Response, AppError> {
    let body: NameBody = json_body(&body)?;
    let named =
        naming::name_session(&state, &claims, body.session_id, body.model.as_deref()).await?;
    Ok(ok(named).into_response())
}
