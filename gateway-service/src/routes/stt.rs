//! `POST /api/v1/audio/transcriptions`: an uploaded recording stored in the tenant's `uploads`
//! folder and transcribed (`stt.transcription.file`), answered with the transcript. Handlers
//! unpack the request and follow a `crate::transcription::TranscriptionTask`.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::response::{IntoResponse, Response};
use common::error::{AppError, ok};
use common::payloads::stt::TranscribePayload;
use serde_json::json;
use uuid::Uuid;

use crate::extract::AuthUser;
use crate::state::AppState;
use crate::transcription::{self, TranscriptionTask};

/// The text fields of the form.
const FIELDS: [&str; 7] = [
    "language",
    "provider",
    "model",
    "prompt",
    "format",
    "sample_rate",
    "session_id",
];

/// `POST /api/v1/audio/transcriptions` (multipart/form-data: `file` and the optional fields
/// `language`, `provider`, `model`, `prompt`, `format`, `sample_rate`, `session_id`): waits for
/// the transcript (up to `CHAT_TIMEOUT_SECS`) and answers the `transcription` data with
/// `task_id`, `session_id` and the stored file's `key`.
pub async fn transcriptions(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let multipart = multipart.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let (form, upload) = transcription::read_form(&state, multipart, &FIELDS).await?;
    let text = |name: &str| -> Result<Option<String>, AppError> {
        Ok(form.text(name)?.filter(|v| !v.trim().is_empty()))
    };
    let sample_rate = match text("sample_rate")? {
        None => None,
        Some(rate) => Some(rate.trim().parse::<u32>().map_err(|_| {
            AppError::BadRequest("sample_rate must be a whole number of hertz".into())
        })?),
    };
    let session_id = match text("session_id")? {
        None => None,
        Some(id) => Some(
            Uuid::parse_str(id.trim())
                .map_err(|_| AppError::BadRequest("session_id is not a UUID".into()))?,
        ),
    };
    let mut payload = TranscribePayload {
        format: text("format")?,
        sample_rate,
        language: text("language")?,
        provider: text("provider")?,
        model: text("model")?,
        prompt: text("prompt")?,
        ..TranscribePayload::default()
    };
    transcription::check(&claims, &upload, &payload)?;
    let session_id = state.claim_session(&claims, session_id).await?;
    transcription::store(&state, &claims, upload, &mut payload).await?;
    let mut task = TranscriptionTask::start(&state, &claims, session_id, &payload).await?;
    let mut data = task.transcript().await.map_err(|f| f.app_error())?;
    if let Some(fields) = data.as_object_mut() {
        // `is_final` is always true here: one final transcript per request.
        fields.remove("is_final");
    }
    data["task_id"] = json!(task.task_id());
    data["session_id"] = json!(task.session_id());
    data["key"] = json!(payload.key);
    Ok(ok(data).into_response())
}
