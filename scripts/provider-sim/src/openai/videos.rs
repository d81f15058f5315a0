//! OpenAI Sora video generation, `/v1/videos`: an asynchronous job submitted, polled, downloaded
//! and deleted.
//!
//! Checked against openai-python's `resources/videos.py` and `types/video*.py` (the `Video`
//! object, `VideoSeconds` `"4" | "8" | "12"`, `VideoSize`, `VideoDeleteResponse`, the
//! `openai-poll-after-ms` header its `poll` helper reads) and OpenAI's video generation guide
//! (`sora-2` makes `720x1280` and `1280x720` only; `sora-2-pro` also `1024x1792` and
//! `1792x1024`; failed moderation is `error.code: "moderation_blocked"`).
//!
//! - `POST /v1/videos`: multipart form (what the SDKs send) or JSON: `prompt` (required),
//!   `model` (`sora-2` default, `sora-2-pro`, dated snapshots), `seconds` (`"4"` default, `"8"`,
//!   `"12"`), `size` (`720x1280` default), `input_reference` (an image file part, or in JSON
//!   `{"image_url"}` / `{"file_id"}`). Answers a `video` object, `status: "queued"`.
//! - `GET /v1/videos/{video_id}`: the object; `in_progress` with rising `progress` while the job
//!   runs, then `completed` (`progress: 100`, `completed_at`, `expires_at` an hour later) or
//!   `failed` with `error: {code, message}`.
//! - `GET /v1/videos/{video_id}/content[?variant=video]`: the MP4 once completed.
//! - `DELETE /v1/videos/{video_id}`: `{"id", "object": "video.deleted", "deleted": true}`; the
//!   job is gone (its id answers 404) and the delete is in the request log.
//!
//! Every answer about a job carries `openai-poll-after-ms` ([`SimConfig::poll_after`]).
//!
//! [`SimConfig::poll_after`]: crate::SimConfig::poll_after

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    Invalid, bearer_key, error_with_param, failure_response, invalid_request, invalid_value,
    missing, no_api_key,
};
use crate::config::Behaviour;
use crate::content::new_id;
use crate::engine;
use crate::jobs::{Job, Phase};
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;
use crate::video;

/// Models the API takes.
const MODELS: [&str; 5] = [
    "sora-2",
    "sora-2-pro",
    "sora-2-2025-10-06",
    "sora-2-pro-2025-10-06",
    "sora-2-2025-12-08",
];
/// Clip lengths, as the API spells them.
const SECONDS: [&str; 3] = ["4", "8", "12"];
/// Sizes every model makes.
const SIZES: [&str; 2] = ["720x1280", "1280x720"];
/// Sizes `sora-2-pro` makes.
const PRO_SIZES: [&str; 4] = ["720x1280", "1280x720", "1024x1792", "1792x1024"];
/// Download variants; the simulator makes only the MP4.
const VARIANTS: [&str; 3] = ["video", "thumbnail", "spritesheet"];
/// How long a finished video stays downloadable.
const EXPIRY: Duration = Duration::from_secs(3600);
/// The header the SDKs' poll helpers wait by.
const POLL_AFTER: HeaderName = HeaderName::from_static("openai-poll-after-ms");

/// `POST /v1/videos`.
pub(crate) async fn create_video(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let uri = request.uri().clone();
    let Some(authorization) = bearer_key(request.headers()) else {
        return no_api_key();
    };
    let form = match VideoForm::read(request).await {
        Ok(form) => form,
        Err(invalid) => return invalid.into_response(),
    };
    let params = match Submission::parse(&form) {
        Ok(params) => params,
        Err(invalid) => return invalid.into_response(),
    };
    let (behaviour, mut guard) = shared.begin(Incoming::new(
        WireFormat::Sora,
        &uri,
        Some(authorization),
        form.record,
    ));
    tracing::debug!(?behaviour, model = params.model, "sora video");
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, &params.model);
    }
    let job = Job::new(
        new_id("video_"),
        WireFormat::Sora,
        &params.model,
        &params.prompt,
        behaviour,
        json!({ "seconds": params.seconds, "size": params.size }),
    );
    let response = video_response(&job, Phase::Running { progress: 0 }, &shared);
    shared.jobs().insert(job);
    guard.finish();
    response
}

