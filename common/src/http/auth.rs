//! The caller of a REST request, from `Authorization: Bearer <JWT>`, and the admin role; every
//! refusal is an [`AppError`] (401 `unauthorized`, 403 `forbidden`) answered with the envelope.
//! Each service wraps these in its own extractors (the gateway also counts the tenant's rate
//! limit there).

use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::auth::{AuthError, Claims, JwtAuth, Role};
use crate::error::AppError;

/// A token failure as the client sees it: 401 with the failure's sentence.
pub fn auth_error(e: AuthError) -> AppError {
    AppError::Unauthorized(e.to_string())
}

/// The verified claims of the request's `Authorization: Bearer <JWT>` header (`bearer` in any
/// case of its first letter, as before); 401 when the header is missing, not a bearer token, or
/// the token does not verify.
pub fn bearer_claims(parts: &Parts, auth: &JwtAuth) -> Result<Claims, AppError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| auth_error(AuthError::Missing))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| auth_error(AuthError::Missing))?;
    auth.verify(token.trim()).map_err(auth_error)
}

/// The one role check: whether these claims may use admin-only endpoints and views.
pub fn is_admin(claims: &Claims) -> bool {
    claims.role == Role::Admin
}

/// The claims when they carry the admin role; otherwise 403 with `refusal` as the message.
pub fn admin_only(claims: Claims, refusal: &str) -> Result<Claims, AppError> {
    if is_admin(&claims) {
        Ok(claims)
    } else {
        Err(AppError::Forbidden(refusal.to_owned()))
    }
}
