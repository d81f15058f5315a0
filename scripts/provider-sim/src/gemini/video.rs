//! Veo video generation on the Gemini API: a long-running operation, polled until done, whose
//! video is downloaded through a redirect.
//!
//! Checked against google-genai (python-genai `models.py`: `_GenerateVideosParameters_to_mldev`,
//! `_GenerateVideosOperation_from_mldev`; `files.py` `download`; `_transformers.t_file_name`,
//! which takes the file id as the lower-case alphanumerics after `files/`), the Gemini API's
//! Veo guide (`veo-3.1-generate-preview`, `veo-3.1-fast-generate-preview`; `aspectRatio` 16:9 or
//! 9:16, `durationSeconds` 4, 6 or 8 and 8 for 1080p and 4k) and the generativelanguage v1beta
//! REST bindings, whose long-running operations under `models/*/operations/*` have `get` (and
//! `list`) but no `cancel` (only `batches/*` can be cancelled): a client that no longer wants a
//! video stops polling.
//!
//! - `POST /v1beta/models/{model}:predictLongRunning`: `{"instances": [{"prompt", "image"?:
//!   {"bytesBase64Encoded", "mimeType"}, "lastFrame"?, "referenceImages"?, "video"?}],
//!   "parameters": {"aspectRatio", "durationSeconds" (a number, or a numeric string),
//!   "resolution" (`720p`, `1080p`, `4k`), "negativePrompt", "personGeneration",
//!   "sampleCount"}}` → `{"name": "models/{model}/operations/{id}"}`.
//! - `GET /v1beta/models/{model}/operations/{id}`: `{"name"}` while running (proto3 JSON leaves
//!   `done: false` out), then `{"name", "done": true, "response": {"@type": …
//!   PredictLongRunningResponse, "generateVideoResponse": {"generatedSamples": [{"video":
//!   {"uri"}}]}}}`, or `generateVideoResponse` without samples but `raiMediaFilteredCount: 1`
//!   and `raiMediaFilteredReasons` (content filtered), or `{"name", "done": true, "error":
//!   {"code": 13, "message"}}` (failed).
//! - `GET /v1beta/files/{id}:download?alt=media`: a `302` to the bytes at
//!   `GET /veo-media/{id}.mp4` (no key needed there, like Google's signed storage URL), so the
//!   client must follow redirects.
//!
//! Every `/v1beta` request needs the key (`x-goog-api-key`, or `?key=`): without one the API
//! answers `403 PERMISSION_DENIED`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::{error_response, failure_response, invalid_argument, json_response};
use crate::config::Behaviour;
use crate::engine;
use crate::jobs::{Job, Phase};
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;
use crate::video;

/// Veo models of the Gemini API.
const MODELS: [&str; 6] = [
    "veo-3.1-generate-preview",
    "veo-3.1-fast-generate-preview",
    "veo-3.1-lite-generate-preview",
    "veo-3.0-generate-001",
    "veo-3.0-fast-generate-001",
    "veo-2.0-generate-001",
];
const ASPECT_RATIOS: [&str; 2] = ["16:9", "9:16"];
const DURATIONS: [u64; 3] = [4, 6, 8];
const RESOLUTIONS: [&str; 3] = ["720p", "1080p", "4k"];
const PERSON_GENERATION: [&str; 3] = ["allow_all", "allow_adult", "dont_allow"];
/// The `@type` of a done operation's `response`.
const RESPONSE_TYPE: &str =
    "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse";
/// The reason a filtered video gives (Google adds a support code).
const FILTERED_REASON: &str = "Veo could not generate videos because the input prompt or the generated video violated Google's Responsible AI practices. You will not be charged for blocked videos. Support codes: 58061214";
/// `google.rpc.Code.INTERNAL`.
const INTERNAL: u16 = 13;
/// Google's answer to a request without a key.
const NO_KEY: &str = "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.";

/// The key a request carried: `x-goog-api-key`, else the `key` query parameter.
pub(super) fn api_key(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<String> {
    headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get("key").cloned())
        .filter(|k| !k.is_empty())
}

pub(super) fn query_of(uri: &Uri) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(q)| q)
        .unwrap_or_default()
}

pub(super) fn no_key() -> Response {
    error_response(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        NO_KEY.to_owned(),
        Vec::new(),
    )
}

pub(super) fn not_found(message: String) -> Response {
    error_response(StatusCode::NOT_FOUND, "NOT_FOUND", message, Vec::new())
}

