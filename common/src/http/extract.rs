//! Query strings, path segments and JSON bodies parsed with their refusals as the REST envelope
//! (400 `bad_request`), instead of axum's plain-text rejections.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::Uri;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::AppError;

/// The query string as `T`; 400 with axum's explanation when it does not parse.
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        query(&parts.uri).map(Self)
    }
}

/// The query string of `uri` as `T`; 400 with axum's explanation when it does not parse.
pub fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, AppError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(t)| t)
        .map_err(|e| AppError::BadRequest(e.body_text()))
}

/// A UUID path segment naming a `what` ("session", "panel"); 400 `<what> id is not a UUID`.
pub fn path_id(p: Result<Path<Uuid>, PathRejection>, what: &str) -> Result<Uuid, AppError> {
    p.map(|Path(id)| id)
        .map_err(|_| AppError::BadRequest(format!("{what} id is not a UUID")))
}

/// A JSON body as `T`; 400 `invalid JSON body: ...` when it is not valid.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
}
