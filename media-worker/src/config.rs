//! The media-worker's settings: the shared core, the worker runtime, storage, the providers'
//! keys and endpoints, and the media defaults and limits (`MEDIA__*`).

use std::collections::BTreeMap;

use common::settings::{CoreSettings, Secret, optional_string};
use common::storage::StorageSettings;
use common::worker::WorkerSettings;
use serde::Deserialize;

/// Credentials and endpoint of one provider.
#[derive(Debug, Clone)]
pub struct ProviderAccess {
    /// The API key (KlingAI: the access key).
    pub api_key: Secret,
    /// KlingAI's secret key, which signs its tokens.
    pub secret_key: Option<Secret>,
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

/// Everything the media-worker reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Bus, auth and telemetry.
    #[serde(flatten)]
    pub core: CoreSettings,
    /// Consumer-group behaviour (`WORKER__CONCURRENCY`, ...).
    pub worker: WorkerSettings,
    /// Where images and videos are stored (`STORAGE__*`).
    pub storage: StorageSettings,
    /// Defaults and limits (`MEDIA__*`).
    pub media: MediaSettings,
    /// Provider access by name (`openai`, `xai`, `bfl`, `stability`, `gemini`, `klingai`), read
    /// by [`Settings::load`].
    #[serde(skip)]
    pub providers: BTreeMap<String, ProviderAccess>,
}

/// Handlers at once by default: a video job holds one for its whole life while it mostly waits
/// for the provider, so a process polls this many jobs at once (`WORKER__CONCURRENCY`).
pub const DEFAULT_CONCURRENCY: usize = 1024;

impl Default for Settings {
    fn default() -> Self {
        Self {
            core: CoreSettings::default(),
            worker: WorkerSettings {
                concurrency: DEFAULT_CONCURRENCY,
                ..WorkerSettings::default()
            },
            storage: StorageSettings::default(),
            media: MediaSettings::default(),
            providers: BTreeMap::new(),
        }
    }
}

/// Media defaults and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MediaSettings {
    /// The image model of requests that name none; unset: the first whose provider is
    /// configured of `gpt-image-1.5`, `flux-2-pro`, `gemini-2.5-flash-image`, `core`,
    /// `grok-2-image`, else the offline `dummy`.
    #[serde(deserialize_with = "optional_string")]
    pub default_image_model: Option<String>,
    /// The video model of requests that name none; unset: the first configured of
    /// `veo-3.1-fast`, `sora-2`, `kling-v2-1`.
    #[serde(deserialize_with = "optional_string")]
    pub default_video_model: Option<String>,
    /// The most bytes of images answered inline (`save: false`) by one request; more is an
    /// `inline_too_large` error, as they would sit in a Redis stream.
    pub max_inline_bytes: usize,
    /// The largest image a provider may answer, bytes.
    pub max_image_bytes: usize,
    /// The largest image fetched from an `image_url`, bytes.
    pub max_input_image_bytes: usize,
    /// Whether an `image_url` may point at a loopback, private or link-local address (never in
    /// production: it would let users make the worker fetch internal services).
    pub allow_private_urls: bool,
    /// The largest video downloaded from a provider, bytes.
    pub max_video_bytes: usize,
    /// Time between polls of a video job when the provider does not say, milliseconds.
    pub poll_interval_ms: u64,
    /// The longest a video job may take before it fails with `job_timeout`, seconds.
    pub video_timeout_secs: u64,
    /// Time between polls of an image job (Flux), milliseconds.
    pub image_poll_interval_ms: u64,
    /// The longest one image request to a provider may take (submission, polls and download
    /// included), seconds.
    pub image_timeout_secs: u64,
    /// How long the record of a provider job (which lets a reclaimed action resume it) is kept,
    /// seconds.
    pub job_record_ttl_secs: u64,
    /// The offline placeholder's largest side, pixels.
    pub dummy_max_side: u32,
    /// The KlingAI model of the alias `kling` and of extensions that name none
    /// (`KLINGAI_DEFAULT_MODEL` too).
    pub kling_default_model: String,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            default_image_model: None,
            default_video_model: None,
            max_inline_bytes: 4 << 20,
            max_image_bytes: 32 << 20,
            max_input_image_bytes: 20 << 20,
            allow_private_urls: false,
            max_video_bytes: 512 << 20,
            poll_interval_ms: 5000,
            video_timeout_secs: 1800,
            image_poll_interval_ms: 500,
            image_timeout_secs: 300,
            job_record_ttl_secs: 7 * 24 * 3600,
            dummy_max_side: 2048,
            kling_default_model: "kling-v2-1".into(),
        }
    }
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The providers keyed by `<NAME>_API_KEY` (and `<NAME>_BASE_URL`).
const KEYED: [&str; 5] = ["openai", "xai", "bfl", "stability", "gemini"];

impl Settings {
    /// Loads settings (defaults → `config/media-worker.toml` → env) and checks them.
    pub fn load() -> anyhow::Result<Self> {
        let mut s: Self = common::settings::load("media-worker")?;
        s.core.check_without_auth()?;
        // Any other `WORKER__*` brings the runtime's own default (64) back with it.
        if env_value("WORKER__CONCURRENCY").is_none()
            && s.worker.concurrency == WorkerSettings::default().concurrency
        {
            s.worker.concurrency = DEFAULT_CONCURRENCY;
        }
        for provider in KEYED {
            let upper = provider.to_uppercase();
            if let Some(key) = env_value(&format!("{upper}_API_KEY")) {
                let access = ProviderAccess {
                    api_key: Secret::new(key),
                    secret_key: None,
                    base_url: env_value(&format!("{upper}_BASE_URL")),
                };
                s.providers.insert(provider.to_owned(), access);
            }
        }
        // KlingAI's names, as its own documentation spells them.
        match (
            env_value("KLINGAI_ACCESS_KEY"),
            env_value("KLINGAI_SECRET_KEY"),
        ) {
            (Some(access), Some(secret)) => {
                s.providers.insert(
                    "klingai".into(),
                    ProviderAccess {
                        api_key: Secret::new(access),
                        secret_key: Some(Secret::new(secret)),
                        base_url: env_value("KLINGAI_API_BASE_URL"),
                    },
                );
            }
            (None, None) => {}
            _ => anyhow::bail!("KlingAI needs both KLINGAI_ACCESS_KEY and KLINGAI_SECRET_KEY"),
        }
        if let Some(model) = env_value("KLINGAI_DEFAULT_MODEL") {
            s.media.kling_default_model = model;
        }
        Ok(s)
    }

    /// How to reach `provider`, when its key is set.
    pub fn access(&self, provider: &str) -> Option<&ProviderAccess> {
        self.providers.get(provider)
    }
}
