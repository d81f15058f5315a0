//! Black Forest Labs (Flux) image generation: a task submitted to `POST /v1/{model}`, polled at
//! `GET /v1/get_result?id=…` until its `sample` URL is ready.
//!
//! Wire format from BFL's API reference (<https://docs.bfl.ai/api-reference/models/generate-or-edit-an-image-with-flux2-%5Bpro%5D>,
//! <https://docs.bfl.ai/api-reference/utility/get-result>) and its errors page
//! (<https://docs.bfl.ai/api_integration/errors>):
//!
//! - Every request carries the key in `x-key`; without one the API answers 403
//!   `{"detail": "Not authenticated"}` (FastAPI's API-key check). Bad fields are FastAPI's 422
//!   `{"detail": [{"type", "loc", "msg", "input"}]}`.
//! - A submission answers `{"id", "polling_url"}` (FLUX.2 also `cost`, `input_mp`, `output_mp`);
//!   the polling URL is absolute, back to this simulator.
//! - A poll answers `{"id", "status", "result", "progress", "details", "preview"}` with status
//!   `Pending` (progress 0–1) for the first [`SimConfig::job_polls`] polls, then `Ready` with
//!   `result: {"sample": URL, "prompt", "seed", "start_time", "end_time", "duration"}`. The other
//!   statuses: `Content Moderated` (the output was flagged, `Behaviour::ContentFiltered`; BFL's
//!   `Request Moderated` is for a flagged input), `Error` (`Behaviour::JobFailed`), and
//!   `Task not found` for an id the simulator does not know (200, as `get_result` documents no
//!   other success status). `Behaviour::JobStuck` keeps a task `Pending`.
//!
//! Models and their sizes: the FLUX.2 models (`flux-2-pro`, `-max`, `-flex`) take `width` and
//! `height` (multiples of 16, at least 64, at most 4 MP; 1024×1024 when left out or 0) and up to
//! eight `input_image`s (base64 or a URL) for editing; FLUX.1 Kontext (`flux-kontext-pro`,
//! `-max`) takes `input_image` and an `aspect_ratio` between 21:9 and 9:21 (about 1 MP; 1:1 by
//! default); FLUX1.1 [pro] Ultra an `aspect_ratio` (about 4 MP; 16:9 by default); FLUX1.1 [pro],
//! FLUX.1 [pro] and [dev] `width` and `height` (multiples of 32 from 256 to 1440; 1024×768 by
//! default). `output_format` is `jpeg` (the default) or `png`, `safety_tolerance` 0–6.
//!
//! A task takes its behaviour at submission, as every job does (`jobs`): `ServerError`,
//! `RateLimited` and `Refused` answer the submission with BFL's `{"detail": …}` error (429 with
//! `Retry-After`); polls and the sample's download never take one from the script.
//!
//! [`SimConfig::job_polls`]: crate::SimConfig::job_polls

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::config::Behaviour;
use crate::engine::{self, Failure};
use crate::image::{self, ImageFormat, Picture};
use crate::jobs::{Job, Phase};
use crate::json::to_json;
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;

/// How a model is asked for its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sizing {
    /// FLUX.2: `width` × `height`, multiples of 16, up to 4 MP, 1024×1024 by default.
    Flux2,
    /// Kontext: `aspect_ratio`, about 1 MP, 1:1 by default.
    Kontext,
    /// FLUX1.1 [pro] Ultra: `aspect_ratio`, about 4 MP, 16:9 by default.
    Ultra,
    /// FLUX1.1 [pro], FLUX.1 [pro] and [dev]: `width` × `height`, multiples of 32 in 256..=1440,
    /// 1024×768 by default.
    Classic,
}

/// The models the simulator serves, each at `POST /v1/{model}`.
const MODELS: [(&str, Sizing); 9] = [
    ("flux-2-pro", Sizing::Flux2),
    ("flux-2-max", Sizing::Flux2),
    ("flux-2-flex", Sizing::Flux2),
    ("flux-kontext-pro", Sizing::Kontext),
    ("flux-kontext-max", Sizing::Kontext),
    ("flux-pro-1.1-ultra", Sizing::Ultra),
    ("flux-pro-1.1", Sizing::Classic),
    ("flux-pro", Sizing::Classic),
    ("flux-dev", Sizing::Classic),
];

