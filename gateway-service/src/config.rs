//! The gateway's settings.

use common::http::HttpSettings;
use common::settings::{CoreSettings, optional_string};
use common::storage::StorageSettings;
use serde::Deserialize;

/// Everything the gateway reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Bus, auth and telemetry.
    #[serde(flatten)]
    pub core: CoreSettings,
    /// Listen address (`GATEWAY_ADDR`).
    pub gateway_addr: String,
    /// WebSocket behaviour.
    pub ws: WsSettings,
    /// How long `POST /chat` waits for the answer, seconds.
    pub chat_timeout_secs: u64,
    /// Response-stream fan-in.
    pub hub: HubSettings,
    /// Largest REST request body, bytes.
    pub max_body_bytes: usize,
    /// `MODELS_FILE`: the model registry; the compiled-in `config/models.toml` when absent.
    #[serde(deserialize_with = "optional_string")]
    pub models_file: Option<String>,
    /// Lifetime of the tokens `POST /auth/login` issues, seconds (`AUTH_TOKEN_TTL_SECS`).
    pub auth_token_ttl_secs: u64,
    /// Per-tenant request limits (`RATE_LIMIT__REQUESTS_PER_MINUTE`, `RATE_LIMIT__BURST`).
    pub rate_limit: RateLimitSettings,
    /// Login and registration limits, password hashing (`AUTH__…`).
    pub auth: AuthSettings,
    /// Socket-level timeouts (`HTTP__…`).
    pub http: HttpSettings,
    /// File storage and the upload route's limits (`STORAGE__…`).
    pub storage: StorageSettings,
    /// The batch API: retention and upload limits (`BATCH__…`).
    pub batch: BatchSettings,
}

/// The batch API's limits and retention (`BATCH__…`; see `docs/batch.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BatchSettings {
    /// Days a batch job and its input file are kept (`BATCH__RETENTION_DAYS`); the same
    /// setting as the batch-worker's, which writes the output files and sweeps.
    pub retention_days: u32,
    /// Largest batch input file, bytes (`BATCH__MAX_FILE_BYTES`); at most OpenAI's 200 MiB,
    /// which a larger value is cut to.
    pub max_file_bytes: u64,
    /// Largest `POST /api/v1/batch` body, bytes (`BATCH__MAX_BODY_BYTES`): it is read whole,
    /// unlike an uploaded file.
    pub max_body_bytes: usize,
    /// Where uploads and written input files are spooled before they are stored
    /// (`BATCH__SPOOL_DIR`); the system's temporary directory when unset.
    #[serde(deserialize_with = "optional_string")]
    pub spool_dir: Option<String>,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            retention_days: 29,
            max_file_bytes: common::batch::MAX_FILE_BYTES,
            max_body_bytes: 64 << 20,
            spool_dir: None,
        }
    }
}

impl BatchSettings {
    /// The largest input file accepted: the setting, at most OpenAI's limit.
    pub fn file_limit(&self) -> u64 {
        self.max_file_bytes.min(common::batch::MAX_FILE_BYTES)
    }

    /// How long jobs and input files are kept (at least a day).
    pub fn retention(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.retention_days.max(1)))
    }

    /// The spool directory.
    pub fn spool(&self) -> std::path::PathBuf {
        self.spool_dir
            .as_deref()
            .map_or_else(std::env::temp_dir, std::path::PathBuf::from)
    }
}

/// The unauthenticated endpoints' bounds: rates per client address and per account, and the
/// threads and queue of password hashing (each Argon2id hash takes 19 MiB and ~50 ms of a core).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// `/auth/login` and `/auth/register` requests per minute from one client address.
    pub per_address_per_minute: u32,
    /// Of which at once, after a quiet spell.
    pub address_burst: u32,
    /// Login attempts per minute on one account (by email), from anywhere.
    pub per_account_per_minute: u32,
    /// Of which at once.
    pub account_burst: u32,
    /// Take the client address from the last `X-Forwarded-For` entry (behind a proxy you run).
    pub trust_forwarded_for: bool,
    /// Threads that hash passwords; `0`: one per core.
    pub hash_threads: usize,
    /// Hashes waiting for a thread at most; more get 429 with `Retry-After`.
    pub hash_queue: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            per_address_per_minute: 60,
            address_burst: 20,
            per_account_per_minute: 10,
            account_burst: 5,
            trust_forwarded_for: false,
            hash_threads: 0,
            hash_queue: 32,
        }
    }
}

/// WebSocket limits and timers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WsSettings {
    /// Close a connection with no client message and no running task after this, seconds.
    pub idle_timeout_secs: u64,
    /// Largest accepted client frame/message, bytes.
    pub max_frame_bytes: usize,
    /// How long a task outlives its client's disconnect, waiting for a `resume`, seconds.
    pub resume_grace_secs: u64,
    /// Time a client has to send its `auth` message when no `?token=` was given, seconds.
    pub auth_timeout_secs: u64,
    /// Open WebSockets per tenant on one gateway replica; `0`: no limit.
    pub max_per_tenant: usize,
}

/// The response-stream readers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HubSettings {
    /// Reader shards (one Redis connection each).
    pub shards: usize,
    /// `XREAD BLOCK`, milliseconds.
    pub block_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            core: CoreSettings::default(),
            gateway_addr: "0.0.0.0:8000".into(),
            ws: WsSettings::default(),
            chat_timeout_secs: 120,
            hub: HubSettings::default(),
            max_body_bytes: 1 << 20,
            models_file: None,
            auth_token_ttl_secs: 24 * 3600,
            rate_limit: RateLimitSettings::default(),
            auth: AuthSettings::default(),
            http: HttpSettings::default(),
            storage: StorageSettings::default(),
            batch: BatchSettings::default(),
        }
    }
}

/// Per-tenant request limits, shared by every replica (see `rate_limit`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RateLimitSettings {
    /// Sustained requests per minute per tenant; `0` disables the limiter.
    pub requests_per_minute: u32,
    /// Requests a tenant may make at once after being idle (the bucket size; 0 counts as 1).
    pub burst: u32,
    /// Semantic searches (`POST /api/v1/semantic/search`) per minute per tenant, on top of the
    /// request limit; `0` disables it.
    pub search_per_minute: u32,
    /// Searches a tenant may make at once.
    pub search_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests_per_minute: 600,
            burst: 60,
            search_per_minute: 60,
            search_burst: 10,
        }
    }
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 300,
            max_frame_bytes: 256 * 1024,
            resume_grace_secs: 30,
            auth_timeout_secs: 10,
            max_per_tenant: 1000,
        }
    }
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            shards: 8,
            block_ms: 5000,
        }
    }
}

impl Settings {
    /// Loads settings (defaults → `config/gateway-service.toml` → env) and checks required ones.
    pub fn load() -> anyhow::Result<Self> {
        let s: Self = common::settings::load("gateway-service")?;
        s.core.check()?;
        Ok(s)
    }
}
