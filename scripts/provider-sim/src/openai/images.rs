//! OpenAI image generation, `POST /v1/images/generations`, which xAI's Grok image models speak
//! too at their own base URL.
//!
//! Wire format from OpenAI's API reference (<https://platform.openai.com/docs/api-reference/images/create>,
//! "Create image") and xAI's image generation guide (<https://docs.x.ai/docs/guides/image-generations>):
//!
//! - GPT image models (`gpt-image-1`, `gpt-image-1-mini`, `gpt-image-1.5`, `gpt-image-2`): a prompt
//!   of up to 32 000 characters, `n` 1–10, `size` `auto` | `1024x1024` | `1536x1024` |
//!   `1024x1536`, `quality` `auto` | `low` | `medium` | `high`, `output_format` `png` | `jpeg` |
//!   `webp`, `output_compression`, `background`, `moderation`. They always answer base64
//!   (`data[].b64_json`) with `background`, `output_format`, `quality`, `size` and token `usage`,
//!   and refuse `response_format` (400 `unknown_parameter`).
//! - `dall-e-3`: up to 4000 characters, `n` 1 only, `size` `1024x1024` | `1792x1024` |
//!   `1024x1792`, `quality` `standard` | `hd`, `style` `vivid` | `natural`, `response_format`
//!   `url` (default) | `b64_json`, and a `revised_prompt` per image. `dall-e-2`: up to 1000
//!   characters, `size` `256x256` | `512x512` | `1024x1024`. Without `model` the API uses
//!   `dall-e-2`, unless a parameter only the GPT image models take is there (`gpt-image-1`).
//! - `grok-2-image` (`-1212`, `-latest`): `n` 1–10, `response_format` `url` (default) |
//!   `b64_json`; JPEG images (1024×768) with a `revised_prompt`, and a body of `data` alone. xAI
//!   documents `size`, `quality` and `style` as not supported; the simulator ignores them.
//!
//! A `url` points at `GET /_sim/files/{id}` on the simulator. WebP is refused with a 400
//! `unsupported_in_simulator`, and so is `stream: true` (partial-image events). The safety
//! system's refusal (`Behaviour::ContentFiltered`) is a 400: `moderation_blocked` of type
//! `image_generation_user_error` for the GPT image models, `content_policy_violation` for DALL·E
//! and Grok.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{
    Invalid, bearer_key, error_with_param, failure_response, invalid_request, invalid_value,
    missing, no_api_key,
};
use crate::config::Behaviour;
use crate::content::{new_id, word_count};
use crate::engine;
use crate::image::{self, ImageFormat, ImageTurn, NOT_BASE64, Picture, Prepared};
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;

/// The most images one request may ask for.
const MAX_N: u64 = 10;
/// Grok's images, whatever was asked.
const GROK_SIZE: (u32, u32) = (1024, 768);

/// Which kind of model a request is for: they take different parameters and answer differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    GptImage,
    DallE3,
    DallE2,
    Grok,
}

impl Family {
    fn of(model: &str) -> Option<Family> {
        match model {
            "gpt-image-1"
            | "gpt-image-1-mini"
            | "gpt-image-1.5"
            | "gpt-image-2"
            | "gpt-image-2-2026-04-21"
            | "chatgpt-image-latest" => Some(Family::GptImage),
            "dall-e-3" => Some(Family::DallE3),
            "dall-e-2" => Some(Family::DallE2),
            _ if model.starts_with("grok-2-image") => Some(Family::Grok),
            _ => None,
        }
    }

    fn max_prompt(self) -> Option<usize> {
        match self {
            Family::GptImage => Some(32_000),
            Family::DallE3 => Some(4000),
            Family::DallE2 => Some(1000),
            Family::Grok => None,
        }
    }

