//! Settings shared by every service: defaults, then an optional TOML file, then env vars (DESIGN §7).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::names::Names;

/// The project's name: the default stream prefix and database name.
pub const PROJECT: &str = "aibackend";

/// A secret value: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Env values may arrive typed (a numeric secret parses as a number); keep the text.
        let value = serde_json::Value::deserialize(d)?;
        Ok(match value {
            serde_json::Value::String(s) => Secret(s),
            other => Secret(other.to_string()),
        })
    }
}

/// Reads an optional secret; an empty value (e.g. `OPENAI_API_KEY=` from a compose file) is absent.
pub fn optional_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<Secret>::deserialize(d)?.filter(|s| !s.0.trim().is_empty()))
}

/// Reads an optional string; an empty value is absent.
pub fn optional_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match value {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(serde_json::Value::String(_)) | Some(serde_json::Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    })
}

/// The dev-only HS256 secret used when `APP_ENV=dev` and no `JWT_SECRET` is set.
pub const DEV_JWT_SECRET: &str = "dev-only-secret-change-me-outside-dev";

/// Settings every service shares: the bus, auth, telemetry.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CoreSettings {
    /// The Redis URL of the bus (`REDIS_URL`); a secret: it may carry a password.
    pub redis_url: Secret,
    /// A Redis Cluster instead (`REDIS_CLUSTER_URLS`): some of its nodes' URLs, separated by
    /// commas (the first one's credentials and TLS apply to every node). `REDIS_URL` is then
    /// unused.
    #[serde(deserialize_with = "optional_secret")]
    pub redis_cluster_urls: Option<Secret>,
    /// First part of every key.
    pub stream_prefix: String,
    /// Second part of every key; `dev` enables dev-only defaults.
    pub app_env: String,
    /// HS256 secret; required outside `dev`.
    #[serde(deserialize_with = "optional_secret")]
    pub jwt_secret: Option<Secret>,
    /// `HS256` (default) or `RS256`.
    pub jwt_algorithm: String,
    /// PEM public key for RS256 verification.
    #[serde(deserialize_with = "optional_string")]
    pub jwt_public_key_pem: Option<String>,
    /// PEM private key for RS256 signing (only a service that mints tokens needs it).
    #[serde(deserialize_with = "optional_secret")]
    pub jwt_private_key_pem: Option<Secret>,
    /// OTLP/HTTP endpoint for traces; off when unset.
    #[serde(deserialize_with = "optional_string")]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// `text` (default) or `json` log lines.
    pub log_format: String,
    /// Stream sizes and lifetimes.
    pub bus: BusSettings,
    /// `DATABASE_URL`: PostgreSQL (chat history, accounts).
    pub database_url: Secret,
    /// Pool and migrations.
    pub db: DbSettings,
}

/// PostgreSQL pool and schema handling.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DbSettings {
    /// Connections per process.
    pub max_connections: u32,
    /// Longest wait for a pooled connection, seconds.
    pub acquire_timeout_secs: u64,
    /// Create the database if missing and apply migrations at start-up; when false, a service
    /// only checks that every migration is applied and refuses to start otherwise.
    pub migrate: bool,
}

impl Default for DbSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout_secs: 5,
            migrate: true,
        }
    }
}

impl Default for CoreSettings {
    fn default() -> Self {
        Self {
            redis_url: Secret::new("redis://127.0.0.1:6379"),
            redis_cluster_urls: None,
            stream_prefix: PROJECT.into(),
            app_env: "dev".into(),
            jwt_secret: None,
            jwt_algorithm: "HS256".into(),
            jwt_public_key_pem: None,
            jwt_private_key_pem: None,
            otel_exporter_otlp_endpoint: None,
            log_format: "text".into(),
            bus: BusSettings::default(),
            database_url: Secret::new(format!("postgres://postgres@127.0.0.1:5432/{PROJECT}")),
            db: DbSettings::default(),
        }
    }
}

