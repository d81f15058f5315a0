//! The speech worker: one process, two services. `tts` (`tts.speech.synthesize`,
//! `tts.speech.stream`) speaks with OpenAI, ElevenLabs, Gemini or the offline espeak-ng, streams
//! the audio to the session as `audio_chunk` events and stores the whole clip; `stt`
//! (`stt.transcription.file`, `stt.transcription.stream`) transcribes recordings and live audio
//! with OpenAI, Deepgram, Gemini or the offline Whisper (`local`).

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
use handlers::transcribe::{KNOWN, TranscribeFile, Transcribers};
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
    let Some(bus) = Bus::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    storage.prepare().await?;
    let providers = Arc::new(providers::Providers::from_settings(&settings)?);
    tracing::info!(providers = ?providers.configured(), default = providers.default_name(),
        storage = %storage.describe(), "speech providers ready");
    let transcribers = Arc::new(transcribers(&settings).await?);
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

/// The transcription providers: those whose keys are set and the offline `local` when its model
/// is installed. The default is `STT__DEFAULT_PROVIDER`, else the first keyed of deepgram, openai,
/// gemini, else `local`.
async fn transcribers(settings: &Settings) -> anyhow::Result<Transcribers> {
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
    let local = local_transcriber(settings).await;
    let missing = match local {
        Ok(local) => {
            list.push(local);
            None
        }
        Err(why) => Some(why),
    };
    let default = match settings.stt.default_provider.as_deref() {
        Some(name) => {
            let Some(&name) = KNOWN.iter().find(|k| **k == name) else {
                anyhow::bail!(
                    "STT__DEFAULT_PROVIDER is {name:?}, which is unknown (known: {})",
                    KNOWN.join(", ")
                );
            };
            // A missing model is the operator's to install, not a reason not to start.
            if name != "local" && !list.iter().any(|t| t.name() == name) {
                anyhow::bail!("STT__DEFAULT_PROVIDER is {name}, which has no key here");
            }
            name
        }
        None => list.first().map_or("local", |t| t.name()),
    };
    let mut transcribers = Transcribers::new(list)
        .with_live(live)
        .with_default(default);
    if let Some(why) = missing {
        transcribers = transcribers.with_missing("local", why);
    }
    Ok(transcribers)
}

/// The offline Whisper, loaded once (off the runtime: about 0.3 s); when it cannot be, a warning
/// for the operator and the reason requests for `local` are refused with.
#[cfg(feature = "local-stt")]
async fn local_transcriber(settings: &Settings) -> Result<Arc<dyn Transcriber>, String> {
    let dir = std::path::PathBuf::from(&settings.stt.model_dir);
    let threads = settings.stt.threads;
    let started = std::time::Instant::now();
    let loaded = tokio::task::spawn_blocking(move || stt::local::LocalWhisper::load(&dir, threads))
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
    match loaded {
        Ok(model) => {
            tracing::info!(model = ?model, threads, load_ms = started.elapsed().as_millis(),
                "offline transcription model loaded");
            Ok(Arc::new(model))
        }
        Err(e) => {
            tracing::warn!(error = %e, "offline transcription (local) is off");
            Err(
                "its model is not installed (or does not load) on this server (the operator \
                 installs it with scripts/dev, scripts/test or ensure_whisper_model in \
                 scripts/lib.sh, or points STT__MODEL_DIR at it)"
                    .into(),
            )
        }
    }
}

#[cfg(not(feature = "local-stt"))]
async fn local_transcriber(_: &Settings) -> Result<Arc<dyn Transcriber>, String> {
    Err("this tts-worker was built without the local-stt feature".into())
}
