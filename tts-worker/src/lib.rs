//! The speech worker: one process, two services. `tts` (`tts.speech.synthesize`,
//! `tts.speech.stream`) speaks with OpenAI, ElevenLabs, Gemini or the offline espeak-ng, streams
//! the audio to the session as `audio_chunk` events and stores the whole clip; `stt`
//! (`stt.transcription.file`, `stt.transcription.stream`) transcribes recordings and live audio
//! with OpenAI, Deepgram or Gemini.

pub mod audio;
pub mod config;
pub mod handlers;
pub mod providers;
pub mod stt;

use std::sync::Arc;

use common::Bus;
use common::payloads::{stt as stt_actions, tts};
use common::storage::Storage;
use common::worker::{Actions, Worker};
use tokio_util::sync::CancellationToken;

pub use config::Settings;
use handlers::listen::TranscribeStream;
use handlers::speech::{Speech, StreamSpeech, Synthesize};
use handlers::transcribe::{TranscribeFile, Transcribers};
use stt::live::LiveTranscriber;
use stt::live::deepgram::DeepgramLive;
use stt::providers::{DeepgramStt, GeminiStt, OpenAiStt, Transcriber};

/// The text-to-speech service: the first segment of the action types it consumes.
pub const SERVICE: &str = "tts";
/// The speech-to-text service.
pub const STT_SERVICE: &str = "stt";

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
    let transcribers = Arc::new(transcribers(&settings)?);
    tracing::info!(providers = ?transcribers.configured(), "transcription providers ready");
    let speech = Speech::new(providers, storage.clone(), bus.clone(), &settings);
    let tts_actions = Actions::new()
        .action(tts::SYNTHESIZE, Synthesize(speech.clone()))
        .action(tts::STREAM, StreamSpeech(speech));
    let stt_actions = Actions::new()
        .action(
            stt_actions::TRANSCRIBE_FILE,
            TranscribeFile::new(Arc::clone(&transcribers), storage),
        )
        .action(
            stt_actions::TRANSCRIBE_STREAM,
            TranscribeStream::new(transcribers, bus.clone()),
        );
    // The probes answer once, for the process: the second worker has none of its own.
    let stt_settings = common::worker::WorkerSettings {
        probe_addr: None,
        ..settings.worker.clone()
    };
    let speaking = Worker::new(
        bus.clone(),
        settings.worker.clone(),
        SERVICE,
        Arc::new(tts_actions),
    );
    let transcribing = Worker::new(bus, stt_settings, STT_SERVICE, Arc::new(stt_actions));
    let (spoke, transcribed) =
        tokio::join!(speaking.run(shutdown.clone()), transcribing.run(shutdown));
    spoke.and(transcribed)
}

/// The transcription providers whose keys are set; the first is the default.
fn transcribers(settings: &Settings) -> anyhow::Result<Transcribers> {
    let mut list: Vec<Arc<dyn Transcriber>> = Vec::new();
    let mut live: Vec<Arc<dyn LiveTranscriber>> = Vec::new();
    if let Some(access) = settings.access("deepgram") {
        list.push(Arc::new(DeepgramStt::new(access)?));
        live.push(Arc::new(DeepgramLive::new(access)));
    }
    if let Some(access) = settings.access("openai") {
        list.push(Arc::new(OpenAiStt::new(access)?));
    }
    if let Some(access) = settings.access("gemini") {
        list.push(Arc::new(GeminiStt::new(access)?));
    }
    Ok(Transcribers::new(list).with_live(live))
}
