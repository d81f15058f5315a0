//! KlingAI video generation: tasks submitted with a JWT, polled, and their videos fetched by URL.
//!
//! Checked against KlingAI's API reference (general information: the HS256 JWT with `iss` the
//! access key, `exp` and `nbf`; the error code table; text to video; image to video; video
//! extension) as mirrored in inference-sh/grid's `api/klingai/docs`. The real hosts are
//! `https://api-singapore.klingai.com` (global; `https://api.klingai.com` before it) and
//! `https://api-beijing.klingai.com`; clients use [`Simulator::root_url`] instead.
//!
//! - `POST /v1/videos/text2video`: `prompt` (required, ≤ 2500 characters), `model_name`
//!   (`kling-v1` default), `negative_prompt`, `cfg_scale` (0–1), `mode` (`std`/`pro`),
//!   `aspect_ratio` (`16:9`/`9:16`/`1:1`), `duration` (`"5"`/`"10"`), `camera_control`
//!   (`{type, config?}`; `simple` needs exactly one non-zero of `horizontal`, `vertical`, `pan`,
//!   `tilt`, `roll`, `zoom`, each in [-10, 10]), `callback_url` (accepted, never called),
//!   `external_task_id` (unique per account).
//! - `POST /v1/videos/image2video`: `image` and/or `image_tail` (a URL, or base64 without a
//!   `data:` prefix), optional `prompt`, the motion brush `static_mask` / `dynamic_masks` (at
//!   most 6, each with 2 to 77 `trajectories` points `{x, y}`), `camera_control`; start/end
//!   frames, the motion brush and camera control exclude one another.
//! - `POST /v1/videos/video-extend`: `video_id` (a video of a succeeded task), optional
//!   `prompt`; the extended video is the source plus 4.5 s, and a source over 3 minutes is
//!   refused.
//! - `GET /v1/videos/{text2video|image2video|video-extend}/{task_id}` (or the
//!   `external_task_id`): `task_status` `submitted` → `processing` → `succeed` with
//!   `task_result.videos: [{id, url, duration}]`, or `failed` with `task_status_msg`.
//! - `GET /kling-media/{video_id}.mp4`: the video at a task's `url`, without authentication.
//!
//! Every answer is Kling's envelope `{"code", "message", "request_id", "data"}`; errors carry
//! Kling's codes (1001 no `Authorization`, 1002 a token that does not verify, 1003 not yet
//! valid, 1004 expired, 1000 an unknown access key, 1200/1201 bad parameters, 1203 unknown
//! model, task or video, 1302 rate limited, 5000 server error). Kling has no cancel call: a
//! client stops polling a task it no longer wants.
//!
//! [`Simulator::root_url`]: crate::Simulator::root_url

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};

use crate::config::{Behaviour, SimConfig};
use crate::engine::{self, Failure};
use crate::jobs::{Job, Phase};
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;
use crate::video;

/// Models the video endpoints take.
const MODELS: [&str; 10] = [
    "kling-v1",
    "kling-v1-5",
    "kling-v1-6",
    "kling-v2-master",
    "kling-v2-1",
    "kling-v2-1-master",
    "kling-v2-5-turbo",
    "kling-v2-6",
    "kling-v3",
    "kling-video-o1",
];
const MODES: [&str; 2] = ["std", "pro"];
const ASPECT_RATIOS: [&str; 3] = ["16:9", "9:16", "1:1"];
const DURATIONS: [&str; 2] = ["5", "10"];
const CAMERA_TYPES: [&str; 5] = [
    "simple",
    "down_back",
    "forward_up",
    "right_turn_forward",
    "left_turn_forward",
];
const CAMERA_AXES: [&str; 6] = ["horizontal", "vertical", "pan", "tilt", "roll", "zoom"];
/// Longest prompt or negative prompt, in characters.
const MAX_PROMPT_CHARS: usize = 2500;
/// Most dynamic masks of the motion brush.
const MAX_DYNAMIC_MASKS: usize = 6;
/// Fewest and most trajectory points of a dynamic mask (a 5 s video).
const TRAJECTORY_POINTS: std::ops::RangeInclusive<usize> = 2..=77;
/// Largest image, decoded.
const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// What one extension adds to a video, in seconds.
const EXTENSION_SECONDS: f64 = 4.5;
/// Longest video that may be extended, in seconds.
const MAX_EXTENDABLE_SECONDS: f64 = 180.0;
/// Kling's `task_status_msg` for a task its risk control stopped.
const RISK_CONTROL_MESSAGE: &str = "Failure to pass the risk control system";
/// `task_status_msg` of a task that failed (`Behaviour::JobFailed`).
const FAILED_MESSAGE: &str = "Task failed due to an internal error, please try again later";

