//! The worker runtime (DESIGN §4): consumer groups, concurrency, ack after the handler, retries,
//! reclaim of dead consumers' entries, heartbeats, dead letters and graceful shutdown.

mod actions;
mod finish;
mod probes;
mod process;
mod reclaim;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::bus::Conn;
use async_trait::async_trait;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisResult};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::bus::Bus;
use crate::cancel::{self, CancelRegistry};
use crate::envelope::DomainAction;
use crate::events::{ErrorData, TaskEvents};
use crate::sessions::SessionOwners;

pub use actions::{Action, Actions};

/// How a worker process consumes its stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Handlers running at once in this process.
    pub concurrency: usize,
    /// `XREADGROUP BLOCK`, milliseconds.
    pub block_ms: u64,
    /// Entries pending longer than this belong to a dead consumer and are reclaimed, milliseconds.
    pub min_idle_ms: u64,
    /// How often a running handler refreshes its claim, milliseconds (well below `min_idle_ms`).
    pub heartbeat_ms: u64,
    /// How often to look for entries to reclaim, milliseconds.
    pub reclaim_interval_ms: u64,
    /// Deliveries before an entry goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// First retry delay, milliseconds.
    pub retry_base_ms: u64,
    /// Largest retry delay, milliseconds.
    pub retry_max_ms: u64,
    /// Time in-flight handlers get to finish after SIGTERM, seconds.
    pub shutdown_grace_secs: u64,
    /// Where this worker process answers `/health` and `/ready` (`WORKER__PROBE_ADDR`, e.g.
    /// `0.0.0.0:8090`); no probes when unset.
    #[serde(deserialize_with = "crate::settings::optional_string")]
    pub probe_addr: Option<String>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 64,
            block_ms: 2000,
            min_idle_ms: 30_000,
            heartbeat_ms: 5000,
            reclaim_interval_ms: 5000,
            max_deliveries: 5,
            retry_base_ms: 200,
            retry_max_ms: 10_000,
            shutdown_grace_secs: 30,
            probe_addr: None,
        }
    }
}

/// One action to work on, as a handler receives it.
#[derive(Debug)]
pub struct Task {
    /// The action.
    pub action: DomainAction,
    /// Where the task's events go (everything but `complete`, which the runtime sends).
    pub events: TaskEvents,
    /// Fires when the client cancels the task.
    pub cancel: CancellationToken,
    /// 1 for the first delivery, more after retries or reclaims.
    pub delivery: u64,
}

/// A handler's failure. `retryable` failures are retried while no output reached the client;
/// a rejection is the client's mistake: told, completed, never retried nor dead-lettered.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", .error.code, .error.message)]
pub struct HandlerError {
    /// What the client is told in the `error` event.
    pub error: ErrorData,
    /// A client's mistake rather than a failure of the system.
    pub rejected: bool,
}

impl HandlerError {
    /// A failure that trying again may fix (Redis hiccup, provider 5xx before output).
    pub fn retryable(stage: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorData::new(stage, code, message, true),
            rejected: false,
        }
    }
    /// A failure of the system that trying again will not fix: dead-lettered for an operator.
    pub fn fatal(stage: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorData::new(stage, code, message, false),
            rejected: false,
        }
    }
    /// A request that can never run as it is (an invalid payload): the client gets an `error`
    /// event of stage `validation` and the completion; nothing is dead-lettered.
    pub fn rejected(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorData::new("validation", code, message, false),
            rejected: true,
        }
    }
}

/// An event could not be written: Redis is away. Retryable while nothing reached the client.
impl From<crate::events::EmitError> for HandlerError {
    fn from(e: crate::events::EmitError) -> Self {
        Self::retryable("worker", "bus_unavailable", e.to_string())
    }
}

/// The service-specific work behind a worker. Workers declare their action types in an
/// [`Actions`] table, which implements this; implement it directly only to route by hand.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Whether this handler knows the action type (others go to the dead-letter stream).
    fn handles(&self, action_type: &str) -> bool;
    /// Does the work, streaming events through `task.events`. The runtime completes the task.
    async fn handle(&self, task: Task) -> Result<(), HandlerError>;
}

/// A consumer of one service's action stream (all its partitions).
pub struct Worker {
    inner: Inner,
}

/// The runtime's state for one partition of the service's stream; the partitions of a process
/// share everything but `stream` (handler slots, tasks, cancels, shutdown).
#[derive(Clone)]
struct Inner {
    bus: Bus,
    settings: WorkerSettings,
    service: String,
    stream: String,
    group: String,
    dead: String,
    consumer: String,
    handler: Arc<dyn Handler>,
    /// Checked before a task writes anything to its session.
    owners: SessionOwners,
    /// The database the worker has, if any (session store, readiness).
    db: Option<sqlx::PgPool>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    cancels: CancelRegistry,
    /// Parent of every task's cancel token; independent of shutdown so in-flight work finishes.
    tasks_root: CancellationToken,
    /// Fires on shutdown: stops reads, reclaims and retry waits (not running handlers).
    stopping: CancellationToken,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("consumer", &self.inner.consumer)
            .finish_non_exhaustive()
    }
}

