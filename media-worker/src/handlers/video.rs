//! `media.video.generate` and `media.video.extend`: the job submitted once and recorded before
//! the first poll (a delivery after a crash resumes it), polled with a `progress` event per
//! poll, cancelled upstream when the client cancels (where the provider can), downloaded into
//! storage (never into a stream), and `text_completed` with `data.video`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use serde_json::{Value, json};

use common::backoff::Backoff;
use common::events::{ErrorData, Progress, TaskEvents, TextCompleted};
use common::payloads::media::{ExtendPayload, VideoPayload};
use common::storage::Storage;
use common::worker::{Action, HandlerError, Task};

use super::image::plan_model;
use super::{TRIES, with_retries};
use crate::config::MediaSettings;
use crate::error::MediaError;
use crate::fetch::Fetcher;
use crate::jobs::{JobRecord, Jobs};
use crate::models::{self, Kind, MediaModel, Provider};
use crate::videos::{Finished, JobRef, Polled, VideoProvider, VideoProviders, VideoRequest};

/// The folder of stored videos.
pub const FOLDER: &str = "videos";
/// Polls in a row that may fail (a 5xx, a timeout) before the job is given up.
const POLL_FAILURES: u32 = 10;

/// What both video actions share.
#[derive(Clone)]
pub struct Videos {
    providers: Arc<VideoProviders>,
    storage: Storage,
    fetcher: Fetcher,
    jobs: Jobs,
    default_model: Option<&'static str>,
    kling_default: String,
    poll_interval: Duration,
    timeout: Duration,
    max_video_bytes: usize,
}

/// `media.video.generate`.
pub struct GenerateVideo(pub Videos);

/// `media.video.extend`.
pub struct ExtendVideo(pub Videos);

fn rejected(code: &str, message: impl Into<String>) -> HandlerError {
    HandlerError::rejected(code, message)
}

impl Videos {
    /// Videos with `providers`, stored in `storage`, their jobs recorded in `jobs`.
    pub fn new(
        providers: Arc<VideoProviders>,
        storage: Storage,
        jobs: Jobs,
        settings: &MediaSettings,
    ) -> anyhow::Result<Self> {
        let default_model = match settings.default_video_model.as_deref() {
            Some(name) => {
                let model = models::resolve(name, Kind::Video, &settings.kling_default_model)
                    .map_err(|e| anyhow::anyhow!("MEDIA__DEFAULT_VIDEO_MODEL: {e}"))?;
                Some(model.id)
            }
            None => models::VIDEO_DEFAULTS
                .iter()
                .filter_map(|id| {
                    models::resolve(id, Kind::Video, &settings.kling_default_model).ok()
                })
                .find(|m| providers.get(m.provider).is_some())
                .map(|m| m.id),
        };
        Ok(Self {
            providers,
            storage,
            fetcher: Fetcher::new(settings.max_input_image_bytes, settings.allow_private_urls)?,
            jobs,
            default_model,
            kling_default: settings.kling_default_model.clone(),
            poll_interval: Duration::from_millis(settings.poll_interval_ms.max(10)),
            timeout: Duration::from_secs(settings.video_timeout_secs.max(1)),
            max_video_bytes: settings.max_video_bytes,
        })
    }

    /// The model of requests that name none, if a video provider is configured.
    pub fn default_model(&self) -> Option<&'static str> {
        self.default_model
    }

    fn plan(
        &self,
        name: Option<&str>,
    ) -> Result<(MediaModel, Arc<dyn VideoProvider>), HandlerError> {
        let Some(default) = name.or(self.default_model) else {
            return Err(rejected(
                "provider_unavailable",
                "no video provider is configured here (the operator sets GEMINI_API_KEY for \
                 Veo, OPENAI_API_KEY for Sora, or KLINGAI_ACCESS_KEY and KLINGAI_SECRET_KEY)",
            ));
        };
        let model = plan_model(
            Some(default),
            Kind::Video,
            default,
            &self.kling_default,
            |p| self.providers.get(p).is_some(),
        )?;
        let provider =
            self.providers.get(model.provider).cloned().ok_or_else(|| {
                HandlerError::fatal("worker", "internal", "the provider vanished")
            })?;
        Ok((model, provider))
    }

    async fn fetch(
        &self,
        task: &Task,
        url: &str,
    ) -> Result<Option<crate::images::InputImage>, HandlerError> {
        tokio::select! {
            () = task.cancel.cancelled() => Ok(None),
            r = self.fetcher.fetch(url) => r.map(Some).map_err(|e| rejected(e.code(), e.to_string())),
        }
    }
}