/// The Kling routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/videos/text2video", post(text2video))
        .route("/v1/videos/image2video", post(image2video))
        .route("/v1/videos/video-extend", post(video_extend))
        .route("/v1/videos/text2video/{task_id}", get(query_text2video))
        .route("/v1/videos/image2video/{task_id}", get(query_image2video))
        .route("/v1/videos/video-extend/{task_id}", get(query_video_extend))
        .route("/kling-media/{file}", get(media))
}

/// The three task endpoints; a task is polled on the endpoint that made it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text2Video,
    Image2Video,
    VideoExtend,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Text2Video => "text2video",
            Kind::Image2Video => "image2video",
            Kind::VideoExtend => "video-extend",
        }
    }
}

async fn text2video(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    submit(&shared, Kind::Text2Video, &uri, &headers, &body).await
}

async fn image2video(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    submit(&shared, Kind::Image2Video, &uri, &headers, &body).await
}

async fn video_extend(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    submit(&shared, Kind::VideoExtend, &uri, &headers, &body).await
}

async fn query_text2video(
    State(shared): State<Arc<Shared>>,
    Path(task_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    query(&shared, Kind::Text2Video, &task_id, &uri, &headers)
}

async fn query_image2video(
    State(shared): State<Arc<Shared>>,
    Path(task_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    query(&shared, Kind::Image2Video, &task_id, &uri, &headers)
}

async fn query_video_extend(
    State(shared): State<Arc<Shared>>,
    Path(task_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    query(&shared, Kind::VideoExtend, &task_id, &uri, &headers)
}

/// A refusal in Kling's shape: an HTTP status, Kling's code and its message.
struct KlingError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl KlingError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A parameter with an illegal value (1201).
    fn param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 1201, message)
    }

    /// A resource (model, task, video) that does not exist (1203).
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, 1203, message)
    }

    fn unauthorized(code: u32, message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "request_id": request_id(),
        });
        (self.status, Json(body)).into_response()
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A task id as Kling writes them: 18 digits.
fn task_id() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000_000_000;
    format!("{n:018}")
}

/// Verifies `Authorization: Bearer <jwt>`: HS256 under the secret key, `iss` the access key,
/// `exp` not passed and `nbf` reached (no leeway).
fn authenticate(headers: &HeaderMap, config: &SimConfig) -> Result<String, KlingError> {
    let Some(header) = headers.get(AUTHORIZATION) else {
        return Err(KlingError::unauthorized(1001, "Authorization is empty"));
    };
    let header = header.to_str().unwrap_or_default();
    let Some(token) = header.strip_prefix("Bearer ").filter(|t| !t.is_empty()) else {
        return Err(KlingError::unauthorized(1002, "Authorization is invalid"));
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "nbf", "iss"]);
    validation.set_issuer(&[config.kling_access_key.as_str()]);
    let key = DecodingKey::from_secret(config.kling_secret_key.as_bytes());
    match jsonwebtoken::decode::<Value>(token, &key, &validation) {
        Ok(_) => Ok(header.to_owned()),
        Err(err) => Err(match err.kind() {
            ErrorKind::ExpiredSignature => {
                KlingError::unauthorized(1004, "Authorization has expired")
            }
            ErrorKind::ImmatureSignature => {
                KlingError::unauthorized(1003, "Authorization is not yet valid")
            }
            ErrorKind::InvalidIssuer => KlingError::unauthorized(1000, "Authentication failed"),
            _ => KlingError::unauthorized(1002, "Authorization is invalid"),
        }),
    }
}

/// A task the API accepted, before the script has its say.
struct TaskSpec {
    model: String,
    prompt: String,
    external_task_id: Option<String>,
    /// Seconds of the video the task makes.
    duration: f64,
}