/// `GET /v1/videos/{video_id}`.
pub(crate) async fn retrieve_video(
    State(shared): State<Arc<Shared>>,
    Path(video_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let jobs = shared.jobs();
    let known = jobs.get(&video_id).filter(|j| j.deleted_at.is_none());
    let mut guard = shared.follow_up(
        Incoming::new(WireFormat::SoraPoll, &uri, Some(authorization), Value::Null),
        known.map_or(Behaviour::Normal, |j| j.behaviour),
    );
    guard.finish();
    match jobs.poll(&video_id, shared.config().job_polls) {
        Some((job, phase)) => video_response(&job, phase, &shared),
        None => not_found(&video_id),
    }
}

/// `GET /v1/videos/{video_id}/content`.
pub(crate) async fn video_content(
    State(shared): State<Arc<Shared>>,
    Path(video_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    match query.get("variant").map(String::as_str) {
        None | Some("video") => {}
        Some(variant @ ("thumbnail" | "spritesheet")) => {
            return error_with_param(
                StatusCode::BAD_REQUEST,
                format!("The simulator makes no '{variant}' variant, only 'video'."),
                "invalid_request_error",
                Some("variant"),
                Some("unsupported_in_simulator"),
            );
        }
        Some(other) => return invalid_value("variant", other, &VARIANTS).into_response(),
    }
    let Some(job) = shared
        .jobs()
        .get(&video_id)
        .filter(|j| j.deleted_at.is_none())
    else {
        return not_found(&video_id);
    };
    let mut guard = shared.follow_up(
        Incoming::new(
            WireFormat::SoraContent,
            &uri,
            Some(authorization),
            Value::Null,
        ),
        job.behaviour.clone(),
    );
    // Only a poll moves a job on; the download sees the phase the last poll found.
    if job.finished.is_none() || job.phase(shared.config().job_polls) != Phase::Succeeded {
        guard.finish();
        let message = match job.finished {
            Some(_) => format!("Video {video_id} failed; it has no content to download."),
            None => format!(
                "Video {video_id} is not ready yet; wait until GET /v1/videos/{video_id} says 'completed'."
            ),
        };
        return invalid_request(message, None);
    }
    video::download(
        video::mp4(shared.config().video_bytes),
        &job.behaviour,
        guard,
    )
}

/// `DELETE /v1/videos/{video_id}`.
pub(crate) async fn delete_video(
    State(shared): State<Arc<Shared>>,
    Path(video_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let jobs = shared.jobs();
    let behaviour = jobs
        .get(&video_id)
        .filter(|j| j.deleted_at.is_none())
        .map_or(Behaviour::Normal, |j| j.behaviour);
    let mut guard = shared.follow_up(
        Incoming::new(
            WireFormat::SoraDelete,
            &uri,
            Some(authorization),
            Value::Null,
        ),
        behaviour,
    );
    guard.finish();
    match jobs.delete(&video_id) {
        Some(job) => with_poll_after(
            Json(json!({ "id": job.id, "object": "video.deleted", "deleted": true }))
                .into_response(),
            &shared,
        ),
        None => not_found(&video_id),
    }
}

/// The API's 404 for a video id it does not know (or no longer has).
fn not_found(video_id: &str) -> Response {
    error_with_param(
        StatusCode::NOT_FOUND,
        format!("Video with id '{video_id}' not found."),
        "invalid_request_error",
        None,
        Some("video_not_found"),
    )
}

/// A form field or file part as the request carried it.
struct VideoForm {
    fields: HashMap<String, Value>,
    /// The body as the request log shows it (the file as its name, type and size).
    record: Value,
}

impl VideoForm {
    /// Reads a multipart form (what the SDKs send) or a JSON object.
    async fn read(request: Request) -> Result<Self, Invalid> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if content_type.starts_with("application/json") {
            let Json(body) = Json::<Value>::from_request(request, &())
                .await
                .map_err(|err| {
                    Invalid::new(
                        format!("We could not parse the JSON body of your request: {err}"),
                        None,
                    )
                })?;
            let Value::Object(object) = &body else {
                return Err(Invalid::new(
                    "The request body must be a JSON object.".to_owned(),
                    None,
                ));
            };
            let fields = object.clone().into_iter().collect();
            return Ok(Self {
                fields,
                record: body,
            });
        }
        let mut multipart = Multipart::from_request(request, &()).await.map_err(|_| {
            let shown = if content_type.is_empty() {
                "none"
            } else {
                content_type.as_str()
            };
            Invalid::new(
                format!(
                    "Invalid Content-Type header ({shown}), expected multipart/form-data or application/json."
                ),
                None,
            )
        })?;
        let malformed = |err: axum::extract::multipart::MultipartError| {
            Invalid::new(format!("Could not parse multipart form: {err}"), None)
        };
        let mut fields = HashMap::new();
        let mut record = serde_json::Map::new();
        while let Some(field) = multipart.next_field().await.map_err(malformed)? {
            let name = field.name().unwrap_or_default().to_owned();
            if let Some(filename) = field.file_name().map(str::to_owned) {
                let content_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(malformed)?;
                let file = json!({
                    "filename": filename,
                    "content_type": content_type,
                    "bytes": bytes.len(),
                });
                record.insert(name.clone(), file.clone());
                fields.entry(name).or_insert(file);
            } else {
                let value = Value::String(field.text().await.map_err(malformed)?);
                record.insert(name.clone(), value.clone());
                fields.entry(name).or_insert(value);
            }
        }
        Ok(Self {
            fields,
            record: Value::Object(record),
        })
    }
}

/// A submission the API accepts.
struct Submission {
    prompt: String,
    model: String,
    seconds: String,
    size: String,
}

impl Submission {
    fn parse(form: &VideoForm) -> Result<Self, Invalid> {
        let text = |name: &'static str| -> Result<Option<String>, Invalid> {
            match form.fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                // JSON clients may send the seconds as a number.
                Some(Value::Number(n)) if name == "seconds" => Ok(Some(n.to_string())),
                Some(_) => Err(Invalid::new(
                    format!("Invalid type for '{name}': expected a string."),
                    Some(name),
                )
                .with_code("invalid_type")),
            }
        };
        let prompt = text("prompt")?
            .filter(|p| !p.is_empty())
            .ok_or_else(|| missing("prompt"))?;
        let model = text("model")?.unwrap_or_else(|| "sora-2".to_owned());
        if !MODELS.contains(&model.as_str()) {
            return Err(invalid_value("model", &model, &MODELS));
        }
        let seconds = text("seconds")?.unwrap_or_else(|| "4".to_owned());
        if !SECONDS.contains(&seconds.as_str()) {
            return Err(invalid_value("seconds", &seconds, &SECONDS));
        }
        let size = text("size")?.unwrap_or_else(|| "720x1280".to_owned());
        let sizes: &[&str] = if model.starts_with("sora-2-pro") {
            &PRO_SIZES
        } else {
            &SIZES
        };
        if !sizes.contains(&size.as_str()) {
            return Err(invalid_value("size", &size, sizes));
        }
        match form.fields.get("input_reference") {
            None | Some(Value::Null) => {}
            // A file part, as the request log shows it.
            Some(Value::Object(file)) if file.contains_key("bytes") => {
                let image = file
                    .get("content_type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| matches!(t, "image/jpeg" | "image/png" | "image/webp"));
                if !image {
                    return Err(Invalid::new(
                        "Invalid 'input_reference': expected a JPEG, PNG or WebP image.".to_owned(),
                        Some("input_reference"),
                    )
                    .with_code("invalid_value"));
                }
            }
            Some(Value::Object(reference))
                if reference.get("image_url").is_some_and(Value::is_string)
                    || reference.get("file_id").is_some_and(Value::is_string) => {}
            Some(_) => {
                return Err(Invalid::new(
                    "Invalid 'input_reference': expected an image file, or an object with 'image_url' or 'file_id'.".to_owned(),
                    Some("input_reference"),
                )
                .with_code("invalid_type"));
            }
        }
        Ok(Self {
            prompt,
            model,
            seconds,
            size,
        })
    }
}

/// The API's `video` object.
#[derive(Serialize)]
struct VideoObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    completed_at: Option<u64>,
    error: Option<VideoError>,
    expires_at: Option<u64>,
    model: &'a str,
    progress: u8,
    prompt: &'a str,
    remixed_from_video_id: Option<&'a str>,
    seconds: &'a str,
    size: &'a str,
}

