//! A [`Worker`] running in-process on a stream prefix of its own, for tests of the runtime.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Received, TestHandler, read_until, test_action, xrange_all};
use crate::bus::Bus;
use crate::envelope::DomainAction;
use crate::settings::CoreSettings;
use crate::worker::{Handler, Worker, WorkerSettings};

/// Longest wait for an expected event or for the worker to stop.
pub const WAIT: Duration = Duration::from_secs(20);

/// Worker settings that make reclaims, heartbeats and retries fast enough for tests.
pub fn fast_worker_settings() -> WorkerSettings {
    WorkerSettings {
        min_idle_ms: 400,
        heartbeat_ms: 100,
        reclaim_interval_ms: 100,
        retry_base_ms: 20,
        retry_max_ms: 100,
        shutdown_grace_secs: 10,
        ..WorkerSettings::default()
    }
}

/// A running worker of one service (no session store: Redis alone decides session owners) and
/// what a test needs to talk to it. Dropping it without [`WorkerHarness::stop`] still shuts the
/// worker down.
#[derive(Debug)]
pub struct WorkerHarness {
    /// The bus on the test's prefix.
    pub bus: Bus,
    /// A client for reading streams.
    pub client: redis::Client,
    service: String,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Drop for WorkerHarness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl WorkerHarness {
    /// Starts a worker of `service` with the [`TestHandler`].
    pub async fn start(core: &CoreSettings, settings: WorkerSettings, service: &str) -> Self {
        Self::start_with(
            core,
            settings,
            service,
            Arc::new(TestHandler::actions(service)),
        )
        .await
    }

    /// Starts a worker of `service` with any handler.
    pub async fn start_with(
        core: &CoreSettings,
        settings: WorkerSettings,
        service: &str,
        handler: Arc<dyn Handler>,
    ) -> Self {
        let bus = Bus::connect(core)
            .await
            .unwrap_or_else(|e| panic!("redis: {e}"));
        let client =
            redis::Client::open(core.redis_url.expose()).unwrap_or_else(|e| panic!("redis: {e}"));
        let shutdown = CancellationToken::new();
        let worker = Worker::new(bus.clone(), settings, service, handler);
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        Self {
            bus,
            client,
            service: service.to_owned(),
            shutdown,
            handle: Some(handle),
        }
    }

    /// The service the worker consumes for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// A [`TestHandler`] action with `data`, in a new session of a new tenant and user.
    pub fn action(&self, data: Value) -> DomainAction {
        test_action(&self.service, data)
    }

    /// Publishes an action.
    pub async fn publish(&self, action: &DomainAction) {
        self.bus
            .publish(action)
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }

    /// The action's events on its session's response stream up to the first of `kind` for its
    /// task (events of other tasks left out); panics after [`WAIT`].
    pub async fn wait(&self, action: &DomainAction, kind: &str) -> Vec<Received> {
        let key = self.bus.names().response_stream(action.session_id);
        let task = action.task_id.to_string();
        read_until(&self.bus, &key, kind, Some(action.task_id), WAIT)
            .await
            .into_iter()
            .filter(|e| e.event["task_id"] == task.as_str())
            .collect()
    }

    /// Publishes an action and returns its events up to `complete`.
    pub async fn run(&self, action: &DomainAction) -> Vec<Received> {
        self.publish(action).await;
        self.wait(action, "complete").await
    }

    /// Every entry of `key` as it stands now.
    pub async fn entries(&self, key: &str) -> Vec<Received> {
        xrange_all(&mut self.bus.conn(), key).await
    }

    /// Tells the worker to shut down without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Shuts the worker down and waits until it stopped; panics unless it stops cleanly within
    /// [`WAIT`].
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let Some(handle) = self.handle.take() else {
            return;
        };
        let stopped = tokio::time::timeout(WAIT, handle).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "worker did not stop cleanly: {stopped:?}"
        );
    }
}