async fn submit(
    shared: &Shared,
    kind: Kind,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let config = shared.config();
    let authorization = match authenticate(headers, config) {
        Ok(authorization) => authorization,
        Err(err) => return err.into_response(),
    };
    let body: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Value::Object(object),
        Ok(_) | Err(_) => {
            return KlingError::new(
                StatusCode::BAD_REQUEST,
                1200,
                "Invalid request parameters: the body must be a JSON object",
            )
            .into_response();
        }
    };
    let spec = match validate(shared, kind, &body) {
        Ok(spec) => spec,
        Err(err) => return err.into_response(),
    };
    let (behaviour, mut guard) = shared.begin(Incoming::new(
        WireFormat::Kling,
        uri,
        Some(authorization),
        body,
    ));
    tracing::debug!(?behaviour, kind = kind.path(), "kling task");
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure);
    }
    let job = Job::new(
        task_id(),
        WireFormat::Kling,
        &spec.model,
        &spec.prompt,
        behaviour,
        json!({
            "kind": kind.path(),
            "external_task_id": spec.external_task_id,
            "duration": spec.duration,
        }),
    )
    .with_media_id(uuid::Uuid::new_v4().to_string());
    let data = task_data(&job, None, "");
    shared.jobs().insert(job);
    guard.finish();
    envelope(data)
}

fn query(shared: &Shared, kind: Kind, id: &str, uri: &Uri, headers: &HeaderMap) -> Response {
    let authorization = match authenticate(headers, shared.config()) {
        Ok(authorization) => authorization,
        Err(err) => return err.into_response(),
    };
    let jobs = shared.jobs();
    let of_kind = |job: &Job| {
        job.api == WireFormat::Kling
            && job.params.get("kind").and_then(Value::as_str) == Some(kind.path())
    };
    // A task is found by its `task_id`, or by the client's `external_task_id`.
    let found = jobs
        .get(id)
        .filter(|job| job.deleted_at.is_none() && of_kind(job))
        .or_else(|| {
            jobs.find(|job| {
                of_kind(job)
                    && job.params.get("external_task_id").and_then(Value::as_str) == Some(id)
            })
        });
    let mut guard = shared.follow_up(
        Incoming::new(WireFormat::KlingPoll, uri, Some(authorization), Value::Null),
        found
            .as_ref()
            .map_or(Behaviour::Normal, |job| job.behaviour.clone()),
    );
    guard.finish();
    let Some((job, phase)) = found.and_then(|job| jobs.poll(&job.id, shared.config().job_polls))
    else {
        return KlingError::not_found(format!("task {id} not found")).into_response();
    };
    envelope(task_data(&job, Some(phase), &video::origin(headers)))
}

/// `GET /kling-media/{video_id}.mp4`: a succeeded task's video.
async fn media(State(shared): State<Arc<Shared>>, Path(file): Path<String>, uri: Uri) -> Response {
    let media_id = file.strip_suffix(".mp4").unwrap_or(&file);
    let Some(job) = shared
        .jobs()
        .by_media(media_id)
        .filter(|job| job.api == WireFormat::Kling && job.deleted_at.is_none())
        .filter(|job| {
            job.finished.is_some() && job.phase(shared.config().job_polls) == Phase::Succeeded
        })
    else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let guard = shared.follow_up(
        Incoming::new(WireFormat::KlingDownload, &uri, None, Value::Null),
        job.behaviour.clone(),
    );
    video::download(
        video::mp4(shared.config().video_bytes),
        &job.behaviour,
        guard,
    )
}

/// `{"code": 0, "message": "SUCCEED", "request_id", "data"}`.
fn envelope(data: Value) -> Response {
    Json(json!({
        "code": 0,
        "message": "SUCCEED",
        "request_id": request_id(),
        "data": data,
    }))
    .into_response()
}

