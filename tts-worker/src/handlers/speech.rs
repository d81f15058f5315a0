//! `tts.speech.synthesize` (a whole text) and `tts.speech.stream` (a chat's answer while it is
//! written): `tts_started`, the audio as numbered `audio_chunk` events, the whole clip stored,
//! then `tts_completed` with its URL — or an `error` of stage `tts` for the speech half.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::StreamExt;

use common::events::{ErrorData, TaskEvents, TtsCompleted, TtsStarted};
use common::payloads::tts::{SpeechOptions, StreamPayload, SynthesizePayload};
use common::storage::Storage;
use common::worker::{Action, HandlerError, Task};

use super::input;
use crate::audio::{self, AudioFormat};
use crate::config::Settings;
use crate::providers::{
    AudioStream, ProviderError, Providers, SpeechProvider, SpeechRequest, TextStream,
};

/// What both speech actions share: providers, storage, limits.
#[derive(Clone)]
pub struct Speech {
    providers: Arc<Providers>,
    storage: Storage,
    bus: common::Bus,
    chunk_bytes: usize,
    max_audio_bytes: usize,
    provider_idle: Duration,
    input_idle: Duration,
}

impl Speech {
    /// Speech over `providers`, storing clips in `storage`.
    pub fn new(
        providers: Arc<Providers>,
        storage: Storage,
        bus: common::Bus,
        settings: &Settings,
    ) -> Self {
        let t = &settings.tts;
        Self {
            providers,
            storage,
            bus,
            chunk_bytes: t.chunk_bytes.max(1024),
            max_audio_bytes: t.max_audio_bytes,
            provider_idle: Duration::from_secs(t.provider_idle_timeout_secs.max(1)),
            input_idle: Duration::from_secs(t.input_idle_timeout_secs.max(1)),
        }
    }
}

/// `tts.speech.synthesize`.
pub struct Synthesize(pub Speech);

/// `tts.speech.stream`.
pub struct StreamSpeech(pub Speech);

#[async_trait]
impl Action<SynthesizePayload> for Synthesize {
    async fn run(&self, task: Task, payload: SynthesizePayload) -> Result<(), HandlerError> {
        let text = Text::Whole(payload.text);
        self.0
            .speak(&task, &payload.options, text, payload.save)
            .await
    }
}

#[async_trait]
impl Action<StreamPayload> for StreamSpeech {
    async fn run(&self, task: Task, payload: StreamPayload) -> Result<(), HandlerError> {
        let s = &self.0;
        let key = s
            .bus
            .names()
            .speech_input_stream(task.action.session_id, task.action.task_id);
        let text = input::follow(s.bus.clone(), key, s.input_idle, task.cancel.clone());
        s.speak(&task, &payload.options, Text::Streamed(text), payload.save)
            .await
    }
}

/// The text to speak.
enum Text {
    Whole(String),
    Streamed(TextStream),
}

/// How the speech half ended, when not with its clip.
struct Failed(ErrorData);

impl From<ProviderError> for Failed {
    fn from(e: ProviderError) -> Self {
        let mut error = ErrorData::new("tts", e.code(), e.to_string(), e.retryable());
        error.retry_after_secs = e.retry_after().map(|d| d.as_secs().max(1));
        Failed(error)
    }
}

fn failed(code: &str, message: impl Into<String>) -> Failed {
    Failed(ErrorData::new("tts", code, message, false))
}

impl Speech {
    async fn speak(
        &self,
        task: &Task,
        options: &SpeechOptions,
        text: Text,
        save: bool,
    ) -> Result<(), HandlerError> {
        let events = &task.events;
        let (provider, request) = match self.providers.plan(options) {
            Ok(plan) => plan,
            Err(e) => {
                events
                    .tts_failed(&ErrorData::new("tts", e.code(), e.to_string(), false))
                    .await?;
                return Ok(());
            }
        };
        events
            .tts_started(&TtsStarted {
                provider: provider.name().into(),
                model: request.model.clone(),
                voice: request.voice.clone(),
                format: request.format.name().into(),
                input_streaming: provider.input_streaming(),
            })
            .await?;
        match self.produce(task, &provider, &request, text, save).await {
            Ok(Some(done)) => {
                events.tts_completed(&done).await?;
            }
            // Cancelled: the runtime sends `cancelled` and what is still owed.
            Ok(None) => {}
            Err(Failed(error)) => {
                tracing::info!(code = %error.code, message = %error.message, "speech failed");
                events.tts_failed(&error).await?;
            }
        }
        Ok(())
    }

