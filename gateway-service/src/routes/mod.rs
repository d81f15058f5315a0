//! The gateway's routes: paths mapped to handlers.

mod chat;
mod health;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let limit = state.settings().max_body_bytes;
    Router::new()
        .route("/chat/ws", get(ws::upgrade))
        .route("/chat", post(chat::chat))
        .route("/chat/stream", post(chat::stream))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .layer(DefaultBodyLimit::max(limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