/// The task's `data` at `phase` (`None`: just submitted); `origin` makes the video's URL.
fn task_data(job: &Job, phase: Option<Phase>, origin: &str) -> Value {
    let created_at = Job::unix_millis(job.created);
    let updated_at = job.finished.map_or_else(
        || Job::unix_millis(std::time::SystemTime::now()),
        Job::unix_millis,
    );
    let mut task_info = Map::new();
    if let Some(external) = job.params.get("external_task_id").filter(|v| v.is_string()) {
        task_info.insert("external_task_id".to_owned(), external.clone());
    }
    let mut data = Map::new();
    data.insert("task_id".to_owned(), json!(job.id));
    let (status, message) = match phase {
        None | Some(Phase::Running { progress: 0 }) => ("submitted", ""),
        Some(Phase::Running { .. }) => ("processing", ""),
        Some(Phase::Succeeded) => ("succeed", ""),
        Some(Phase::Filtered) => ("failed", RISK_CONTROL_MESSAGE),
        Some(Phase::Failed) => ("failed", FAILED_MESSAGE),
    };
    data.insert("task_status".to_owned(), json!(status));
    if phase.is_some() {
        data.insert("task_status_msg".to_owned(), json!(message));
    }
    data.insert("task_info".to_owned(), Value::Object(task_info));
    data.insert("created_at".to_owned(), json!(created_at));
    data.insert(
        "updated_at".to_owned(),
        json!(if phase.is_some() {
            updated_at
        } else {
            created_at
        }),
    );
    if phase == Some(Phase::Succeeded) {
        let media_id = job.media_id.as_deref().unwrap_or_default();
        let duration = job
            .params
            .get("duration")
            .and_then(Value::as_f64)
            .unwrap_or(5.1);
        data.insert(
            "task_result".to_owned(),
            json!({
                "videos": [{
                    "id": media_id,
                    "url": format!("{origin}/kling-media/{media_id}.mp4"),
                    "duration": format!("{duration:.1}"),
                }]
            }),
        );
    }
    Value::Object(data)
}

/// Kling's answer to a scripted submission failure.
fn failure_response(failure: Failure) -> Response {
    match failure {
        Failure::Server => KlingError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            5000,
            "Server internal error",
        )
        .into_response(),
        Failure::Overloaded => KlingError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            5001,
            "Server temporarily unavailable, usually due to maintenance",
        )
        .into_response(),
        Failure::RateLimited { retry_after_secs } => {
            let mut response = KlingError::new(
                StatusCode::TOO_MANY_REQUESTS,
                1302,
                "The API request is too fast, exceeding the platform's rate limit (simulated)",
            )
            .into_response();
            // Kling states no delay; the header is the simulator's, as for the other APIs.
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Failure::Refused { status, message } => {
            let code = match status {
                StatusCode::UNAUTHORIZED => 1000,
                StatusCode::FORBIDDEN => 1103,
                StatusCode::NOT_FOUND => 1203,
                StatusCode::TOO_MANY_REQUESTS => 1302,
                s if s.is_server_error() => 5000,
                _ => 1201,
            };
            KlingError::new(status, code, message).into_response()
        }
    }
}

