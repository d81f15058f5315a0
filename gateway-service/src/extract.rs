//! Request extractors: the caller's identity from `Authorization: Bearer` (counted against the
//! tenant's rate limit), the admin role, the client's address, and a task's body split into its
//! payload and session. The token, role and body parsing are `common::http`'s, shared with the
//! other services.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use common::auth::Claims;
use common::error::AppError;
use common::http::{admin_only, bearer_claims};
use serde_json::Value;
use uuid::Uuid;

use crate::state::AppState;

pub use common::http::{auth_error, is_admin, json_body};

/// The authenticated caller. Extracting it counts one request against the tenant's rate limit.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Claims);

/// An authenticated caller with `role=admin`; a valid token of another role is 403 `forbidden`.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Claims);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let claims = bearer_claims(parts, state.auth())?;
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
        admin_only(claims, "this endpoint needs the admin role").map(AdminUser)
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

/// A task's REST body (`POST /tts/*`, `/image/generate`, `/video/*`): a JSON object that is the
/// action's payload plus an optional `session_id` (the session to run in, claimed by the caller;
/// `null` or absent for a new one). Answers the session and the payload without it.
pub fn session_body(body: &[u8]) -> Result<(Option<Uuid>, Value), AppError> {
    let mut body: Value = json_body(body)?;
    let object = body
        .as_object_mut()
        .ok_or_else(|| AppError::BadRequest("the body must be a JSON object".into()))?;
    let session_id = match object.remove("session_id") {
        None | Some(Value::Null) => None,
        Some(id) => Some(
            serde_json::from_value::<Uuid>(id)
                .map_err(|_| AppError::BadRequest("session_id is not a UUID".into()))?,
        ),
    };
    Ok((session_id, body))
}
