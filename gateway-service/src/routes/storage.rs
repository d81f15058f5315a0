//! `POST /api/v1/storage/upload` and `GET /api/v1/storage/files/{*key}`: uploads into the
//! tenant's storage, and the signed downloads of the local backend. Handlers unpack the request
//! and call `crate::files`.

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::PathRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use common::error::{AppError, ok};
use common::http::Params;
use serde::Deserialize;

use crate::extract::AuthUser;
use crate::files;
use crate::state::AppState;

/// `GET /api/v1/storage/files/{*key}` parameters: the signature is the credential.
#[derive(Debug, Deserialize)]
pub struct FileParams {
    expires: Option<u64>,
    sig: Option<String>,
}

/// `POST /api/v1/storage/upload` (multipart/form-data: `file`, `userInput`, `userSettings`):
/// stores the file in the caller's tenant and answers its key and a URL.
pub async fn upload(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let multipart = multipart.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let form = files::read_form(multipart, &state.settings().storage).await?;
    let uploaded = files::store(state.storage(), claims.tenant_id, form).await?;
    Ok(ok(uploaded).into_response())
}

/// `GET /api/v1/storage/files/{*key}?expires=&sig=`: the object a signed URL names, while the
/// signature holds (403 otherwise; 404 for a key that is not there). No token: browsers open
/// these URLs directly, in `<audio src>` and links.
pub async fn file(
    State(state): State<AppState>,
    key: Result<Path<String>, PathRejection>,
    Params(params): Params<FileParams>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Path(key) = key.map_err(|_| AppError::NotFound("file not found".into()))?;
    let (Some(expires), Some(sig)) = (params.expires, params.sig) else {
        return Err(AppError::Forbidden("this link is not signed".into()));
    };
    let storage = state.storage();
    let tenant = storage.check_signed_url(&key, expires, &sig)?;
    let object = storage.get(tenant, &key).await?;
    let filename = key.rsplit('/').next().unwrap_or_default();
    Ok(files::object_response(object, filename, expires, &headers))
}
