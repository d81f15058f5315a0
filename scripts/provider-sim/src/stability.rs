//! Stability AI image generation: the Stable Image v2beta services (`core`, `sd3`, `ultra`) and
//! SDXL 1.0's v1 `text-to-image`.
//!
//! Wire format from Stability's API reference (<https://platform.stability.ai/docs/api-reference>,
//! tags "Generate" and "v1/generation"):
//!
//! - v2beta: `POST /v2beta/stable-image/generate/{core|sd3|ultra}`, `authorization: Bearer
//!   sk-…`, a `multipart/form-data` body of at most 10 MiB: `prompt` (required, at most 10 000
//!   characters), `negative_prompt`, `aspect_ratio` (`16:9`, `1:1` default, `21:9`, `2:3`, `3:2`,
//!   `4:5`, `5:4`, `9:16`, `9:21`), `seed` (0–4 294 967 294, 0 for a random one),
//!   `output_format` (`png` default, `jpeg`, `webp`), `style_preset` (core, sd3); `sd3` also
//!   `model` (`sd3.5-large` default, `sd3.5-large-turbo`, `sd3.5-medium`, `sd3.5-flash`,
//!   `sd3-large`, `sd3-large-turbo`, `sd3-medium`), `mode` (`text-to-image` or `image-to-image`
//!   with an `image` file and a `strength`), `cfg_scale`; `ultra` an optional `image` and
//!   `strength`. With `accept: image/*` (the default) the answer is the image's bytes with
//!   `finish-reason` and `seed` headers; with `accept: application/json` it is `{"image": base64,
//!   "finish_reason", "seed"}`. Errors are `{"id", "name", "errors": [..]}`: 400 `bad_request`,
//!   401 `unauthorized`, 403 `content_moderation` (a flagged prompt), 413 `payload_too_large`,
//!   429 `rate_limit_exceeded`, 500 `internal_error`.
//! - v1: `POST /v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image`, `Authorization:
//!   Bearer`, JSON `{"text_prompts": [{"text", "weight"}], "width", "height", "samples",
//!   "cfg_scale", "steps", "seed", …}`; SDXL takes only 1024×1024, 1152×896, 896×1152, 1216×832,
//!   832×1216, 1344×768, 768×1344, 1536×640 or 640×1536 (400 `invalid_sdxl_v1_dimensions`).
//!   `accept: application/json` (the default) answers `{"artifacts": [{"base64", "seed",
//!   "finishReason"}]}`, `accept: image/png` the first image's bytes with `Finish-Reason` and
//!   `Seed` headers. Errors are `{"id", "name", "message"}`.
//!
//! `Behaviour::ContentFiltered` is the documented output-side filter: a 200 whose finish reason
//! is `CONTENT_FILTERED` and whose image is blurred (here: flat grey). A flagged prompt, 403
//! `content_moderation`, is `Behaviour::Refused { status: 403, … }`. The output size for an
//! aspect ratio is not documented: the simulator makes about one megapixel, sides multiples of
//! 64 (1:1 is 1024×1024, 16:9 1344×768). WebP is refused with a 400 `unsupported_in_simulator`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::config::Behaviour;
use crate::content::new_id;
use crate::engine::{self, Failure};
use crate::image::{self, ImageFormat, ImageTurn, NOT_BASE64, Picture, Prepared};
use crate::json::to_json;
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;

/// Largest v2beta request: 10 MiB.
const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// Longest prompt and negative prompt, in characters.
const MAX_PROMPT_CHARS: usize = 10_000;
/// Largest seed the v2beta services take.
const MAX_SEED: u64 = 4_294_967_294;
const ASPECT_RATIOS: [&str; 9] = [
    "16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21",
];
const SD3_MODELS: [&str; 7] = [
    "sd3.5-large",
    "sd3.5-large-turbo",
    "sd3.5-medium",
    "sd3.5-flash",
    "sd3-large",
    "sd3-large-turbo",
    "sd3-medium",
];
const STYLE_PRESETS: [&str; 17] = [
    "3d-model",
    "analog-film",
    "anime",
    "cinematic",
    "comic-book",
    "digital-art",
    "enhance",
    "fantasy-art",
    "isometric",
    "line-art",
    "low-poly",
    "modeling-compound",
    "neon-punk",
    "origami",
    "photographic",
    "pixel-art",
    "tile-texture",
];
/// The SDXL 1.0 engine and the sizes it takes.
const SDXL_ENGINE: &str = "stable-diffusion-xl-1024-v1-0";
const SDXL_SIZES: [(u32, u32); 9] = [
    (1024, 1024),
    (1152, 896),
    (896, 1152),
    (1216, 832),
    (832, 1216),
    (1344, 768),
    (768, 1344),
    (1536, 640),
    (640, 1536),
];

