//! Stability AI: the Stable Image API (`POST /v2beta/stable-image/generate/{core|sd3}`,
//! multipart, `accept: application/json` for the image as base64 with its `finish_reason`) and
//! the v1 API for SDXL (`POST /v1/generation/{engine}/text-to-image`, JSON, `artifacts`).

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::multipart::Form;
use serde::Deserialize;
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

/// The aspect ratios of the Stable Image API.
const RATIOS: [&str; 9] = [
    "16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21",
];
/// SDXL's sizes.
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

/// Stability AI's API.
pub struct Stability {
    http: reqwest::Client,
    base: String,
    key: Secret,
    max_bytes: usize,
}

impl Stability {
    /// A client for `access` (`STABILITY_BASE_URL` defaults to `https://api.stability.ai`).
    pub fn new(access: &ProviderAccess, max_bytes: usize) -> anyhow::Result<Self> {
        Ok(Self {
            http: client()?,
            base: access.base_or("https://api.stability.ai"),
            key: access.api_key.clone(),
            max_bytes,
        })
    }

    fn is_sdxl(request: &ImageRequest) -> bool {
        request.model.id == "sdxl"
    }
}

/// Stability's moderation refusal: 403 named `content_moderation`.
fn filtered(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::FORBIDDEN && body["name"].as_str() == Some("content_moderation")
}

#[derive(Deserialize)]
struct V2Answer {
    image: Option<String>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct V1Answer {
    #[serde(default)]
    artifacts: Vec<Artifact>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Artifact {
    base64: Option<String>,
    finish_reason: Option<String>,
}

fn check_finish(reason: Option<&str>) -> Result<(), MediaError> {
    match reason {
        None | Some("SUCCESS") => Ok(()),
        Some("CONTENT_FILTERED") => Err(MediaError::Filtered(
            "the image was withheld (CONTENT_FILTERED)".into(),
        )),
        Some(other) => Err(MediaError::JobFailed(format!("finish reason {other}"))),
    }
}

#[async_trait]
impl ImageProvider for Stability {
    fn provider(&self) -> Provider {
        Provider::Stability
    }

    fn check(&self, request: &ImageRequest) -> Result<(), String> {
        check_no_input(request)?;
        check_prompt(request, 10_000)?;
        if Self::is_sdxl(request) {
            check_n(request, 10)?;
            check_format(request, &["png"])?;
            if request.aspect_ratio.is_some() {
                return Err("sdxl takes a size, not an aspect ratio".into());
            }
            if let Some(s) = request.size
                && !SDXL_SIZES.contains(&s)
            {
                let sizes: Vec<String> =
                    SDXL_SIZES.iter().map(|(w, h)| format!("{w}x{h}")).collect();
                return Err(format!(
                    "sdxl makes {}, not {}x{}",
                    sizes.join(", "),
                    s.0,
                    s.1
                ));
            }
            return Ok(());
        }
        check_n(request, 1)?;
        if request.model.id == "core" {
            check_format(request, &["png", "jpeg", "webp"])?;
        } else {
            check_format(request, &["png", "jpeg"])?;
        }
        pick_ratio(request, &RATIOS).map(|_| ())
    }

    async fn generate(&self, request: &ImageRequest) -> Result<Generated, MediaError> {
        if Self::is_sdxl(request) {
            return self.sdxl(request).await;
        }
        let (path, model) = if request.model.id == "core" {
            ("core", None)
        } else {
            ("sd3", Some(request.model.upstream))
        };
        let mut form = Form::new().text("prompt", request.prompt.clone());
        if let Some(model) = model {
            form = form.text("model", model);
        }
        if let Ok(Some(ratio)) = pick_ratio(request, &RATIOS) {
            form = form.text("aspect_ratio", ratio);
        }
        if let Some(negative) = &request.negative_prompt {
            form = form.text("negative_prompt", negative.clone());
        }
        if let Some(seed) = request.seed {
            form = form.text("seed", seed.to_string());
        }
        form = form.text(
            "output_format",
            request
                .output_format
                .clone()
                .unwrap_or_else(|| "png".into()),
        );
        let builder = self
            .http
            .post(format!("{}/v2beta/stable-image/generate/{path}", self.base))
            .bearer_auth(self.key.expose())
            .header("accept", "application/json")
            .multipart(form);
        let answer: V2Answer =
            http::json(http::send(builder, Some(&self.key), filtered).await?).await?;
        check_finish(answer.finish_reason.as_deref())?;
        let b64 = answer
            .image
            .ok_or_else(|| MediaError::BadOutput("no image in the answer".into()))?;
        Ok(Generated {
            images: vec![image_from(decode_base64(&b64)?, self.max_bytes)?],
            revised_prompt: None,
            usage: json!({}),
        })
    }
}

impl Stability {
    async fn sdxl(&self, request: &ImageRequest) -> Result<Generated, MediaError> {
        let (width, height) = request.size.unwrap_or((1024, 1024));
        let mut prompts = vec![json!({"text": request.prompt, "weight": 1.0})];
        if let Some(negative) = &request.negative_prompt {
            prompts.push(json!({"text": negative, "weight": -1.0}));
        }
        let mut body = json!({
            "text_prompts": prompts,
            "width": width,
            "height": height,
            "samples": request.n,
        });
        if let Some(seed) = request.seed {
            body["seed"] = json!(seed);
        }
        let builder = self
            .http
            .post(format!(
                "{}/v1/generation/{}/text-to-image",
                self.base, request.model.upstream
            ))
            .bearer_auth(self.key.expose())
            .header("accept", "application/json")
            .json(&body);
        let answer: V1Answer =
            http::json(http::send(builder, Some(&self.key), filtered).await?).await?;
        if answer.artifacts.is_empty() {
            return Err(MediaError::BadOutput("no image in the answer".into()));
        }
        let mut images = Vec::new();
        for artifact in answer.artifacts {
            check_finish(artifact.finish_reason.as_deref())?;
            let b64 = artifact
                .base64
                .ok_or_else(|| MediaError::BadOutput("an artifact without an image".into()))?;
            images.push(image_from(decode_base64(&b64)?, self.max_bytes)?);
        }
        Ok(Generated {
            images,
            revised_prompt: None,
            usage: json!({}),
        })
    }
}
