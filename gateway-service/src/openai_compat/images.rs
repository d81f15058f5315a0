//! `POST /v1/images/generations`: OpenAI's image generation request as a `media.image.generate`
//! task. The worker always stores the images (`save: true`), so their bytes never sit in a Redis
//! stream; `response_format: "b64_json"` (the default) reads each back from storage, answers it
//! base64 and deletes the stored copy, `"url"` answers the stored image's URL, made absolute.

use axum::Json;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::auth::Claims;
use common::error::AppError;
use common::payloads::Payload;
use common::payloads::media::ImagePayload;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::OpenAiError;
use crate::speech::Failure;
use crate::state::AppState;

/// How the images are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// The image itself, base64 (the default here, as for OpenAI's GPT image models).
    B64Json,
    /// A URL that opens it without a token, until the storage's URL expiry.
    Url,
}

/// The request, as OpenAI defines it. `background`, `moderation`, `style`, `user`,
/// `output_compression` and `partial_images` are accepted and not used: no model here has an
/// equivalent the worker could pass on.
#[derive(Debug, Clone, Deserialize)]
pub struct ImagesRequest {
    /// What to draw.
    pub prompt: String,
    /// A model of the media-worker's registry (`dummy`, `gpt-image-1.5`, `dall-e-3`, ...); the
    /// worker's default when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Images to make, 1 to 10.
    #[serde(default)]
    pub n: Option<u32>,
    /// `WIDTHxHEIGHT` or `auto`.
    #[serde(default)]
    pub size: Option<String>,
    /// The model's quality setting (`low`, `medium`, `high`, `auto`; `standard`, `hd`).
    #[serde(default)]
    pub quality: Option<String>,
    /// `url` or `b64_json` (default `b64_json`).
    #[serde(default)]
    pub response_format: Option<String>,
    /// `png`, `jpeg` or `webp`, where the model lets one choose.
    #[serde(default)]
    pub output_format: Option<String>,
    /// Not used.
    #[serde(default)]
    pub output_compression: Option<u8>,
    /// Not used (no model here makes transparent backgrounds on request).
    #[serde(default)]
    pub background: Option<String>,
    /// Not used (the providers' own moderation applies).
    #[serde(default)]
    pub moderation: Option<String>,
    /// Not used (dall-e-3's `vivid`/`natural`).
    #[serde(default)]
    pub style: Option<String>,
    /// The end user, not used.
    #[serde(default)]
    pub user: Option<String>,
    /// Streaming partial images: refused when `true` (not supported here).
    #[serde(default)]
    pub stream: Option<bool>,
    /// Not used (goes with `stream`).
    #[serde(default)]
    pub partial_images: Option<u32>,
}

/// The request parameters that map onto the payload's fields of the same name.
const PARAMS: [&str; 6] = ["prompt", "model", "n", "size", "quality", "output_format"];

impl ImagesRequest {
    /// Parses and checks the body; errors name the parameter, as OpenAI's do.
    pub fn parse(body: &[u8]) -> Result<Self, OpenAiError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            OpenAiError::invalid_request(format!("The request body is not valid JSON: {e}"), None)
        })?;
        let Some(object) = value.as_object() else {
            return Err(OpenAiError::invalid_request(
                "The request body must be a JSON object.",
                None,
            ));
        };
        if object.get("prompt").is_none_or(Value::is_null) {
            return Err(OpenAiError::invalid_request(
                "Missing required parameter: 'prompt'.",
                Some("prompt"),
            ));
        }
        let request: Self = serde_path_to_error::deserialize(&value).map_err(|e| {
            let param = e.path().to_string();
            OpenAiError::invalid_request(
                format!("Invalid value for '{param}': {}.", e.into_inner()),
                Some(&param),
            )
        })?;
        request.format()?;
        if request.stream == Some(true) {
            return Err(OpenAiError::invalid_request(
                "Streaming image generation is not supported here; leave stream out or false.",
                Some("stream"),
            ));
        }
        Ok(request)
    }

    /// `response_format`, checked.
    pub fn format(&self) -> Result<ResponseFormat, OpenAiError> {
        match self.response_format.as_deref() {
            None | Some("b64_json") => Ok(ResponseFormat::B64Json),
            Some("url") => Ok(ResponseFormat::Url),
            Some(other) => Err(OpenAiError::invalid_request(
                format!("'{other}' is not one of ['url', 'b64_json'] - 'response_format'"),
                Some("response_format"),
            )),
        }
    }

    /// The `media.image.generate` data: always stored (`save: true`), checked with the
    /// payload's own rules.
    pub fn payload(&self) -> Result<ImagePayload, OpenAiError> {
        let payload = ImagePayload {
            prompt: self.prompt.clone(),
            model: self.model.clone().filter(|m| !m.trim().is_empty()),
            size: self.size.clone(),
            n: self.n,
            quality: self.quality.clone(),
            output_format: self.output_format.clone(),
            save: true,
            ..ImagePayload::default()
        };
        payload
            .validate()
            .map_err(|e| OpenAiError::invalid_request(e.0.clone(), param_of(&e.0)))?;
        Ok(payload)
    }
}