/// A request the API refuses: its status, error name and explanation.
struct Rejection {
    status: StatusCode,
    name: &'static str,
    message: String,
}

impl Rejection {
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn new(status: StatusCode, name: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            name,
            message: message.into(),
        }
    }

    fn v2(self) -> Response {
        v2_error(self.status, self.name, self.message)
    }

    fn v1(self) -> Response {
        v1_error(self.status, self.name, self.message)
    }
}

/// A v2beta error: `{"id", "name", "errors"}`.
fn v2_error(status: StatusCode, name: &str, error: impl Into<String>) -> Response {
    let body = json!({ "id": new_id(""), "name": name, "errors": [error.into()] });
    json_response(status, &body)
}

/// A v1 error: `{"id", "name", "message"}`.
fn v1_error(status: StatusCode, name: &str, message: impl Into<String>) -> Response {
    let body = json!({ "id": new_id(""), "name": name, "message": message.into() });
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, to_json(body)).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The error `failure` gets, in either version's shape.
fn failure_response(failure: Failure, v1: bool) -> Response {
    let error = if v1 { v1_error } else { v2_error };
    match failure {
        Failure::Server => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "An unexpected server error has occurred, please try again later.".to_owned(),
        ),
        Failure::Overloaded => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "The service is overloaded, please try again later.".to_owned(),
        ),
        Failure::Refused { status, message } => {
            let name = match status.as_u16() {
                401 => "unauthorized",
                402 => "payment_required",
                403 if v1 => "permission_denied",
                403 => "content_moderation",
                404 => "not_found",
                413 => "payload_too_large",
                422 => "invalid_language",
                _ => "bad_request",
            };
            error(status, name, message)
        }
        Failure::RateLimited { retry_after_secs } => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                format!(
                    "You have exceeded the rate limit of 150 requests within a 10 second period, and have been timed out for {retry_after_secs} seconds."
                ),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
    }
}

/// The key as received: `authorization`, with or without `Bearer `.
fn key(headers: &HeaderMap) -> Option<String> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty() && v.trim() != "Bearer")
        .map(str::to_owned)
}

/// Whether the client asked for JSON rather than the image's bytes.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// A v2beta form, read whole: its text fields and the `image` file's size.
struct Form {
    fields: Map<String, Value>,
    image_bytes: Option<usize>,
}

impl Form {
    fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    async fn read(headers: &HeaderMap, body: Bytes) -> Result<Self, Response> {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !content_type.starts_with("multipart/form-data") {
            return Err(v2_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "content-type: must be multipart/form-data",
            ));
        }
        let mut request = Request::new(Body::from(body));
        if let Ok(value) = HeaderValue::from_str(content_type) {
            request.headers_mut().insert(CONTENT_TYPE, value);
        }
        let unreadable = |err: &dyn std::fmt::Display| {
            v2_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("body: could not be read as multipart/form-data ({err})"),
            )
        };
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|err| unreadable(&err))?;
        let mut form = Form {
            fields: Map::new(),
            image_bytes: None,
        };
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|err| unreadable(&err))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            let filename = field.file_name().map(str::to_owned);
            let field_type = field.content_type().map(str::to_owned);
            let data = field.bytes().await.map_err(|err| unreadable(&err))?;
            if filename.is_some() || name == "image" {
                form.image_bytes = Some(data.len());
                form.fields.insert(
                    name,
                    json!({ "filename": filename, "content_type": field_type, "bytes": data.len() }),
                );
            } else {
                let text = String::from_utf8_lossy(&data).into_owned();
                form.fields.insert(name, Value::String(text));
            }
        }
        Ok(form)
    }
}

/// A v2beta generation the simulator accepted.
#[derive(Debug)]
struct Generation {
    prompt: String,
    size: (u32, u32),
    format: ImageFormat,
    seed: u64,
}