/// `POST /v1beta/models/{model}:predictLongRunning`.
pub(super) async fn predict_long_running(
    shared: &Shared,
    model: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(key) = api_key(headers, &query_of(uri)) else {
        return no_key();
    };
    if !MODELS.contains(&model) {
        return not_found(format!(
            "models/{model} is not found for API version v1beta, or is not supported for predictLongRunning. Call ListModels to see the list of available models and their supported methods."
        ));
    }
    let body: Value = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(err) => return invalid_argument(format!("Invalid JSON payload received. {err}")),
    };
    let prompt = match validate(&body) {
        Ok(prompt) => prompt,
        Err(message) => return invalid_argument(message),
    };
    let (behaviour, mut guard) = shared.begin(Incoming::new(WireFormat::Veo, uri, Some(key), body));
    tracing::debug!(?behaviour, model, "veo video");
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, model);
    }
    // Lower-case alphanumerics, as Google's operation and file ids are (and as google-genai
    // expects of a file id).
    let operation = uuid::Uuid::new_v4().simple().to_string();
    let job = Job::new(
        operation,
        WireFormat::Veo,
        model,
        &prompt,
        behaviour,
        Value::Null,
    )
    .with_media_id(uuid::Uuid::new_v4().simple().to_string());
    let name = operation_name(&job);
    shared.jobs().insert(job);
    guard.finish();
    json_response(StatusCode::OK, &json!({ "name": name }))
}

fn operation_name(job: &Job) -> String {
    format!("models/{}/operations/{}", job.model, job.id)
}

