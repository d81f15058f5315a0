//! Query strings, path segments and JSON bodies parsed with their refusals as the REST envelope
//! (400 `bad_request`), instead of axum's plain-text rejections.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::Uri;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::AppError;

/// The longest value of any query parameter (a cursor, a search) unless a service says less.
pub const MAX_QUERY_VALUE_CHARS: usize = 2000;

/// The query string as `T`, once every parameter, known to `T` or not, passed the text rule
/// (`common::text`: no NUL or other control character, at most [`MAX_QUERY_VALUE_CHARS`]
/// characters); 400 with the REST envelope, naming the parameter, otherwise.
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        checked_query(&parts.uri, |_| MAX_QUERY_VALUE_CHARS).map(Self)
    }
}

/// The query string of `uri` as `T`, once every parameter passed the text rule with at most
/// `max_chars(name)` characters; 400 with the envelope, naming the parameter, otherwise.
pub fn checked_query<T: DeserializeOwned>(
    uri: &Uri,
    max_chars: impl Fn(&str) -> usize,
) -> Result<T, AppError> {
    let pairs: Vec<(String, String)> = query(uri)?;
    for (name, value) in &pairs {
        if crate::text::has_controls(name) || name.chars().count() > MAX_QUERY_VALUE_CHARS {
            return Err(AppError::BadRequest(
                "a query parameter's name is not a name".into(),
            ));
        }
        crate::text::check(name, value, max_chars(name)).map_err(AppError::BadRequest)?;
    }
    query(uri)
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