impl Generation {
    fn parse(service: &str, form: &Form) -> Result<Self, Rejection> {
        let bad = Rejection::bad;
        let prompt = form.text("prompt").unwrap_or_default().to_owned();
        if prompt.trim().is_empty() {
            return Err(bad("prompt: is required".to_owned()));
        }
        for name in ["prompt", "negative_prompt"] {
            if form
                .text(name)
                .is_some_and(|t| t.chars().count() > MAX_PROMPT_CHARS)
            {
                return Err(bad(format!(
                    "{name}: must be at most {MAX_PROMPT_CHARS} characters"
                )));
            }
        }
        let one_of = |name: &str, allowed: &[&str]| -> Result<(), Rejection> {
            match form.text(name) {
                Some(value) if !allowed.contains(&value) => Err(bad(format!(
                    "{name}: must be one of {}",
                    allowed.join(", ")
                ))),
                _ => Ok(()),
            }
        };
        one_of("aspect_ratio", &ASPECT_RATIOS)?;
        if service != "ultra" {
            one_of("style_preset", &STYLE_PRESETS)?;
        }
        let image_to_image = match service {
            "sd3" => {
                one_of("model", &SD3_MODELS)?;
                one_of("mode", &["text-to-image", "image-to-image"])?;
                form.text("mode") == Some("image-to-image")
            }
            "ultra" => form.image_bytes.is_some(),
            _ => false,
        };
        if image_to_image {
            if form.image_bytes.is_none() {
                return Err(bad("image: is required for image-to-image".to_owned()));
            }
            let strength = form.text("strength").and_then(|s| s.parse::<f64>().ok());
            if !strength.is_some_and(|s| (0.0..=1.0).contains(&s)) {
                return Err(bad("strength: must be a number between 0 and 1".to_owned()));
            }
        }
        let seed = match form.text("seed") {
            None => 0,
            Some(seed) => match seed.parse::<u64>() {
                Ok(seed) if seed <= MAX_SEED => seed,
                _ => {
                    return Err(bad(format!(
                        "seed: must be an integer between 0 and {MAX_SEED}"
                    )));
                }
            },
        };
        // 0 asks for a random seed: the prompt's, so the same prompt gives the same image.
        let seed = if seed == 0 {
            image::seed_of(&prompt) % MAX_SEED + 1
        } else {
            seed
        };
        let format = match form.text("output_format").unwrap_or("png") {
            "png" => ImageFormat::Png,
            "jpeg" => ImageFormat::Jpeg,
            "webp" => {
                return Err(Rejection::new(
                    StatusCode::BAD_REQUEST,
                    "unsupported_in_simulator",
                    "output_format: provider-sim cannot encode webp; ask for png or jpeg",
                ));
            }
            _ => {
                return Err(bad(
                    "output_format: must be one of jpeg, png, webp".to_owned()
                ));
            }
        };
        let ratio = form
            .text("aspect_ratio")
            .and_then(image::parse_ratio)
            .unwrap_or((1, 1));
        Ok(Self {
            prompt,
            size: image::fit_ratio(ratio, 1024 * 1024, 64),
            format,
            seed,
        })
    }
}

/// `POST /v2beta/stable-image/generate/{service}`.
pub(crate) async fn generate(
    State(shared): State<Arc<Shared>>,
    Path(service): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !matches!(service.as_str(), "core" | "sd3" | "ultra") {
        return v2_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{}: not found", uri.path()),
        );
    }
    let Some(key) = key(&headers) else {
        return v2_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "authorization: missing or invalid API key",
        );
    };
    if body.len() > MAX_REQUEST_BYTES {
        return v2_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "body: payloads cannot be larger than 10MiB in size",
        );
    }
    let form = match Form::read(&headers, body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let generation = match Generation::parse(&service, &form) {
        Ok(generation) => generation,
        Err(rejection) => return rejection.v2(),
    };
    let incoming = Incoming::new(
        WireFormat::Stability,
        &uri,
        Some(key),
        Value::Object(form.fields),
    )
    .with_text(&generation.prompt);
    let (behaviour, mut guard) = shared.begin(incoming);
    tracing::debug!(?behaviour, service, ?generation, "stability generate");
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, false);
    }
    let filtered = behaviour == Behaviour::ContentFiltered;
    let (picture, finish_reason) = if filtered {
        (Picture::Blurred, "CONTENT_FILTERED")
    } else {
        (Picture::Gradient(generation.seed), "SUCCESS")
    };
    let (width, height) = generation.size;
    let bytes = image::render(generation.format, width, height, picture).await;
    let mime = generation.format.mime_type();
    let seed = generation.seed.to_string();
    let (reply, bad_data) = if wants_json(&headers) {
        let content_type = format!("application/json; type={mime}");
        let body = |image: String| {
            to_json(
                &json!({ "image": image, "finish_reason": finish_reason, "seed": generation.seed }),
            )
        };
        (
            Prepared::new(&content_type, body(BASE64.encode(&bytes))),
            Some(Prepared::new(&content_type, body(NOT_BASE64.to_owned()))),
        )
    } else {
        (Prepared::new(mime, bytes), None)
    };
    let with_headers = |prepared: Prepared| {
        prepared
            .with_header("finish-reason", finish_reason)
            .with_header("seed", &seed)
            .with_header("x-request-id", &new_id(""))
    };
    let turn = ImageTurn {
        images: 1,
        reply: with_headers(reply),
        bad_data: bad_data.map(with_headers),
        failure: Box::new(|failure| failure_response(failure, false)),
    };
    image::respond(&shared, turn, &behaviour, guard).await
}