/// `GET /v1beta/models/{model}/operations/{operation_id}`.
pub(crate) async fn operation(
    State(shared): State<Arc<Shared>>,
    Path((model, operation_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(key) = api_key(&headers, &query_of(&uri)) else {
        return no_key();
    };
    let jobs = shared.jobs();
    let known = jobs
        .get(&operation_id)
        .filter(|job| job.api == WireFormat::Veo && job.model == model);
    let mut guard = shared.follow_up(
        Incoming::new(WireFormat::VeoPoll, &uri, Some(key), Value::Null),
        known
            .as_ref()
            .map_or(Behaviour::Normal, |job| job.behaviour.clone()),
    );
    guard.finish();
    let Some((job, phase)) = known.and_then(|job| jobs.poll(&job.id, shared.config().job_polls))
    else {
        return not_found(format!(
            "Operation models/{model}/operations/{operation_id} not found."
        ));
    };
    let name = operation_name(&job);
    let body = match phase {
        // proto3 JSON leaves `done: false` out.
        Phase::Running { .. } => json!({ "name": name }),
        Phase::Succeeded => {
            let file = job.media_id.as_deref().unwrap_or_default();
            let uri = format!(
                "{}/v1beta/files/{file}:download?alt=media",
                video::origin(&headers)
            );
            json!({
                "name": name,
                "done": true,
                "response": {
                    "@type": RESPONSE_TYPE,
                    "generateVideoResponse": {
                        "generatedSamples": [{ "video": { "uri": uri } }],
                    },
                },
            })
        }
        Phase::Filtered => json!({
            "name": name,
            "done": true,
            "response": {
                "@type": RESPONSE_TYPE,
                "generateVideoResponse": {
                    "raiMediaFilteredCount": 1,
                    "raiMediaFilteredReasons": [FILTERED_REASON],
                },
            },
        }),
        Phase::Failed => json!({
            "name": name,
            "done": true,
            "error": {
                "code": INTERNAL,
                "message": "Video generation failed due to an internal error. Please try again later.",
            },
        }),
    };
    json_response(StatusCode::OK, &body)
}

/// The job whose video is `file_id`, once a poll has found it done.
fn finished_video(shared: &Shared, file_id: &str) -> Option<Job> {
    shared
        .jobs()
        .by_media(file_id)
        .filter(|job| job.api == WireFormat::Veo && job.finished.is_some())
        .filter(|job| job.phase(shared.config().job_polls) == Phase::Succeeded)
}

/// `GET /v1beta/files/{file_id}:download?alt=media`: a redirect to the bytes.
pub(crate) async fn file(
    State(shared): State<Arc<Shared>>,
    Path(file_action): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(key) = api_key(&headers, &query_of(&uri)) else {
        return no_key();
    };
    let Some(file_id) = file_action.strip_suffix(":download") else {
        return not_found(format!("File files/{file_action} was not found."));
    };
    let Some(job) = finished_video(&shared, file_id) else {
        return not_found(format!("File files/{file_id} was not found."));
    };
    let mut guard = shared.follow_up(
        Incoming::new(WireFormat::VeoDownload, &uri, Some(key), Value::Null),
        job.behaviour,
    );
    guard.finish();
    let location = format!("{}/veo-media/{file_id}.mp4", video::origin(&headers));
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// `GET /veo-media/{file_id}.mp4`: the bytes a download redirects to.
pub(crate) async fn media(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    uri: Uri,
) -> Response {
    let file_id = file.strip_suffix(".mp4").unwrap_or(&file);
    let Some(job) = finished_video(&shared, file_id) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let guard = shared.follow_up(
        Incoming::new(WireFormat::VeoMedia, &uri, None, Value::Null),
        job.behaviour.clone(),
    );
    video::download(
        video::mp4(shared.config().video_bytes),
        &job.behaviour,
        guard,
    )
}

/// Checks a `predictLongRunning` body the way the API does; returns the prompt.
fn validate(body: &Value) -> Result<String, String> {
    let Some(instance) = body
        .get("instances")
        .and_then(Value::as_array)
        .and_then(|i| i.first())
    else {
        return Err("* instances: at least one instance is required".to_owned());
    };
    let prompt = match instance.get("prompt") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(prompt)) => prompt.clone(),
        Some(_) => return Err("* instances[0].prompt: must be a string".to_owned()),
    };
    let has_image = instance.get("image").is_some_and(|i| !i.is_null());
    if prompt.trim().is_empty() && !has_image {
        return Err("* instances[0].prompt: a prompt (or an image) is required".to_owned());
    }
    for field in ["image", "lastFrame"] {
        if let Some(image) = instance.get(field).filter(|i| !i.is_null()) {
            check_image(field, image)?;
        }
    }
    let Some(parameters) = body.get("parameters").filter(|p| !p.is_null()) else {
        return Ok(prompt);
    };
    let text = |name: &str| parameters.get(name).filter(|v| !v.is_null());
    if let Some(ratio) = text("aspectRatio")
        && !ratio.as_str().is_some_and(|r| ASPECT_RATIOS.contains(&r))
    {
        return Err(format!(
            "* parameters.aspectRatio: {ratio} is not supported; use 16:9 or 9:16"
        ));
    }
    let duration = match text("durationSeconds") {
        None => None,
        Some(value) => {
            let seconds = value
                .as_u64()
                .or_else(|| value.as_str().and_then(|s| s.parse().ok()));
            match seconds {
                Some(s) if DURATIONS.contains(&s) => Some(s),
                _ => {
                    return Err(format!(
                        "* parameters.durationSeconds: {value} is not supported; use 4, 6 or 8"
                    ));
                }
            }
        }
    };
    if let Some(resolution) = text("resolution") {
        let Some(resolution) = resolution.as_str().filter(|r| RESOLUTIONS.contains(r)) else {
            return Err(format!(
                "* parameters.resolution: {resolution} is not supported; use 720p, 1080p or 4k"
            ));
        };
        if resolution != "720p" && duration.is_some_and(|d| d != 8) {
            return Err(format!(
                "* parameters.durationSeconds: {resolution} videos must be 8 seconds long"
            ));
        }
    }
    if let Some(person) = text("personGeneration")
        && !person
            .as_str()
            .is_some_and(|p| PERSON_GENERATION.contains(&p))
    {
        return Err(format!(
            "* parameters.personGeneration: {person} is not supported; use allow_all, allow_adult or dont_allow"
        ));
    }
    if let Some(negative) = text("negativePrompt")
        && !negative.is_string()
    {
        return Err("* parameters.negativePrompt: must be a string".to_owned());
    }
    if let Some(count) = text("sampleCount")
        && !count.as_u64().is_some_and(|c| (1..=4).contains(&c))
    {
        return Err(format!(
            "* parameters.sampleCount: {count} is out of range [1, 4]"
        ));
    }
    Ok(prompt)
}

/// An inline image: `bytesBase64Encoded` that decodes, and an image `mimeType`.
fn check_image(field: &str, image: &Value) -> Result<(), String> {
    let bytes = image.get("bytesBase64Encoded").and_then(Value::as_str);
    let uri = image.get("gcsUri").or_else(|| image.get("uri"));
    match (bytes, uri) {
        (Some(bytes), _) => {
            if BASE64.decode(bytes).map_or(true, |b| b.is_empty()) {
                return Err(format!(
                    "* instances[0].{field}.bytesBase64Encoded: not valid base64"
                ));
            }
            let mime = image.get("mimeType").and_then(Value::as_str).unwrap_or("");
            if !mime.starts_with("image/") {
                return Err(format!(
                    "* instances[0].{field}.mimeType: an image MIME type is required with bytesBase64Encoded"
                ));
            }
            Ok(())
        }
        (None, Some(_)) => Ok(()),
        (None, None) => Err(format!(
            "* instances[0].{field}: bytesBase64Encoded (with mimeType) is required"
        )),
    }
}
