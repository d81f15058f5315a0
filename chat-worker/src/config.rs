//! The chat-worker's settings: the shared core, the worker runtime, and the text providers.

use common::settings::{CoreSettings, Secret, optional_secret, optional_string};
use common::worker::WorkerSettings;
use serde::Deserialize;

/// Everything the chat-worker reads at start-up.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Settings {
    /// Bus, auth and telemetry.
    #[serde(flatten)]
    pub core: CoreSettings,
    /// Consumer-group behaviour (`WORKER__CONCURRENCY`, ...).
    pub worker: WorkerSettings,
    /// `OPENAI_API_KEY`; without it (and without a base URL) the dummy provider answers.
    #[serde(deserialize_with = "optional_secret")]
    pub openai_api_key: Option<Secret>,
    /// `OPENAI_BASE_URL`; any OpenAI-compatible server.
    #[serde(deserialize_with = "optional_string")]
    pub openai_base_url: Option<String>,
    /// The model used when a request names none.
    #[serde(deserialize_with = "optional_string")]
    pub default_model: Option<String>,
    /// The offline provider's pacing.
    pub dummy: DummySettings,
    /// Longest silence from a provider mid-stream before the task fails, seconds.
    pub provider_idle_timeout_secs: u64,
}

/// Pacing of the offline `dummy` provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DummySettings {
    /// Tokens per answer.
    pub tokens: usize,
    /// Delay before the first token, milliseconds.
    pub first_token_delay_ms: u64,
    /// Delay between tokens, milliseconds.
    pub token_interval_ms: u64,
}

impl Default for DummySettings {
    fn default() -> Self {
        Self {
            tokens: 24,
            first_token_delay_ms: 0,
            token_interval_ms: 25,
        }
    }
}

impl Settings {
    /// Loads settings (defaults → `config/chat-worker.toml` → env) and checks required ones.
    pub fn load() -> anyhow::Result<Self> {
        let mut s: Self = common::settings::load("chat-worker")?;
        if s.provider_idle_timeout_secs == 0 {
            s.provider_idle_timeout_secs = 120;
        }
        s.core.check()?;
        Ok(s)
    }
}