    fn sizes(self) -> &'static [&'static str] {
        match self {
            Family::GptImage => &["1024x1024", "1024x1536", "1536x1024", "auto"],
            Family::DallE3 => &["1024x1024", "1792x1024", "1024x1792"],
            Family::DallE2 => &["256x256", "512x512", "1024x1024"],
            Family::Grok => &[],
        }
    }

    fn qualities(self) -> &'static [&'static str] {
        match self {
            Family::GptImage => &["low", "medium", "high", "auto"],
            Family::DallE3 => &["standard", "hd", "auto"],
            Family::DallE2 => &["standard", "auto"],
            Family::Grok => &[],
        }
    }
}

/// Parameters only the GPT image models take; any of them picks `gpt-image-1` for a request
/// without `model`.
const GPT_IMAGE_ONLY: [&str; 6] = [
    "background",
    "moderation",
    "output_compression",
    "output_format",
    "partial_images",
    "stream",
];

/// `POST /v1/images/generations`.
pub(crate) async fn images_generations(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The real API checks the key before it reads the body.
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return invalid_request(
                format!("We could not parse the JSON body of your request: {err}"),
                None,
            );
        }
    };
    let request = match ImageRequest::parse(&body) {
        Ok(request) => request,
        Err(invalid) => return invalid.into_response(),
    };
    let incoming = Incoming::new(WireFormat::OpenAiImages, &uri, Some(authorization), body)
        .with_text(&request.prompt);
    let (behaviour, mut guard) = shared.begin(incoming);
    tracing::debug!(?behaviour, model = %request.model, n = request.n, "openai images");
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, &request.model);
    }
    if behaviour == Behaviour::ContentFiltered {
        guard.finish();
        return request.refusal();
    }
    let (width, height) = request.size;
    let mut images = Vec::with_capacity(request.n);
    for index in 0..request.n {
        let seed = image::seed_of(&request.prompt) ^ index as u64;
        images.push(image::render(request.format, width, height, Picture::Gradient(seed)).await);
    }
    let data: Vec<Value> = images
        .into_iter()
        .map(|bytes| request.datum(&shared, &headers, &behaviour, bytes))
        .collect();
    let reply = Prepared::json(&request.body(&data, false));
    let bad_data = Prepared::json(&request.body(&data, true));
    let model = request.model.clone();
    let turn = ImageTurn {
        images: request.n,
        reply,
        bad_data: Some(bad_data),
        failure: Box::new(move |failure| failure_response(failure, &model)),
    };
    image::respond(&shared, turn, &behaviour, guard).await
}

/// An image request the simulator accepted.
#[derive(Debug)]
struct ImageRequest {
    model: String,
    family: Family,
    prompt: String,
    n: usize,
    /// Pixels of each image.
    size: (u32, u32),
    /// `quality` as the reply reports it (`auto` resolved).
    quality: &'static str,
    format: ImageFormat,
    /// `background` as the reply reports it.
    background: &'static str,
    /// Images as `url`s rather than `b64_json`.
    url: bool,
}

