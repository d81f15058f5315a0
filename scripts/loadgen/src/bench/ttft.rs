//! `ttft`: time to first token and total time of streamed chats through one path, at a fixed
//! number of concurrent streams; with a breakdown of where the time goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::sync::{Barrier, Mutex};

use crate::Report;
use crate::chat::{Path, Timing};
use crate::context::Ctx;
use crate::pool;
use crate::sim;
use crate::stats::{Latency, mean, round3};

/// Options of `ttft`.
#[derive(Args, Debug, Clone)]
pub struct TtftArgs {
    /// The path: `direct` (the simulator itself), `ws` or `openai` (through the gateway).
    #[arg(long, value_enum)]
    pub target: Path,
    /// Concurrent streams (clients, each running one chat after another).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Recorded chats in all (after the warm-up).
    #[arg(long, default_value_t = 100)]
    pub requests: usize,
    /// Unrecorded warm-up chats per client.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Words per prompt.
    #[arg(long, default_value_t = 20)]
    pub prompt_words: usize,
    /// Longest a chat may take before it counts as a timeout, seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// WebSockets opened at once while connecting.
    #[arg(long, default_value_t = 200)]
    pub connect_parallelism: usize,
    /// How the clients' first recorded chats arrive: `spread` evenly over one chat's length
    /// (steady concurrency), or all at once in a `burst` (identical chats then keep the clients
    /// in lock-step waves for the whole run).
    #[arg(long, value_enum, default_value_t = Arrivals::Spread)]
    pub arrivals: Arrivals,
    /// The chat's `settings` (a JSON object), for the `ws` target: e.g.
    /// `{"semantic":{"enabled":true}}`.
    #[arg(long, value_parser = parse_settings)]
    pub settings: Option<Value>,
    /// A name for this run's setup, kept with the result and shown in the tables (`semantic`,
    /// `no-indexing`, ...).
    #[arg(long)]
    pub tag: Option<String>,
}

fn parse_settings(raw: &str) -> Result<Value, String> {
    match serde_json::from_str(raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err("settings must be a JSON object".into()),
    }
}

/// When the clients send their first recorded chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Client `i` of `n` waits `i/n` of its warm-up chat's length first.
    Spread,
    /// Every client starts at once.
    Burst,
}

/// Runs `ttft`.
pub async fn run(ctx: &Ctx, args: &TtftArgs) -> anyhow::Result<Report> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let (clients, connect_errors) =
        pool::open(ctx, args.target, args.concurrency, args.connect_parallelism).await;
    anyhow::ensure!(
        !clients.is_empty(),
        "no client connected: {connect_errors:?}"
    );
    let n = clients.len();
    let barrier = Arc::new(Barrier::new(n + 1));
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<(String, Timing)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::with_capacity(n);
    for (i, mut client) in clients.into_iter().enumerate() {
        let (ctx, args) = (ctx.clone(), args.clone());
        let (barrier, next, results) = (barrier.clone(), next.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let mut chat_length = Duration::ZERO;
            for _ in 0..args.warmup {
                let started = Instant::now();
                pool::chat(
                    &ctx,
                    &mut client,
                    args.target,
                    args.prompt_words,
                    args.settings.as_ref(),
                    timeout,
                )
                .await;
                chat_length = started.elapsed();
            }
            barrier.wait().await;
            if args.arrivals == Arrivals::Spread {
                tokio::time::sleep(chat_length.mul_f64(i as f64 / n as f64)).await;
            }
            while next.fetch_add(1, Ordering::Relaxed) < args.requests {
                let r = pool::chat(
                    &ctx,
                    &mut client,
                    args.target,
                    args.prompt_words,
                    args.settings.as_ref(),
                    timeout,
                )
                .await;
                results.lock().await.push(r);
            }
        }));
    }
    barrier.wait().await;
    let before = ctx.watch.snapshot().await;
    let started = Instant::now();
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed();
    let after = ctx.watch.snapshot().await;
    let results = std::mem::take(&mut *results.lock().await);

    let ok: Vec<&Timing> = results
        .iter()
        .map(|(_, t)| t)
        .filter(|t| t.outcome == "ok")
        .collect();
    let ttft = Latency::of(ok.iter().filter_map(|t| t.ttft))?;
    let total = Latency::of(ok.iter().filter_map(|t| t.total))?;
    let text_done = Latency::of(ok.iter().filter_map(|t| t.text_done))?;
    let chunks: Vec<f64> = ok.iter().map(|t| t.chunks as f64).collect();
    let breakdown = match sim::records_by_marker(&ctx.http, ctx.sim()).await {
        Ok(records) => breakdown(args.target, &results, &records)?,
        Err(e) => json!({"unavailable": e.to_string()}),
    };
    let errors = pool::error_counts(results.iter().map(|(_, t)| t));
    let summary = vec![
        format!(
            "ttft {:?}{} c={} n={} ok={} errors={:?} connect_errors={:?}",
            args.target,
            args.tag
                .as_ref()
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default(),
            n,
            results.len(),
            ok.len(),
            errors,
            connect_errors
        ),
        format!("  ttft  {}", ttft.line()),
        format!("  total {}", total.line()),
        format!("  cpu   {}", before.cpu_line(&after)),
    ];
    let result = json!({
        "kind": "ttft",
        "target": args.target,
        "tag": args.tag,
        "settings": args.settings,
        "concurrency": args.concurrency,
        "arrivals": args.arrivals,
        "connected": n,
        "requests": results.len(),
        "ok": ok.len(),
        "errors": errors,
        "connect_errors": connect_errors,
        "ttft": ttft.summary(),
        "total": total.summary(),
        "text_completed": text_done.summary(),
        "chunks_per_chat": mean(&chunks).map(round3),
        "chats_per_sec": round3(results.len() as f64 / elapsed.as_secs_f64()),
        "duration_secs": round3(elapsed.as_secs_f64()),
        "processes": before.usage_until(&after),
        "breakdown": breakdown,
    });
    Ok(Report::new(result, summary))
}

