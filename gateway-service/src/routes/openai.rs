//! `/v1`: OpenAI's Chat Completions, Speech, Transcriptions, Embeddings, Images and Models
//! endpoints, answering errors in OpenAI's format.

use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;

use crate::catalog;
use crate::openai_compat::embeddings::{self, EmbeddingsRequest};
use crate::openai_compat::images::{self, ImagesRequest};
use crate::openai_compat::{CompletionRequest, OpenAiError, OpenAiUser, SpeechRequest};
use crate::openai_compat::{TranscriptionRequest, completion, speech, transcription};
use crate::state::AppState;

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let body =
        body.map_err(|e| OpenAiError::new(e.status(), "invalid_request_error", e.body_text()))?;
    let request = CompletionRequest::parse(&body)?;
    completion::create(&state, &claims, &request).await
}

/// `POST /v1/audio/speech`.
pub async fn audio_speech(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let body =
        body.map_err(|e| OpenAiError::new(e.status(), "invalid_request_error", e.body_text()))?;
    let request = SpeechRequest::parse(&body)?;
    speech::create(&state, &claims, &request).await
}

/// `POST /v1/audio/transcriptions` (multipart, as the SDK sends it).
pub async fn audio_transcriptions(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, OpenAiError> {
    let multipart = multipart
        .map_err(|e| OpenAiError::new(e.status(), "invalid_request_error", e.body_text()))?;
    let (form, upload) = crate::transcription::read_form(&state, multipart, &transcription::FIELDS)
        .await
        .map_err(|e| OpenAiError::from(e).param("file"))?;
    let request = TranscriptionRequest::parse(&form)?;
    transcription::create(&state, &claims, &request, upload).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let body =
        body.map_err(|e| OpenAiError::new(e.status(), "invalid_request_error", e.body_text()))?;
    let request = EmbeddingsRequest::parse(&body)?;
    embeddings::create(&state, &claims, &request).await
}

/// `POST /v1/images/generations`.
pub async fn images_generations(
    State(state): State<AppState>,
    OpenAiUser(claims): OpenAiUser,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let body =
        body.map_err(|e| OpenAiError::new(e.status(), "invalid_request_error", e.body_text()))?;
    let request = ImagesRequest::parse(&body)?;
    let base = crate::links::base_url(&state, &headers);
    images::create(&state, &claims, &request, &base).await
}

/// `GET /v1/models`.
pub async fn list_models(State(state): State<AppState>, _: OpenAiUser) -> Json<Value> {
    Json(catalog::openai_list(state.models()))
}

/// `GET /v1/models/{model}`.
pub async fn retrieve_model(
    State(state): State<AppState>,
    _: OpenAiUser,
    Path(model): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    catalog::openai_retrieve(state.models(), &model)
        .map(Json)
        .map_err(|e| OpenAiError::model_not_found(&e))
}

/// Any other `/v1` path.
pub async fn unknown_url(method: Method, uri: Uri) -> OpenAiError {
    OpenAiError::invalid_request(
        format!("Unknown request URL: {method} {}.", uri.path()),
        None,
    )
    .code("unknown_url")
    .with_status(StatusCode::NOT_FOUND)
}

/// A known `/v1` path with the wrong method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> OpenAiError {
    OpenAiError::invalid_request(
        format!("Method {method} is not allowed on {}.", uri.path()),
        None,
    )
    .code("method_not_allowed")
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
}
