//! A chat-worker running in-process for integration tests: real Redis (a stream prefix of its
//! own), the test run's PostgreSQL database, providers pointed at local simulators.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chat_worker::Settings;
use common::Bus;
use common::envelope::DomainAction;
use common::llm::ProviderAccess;
use common::settings::{CoreSettings, Secret};
use common::testing::{Received, read_until};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Longest wait for an expected event.
pub const WAIT: Duration = Duration::from_secs(20);

/// Points a provider of the registry at a simulator, with a key.
pub fn point(settings: &mut Settings, provider: &str, base_url: String, key: &str) {
    settings.providers.insert(
        provider.into(),
        ProviderAccess {
            api_key: Some(Secret::new(key)),
            base_url: Some(base_url),
        },
    );
}

/// Settings on `core` with no retries (tests script every failure).
pub fn settings(core: &CoreSettings) -> Settings {
    Settings {
        core: core.clone(),
        provider_retries: 0,
        provider_idle_timeout_secs: 10,
        ..Settings::default()
    }
}

/// The one user of a test tenant that publishes its actions (a session belongs to a tenant and a
/// user: every action of a test in one session comes from the same person).
pub fn user_of(tenant: Uuid) -> Uuid {
    Uuid::from_u128(tenant.as_u128() ^ 1)
}

/// An action of `tenant`'s user in `session`.
pub fn action_of(action_type: &str, tenant: Uuid, session: Uuid, data: Value) -> DomainAction {
    let mut action = DomainAction::new(action_type, "test", tenant, session, data);
    action.user_id = Some(user_of(tenant));
    action
}

/// A running chat-worker and what a test needs to talk to it.
pub struct Harness {
    pub bus: Bus,
    pub client: redis::Client,
    pub db: PgPool,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Harness {
    /// Migrates the database, then starts the worker.
    pub async fn start(settings: Settings) -> Self {
        let core = settings.core.clone();
        let db = common::db::connect(&core).await.unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(chat_worker::run(settings, shutdown.clone()));
        Self {
            bus: Bus::connect(&core).await.unwrap(),
            client: redis::Client::open(core.redis_url.expose()).unwrap(),
            db,
            shutdown,
        }
    }

    /// Publishes an action of `action_type`.
    pub async fn publish(
        &self,
        action_type: &str,
        tenant: Uuid,
        session: Uuid,
        data: Value,
    ) -> DomainAction {
        let action = action_of(action_type, tenant, session, data);
        self.bus.publish(&action).await.unwrap();
        action
    }

    /// Publishes an action for `tenant`'s user into `session` with its events sent to a callback
    /// stream, and returns the events there up to `complete`.
    pub async fn run_with_callback(
        &self,
        action_type: &str,
        tenant: Uuid,
        session: Uuid,
        data: Value,
    ) -> Vec<Received> {
        let mut action = action_of(action_type, tenant, session, data);
        let callback = self
            .bus
            .names()
            .callback_stream(&action.task_id.to_string());
        action.callback_stream = Some(callback.clone());
        self.bus.publish(&action).await.unwrap();
        read_until(&self.bus, &callback, "complete", Some(action.task_id), WAIT).await
    }

    /// The task's events in its session's response stream, as they stand now.
    pub async fn in_session(&self, session: Uuid, task: Uuid) -> Vec<Received> {
        let key = self.bus.names().response_stream(session);
        common::testing::xrange_all(&mut self.bus.conn(), &key)
            .await
            .into_iter()
            .filter(|e| e.event["task_id"] == task.to_string())
            .collect()
    }

    /// The task's events up to the first of `kind`.
    pub async fn wait(&self, action: &DomainAction, kind: &str) -> Vec<Received> {
        let key = self.bus.names().response_stream(action.session_id);
        read_until(&self.bus, &key, kind, Some(action.task_id), WAIT)
            .await
            .into_iter()
            .filter(|e| e.event["task_id"] == action.task_id.to_string())
            .collect()
    }

    /// Publishes a chat in a new session of a new tenant and returns its events.
    pub async fn ask(&self, data: Value) -> Vec<Received> {
        self.ask_in(Uuid::now_v7(), Uuid::now_v7(), data).await
    }

    /// Publishes a chat in the given session and returns its events.
    pub async fn ask_in(&self, tenant: Uuid, session: Uuid, data: Value) -> Vec<Received> {
        self.run("chat.completion.generate", tenant, session, data)
            .await
    }

    /// Publishes an action and returns its events up to `complete`.
    pub async fn run(
        &self,
        action_type: &str,
        tenant: Uuid,
        session: Uuid,
        data: Value,
    ) -> Vec<Received> {
        let action = self.publish(action_type, tenant, session, data).await;
        self.wait(&action, "complete").await
    }
}

/// The event types, in order.
pub fn kinds(events: &[Received]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

/// The `data` of every event of `kind`.
pub fn of_kind<'a>(events: &'a [Received], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| &e.event["data"])
        .collect()
}

/// The `data` of the first event of `kind`.
pub fn first<'a>(events: &'a [Received], kind: &str) -> Option<&'a Value> {
    of_kind(events, kind).into_iter().next()
}

/// The concatenated `content` of every event of `kind`.
pub fn joined(events: &[Received], kind: &str) -> String {
    of_kind(events, kind)
        .iter()
        .map(|d| d["content"].as_str().unwrap())
        .collect()
}

/// Writes a model registry to a file of its own and returns its path (for `models_file`).
pub fn registry_file(toml: &str) -> String {
    let dir = std::env::temp_dir().join(format!("registry-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("models.toml");
    std::fs::write(&file, toml).unwrap();
    file.display().to_string()
}
