//! The gateway's settings.

use common::settings::{CoreSettings, optional_string};
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
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests_per_minute: 600,
            burst: 60,
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
