//! Request extractors: the caller's identity from `Authorization: Bearer` (counted against the
//! tenant's rate limit), the admin role, and JSON bodies whose errors use the REST envelope.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use common::auth::{AuthError, Claims, Role};
use common::error::AppError;
use serde::de::DeserializeOwned;

use crate::state::AppState;

/// The authenticated caller. Extracting it counts one request against the tenant's rate limit.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Claims);

/// An authenticated caller with `role=admin`; a valid token of another role is 403 `forbidden`.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Claims);

/// The one role check of the gateway: whether these claims may use admin-only endpoints and views.
pub fn is_admin(claims: &Claims) -> bool {
    claims.role == Role::Admin
}

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
        let claims = state.auth().verify(token.trim()).map_err(auth_error)?;
        state.rate_limiter().admit(claims.tenant_id).await?;
        Ok(AuthUser(claims))
    }
}

/// `Option<AuthUser>`: `None` without an `Authorization` header; a header with a bad token is
/// still refused (401), so a client never silently falls back to anonymous.
impl OptionalFromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, AppError> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Ok(None);
        }
        <Self as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let AuthUser(claims) =
            <AuthUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        if !is_admin(&claims) {
            return Err(AppError::Forbidden(
                "this endpoint needs the admin role".into(),
            ));
        }
        Ok(AdminUser(claims))
    }
}

/// The client's address (see `common::http::client_addr`); `None` when unknown.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let trust = state.settings().auth.trust_forwarded_for;
        Ok(Self(common::http::client_addr(parts, trust)))
    }
}

/// Parses a JSON body, answering 400 with the envelope when it is not valid.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
}
