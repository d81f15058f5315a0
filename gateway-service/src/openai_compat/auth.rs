//! The caller of a `/v1` endpoint, from `Authorization: Bearer <JWT>` (the SDKs' `api_key`), refused
//! in OpenAI's error format; each call counts against the tenant's rate limit.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use common::auth::{AuthError, Claims};

use super::error::OpenAiError;
use crate::state::AppState;

/// The authenticated caller of an OpenAI-compatible endpoint (a 429 `rate_limit_error` with
/// `Retry-After` when the tenant is over its limit).
#[derive(Debug, Clone)]
pub struct OpenAiUser(pub Claims);

/// The token of an `Authorization: Bearer` header.
fn bearer(parts: &Parts) -> Result<&str, AuthError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for OpenAiUser {
    type Rejection = OpenAiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OpenAiError> {
        let claims = bearer(parts)
            .and_then(|token| state.auth().verify(token))
            .map_err(|e| OpenAiError::unauthorized(&e))?;
        state.rate_limiter().admit(claims.tenant_id).await?;
        Ok(OpenAiUser(claims))
    }
}