/// Where the time of a chat goes, from the client's clock, the event ids (Redis' clock, ms) and
/// the simulator's log (µs): mean and p50 of each segment in ms. Event ids have 1 ms resolution,
/// so single segments are ±1 ms; the means over many chats are what to read.
fn breakdown(
    path: Path,
    results: &[(String, Timing)],
    records: &std::collections::HashMap<String, sim::SimRecord>,
) -> anyhow::Result<Value> {
    let mut segments: Vec<(&str, Vec<f64>)> = match path {
        Path::Ws => vec![
            ("send_to_working", vec![]),
            ("working_to_model_in_use", vec![]),
            ("model_in_use_to_provider_request", vec![]),
            ("provider_request_to_first_chunk_stored", vec![]),
            ("first_chunk_stored_to_client", vec![]),
            ("text_completed_to_complete", vec![]),
        ],
        Path::Direct | Path::Openai => vec![("send_to_provider_request", vec![])],
    };
    for (marker, t) in results.iter().filter(|(_, t)| t.outcome == "ok") {
        let sent = t.sent_unix_us as f64 / 1000.0;
        let sim_at = records
            .get(marker)
            .and_then(|r| r.received_at_unix_us)
            .map(|us| us as f64 / 1000.0);
        let m = &t.marks;
        let f = |x: Option<u64>| x.map(|v| v as f64);
        let values: Vec<Option<f64>> = match path {
            Path::Ws => vec![
                f(m.working).map(|w| w - sent),
                f(m.model_in_use).zip(f(m.working)).map(|(b, a)| b - a),
                sim_at.zip(f(m.model_in_use)).map(|(b, a)| b - a),
                f(m.first_chunk).zip(sim_at).map(|(b, a)| b - a),
                m.first_chunk_seen_unix_us
                    .map(|us| us as f64 / 1000.0)
                    .zip(f(m.first_chunk))
                    .map(|(b, a)| b - a),
                f(m.complete).zip(f(m.text_completed)).map(|(b, a)| b - a),
            ],
            Path::Direct | Path::Openai => vec![sim_at.map(|s| s - sent)],
        };
        for ((_, list), v) in segments.iter_mut().zip(values) {
            if let Some(v) = v {
                list.push(v);
            }
        }
    }
    let mut out = serde_json::Map::new();
    for (name, list) in segments {
        let p50 = Latency::of_ms(list.iter().copied())?;
        out.insert(
            name.to_owned(),
            json!({"mean_ms": mean(&list).map(round3), "p50_ms": round3(p50.quantile_ms(0.5)), "n": list.len()}),
        );
    }
    Ok(Value::Object(out))
}
