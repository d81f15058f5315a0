//! Request extractors: the caller from `Authorization: Bearer <JWT>`, the admin role, query
//! parameters checked by the text rule (`crate::text`), and query and path errors answered with
//! the REST envelope.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use common::auth::{AuthError, Claims};
use common::error::AppError;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::scope::{Owner, is_admin};
use crate::state::AppState;
use crate::text;

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

/// The query string as `T`, once every parameter, known to `T` or not, passed the text rule: no
/// NUL or other control character, at most [`text::MAX_PARAM_CHARS`] characters
/// ([`text::MAX_CURSOR_CHARS`] for `cursor`). 400 with the REST envelope, naming the parameter,
/// otherwise. Every handler reads its query through this, so no value skips the rule.
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        let bad = |e: axum::extract::rejection::QueryRejection| AppError::BadRequest(e.body_text());
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(bad)?;
        for (name, value) in &pairs {
            if text::has_controls(name) || name.chars().count() > text::MAX_PARAM_CHARS {
                return Err(AppError::BadRequest(
                    "a query parameter's name is not a name".into(),
                ));
            }
            let max = if name == "cursor" {
                text::MAX_CURSOR_CHARS
            } else {
                text::MAX_PARAM_CHARS
            };
            text::check(name, value, max).map_err(AppError::BadRequest)?;
        }
        let Query(params) = Query::<T>::try_from_uri(&parts.uri).map_err(bad)?;
        Ok(Self(params))
    }
}

/// A UUID path segment; 400 when it is not one.
pub fn id(p: Result<Path<Uuid>, PathRejection>, what: &str) -> Result<Uuid, AppError> {
    p.map(|Path(id)| id)
        .map_err(|_| AppError::BadRequest(format!("{what} id is not a UUID")))
}
