//! `fault-redis`: Redis stops in the middle of a run (`SHUTDOWN NOSAVE`: every key is lost) and
//! starts again. Measures how long the gateway takes to be ready and a new chat to complete once
//! Redis is back, and how each chat that was in flight ended.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::Report;
use crate::chat;
use crate::context::Ctx;
use crate::stats::round3;
use crate::ws::{self, Ws};

/// Options of `fault-redis`.
#[derive(Args, Debug, Clone)]
pub struct RedisArgs {
    /// WebSocket clients chatting in a loop.
    #[arg(long, default_value_t = 20)]
    pub connections: usize,
    /// Seconds of load before Redis stops.
    #[arg(long, default_value_t = 5)]
    pub warmup_secs: u64,
    /// Milliseconds between stopping Redis and starting it again.
    #[arg(long, default_value_t = 1000)]
    pub outage_ms: u64,
    /// Seconds of load after Redis is back.
    #[arg(long, default_value_t = 15)]
    pub after_secs: u64,
    /// Shell command that stops Redis (e.g. `redis-cli -p 6390 shutdown nosave`).
    #[arg(long)]
    pub stop_cmd: String,
    /// Shell command that starts Redis again and returns (e.g. `redis-server … --daemonize yes`).
    #[arg(long)]
    pub start_cmd: String,
    /// A chat with no `complete` or `error` within this many seconds is hung.
    #[arg(long, default_value_t = 30)]
    pub chat_timeout_secs: u64,
    /// The most seconds, from Redis answering again, for the gateway to be ready and a new chat
    /// to complete.
    #[arg(long, default_value_t = 5.0)]
    pub recovery_limit_secs: f64,
}

/// One chat of the load.
struct ChatRecord {
    started: Instant,
    ended: Instant,
    outcome: String,
}

