//! Request extractors: the caller's identity from `Authorization: Bearer`, and JSON bodies whose
//! errors use the REST envelope.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use common::auth::{AuthError, Claims};
use common::error::AppError;
use serde::de::DeserializeOwned;

use crate::state::AppState;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Claims);

/// Maps a token failure to the client-facing error.
pub fn auth_error(e: AuthError) -> AppError {
    AppError::Unauthorized(e.to_string())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| auth_error(AuthError::Missing))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| auth_error(AuthError::Missing))?;
        state
            .auth()
            .verify(token.trim())
            .map(AuthUser)
            .map_err(auth_error)
    }
}

/// Parses a JSON body, answering 400 with the envelope when it is not valid.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
}
