//! `/v1/files` and `/v1/batches`: OpenAI's Files and Batch APIs over the gateway's batch jobs,
//! answering errors in OpenAI's format. Handlers unpack the request and call
//! `crate::openai_compat::{files, batches}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Multipart, Path, State};
use axum::http::Uri;
use axum::response::Response;
use common::http::checked_query;
use common::http::extract::MAX_QUERY_VALUE_CHARS;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::openai_compat::batches::{self, CreateBatchRequest};
use crate::openai_compat::files;
use crate::openai_compat::{OpenAiError, OpenAiUser};
use crate::state::AppState;

/// The query string as `T`, refused in OpenAI's format.
fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, OpenAiError> {
    checked_query(uri, |_| MAX_QUERY_VALUE_CHARS).map_err(OpenAiError::from)
}

/// A path id; one that does not even decode names nothing of the caller's (404).
fn id(path: Result<Path<String>, PathRejection>, what: &str) -> Result<String, OpenAiError> {
    path.map(|Path(id)| id).map_err(|_| {
        OpenAiError::from(common::error::AppError::NotFound(format!(
            "No such {what} object."
        )))
    })
}

/// `POST /v1/files` (multipart: `file`, `purpose=batch`).
pub async fn create_file(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, OpenAiError> {
    let multipart = multipart
        .map_err(|e| OpenAiError::new(e.status(), "invalid_request_error", e.body_text()))?;
    let upload = files::read_upload(&state, multipart).await?;
    files::create(&state, &claims, upload).await.map(Json)
}

/// `GET /v1/files?after&limit&order&purpose`.
pub async fn list_files(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    uri: Uri,
) -> Result<Json<Value>, OpenAiError> {
    let params: files::ListParams = query(&uri)?;
    files::list(&state, &claims, &params).await.map(Json)
}

/// `GET /v1/files/{id}`.
pub async fn retrieve_file(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, OpenAiError> {
    let id = id(path, "File")?;
    let file = crate::batch::file(&state, &claims, &id).await?;
    Ok(Json(file.to_openai()))
}

/// `DELETE /v1/files/{id}`.
pub async fn delete_file(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, OpenAiError> {
    let id = id(path, "File")?;
    files::delete(&state, &claims, &id).await.map(Json)
}

/// `GET /v1/files/{id}/content`.
pub async fn file_content(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, OpenAiError> {
    let id = id(path, "File")?;
    files::content(&state, &claims, &id).await
}

/// `POST /v1/batches`.
pub async fn create_batch(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, OpenAiError> {
    let body =
        body.map_err(|e| OpenAiError::new(e.status(), "invalid_request_error", e.body_text()))?;
    let request = CreateBatchRequest::parse(&body)?;
    batches::create(&state, &claims, request).await.map(Json)
}

/// `GET /v1/batches?after&limit`.
pub async fn list_batches(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    uri: Uri,
) -> Result<Json<Value>, OpenAiError> {
    let params: batches::ListParams = query(&uri)?;
    batches::list(&state, &claims, &params).await.map(Json)
}

/// `GET /v1/batches/{id}`.
pub async fn retrieve_batch(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, OpenAiError> {
    let id = id(path, "Batch")?;
    let job = crate::batch::job(&state, &claims, &id).await?;
    Ok(Json(job.to_openai()))
}

/// `POST /v1/batches/{id}/cancel`: the batch, `cancelling`; 409 when it has ended.
pub async fn cancel_batch(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, OpenAiError> {
    let id = id(path, "Batch")?;
    let job = crate::batch::cancel(&state, &claims, &id).await?;
    Ok(Json(job.to_openai()))
}