#[async_trait]
impl Action<VideoPayload> for GenerateVideo {
    async fn run(&self, task: Task, p: VideoPayload) -> Result<(), HandlerError> {
        let v = &self.0;
        let (model, provider) = v.plan(p.model.as_deref())?;
        let mut request = VideoRequest {
            model,
            prompt: Some(p.prompt.clone()),
            duration_secs: p.duration_secs,
            aspect_ratio: p.aspect_ratio.clone(),
            resolution: p.resolution.clone(),
            input_image: None,
            negative_prompt: p.negative_prompt.clone(),
            mode: p.mode.clone(),
            camera_control: p.camera_control.clone(),
            motion: None,
            extend: None,
        };
        // A job recorded by an earlier delivery was checked then; it is resumed as it is.
        let resumed = v.jobs.get(task.action.action_id).await.map_err(bus_error)?;
        if resumed.is_none() {
            if let Some(url) = &p.image_url {
                let Some(image) = v.fetch(&task, url).await? else {
                    return Ok(());
                };
                request.input_image = Some(image);
            }
            if let Some(url) = &p.mask_url {
                let Some(mask) = v.fetch(&task, url).await? else {
                    return Ok(());
                };
                request.motion = Some((mask, p.trajectories.clone()));
            }
            provider
                .check(&request)
                .map_err(|e| rejected("unsupported_option", e))?;
        }
        v.film(&task, provider.as_ref(), &request, resumed).await
    }
}

#[async_trait]
impl Action<ExtendPayload> for ExtendVideo {
    async fn run(&self, task: Task, p: ExtendPayload) -> Result<(), HandlerError> {
        let v = &self.0;
        let name = p.model.clone().unwrap_or_else(|| v.kling_default.clone());
        let (model, provider) = v.plan(Some(&name))?;
        if model.provider != Provider::Kling {
            return Err(rejected(
                "unsupported_option",
                format!("{} cannot extend videos: the KlingAI models do", model.id),
            ));
        }
        let request = VideoRequest {
            model,
            prompt: p.prompt.clone(),
            duration_secs: None,
            aspect_ratio: None,
            resolution: None,
            input_image: None,
            negative_prompt: p.negative_prompt.clone(),
            mode: None,
            camera_control: None,
            motion: None,
            extend: Some(p.video_id.clone()),
        };
        let resumed = v.jobs.get(task.action.action_id).await.map_err(bus_error)?;
        v.film(&task, provider.as_ref(), &request, resumed).await
    }
}

fn bus_error(e: redis::RedisError) -> HandlerError {
    HandlerError::retryable("worker", "bus_unavailable", e.to_string())
}

async fn progress(
    events: &TaskEvents,
    stage: &str,
    fraction: Option<f64>,
    message: String,
    job: Option<&JobRef>,
    status: Option<&str>,
) -> Result<(), HandlerError> {
    events
        .progress(&Progress {
            stage: stage.to_owned(),
            fraction,
            message,
            provider_job_id: job.map(|j| j.id.clone()),
            provider_status: status.map(str::to_owned),
            ..Progress::default()
        })
        .await?;
    Ok(())
}

/// A failure the client is told about; the job is over.
async fn fail(events: &TaskEvents, error: ErrorData) -> Result<(), HandlerError> {
    events.error(&error).await?;
    Ok(())
}

/// Why a downloaded video was not stored.
enum Unstored {
    /// The bytes are no video.
    NotVideo(MediaError),
    /// The storage failed.
    Storage(common::storage::StorageError),
}

/// The container of a video's bytes: `(mime, ext)`.
fn container(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    if bytes.get(4..8) == Some(b"ftyp") {
        Some(("video/mp4", "mp4"))
    } else if bytes.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        Some(("video/webm", "webm"))
    } else {
        None
    }
}