/// Checks a submission the way the API does.
fn validate(shared: &Shared, kind: Kind, body: &Value) -> Result<TaskSpec, KlingError> {
    let text = |name: &str| -> Result<Option<&str>, KlingError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(KlingError::param(format!("{name} must be a string"))),
        }
    };
    let one_of = |name: &str, allowed: &[&str], default: &str| -> Result<String, KlingError> {
        let value = text(name)?.unwrap_or(default);
        if allowed.contains(&value) {
            Ok(value.to_owned())
        } else {
            Err(KlingError::param(format!(
                "{name} value '{value}' is invalid, supported: {}",
                allowed.join(", ")
            )))
        }
    };
    let model = text("model_name")?.unwrap_or("kling-v1").to_owned();
    if !MODELS.contains(&model.as_str()) {
        return Err(KlingError::not_found(format!(
            "model_name '{model}' does not exist"
        )));
    }
    let prompt = text("prompt")?.unwrap_or_default().to_owned();
    if kind == Kind::Text2Video && prompt.trim().is_empty() {
        return Err(KlingError::param("prompt is required"));
    }
    for name in ["prompt", "negative_prompt"] {
        if text(name)?.is_some_and(|t| t.chars().count() > MAX_PROMPT_CHARS) {
            return Err(KlingError::param(format!(
                "{name} must not exceed {MAX_PROMPT_CHARS} characters"
            )));
        }
    }
    one_of("mode", &MODES, "std")?;
    match body.get("cfg_scale") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_f64().is_some_and(|c| (0.0..=1.0).contains(&c)) => {}
        Some(_) => return Err(KlingError::param("cfg_scale must be a number in [0, 1]")),
    }
    let external_task_id = text("external_task_id")?.map(str::to_owned);
    if let Some(external) = &external_task_id
        && shared
            .jobs()
            .find(|job| {
                job.api == WireFormat::Kling
                    && job.params.get("external_task_id").and_then(Value::as_str)
                        == Some(external.as_str())
            })
            .is_some()
    {
        return Err(KlingError::param(format!(
            "external_task_id '{external}' already exists"
        )));
    }
    text("callback_url")?;
    let duration = match kind {
        Kind::Text2Video | Kind::Image2Video => {
            let seconds = match body.get("duration") {
                // Clients written against the docs send a string; a number is read alike.
                Some(Value::Number(n)) => n.to_string(),
                _ => one_of("duration", &DURATIONS, "5")?,
            };
            if !DURATIONS.contains(&seconds.as_str()) {
                return Err(KlingError::param(format!(
                    "duration value '{seconds}' is invalid, supported: 5, 10"
                )));
            }
            // Kling's clips run a little past the asked length ("5.1").
            if seconds == "10" { 10.1 } else { 5.1 }
        }
        Kind::VideoExtend => extended_duration(shared, body)?,
    };
    match kind {
        Kind::Text2Video => {
            one_of("aspect_ratio", &ASPECT_RATIOS, "16:9")?;
            check_camera_control(body)?;
        }
        Kind::Image2Video => check_image2video(body)?,
        Kind::VideoExtend => {}
    }
    Ok(TaskSpec {
        model,
        prompt,
        external_task_id,
        duration,
    })
}

/// Seconds of the video a `video-extend` of `video_id` makes.
fn extended_duration(shared: &Shared, body: &Value) -> Result<f64, KlingError> {
    let Some(video_id) = body
        .get("video_id")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    else {
        return Err(KlingError::param("video_id is required"));
    };
    let Some(source) = shared
        .jobs()
        .by_media(video_id)
        .filter(|job| job.api == WireFormat::Kling && job.deleted_at.is_none())
    else {
        return Err(KlingError::not_found(format!(
            "video {video_id} does not exist"
        )));
    };
    if source.finished.is_none() || source.phase(shared.config().job_polls) != Phase::Succeeded {
        return Err(KlingError::param(format!(
            "video {video_id} is not the video of a succeeded task"
        )));
    }
    let seconds = source
        .params
        .get("duration")
        .and_then(Value::as_f64)
        .unwrap_or(5.1);
    if seconds > MAX_EXTENDABLE_SECONDS {
        return Err(KlingError::param(format!(
            "video {video_id} lasts {seconds:.1}s; only videos up to 3 minutes can be extended"
        )));
    }
    Ok(((seconds + EXTENSION_SECONDS) * 10.0).round() / 10.0)
}

/// `camera_control`: a known `type`; `simple` needs exactly one non-zero axis in [-10, 10].
fn check_camera_control(body: &Value) -> Result<(), KlingError> {
    let Some(camera) = body.get("camera_control").filter(|c| !c.is_null()) else {
        return Ok(());
    };
    let kind = camera.get("type").and_then(Value::as_str).unwrap_or("");
    if !CAMERA_TYPES.contains(&kind) {
        return Err(KlingError::param(format!(
            "camera_control.type '{kind}' is invalid, supported: {}",
            CAMERA_TYPES.join(", ")
        )));
    }
    if kind != "simple" {
        return Ok(());
    }
    let Some(config) = camera.get("config").and_then(Value::as_object) else {
        return Err(KlingError::param(
            "camera_control.config is required when camera_control.type is simple",
        ));
    };
    let mut moving = 0;
    for axis in CAMERA_AXES {
        match config.get(axis) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                let value = n.as_f64().unwrap_or(f64::NAN);
                if !(-10.0..=10.0).contains(&value) {
                    return Err(KlingError::param(format!(
                        "camera_control.config.{axis} must be in [-10, 10]"
                    )));
                }
                if value != 0.0 {
                    moving += 1;
                }
            }
            Some(_) => {
                return Err(KlingError::param(format!(
                    "camera_control.config.{axis} must be a number"
                )));
            }
        }
    }
    if moving != 1 {
        return Err(KlingError::param(
            "camera_control.config must set exactly one of horizontal, vertical, pan, tilt, roll, zoom to a non-zero value",
        ));
    }
    Ok(())
}