/// Pixels of a FLUX.2 image at most.
const FLUX2_MAX_PIXELS: u64 = 4 * 1024 * 1024;

/// The Flux routes: a submission per model, and the poll.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    let mut router = Router::new().route("/v1/get_result", get(get_result));
    for (model, sizing) in MODELS {
        router = router.route(
            &format!("/v1/{model}"),
            post(
                move |State(shared): State<Arc<Shared>>,
                      uri: Uri,
                      headers: HeaderMap,
                      body: Bytes| {
                    submit(shared, model, sizing, uri, headers, body)
                },
            ),
        );
    }
    router
}

/// The key as received in `x-key`.
fn key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-key")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// BFL's `{"detail": …}` error.
fn detail(status: StatusCode, detail: Value) -> Response {
    let mut response = (status, to_json(&json!({ "detail": detail }))).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn not_authenticated() -> Response {
    detail(StatusCode::FORBIDDEN, json!("Not authenticated"))
}

/// One FastAPI validation error (422).
fn unprocessable(kind: &str, loc: &[&str], msg: String, input: Value) -> Response {
    invalid(kind, loc, msg, input).into_response()
}

/// A field FastAPI's validation refuses: one item of the 422's `detail`.
struct Invalid(Value);

impl Invalid {
    fn into_response(self) -> Response {
        detail(StatusCode::UNPROCESSABLE_ENTITY, json!([self.0]))
    }
}

fn invalid(kind: &str, loc: &[&str], msg: String, input: Value) -> Invalid {
    Invalid(json!({ "type": kind, "loc": loc, "msg": msg, "input": input }))
}

fn failure_response(failure: Failure) -> Response {
    match failure {
        Failure::Server => detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!("Internal Server Error"),
        ),
        Failure::Overloaded => detail(
            StatusCode::SERVICE_UNAVAILABLE,
            json!("Service temporarily unavailable, please try again later."),
        ),
        Failure::Refused { status, message } => detail(status, json!(message)),
        Failure::RateLimited { retry_after_secs } => {
            let mut response = detail(
                StatusCode::TOO_MANY_REQUESTS,
                json!(format!(
                    "You have exceeded your number of active tasks (simulated). Please retry in {retry_after_secs}s."
                )),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
    }
}

/// A task the simulator accepted.
#[derive(Debug)]
struct Task {
    prompt: String,
    width: u32,
    height: u32,
    format: ImageFormat,
    seed: u64,
    input_images: usize,
}

impl Task {
    /// Checks the fields BFL checks; `Err` is the 422's item.
    fn parse(body: &Value, sizing: Sizing) -> Result<Self, Invalid> {
        let Some(object) = body.as_object() else {
            return Err(invalid(
                "model_attributes_type",
                &["body"],
                "Input should be a valid dictionary or object to extract fields from".to_owned(),
                body.clone(),
            ));
        };
        let present = |key: &str| object.get(key).filter(|v| !v.is_null());
        let prompt = match present("prompt") {
            Some(Value::String(prompt)) => prompt.clone(),
            Some(other) => {
                return Err(invalid(
                    "string_type",
                    &["body", "prompt"],
                    "Input should be a valid string".to_owned(),
                    other.clone(),
                ));
            }
            None => {
                return Err(invalid(
                    "missing",
                    &["body", "prompt"],
                    "Field required".to_owned(),
                    body.clone(),
                ));
            }
        };
        let integer = |key: &'static str| -> Result<Option<u64>, Invalid> {
            match present(key) {
                None => Ok(None),
                Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                    invalid(
                        "int_type",
                        &["body", key],
                        "Input should be a valid integer".to_owned(),
                        value.clone(),
                    )
                }),
            }
        };
        let (width, height) = match sizing {
            Sizing::Flux2 => flux2_size(integer("width")?, integer("height")?)?,
            Sizing::Classic => (
                classic_side("width", integer("width")?.unwrap_or(1024))?,
                classic_side("height", integer("height")?.unwrap_or(768))?,
            ),
            Sizing::Kontext | Sizing::Ultra => {
                let (default, pixels, step) = if sizing == Sizing::Kontext {
                    ("1:1", 1024 * 1024, 16)
                } else {
                    ("16:9", 4 * 1024 * 1024, 32)
                };
                let ratio = match present("aspect_ratio") {
                    None => default.to_owned(),
                    Some(Value::String(ratio)) => ratio.clone(),
                    Some(other) => {
                        return Err(invalid(
                            "string_type",
                            &["body", "aspect_ratio"],
                            "Input should be a valid string".to_owned(),
                            other.clone(),
                        ));
                    }
                };
                let parsed = image::parse_ratio(&ratio).filter(|&(w, h)| {
                    // Between 21:9 and 9:21.
                    u64::from(w) * 9 <= u64::from(h) * 21 && u64::from(h) * 9 <= u64::from(w) * 21
                });
                let Some(parsed) = parsed else {
                    return Err(invalid(
                        "value_error",
                        &["body", "aspect_ratio"],
                        "Value error, Aspect ratio must be between 21:9 and 9:21".to_owned(),
                        Value::String(ratio),
                    ));
                };
                image::fit_ratio(parsed, pixels, step)
            }
        };
        let format = match present("output_format") {
            None => ImageFormat::Jpeg,
            Some(Value::String(f)) if f == "jpeg" => ImageFormat::Jpeg,
            Some(Value::String(f)) if f == "png" => ImageFormat::Png,
            Some(other) => {
                return Err(invalid(
                    "enum",
                    &["body", "output_format"],
                    "Input should be 'jpeg' or 'png'".to_owned(),
                    other.clone(),
                ));
            }
        };
        if let Some(tolerance) = integer("safety_tolerance")?
            && tolerance > 6
        {
            return Err(invalid(
                "less_than_equal",
                &["body", "safety_tolerance"],
                "Input should be less than or equal to 6".to_owned(),
                json!(tolerance),
            ));
        }
        let seed = integer("seed")?.unwrap_or_else(|| image::seed_of(&prompt) & 0xffff_ffff);
        if let Some(value) = present("prompt_upsampling")
            && !value.is_boolean()
        {
            return Err(invalid(
                "bool_type",
                &["body", "prompt_upsampling"],
                "Input should be a valid boolean".to_owned(),
                value.clone(),
            ));
        }
        let input_images = object
            .iter()
            .filter(|(k, v)| {
                (k.starts_with("input_image") || *k == "image_prompt") && v.is_string()
            })
            .count();
        Ok(Self {
            prompt,
            width,
            height,
            format,
            seed,
            input_images,
        })
    }
}

