//! Gemini's image models ("Nano Banana": `POST /v1beta/models/{model}:generateContent` with
//! `responseModalities: ["TEXT", "IMAGE"]`, the image in an `inlineData` part; they also edit an
//! image they are given) and Imagen (`POST /v1beta/models/{model}:predict`, `predictions[]`).

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use common::provider::client;
use common::settings::Secret;

use super::{
    Generated, ImageProvider, ImageRequest, check_format, check_n, check_no_input, check_prompt,
    decode_base64, image_from, pick_ratio,
};
use crate::config::ProviderAccess;
use crate::error::MediaError;
use crate::http;
use crate::models::Provider;

/// The aspect ratios of Gemini's image models.
const GEMINI_RATIOS: [&str; 10] = [
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];
/// Imagen's.
const IMAGEN_RATIOS: [&str; 5] = ["1:1", "3:4", "4:3", "9:16", "16:9"];
/// The finish reasons that mean the safety system withheld the image.
const BLOCKED: [&str; 6] = [
    "SAFETY",
    "IMAGE_SAFETY",
    "PROHIBITED_CONTENT",
    "IMAGE_PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
];

/// Gemini's image generation.
pub struct GeminiImages {
    http: reqwest::Client,
    base: String,
    key: Secret,
    max_bytes: usize,
}

impl GeminiImages {
    /// A client for `access` (`GEMINI_BASE_URL` defaults to
    /// `https://generativelanguage.googleapis.com`).
    pub fn new(access: &ProviderAccess, max_bytes: usize) -> anyhow::Result<Self> {
        Ok(Self {
            http: client()?,
            base: access.base_or("https://generativelanguage.googleapis.com"),
            key: access.api_key.clone(),
            max_bytes,
        })
    }

    fn is_imagen(request: &ImageRequest) -> bool {
        request.model.upstream.starts_with("imagen-")
    }

    async fn call(&self, model: &str, action: &str, body: &Value) -> Result<Value, MediaError> {
        let builder = self
            .http
            .post(format!("{}/v1beta/models/{model}:{action}", self.base))
            .header("x-goog-api-key", self.key.expose())
            .json(body);
        http::json(http::send(builder, Some(&self.key), http::never).await?).await
    }
}

#[async_trait]
impl ImageProvider for GeminiImages {
    fn provider(&self) -> Provider {
        Provider::Gemini
    }

    fn check(&self, request: &ImageRequest) -> Result<(), String> {
        check_format(request, &["png"])?;
        if Self::is_imagen(request) {
            check_no_input(request)?;
            check_n(request, 4)?;
            check_prompt(request, 480 * 4)?;
            return pick_ratio(request, &IMAGEN_RATIOS).map(|_| ());
        }
        check_n(request, 1)?;
        check_prompt(request, 32_000)?;
        if let Some(q) = &request.quality {
            let pro = request.model.upstream == "gemini-3-pro-image-preview";
            let offered: &[&str] = if pro { &["1K", "2K", "4K"] } else { &["1K"] };
            if !offered.contains(&q.as_str()) {
                return Err(format!(
                    "{} makes image sizes (quality) {}, not {q}",
                    request.model.id,
                    offered.join(", ")
                ));
            }
        }
        pick_ratio(request, &GEMINI_RATIOS).map(|_| ())
    }

    async fn generate(&self, request: &ImageRequest) -> Result<Generated, MediaError> {
        if Self::is_imagen(request) {
            return self.imagen(request).await;
        }
        let mut parts = vec![json!({"text": request.prompt})];
        if let Some(input) = &request.input_image {
            parts.push(json!({"inlineData": {
                "mimeType": input.mime,
                "data": STANDARD.encode(&input.bytes),
            }}));
        }
        let mut image_config = json!({});
        if let Ok(Some(ratio)) = pick_ratio(request, &GEMINI_RATIOS) {
            image_config["aspectRatio"] = json!(ratio);
        }
        if let Some(q) = &request.quality {
            image_config["imageSize"] = json!(q);
        }
        let body = json!({
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": {
                "responseModalities": ["TEXT", "IMAGE"],
                "imageConfig": image_config,
            },
        });
        let answer = self
            .call(request.model.upstream, "generateContent", &body)
            .await?;
        if let Some(reason) = answer["promptFeedback"]["blockReason"].as_str() {
            return Err(MediaError::Filtered(format!(
                "the prompt was blocked ({reason})"
            )));
        }
        let candidate = &answer["candidates"][0];
        let finish = candidate["finishReason"].as_str().unwrap_or_default();
        if BLOCKED.contains(&finish) {
            return Err(MediaError::Filtered(format!(
                "the image was withheld ({finish})"
            )));
        }
        let mut images = Vec::new();
        let mut text = String::new();
        for part in candidate["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(data) = part["inlineData"]["data"].as_str() {
                images.push(image_from(decode_base64(data)?, self.max_bytes)?);
            } else if let Some(t) = part["text"].as_str() {
                text.push_str(t);
            }
        }
        if images.is_empty() {
            return Err(MediaError::JobFailed(format!(
                "the model answered no image (finish reason {finish:?}){}",
                if text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", text.chars().take(200).collect::<String>())
                }
            )));
        }
        Ok(Generated {
            images,
            revised_prompt: None,
            usage: answer
                .get("usageMetadata")
                .cloned()
                .unwrap_or_else(|| json!({})),
        })
    }
}

impl GeminiImages {
    async fn imagen(&self, request: &ImageRequest) -> Result<Generated, MediaError> {
        let mut parameters = json!({"sampleCount": request.n});
        if let Ok(Some(ratio)) = pick_ratio(request, &IMAGEN_RATIOS) {
            parameters["aspectRatio"] = json!(ratio);
        }
        let body = json!({
            "instances": [{"prompt": request.prompt}],
            "parameters": parameters,
        });
        let answer = self.call(request.model.upstream, "predict", &body).await?;
        let mut images = Vec::new();
        let mut filtered = None;
        for prediction in answer["predictions"].as_array().into_iter().flatten() {
            match prediction["bytesBase64Encoded"].as_str() {
                Some(data) => images.push(image_from(decode_base64(data)?, self.max_bytes)?),
                None => {
                    filtered = filtered
                        .or_else(|| prediction["raiFilteredReason"].as_str().map(str::to_owned));
                }
            }
        }
        if images.is_empty() {
            return Err(MediaError::Filtered(filtered.unwrap_or_else(|| {
                "no image came back: Imagen withholds images its safety filters refuse".into()
            })));
        }
        Ok(Generated {
            images,
            revised_prompt: None,
            usage: json!({}),
        })
    }
}
