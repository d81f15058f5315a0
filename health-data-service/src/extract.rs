//! Request extractors: the caller from `Authorization: Bearer <JWT>`, the admin role, and query and
//! path errors answered with the REST envelope.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use common::auth::{AuthError, Claims};
use common::error::AppError;
use uuid::Uuid;

use crate::scope::{Owner, is_admin};
use crate::state::AppState;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Claims);

impl AuthUser {
    /// Whose data the caller reaches: their own.
    pub fn owner(&self) -> Owner {
        Owner::of(&self.0)
    }
}

/// An authenticated caller with `role=admin`; a valid token of another role is 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Claims);

fn unauthorized(e: AuthError) -> AppError {
    AppError::Unauthorized(e.to_string())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized(AuthError::Missing))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthorized(AuthError::Missing))?;
        let claims = state.auth().verify(token.trim()).map_err(unauthorized)?;
        Ok(Self(claims))
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let AuthUser(claims) =
            <AuthUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        if !is_admin(&claims) {
            return Err(AppError::Forbidden(
                "importing the tenant's UFC catalogue needs the admin role".into(),
            ));
        }
        Ok(Self(claims))
    }
}

/// Query-string errors as 400 with the REST envelope.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, AppError> {
    q.map(|Query(t)| t)
        .map_err(|e| AppError::BadRequest(e.body_text()))
}

/// A UUID path segment; 400 when it is not one.
pub fn id(p: Result<Path<Uuid>, PathRejection>, what: &str) -> Result<Uuid, AppError> {
    p.map(|Path(id)| id)
        .map_err(|_| AppError::BadRequest(format!("{what} id is not a UUID")))
}