/// A FLUX.2 size: 1024×1024 unless stated (0 means unstated), multiples of 16, at least 64,
/// at most 4 MP.
fn flux2_size(width: Option<u64>, height: Option<u64>) -> Result<(u32, u32), Invalid> {
    let side = |name: &'static str, value: Option<u64>| -> Result<u64, Invalid> {
        let value = value.filter(|&v| v != 0).unwrap_or(1024);
        if value < 64 {
            return Err(invalid(
                "greater_than_equal",
                &["body", name],
                "Input should be greater than or equal to 64".to_owned(),
                json!(value),
            ));
        }
        if !value.is_multiple_of(16) {
            return Err(invalid(
                "value_error",
                &["body", name],
                format!("Value error, {name} must be a multiple of 16"),
                json!(value),
            ));
        }
        Ok(value)
    };
    let (w, h) = (side("width", width)?, side("height", height)?);
    if w * h > FLUX2_MAX_PIXELS {
        return Err(invalid(
            "value_error",
            &["body"],
            format!("Value error, width × height must be at most 4 megapixels, got {w}x{h}"),
            json!({ "width": w, "height": h }),
        ));
    }
    Ok((
        u32::try_from(w).unwrap_or(1024),
        u32::try_from(h).unwrap_or(1024),
    ))
}

