//! The tts-worker's settings: the shared core, the worker runtime, storage, the speech
//! providers' keys, endpoints and defaults, and the offline transcription model.

use std::collections::BTreeMap;

use common::settings::{CoreSettings, Secret, optional_string};
use common::storage::StorageSettings;
use common::worker::WorkerSettings;
use serde::Deserialize;

/// Credentials and endpoint of one provider.
#[derive(Debug, Clone)]
pub struct ProviderAccess {
    /// The API key.
    pub api_key: Secret,
    /// The endpoint, when not the provider's own.
    pub base_url: Option<String>,
}

impl ProviderAccess {
    /// The endpoint to call: `base_url`, else the provider's own `default`, without a trailing `/`.
    pub fn base_or(&self, default: &str) -> String {
        self.base_url
            .as_deref()
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned()
    }
}

/// Everything the tts-worker reads at start-up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Bus, auth and telemetry.
    #[serde(flatten)]
    pub core: CoreSettings,
    /// Consumer-group behaviour (`WORKER__CONCURRENCY`, ...).
    pub worker: WorkerSettings,
    /// Where clips are stored (`STORAGE__*`).
    pub storage: StorageSettings,
    /// Speech (`TTS__*`).
    pub tts: TtsSettings,
    /// Transcription (`STT__*`).
    pub stt: SttSettings,
    /// Provider access by name, read from `<PROVIDER>_API_KEY` and `<PROVIDER>_BASE_URL` by
    /// [`Settings::load`].
    #[serde(skip)]
    pub providers: BTreeMap<String, ProviderAccess>,
}

/// Speech defaults and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TtsSettings {
    /// The provider of requests that name none; the first configured of elevenlabs, openai,
    /// gemini when unset, else the offline espeak.
    #[serde(deserialize_with = "optional_string")]
    pub default_provider: Option<String>,
    /// The espeak-ng program.
    pub espeak_program: String,
    /// espeak-ng's voice by default.
    pub espeak_voice: String,
    /// OpenAI's model and voice by default.
    pub openai_model: String,
    /// OpenAI's voice by default.
    pub openai_voice: String,
    /// ElevenLabs' model by default.
    pub elevenlabs_model: String,
    /// ElevenLabs' voice id by default.
    pub elevenlabs_voice: String,
    /// Gemini's speech model by default.
    pub gemini_model: String,
    /// Gemini's voice by default.
    pub gemini_voice: String,
    /// Most audio bytes per `audio_chunk` event (before base64).
    pub chunk_bytes: usize,
    /// The longest clip kept, in bytes; a longer one fails with `audio_too_long`.
    pub max_audio_bytes: usize,
    /// Longest silence of a provider before the speech fails, seconds.
    pub provider_idle_timeout_secs: u64,
    /// Longest wait for the next piece of a chat's text, seconds.
    pub input_idle_timeout_secs: u64,
}

impl Default for TtsSettings {
    fn default() -> Self {
        Self {
            default_provider: None,
            espeak_program: "espeak-ng".into(),
            espeak_voice: "en-us".into(),
            openai_model: "gpt-4o-mini-tts".into(),
            openai_voice: "alloy".into(),
            elevenlabs_model: "eleven_flash_v2_5".into(),
            elevenlabs_voice: "21m00Tcm4TlvDq8ikWAM".into(),
            gemini_model: "gemini-2.5-flash-preview-tts".into(),
            gemini_voice: "Kore".into(),
            chunk_bytes: 32 * 1024,
            max_audio_bytes: 64 * 1024 * 1024,
            provider_idle_timeout_secs: 30,
            input_idle_timeout_secs: 120,
        }
    }
}

/// Transcription defaults and the offline model.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SttSettings {
    /// The provider of requests that name none; the first configured of deepgram, openai,
    /// gemini when unset, else `local`.
    #[serde(deserialize_with = "optional_string")]
    pub default_provider: Option<String>,
    /// The directory of the offline Whisper model (CTranslate2 format: `model.bin`,
    /// `config.json`, `vocabulary.txt`), as `scripts/lib.sh`'s `ensure_whisper_model` installs
    /// it. Without it the `local` provider is not offered.
    pub model_dir: String,
    /// CPU threads of one transcription by the offline model.
    pub threads: usize,
}

/// Where `scripts/dev` and `scripts/test` install the offline model:
/// `$HOME/.cache/aibackend/models/whisper-tiny.en`.
pub fn default_model_dir() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    format!("{home}/.cache/aibackend/models/whisper-tiny.en")
}

impl Default for SttSettings {
    fn default() -> Self {
        Self {
            default_provider: None,
            model_dir: default_model_dir(),
            threads: 2,
        }
    }
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// Loads settings (defaults → `config/tts-worker.toml` → env) and checks them.
    pub fn load() -> anyhow::Result<Self> {
        let mut s: Self = common::settings::load("tts-worker")?;
        s.core.check_without_auth()?;
        for provider in ["openai", "elevenlabs", "gemini", "deepgram"] {
            let upper = provider.to_uppercase();
            if let Some(key) = env_value(&format!("{upper}_API_KEY")) {
                let access = ProviderAccess {
                    api_key: Secret::new(key),
                    base_url: env_value(&format!("{upper}_BASE_URL")),
                };
                s.providers.insert(provider.to_owned(), access);
            }
        }
        Ok(s)
    }

    /// How to reach `provider`, when its key is set.
    pub fn access(&self, provider: &str) -> Option<&ProviderAccess> {
        self.providers.get(provider)
    }
}