/// An SDXL text-to-image request the simulator accepted.
#[derive(Debug)]
struct TextToImage {
    prompt: String,
    size: (u32, u32),
    samples: usize,
    seed: u64,
}

impl TextToImage {
    fn parse(body: &Value) -> Result<Self, Rejection> {
        let bad = |name: &'static str, message: String| {
            Rejection::new(StatusCode::BAD_REQUEST, name, message)
        };
        let Some(object) = body.as_object() else {
            return Err(bad("bad_request", "body: must be a JSON object".to_owned()));
        };
        let prompts = object
            .get("text_prompts")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                bad(
                    "bad_request",
                    "text_prompts: is required and must hold at least one prompt".to_owned(),
                )
            })?;
        let mut texts = Vec::new();
        for prompt in prompts {
            let text = prompt
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if text.trim().is_empty() {
                return Err(bad(
                    "bad_request",
                    "text_prompts[].text: cannot be empty".to_owned(),
                ));
            }
            // Negative weights are what to leave out; the positive ones make the picture.
            if prompt.get("weight").and_then(Value::as_f64).unwrap_or(1.0) > 0.0 {
                texts.push(text);
            }
        }
        let number = |name: &str, default: f64, range: std::ops::RangeInclusive<f64>| match object
            .get(name)
            .filter(|v| !v.is_null())
        {
            None => Ok(default),
            Some(value) => value.as_f64().filter(|v| range.contains(v)).ok_or_else(|| {
                bad(
                    "bad_request",
                    format!(
                        "{name}: must be a number between {} and {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
        };
        let width = number("width", 1024.0, 128.0..=2048.0)? as u32;
        let height = number("height", 1024.0, 128.0..=2048.0)? as u32;
        if !SDXL_SIZES.contains(&(width, height)) {
            let allowed = SDXL_SIZES
                .iter()
                .map(|(w, h)| format!("{w}x{h}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(bad(
                "invalid_sdxl_v1_dimensions",
                format!(
                    "for stable-diffusion-xl-1024-v1-0 the allowed dimensions are {allowed}, but we received {width}x{height}"
                ),
            ));
        }
        let samples = number("samples", 1.0, 1.0..=10.0)? as usize;
        number("cfg_scale", 7.0, 0.0..=35.0)?;
        number("steps", 30.0, 10.0..=50.0)?;
        let seed = number("seed", 0.0, 0.0..=4_294_967_295.0)? as u64;
        let prompt = texts.join(" ");
        let seed = if seed == 0 {
            image::seed_of(&prompt) & 0xffff_ffff
        } else {
            seed
        };
        Ok(Self {
            prompt,
            size: (width, height),
            samples,
            seed,
        })
    }
}

/// `POST /v1/generation/{engine_id}/text-to-image` (SDXL 1.0).
pub(crate) async fn text_to_image(
    State(shared): State<Arc<Shared>>,
    Path(engine_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(key) = key(&headers) else {
        return v1_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid authorization header",
        );
    };
    if engine_id != SDXL_ENGINE {
        return v1_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("engine: {engine_id} not found (provider-sim serves {SDXL_ENGINE})"),
        );
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return v1_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("body: could not be parsed as JSON ({err})"),
            );
        }
    };
    let request = match TextToImage::parse(&body) {
        Ok(request) => request,
        Err(rejection) => return rejection.v1(),
    };
    let incoming =
        Incoming::new(WireFormat::Stability, &uri, Some(key), body).with_text(&request.prompt);
    let (behaviour, mut guard) = shared.begin(incoming);
    tracing::debug!(?behaviour, ?request, "stability sdxl text-to-image");
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, true);
    }
    let filtered = behaviour == Behaviour::ContentFiltered;
    let finish_reason = if filtered {
        "CONTENT_FILTERED"
    } else {
        "SUCCESS"
    };
    let (width, height) = request.size;
    let mut artifacts = Vec::with_capacity(request.samples);
    for index in 0..request.samples as u64 {
        let seed = request.seed.wrapping_add(index) & 0xffff_ffff;
        let picture = if filtered {
            Picture::Blurred
        } else {
            Picture::Gradient(seed)
        };
        let bytes = image::render(ImageFormat::Png, width, height, picture).await;
        artifacts.push((bytes, seed));
    }
    let accept_png = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("image/png"));
    let (reply, bad_data) = match artifacts.first() {
        Some((bytes, seed)) if accept_png => (
            Prepared::new("image/png", bytes.clone())
                .with_header("finish-reason", finish_reason)
                .with_header("seed", &seed.to_string()),
            None,
        ),
        _ => {
            let body = |bad: bool| {
                let artifacts: Vec<Value> = artifacts
                    .iter()
                    .map(|(bytes, seed)| {
                        let data = if bad {
                            NOT_BASE64.to_owned()
                        } else {
                            BASE64.encode(bytes)
                        };
                        json!({ "base64": data, "seed": seed, "finishReason": finish_reason })
                    })
                    .collect();
                Prepared::json(&json!({ "artifacts": artifacts }))
            };
            (body(false), Some(body(true)))
        }
    };
    let turn = ImageTurn {
        images: request.samples,
        reply,
        bad_data,
        failure: Box::new(|failure| failure_response(failure, true)),
    };
    image::respond(&shared, turn, &behaviour, guard).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form {
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect(),
            image_bytes: None,
        }
    }

    #[test]
    fn aspect_ratios_give_about_a_megapixel() {
        let square = Generation::parse("core", &form(&[("prompt", "a fox")])).ok();
        assert_eq!(square.map(|g| g.size), Some((1024, 1024)));
        let wide = Generation::parse("core", &form(&[("prompt", "x"), ("aspect_ratio", "16:9")]));
        assert_eq!(wide.ok().map(|g| g.size), Some((1344, 768)));
        assert!(
            Generation::parse("core", &form(&[("prompt", "x"), ("aspect_ratio", "4:3")])).is_err()
        );
    }

    #[test]
    fn the_form_is_checked() {
        assert!(Generation::parse("core", &form(&[])).is_err());
        assert!(Generation::parse("sd3", &form(&[("prompt", "x"), ("model", "sd9")])).is_err());
        let sd3 = Generation::parse("sd3", &form(&[("prompt", "x"), ("model", "sd3.5-medium")]));
        assert!(sd3.is_ok());
        let i2i = Generation::parse("sd3", &form(&[("prompt", "x"), ("mode", "image-to-image")]));
        assert!(i2i.is_err(), "image-to-image needs an image");
        assert!(
            Generation::parse("core", &form(&[("prompt", "x"), ("output_format", "webp")]))
                .is_err()
        );
        assert!(
            Generation::parse("core", &form(&[("prompt", "x"), ("seed", "4294967295")])).is_err()
        );
        let seeded = Generation::parse("core", &form(&[("prompt", "x"), ("seed", "42")])).ok();
        assert_eq!(seeded.map(|g| g.seed), Some(42));
    }

    #[test]
    fn sdxl_takes_only_its_sizes() {
        let ok = TextToImage::parse(
            &json!({"text_prompts": [{"text": "a fox"}], "width": 1344, "height": 768}),
        );
        assert_eq!(ok.ok().map(|t| t.size), Some((1344, 768)));
        assert!(
            TextToImage::parse(
                &json!({"text_prompts": [{"text": "a fox"}], "width": 512, "height": 512})
            )
            .is_err()
        );
        assert!(TextToImage::parse(&json!({"text_prompts": []})).is_err());
        assert!(
            TextToImage::parse(&json!({"text_prompts": [{"text": "x"}], "samples": 11})).is_err()
        );
    }
}
