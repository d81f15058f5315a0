//! Video providers behind one trait: a video is a provider job — submitted once, polled until it
//! ends, downloaded — and what a request asks of them.

mod kling;
mod sora;
mod veo;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use kling::Kling;
pub use sora::Sora;
pub use veo::Veo;

use crate::config::Settings;
use crate::error::MediaError;
use crate::images::InputImage;
use crate::models::{MediaModel, Provider};

/// What a provider is asked to film.
#[derive(Debug, Clone)]
pub struct VideoRequest {
    /// The model.
    pub model: MediaModel,
    /// What happens (an extension may have none).
    pub prompt: Option<String>,
    /// Seconds.
    pub duration_secs: Option<u32>,
    /// `16:9`, `9:16`, `1:1`.
    pub aspect_ratio: Option<String>,
    /// `720p`, `1080p` or `WIDTHxHEIGHT`.
    pub resolution: Option<String>,
    /// The first frame.
    pub input_image: Option<InputImage>,
    /// What not to show.
    pub negative_prompt: Option<String>,
    /// KlingAI's `std` or `pro`.
    pub mode: Option<String>,
    /// KlingAI's camera control.
    pub camera_control: Option<Value>,
    /// KlingAI's motion brush: the mask and its trajectories.
    pub motion: Option<(InputImage, Vec<Vec<common::payloads::media::Point>>)>,
    /// The provider's id of a video to continue (an extension).
    pub extend: Option<String>,
}

/// A provider job, as recorded before it is polled: enough to poll, download and cancel it
/// from another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    /// The provider's id of the job (an operation name for Veo).
    pub id: String,
    /// Which of the provider's job kinds (KlingAI's `text2video`, `image2video`,
    /// `video-extend`); empty where there is one.
    #[serde(default)]
    pub kind: String,
}

/// A finished job's video.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Where the video is.
    pub url: String,
    /// The provider's id of the video (what an extension names).
    pub video_id: Option<String>,
    /// Its length, seconds, when the provider says.
    pub duration_secs: Option<f64>,
}

/// A job's state after a poll.
#[derive(Debug, Clone, PartialEq)]
pub enum Polled {
    /// Still working.
    Running {
        /// The provider's word for it (`queued`, `in_progress`, `processing`, ...).
        status: String,
        /// How far, 0 to 1, when the provider says.
        fraction: Option<f64>,
        /// When to poll again, when the provider says.
        poll_after: Option<Duration>,
    },
    /// Done: the video is ready to download.
    Done(Finished),
}

/// A video provider.
#[async_trait]
pub trait VideoProvider: Send + Sync {
    /// Who it is.
    fn provider(&self) -> Provider;
    /// Refuses what the model cannot make (a duration, a resolution, an option), with a
    /// sentence for the client.
    fn check(&self, request: &VideoRequest) -> Result<(), String>;
    /// Starts the job (the paid step).
    async fn submit(&self, request: &VideoRequest) -> Result<JobRef, MediaError>;
    /// The job's state; a job that ended badly is an error (`Filtered`, `JobFailed`).
    async fn poll(&self, job: &JobRef) -> Result<Polled, MediaError>;
    /// The finished video's bytes, refused beyond `max_bytes`.
    async fn download(
        &self,
        job: &JobRef,
        finished: &Finished,
        max_bytes: usize,
    ) -> Result<Bytes, MediaError>;
    /// Asks the provider to stop the job; `false` when it has no way to.
    async fn cancel(&self, _job: &JobRef) -> Result<bool, MediaError> {
        Ok(false)
    }
}

/// The video providers of this process.
pub struct VideoProviders {
    by_provider: BTreeMap<Provider, Arc<dyn VideoProvider>>,
}

impl std::fmt::Debug for VideoProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_provider.keys()).finish()
    }
}

impl VideoProviders {
    /// The providers whose keys are set.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let mut by_provider: BTreeMap<Provider, Arc<dyn VideoProvider>> = BTreeMap::new();
        if let Some(access) = settings.access("openai") {
            by_provider.insert(Provider::Sora, Arc::new(Sora::new(access)?));
        }
        if let Some(access) = settings.access("gemini") {
            by_provider.insert(Provider::Veo, Arc::new(Veo::new(access)?));
        }
        if let Some(access) = settings.access("klingai") {
            by_provider.insert(Provider::Kling, Arc::new(Kling::new(access)?));
        }
        Ok(Self { by_provider })
    }

    /// The provider of `provider`, when configured.
    pub fn get(&self, provider: Provider) -> Option<&Arc<dyn VideoProvider>> {
        self.by_provider.get(&provider)
    }

    /// The names of the configured providers.
    pub fn configured(&self) -> Vec<&'static str> {
        self.by_provider.keys().map(|p| p.name()).collect()
    }
}

/// Refuses a duration outside `offered`.
pub fn check_duration(request: &VideoRequest, offered: &[u32]) -> Result<(), String> {
    if let Some(d) = request.duration_secs
        && !offered.contains(&d)
    {
        let list: Vec<String> = offered.iter().map(u32::to_string).collect();
        return Err(format!(
            "{} makes videos of {} seconds, not {d}",
            request.model.id,
            list.join(", ")
        ));
    }
    Ok(())
}

/// Refuses an aspect ratio outside `offered`.
pub fn check_ratio(request: &VideoRequest, offered: &[&str]) -> Result<(), String> {
    if let Some(r) = &request.aspect_ratio
        && !offered.contains(&r.as_str())
    {
        return Err(format!(
            "{} makes the aspect ratios {}, not {r}",
            request.model.id,
            offered.join(", ")
        ));
    }
    Ok(())
}

/// Refuses the KlingAI-only options for other providers.
pub fn check_not_kling(request: &VideoRequest) -> Result<(), String> {
    let id = request.model.id;
    if request.mode.is_some() {
        return Err(format!(
            "{id} has no mode (std or pro): the KlingAI models do"
        ));
    }
    if request.camera_control.is_some() {
        return Err(format!(
            "{id} takes no camera_control: the KlingAI models do"
        ));
    }
    if request.motion.is_some() {
        return Err(format!("{id} has no motion brush: the KlingAI models do"));
    }
    if request.extend.is_some() {
        return Err(format!("{id} cannot extend videos: the KlingAI models do"));
    }
    Ok(())
}
