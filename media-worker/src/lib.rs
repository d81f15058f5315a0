//! The media worker: `media.image.generate` draws with OpenAI, Flux (Black Forest Labs),
//! Stability AI, Gemini (and Imagen), xAI, or the offline placeholder, and stores the images
//! (or answers them inline); `media.video.generate` and `media.video.extend` film with Sora, Veo
//! or KlingAI as provider jobs that a crash does not lose, and store the videos. See
//! `docs/media.md`.

pub mod config;
pub mod error;
pub mod fetch;
pub mod handlers;
pub mod http;
pub mod images;
pub mod jobs;
pub mod models;
pub mod videos;

use std::sync::Arc;

use common::Bus;
use common::payloads::media;
use common::storage::Storage;
use common::worker::{Actions, Worker};
use tokio_util::sync::CancellationToken;

pub use config::Settings;
use handlers::image::GenerateImage;
use handlers::video::{ExtendVideo, GenerateVideo, Videos};
use images::ImageProviders;
use jobs::Jobs;
use videos::VideoProviders;

/// The service: the first segment of the action types it consumes.
pub const SERVICE: &str = "media";

/// Runs the worker until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let storage = Storage::new(&settings.storage, &settings.core)?;
    let image_providers = Arc::new(ImageProviders::from_settings(&settings)?);
    let images = GenerateImage::new(
        Arc::clone(&image_providers),
        storage.clone(),
        &settings.media,
    )?;
    let video_providers = Arc::new(VideoProviders::from_settings(&settings)?);
    let Some(bus) = Bus::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    storage.prepare().await?;
    let jobs = Jobs::new(bus.clone(), settings.media.job_record_ttl_secs);
    let videos = Videos::new(
        Arc::clone(&video_providers),
        storage.clone(),
        jobs,
        &settings.media,
    )?;
    tracing::info!(providers = ?image_providers.configured(), default = images.default_model(),
        storage = %storage.describe(), "image providers ready");
    tracing::info!(providers = ?video_providers.configured(), default = ?videos.default_model(),
        "video providers ready");
    let actions = Actions::new()
        .action(media::GENERATE_IMAGE, images)
        .action(media::GENERATE_VIDEO, GenerateVideo(videos.clone()))
        .action(media::EXTEND_VIDEO, ExtendVideo(videos));
    Worker::new(bus, settings.worker.clone(), SERVICE, Arc::new(actions))
        .run(shutdown)
        .await
}
