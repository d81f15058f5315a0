//! KlingAI's video API: `POST /v1/videos/{text2video|image2video|video-extend}` with a bearer
//! JWT (HS256, signed with the secret key; `iss` the access key, 30 minutes of life, cached and
//! renewed 5 minutes before it ends) answers `{code: 0, data: {task_id, task_status}}`;
//! `GET /v1/videos/{kind}/{task_id}` until `task_status` is `succeed` (the video's URL in
//! `task_result.videos[0]`) or `failed`. KlingAI has no call that cancels a task: a cancelled
//! job is no longer polled.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use common::provider::{ProviderError, client};
use common::settings::Secret;

use super::{Finished, JobRef, Polled, VideoProvider, VideoRequest, check_duration, check_ratio};
use crate::config::ProviderAccess;
use crate::error::MediaError;
use crate::http;
use crate::models::Provider;

/// A token's life.
const TOKEN_LIFE: Duration = Duration::from_secs(1800);
/// How long before its end a token is renewed.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// KlingAI's API.
pub struct Kling {
    http: reqwest::Client,
    base: String,
    access_key: Secret,
    secret_key: Secret,
    token: Mutex<Option<(String, SystemTime)>>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    exp: u64,
    nbf: u64,
}

impl Kling {
    /// A client for `access` (`KLINGAI_API_BASE_URL` defaults to
    /// `https://api-singapore.klingai.com`).
    pub fn new(access: &ProviderAccess) -> anyhow::Result<Self> {
        let secret_key = access
            .secret_key
            .clone()
            .ok_or_else(|| anyhow::anyhow!("KlingAI needs KLINGAI_SECRET_KEY"))?;
        Ok(Self {
            http: client()?,
            base: access.base_or("https://api-singapore.klingai.com"),
            access_key: access.api_key.clone(),
            secret_key,
            token: Mutex::new(None),
        })
    }

    /// The bearer token: the cached one while it has more than 5 minutes left.
    fn token(&self) -> Result<String, MediaError> {
        let now = SystemTime::now();
        let mut cached = self
            .token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((token, expires)) = cached.as_ref()
            && expires
                .duration_since(now)
                .is_ok_and(|left| left > RENEW_BEFORE)
        {
            return Ok(token.clone());
        }
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = Claims {
            iss: self.access_key.expose(),
            exp: secs + TOKEN_LIFE.as_secs(),
            nbf: secs.saturating_sub(5),
        };
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret_key.expose().as_bytes()),
        )
        .map_err(|e| ProviderError::Protocol(format!("the KlingAI token cannot be signed: {e}")))?;
        *cached = Some((token.clone(), now + TOKEN_LIFE));
        Ok(token)
    }

    fn mode(request: &VideoRequest) -> &str {
        if request.model.id.ends_with("-pro") {
            return "pro";
        }
        request.mode.as_deref().unwrap_or(
            if matches!(request.model.upstream, "kling-v2-6" | "kling-o1") {
                "pro"
            } else {
                "std"
            },
        )
    }

    /// The envelope's `data`, or the error its `code` says.
    fn data(envelope: Value) -> Result<Value, MediaError> {
        match envelope["code"].as_i64() {
            Some(0) => Ok(envelope["data"].clone()),
            _ => {
                let message: String = envelope["message"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .chars()
                    .take(300)
                    .collect();
                Err(ProviderError::Refused {
                    status: 200,
                    message,
                }
                .into())
            }
        }
    }
}

/// KlingAI's risk control: answers that refuse a prompt or an image (codes 1301, 1303 are its
/// "content security" refusals).
fn filtered(_: reqwest::StatusCode, body: &Value) -> bool {
    matches!(body["code"].as_i64(), Some(1301))
}

fn image_field(image: &crate::images::InputImage) -> String {
    STANDARD.encode(&image.bytes)
}

#[async_trait]
impl VideoProvider for Kling {
    fn provider(&self) -> Provider {
        Provider::Kling
    }

