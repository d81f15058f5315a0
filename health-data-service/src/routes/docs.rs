//! The OpenAPI document (`/docs/openapi.json`) and its interactive page (`/docs`, Scalar). The
//! browser loads Scalar's script from a CDN, pinned to one version and checked by its
//! Subresource Integrity hash, so a changed or compromised file does not run.

use axum::Json;
use axum::response::{Html, IntoResponse};
use utoipa::OpenApi;
use utoipa_scalar::Scalar;

use crate::openapi::ApiDoc;

/// The page: Scalar's own template with its script pinned. To move to another version, take
/// `dist/browser/standalone.js` from the npm package `@scalar/api-reference` at that version and
/// put its `sha384` here (`openssl dgst -sha384 -binary standalone.js | openssl base64 -A`).
const PAGE: &str = r#"<!doctype html>
<html>
<head>
    <title>$title</title>
    <meta charset="utf-8"/>
    <meta name="viewport" content="width=device-width, initial-scale=1"/>
</head>
<body>
<script id="api-reference" type="application/json">
    $spec
</script>
<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.76.0/dist/browser/standalone.js"
        integrity="sha384-oH1C0RwqcwbVXkC+r8A+4qRoyEUQdtxAzOwumkxZtQBBcsy61FOoPt7B50OVJYYQ"
        crossorigin="anonymous"></script>
</body>
</html>
"#;

/// `GET /docs/openapi.json`.
pub async fn spec() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// `GET /docs`.
pub async fn page() -> impl IntoResponse {
    Html(Scalar::new(ApiDoc::openapi()).custom_html(PAGE).to_html())
}
