//! A tts-worker running in-process for the transcription tests: its own key prefix and storage
//! directory, providers pointed at a simulator with a test key.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use common::Bus;
use common::settings::Secret;
use common::testing::{fast_worker_settings, isolated_settings};
use tokio_util::sync::CancellationToken;
use tts_worker::Settings;
use tts_worker::config::ProviderAccess;
use uuid::Uuid;

/// What the simulator hears in every recording.
pub const SAID: &str = "The quick brown fox jumps over the lazy dog.";

/// A running tts-worker; dropped, it stops.
pub struct Worker {
    pub settings: Settings,
    pub bus: Bus,
    pub client: redis::Client,
    shutdown: CancellationToken,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a tts-worker whose providers (`(name, base url)`) are a simulator.
pub async fn start(providers: &[(&str, String)]) -> Worker {
    let mut settings = Settings {
        core: isolated_settings(),
        worker: fast_worker_settings(),
        ..Settings::default()
    };
    settings.storage.dir = std::env::temp_dir()
        .join(format!("stt-test-{}", Uuid::now_v7().simple()))
        .to_string_lossy()
        .into_owned();
    for (name, url) in providers {
        settings.providers.insert(
            (*name).into(),
            ProviderAccess {
                api_key: Secret::new("test-key"),
                base_url: Some(url.clone()),
            },
        );
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(tts_worker::run(settings.clone(), shutdown.clone()));
    Worker {
        bus: Bus::connect(&settings.core).await.unwrap(),
        client: redis::Client::open(settings.core.redis_url.expose()).unwrap(),
        settings,
        shutdown,
    }
}
