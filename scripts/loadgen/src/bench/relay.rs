//! `relay`: streamed chunks relayed end to end per second at saturation — many concurrent
//! streams of many chunks with no pacing, counted as the clients receive them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use tokio::sync::Mutex;

use crate::Report;
use crate::chat::{self, Path, Timing};
use crate::context::Ctx;
use crate::pool::{self, Client};
use crate::stats::{Latency, round3};
use crate::ws;

/// Options of `relay`.
#[derive(Args, Debug, Clone)]
pub struct RelayArgs {
    /// The path (`ws` or `openai`; `direct` measures the simulator alone).
    #[arg(long, value_enum, default_value_t = Path::Ws)]
    pub target: Path,
    /// Concurrent streams.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds of load before counting starts.
    #[arg(long, default_value_t = 3)]
    pub warmup_secs: u64,
    /// Seconds counted.
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
    /// Longest a chat may take, seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

/// Runs `relay`.
pub async fn run(ctx: &Ctx, args: &RelayArgs) -> anyhow::Result<Report> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let (clients, connect_errors) = pool::open(ctx, args.target, args.concurrency, 200).await;
    anyhow::ensure!(
        !clients.is_empty(),
        "no client connected: {connect_errors:?}"
    );
    let n = clients.len();
    let chunks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let timings: Arc<Mutex<Vec<Timing>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::with_capacity(n);
    for client in clients {
        let (ctx, args) = (ctx.clone(), args.clone());
        let (chunks, stop, timings) = (chunks.clone(), stop.clone(), timings.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            while !stop.load(Ordering::Relaxed) {
                let t = stream_once(&ctx, &mut client, args.target, timeout, &chunks).await;
                let failed = t.outcome != "ok";
                timings.lock().await.push(t);
                if failed {
                    // A broken client would spin; it sits the rest of the run out.
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
    let before = ctx.watch.snapshot().await;
    let c0 = chunks.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
    let c1 = chunks.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    let after = ctx.watch.snapshot().await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(timeout, t).await;
    }
    let timings = std::mem::take(&mut *timings.lock().await);
    let rate = (c1 - c0) as f64 / elapsed.as_secs_f64();
    let ok: Vec<&Timing> = timings.iter().filter(|t| t.outcome == "ok").collect();
    let total = Latency::of(ok.iter().filter_map(|t| t.total))?;
    let per_chat = ok.iter().map(|t| t.chunks).max().unwrap_or(0);
    let errors = pool::error_counts(&timings);
    let summary = vec![
        format!(
            "relay {:?} c={n}: {rate:.0} chunks/s over {:.1} s ({} chunks per chat, {} chats, errors {errors:?})",
            args.target,
            elapsed.as_secs_f64(),
            per_chat,
            timings.len()
        ),
        format!("  chat total {}", total.line()),
        format!("  cpu   {}", before.cpu_line(&after)),
    ];
    let result = json!({
        "kind": "relay",
        "target": args.target,
        "concurrency": args.concurrency,
        "connected": n,
        "chunks_per_sec": round3(rate),
        "chunks_counted": c1 - c0,
        "duration_secs": round3(elapsed.as_secs_f64()),
        "chunks_per_chat": per_chat,
        "chats": timings.len(),
        "errors": errors,
        "connect_errors": connect_errors,
        "chat_total": total.summary(),
        "processes": before.usage_until(&after),
    });
    Ok(Report::new(result, summary))
}

/// One chat, adding each content chunk to `chunks` as it arrives.
async fn stream_once(
    ctx: &Ctx,
    client: &mut Client,
    path: Path,
    timeout: Duration,
    chunks: &AtomicU64,
) -> Timing {
    let prompt = chat::prompt(&uuid::Uuid::new_v4().simple().to_string(), 5);
    match (path, client) {
        (Path::Ws, Client::Ws(socket)) => {
            let message = ws::chat_message(&prompt, &ctx.common.model);
            chat::ws_chat(socket, &message, timeout, |event, _| {
                if event.kind == "text_chunk" {
                    chunks.fetch_add(1, Ordering::Relaxed);
                }
                None
            })
            .await
        }
        (path, client) => {
            // The SSE paths count after the fact: fine for a rate over tens of seconds of
            // short chats, which is what they are here.
            let (_, t) = pool::chat(ctx, client, path, 5, None, timeout).await;
            chunks.fetch_add(t.chunks, Ordering::Relaxed);
            t
        }
    }
}
