//! `POST /tts/generate` (speak, store, answer with the clip's URL) and `POST /tts/stream` (the
//! audio bytes themselves, sent as they are spoken). Handlers unpack the request and follow a
//! `crate::speech::SpeechTask`.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use common::error::{AppError, ok};
use serde_json::json;

use crate::extract::AuthUser;
use crate::speech::{SpeechInput, SpeechTask, content_type, decode_piece};
use crate::state::AppState;

/// The task's id on a streamed answer, whose body has no room for it.
const TASK_ID: HeaderName = HeaderName::from_static("x-task-id");
/// The session's id on a streamed answer.
const SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");

/// Checks the body, claims the session and publishes the speech task.
async fn start(
    state: &AppState,
    claims: &common::auth::Claims,
    body: &[u8],
) -> Result<SpeechTask, AppError> {
    let input = SpeechInput::parse(body)?;
    let session_id = state.claim_session(claims, input.session_id).await?;
    SpeechTask::start(state, claims, session_id, &input.payload).await
}

/// `POST /tts/generate`: waits for the clip (up to `CHAT_TIMEOUT_SECS`) and answers the
/// `tts_completed` data with `task_id` and `session_id`.
pub async fn generate(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    body: Bytes,
) -> Result<Response, AppError> {
    let mut task = start(&state, &claims, &body).await?;
    let mut clip = task.clip().await.map_err(|f| f.app_error())?;
    clip["task_id"] = json!(task.task_id());
    clip["session_id"] = json!(task.session_id());
    Ok(ok(clip).into_response())
}

/// `POST /tts/stream`: the audio bytes, chunked, from the first piece on. A failure before it is
/// an envelope with its status; after it, the connection is cut.
pub async fn stream(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    body: Bytes,
) -> Result<Response, AppError> {
    let mut task = start(&state, &claims, &body).await?;
    let first = task.first_audio().await.map_err(|f| f.app_error())?;
    let first = decode_piece(&first).map_err(|f| f.app_error())?;
    let mime = content_type(task.format().unwrap_or_default());
    let ids = [
        (TASK_ID, task.task_id().to_string()),
        (SESSION_ID, task.session_id().to_string()),
    ];
    let mut response = Body::from_stream(task.into_bytes(first)).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(mime));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in ids {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    Ok(response)
}
