//! OpenAI's `POST /v1/images/generations` (GPT image models and dall-e-3), and xAI's, which has
//! the same shape at `https://api.x.ai/v1` (`grok-2-image`). GPT image models always answer
//! base64; dall-e-3 and xAI are asked for `b64_json`, so no second download is needed.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use common::provider::client;
use common::settings::Secret;

use super::{
    Generated, ImageProvider, ImageRequest, check_format, check_n, check_no_input, check_prompt,
    decode_base64, image_from,
};
use crate::config::ProviderAccess;
use crate::error::MediaError;
use crate::http;
use crate::models::Provider;

/// OpenAI's or xAI's images endpoint.
pub struct OpenAiImages {
    provider: Provider,
    http: reqwest::Client,
    url: String,
    key: Secret,
    max_bytes: usize,
}

impl OpenAiImages {
    /// OpenAI (`OPENAI_BASE_URL` defaults to `https://api.openai.com/v1`).
    pub fn openai(access: &ProviderAccess, max_bytes: usize) -> anyhow::Result<Self> {
        Self::new(
            Provider::OpenAi,
            access,
            "https://api.openai.com/v1",
            max_bytes,
        )
    }

    /// xAI (`XAI_BASE_URL` defaults to `https://api.x.ai/v1`).
    pub fn xai(access: &ProviderAccess, max_bytes: usize) -> anyhow::Result<Self> {
        Self::new(Provider::Xai, access, "https://api.x.ai/v1", max_bytes)
    }

    fn new(
        provider: Provider,
        access: &ProviderAccess,
        default: &str,
        max_bytes: usize,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            provider,
            http: client()?,
            url: format!("{}/images/generations", access.base_or(default)),
            key: access.api_key.clone(),
            max_bytes,
        })
    }
}

/// OpenAI's moderation refusal: 400 with `moderation_blocked` (GPT image models) or
/// `content_policy_violation` (dall-e-3).
fn filtered(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::BAD_REQUEST
        && matches!(
            body["error"]["code"].as_str(),
            Some("moderation_blocked" | "content_policy_violation")
        )
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    data: Vec<Datum>,
    #[serde(default)]
    usage: Value,
}

#[derive(Deserialize)]
struct Datum {
    b64_json: Option<String>,
    url: Option<String>,
    revised_prompt: Option<String>,
}

const GPT_SIZES: [(u32, u32); 3] = [(1024, 1024), (1536, 1024), (1024, 1536)];
const DALL_E_SIZES: [(u32, u32); 3] = [(1024, 1024), (1792, 1024), (1024, 1792)];

fn sizes_text(sizes: &[(u32, u32)]) -> String {
    sizes
        .iter()
        .map(|(w, h)| format!("{w}x{h}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl ImageProvider for OpenAiImages {
    fn provider(&self) -> Provider {
        self.provider
    }

    fn check(&self, request: &ImageRequest) -> Result<(), String> {
        check_no_input(request)?;
        let id = request.model.id;
        if request.aspect_ratio.is_some() {
            return Err(format!("{id} takes a size, not an aspect ratio"));
        }
        match self.provider {
            Provider::Xai => {
                check_n(request, 10)?;
                check_format(request, &["jpeg"])?;
                if request.size.is_some() {
                    return Err(format!("{id} makes one size only: leave size out or auto"));
                }
                Ok(())
            }
            _ if id == "dall-e-3" => {
                check_n(request, 1)?;
                check_prompt(request, 4000)?;
                check_format(request, &["png"])?;
                if let Some(q) = &request.quality
                    && !matches!(q.as_str(), "standard" | "hd")
                {
                    return Err(format!("{id} takes quality standard or hd, not {q}"));
                }
                match request.size {
                    Some(s) if !DALL_E_SIZES.contains(&s) => Err(format!(
                        "{id} makes {}, not {}x{}",
                        sizes_text(&DALL_E_SIZES),
                        s.0,
                        s.1
                    )),
                    _ => Ok(()),
                }
            }
            _ => {
                check_n(request, 10)?;
                check_prompt(request, 32_000)?;
                check_format(request, &["png", "jpeg", "webp"])?;
                if let Some(q) = &request.quality
                    && !matches!(q.as_str(), "low" | "medium" | "high" | "auto")
                {
                    return Err(format!(
                        "{id} takes quality low, medium, high or auto, not {q}"
                    ));
                }
                match request.size {
                    Some(s) if !GPT_SIZES.contains(&s) => Err(format!(
                        "{id} makes {} or auto, not {}x{}",
                        sizes_text(&GPT_SIZES),
                        s.0,
                        s.1
                    )),
                    _ => Ok(()),
                }
            }
        }
    }

    async fn generate(&self, request: &ImageRequest) -> Result<Generated, MediaError> {
        let mut body = json!({
            "model": request.model.upstream,
            "prompt": request.prompt,
            "n": request.n,
        });
        let gpt_image = self.provider == Provider::OpenAi && request.model.id != "dall-e-3";
        if !gpt_image {
            body["response_format"] = json!("b64_json");
        }
        if let Some((w, h)) = request.size {
            body["size"] = json!(format!("{w}x{h}"));
        }
        if let Some(q) = &request.quality {
            body["quality"] = json!(q);
        }
        if gpt_image && let Some(f) = &request.output_format {
            body["output_format"] = json!(f);
        }
        let builder = self
            .http
            .post(&self.url)
            .bearer_auth(self.key.expose())
            .json(&body);
        let response = http::send(builder, Some(&self.key), filtered).await?;
        let answer: Answer = http::json(response).await?;
        if answer.data.is_empty() {
            return Err(MediaError::BadOutput("no image in the answer".into()));
        }
        let mut images = Vec::with_capacity(answer.data.len());
        let mut revised_prompt = None;
        for datum in answer.data {
            let bytes = match (datum.b64_json, datum.url) {
                (Some(b64), _) => decode_base64(&b64)?,
                (None, Some(url)) => {
                    let response = http::send(self.http.get(&url), None, http::never).await?;
                    http::body_limited(response, self.max_bytes).await?
                }
                (None, None) => {
                    return Err(MediaError::BadOutput(
                        "an image with neither data nor URL".into(),
                    ));
                }
            };
            images.push(image_from(bytes, self.max_bytes)?);
            revised_prompt = revised_prompt.or(datum.revised_prompt);
        }
        Ok(Generated {
            images,
            revised_prompt,
            usage: if answer.usage.is_object() {
                answer.usage
            } else {
                json!({})
            },
        })
    }
}
