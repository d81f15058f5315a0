//! Liveness and readiness (open, no token).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::error::ApiEnvelope;
use serde_json::json;

use crate::state::AppState;

/// `GET /health`: the process answers.
#[utoipa::path(get, path = "/health", tag = "probes",
    responses((status = 200, description = "the process answers")))]
pub async fn health() -> impl IntoResponse {
    common::error::ok(json!({"status": "ok"}))
}

/// `GET /ready`: Redis and PostgreSQL (both required) answer now.
#[utoipa::path(get, path = "/ready", tag = "probes",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let (redis, postgres) = tokio::join!(state.bus().ping(), common::db::ping(state.db()));
    let ready = redis && postgres;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = ApiEnvelope {
        code: status.as_u16(),
        success: ready,
        message: if ready { "ready" } else { "not ready" }.into(),
        data: json!({"dependencies": {
            "redis": {"required": true, "ok": redis},
            "postgres": {"required": true, "ok": postgres},
        }}),
    };
    (status, Json(body))
}
