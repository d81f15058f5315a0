//! A media-worker running in-process against real Redis and a local storage directory, its
//! providers pointed at provider-sim.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use common::Bus;
use common::envelope::DomainAction;
use common::settings::Secret;
use common::storage::Storage;
use common::testing::{Received, WAIT, fast_worker_settings, isolated_settings, read_until};
use media_worker::Settings;
use media_worker::config::ProviderAccess;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// KlingAI's keys in the simulator's default configuration.
pub const KLING_ACCESS: &str = "sim-kling-access";
/// The secret that signs KlingAI's tokens.
pub const KLING_SECRET: &str = "sim-kling-secret";

/// A running media-worker; dropped, it stops.
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

/// Settings of a test: its own key prefix and storage directory, fast polls.
pub fn settings() -> Settings {
    let mut s = Settings {
        core: isolated_settings(),
        worker: fast_worker_settings(),
        ..Settings::default()
    };
    s.storage.dir = std::env::temp_dir()
        .join(format!("media-test-{}", Uuid::now_v7().simple()))
        .to_string_lossy()
        .into_owned();
    s.media.poll_interval_ms = 20;
    s.media.image_poll_interval_ms = 20;
    s
}

/// `settings` with `provider` at `base_url`.
pub fn with(mut s: Settings, provider: &str, base_url: String) -> Settings {
    let (key, secret) = if provider == "klingai" {
        (KLING_ACCESS, Some(Secret::new(KLING_SECRET)))
    } else {
        ("sk-test-key", None)
    };
    s.providers.insert(
        provider.into(),
        ProviderAccess {
            api_key: Secret::new(key),
            secret_key: secret,
            base_url: Some(base_url),
        },
    );
    s
}

/// Starts a media-worker.
pub async fn start(settings: Settings) -> Worker {
    let shutdown = CancellationToken::new();
    tokio::spawn(media_worker::run(settings.clone(), shutdown.clone()));
    connect(settings, shutdown).await
}

/// What a test needs to talk to a media-worker of `settings` running elsewhere (its own
/// process): no worker is started.
pub async fn observe(settings: Settings) -> Worker {
    connect(settings, CancellationToken::new()).await
}

async fn connect(settings: Settings, shutdown: CancellationToken) -> Worker {
    Worker {
        bus: Bus::connect(&settings.core).await.unwrap(),
        client: redis::Client::open(settings.core.redis_url.expose()).unwrap(),
        settings,
        shutdown,
    }
}

/// An action of a user of its own.
pub fn action(action_type: &str, data: Value) -> DomainAction {
    let mut a = DomainAction::new(action_type, "test", Uuid::now_v7(), Uuid::now_v7(), data);
    a.user_id = Some(Uuid::now_v7());
    a
}

impl Worker {
    /// Publishes `action` and reads its events up to `complete`.
    pub async fn run(&self, action: &DomainAction) -> Vec<Received> {
        self.bus.publish(action).await.unwrap();
        self.events(action, "complete").await
    }

    /// The action's events up to the first of `kind`.
    pub async fn events(&self, action: &DomainAction, until: &str) -> Vec<Received> {
        let key = self.bus.names().response_stream(action.session_id);
        read_until(&self.client, &key, until, Some(action.task_id), WAIT).await
    }

    /// A stored object of the action's tenant.
    pub async fn stored(&self, tenant: Uuid, key: &str) -> Vec<u8> {
        let storage = Storage::new(&self.settings.storage, &self.settings.core).unwrap();
        storage.get(tenant, key).await.unwrap().bytes.to_vec()
    }
}

/// The event types, in order.
pub fn kinds(events: &[Received]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

/// The data of the first event of `kind`.
pub fn of<'a>(events: &'a [Received], kind: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e.kind == kind)
        .map(|e| &e.event["data"])
}

/// Asserts one `complete`, last.
pub fn assert_ends_once(events: &[Received]) {
    let k = kinds(events);
    assert_eq!(k.iter().filter(|k| **k == "complete").count(), 1, "{k:?}");
    assert_eq!(k.last(), Some(&"complete"), "{k:?}");
}
