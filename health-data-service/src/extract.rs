//! Request extractors: the caller from `Authorization: Bearer <JWT>` and the admin role
//! (`common::http::auth`), and query parameters checked by the text rule (`crate::text`), all
//! refused with the REST envelope.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use common::auth::Claims;
use common::error::AppError;
use common::http::{admin_only, bearer_claims, checked_query};
use serde::de::DeserializeOwned;

use crate::scope::Owner;
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

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        bearer_claims(parts, state.auth()).map(Self)
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let AuthUser(claims) =
            <AuthUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        let refusal = "importing the tenant's UFC catalogue needs the admin role";
        admin_only(claims, refusal).map(Self)
    }
}

/// The query string as `T` (`common::http::checked_query`), once every parameter, known to `T` or not,
/// passed the text rule: no NUL or other control character, at most [`text::MAX_PARAM_CHARS`]
/// characters ([`text::MAX_CURSOR_CHARS`] for `cursor`). 400 with the REST envelope, naming the
/// parameter, otherwise. Every handler reads its query through this, so no value skips the rule.
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        let max = |name: &str| match name {
            "cursor" => text::MAX_CURSOR_CHARS,
            _ => text::MAX_PARAM_CHARS,
        };
        checked_query(&parts.uri, max).map(Self)
    }
}
