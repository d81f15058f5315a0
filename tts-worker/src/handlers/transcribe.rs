//! `stt.transcription.file`: a stored file (or audio carried in the action) transcribed by the
//! chosen provider: one final `transcription` event, then `text_completed` with the text.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::json;

use common::audio::sniff_format;
use common::events::{ErrorData, EventType, TextCompleted};
use common::payloads::stt::{FORMATS, TranscribePayload};
use common::provider::ProviderError;
use common::storage::{Storage, StorageError};
use common::worker::{Action, HandlerError, Task};

use crate::stt::live::LiveTranscriber;
use crate::stt::live::utterances::Utterances;
use crate::stt::providers::{Audio, Options, Transcriber};

/// The largest recording transcribed, bytes (OpenAI's own limit).
pub const MAX_AUDIO_BYTES: usize = 25 * 1024 * 1024;

/// The transcription providers this process may use.
pub struct Transcribers {
    by_name: Vec<Arc<dyn Transcriber>>,
    /// Providers with a live protocol of their own; the others are driven per utterance.
    live: Vec<Arc<dyn LiveTranscriber>>,
    default: Option<&'static str>,
    /// Known providers that are not here for another reason than a missing key.
    missing: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Transcribers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcribers")
            .field("configured", &self.configured())
            .finish()
    }
}

/// Every provider name a request may use.
pub const KNOWN: [&str; 4] = ["local", "openai", "deepgram", "gemini"];

impl Transcribers {
    /// The given providers; the default is the first of them.
    pub fn new(by_name: Vec<Arc<dyn Transcriber>>) -> Self {
        let default = by_name.first().map(|t| t.name());
        Self {
            by_name,
            live: Vec::new(),
            default,
            missing: Vec::new(),
        }
    }

    /// With providers that transcribe live audio natively (Deepgram's WebSocket).
    pub fn with_live(mut self, live: Vec<Arc<dyn LiveTranscriber>>) -> Self {
        self.live = live;
        self
    }

    /// The live transcription of `name` (the default when absent): the provider's own live
    /// protocol, or its recordings API per utterance.
    pub fn pick_live(&self, name: Option<&str>) -> Result<Arc<dyn LiveTranscriber>, ErrorData> {
        let recordings = self.pick(name)?;
        if let Some(native) = self.live.iter().find(|l| l.name() == recordings.name()) {
            return Ok(Arc::clone(native));
        }
        Ok(Arc::new(Utterances::new(recordings)))
    }

    /// The same with another default: `name` answers requests that name no provider (when it
    /// is not configured, they are refused as if they had named it).
    pub fn with_default(mut self, name: &'static str) -> Self {
        self.default = Some(name);
        self
    }

    /// The same, telling requests for `name` why it is not here (`why` is shown to clients).
    pub fn with_missing(mut self, name: &'static str, why: impl Into<String>) -> Self {
        self.missing.push((name, why.into()));
        self
    }

    /// Their names.
    pub fn configured(&self) -> Vec<&'static str> {
        self.by_name.iter().map(|t| t.name()).collect()
    }

    /// The provider `name` (the default when absent).
    pub fn pick(&self, name: Option<&str>) -> Result<Arc<dyn Transcriber>, ErrorData> {
        let name = match name.map(str::to_ascii_lowercase) {
            Some(n) => n,
            None => self
                .default
                .ok_or_else(|| {
                    stt_error(
                        "provider_not_configured",
                        "no transcription provider is configured here",
                    )
                })?
                .to_owned(),
        };
        if let Some(t) = self.by_name.iter().find(|t| t.name() == name) {
            return Ok(Arc::clone(t));
        }
        let missing = self.missing.iter().find(|(n, _)| *n == name);
        Err(if let Some((_, why)) = missing {
            stt_error(
                "provider_not_configured",
                format!("the transcription provider {name} is not configured: {why}"),
            )
        } else if KNOWN.contains(&name.as_str()) {
            stt_error(
                "provider_not_configured",
                format!("the transcription provider {name} is not configured (no API key)"),
            )
        } else {
            stt_error(
                "unknown_provider",
                format!(
                    "unknown transcription provider {name:?} (known: {})",
                    KNOWN.join(", ")
                ),
            )
        })
    }
}