    fn check(&self, request: &VideoRequest) -> Result<(), String> {
        let id = request.model.id;
        if request.extend.is_some() {
            return Ok(());
        }
        check_duration(request, &[5, 10])?;
        check_ratio(request, &["16:9", "9:16", "1:1"])?;
        if request.resolution.is_some() {
            return Err(format!(
                "{id} takes mode (std or pro) rather than a resolution"
            ));
        }
        if let Some(mode) = &request.mode {
            if !matches!(mode.as_str(), "std" | "pro") {
                return Err(format!("{id} takes mode std or pro, not {mode}"));
            }
            let pro_only =
                id.ends_with("-pro") || matches!(request.model.upstream, "kling-v2-6" | "kling-o1");
            if pro_only && mode == "std" {
                return Err(format!("{id} runs in pro mode only"));
            }
        }
        if request.motion.is_some() && request.input_image.is_none() {
            return Err("the motion brush needs image_url".into());
        }
        Ok(())
    }

    async fn submit(&self, request: &VideoRequest) -> Result<JobRef, MediaError> {
        let (kind, body) = if let Some(video_id) = &request.extend {
            let mut body = json!({"video_id": video_id});
            if let Some(p) = &request.prompt {
                body["prompt"] = json!(p);
            }
            if let Some(n) = &request.negative_prompt {
                body["negative_prompt"] = json!(n);
            }
            ("video-extend", body)
        } else {
            let mut body = json!({
                "model_name": request.model.upstream,
                "prompt": request.prompt.clone().unwrap_or_default(),
                "mode": Self::mode(request),
            });
            if let Some(d) = request.duration_secs {
                body["duration"] = json!(d.to_string());
            }
            if let Some(r) = &request.aspect_ratio {
                body["aspect_ratio"] = json!(r);
            }
            if let Some(n) = &request.negative_prompt {
                body["negative_prompt"] = json!(n);
            }
            if let Some(c) = &request.camera_control {
                body["camera_control"] = c.clone();
            }
            match &request.input_image {
                Some(image) => {
                    body["image"] = json!(image_field(image));
                    if let Some((mask, trajectories)) = &request.motion {
                        // One dynamic mask per trajectory: the painted area follows each.
                        let mask = image_field(mask);
                        let masks: Vec<Value> = trajectories
                            .iter()
                            .map(|t| json!({"mask": mask, "trajectories": t}))
                            .collect();
                        body["dynamic_masks"] = json!(masks);
                    }
                    ("image2video", body)
                }
                None => ("text2video", body),
            }
        };
        let builder = self
            .http
            .post(format!("{}/v1/videos/{kind}", self.base))
            .bearer_auth(self.token()?)
            .json(&body);
        let envelope: Value = http::json(http::send(builder, None, filtered).await?).await?;
        let data = Self::data(envelope)?;
        let id = data["task_id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| MediaError::BadOutput("a task without a task_id".into()))?;
        Ok(JobRef {
            id: id.to_owned(),
            kind: kind.to_owned(),
        })
    }

    async fn poll(&self, job: &JobRef) -> Result<Polled, MediaError> {
        let builder = self
            .http
            .get(format!("{}/v1/videos/{}/{}", self.base, job.kind, job.id))
            .bearer_auth(self.token()?);
        let envelope: Value = http::json(http::send(builder, None, filtered).await?).await?;
        let data = Self::data(envelope)?;
        let status = data["task_status"].as_str().unwrap_or_default();
        match status {
            "succeed" => {
                let video = &data["task_result"]["videos"][0];
                let url = video["url"]
                    .as_str()
                    .ok_or_else(|| MediaError::BadOutput("a task without its video".into()))?;
                Ok(Polled::Done(Finished {
                    url: url.to_owned(),
                    video_id: video["id"].as_str().map(str::to_owned),
                    duration_secs: video["duration"]
                        .as_str()
                        .and_then(|d| d.parse().ok())
                        .or_else(|| video["duration"].as_f64()),
                }))
            }
            "failed" => {
                let message: String = data["task_status_msg"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .chars()
                    .take(300)
                    .collect();
                let lower = message.to_ascii_lowercase();
                if lower.contains("risk")
                    || lower.contains("sensitive")
                    || lower.contains("moderation")
                {
                    Err(MediaError::Filtered(message))
                } else {
                    Err(MediaError::JobFailed(message))
                }
            }
            status => Ok(Polled::Running {
                status: status.to_owned(),
                fraction: None,
                poll_after: None,
            }),
        }
    }

    async fn download(
        &self,
        _job: &JobRef,
        finished: &Finished,
        max_bytes: usize,
    ) -> Result<Bytes, MediaError> {
        // The video's URL is a public CDN address: no token.
        let response = http::send(self.http.get(&finished.url), None, http::never).await?;
        http::body_limited(response, max_bytes).await
    }
}
