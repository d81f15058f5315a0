//! Veo 3.1 on the Gemini API: `POST /v1beta/models/{model}:predictLongRunning` answers an
//! operation `{name}`; `GET /v1beta/{name}` until `done`, then
//! `response.generateVideoResponse.generatedSamples[0].video.uri`, downloaded with the key
//! (following the redirect). `done` with no sample is the safety filter's refusal.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use common::provider::client;
use common::settings::Secret;

use super::{
    Finished, JobRef, Polled, VideoProvider, VideoRequest, check_duration, check_not_kling,
    check_ratio,
};
use crate::config::ProviderAccess;
use crate::error::MediaError;
use crate::http;
use crate::models::Provider;

/// Veo on the Gemini API.
pub struct Veo {
    http: reqwest::Client,
    base: String,
    key: Secret,
}

impl Veo {
    /// A client for `access` (`GEMINI_BASE_URL` defaults to
    /// `https://generativelanguage.googleapis.com`).
    pub fn new(access: &ProviderAccess) -> anyhow::Result<Self> {
        Ok(Self {
            http: client()?,
            base: access.base_or("https://generativelanguage.googleapis.com"),
            key: access.api_key.clone(),
        })
    }
}

#[async_trait]
impl VideoProvider for Veo {
    fn provider(&self) -> Provider {
        Provider::Veo
    }

    fn check(&self, request: &VideoRequest) -> Result<(), String> {
        check_not_kling(request)?;
        check_duration(request, &[4, 6, 8])?;
        check_ratio(request, &["16:9", "9:16"])?;
        if let Some(r) = &request.resolution
            && !matches!(r.as_str(), "720p" | "1080p")
        {
            return Err(format!("{} makes 720p or 1080p, not {r}", request.model.id));
        }
        if request.resolution.as_deref() == Some("1080p")
            && request.duration_secs.is_some_and(|d| d != 8)
        {
            return Err(format!(
                "{} makes 1080p only at 8 seconds",
                request.model.id
            ));
        }
        Ok(())
    }

    async fn submit(&self, request: &VideoRequest) -> Result<JobRef, MediaError> {
        let mut instance = json!({"prompt": request.prompt.clone().unwrap_or_default()});
        if let Some(image) = &request.input_image {
            instance["image"] = json!({
                "bytesBase64Encoded": STANDARD.encode(&image.bytes),
                "mimeType": image.mime,
            });
        }
        let mut parameters = json!({});
        if let Some(r) = &request.aspect_ratio {
            parameters["aspectRatio"] = json!(r);
        }
        if let Some(d) = request.duration_secs {
            parameters["durationSeconds"] = json!(d);
        }
        if let Some(r) = &request.resolution {
            parameters["resolution"] = json!(r);
        }
        if let Some(n) = &request.negative_prompt {
            parameters["negativePrompt"] = json!(n);
        }
        let builder = self
            .http
            .post(format!(
                "{}/v1beta/models/{}:predictLongRunning",
                self.base, request.model.upstream
            ))
            .header("x-goog-api-key", self.key.expose())
            .json(&json!({"instances": [instance], "parameters": parameters}));
        let operation: Value =
            http::json(http::send(builder, Some(&self.key), http::never).await?).await?;
        let name = operation["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| MediaError::BadOutput("an operation without a name".into()))?;
        Ok(JobRef {
            id: name.to_owned(),
            kind: String::new(),
        })
    }

    async fn poll(&self, job: &JobRef) -> Result<Polled, MediaError> {
        let builder = self
            .http
            .get(format!("{}/v1beta/{}", self.base, job.id))
            .header("x-goog-api-key", self.key.expose());
        let operation: Value =
            http::json(http::send(builder, Some(&self.key), http::never).await?).await?;
        if operation["done"].as_bool() != Some(true) {
            return Ok(Polled::Running {
                status: "running".into(),
                fraction: None,
                poll_after: None,
            });
        }
        if let Some(error) = operation.get("error").filter(|e| e.is_object()) {
            let message: String = error["message"]
                .as_str()
                .unwrap_or("no reason given")
                .chars()
                .take(300)
                .collect();
            return Err(MediaError::JobFailed(message));
        }
        let answer = &operation["response"]["generateVideoResponse"];
        let uri = answer["generatedSamples"][0]["video"]["uri"]
            .as_str()
            .or_else(|| operation["response"]["generatedVideos"][0]["video"]["uri"].as_str());
        match uri {
            Some(uri) => Ok(Polled::Done(Finished {
                url: uri.to_owned(),
                video_id: None,
                duration_secs: None,
            })),
            None => {
                let reasons: Vec<&str> = answer["raiMediaFilteredReasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                Err(MediaError::Filtered(if reasons.is_empty() {
                    "the job ended without a video".into()
                } else {
                    reasons.join("; ").chars().take(300).collect()
                }))
            }
        }
    }

    async fn download(
        &self,
        _job: &JobRef,
        finished: &Finished,
        max_bytes: usize,
    ) -> Result<Bytes, MediaError> {
        let builder = self
            .http
            .get(&finished.url)
            .header("x-goog-api-key", self.key.expose());
        let response = http::send(builder, Some(&self.key), http::never).await?;
        http::body_limited(response, max_bytes).await
    }
}
