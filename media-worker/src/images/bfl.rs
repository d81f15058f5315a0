//! Black Forest Labs (Flux): `POST /v1/{model}` with `x-key` answers `{id, polling_url}`; the
//! polling URL answers `Pending` until `Ready` with `result.sample`, a short-lived URL of the
//! image, which is downloaded. `image_url` goes as `input_image` (FLUX.2 and Kontext edit the
//! image they are given).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use common::provider::{ProviderError, client};
use common::settings::Secret;

use super::{
    Generated, ImageProvider, ImageRequest, check_format, check_n, check_prompt, image_from,
    pick_ratio,
};
use crate::config::{MediaSettings, ProviderAccess};
use crate::error::MediaError;
use crate::http;
use crate::models::Provider;

/// Black Forest Labs' API.
pub struct Bfl {
    http: reqwest::Client,
    base: String,
    key: Secret,
    max_bytes: usize,
    poll: Duration,
    timeout: Duration,
}

impl Bfl {
    /// A client for `access` (`BFL_BASE_URL` defaults to `https://api.bfl.ai`).
    pub fn new(access: &ProviderAccess, settings: &MediaSettings) -> anyhow::Result<Self> {
        Ok(Self {
            http: client()?,
            base: access.base_or("https://api.bfl.ai"),
            key: access.api_key.clone(),
            max_bytes: settings.max_image_bytes,
            poll: Duration::from_millis(settings.image_poll_interval_ms.max(10)),
            timeout: Duration::from_secs(settings.image_timeout_secs.max(1)),
        })
    }
}

#[derive(Deserialize)]
struct Submitted {
    id: String,
    polling_url: Option<String>,
}

#[derive(Deserialize)]
struct Polled {
    status: String,
    #[serde(default)]
    result: Value,
}

/// The models that edit an image they are given.
fn takes_input(model: &str) -> bool {
    model.starts_with("flux-2-") || model == "flux-kontext-pro"
}

/// The models sized by aspect ratio rather than width and height.
const KONTEXT_RATIOS: [&str; 7] = ["21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "9:21"];

#[async_trait]
impl ImageProvider for Bfl {
    fn provider(&self) -> Provider {
        Provider::Bfl
    }

    fn check(&self, request: &ImageRequest) -> Result<(), String> {
        let id = request.model.upstream;
        check_n(request, 1)?;
        check_prompt(request, 10_000)?;
        check_format(request, &["jpeg", "png"])?;
        if request.input_image.is_some() && !takes_input(id) {
            return Err(format!(
                "{} does not edit images; flux-2-pro, flux-2-max, flux-2-flex and \
                 flux-kontext-pro do",
                request.model.id
            ));
        }
        if id == "flux-kontext-pro" {
            pick_ratio(request, &KONTEXT_RATIOS)?;
            return Ok(());
        }
        if request.aspect_ratio.is_some() {
            return Err(format!(
                "{} takes width and height (size), not an aspect ratio",
                request.model.id
            ));
        }
        if let Some((w, h)) = request.size {
            // FLUX.1: 256 to 1440, multiples of 32; FLUX.2: 64 to 2048 (up to 4 megapixels),
            // multiples of 16.
            let (step, min, max) = if id.starts_with("flux-2-") {
                (16, 64, 2048)
            } else {
                (32, 256, 1440)
            };
            let ok = |v: u32| v.is_multiple_of(step) && (min..=max).contains(&v);
            if !ok(w) || !ok(h) || (id.starts_with("flux-2-") && w * h > 4_194_304) {
                return Err(format!(
                    "{} makes widths and heights of {min} to {max} pixels in steps of {step}{}, \
                     not {w}x{h}",
                    request.model.id,
                    if id.starts_with("flux-2-") {
                        ", at most 4 megapixels"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(())
    }

    async fn generate(&self, request: &ImageRequest) -> Result<Generated, MediaError> {
        let id = request.model.upstream;
        let mut body = json!({"prompt": request.prompt});
        if id == "flux-kontext-pro" {
            if let Ok(Some(ratio)) = pick_ratio(request, &KONTEXT_RATIOS) {
                body["aspect_ratio"] = json!(ratio);
            }
        } else if let Some((w, h)) = request.size {
            body["width"] = json!(w);
            body["height"] = json!(h);
        }
        if let Some(input) = &request.input_image {
            body["input_image"] = json!(STANDARD.encode(&input.bytes));
        }
        if let Some(seed) = request.seed {
            body["seed"] = json!(seed);
        }
        if let Some(format) = &request.output_format {
            body["output_format"] = json!(format);
        }
        let builder = self
            .http
            .post(format!("{}/v1/{id}", self.base))
            .header("x-key", self.key.expose())
            .json(&body);
        let submitted: Submitted =
            http::json(http::send(builder, Some(&self.key), http::never).await?).await?;
        let polling_url = submitted
            .polling_url
            .unwrap_or_else(|| format!("{}/v1/get_result?id={}", self.base, submitted.id));
        let started = Instant::now();
        let sample = loop {
            let builder = self
                .http
                .get(&polling_url)
                .header("x-key", self.key.expose());
            let polled: Polled =
                http::json(http::send(builder, Some(&self.key), http::never).await?).await?;
            match polled.status.as_str() {
                "Ready" => {
                    break polled.result["sample"]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| MediaError::BadOutput("Ready without a sample".into()))?;
                }
                "Pending" | "Queued" | "Processing" => {}
                "Content Moderated" | "Request Moderated" => {
                    return Err(MediaError::Filtered(polled.status));
                }
                "Task not found" => {
                    return Err(ProviderError::Protocol(format!(
                        "the job {} is unknown to the provider",
                        submitted.id
                    ))
                    .into());
                }
                other => {
                    return Err(MediaError::JobFailed(format!("status {other:?}")));
                }
            }
            if started.elapsed() >= self.timeout {
                return Err(MediaError::Timeout(self.timeout.as_secs()));
            }
            tokio::time::sleep(self.poll).await;
        };
        // The sample URL is signed; it takes no key.
        let response = http::send(self.http.get(&sample), None, http::never).await?;
        let bytes = http::body_limited(response, self.max_bytes).await?;
        Ok(Generated {
            images: vec![image_from(bytes, self.max_bytes)?],
            revised_prompt: None,
            usage: json!({}),
        })
    }
}
