//! `POST /api/v1/semantic/search`: the caller's messages and documents found by meaning, by
//! keyword, or both (`semantic.search.execute`), answered in the envelope.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use common::error::{AppError, ok};
use common::http::is_admin;
use common::payloads::Payload;
use common::payloads::semantic::{SEARCH, SearchPayload};
use serde_json::json;

use crate::extract::AuthUser;
use crate::state::AppState;

/// `POST /api/v1/semantic/search` with a `semantic.search.execute` body (`query`, `mode`, `limit`,
/// `score_threshold`, filters; `all_users` for admins): `{results, mode, embed_ms, search_ms}`.
/// Each call counts against the tenant's search limit (`RATE_LIMIT__SEARCH_PER_MINUTE`).
pub async fn search(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let data: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("the body is not JSON: {e}")))?;
    let payload = SearchPayload::parse(&data).map_err(|e| AppError::BadRequest(e.0))?;
    if payload.all_users && !is_admin(&claims) {
        return Err(AppError::Forbidden(
            "all_users is for admins: a user searches their own texts".into(),
        ));
    }
    state.rate_limiter().admit_search(claims.tenant_id).await?;
    let data = serde_json::to_value(&payload)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("search payload: {e}")))?;
    let answered = crate::semantic::run(&state, &claims, SEARCH, data)
        .await?
        .map_err(|f| f.app_error())?;
    let mut out = answered.data;
    if out.is_null() {
        out = json!({"results": []});
    }
    Ok(ok(out).into_response())
}
