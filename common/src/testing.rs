//! Helpers for the services' integration tests (feature `testing`): isolated settings, reading
//! response streams until `complete`, a private Redis server that a test may restart, a private
//! S3 server, a PDF with a text layer, and a worker harness with a handler driven by the action's data for tests of the
//! runtime itself.

mod handler;
mod harness;
mod pdf;
mod s3;

pub use handler::{Fail, TestData, TestHandler, test_action};
pub use harness::{WAIT, WorkerHarness, fast_worker_settings};
pub use pdf::pdf_with_text;
pub use s3::{
    S3_ACCESS_KEY, S3_SECRET_KEY, S3S_FS_INSTALL, S3Server, in_ci, s3s_fs_available, s3s_fs_binary,
};

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use serde_json::Value;
use uuid::Uuid;

use crate::bus::{Bus, Conn};
use crate::settings::{CoreSettings, Secret};

/// The JWT secret test settings use.
pub const TEST_SECRET: &str = "test-secret";

/// The database of this test run: one per test process, created by the first service that
/// connects (`aibt_<uuid>`; `scripts/test` drops them afterwards). Tests never share data through
/// it: every test uses its own tenants and sessions.
pub fn test_database_url() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let name = NAME.get_or_init(|| format!("aibt_{}", Uuid::now_v7().simple()));
    let base = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    format!("{}/{name}", base.trim_end_matches('/'))
}

/// Settings with a stream prefix of their own, so tests never see each other's keys, and the
/// test run's database. `REDIS_CLUSTER_URLS` in the environment runs the test on that cluster.
pub fn isolated_settings() -> CoreSettings {
    CoreSettings {
        redis_url: Secret::new(
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
        redis_cluster_urls: std::env::var("REDIS_CLUSTER_URLS")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .map(Secret::new),
        stream_prefix: format!("test{}", Uuid::now_v7().simple()),
        jwt_secret: Some(Secret::new(TEST_SECRET)),
        database_url: Secret::new(test_database_url()),
        bus: crate::settings::BusSettings {
            // `BUS__ACTION_PARTITIONS` runs the test with partitioned action streams.
            action_partitions: std::env::var("BUS__ACTION_PARTITIONS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
            ..Default::default()
        },
        ..CoreSettings::default()
    }
}

/// One response-stream entry, decoded.
#[derive(Debug, Clone)]
pub struct Received {
    /// The entry id.
    pub id: String,
    /// The event type.
    pub kind: String,
    /// The whole event JSON.
    pub event: Value,
}

fn decode(id: String, map: &HashMap<String, redis::Value>) -> Received {
    let text = |k: &str| -> String {
        map.get(k)
            .and_then(|v| redis::from_redis_value_ref(v).ok())
            .unwrap_or_default()
    };
    Received {
        id,
        kind: text("type"),
        event: serde_json::from_str(&text("payload")).unwrap_or(Value::Null),
    }
}

/// Whether the tests run on a Redis Cluster (`REDIS_CLUSTER_URLS`).
pub fn on_cluster() -> bool {
    std::env::var("REDIS_CLUSTER_URLS").is_ok_and(|u| !u.trim().is_empty())
}

/// What a test reaches Redis through: a plain client (one server), the bus, or the settings
/// (either a single server or a cluster).
#[async_trait::async_trait]
pub trait TestRedis: Sync {
    /// A connection of its own that can read `key` (blocking reads included).
    async fn conn_for(&self, key: &str) -> Conn;
}

#[async_trait::async_trait]
impl TestRedis for redis::Client {
    async fn conn_for(&self, _key: &str) -> Conn {
        Conn::Single(
            redis::aio::ConnectionManager::new(self.clone())
                .await
                .unwrap_or_else(|e| panic!("redis: {e}")),
        )
    }
}

#[async_trait::async_trait]
impl TestRedis for Bus {
    async fn conn_for(&self, key: &str) -> Conn {
        self.blocking_conn(key, Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("redis: {e}"))
    }
}

#[async_trait::async_trait]
impl TestRedis for CoreSettings {
    async fn conn_for(&self, key: &str) -> Conn {
        test_bus(self).await.conn_for(key).await
    }
}

#[async_trait::async_trait]
impl TestRedis for Conn {
    async fn conn_for(&self, _key: &str) -> Conn {
        self.clone()
    }
}

/// The bus of `core` (a single server or a cluster), for a test's own commands.
pub async fn test_bus(core: &CoreSettings) -> Bus {
    Bus::connect(core)
        .await
        .unwrap_or_else(|e| panic!("redis: {e}"))
}

/// Every entry of a stream.
pub async fn xrange_all<C: redis::aio::ConnectionLike + Send + Sync>(
    conn: &mut C,
    key: &str,
) -> Vec<Received> {
    let reply: StreamRangeReply = conn.xrange_all(key).await.unwrap_or_default();
    reply
        .ids
        .into_iter()
        .map(|e| decode(e.id, &e.map))
        .collect()
}

/// Reads a stream from the start until an entry of `kind` for `task_id` arrives, or panics after
/// `timeout`.
pub async fn read_until(
    redis: &(impl TestRedis + ?Sized),
    key: &str,
    kind: &str,
    task_id: Option<Uuid>,
    timeout: Duration,
) -> Vec<Received> {
    let mut conn = redis.conn_for(key).await;
    let mut seen = Vec::new();
    let mut last = "0-0".to_owned();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !left.is_zero(),
            "no {kind} on {key} within {timeout:?}; saw {seen:#?}"
        );
        let opts = StreamReadOptions::default().block(left.as_millis().clamp(1, 200) as usize);
        let reply: Option<StreamReadReply> = conn
            .xread_options(&[key], &[&last], &opts)
            .await
            .unwrap_or(None);
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            last.clone_from(&entry.id);
            let r = decode(entry.id, &entry.map);
            let done = r.kind == kind
                && task_id.is_none_or(|t| r.event["task_id"].as_str() == Some(&t.to_string()));
            seen.push(r);
            if done {
                return seen;
            }
        }
    }
}

/// A `redis-server` of a test's own, on a free port, that the test may stop and start again.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (nothing is kept: it runs without persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it if running, then starts it on the same port and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..200 {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
                if pong.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
