//! Speech providers behind one trait, with what each can do (input streaming, formats, voices),
//! and the set this process may use.

mod elevenlabs;
mod espeak;
mod gemini;
mod openai;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use common::payloads::tts::SpeechOptions;
pub use common::provider::ProviderError;

pub use elevenlabs::ElevenLabs;
pub use espeak::Espeak;
pub use gemini::Gemini;
pub use openai::OpenAi;

use crate::audio::AudioFormat;
use crate::config::Settings;

/// What a provider is asked to speak with (defaults already applied).
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechRequest {
    /// The provider's model.
    pub model: String,
    /// The provider's voice.
    pub voice: String,
    /// The audio format of the answer.
    pub format: AudioFormat,
    /// Speaking rate (1 is normal).
    pub speed: Option<f64>,
    /// How to speak, in words, where the provider takes it.
    pub instructions: Option<String>,
    /// ElevenLabs' `chunk_length_schedule`.
    pub chunk_schedule: Option<Vec<u32>>,
}

/// Audio as it is produced; dropping it stops the provider (closes the connection, ends the
/// process).
pub type AudioStream = BoxStream<'static, Result<Bytes, ProviderError>>;

/// Text as the chat writes it, piece by piece; it ends with the text.
pub type TextStream = BoxStream<'static, String>;

/// A speech provider.
#[async_trait]
pub trait SpeechProvider: Send + Sync {
    /// Its name in requests and events (`openai`, `elevenlabs`, `gemini`, `espeak`).
    fn name(&self) -> &'static str;
    /// Whether it takes text while it is written ([`SpeechProvider::speak_stream`]); the others
    /// get the whole text once it is complete.
    fn input_streaming(&self) -> bool {
        false
    }
    /// The longest text one request may carry, in characters; longer texts are spoken in pieces.
    fn max_chars(&self) -> usize;
    /// The sample rate of its `pcm` and `wav` output.
    fn pcm_rate(&self) -> u32;
    /// Its model, voice and format when the request names none.
    fn defaults(&self) -> (&str, &str, AudioFormat);
    /// Refuses a request it cannot serve (unknown voice, model or format), with a sentence.
    fn check(&self, request: &SpeechRequest) -> Result<(), String>;
    /// Speaks a whole text.
    async fn speak(
        &self,
        request: &SpeechRequest,
        text: &str,
    ) -> Result<AudioStream, ProviderError>;
    /// Speaks text while it arrives (only when [`SpeechProvider::input_streaming`]).
    async fn speak_stream(
        &self,
        _request: &SpeechRequest,
        _text: TextStream,
    ) -> Result<AudioStream, ProviderError> {
        Err(ProviderError::Unsupported(format!(
            "{} does not take streamed text",
            self.name()
        )))
    }
}

/// Why a request names no usable provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No such provider.
    #[error("unknown speech provider {0:?} (known: espeak, openai, elevenlabs, gemini)")]
    Unknown(String),
    /// A provider named explicitly has no key here.
    #[error("the speech provider {0} is not configured (no API key)")]
    NotConfigured(String),
    /// The provider cannot serve the request.
    #[error("{0}")]
    Unsupported(String),
}

impl PlanError {
    /// The `error` event's code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unknown(_) => "unknown_provider",
            Self::NotConfigured(_) => "provider_not_configured",
            Self::Unsupported(_) => "unsupported_option",
        }
    }
}

/// The providers this process may use, and which one answers when a request names none.
pub struct Providers {
    by_name: BTreeMap<&'static str, Arc<dyn SpeechProvider>>,
    default: &'static str,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("configured", &self.configured())
            .field("default", &self.default)
            .finish()
    }
}

/// Every provider name a request may use.
pub const KNOWN: [&str; 4] = ["espeak", "openai", "elevenlabs", "gemini"];