/// Entries read per `XREADGROUP` at most.
const READ_BATCH: usize = 128;

impl Worker {
    /// A worker for `service` (the first segment of the action types it consumes).
    pub fn new(
        bus: Bus,
        settings: WorkerSettings,
        service: &str,
        handler: Arc<dyn Handler>,
    ) -> Self {
        let names = bus.names().clone();
        // Unique per process and never reused: a reused name would hide a crashed predecessor's
        // pending entries from recovery.
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        let consumer = format!(
            "{service}-{host}-{}-{}",
            std::process::id(),
            Uuid::now_v7().simple()
        );
        let concurrency = settings.concurrency.max(1);
        // Zero would make timers panic or loops spin; the smallest sensible values instead.
        let settings = WorkerSettings {
            block_ms: settings.block_ms.max(1),
            heartbeat_ms: settings.heartbeat_ms.max(10),
            reclaim_interval_ms: settings.reclaim_interval_ms.max(10),
            min_idle_ms: settings.min_idle_ms.max(settings.heartbeat_ms.max(10) * 2),
            ..settings
        };
        let owners = SessionOwners::new(
            bus.conn(),
            names.clone(),
            bus.settings().session_owner_ttl_secs(),
            None,
        );
        Self {
            inner: Inner {
                stream: names.action_stream(service),
                group: names.consumer_group(service),
                dead: names.dead_letter_stream(service),
                service: service.to_owned(),
                consumer,
                bus,
                settings,
                handler,
                owners,
                db: None,
                permits: Arc::new(Semaphore::new(concurrency)),
                tracker: TaskTracker::new(),
                cancels: CancelRegistry::default(),
                tasks_root: CancellationToken::new(),
                stopping: CancellationToken::new(),
            },
        }
    }

    /// Session owners whose Redis key expired are looked up in this database's stored sessions
    /// (`chat_sessions`) before an action may claim them; without it, Redis alone decides.
    pub fn with_session_store(mut self, db: sqlx::PgPool) -> Self {
        let inner = &mut self.inner;
        inner.owners = SessionOwners::new(
            inner.bus.conn(),
            inner.bus.names().clone(),
            inner.bus.settings().session_owner_ttl_secs(),
            Some(db.clone()),
        );
        inner.db = Some(db);
        self
    }

    /// This process's consumer name.
    pub fn consumer_name(&self) -> &str {
        &self.inner.consumer
    }

    /// Runs until `shutdown` fires, then lets in-flight handlers finish within the grace period.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let partitions: Vec<Arc<Inner>> = (0..self.inner.bus.settings().action_partitions.max(1))
            .map(|p| {
                Arc::new(Inner {
                    stream: self
                        .inner
                        .bus
                        .names()
                        .action_partition_stream(&self.inner.service, p),
                    ..self.inner.clone()
                })
            })
            .collect();
        let inner = partitions[0].clone();
        let probes = match &inner.settings.probe_addr {
            Some(addr) => Some(
                probes::start(addr, inner.bus.clone(), inner.db.clone(), shutdown.clone()).await?,
            ),
            None => None,
        };
        let stopping = inner.stopping.clone();
        let link = tokio::spawn(async move {
            shutdown.cancelled().await;
            stopping.cancel();
        });
        let shutdown = inner.stopping.clone();
        tracing::info!(
            consumer = %inner.consumer,
            stream = %inner.stream,
            partitions = partitions.len(),
            "worker starting"
        );
        // Cancels must reach tasks still finishing during the grace period: the listener stops
        // only after them.
        let listening = CancellationToken::new();
        let listener = tokio::spawn(cancel::listen(
            inner.bus.clone(),
            inner.cancels.clone(),
            listening.clone(),
        ));
        let reclaimers: Vec<_> = partitions
            .iter()
            .map(|p| tokio::spawn(reclaim::run(p.clone(), shutdown.clone())))
            .collect();
        // One blocking reader per partition (on a cluster each is one slot, perhaps one node);
        // they share the handler slots.
        let readers: Vec<_> = partitions
            .iter()
            .map(|p| {
                let (p, shutdown) = (p.clone(), shutdown.clone());
                tokio::spawn(async move { p.read_loop(&shutdown).await })
            })
            .collect();
        for reader in readers {
            let _ = reader.await;
        }

        inner.tracker.close();
        let grace = Duration::from_secs(inner.settings.shutdown_grace_secs);
        if tokio::time::timeout(grace, inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = inner.tracker.len(),
                "grace period over; unfinished entries stay pending and will be reclaimed"
            );
        }
        for reclaimer in reclaimers {
            reclaimer.abort();
        }
        listening.cancel();
        listener.abort();
        link.abort();
        if let Some(probes) = probes {
            probes.abort();
        }
        tracing::info!(consumer = %inner.consumer, "worker stopped");
        Ok(())
    }
}