/// Runs `fault-redis`.
pub async fn run(ctx: &Ctx, args: &RedisArgs) -> anyhow::Result<Report> {
    let timeout = Duration::from_secs(args.chat_timeout_secs);
    let stop = Arc::new(AtomicBool::new(false));
    let records: Arc<Mutex<Vec<ChatRecord>>> = Arc::new(Mutex::new(Vec::new()));
    let url = ctx.ws_url_with(&ctx.token);
    let mut clients = Vec::new();
    for _ in 0..args.connections {
        let (ctx, url, stop, records) = (ctx.clone(), url.clone(), stop.clone(), records.clone());
        clients.push(tokio::spawn(async move {
            let mut socket: Option<Ws> = None;
            while !stop.load(Ordering::Relaxed) {
                let Some(s) = socket.as_mut() else {
                    match ws::connect(&url, Duration::from_secs(5)).await {
                        Ok((s, _)) => socket = Some(s),
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                    continue;
                };
                let started = Instant::now();
                let message = ws::chat_message(
                    &chat::prompt(&Uuid::new_v4().simple().to_string(), 5),
                    &ctx.common.model,
                );
                let t = chat::ws_chat(s, &message, timeout, |_, _| None).await;
                let broken = matches!(t.outcome.as_str(), "closed" | "timeout")
                    || t.outcome.starts_with("websocket");
                records.lock().await.push(ChatRecord {
                    started,
                    ended: Instant::now(),
                    outcome: t.outcome,
                });
                if broken {
                    socket = None;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;

    let t_stop = Instant::now();
    shell(&args.stop_cmd).await.context("stopping Redis")?;
    tokio::time::sleep(Duration::from_millis(args.outage_ms)).await;
    shell(&args.start_cmd).await.context("starting Redis")?;
    let redis = redis::Client::open(ctx.common.redis_url.as_str())?;
    let t_up = wait_until(
        Duration::from_secs(30),
        Duration::from_millis(10),
        || async {
            match redis.get_multiplexed_async_connection().await {
                Ok(mut c) => redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok(),
                Err(_) => false,
            }
        },
    )
    .await
    .context("Redis did not come back")?;
    let ready_url = format!("{}/ready", ctx.gateway());
    let http = ctx.http.clone();
    let t_ready = wait_until(Duration::from_secs(60), Duration::from_millis(25), || {
        let (http, ready_url) = (http.clone(), ready_url.clone());
        async move {
            http.get(&ready_url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    // A new chat on a new connection, tried until one completes.
    let (probe_done, probe_attempts) = probe(ctx, &url, t_up, Duration::from_secs(60)).await;

    tokio::time::sleep(Duration::from_secs(args.after_secs)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = tokio::time::timeout(timeout + Duration::from_secs(5), c).await;
    }
    let records = std::mem::take(&mut *records.lock().await);

    let mut in_flight: BTreeMap<String, u64> = BTreeMap::new();
    let mut during: BTreeMap<String, u64> = BTreeMap::new();
    let mut after: BTreeMap<String, u64> = BTreeMap::new();
    for r in &records {
        let map = if r.started < t_stop && r.ended >= t_stop {
            &mut in_flight
        } else if r.started >= t_stop && r.started < t_up {
            &mut during
        } else if r.started >= t_up {
            &mut after
        } else {
            continue;
        };
        *map.entry(classify(&r.outcome)).or_default() += 1;
    }
    let secs = |t: Option<Instant>| t.map(|t| round3(t.duration_since(t_up).as_secs_f64()));
    let ready_after = secs(t_ready);
    let chat_after = secs(probe_done);
    let limit = args.recovery_limit_secs;
    let recovered =
        ready_after.is_some_and(|s| s <= limit) && chat_after.is_some_and(|s| s <= limit);
    let bad_in_flight: u64 = in_flight
        .iter()
        .filter(|(k, _)| !(k.as_str() == "complete" || k.starts_with("error")))
        .map(|(_, v)| *v)
        .sum();
    let passed = recovered && bad_in_flight == 0;
    let line = format!(
        "redis back after {:.2} s outage; gateway ready +{} s, new chat complete +{} s (limit {limit} s); in flight {in_flight:?}",
        t_up.duration_since(t_stop).as_secs_f64(),
        ready_after.map_or("never".into(), |s| format!("{s:.2}")),
        chat_after.map_or("never".into(), |s| format!("{s:.2}")),
    );
    let summary = vec![
        format!("fault-redis: {line}"),
        format!(
            "  chats started during the outage {during:?}; after {after:?}; probe attempts {probe_attempts}"
        ),
    ];
    let result = json!({
        "kind": "fault_redis",
        "summary": line,
        "connections": args.connections,
        "outage_secs": round3(t_up.duration_since(t_stop).as_secs_f64()),
        "ready_after_redis_up_secs": ready_after,
        "chat_after_redis_up_secs": chat_after,
        "recovery_limit_secs": limit,
        "in_flight": in_flight,
        "in_flight_without_error_or_complete": bad_in_flight,
        "started_during_outage": during,
        "started_after": after,
        "probe_attempts": probe_attempts,
    });
    Ok(Report {
        result,
        summary,
        passed,
    })
}

/// `complete`, `error:<code>`, `hung` (no terminal event in time), `closed`, or another failure.
fn classify(outcome: &str) -> String {
    match outcome {
        "ok" => "complete".into(),
        "timeout" => "hung".into(),
        "closed" => "closed_without_event".into(),
        o if o.starts_with("websocket") => "connection_failed".into(),
        code => format!("error:{code}"),
    }
}

/// Runs a shell command and checks its status.
async fn shell(cmd: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .await?;
    anyhow::ensure!(status.success(), "`{cmd}` failed: {status}");
    Ok(())
}

/// Polls `check` every `every` until it is true (then the instant) or `limit` passes.
async fn wait_until<F, Fut>(limit: Duration, every: Duration, check: F) -> Option<Instant>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check().await {
            return Some(Instant::now());
        }
        tokio::time::sleep(every).await;
    }
    None
}

/// From `from`, connects and chats until a chat completes without error; returns when it did
/// and how many attempts it took.
async fn probe(ctx: &Ctx, url: &str, from: Instant, limit: Duration) -> (Option<Instant>, u32) {
    let mut attempts = 0;
    while from.elapsed() < limit {
        attempts += 1;
        let attempt = async {
            let (mut s, _) = ws::connect(url, Duration::from_secs(5)).await?;
            let message = ws::chat_message(
                &chat::prompt(&Uuid::new_v4().simple().to_string(), 5),
                &ctx.common.model,
            );
            let t = chat::ws_chat(&mut s, &message, Duration::from_secs(5), |_, _| None).await;
            anyhow::ensure!(t.outcome == "ok", "{}", t.outcome);
            Ok(())
        };
        if attempt.await.is_ok() {
            return (Some(Instant::now()), attempts);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (None, attempts)
}
