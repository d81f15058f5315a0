//! The batch-worker's settings: the shared core, the worker runtime, storage, the model registry
//! and provider access (as the chat-worker reads them), and how jobs run (`BATCH__*`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::llm::{DummySettings, ProviderAccess};
use common::models::ModelRegistry;
use common::settings::{CoreSettings, optional_string};
use common::storage::StorageSettings;
use common::worker::WorkerSettings;
use serde::Deserialize;

/// Everything the batch-worker reads at start-up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Bus, database, auth and telemetry.
    #[serde(flatten)]
    pub core: CoreSettings,
    /// Consumer-group behaviour (`WORKER__CONCURRENCY` = jobs run at once by this process).
    pub worker: WorkerSettings,
    /// Where input and output files are (`STORAGE__*`, as the gateway has them).
    pub storage: StorageSettings,
    /// `MODELS_FILE`: the model registry; the compiled-in `config/models.toml` when absent.
    #[serde(deserialize_with = "optional_string")]
    pub models_file: Option<String>,
    /// Provider access by provider name (each provider's key variable and `<PROVIDER>_BASE_URL`).
    #[serde(skip)]
    pub providers: BTreeMap<String, ProviderAccess>,
    /// The offline provider's pacing (`DUMMY__*`).
    pub dummy: DummySettings,
    /// How jobs run.
    pub batch: BatchSettings,
}

/// How jobs run (`BATCH__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BatchSettings {
    /// A running job's lease, seconds: renewed at a third of it; a crashed worker's job is free
    /// for another after it lapses.
    pub lease_secs: u64,
    /// How often a provider's batch is polled, milliseconds.
    pub poll_interval_ms: u64,
    /// Lines of one sequential job running at once.
    pub concurrency: usize,
    /// Tries of one line after a retryable failure (429, 5xx, a dropped connection).
    pub line_retries: u32,
    /// First wait before a line is tried again, milliseconds (doubles; a `Retry-After` wins).
    pub retry_base_ms: u64,
    /// Longest wait honoured from a provider's `Retry-After`, seconds.
    pub retry_after_cap_secs: u64,
    /// Longest one line may take, seconds.
    pub line_timeout_secs: u64,
    /// Days a job and its files are kept (the input file from its upload).
    pub retention_days: u32,
    /// How often the sweeper runs, seconds.
    pub sweep_interval_secs: u64,
    /// A job still open this long after its window ended, with no worker on it, is ended
    /// `expired` by the sweeper, seconds.
    pub abandoned_grace_secs: u64,
    /// At most one `progress` event per this many milliseconds.
    pub progress_interval_ms: u64,
    /// Finished lines are journaled together within this window, milliseconds.
    pub journal_flush_ms: u64,
    /// After cancelling a provider's batch, longest wait for it to stop, seconds; then its
    /// finished lines are collected as they are.
    pub provider_cancel_wait_secs: u64,
    /// Largest request body sent inline to Gemini's batch API, bytes (its limit: 20 MB); a
    /// larger Gemini batch runs line by line.
    pub gemini_inline_max_bytes: usize,
    /// Where files are spooled while written or converted; the system's temporary directory
    /// when unset.
    #[serde(deserialize_with = "optional_string")]
    pub spool_dir: Option<String>,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            lease_secs: 30,
            poll_interval_ms: 30_000,
            concurrency: 8,
            line_retries: 4,
            retry_base_ms: 500,
            retry_after_cap_secs: 60,
            line_timeout_secs: 600,
            retention_days: 29,
            sweep_interval_secs: 600,
            abandoned_grace_secs: 3600,
            progress_interval_ms: 1000,
            journal_flush_ms: 20,
            provider_cancel_wait_secs: 600,
            gemini_inline_max_bytes: 20 * 1024 * 1024,
            spool_dir: None,
        }
    }
}

impl BatchSettings {
    /// The spool directory.
    pub fn spool(&self) -> PathBuf {
        self.spool_dir
            .as_deref()
            .map_or_else(std::env::temp_dir, PathBuf::from)
    }
}

impl Settings {
    /// Loads settings (defaults → `config/batch-worker.toml` → env), reads each registered
    /// provider's key and base URL from the environment, and checks required settings.
    pub fn load() -> anyhow::Result<Self> {
        let mut s: Self = common::settings::load("batch-worker")?;
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
