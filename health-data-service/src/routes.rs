//! The service's routes: paths mapped to handlers. Every `/api/v1/health/...` path needs a
//! bearer token; `/health`, `/ready` and `/docs` are open.

pub mod blood;
pub mod docs;
pub mod garmin;
pub mod probes;
pub mod summary;
pub mod ufc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use common::error::ApiEnvelope;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings().max_body_bytes;
    let import_limit = state.settings().max_import_bytes;
    let api = Router::new()
        .route("/summary", get(summary::summary))
        .route("/garmin/status", get(garmin::status))
        .route("/garmin/daily-summaries", get(garmin::daily))
        .route("/garmin/sleep", get(garmin::sleep))
        .route("/garmin/activities", get(garmin::activities))
        .route("/garmin/activities/{id}", get(garmin::activity))
        .route("/garmin/hrv", get(garmin::hrv))
        .route("/garmin/body-composition", get(garmin::body))
        .route("/garmin/analysis/sleep-vs-load", get(garmin::sleep_vs_load))
        .route("/garmin/analysis/weekly", get(garmin::weekly))
        .route(
            "/garmin/imports",
            post(garmin::import)
                .layer(DefaultBodyLimit::max(import_limit))
                .get(garmin::imports),
        )
        .route("/garmin/imports/{id}", get(garmin::import_job))
        .route("/blood/imports", post(blood::import))
        .route("/blood/panels", get(blood::panels))
        .route("/blood/panels/{id}", get(blood::panel))
        .route("/blood/markers", get(blood::markers))
        .route("/blood/markers/names", get(blood::marker_names))
        .route("/blood/markers/trend", get(blood::trend))
        .route("/ufc/fighters", get(ufc::fighters))
        .route("/ufc/fighters/import", post(ufc::import_fighters))
        .route("/ufc/fighters/{id}", get(ufc::fighter))
        .route(
            "/ufc/fighters/{id}/follow",
            put(ufc::follow).delete(ufc::unfollow),
        )
        .route("/ufc/fights/import", post(ufc::import_fights))
        .route("/ufc/events", get(ufc::events))
        .route("/ufc/events/{id}", get(ufc::event))
        .route("/ufc/subscriptions", get(ufc::subscriptions))
        .fallback(not_found);
    Router::new()
        .nest("/api/v1/health", api)
        .route("/health", get(probes::health))
        .route("/ready", get(probes::ready))
        .route("/docs", get(docs::page))
        .route("/docs/openapi.json", get(docs::spec))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// Unknown paths answer with the envelope too.
async fn not_found() -> Response {
    let status = StatusCode::NOT_FOUND;
    let body = ApiEnvelope {
        code: status.as_u16(),
        success: false,
        message: "no such endpoint".into(),
        data: serde_json::Value::Null,
    };
    (status, axum::Json(body)).into_response()
}

/// The span of a request: method and path only (never the query string).
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
}
