//! The OpenAPI document (`/docs/openapi.json`) and its interactive page (`/docs`, Scalar, whose
//! script the browser loads from its CDN when the page is viewed).

use axum::Json;
use axum::response::{Html, IntoResponse};
use utoipa::OpenApi;
use utoipa_scalar::Scalar;

use crate::openapi::ApiDoc;

/// `GET /docs/openapi.json`.
pub async fn spec() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// `GET /docs`.
pub async fn page() -> impl IntoResponse {
    Html(Scalar::new(ApiDoc::openapi()).to_html())
}