/// A FLUX1.1 [pro] or [dev] side: a multiple of 32 from 256 to 1440.
fn classic_side(name: &'static str, value: u64) -> Result<u32, Invalid> {
    if !(256..=1440).contains(&value) {
        let (kind, msg) = if value < 256 {
            (
                "greater_than_equal",
                "Input should be greater than or equal to 256",
            )
        } else {
            (
                "less_than_equal",
                "Input should be less than or equal to 1440",
            )
        };
        return Err(invalid(kind, &["body", name], msg.to_owned(), json!(value)));
    }
    if !value.is_multiple_of(32) {
        return Err(invalid(
            "multiple_of",
            &["body", name],
            "Input should be a multiple of 32".to_owned(),
            json!(value),
        ));
    }
    Ok(u32::try_from(value).unwrap_or(1024))
}

/// `POST /v1/{model}`: a new task.
async fn submit(
    shared: Arc<Shared>,
    model: &'static str,
    sizing: Sizing,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(key) = key(&headers) else {
        return not_authenticated();
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return detail(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!([{
                    "type": "json_invalid",
                    "loc": ["body", err.column()],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": { "error": err.to_string() },
                }]),
            );
        }
    };
    let task = match Task::parse(&body, sizing) {
        Ok(task) => task,
        Err(invalid) => return invalid.into_response(),
    };
    let incoming = Incoming::new(WireFormat::Bfl, &uri, Some(key), body).with_text(&task.prompt);
    let (behaviour, mut guard) = shared.begin(incoming);
    tracing::debug!(?behaviour, model, ?task, "flux submission");
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let mut params = Map::new();
    params.insert("width".to_owned(), json!(task.width));
    params.insert("height".to_owned(), json!(task.height));
    params.insert("seed".to_owned(), json!(task.seed));
    // A task that will succeed gets its image now; its URL is handed out once a poll finds
    // the task ready.
    if !matches!(
        behaviour,
        Behaviour::ContentFiltered | Behaviour::JobFailed | Behaviour::JobStuck
    ) {
        let bytes = image::render(
            task.format,
            task.width,
            task.height,
            Picture::Gradient(task.seed),
        )
        .await;
        let sample = image::publish(&shared, &headers, task.format, bytes, &behaviour);
        params.insert("sample".to_owned(), Value::String(sample));
    }
    let job = Job::new(
        id.clone(),
        WireFormat::Bfl,
        model,
        &task.prompt,
        behaviour,
        Value::Object(params),
    );
    shared.jobs().insert(job);
    let polling_url = image::absolute_url(&headers, &format!("/v1/get_result?id={id}"));
    let mut reply = json!({ "id": id, "polling_url": polling_url });
    if sizing == Sizing::Flux2 {
        let output_mp = f64::from(task.width) * f64::from(task.height) / 1_000_000.0;
        let input_mp = task.input_images as f64;
        reply["cost"] = json!(
            ((3.0 + 1.5 * (output_mp - 1.0).max(0.0) + 1.5 * input_mp) * 100.0).round() / 100.0
        );
        reply["input_mp"] = json!(input_mp);
        reply["output_mp"] = json!((output_mp * 100.0).round() / 100.0);
    }
    guard.finish();
    axum::Json(reply).into_response()
}