impl CoreSettings {
    /// The cluster nodes configured (`REDIS_CLUSTER_URLS`), or none for a single Redis.
    pub fn cluster_urls(&self) -> Vec<String> {
        self.redis_cluster_urls
            .as_ref()
            .map(|s| {
                s.expose()
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The key namespace these settings select.
    pub fn names(&self) -> Names {
        Names::new(&self.stream_prefix, &self.app_env)
    }

    /// Whether dev-only defaults apply.
    pub fn is_dev(&self) -> bool {
        self.app_env == "dev"
    }

    /// Like [`CoreSettings::check`], for a service that verifies no tokens (a worker): no JWT key
    /// is required.
    pub fn check_without_auth(&self) -> Result<(), SettingsError> {
        if self.stream_prefix.is_empty() || self.app_env.is_empty() {
            return Err(SettingsError::Missing("STREAM_PREFIX/APP_ENV".into()));
        }
        Ok(())
    }

    /// Fails with the name of each required setting that is missing.
    pub fn check(&self) -> Result<(), SettingsError> {
        let mut missing = Vec::new();
        match self.jwt_algorithm.as_str() {
            "HS256" => {
                if self.jwt_secret.is_none() && !self.is_dev() {
                    missing.push("JWT_SECRET");
                }
            }
            "RS256" => {
                if self.jwt_public_key_pem.is_none() {
                    missing.push("JWT_PUBLIC_KEY_PEM");
                }
            }
            other => {
                return Err(SettingsError::Invalid(format!(
                    "JWT_ALGORITHM must be HS256 or RS256, not {other:?}"
                )));
            }
        }
        if self.stream_prefix.is_empty() || self.app_env.is_empty() {
            missing.push("STREAM_PREFIX/APP_ENV");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Missing(missing.join(", ")))
        }
    }
}

/// Sizes and lifetimes of streams and keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BusSettings {
    /// `MAXLEN ~` of action streams.
    pub action_maxlen: usize,
    /// Streams per service's actions (`BUS__ACTION_PARTITIONS`, default 1): a session's actions
    /// go to partition `session mod N` (see `Names::action_partition`), each partition its own
    /// key and hash slot, and a worker reads them all. 1 is the single stream
    /// `{ns}:{service}:streams:main`, which is also partition 0 of any N. Every service must use
    /// the same N.
    pub action_partitions: usize,
    /// `MAXLEN ~` of response streams.
    pub response_maxlen: usize,
    /// `EXPIRE` of a response stream after its task completes, seconds.
    pub response_ttl_secs: u64,
    /// Lifetime of a processed-marker, seconds.
    pub processed_ttl_secs: u64,
    /// Lifetime of a cancel flag, seconds.
    pub cancel_ttl_secs: u64,
    /// How long a task's event write keeps retrying while Redis is unreachable (a restart, a
    /// failover) before the task fails, seconds.
    pub event_retry_secs: u64,
    /// Largest action a worker reads, bytes (its whole envelope); larger ones are dead-lettered
    /// unread. The gateway's own request limits keep the actions it publishes well below.
    pub max_action_bytes: usize,
}

impl BusSettings {
    /// How long a session's owner is remembered in Redis after its last use, seconds: a day
    /// longer than its response stream lives.
    pub fn session_owner_ttl_secs(&self) -> u64 {
        self.response_ttl_secs + 86_400
    }
}

impl Default for BusSettings {
    fn default() -> Self {
        Self {
            action_maxlen: 100_000,
            action_partitions: 1,
            response_maxlen: 10_000,
            response_ttl_secs: 3600,
            processed_ttl_secs: 86_400,
            cancel_ttl_secs: 3600,
            event_retry_secs: 15,
            max_action_bytes: 2 << 20,
        }
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Required settings are missing; the message names them.
    #[error("missing required setting(s): {0}")]
    Missing(String),
    /// A value has the wrong type or is out of range.
    #[error("invalid settings: {0}")]
    Invalid(String),
}

/// Loads a service's settings: serde defaults, then `config/{service}.toml` (or the file named by
/// `CONFIG_FILE`) when present, then environment variables (`REDIS_URL` → `redis_url`,
/// `WORKER__CONCURRENCY` → `worker.concurrency`).
pub fn load<T: DeserializeOwned>(service: &str) -> Result<T, SettingsError> {
    let file = std::env::var_os("CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new("config").join(format!("{service}.toml")));
    load_from(Some(&file), true)
}

/// Loads settings from an optional file and, when `with_env`, the process environment.
pub fn load_from<T: DeserializeOwned>(
    file: Option<&Path>,
    with_env: bool,
) -> Result<T, SettingsError> {
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file).required(false));
    }
    if with_env {
        builder = builder.add_source(
            config::Environment::default()
                .separator("__")
                .try_parsing(true),
        );
    }
    builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| SettingsError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_file_layering() {
        let dir = std::env::temp_dir().join(format!("settings-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("svc.toml");
        std::fs::write(
            &file,
            "stream_prefix = \"x\"\n[bus]\nresponse_ttl_secs = 5\n",
        )
        .unwrap();
        let s: CoreSettings = load_from(Some(&file), false).unwrap();
        assert_eq!(s.stream_prefix, "x");
        assert_eq!(s.bus.response_ttl_secs, 5);
        assert_eq!(s.bus.action_maxlen, 100_000);
        assert_eq!(s.redis_url.expose(), "redis://127.0.0.1:6379");
        assert!(
            !format!("{s:?}").contains("redis://"),
            "the URL may carry a password"
        );
        s.check().unwrap();
    }

    #[test]
    fn empty_values_count_as_absent() {
        let dir = std::env::temp_dir().join(format!("settings-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("svc.toml");
        std::fs::write(
            &file,
            "jwt_secret = \"\"\notel_exporter_otlp_endpoint = \" \"\n",
        )
        .unwrap();
        let s: CoreSettings = load_from(Some(&file), false).unwrap();
        assert!(s.jwt_secret.is_none() && s.otel_exporter_otlp_endpoint.is_none());
    }

    #[test]
    fn jwt_secret_required_outside_dev_and_never_printed() {
        let s = CoreSettings {
            app_env: "prod".into(),
            ..CoreSettings::default()
        };
        let err = s.check().unwrap_err().to_string();
        assert!(err.contains("JWT_SECRET"), "{err}");
        let s = CoreSettings {
            jwt_secret: Some(Secret::new("hunter2")),
            ..s
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        s.check().unwrap();
    }
}
