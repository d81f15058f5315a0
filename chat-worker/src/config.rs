//! The chat-worker's settings: the shared core, the worker runtime, the model registry and how to
//! reach each provider.

use std::collections::BTreeMap;
use std::path::Path;

use common::models::ModelRegistry;
use common::settings::{CoreSettings, optional_string};
use common::storage::StorageSettings;
use common::worker::WorkerSettings;
use serde::Deserialize;

/// The provider settings' types, shared with every worker that calls text providers (kept here
/// so `chat_worker::config::{DummySettings, ProviderAccess}` still name them).
pub use common::llm::{DummySettings, ProviderAccess};

/// Everything the chat-worker reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Bus, auth and telemetry.
    #[serde(flatten)]
    pub core: CoreSettings,
    /// Consumer-group behaviour (`WORKER__CONCURRENCY`, ...).
    pub worker: WorkerSettings,
    /// `MODELS_FILE`: the model registry; the compiled-in `config/models.toml` when absent.
    #[serde(deserialize_with = "optional_string")]
    pub models_file: Option<String>,
    /// Provider access by provider name, read from each provider's key variable and
    /// `<PROVIDER>_BASE_URL` by [`Settings::load`].
    #[serde(skip)]
    pub providers: BTreeMap<String, ProviderAccess>,
    /// The offline provider's pacing.
    pub dummy: DummySettings,
    /// Retries per model before its first token (429, 5xx, connection errors).
    pub provider_retries: u32,
    /// First retry delay, milliseconds (doubles; a provider's `Retry-After` wins).
    pub provider_retry_base_ms: u64,
    /// Longest wait honoured from a provider's `Retry-After`, seconds.
    pub provider_retry_after_cap_secs: u64,
    /// Longest silence from a provider mid-stream before the task fails, seconds.
    pub provider_idle_timeout_secs: u64,
    /// Earlier turns of a session loaded into the prompt, at most this many tokens (estimated).
    pub history_token_budget: usize,
    /// Earlier messages read at most, whatever their size.
    pub history_max_messages: i64,
    /// A chat with speech: longest wait for a tts-worker to take the speech half, seconds.
    pub tts_start_timeout_secs: u64,
    /// A chat with speech: longest silence of the speech half once it began, seconds (above the
    /// tts-workers' `WORKER__MIN_IDLE_MS`, so a reclaim after a crash fits in).
    pub tts_idle_timeout_secs: u64,
    /// A voice turn: longest wait for an stt worker to take its transcription, seconds.
    pub stt_start_timeout_secs: u64,
    /// A voice turn: longest silence of its transcription once it began, seconds (above the
    /// longest transcription of a recording and the stt workers' `WORKER__MIN_IDLE_MS`).
    pub stt_idle_timeout_secs: u64,
    /// A voice turn with direct live audio: longest wait for the next frame, seconds.
    pub live_audio_idle_timeout_secs: u64,
    /// Publish every stored turn to the semantic-worker for indexing.
    pub semantic_indexing_enabled: bool,
    /// A chat with `settings.semantic`: the most estimated tokens of found context in the prompt.
    pub semantic_search_context_max_tokens: usize,
    /// A chat with `settings.semantic`: longest wait for the search, seconds; then the chat
    /// answers without context.
    pub semantic_search_timeout_secs: u64,
    /// After three failed searches in a row, how long chats skip the search, seconds.
    pub semantic_breaker_cool_down_secs: u64,
    /// Where stored recordings are read for direct audio (`STORAGE__*`, as the gateway and the
    /// tts-worker have them).
    pub storage: StorageSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            core: CoreSettings::default(),
            worker: WorkerSettings::default(),
            models_file: None,
            providers: BTreeMap::new(),
            dummy: DummySettings::default(),
            provider_retries: 2,
            provider_retry_base_ms: 250,
            provider_retry_after_cap_secs: 20,
            provider_idle_timeout_secs: 120,
            history_token_budget: 4000,
            history_max_messages: 50,
            tts_start_timeout_secs: 15,
            tts_idle_timeout_secs: 60,
            stt_start_timeout_secs: 15,
            stt_idle_timeout_secs: 120,
            live_audio_idle_timeout_secs: 30,
            semantic_indexing_enabled: true,
            semantic_search_context_max_tokens: 1500,
            semantic_search_timeout_secs: 5,
            semantic_breaker_cool_down_secs: 30,
            storage: StorageSettings::default(),
        }
    }
}

impl Settings {
    /// Loads settings (defaults → `config/chat-worker.toml` → env), reads each registered
    /// provider's key and base URL from the environment, and checks required settings.
    pub fn load() -> anyhow::Result<Self> {
        let mut s: Self = common::settings::load("chat-worker")?;
        s.core.check_without_auth()?;
        s.providers = common::llm::provider_access_from_env(&s.registry()?);
        Ok(s)
    }

    /// The model registry these settings select.
    pub fn registry(&self) -> anyhow::Result<ModelRegistry> {
        Ok(ModelRegistry::load(
            self.models_file.as_deref().map(Path::new),
        )?)
    }
}
