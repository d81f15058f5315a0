//! The tts-worker: consumes `tts.*` actions (`tts.speech.synthesize`, `tts.speech.stream`),
//! speaks with OpenAI, ElevenLabs, Gemini or the offline espeak-ng, streams the audio to the
//! session as `audio_chunk` events and stores the whole clip.

pub mod audio;
pub mod config;
pub mod handlers;
pub mod providers;

use std::sync::Arc;

use common::Bus;
use common::payloads::tts;
use common::storage::Storage;
use common::worker::{Actions, Worker};
use tokio_util::sync::CancellationToken;

pub use config::Settings;
use handlers::speech::{Speech, StreamSpeech, Synthesize};

/// The service name: the first segment of the action types this worker consumes.
pub const SERVICE: &str = "tts";

/// Runs the worker until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let storage = Storage::new(&settings.storage, &settings.core)?;
    let Some(bus) = Bus::connect_with_retry(&settings.core, &shutdown).await else {
        return Ok(());
    };
    storage.prepare().await?;
    let providers = Arc::new(providers::Providers::from_settings(&settings)?);
    tracing::info!(providers = ?providers.configured(), default = providers.default_name(),
        storage = %storage.describe(), "speech providers ready");
    let speech = Speech::new(providers, storage, bus.clone(), &settings);
    let actions = Actions::new()
        .action(tts::SYNTHESIZE, Synthesize(speech.clone()))
        .action(tts::STREAM, StreamSpeech(speech));
    Worker::new(bus, settings.worker.clone(), SERVICE, Arc::new(actions))
        .run(shutdown)
        .await
}
