//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::error::ApiEnvelope;
use serde_json::json;

use crate::state::AppState;

/// `GET /health`: the process answers.
pub async fn health() -> impl IntoResponse {
    common::error::ok(json!({"status": "ok"}))
}

/// `GET /ready`: each dependency, required or optional, and whether it answers now.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let redis = state.bus().ping().await;
    let status = if redis {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = ApiEnvelope {
        code: status.as_u16(),
        success: redis,
        message: if redis { "ready" } else { "not ready" }.into(),
        data: json!({"dependencies": {"redis": {"required": true, "ok": redis}}}),
    };
    (status, Json(body))
}