/// A provider's failure as an `error` of stage `stt`.
pub fn provider_error(e: &ProviderError) -> ErrorData {
    let mut error = ErrorData::new("stt", e.code(), e.to_string(), e.retryable());
    error.retry_after_secs = e.retry_after().map(|d| d.as_secs().max(1));
    error
}

/// An `error` of stage `stt`.
pub fn stt_error(code: &str, message: impl Into<String>) -> ErrorData {
    ErrorData::new("stt", code, message, false)
}

/// `stt.transcription.file`.
pub struct TranscribeFile {
    transcribers: Arc<Transcribers>,
    storage: Storage,
}

impl TranscribeFile {
    /// Transcribes with `transcribers`, reading files from `storage`.
    pub fn new(transcribers: Arc<Transcribers>, storage: Storage) -> Self {
        Self {
            transcribers,
            storage,
        }
    }

    /// The recording the payload names, with its format.
    async fn audio(&self, task: &Task, p: &TranscribePayload) -> Result<Audio, ErrorData> {
        let (bytes, ext) =
            match (&p.key, &p.audio_base64) {
                (Some(key), _) => {
                    let object = self.storage.get(task.action.tenant_id, key).await.map_err(
                        |e| match e {
                            StorageError::NotFound => stt_error("not_found", "no such file"),
                            e => {
                                tracing::warn!(error = %e, "recording not read");
                                ErrorData::new(
                                    "stt",
                                    "storage_unavailable",
                                    "the file could not be read",
                                    true,
                                )
                            }
                        },
                    )?;
                    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
                    (object.bytes, ext)
                }
                (None, Some(b64)) => {
                    let bytes = STANDARD
                        .decode(b64)
                        .map_err(|_| stt_error("invalid_audio", "audio_base64 is not base64"))?;
                    (Bytes::from(bytes), None)
                }
                (None, None) => return Err(stt_error("invalid_audio", "no audio")),
            };
        if bytes.len() > MAX_AUDIO_BYTES {
            return Err(stt_error(
                "file_too_large",
                format!("the recording is larger than {MAX_AUDIO_BYTES} bytes"),
            ));
        }
        let format = p
            .format
            .clone()
            .or(ext.filter(|e| FORMATS.contains(&e.as_str())))
            .or_else(|| sniff_format(&bytes).map(str::to_owned))
            .ok_or_else(|| {
                stt_error(
                    "unsupported_format",
                    "the audio's format is unknown: name it in format",
                )
            })?;
        Ok(Audio {
            bytes,
            format,
            sample_rate: p.sample_rate,
        })
    }
}

#[async_trait]
impl Action<TranscribePayload> for TranscribeFile {
    async fn run(&self, task: Task, payload: TranscribePayload) -> Result<(), HandlerError> {
        let events = &task.events;
        let outcome = async {
            let transcriber = self.transcribers.pick(payload.provider.as_deref())?;
            let audio = self.audio(&task, &payload).await?;
            let options = Options {
                model: payload.model.clone(),
                language: payload.language.clone(),
                prompt: payload.prompt.clone(),
            };
            let model = options
                .model
                .clone()
                .unwrap_or_else(|| transcriber.default_model().to_owned());
            tokio::select! {
                () = task.cancel.cancelled() => Ok(None),
                r = transcriber.transcribe(&audio, &options) => r
                    .map(|t| Some((t, transcriber.name(), model)))
                    .map_err(|e| provider_error(&e)),
            }
        }
        .await;
        match outcome {
            Ok(Some((transcript, provider, model))) => {
                let data = json!({
                    "text": transcript.text,
                    "is_final": true,
                    "language": transcript.language,
                    "duration_s": transcript.duration_secs,
                    "segments": transcript.segments,
                    "provider": provider,
                    "model": model,
                });
                events.send(EventType::Transcription, data.clone()).await?;
                let mut done = TextCompleted::new(transcript.text, json!(null), "stop");
                done.data = Some(data);
                events.text_completed(&done).await?;
            }
            // Cancelled: the runtime sends `cancelled` and what is owed.
            Ok(None) => {}
            Err(error) => {
                tracing::info!(code = %error.code, "transcription failed");
                events.error(&error).await?;
            }
        }
        Ok(())
    }
}
