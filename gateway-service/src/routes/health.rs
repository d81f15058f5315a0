//! Liveness and readiness (`common::http::probe`'s answers).

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use common::error::ApiEnvelope;
use common::http::{Dependency, readiness};

use crate::state::AppState;

/// `GET /health`: the process answers.
pub async fn health() -> Json<ApiEnvelope<serde_json::Value>> {
    common::http::health()
}

/// `GET /ready`: Redis and PostgreSQL (both required) answer now.
pub async fn ready(State(state): State<AppState>) -> Response {
    let (redis, postgres) = tokio::join!(state.bus().ping(), common::db::ping(state.db()));
    readiness(&[
        Dependency::required("redis", redis),
        Dependency::required("postgres", postgres),
    ])
}