    /// Speaks, streams and stores; `None` when the task was cancelled.
    async fn produce(
        &self,
        task: &Task,
        provider: &Arc<dyn SpeechProvider>,
        request: &SpeechRequest,
        text: Text,
        save: bool,
    ) -> Result<Option<TtsCompleted>, Failed> {
        let (audio, characters) = match text {
            Text::Streamed(text) if provider.input_streaming() => {
                let (counted, characters) = counting(text);
                let audio = provider.speak_stream(request, counted).await?;
                (audio, Characters::Counted(characters))
            }
            Text::Streamed(text) => {
                // The buffered fallback: the whole text, once it is complete.
                let whole: String = tokio::select! {
                    () = task.cancel.cancelled() => return Ok(None),
                    whole = text.collect::<Vec<_>>() => whole.concat(),
                };
                if whole.trim().is_empty() {
                    return Err(failed("empty_text", "there was no text to speak"));
                }
                let n = whole.chars().count();
                (self.whole(provider, request, &whole)?, Characters::Known(n))
            }
            Text::Whole(text) => {
                let n = text.chars().count();
                (self.whole(provider, request, &text)?, Characters::Known(n))
            }
        };
        let Some(clip) = self.relay(task, request.format, audio).await? else {
            return Ok(None);
        };
        let mut bytes = clip.bytes;
        if request.format == AudioFormat::Wav {
            audio::fix_wav_sizes(&mut bytes);
        }
        let duration_s = audio::duration_secs(request.format, &bytes, provider.pcm_rate());
        let size = bytes.len();
        let (audio_url, key) = if save && size > 0 {
            let stored = self
                .storage
                .put(
                    task.action.tenant_id,
                    "tts",
                    request.format.name(),
                    request.format.content_type(),
                    Bytes::from(bytes),
                )
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "speech not stored");
                    failed(
                        "storage_unavailable",
                        "the audio was spoken but could not be stored",
                    )
                })?;
            (Some(stored.url), Some(stored.key))
        } else {
            (None, None)
        };
        Ok(Some(TtsCompleted {
            audio_url,
            key,
            format: request.format.name().into(),
            duration_s,
            characters: characters.get(),
            bytes: size,
            chunks: clip.chunks,
            provider: provider.name().into(),
            model: request.model.clone(),
            voice: request.voice.clone(),
        }))
    }

    /// The audio of a whole text: in pieces the provider takes, one after another.
    fn whole(
        &self,
        provider: &Arc<dyn SpeechProvider>,
        request: &SpeechRequest,
        text: &str,
    ) -> Result<AudioStream, Failed> {
        let pieces = audio::pieces(text, provider.max_chars());
        if pieces.is_empty() {
            return Err(failed("empty_text", "there is no text to speak"));
        }
        if pieces.len() > 1 && !request.format.joinable() {
            return Err(failed(
                "text_too_long",
                format!(
                    "{} takes at most {} characters in {}; ask for mp3, wav or pcm to have a longer text spoken in pieces",
                    provider.name(),
                    provider.max_chars(),
                    request.format
                ),
            ));
        }
        // Several WAV pieces are asked as PCM and given one header, fixed once the length is known.
        let wav_in_pieces = pieces.len() > 1 && request.format == AudioFormat::Wav;
        let mut asked = request.clone();
        if wav_in_pieces {
            asked.format = AudioFormat::Pcm;
        }
        let rate = provider.pcm_rate();
        let provider = Arc::clone(provider);
        let parts = futures::stream::iter(pieces)
            .then(move |piece| {
                let provider = provider.clone();
                let asked = asked.clone();
                async move { provider.speak(&asked, &piece).await }
            })
            .map(|started| match started {
                Ok(audio) => audio,
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .flatten();
        let head = wav_in_pieces.then(|| Bytes::copy_from_slice(&audio::wav_header(rate, None)));
        Ok(futures::stream::iter(head.map(Ok)).chain(parts).boxed())
    }

    /// Sends the audio as `audio_chunk` events while keeping the clip; `None` on cancel.
    async fn relay(
        &self,
        task: &Task,
        format: AudioFormat,
        mut audio: AudioStream,
    ) -> Result<Option<Clip>, Failed> {
        let events = &task.events;
        let mut clip = Clip::default();
        loop {
            let next = tokio::select! {
                () = task.cancel.cancelled() => return Ok(None),
                next = tokio::time::timeout(self.provider_idle, audio.next()) => next,
            };
            let chunk = match next {
                Err(_) => {
                    return Err(failed(
                        "upstream_timeout",
                        format!(
                            "the provider sent nothing for {} s",
                            self.provider_idle.as_secs()
                        ),
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(Some(Ok(chunk))) => chunk,
            };
            if clip.bytes.len() + chunk.len() > self.max_audio_bytes {
                return Err(failed(
                    "audio_too_long",
                    format!("the audio is longer than {} bytes", self.max_audio_bytes),
                ));
            }
            for piece in chunk.chunks(self.chunk_bytes) {
                send_chunk(events, format, piece, clip.chunks).await?;
                clip.chunks += 1;
            }
            clip.bytes.extend_from_slice(&chunk);
        }
        if clip.bytes.is_empty() {
            return Err(failed("no_audio", "the provider sent no audio"));
        }
        Ok(Some(clip))
    }
}

async fn send_chunk(
    events: &TaskEvents,
    format: AudioFormat,
    piece: &[u8],
    sequence: u64,
) -> Result<(), Failed> {
    events
        .audio_chunk(format.name(), &STANDARD.encode(piece), sequence)
        .await
        .map(|_| ())
        .map_err(|e| failed("bus_unavailable", e.to_string()))
}

/// The audio kept while it is relayed.
#[derive(Default)]
struct Clip {
    bytes: Vec<u8>,
    chunks: u64,
}

/// Characters spoken: known from the start, or counted as a streamed text passes.
enum Characters {
    Known(usize),
    Counted(Arc<std::sync::atomic::AtomicUsize>),
}

impl Characters {
    fn get(&self) -> usize {
        match self {
            Self::Known(n) => *n,
            Self::Counted(n) => n.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// A text stream that counts the characters passing through it.
fn counting(text: TextStream) -> (TextStream, Arc<std::sync::atomic::AtomicUsize>) {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let text = text
        .inspect(move |piece| {
            counter.fetch_add(piece.chars().count(), std::sync::atomic::Ordering::Relaxed);
        })
        .boxed();
    (text, count)
}