#[derive(Serialize)]
struct VideoError {
    code: &'static str,
    message: &'static str,
}

/// The job's `video` object at `phase`, with the poll-after header.
fn video_response(job: &Job, phase: Phase, shared: &Shared) -> Response {
    let finished = job.finished.map(Job::unix_secs);
    let (status, progress, error) = match phase {
        Phase::Running { progress: 0 } => ("queued", 0, None),
        Phase::Running { progress } => ("in_progress", progress, None),
        Phase::Succeeded => ("completed", 100, None),
        Phase::Filtered => (
            "failed",
            0,
            Some(VideoError {
                code: "moderation_blocked",
                message: "Your request was blocked by our moderation system.",
            }),
        ),
        Phase::Failed => (
            "failed",
            0,
            Some(VideoError {
                code: "internal_error",
                message: "Video generation failed due to an internal error. Please try again.",
            }),
        ),
    };
    let succeeded = phase == Phase::Succeeded;
    let param = |name: &str| job.params.get(name).and_then(Value::as_str).unwrap_or("");
    let object = VideoObject {
        id: &job.id,
        object: "video",
        created_at: Job::unix_secs(job.created),
        status,
        completed_at: finished.filter(|_| succeeded),
        error,
        expires_at: finished
            .filter(|_| succeeded)
            .map(|at| at + EXPIRY.as_secs()),
        model: &job.model,
        progress,
        prompt: &job.prompt,
        remixed_from_video_id: None,
        seconds: param("seconds"),
        size: param("size"),
    };
    with_poll_after(Json(object).into_response(), shared)
}

fn with_poll_after(mut response: Response, shared: &Shared) -> Response {
    let millis = u64::try_from(shared.config().poll_after.as_millis()).unwrap_or(u64::MAX);
    response
        .headers_mut()
        .insert(POLL_AFTER, HeaderValue::from(millis));
    response
}