/// `image`/`image_tail`, the motion brush and camera control of an image-to-video task.
fn check_image2video(body: &Value) -> Result<(), KlingError> {
    let present = |name: &str| body.get(name).is_some_and(|v| !v.is_null());
    if !present("image") && !present("image_tail") {
        return Err(KlingError::param("image or image_tail is required"));
    }
    for name in ["image", "image_tail"] {
        match body.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(image)) => check_image(name, image)?,
            Some(_) => return Err(KlingError::param(format!("{name} must be a string"))),
        }
    }
    let brush = present("static_mask") || present("dynamic_masks");
    let features = [present("image_tail"), brush, present("camera_control")];
    if features.iter().filter(|on| **on).count() > 1 {
        return Err(KlingError::param(
            "image_tail, the motion brush (static_mask, dynamic_masks) and camera_control cannot be used together",
        ));
    }
    if let Some(mask) = body.get("static_mask").filter(|v| !v.is_null()) {
        let Some(mask) = mask.as_str() else {
            return Err(KlingError::param("static_mask must be a string"));
        };
        check_image("static_mask", mask)?;
    }
    match body.get("dynamic_masks") {
        None | Some(Value::Null) => {}
        Some(Value::Array(masks)) => {
            if masks.len() > MAX_DYNAMIC_MASKS {
                return Err(KlingError::param(format!(
                    "dynamic_masks holds {} masks; at most {MAX_DYNAMIC_MASKS} are allowed",
                    masks.len()
                )));
            }
            for (i, mask) in masks.iter().enumerate() {
                check_dynamic_mask(i, mask)?;
            }
        }
        Some(_) => return Err(KlingError::param("dynamic_masks must be an array")),
    }
    check_camera_control(body)
}

fn check_dynamic_mask(i: usize, mask: &Value) -> Result<(), KlingError> {
    let Some(image) = mask.get("mask").and_then(Value::as_str) else {
        return Err(KlingError::param(format!(
            "dynamic_masks[{i}].mask is required"
        )));
    };
    check_image(&format!("dynamic_masks[{i}].mask"), image)?;
    let Some(points) = mask.get("trajectories").and_then(Value::as_array) else {
        return Err(KlingError::param(format!(
            "dynamic_masks[{i}].trajectories is required"
        )));
    };
    if !TRAJECTORY_POINTS.contains(&points.len()) {
        return Err(KlingError::param(format!(
            "dynamic_masks[{i}].trajectories holds {} points; it must hold {} to {}",
            points.len(),
            TRAJECTORY_POINTS.start(),
            TRAJECTORY_POINTS.end()
        )));
    }
    let coordinate = |p: &Value, axis: &str| p.get(axis).and_then(Value::as_i64).is_some();
    if !points
        .iter()
        .all(|p| coordinate(p, "x") && coordinate(p, "y"))
    {
        return Err(KlingError::param(format!(
            "dynamic_masks[{i}].trajectories points must be {{\"x\", \"y\"}} integers"
        )));
    }
    Ok(())
}

/// An image field: an http(s) URL, or base64 (no `data:` prefix) of at most 10 MB.
fn check_image(name: &str, image: &str) -> Result<(), KlingError> {
    if image.starts_with("http://") || image.starts_with("https://") {
        return Ok(());
    }
    if image.starts_with("data:") {
        return Err(KlingError::param(format!(
            "{name} must be a URL or plain base64, without a data: prefix"
        )));
    }
    match BASE64.decode(image) {
        Ok(bytes) if bytes.is_empty() => Err(KlingError::param(format!("{name} is empty"))),
        Ok(bytes) if bytes.len() > MAX_IMAGE_BYTES => {
            Err(KlingError::param(format!("{name} is larger than 10MB")))
        }
        Ok(_) => Ok(()),
        Err(_) => Err(KlingError::param(format!(
            "{name} is neither a URL nor valid base64"
        ))),
    }
}