impl Providers {
    /// The providers whose keys are set, and the offline espeak-ng always.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let t = &settings.tts;
        let mut by_name: BTreeMap<&'static str, Arc<dyn SpeechProvider>> = BTreeMap::new();
        by_name.insert("espeak", Arc::new(Espeak::new(t)));
        if let Some(access) = settings.access("openai") {
            by_name.insert("openai", Arc::new(OpenAi::new(access, t)?));
        }
        if let Some(access) = settings.access("elevenlabs") {
            by_name.insert("elevenlabs", Arc::new(ElevenLabs::new(access, t)?));
        }
        if let Some(access) = settings.access("gemini") {
            by_name.insert("gemini", Arc::new(Gemini::new(access, t)?));
        }
        let default = match t.default_provider.as_deref() {
            Some(name) => {
                let Some((&name, _)) = by_name.get_key_value(name) else {
                    anyhow::bail!(
                        "TTS__DEFAULT_PROVIDER is {name:?}, which is unknown or has no key here"
                    );
                };
                name
            }
            None => ["elevenlabs", "openai", "gemini"]
                .into_iter()
                .find(|n| by_name.contains_key(n))
                .unwrap_or("espeak"),
        };
        Ok(Self { by_name, default })
    }

    /// The names of the providers available here.
    pub fn configured(&self) -> Vec<&'static str> {
        self.by_name.keys().copied().collect()
    }

    /// The provider that answers requests naming none.
    pub fn default_name(&self) -> &'static str {
        self.default
    }

    /// The provider and the full request for `options`.
    pub fn plan(
        &self,
        options: &SpeechOptions,
    ) -> Result<(Arc<dyn SpeechProvider>, SpeechRequest), PlanError> {
        let name = options
            .provider
            .as_deref()
            .map(|p| p.trim().to_ascii_lowercase())
            .unwrap_or_else(|| self.default.to_owned());
        let provider = match self.by_name.get(name.as_str()) {
            Some(p) => Arc::clone(p),
            None if KNOWN.contains(&name.as_str()) => return Err(PlanError::NotConfigured(name)),
            None => return Err(PlanError::Unknown(name)),
        };
        let (model, voice, format) = provider.defaults();
        let format = match options.format.as_deref() {
            Some(f) => AudioFormat::parse(f)
                .ok_or_else(|| PlanError::Unsupported(format!("unknown audio format {f:?}")))?,
            None => format,
        };
        let request = SpeechRequest {
            model: options.model.clone().unwrap_or_else(|| model.to_owned()),
            voice: options.voice.clone().unwrap_or_else(|| voice.to_owned()),
            format,
            speed: options.speed,
            instructions: options.instructions.clone(),
            chunk_schedule: options.chunk_schedule.clone(),
        };
        provider.check(&request).map_err(PlanError::Unsupported)?;
        Ok((provider, request))
    }
}

/// A request's body from a provider's HTTP answer, as audio chunks.
pub(crate) fn body_stream(response: reqwest::Response) -> AudioStream {
    response
        .bytes_stream()
        .map(|chunk| {
            chunk.map_err(|e| ProviderError::Connection(format!("audio stream broke off: {e}")))
        })
        .boxed()
}

/// Refuses a value that is not one of `known`, naming what it is.
pub(crate) fn one_of(what: &str, value: &str, known: &[&str]) -> Result<(), String> {
    if known.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "unknown {what} {value:?} (known: {})",
            known.join(", ")
        ))
    }
}

/// A stream fed by a task that sends into a small channel; the task ends when the stream is
/// dropped (its next send fails).
pub(crate) fn async_stream<F, Fut>(body: F) -> AudioStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, ProviderError>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let task = tokio::spawn(body(tx));
    let guard = AbortOnDrop(task);
    futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|item| (item, (rx, guard)))
    })
    .boxed()
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a refused WebSocket upgrade to `provider` means, as the HTTP statuses do elsewhere.
pub fn upgrade_error(provider: &str, e: tokio_tungstenite::tungstenite::Error) -> ProviderError {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(response) => {
            let status = response.status().as_u16();
            match status {
                429 => ProviderError::RateLimited { retry_after: None },
                401 | 403 | 404 => {
                    tracing::error!(
                        provider,
                        status,
                        "the provider refused the deployment: check its API key and model"
                    );
                    ProviderError::Misconfigured { status }
                }
                s if s >= 500 => ProviderError::Upstream { status },
                _ => ProviderError::Refused {
                    status,
                    message: "the provider refused the stream".into(),
                },
            }
        }
        e => ProviderError::Connection(format!("cannot open the stream: {e}")),
    }
}