impl Inner {
    async fn read_loop(self: Arc<Self>, shutdown: &CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut conn: Option<Conn> = None;
        let mut group_ready = false;
        while !shutdown.is_cancelled() {
            let result = async {
                let conn = match &mut conn {
                    Some(c) => c,
                    None => conn.insert(
                        self.bus
                            .blocking_conn(
                                &self.stream,
                                Duration::from_millis(self.settings.block_ms),
                            )
                            .await?,
                    ),
                };
                if !group_ready {
                    self.ensure_group(conn).await?;
                    group_ready = true;
                }
                Ok::<_, redis::RedisError>(conn.clone())
            }
            .await;
            let mut read_conn = match result {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "redis unavailable; retrying");
                    if sleep_or_shutdown(backoff.next_delay(), shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            let Some(mut permits) = self.take_permits(shutdown).await else {
                return;
            };
            // What is there is read first without waiting, as many as there are free handler
            // slots. Only an empty stream is waited on, for one entry, holding no slot: the
            // partitions of a process share the slots, and one partition's idle read must not
            // keep them from another's backlog (nor break a concurrency of 1).
            let keys = [self.stream.as_str()];
            let mut opts = StreamReadOptions::default()
                .group(&self.group, &self.consumer)
                .count(permits.len());
            let mut reply: RedisResult<Option<StreamReadReply>> =
                read_conn.xread_options(&keys, &[">"], &opts).await;
            if matches!(&reply, Ok(r) if r.as_ref().is_none_or(|r| r.keys.iter().all(|k| k.ids.is_empty())))
            {
                permits.clear();
                opts = opts.count(1).block(self.settings.block_ms as usize);
                reply = tokio::select! {
                    () = shutdown.cancelled() => return,
                    r = read_conn.xread_options(&keys, &[">"], &opts) => r,
                };
            }
            match reply {
                Ok(reply) => {
                    backoff.reset();
                    let mut permits = permits.into_iter();
                    let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
                    for entry in entries {
                        let permit = match permits.next() {
                            Some(p) => p,
                            None => match self.slot_for(&entry.id, shutdown).await {
                                Some(p) => p,
                                // Left pending: reclaimed by a live worker after `min_idle`.
                                None => return,
                            },
                        };
                        self.spawn_entry(entry.id, entry.map, 1, permit);
                    }
                }
                Err(e) => {
                    if e.code() == Some("NOGROUP") {
                        // The stream or group vanished (Redis restarted without persistence).
                        group_ready = false;
                        continue;
                    }
                    tracing::warn!(error = %e, "XREADGROUP failed; retrying");
                    if sleep_or_shutdown(backoff.next_delay(), shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// A handler slot for an entry read while none was held, refreshing this consumer's claim on
    /// the entry while it waits so no other worker takes it for abandoned; `None` on shutdown.
    async fn slot_for(
        &self,
        id: &str,
        shutdown: &CancellationToken,
    ) -> Option<OwnedSemaphorePermit> {
        let beat = Duration::from_millis(self.settings.heartbeat_ms);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return None,
                p = self.permits.clone().acquire_owned() => return p.ok(),
                () = tokio::time::sleep(beat) => {
                    let opts = redis::streams::StreamClaimOptions::default().with_justid();
                    let refreshed: RedisResult<Vec<String>> = self
                        .bus
                        .conn()
                        .xclaim_options(&self.stream, &self.group, &self.consumer, 0, &[id], opts)
                        .await;
                    if let Err(e) = refreshed {
                        tracing::warn!(error = %e, entry_id = id, "claim not refreshed");
                    }
                }
            }
        }
    }

    /// Waits for one free handler slot, then takes as many more as are free (up to a batch).
    async fn take_permits(
        &self,
        shutdown: &CancellationToken,
    ) -> Option<Vec<OwnedSemaphorePermit>> {
        let first = tokio::select! {
            () = shutdown.cancelled() => return None,
            p = self.permits.clone().acquire_owned() => p.ok()?,
        };
        let mut permits = vec![first];
        while permits.len() < READ_BATCH {
            match self.permits.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        Some(permits)
    }

    async fn ensure_group(&self, conn: &mut Conn) -> RedisResult<()> {
        // From the start of the stream ("0"), so actions published before the first worker ran
        // are processed too; processed-markers make a replay harmless.
        let created: RedisResult<()> = conn
            .xgroup_create_mkstream(&self.stream, &self.group, "0")
            .await;
        match created {
            Ok(()) => {
                tracing::info!(group = %self.group, stream = %self.stream, "consumer group created");
                Ok(())
            }
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn spawn_entry(
        self: &Arc<Self>,
        id: String,
        fields: HashMap<String, redis::Value>,
        delivery: u64,
        permit: OwnedSemaphorePermit,
    ) {
        let inner = self.clone();
        self.tracker.spawn(async move {
            inner.process(id, fields, delivery).await;
            drop(permit);
        });
    }
}

/// Sleeps unless shutdown comes first; true when shutting down.
async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}
