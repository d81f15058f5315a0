//! The health-data-service's settings: the shared core, the worker runtime, and the HTTP surface.

use common::http::HttpSettings;
use common::settings::CoreSettings;
use common::worker::WorkerSettings;
use serde::Deserialize;

/// Everything the health-data-service reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Bus, auth, telemetry and PostgreSQL.
    #[serde(flatten)]
    pub core: CoreSettings,
    /// Consumer-group behaviour of the `health.*` action worker (`WORKER__CONCURRENCY`, ...).
    pub worker: WorkerSettings,
    /// Listen address (`HEALTH_ADDR`).
    pub health_addr: String,
    /// Largest REST request body, bytes (`MAX_BODY_BYTES`); CSV imports included.
    pub max_body_bytes: usize,
    /// Largest Garmin export upload (all files of one import together), bytes
    /// (`MAX_IMPORT_BYTES`).
    pub max_import_bytes: usize,
    /// Socket-level timeouts (`HTTP__…`).
    pub http: HttpSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            core: CoreSettings::default(),
            worker: WorkerSettings::default(),
            health_addr: "0.0.0.0:8100".into(),
            max_body_bytes: 8 << 20,
            max_import_bytes: 512 << 20,
            http: HttpSettings::default(),
        }
    }
}

impl Settings {
    /// Loads settings (defaults → `config/health-data-service.toml` → env) and checks the
    /// required ones (this service verifies JWTs).
    pub fn load() -> anyhow::Result<Self> {
        let s: Self = common::settings::load("health-data-service")?;
        s.core.check()?;
        Ok(s)
    }
}
