//! OpenAI's Videos API (Sora): `POST /v1/videos` (multipart: `prompt`, `model`, `seconds`,
//! `size`, `input_reference`) answers a `Video` object; `GET /v1/videos/{id}` until `status` is
//! `completed` (or `failed`), at the pace of the `openai-poll-after-ms` header; the MP4 is
//! `GET /v1/videos/{id}/content`. `DELETE /v1/videos/{id}` drops a job that is not wanted.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use serde_json::Value;

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

/// Sora's sizes, and those only `sora-2-pro` makes.
const SIZES: [&str; 2] = ["720x1280", "1280x720"];
const PRO_SIZES: [&str; 2] = ["1024x1792", "1792x1024"];

/// OpenAI's Videos API.
pub struct Sora {
    http: reqwest::Client,
    base: String,
    key: Secret,
}

impl Sora {
    /// A client for `access` (`OPENAI_BASE_URL` defaults to `https://api.openai.com/v1`).
    pub fn new(access: &ProviderAccess) -> anyhow::Result<Self> {
        Ok(Self {
            http: client()?,
            base: access.base_or("https://api.openai.com/v1"),
            key: access.api_key.clone(),
        })
    }

    fn size(request: &VideoRequest) -> Option<String> {
        if let Some(r) = &request.resolution {
            return Some(r.clone());
        }
        match request.aspect_ratio.as_deref() {
            Some("16:9") => Some("1280x720".into()),
            Some("9:16") => Some("720x1280".into()),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Video {
    id: String,
    status: String,
    #[serde(default)]
    progress: Option<f64>,
    #[serde(default)]
    seconds: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

fn poll_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get("openai-poll-after-ms")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

#[async_trait]
impl VideoProvider for Sora {
    fn provider(&self) -> Provider {
        Provider::Sora
    }

    fn check(&self, request: &VideoRequest) -> Result<(), String> {
        check_not_kling(request)?;
        check_duration(request, &[4, 8, 12])?;
        check_ratio(request, &["16:9", "9:16"])?;
        if request.negative_prompt.is_some() {
            return Err(format!("{} takes no negative_prompt", request.model.id));
        }
        if let Some(size) = &request.resolution {
            let pro = request.model.id == "sora-2-pro";
            if !(SIZES.contains(&size.as_str()) || pro && PRO_SIZES.contains(&size.as_str())) {
                let mut offered = SIZES.to_vec();
                if pro {
                    offered.extend(PRO_SIZES);
                }
                return Err(format!(
                    "{} makes the sizes {}, not {size}",
                    request.model.id,
                    offered.join(", ")
                ));
            }
        }
        Ok(())
    }

    async fn submit(&self, request: &VideoRequest) -> Result<JobRef, MediaError> {
        let mut form = Form::new()
            .text("prompt", request.prompt.clone().unwrap_or_default())
            .text("model", request.model.upstream);
        if let Some(d) = request.duration_secs {
            form = form.text("seconds", d.to_string());
        }
        if let Some(size) = Self::size(request) {
            form = form.text("size", size);
        }
        if let Some(image) = &request.input_image {
            let ext = image.mime.rsplit('/').next().unwrap_or("png");
            let part = Part::bytes(image.bytes.to_vec())
                .file_name(format!("reference.{ext}"))
                .mime_str(image.mime)
                .map_err(|e| MediaError::BadInput(e.to_string()))?;
            form = form.part("input_reference", part);
        }
        let builder = self
            .http
            .post(format!("{}/videos", self.base))
            .bearer_auth(self.key.expose())
            .multipart(form);
        let video: Video =
            http::json(http::send(builder, Some(&self.key), http::never).await?).await?;
        Ok(JobRef {
            id: video.id,
            kind: String::new(),
        })
    }

    async fn poll(&self, job: &JobRef) -> Result<Polled, MediaError> {
        let builder = self
            .http
            .get(format!("{}/videos/{}", self.base, job.id))
            .bearer_auth(self.key.expose());
        let response = http::send(builder, Some(&self.key), http::never).await?;
        let after = poll_after(response.headers());
        let video: Video = http::json(response).await?;
        match video.status.as_str() {
            "completed" => Ok(Polled::Done(Finished {
                url: format!("{}/videos/{}/content", self.base, video.id),
                video_id: Some(video.id),
                duration_secs: video.seconds.and_then(|s| s.parse().ok()),
            })),
            "failed" => {
                let error = video.error.unwrap_or(Value::Null);
                let code = error["code"].as_str().unwrap_or_default();
                let message = error["message"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .chars()
                    .take(300)
                    .collect::<String>();
                if code.contains("moderation") || code.contains("content_policy") {
                    Err(MediaError::Filtered(message))
                } else {
                    Err(MediaError::JobFailed(format!("{code}: {message}")))
                }
            }
            status => Ok(Polled::Running {
                status: status.to_owned(),
                fraction: video.progress.map(|p| (p / 100.0).clamp(0.0, 1.0)),
                poll_after: after,
            }),
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
            .query(&[("variant", "video")])
            .bearer_auth(self.key.expose());
        let response = http::send(builder, Some(&self.key), http::never).await?;
        http::body_limited(response, max_bytes).await
    }

    async fn cancel(&self, job: &JobRef) -> Result<bool, MediaError> {
        let builder = self
            .http
            .delete(format!("{}/videos/{}", self.base, job.id))
            .bearer_auth(self.key.expose());
        http::send(builder, Some(&self.key), http::never).await?;
        Ok(true)
    }
}
