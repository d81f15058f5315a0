//! `idle-ws`: how many idle authenticated WebSocket sessions one gateway holds, and its resident
//! memory at given counts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt;
use rand::seq::IndexedRandom;
use serde_json::json;

use crate::Report;
use crate::chat;
use crate::context::Ctx;
use crate::procs;
use crate::stats::round3;
use crate::ws::{self, Ws};

/// Options of `idle-ws`.
#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    /// Sessions to open in all.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Counts at which the gateway's RSS is read (comma-separated); the total is always one.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub checkpoints: Vec<usize>,
    /// WebSockets being opened at once.
    #[arg(long, default_value_t = 100)]
    pub connect_parallelism: usize,
    /// Seconds to wait after each checkpoint before reading RSS.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
    /// Seconds to hold every session open at the end.
    #[arg(long, default_value_t = 30)]
    pub hold_secs: u64,
    /// Sessions pinged at the end (each must answer `pong`).
    #[arg(long, default_value_t = 200)]
    pub ping_sample: usize,
    /// Stop opening more when this fraction of attempts failed.
    #[arg(long, default_value_t = 0.05)]
    pub max_failure_ratio: f64,
}

/// Runs `idle-ws`; the gateway must be watched as `--proc gateway=<pid>`.
pub async fn run(ctx: &Ctx, args: &IdleArgs) -> anyhow::Result<Report> {
    let gateway = ctx
        .watch
        .pid("gateway")
        .context("idle-ws needs --proc gateway=<pid>")?;
    let gw_rss = || procs::rss_kib(gateway).unwrap_or(0) as f64 / 1024.0;
    let url = ctx.ws_url_with(&ctx.token);
    let mut checkpoints: Vec<usize> = args
        .checkpoints
        .iter()
        .copied()
        .filter(|c| *c > 0 && *c < args.sessions)
        .collect();
    checkpoints.push(args.sessions);
    checkpoints.sort_unstable();
    checkpoints.dedup();

    let rss_empty = gw_rss();
    let self_empty = procs::rss_kib(std::process::id()).unwrap_or(0) as f64 / 1024.0;
    let mut held: Vec<Ws> = Vec::with_capacity(args.sessions);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut attempts = 0usize;
    let mut points = Vec::new();
    let mut summary = vec![format!(
        "idle-ws: gateway RSS with no session {rss_empty:.1} MiB"
    )];
    let started = Instant::now();
    'outer: for &target in &checkpoints {
        while held.len() < target {
            let batch = (target - held.len()).min(args.connect_parallelism * 4);
            attempts += batch;
            let opened: Vec<anyhow::Result<(Ws, String)>> = futures::stream::iter(0..batch)
                .map(|_| ws::connect(&url, Duration::from_secs(30)))
                .buffer_unordered(args.connect_parallelism.max(1))
                .collect()
                .await;
            for r in opened {
                match r {
                    Ok((socket, _)) => held.push(socket),
                    Err(e) => *errors.entry(chat::short_error(&e)).or_default() += 1,
                }
            }
            let failed: u64 = errors.values().sum();
            if failed as f64 > args.max_failure_ratio * attempts as f64 && failed > 10 {
                summary.push(format!(
                    "  stopped opening: {failed} of {attempts} attempts failed ({errors:?})"
                ));
                break 'outer;
            }
        }
        tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
        let rss = gw_rss();
        let per_session_kib = (rss - rss_empty) * 1024.0 / held.len().max(1) as f64;
        summary.push(format!(
            "  {:>6} sessions: gateway RSS {rss:.1} MiB ({per_session_kib:.1} KiB per session)",
            held.len()
        ));
        points.push(json!({
            "sessions": held.len(),
            "gateway_rss_mib": round3(rss),
            "per_session_kib": round3(per_session_kib),
            "at_secs": round3(started.elapsed().as_secs_f64()),
        }));
    }
    let opened_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let rss_held = gw_rss();
    let alive = ping_sample(&mut held, args.ping_sample).await;
    let sessions = held.len();
    let self_rss = procs::rss_kib(std::process::id()).unwrap_or(0) as f64 / 1024.0;
    drop(held);
    tokio::time::sleep(Duration::from_secs(args.settle_secs.max(5))).await;
    let rss_closed = gw_rss();
    summary.push(format!(
        "  held {sessions} for {} s: RSS {rss_held:.1} MiB; {alive}/{} sampled sessions answered ping; after closing all: {rss_closed:.1} MiB",
        args.hold_secs,
        args.ping_sample.min(sessions)
    ));
    let result = json!({
        "kind": "idle_ws",
        "sessions_requested": args.sessions,
        "sessions_held": sessions,
        "attempts": attempts,
        "errors": errors,
        "open_secs": round3(opened_secs),
        "gateway_rss_empty_mib": round3(rss_empty),
        "points": points,
        "gateway_rss_after_hold_mib": round3(rss_held),
        "gateway_rss_after_close_mib": round3(rss_closed),
        "ping_sampled": args.ping_sample.min(sessions),
        "ping_answered": alive,
        "loadgen_rss_mib": {"before": round3(self_empty), "holding": round3(self_rss)},
    });
    Ok(Report::new(result, summary))
}

/// Pings `n` random held sessions; returns how many answered `pong` within 10 s.
async fn ping_sample(held: &mut [Ws], n: usize) -> usize {
    let indices: Vec<usize> = (0..held.len()).collect();
    let chosen: Vec<usize> = {
        let mut rng = rand::rng();
        indices.choose_multiple(&mut rng, n).copied().collect()
    };
    let mut alive = 0;
    for i in chosen {
        let Some(socket) = held.get_mut(i) else {
            continue;
        };
        let answered = tokio::time::timeout(Duration::from_secs(10), async {
            ws::send(socket, &json!({"type": "ping"})).await?;
            while let Some(e) = ws::next_event(socket).await? {
                if e.kind == "pong" {
                    return Ok::<_, anyhow::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        if matches!(answered, Ok(Ok(true))) {
            alive += 1;
        }
    }
    alive
}