impl ImageRequest {
    /// Checks the fields the real API checks, with its messages and codes.
    fn parse(body: &Value) -> Result<Self, Invalid> {
        let Some(object) = body.as_object() else {
            return Err(Invalid::new(
                "The request body must be a JSON object.".to_owned(),
                None,
            ));
        };
        let present = |key: &str| object.get(key).filter(|v| !v.is_null());
        let model = match present("model") {
            Some(Value::String(model)) => model.clone(),
            Some(other) => return Err(invalid_type("model", "a string", other)),
            None if GPT_IMAGE_ONLY.iter().any(|k| present(k).is_some()) => "gpt-image-1".to_owned(),
            None => "dall-e-2".to_owned(),
        };
        let Some(family) = Family::of(&model) else {
            return Err(Invalid::new(
                format!("The model `{model}` does not exist or you do not have access to it."),
                None,
            )
            .with_code("model_not_found")
            .with_status(StatusCode::NOT_FOUND));
        };
        let prompt = match present("prompt") {
            Some(Value::String(prompt)) => prompt.clone(),
            Some(other) => return Err(invalid_type("prompt", "a string", other)),
            None => return Err(missing("prompt")),
        };
        let length = prompt.chars().count();
        if length == 0 {
            return Err(Invalid::new(
                "Invalid 'prompt': string too short. Expected a string with minimum length 1, but got an empty string instead.".to_owned(),
                Some("prompt"),
            )
            .with_code("string_below_min_length"));
        }
        if let Some(max) = family.max_prompt()
            && length > max
        {
            return Err(Invalid::new(
                format!("Invalid 'prompt': string too long. Expected a string with maximum length {max}, but got a string with length {length} instead."),
                Some("prompt"),
            )
            .with_code("string_above_max_length"));
        }
        let n = match present("n") {
            None => 1,
            Some(Value::Number(n)) => {
                let Some(n) = n.as_u64().filter(|&n| n >= 1) else {
                    return Err(Invalid::new(
                        format!("Invalid 'n': integer below minimum value. Expected a value >= 1, but got {n} instead."),
                        Some("n"),
                    )
                    .with_code("integer_below_min_value"));
                };
                if n > MAX_N {
                    return Err(Invalid::new(
                        format!("Invalid 'n': integer above maximum value. Expected a value <= {MAX_N}, but got {n} instead."),
                        Some("n"),
                    )
                    .with_code("integer_above_max_value"));
                }
                if family == Family::DallE3 && n != 1 {
                    return Err(Invalid::new(
                        "Invalid 'n': dall-e-3 only supports n=1.".to_owned(),
                        Some("n"),
                    )
                    .with_code("invalid_value"));
                }
                n as usize
            }
            Some(other) => return Err(invalid_type("n", "an integer", other)),
        };
        let string = |key: &'static str| -> Result<Option<String>, Invalid> {
            match present(key) {
                None => Ok(None),
                Some(Value::String(value)) => Ok(Some(value.clone())),
                Some(other) => Err(invalid_type(key, "a string", other)),
            }
        };
        let one_of = |key: &'static str, supported: &[&str]| -> Result<Option<String>, Invalid> {
            match string(key)? {
                Some(value) if !supported.contains(&value.as_str()) => {
                    Err(invalid_value(key, &value, supported))
                }
                value => Ok(value),
            }
        };
        let size = if family == Family::Grok {
            GROK_SIZE
        } else {
            match one_of("size", family.sizes())?.as_deref() {
                None | Some("auto") => (1024, 1024),
                Some(size) => parse_size(size).unwrap_or((1024, 1024)),
            }
        };
        let asked_quality = if family == Family::Grok {
            None
        } else {
            one_of("quality", family.qualities())?
        };
        let quality = match (family, asked_quality.as_deref()) {
            (Family::GptImage, Some("low")) => "low",
            (Family::GptImage, Some("medium")) => "medium",
            (Family::GptImage, _) => "high",
            (Family::DallE3, Some("hd")) => "hd",
            _ => "standard",
        };
        if family == Family::DallE3 {
            one_of("style", &["vivid", "natural"])?;
        }
        let gpt_image = family == Family::GptImage;
        let mut format = if family == Family::Grok {
            ImageFormat::Jpeg
        } else {
            ImageFormat::Png
        };
        let mut background = "opaque";
        if gpt_image {
            match one_of("output_format", &["png", "jpeg", "webp"])?.as_deref() {
                Some("webp") => {
                    return Err(Invalid::new(
                        "provider-sim cannot encode 'webp'; ask for 'png' or 'jpeg'.".to_owned(),
                        Some("output_format"),
                    )
                    .with_code("unsupported_in_simulator"));
                }
                Some("jpeg") => format = ImageFormat::Jpeg,
                _ => {}
            }
            if let Some(value) = present("output_compression") {
                let in_range = value.as_u64().is_some_and(|c| c <= 100);
                if !in_range {
                    return Err(Invalid::new(
                        format!("Invalid 'output_compression': expected an integer between 0 and 100, but got {value} instead."),
                        Some("output_compression"),
                    )
                    .with_code("invalid_value"));
                }
            }
            if one_of("background", &["transparent", "opaque", "auto"])?.as_deref()
                == Some("transparent")
            {
                if format == ImageFormat::Jpeg {
                    return Err(Invalid::new(
                        "Transparent background is not supported for the 'jpeg' output format; use 'png' or 'webp'.".to_owned(),
                        Some("background"),
                    )
                    .with_code("invalid_value"));
                }
                background = "transparent";
            }
            one_of("moderation", &["low", "auto"])?;
            if present("response_format").is_some() {
                return Err(Invalid::new(
                    "Unknown parameter: 'response_format'.".to_owned(),
                    Some("response_format"),
                )
                .with_code("unknown_parameter"));
            }
            if present("stream").and_then(Value::as_bool) == Some(true) {
                return Err(Invalid::new(
                    "provider-sim does not stream partial images; leave 'stream' false.".to_owned(),
                    Some("stream"),
                )
                .with_code("unsupported_in_simulator"));
            }
        }
        let url = if gpt_image {
            false
        } else {
            one_of("response_format", &["url", "b64_json"])?.as_deref() != Some("b64_json")
        };
        string("user")?;
        Ok(Self {
            model,
            family,
            prompt,
            n,
            size,
            quality,
            format,
            background,
            url,
        })
    }

    /// One entry of `data` for an image of `bytes`.
    fn datum(
        &self,
        shared: &Shared,
        headers: &HeaderMap,
        behaviour: &Behaviour,
        bytes: Bytes,
    ) -> Value {
        let mut datum = Map::new();
        if self.url {
            let url = image::publish(shared, headers, self.format, bytes, behaviour);
            datum.insert("url".to_owned(), Value::String(url));
        } else {
            datum.insert("b64_json".to_owned(), Value::String(BASE64.encode(&bytes)));
        }
        if matches!(self.family, Family::DallE3 | Family::Grok) {
            datum.insert(
                "revised_prompt".to_owned(),
                Value::String(format!("A detailed, high-quality image of {}", self.prompt)),
            );
        }
        Value::Object(datum)
    }

    /// The response body holding `data`; with `bad_data`, every `b64_json` is not base64.
    fn body(&self, data: &[Value], bad_data: bool) -> Value {
        let data: Vec<Value> = data
            .iter()
            .map(|datum| {
                let mut datum = datum.clone();
                if bad_data && let Some(b64) = datum.get_mut("b64_json") {
                    *b64 = Value::String(NOT_BASE64.to_owned());
                }
                datum
            })
            .collect();
        match self.family {
            Family::Grok => json!({ "data": data }),
            Family::DallE2 | Family::DallE3 => json!({ "created": unix_now(), "data": data }),
            Family::GptImage => {
                let input_tokens = word_count(&self.prompt);
                let output_tokens = self.output_tokens();
                json!({
                    "created": unix_now(),
                    "background": self.background,
                    "data": data,
                    "output_format": match self.format {
                        ImageFormat::Png => "png",
                        ImageFormat::Jpeg => "jpeg",
                    },
                    "quality": self.quality,
                    "size": format!("{}x{}", self.size.0, self.size.1),
                    "usage": {
                        "input_tokens": input_tokens,
                        "input_tokens_details": { "image_tokens": 0, "text_tokens": input_tokens },
                        "output_tokens": output_tokens,
                        "total_tokens": input_tokens + output_tokens,
                    },
                })
            }
        }
    }

    /// Image tokens of the whole reply, from OpenAI's table for `gpt-image-1` (per image, by
    /// quality and size).
    fn output_tokens(&self) -> u64 {
        let per_image = match (self.quality, self.size) {
            ("low", (1024, 1024)) => 272,
            ("low", (1024, 1536)) => 408,
            ("low", _) => 400,
            ("medium", (1024, 1024)) => 1056,
            ("medium", (1024, 1536)) => 1584,
            ("medium", _) => 1568,
            (_, (1024, 1024)) => 4160,
            (_, (1024, 1536)) => 6240,
            _ => 6208,
        };
        per_image * self.n as u64
    }

    /// The safety system's refusal, in the shape the model family gets it.
    fn refusal(&self) -> Response {
        match self.family {
            Family::GptImage => error_with_param(
                StatusCode::BAD_REQUEST,
                format!(
                    "Your request was rejected by the safety system. If you believe this is an error, contact us at help.openai.com and include the request ID {}. safety_violations=[sexual].",
                    new_id("req_")
                ),
                "image_generation_user_error",
                None,
                Some("moderation_blocked"),
            ),
            Family::DallE2 | Family::DallE3 | Family::Grok => error_with_param(
                StatusCode::BAD_REQUEST,
                "Your request was rejected as a result of our safety system. Your prompt may contain text that is not allowed by our safety system.".to_owned(),
                "invalid_request_error",
                None,
                Some("content_policy_violation"),
            ),
        }
    }
}

