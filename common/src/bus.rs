//! The Redis Streams client every service shares: connections, publishing actions, cancel flags.

mod conn;

use std::time::Duration;

use redis::{AsyncCommands, RedisResult};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::envelope::DomainAction;
use crate::names::Names;
use crate::settings::{BusSettings, CoreSettings};

pub use conn::{Conn, NodeConn, Topology};

/// A handle on the bus. Cheap to clone; commands go over one multiplexed connection (one per
/// node on a cluster) that reconnects by itself.
#[derive(Clone)]
pub struct Bus {
    topology: Topology,
    conn: Conn,
    names: Names,
    settings: BusSettings,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("names", &self.names)
            .field("topology", &self.topology)
            .finish_non_exhaustive()
    }
}

/// Response timeout of the shared connection.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Bus {
    /// Connects once; fails if Redis (or no node of the cluster) answers.
    pub async fn connect(settings: &CoreSettings) -> RedisResult<Self> {
        let cluster = settings.cluster_urls();
        let topology = if cluster.is_empty() {
            Topology::single(settings.redis_url.expose())?
        } else {
            // Refused before anything runs, never as a CROSSSLOT in the middle of a task.
            settings.names().check_cluster_layout().map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "key names unfit for a Redis Cluster",
                    e,
                ))
            })?;
            Topology::cluster(&cluster, RESPONSE_TIMEOUT)?
        };
        let conn = topology.shared(RESPONSE_TIMEOUT).await?;
        Ok(Self {
            topology,
            conn,
            names: settings.names(),
            settings: settings.bus.clone(),
        })
    }

    /// Connects, retrying with backoff until Redis answers or `shutdown` fires (then `None`).
    /// Settings that can never work (a bad URL, key names unfit for a cluster) fail at once.
    pub async fn connect_with_retry(
        settings: &CoreSettings,
        shutdown: &CancellationToken,
    ) -> RedisResult<Option<Self>> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            match Self::connect(settings).await {
                Ok(bus) => return Ok(Some(bus)),
                Err(e) if e.kind() == redis::ErrorKind::InvalidClientConfig => return Err(e),
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "redis unavailable");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(None),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// The key names in use.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Stream sizes and lifetimes.
    pub fn settings(&self) -> &BusSettings {
        &self.settings
    }

    /// The shared multiplexed connection (clone it per use).
    pub fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// A connection of its own for blocking reads of `key` (`XREAD BLOCK` holds a connection
    /// while it waits); its response timeout allows for the block time. On a cluster it is a
    /// connection to the node serving `key`, which follows the key when its slot moves.
    pub async fn blocking_conn(&self, key: &str, block: Duration) -> RedisResult<Conn> {
        self.topology
            .blocking(key, block + Duration::from_secs(5))
            .await
    }

    /// Where the bus lives (one server or a cluster), for connections of one's own.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether the bus is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.topology.is_cluster()
    }

    /// Whether Redis answers a `PING` now.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let pong: RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        pong.is_ok()
    }

    /// Appends an action to its service's stream (the session's partition of it, `XADD MAXLEN
    /// ~`); returns the entry id.
    pub async fn publish(&self, action: &DomainAction) -> RedisResult<String> {
        let mut conn = self.conn.clone();
        self.publish_cmd(action).query_async(&mut conn).await
    }

    /// The `XADD` of [`Bus::publish`], for callers that pipeline it with other commands.
    pub fn publish_cmd(&self, action: &DomainAction) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.names.action_stream_for(
            action.service(),
            action.session_id,
            self.settings.action_partitions,
        ))
        .arg("MAXLEN")
        .arg("~")
        .arg(self.settings.action_maxlen)
        .arg("*")
        .arg("action_type")
        .arg(&action.action_type)
        .arg("action_id")
        .arg(action.action_id.to_string())
        .arg("tenant_id")
        .arg(action.tenant_id.to_string())
        .arg("task_id")
        .arg(action.task_id.to_string())
        .arg("payload")
        .arg(action.to_json());
        cmd
    }

    /// Deletes `key` only while it holds `value`, in one step (a compare-and-delete script), so a
    /// value written meanwhile by someone else survives. True when it was deleted.
    pub async fn delete_if_equals(&self, key: &str, value: &str) -> RedisResult<bool> {
        delete_if_equals(&mut self.conn.clone(), key, value).await
    }

    /// Raises a task's cancel flag and announces it, so a worker reacts at once.
    pub async fn request_cancel(&self, task_id: Uuid) -> RedisResult<()> {
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .set_ex(
                self.names.cancel_flag(task_id),
                "1",
                self.settings.cancel_ttl_secs,
            )
            .ignore()
            .publish(self.names.cancel_channel(), task_id.to_string())
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Whether a task's cancel flag is raised.
    pub async fn is_cancel_requested(&self, task_id: Uuid) -> RedisResult<bool> {
        let mut conn = self.conn.clone();
        conn.exists(self.names.cancel_flag(task_id)).await
    }
}

/// Deletes the key only while it holds the value (KEYS[1], ARGV[1]).
static DELETE_IF_EQUALS: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    )
});

/// [`Bus::delete_if_equals`] on a given connection.
pub async fn delete_if_equals(conn: &mut Conn, key: &str, value: &str) -> RedisResult<bool> {
    let deleted: i64 = DELETE_IF_EQUALS
        .key(key)
        .arg(value)
        .invoke_async(conn)
        .await?;
    Ok(deleted == 1)
}