/// The request parameter a sentence of the payload's rules begins with (`n must be 1 to 10`,
/// `size: invalid type`), if it is one.
fn param_of(message: &str) -> Option<&'static str> {
    let first = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default();
    PARAMS.into_iter().find(|p| *p == first)
}

/// The parameter a worker's refusal is about, where it is clear: the model for a model it does
/// not know or cannot serve, else what an `unsupported_option` or `invalid_payload` sentence
/// names.
fn worker_param(error: &Value, request: &ImagesRequest) -> Option<&'static str> {
    let message = error["message"].as_str().unwrap_or_default();
    match error["code"].as_str().unwrap_or_default() {
        "unknown_model" | "provider_unavailable" => Some("model"),
        "invalid_payload" => param_of(message),
        "unsupported_option" => {
            let lower = message.to_ascii_lowercase();
            if lower.contains("quality") {
                Some("quality")
            } else if lower.contains("per request") {
                Some("n")
            } else if lower.contains("size") {
                Some("size")
            } else if request
                .output_format
                .as_deref()
                .is_some_and(|f| lower.ends_with(&format!("not {}", f.to_ascii_lowercase())))
            {
                Some("output_format")
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The images' stored copies that a `b64_json` answer reads back: deleted once read, or, should
/// the request end before (an error, a client that left), in the background when dropped.
struct Copies {
    state: AppState,
    tenant: Uuid,
    keys: Vec<String>,
}

impl Copies {
    async fn delete(&mut self) {
        for key in self.keys.drain(..) {
            if let Err(e) = self.state.storage().delete(self.tenant, &key).await {
                tracing::warn!(%key, error = %e, "an image's stored copy was not deleted");
            }
        }
    }
}

impl Drop for Copies {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut rest = Self {
            state: self.state.clone(),
            tenant: self.tenant,
            keys: std::mem::take(&mut self.keys),
        };
        self.state
            .tracker()
            .spawn(async move { rest.delete().await });
    }
}

/// OpenAI's `usage` (`{input_tokens, output_tokens, total_tokens, input_tokens_details}`) from the
/// provider's, when it gave one: OpenAI's own passes through, Gemini's `usageMetadata` is
/// translated; `None` for a provider that counts nothing (the placeholder, Flux, Stability).
fn openai_usage(usage: &Value) -> Option<Value> {
    let input = usage["input_tokens"]
        .as_u64()
        .or_else(|| usage["promptTokenCount"].as_u64())?;
    let output = usage["output_tokens"]
        .as_u64()
        .or_else(|| usage["candidatesTokenCount"].as_u64())
        .unwrap_or(0);
    let total = usage["total_tokens"]
        .as_u64()
        .or_else(|| usage["totalTokenCount"].as_u64())
        .unwrap_or(input + output);
    // A generation request has no input image: every input token is the prompt's.
    let details = match &usage["input_tokens_details"] {
        Value::Object(d) => Value::Object(d.clone()),
        _ => json!({"text_tokens": input, "image_tokens": 0}),
    };
    Some(json!({
        "input_tokens": input,
        "output_tokens": output,
        "total_tokens": total,
        "input_tokens_details": details,
    }))
}

/// The base64 of a `data:` URI (an image the worker answered inline).
fn data_uri_base64(uri: &str) -> Option<&str> {
    uri.strip_prefix("data:")?
        .split_once(";base64,")
        .map(|(_, b64)| b64)
}

fn internal(why: &str) -> OpenAiError {
    OpenAiError::from(AppError::Internal(anyhow::anyhow!(why.to_owned())))
}

/// Answers a parsed request as OpenAI's `ImagesResponse`: `{created, data: [{b64_json} |
/// {url}, revised_prompt?], output_format, size, quality?, usage?}`. `base` is where relative
/// URLs point (`http://host`).
pub async fn create(
    state: &AppState,
    claims: &Claims,
    request: &ImagesRequest,
    base: &str,
) -> Result<Response, OpenAiError> {
    let format = request.format()?;
    let payload = request.payload()?;
    let session_id = state.claim_session(claims, None).await?;
    let answered = crate::media::generate_image(state, claims, session_id, &payload)
        .await?
        .map_err(|f| match f {
            Failure::Task(error) => {
                let e = OpenAiError::from_event(&error);
                match worker_param(&error, request) {
                    Some(param) => e.param(param),
                    None => e,
                }
            }
            other => other.app_error().into(),
        })?;
    let images = answered.data["images"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut copies = Copies {
        state: state.clone(),
        tenant: claims.tenant_id,
        keys: match format {
            ResponseFormat::B64Json => images
                .iter()
                .filter_map(|i| i["key"].as_str().map(str::to_owned))
                .collect(),
            ResponseFormat::Url => Vec::new(),
        },
    };
    let revised = answered.data["revised_prompt"].as_str();
    let mut data = Vec::with_capacity(images.len());
    for image in &images {
        let mut item = Map::new();
        match format {
            ResponseFormat::B64Json => {
                let b64 = match (image["key"].as_str(), image["data_uri"].as_str()) {
                    (Some(key), _) => {
                        let object = state
                            .storage()
                            .get(claims.tenant_id, key)
                            .await
                            .map_err(AppError::from)?;
                        STANDARD.encode(&object.bytes)
                    }
                    (None, Some(uri)) => data_uri_base64(uri)
                        .ok_or_else(|| internal("the worker's data URI is not base64"))?
                        .to_owned(),
                    (None, None) => {
                        return Err(internal("the worker answered an image without data"));
                    }
                };
                item.insert("b64_json".into(), json!(b64));
            }
            ResponseFormat::Url => {
                let url = image["url"]
                    .as_str()
                    .or_else(|| image["data_uri"].as_str())
                    .ok_or_else(|| internal("the worker answered an image without a URL"))?;
                item.insert("url".into(), json!(crate::links::absolute(base, url)));
            }
        }
        if let Some(revised) = revised {
            item.insert("revised_prompt".into(), json!(revised));
        }
        data.push(Value::Object(item));
    }
    copies.delete().await;
    let mut body = json!({
        "created": chrono::Utc::now().timestamp(),
        "data": data,
    });
    if let Some(first) = images.first() {
        if let Some(format) = first["mime"]
            .as_str()
            .and_then(|m| m.strip_prefix("image/"))
        {
            body["output_format"] = json!(format);
        }
        if let (Some(w), Some(h)) = (first["width"].as_u64(), first["height"].as_u64()) {
            body["size"] = json!(format!("{w}x{h}"));
        }
    }
    if let Some(quality) = &payload.quality {
        body["quality"] = json!(quality);
    }
    if let Some(usage) = openai_usage(&answered.usage) {
        body["usage"] = usage;
    }
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: Value) -> Value {
        match ImagesRequest::parse(body.to_string().as_bytes()).and_then(|r| r.payload()) {
            Err(e) => e.body()["error"].clone(),
            Ok(p) => panic!("not refused: {p:?}"),
        }
    }

    #[test]
    fn requests_are_checked_naming_the_parameter() {
        assert_eq!(refusal(json!({"model": "dummy"}))["param"], "prompt");
        assert_eq!(refusal(json!({"prompt": " "}))["param"], "prompt");
        assert_eq!(refusal(json!({"prompt": "x", "n": 11}))["param"], "n");
        assert_eq!(refusal(json!({"prompt": "x", "n": "two"}))["param"], "n");
        assert_eq!(refusal(json!({"prompt": "x", "size": 5}))["param"], "size");
        assert_eq!(
            refusal(json!({"prompt": "x", "response_format": "png"}))["param"],
            "response_format"
        );
        assert_eq!(
            refusal(json!({"prompt": "x", "stream": true}))["param"],
            "stream"
        );
        let ok = ImagesRequest::parse(
            br#"{"prompt":"x","model":"dummy","style":"vivid","user":"u","background":"auto"}"#,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(ok.format().ok(), Some(ResponseFormat::B64Json));
        let payload = ok.payload().unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            payload.save,
            "images are always stored, never inlined in a stream"
        );
    }

    #[test]
    fn worker_refusals_name_the_parameter_where_clear() {
        let request = ImagesRequest::parse(br#"{"prompt":"x","output_format":"webp"}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let param = |code: &str, message: &str| {
            worker_param(&json!({"code": code, "message": message}), &request)
        };
        assert_eq!(param("unknown_model", "no such model"), Some("model"));
        assert_eq!(
            param(
                "unsupported_option",
                "the placeholder makes sizes from 16 to 2048 pixels a side, not 5000x5000"
            ),
            Some("size")
        );
        assert_eq!(
            param(
                "unsupported_option",
                "dummy makes at most 4 images per request, not 5"
            ),
            Some("n")
        );
        assert_eq!(
            param(
                "unsupported_option",
                "dall-e-3 takes quality standard or hd, not low"
            ),
            Some("quality")
        );
        assert_eq!(
            param("unsupported_option", "dummy makes png, not webp"),
            Some("output_format")
        );
        assert_eq!(param("upstream_error", "size"), None);
    }

    #[test]
    fn usage_in_openai_shape_when_the_provider_counted() {
        assert_eq!(openai_usage(&json!({})), None);
        assert_eq!(
            openai_usage(&json!({"promptTokenCount": 7, "candidatesTokenCount": 1290,
                "totalTokenCount": 1297})),
            Some(
                json!({"input_tokens": 7, "output_tokens": 1290, "total_tokens": 1297,
                "input_tokens_details": {"text_tokens": 7, "image_tokens": 0}})
            )
        );
        let openai = json!({"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210,
            "input_tokens_details": {"text_tokens": 50, "image_tokens": 0}});
        assert_eq!(openai_usage(&openai), Some(openai.clone()));
        assert_eq!(data_uri_base64("data:image/png;base64,QUJD"), Some("QUJD"));
        assert_eq!(data_uri_base64("https://x"), None);
    }
}