/// "WxH" as pixels.
fn parse_size(size: &str) -> Option<(u32, u32)> {
    let (w, h) = size.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn invalid_type(param: &'static str, expected: &str, got: &Value) -> Invalid {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    Invalid::new(
        format!("Invalid type for '{param}': expected {expected}, but got {got} instead."),
        Some(param),
    )
    .with_code("invalid_type")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<ImageRequest, Invalid> {
        ImageRequest::parse(&body)
    }

    fn accepted(body: Value) -> ImageRequest {
        ImageRequest::parse(&body).unwrap_or_else(|invalid| panic!("{}", invalid.message))
    }

    fn refused(body: Value) -> Invalid {
        match parse(body) {
            Ok(request) => panic!("accepted {request:?}"),
            Err(invalid) => invalid,
        }
    }

    #[test]
    fn the_default_model_is_dall_e_2_unless_a_gpt_image_parameter_is_there() {
        let plain = accepted(json!({"prompt": "a fox"}));
        assert_eq!((plain.model.as_str(), plain.url), ("dall-e-2", true));
        let gpt = accepted(json!({"prompt": "a fox", "output_format": "jpeg"}));
        assert_eq!(gpt.model, "gpt-image-1");
        assert_eq!(gpt.format, ImageFormat::Jpeg);
        assert!(!gpt.url);
    }

    #[test]
    fn sizes_and_counts_follow_the_model() {
        let wide = accepted(json!({"model": "gpt-image-1.5", "prompt": "x", "size": "1536x1024"}));
        assert_eq!(wide.size, (1536, 1024));
        assert_eq!(
            refused(json!({"model": "gpt-image-1", "prompt": "x", "size": "1792x1024"})).code,
            Some("invalid_value")
        );
        let tall = accepted(json!({"model": "dall-e-3", "prompt": "x", "size": "1024x1792"}));
        assert_eq!(tall.size, (1024, 1792));
        assert_eq!(
            refused(json!({"model": "dall-e-3", "prompt": "x", "n": 2})).param,
            Some("n")
        );
        assert_eq!(
            refused(json!({"model": "gpt-image-1", "prompt": "x", "n": 11})).code,
            Some("integer_above_max_value")
        );
        assert_eq!(
            refused(json!({"model": "gpt-image-1", "prompt": "x", "n": 0})).code,
            Some("integer_below_min_value")
        );
        let grok = accepted(json!({"model": "grok-2-image-1212", "prompt": "x", "n": 3}));
        assert_eq!(
            (grok.size, grok.format, grok.url),
            (GROK_SIZE, ImageFormat::Jpeg, true)
        );
    }

    #[test]
    fn the_gpt_image_refusals() {
        let rf = refused(json!({"model": "gpt-image-1", "prompt": "x", "response_format": "url"}));
        assert_eq!(rf.code, Some("unknown_parameter"));
        let webp = refused(json!({"model": "gpt-image-1", "prompt": "x", "output_format": "webp"}));
        assert_eq!(webp.code, Some("unsupported_in_simulator"));
        let long = refused(json!({"model": "dall-e-3", "prompt": "x".repeat(4001)}));
        assert_eq!(long.code, Some("string_above_max_length"));
        assert!(parse(json!({"model": "gpt-image-1", "prompt": "x".repeat(32_000)})).is_ok());
        assert_eq!(
            refused(json!({"model": "gpt-image-1"})).param,
            Some("prompt")
        );
        let unknown = refused(json!({"model": "imagine-9", "prompt": "x"}));
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    }
}