/// `GET /v1/get_result?id=…`: where a task is.
async fn get_result(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(key) = key(&headers) else {
        return not_authenticated();
    };
    let Some(id) = query.get("id").cloned() else {
        return unprocessable(
            "missing",
            &["query", "id"],
            "Field required".to_owned(),
            Value::Null,
        );
    };
    let incoming = Incoming::new(WireFormat::BflResult, &uri, Some(key), Value::Null);
    let polled = shared
        .jobs()
        .get(&id)
        .filter(|job| job.api == WireFormat::Bfl)
        .and_then(|_| shared.jobs().poll(&id, shared.config().job_polls));
    let Some((job, phase)) = polled else {
        let mut guard = shared.follow_up(incoming, Behaviour::Normal);
        guard.finish();
        return axum::Json(json!({
            "id": id,
            "status": "Task not found",
            "result": null,
            "progress": null,
            "details": null,
            "preview": null,
        }))
        .into_response();
    };
    let mut guard = shared.follow_up(incoming, job.behaviour.clone());
    let (status, result, progress, details) = match phase {
        Phase::Running { progress } => (
            "Pending",
            Value::Null,
            json!(f64::from(progress) / 100.0),
            Value::Null,
        ),
        Phase::Succeeded => {
            let started = Job::unix_millis(job.created) as f64 / 1000.0;
            let ended =
                Job::unix_millis(job.finished.unwrap_or_else(SystemTime::now)) as f64 / 1000.0;
            let result = json!({
                "sample": job.params.get("sample").cloned().unwrap_or(Value::Null),
                "prompt": job.prompt,
                "seed": job.params.get("seed").cloned().unwrap_or(Value::Null),
                "start_time": started,
                "end_time": ended,
                "duration": (ended - started).max(0.0),
            });
            ("Ready", result, Value::Null, Value::Null)
        }
        Phase::Filtered => (
            "Content Moderated",
            Value::Null,
            Value::Null,
            json!({ "Moderation Reasons": ["Explicit Content"] }),
        ),
        Phase::Failed => (
            "Error",
            Value::Null,
            Value::Null,
            json!({ "error": "Generation failed (simulated)." }),
        ),
    };
    guard.finish();
    axum::Json(json!({
        "id": id,
        "status": status,
        "result": result,
        "progress": progress,
        "details": details,
        "preview": null,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value, sizing: Sizing) -> Option<Task> {
        Task::parse(&body, sizing).ok()
    }

    #[test]
    fn sizes_per_model() {
        let flux2 = parse(json!({"prompt": "x"}), Sizing::Flux2).unwrap();
        assert_eq!((flux2.width, flux2.height), (1024, 1024));
        assert_eq!(flux2.format, ImageFormat::Jpeg);
        let wide = parse(
            json!({"prompt": "x", "width": 1440, "height": 816}),
            Sizing::Flux2,
        );
        assert_eq!(wide.map(|t| (t.width, t.height)), Some((1440, 816)));
        assert!(parse(json!({"prompt": "x", "width": 1000}), Sizing::Flux2).is_none());
        assert!(
            parse(
                json!({"prompt": "x", "width": 4096, "height": 4096}),
                Sizing::Flux2
            )
            .is_none()
        );
        let classic = parse(json!({"prompt": "x"}), Sizing::Classic).unwrap();
        assert_eq!((classic.width, classic.height), (1024, 768));
        assert!(parse(json!({"prompt": "x", "width": 1000}), Sizing::Classic).is_none());
        let kontext = parse(
            json!({"prompt": "x", "aspect_ratio": "16:9"}),
            Sizing::Kontext,
        )
        .unwrap();
        assert!(kontext.width > kontext.height);
        assert!(
            parse(
                json!({"prompt": "x", "aspect_ratio": "4:1"}),
                Sizing::Kontext
            )
            .is_none()
        );
        let ultra = parse(json!({"prompt": "x"}), Sizing::Ultra).unwrap();
        assert!(u64::from(ultra.width) * u64::from(ultra.height) > 3_500_000);
    }

    #[test]
    fn fields_are_checked() {
        assert!(parse(json!({}), Sizing::Flux2).is_none());
        assert!(
            parse(
                json!({"prompt": "x", "output_format": "webp"}),
                Sizing::Flux2
            )
            .is_none()
        );
        assert!(parse(json!({"prompt": "x", "safety_tolerance": 7}), Sizing::Flux2).is_none());
        let png = parse(
            json!({"prompt": "x", "output_format": "png", "seed": 42, "input_image": "aGk="}),
            Sizing::Flux2,
        )
        .unwrap();
        assert_eq!(
            (png.format, png.seed, png.input_images),
            (ImageFormat::Png, 42, 1)
        );
    }
}
