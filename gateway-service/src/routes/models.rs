//! `GET /api/v1/models`: the model registry in the REST envelope.

use axum::Json;
use axum::extract::State;
use common::error::ApiEnvelope;
use serde_json::Value;

use crate::catalog;
use crate::extract::{AuthUser, is_admin};
use crate::state::AppState;

/// Names and aliases for every caller; the deployment details for admins.
pub async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Json<ApiEnvelope<Value>> {
    common::error::ok(catalog::registry_view(state.models(), is_admin(&claims)))
}
