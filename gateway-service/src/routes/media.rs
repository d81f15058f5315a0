//! Images and videos: `POST /image/generate` (waits for the images), `POST /video/generate` and
//! `POST /video/extend` (202 with the job), `GET /video/{task_id}` (its state),
//! `GET /video/{task_id}/events` (SSE) and `POST /video/{task_id}/cancel`. Handlers unpack the
//! request and call `crate::media` and `crate::jobs`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::auth::Claims;
use common::error::{ApiEnvelope, AppError, ok};
use common::payloads::media::{ExtendPayload, ImagePayload, VideoPayload};
use serde_json::json;
use uuid::Uuid;

use crate::extract::AuthUser;
use crate::jobs;
use crate::links::base_url;
use crate::media::{self, MediaInput, VideoAction};
use crate::state::AppState;
use crate::task::RestError;

/// What the job routes call a task they do not find.
const WHAT: &str = "video task";

/// `POST /image/generate`: body = `media.image.generate`'s data (`prompt`, `model`, `size`, `n`,
/// ...) and an optional `session_id`. Waits (up to `CHAT_TIMEOUT_SECS`) and answers the
/// `text_completed` data (`images`, `model`, `provider`, `placeholder`, `revised_prompt`) with
/// `task_id`, `session_id` and `usage`. A worker's `error` answers its status (`task_error`) with
/// `data: {code, stage, retryable}`.
pub async fn generate_image(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    body: Bytes,
) -> Result<Response, RestError> {
    let input = MediaInput::<ImagePayload>::parse(&body)?;
    let session_id = state.claim_session(&claims, input.session_id).await?;
    let answered = media::generate_image(&state, &claims, session_id, &input.payload).await??;
    let mut data = answered.data;
    if !data.is_object() {
        data = json!({});
    }
    data["task_id"] = json!(answered.task_id);
    data["session_id"] = json!(answered.session_id);
    data["usage"] = answered.usage;
    Ok(ok(data).into_response())
}

/// Claims the session and starts the video job: 202 with the envelope.
async fn start(
    state: &AppState,
    claims: &Claims,
    headers: &HeaderMap,
    session_id: Option<Uuid>,
    video: VideoAction,
) -> Result<Response, AppError> {
    let session_id = state.claim_session(claims, session_id).await?;
    let base = base_url(state, headers);
    let job = media::start_video(state, claims, session_id, &video, &base).await?;
    let status = StatusCode::ACCEPTED;
    let body = ApiEnvelope {
        code: status.as_u16(),
        success: true,
        message: "video generation started".into(),
        data: job,
    };
    Ok((status, Json(body)).into_response())
}

/// `POST /video/generate`: body = `media.video.generate`'s data (`prompt`, `model`,
/// `duration_secs`, `aspect_ratio`, `resolution`, `image_url`, ...) and an optional `session_id`;
/// 202 with `{task_id, session_id, status, status_url, events_url, websocket_url}`.
pub async fn generate_video(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let input = MediaInput::<VideoPayload>::parse(&body)?;
    let video = VideoAction::Generate(input.payload);
    start(&state, &claims, &headers, input.session_id, video).await
}

/// `POST /video/extend`: body = `media.video.extend`'s data (`video_id`, `prompt`, `model`,
/// `negative_prompt`) and an optional `session_id`; 202 as `POST /video/generate`.
pub async fn extend_video(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let input = MediaInput::<ExtendPayload>::parse(&body)?;
    let video = VideoAction::Extend(input.payload);
    start(&state, &claims, &headers, input.session_id, video).await
}

/// The task id of a path; a path that is no UUID names no task of the caller (404).
fn task_id(path: Result<Path<Uuid>, PathRejection>) -> Result<Uuid, AppError> {
    path.map(|Path(id)| id)
        .map_err(|_| AppError::NotFound(format!("no such {WHAT}")))
}

/// `GET /video/{task_id}`: `{task_id, session_id, status, progress, result, error}`, where
/// `status` is `processing`, `completed`, `error` or `cancelled`, `progress` the last `progress`
/// event's data, `result` the `text_completed` data (`video`, `model`, `provider`,
/// `provider_job_id`), `error` the `error` event's. 404 for an unknown task or another user's.
pub async fn video_status(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, AppError> {
    let task_id = task_id(path)?;
    let session_id = jobs::session(&state, &claims, task_id, WHAT).await?;
    let job = jobs::state_of(&state, session_id, task_id).await?;
    Ok(ok(json!({
        "task_id": task_id,
        "session_id": job.session_id,
        "status": job.status,
        "progress": job.progress,
        "result": job.result,
        "error": job.error,
    }))
    .into_response())
}

/// `GET /video/{task_id}/events` (`Last-Event-ID` to resume): the task's events from its start
/// as Server-Sent Events, ending after its `complete`.
pub async fn video_events(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let task_id = task_id(path)?;
    let after = super::sse::last_event_id(&headers)?.unwrap_or(crate::hub::StreamId::ZERO);
    let session_id = jobs::session(&state, &claims, task_id, WHAT).await?;
    Ok(super::sse::response(jobs::follow(
        &state, session_id, task_id, after,
    )))
}

/// `POST /video/{task_id}/cancel`: asks the worker to stop the job (and the provider's job, where
/// the provider can); 202 `{task_id, session_id, status: "cancelling"}`. The job then ends with
/// `cancelled`. 409 when it is already over, 404 for an unknown task or another user's.
pub async fn cancel_video(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, AppError> {
    let task_id = task_id(path)?;
    let session_id = jobs::session(&state, &claims, task_id, WHAT).await?;
    let job = jobs::state_of(&state, session_id, task_id).await?;
    if job.status.is_over() {
        return Err(AppError::Conflict(format!(
            "the video task is already over ({})",
            job.status.as_str()
        )));
    }
    state.cancel_task(task_id).await?;
    let status = StatusCode::ACCEPTED;
    let body = ApiEnvelope {
        code: status.as_u16(),
        success: true,
        message: "cancel requested".into(),
        data: json!({"task_id": task_id, "session_id": session_id, "status": "cancelling"}),
    };
    Ok((status, Json(body)).into_response())
}