impl Videos {
    /// Submits (or resumes) the job, polls it to its end, stores the video and answers.
    async fn film(
        &self,
        task: &Task,
        provider: &dyn VideoProvider,
        request: &VideoRequest,
        resumed: Option<JobRecord>,
    ) -> Result<(), HandlerError> {
        let events = &task.events;
        let action_id = task.action.action_id;
        let model = request.model;
        if let Some(record) = &resumed
            && let Some(result) = &record.result
        {
            // Stored by an earlier delivery that died before it answered.
            let mut done = TextCompleted::new("", Value::Null, "stop");
            done.data = Some(result.clone());
            events.text_completed(&done).await?;
            return Ok(());
        }
        let record = match resumed {
            Some(record) => {
                tracing::info!(%action_id, job = %record.job.id, provider = %record.provider,
                    "resuming a provider job recorded by an earlier delivery");
                events
                    .model_in_use(&record.provider, &record.model, None)
                    .await?;
                progress(
                    events,
                    "resuming",
                    None,
                    format!("Following the {} job started earlier", record.provider),
                    Some(&record.job),
                    None,
                )
                .await?;
                record
            }
            None => {
                events
                    .model_in_use(model.provider.name(), model.id, None)
                    .await?;
                progress(
                    events,
                    "submitting",
                    Some(0.0),
                    format!("Asking {} for the video", model.provider.name()),
                    None,
                    None,
                )
                .await?;
                if task.cancel.is_cancelled() {
                    return Ok(());
                }
                // Not abandoned midway on a cancel: a job the provider accepted would run
                // unrecorded and uncancelled. Once recorded, the cancel reaches it below.
                let submitted = with_retries("submit", || provider.submit(request)).await;
                let job = match submitted {
                    Ok(job) => job,
                    Err(e) => return fail(events, e.error_data("provider")).await,
                };
                let record = JobRecord {
                    provider: model.provider.name().to_owned(),
                    model: model.id.to_owned(),
                    job,
                    submitted_at: Utc::now(),
                    result: None,
                };
                self.record(task, provider, &record).await?;
                record
            }
        };
        let finished = match self.follow(task, provider, &record).await? {
            Some(finished) => finished,
            None => return Ok(()),
        };
        progress(
            events,
            "downloading",
            Some(1.0),
            "The video is ready; storing it".into(),
            Some(&record.job),
            None,
        )
        .await?;
        let max = self.max_video_bytes;
        let downloaded = tokio::select! {
            () = task.cancel.cancelled() => return Ok(()),
            r = with_retries("download", || provider.download(&record.job, &finished, max)) => r,
        };
        let bytes = match downloaded {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = self.jobs.delete(action_id).await;
                return fail(events, e.error_data("provider")).await;
            }
        };
        let result = match self.store(task, &record, &finished, bytes).await {
            Ok(result) => result,
            Err(Unstored::NotVideo(e)) => {
                let _ = self.jobs.delete(action_id).await;
                return fail(events, e.error_data("provider")).await;
            }
            Err(Unstored::Storage(e)) => {
                // Paid for and ready: a later delivery resumes the job and tries again.
                tracing::error!(%action_id, error = %e, "a video could not be stored");
                return Err(HandlerError::retryable(
                    "storage",
                    "storage_unavailable",
                    "the video could not be stored",
                ));
            }
        };
        let mut stored = record.clone();
        stored.result = Some(result.clone());
        if let Err(e) = self.jobs.put(action_id, &stored).await {
            tracing::warn!(%action_id, error = %e, "the job's answer was not recorded");
        }
        let mut done = TextCompleted::new("", Value::Null, "stop");
        done.data = Some(result);
        events.text_completed(&done).await?;
        Ok(())
    }

    /// Records the job before anything else; should Redis refuse, the job is cancelled (where
    /// the provider can) rather than left running unrecorded, and the action tried again.
    async fn record(
        &self,
        task: &Task,
        provider: &dyn VideoProvider,
        record: &JobRecord,
    ) -> Result<(), HandlerError> {
        let action_id = task.action.action_id;
        let mut last = None;
        for attempt in 1..=TRIES {
            match self.jobs.put(action_id, record).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Backoff::delay_for(
                        Duration::from_millis(200),
                        Duration::from_secs(2),
                        attempt,
                    ))
                    .await;
                }
            }
        }
        tracing::error!(%action_id, job = %record.job.id, error = ?last,
            "a provider job could not be recorded; cancelling it");
        let _ = provider.cancel(&record.job).await;
        Err(HandlerError::retryable(
            "worker",
            "bus_unavailable",
            "the provider job could not be recorded",
        ))
    }

    /// Polls until the job ends: its video, or `None` once the client was told why not (or
    /// cancelled).
    async fn follow(
        &self,
        task: &Task,
        provider: &dyn VideoProvider,
        record: &JobRecord,
    ) -> Result<Option<Finished>, HandlerError> {
        let events = &task.events;
        let action_id = task.action.action_id;
        let deadline = record.submitted_at
            + chrono::Duration::from_std(self.timeout).unwrap_or(chrono::Duration::MAX);
        let mut wait = Duration::ZERO;
        let mut failures = 0;
        let mut last_fraction: Option<f64> = None;
        loop {
            tokio::select! {
                biased;
                () = task.cancel.cancelled() => {
                    self.cancel_upstream(provider, record).await;
                    let _ = self.jobs.delete(action_id).await;
                    return Ok(None);
                }
                () = tokio::time::sleep(wait) => {}
            }
            if Utc::now() > deadline {
                self.cancel_upstream(provider, record).await;
                let _ = self.jobs.delete(action_id).await;
                fail(
                    events,
                    MediaError::Timeout(self.timeout.as_secs()).error_data("provider"),
                )
                .await?;
                return Ok(None);
            }
            let polled = tokio::select! {
                () = task.cancel.cancelled() => continue,
                r = provider.poll(&record.job) => r,
            };
            wait = self.poll_interval;
            match polled {
                Ok(Polled::Done(finished)) => return Ok(Some(finished)),
                Ok(Polled::Running {
                    status,
                    fraction,
                    poll_after,
                }) => {
                    failures = 0;
                    if let Some(after) = poll_after {
                        wait = after.clamp(Duration::from_millis(10), Duration::from_secs(60));
                    }
                    // Never backwards, whatever the provider says.
                    let fraction = match (fraction, last_fraction) {
                        (Some(f), Some(l)) => Some(f.max(l)),
                        (f, l) => f.or(l),
                    };
                    last_fraction = fraction;
                    let message = match fraction {
                        Some(f) => format!("{}: {status} ({:.0} %)", record.provider, f * 100.0),
                        None => format!("{}: {status}", record.provider),
                    };
                    progress(
                        events,
                        "generating",
                        fraction,
                        message,
                        Some(&record.job),
                        Some(&status),
                    )
                    .await?;
                }
                Err(e) if e.retryable() && failures < POLL_FAILURES => {
                    failures += 1;
                    if let MediaError::Provider(p) = &e
                        && let Some(after) = p.retry_after()
                    {
                        wait = wait.max(after.min(Duration::from_secs(60)));
                    }
                    tracing::warn!(%action_id, error = %e, failures, "a poll failed; polling on");
                }
                Err(e) => {
                    let _ = self.jobs.delete(action_id).await;
                    fail(events, e.error_data("provider")).await?;
                    return Ok(None);
                }
            }
        }
    }

    async fn cancel_upstream(&self, provider: &dyn VideoProvider, record: &JobRecord) {
        match provider.cancel(&record.job).await {
            Ok(true) => tracing::info!(job = %record.job.id, provider = %record.provider,
                "provider job cancelled"),
            Ok(false) => tracing::info!(job = %record.job.id, provider = %record.provider,
                "the provider cannot cancel a job; it is no longer polled"),
            Err(e) => tracing::warn!(job = %record.job.id, error = %e,
                "the provider job could not be cancelled"),
        }
    }

    /// Stores the video for the action's tenant: the answer's `data`.
    async fn store(
        &self,
        task: &Task,
        record: &JobRecord,
        finished: &Finished,
        bytes: Bytes,
    ) -> Result<Value, Unstored> {
        let (mime, ext) = container(&bytes).ok_or_else(|| {
            Unstored::NotVideo(MediaError::BadOutput(
                "the provider's file is not an MP4 or WebM video".into(),
            ))
        })?;
        let size = bytes.len();
        let object = self
            .storage
            .put(task.action.tenant_id, FOLDER, ext, mime, bytes)
            .await
            .map_err(Unstored::Storage)?;
        Ok(json!({
            "video": {
                "url": object.url,
                "url_expires_at": object.url_expires_at,
                "key": object.key,
                "mime": mime,
                "bytes": size,
                "duration_secs": finished.duration_secs,
                "provider_video_id": finished.video_id,
            },
            "model": record.model,
            "provider": record.provider,
            "provider_job_id": record.job.id,
        }))
    }
}
