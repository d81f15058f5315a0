//! `soak`: steady load for minutes, with the resident memory of every process read before,
//! every `--sample-secs` and after, and latency per window, to show drift.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::Report;
use crate::chat::{self, Path, Timing};
use crate::context::Ctx;
use crate::pool::{self, Client};
use crate::procs::Snapshot;
use crate::stats::{Latency, round3};
use crate::ws;

/// Options of `soak`.
#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// Minutes of steady load after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Chats started per second, spread over the connections.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// WebSocket connections carrying the load.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Seconds of the same load before the "before" reading (allocators and pools warm up).
    #[arg(long, default_value_t = 60)]
    pub warmup_secs: u64,
    /// Seconds between readings.
    #[arg(long, default_value_t = 30)]
    pub sample_secs: u64,
    /// A connection starts a new session after this many turns (bounded history, as users do).
    #[arg(long, default_value_t = 10)]
    pub turns_per_session: u64,
    /// Processes whose drift is the headline figure (comma-separated names of `--proc`).
    #[arg(long, value_delimiter = ',', default_value = "gateway,worker")]
    pub drift_of: Vec<String>,
    /// Longest a chat may take, seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

/// Runs `soak`.
pub async fn run(ctx: &Ctx, args: &SoakArgs) -> anyhow::Result<Report> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let cold = ctx.watch.snapshot().await;
    let (clients, connect_errors) = pool::open(ctx, Path::Ws, args.connections, 100).await;
    anyhow::ensure!(
        !clients.is_empty(),
        "no client connected: {connect_errors:?}"
    );
    let n = clients.len();
    let start = Instant::now();
    let warm_at = start + Duration::from_secs(args.warmup_secs);
    let end = warm_at + Duration::from_secs_f64(args.minutes * 60.0);
    let period = Duration::from_secs_f64(n as f64 / args.rate.max(0.001));
    let samples: Arc<Mutex<Vec<(f64, Timing)>>> = Arc::new(Mutex::new(Vec::new()));
    let late = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(n);
    for (i, client) in clients.into_iter().enumerate() {
        let (ctx, args, samples, late) = (ctx.clone(), args.clone(), samples.clone(), late.clone());
        let offset = period.mul_f64(i as f64 / n as f64);
        tasks.push(tokio::spawn(async move {
            let Client::Ws(mut socket) = client else {
                return;
            };
            let mut next = start + offset;
            let mut turn = 0u64;
            while next < end {
                tokio::time::sleep_until(next.into()).await;
                let mut message = ws::chat_message(
                    &chat::prompt(&Uuid::new_v4().simple().to_string(), 20),
                    &ctx.common.model,
                );
                if turn > 0 && turn.is_multiple_of(args.turns_per_session.max(1)) {
                    message["session_id"] = json!(Uuid::now_v7());
                }
                turn += 1;
                let t = chat::ws_chat(&mut socket, &message, timeout, |_, _| None).await;
                // Negative during the warm-up: those chats are not measured.
                let done_at = Instant::now()
                    .checked_duration_since(warm_at)
                    .map_or(-1.0, |d| d.as_secs_f64());
                let broken = t.outcome == "closed";
                samples.lock().await.push((done_at, t));
                if broken {
                    return;
                }
                next += period;
                let now = Instant::now();
                if now > next + period {
                    // Behind by more than one turn: the system cannot keep the rate.
                    late.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    next = now;
                }
            }
        }));
    }

    tokio::time::sleep_until(warm_at.into()).await;
    let warm = ctx.watch.snapshot().await;
    let mut readings: Vec<(f64, Snapshot)> = vec![(0.0, warm.clone())];
    let step = Duration::from_secs(args.sample_secs.max(1));
    let mut at = warm_at + step;
    while at < end {
        tokio::time::sleep_until(at.into()).await;
        readings.push((warm_at.elapsed().as_secs_f64(), ctx.watch.snapshot().await));
        at += step;
    }
    tokio::time::sleep_until(end.into()).await;
    let last = ctx.watch.snapshot().await;
    readings.push((warm_at.elapsed().as_secs_f64(), last.clone()));
    for t in tasks {
        let _ = tokio::time::timeout(timeout, t).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = ctx.watch.snapshot().await;

    let samples = std::mem::take(&mut *samples.lock().await);
    let windows = windows(&samples, args.sample_secs.max(1) as f64)?;
    let measured: Vec<&Timing> = samples
        .iter()
        .filter(|(at, _)| *at >= 0.0)
        .map(|(_, t)| t)
        .collect();
    let ok: Vec<&&Timing> = measured.iter().filter(|t| t.outcome == "ok").collect();
    let ttft = Latency::of(ok.iter().filter_map(|t| t.ttft))?;
    let total = Latency::of(ok.iter().filter_map(|t| t.total))?;
    let errors = pool::error_counts(measured.iter().copied());

    let mut drift = serde_json::Map::new();
    let mut headline: f64 = 0.0;
    for name in warm
        .rss_mib()
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let before = warm.get(&name).map(|r| r.rss_kib).unwrap_or(0) as f64;
        let after = last.get(&name).map(|r| r.rss_kib).unwrap_or(0) as f64;
        let percent = if before > 0.0 {
            (after - before) / before * 100.0
        } else {
            0.0
        };
        if args.drift_of.iter().any(|d| name.starts_with(d.as_str())) {
            headline = headline.max(percent);
        }
        drift.insert(name, json!(round3(percent)));
    }
    let series: Vec<Value> = readings
        .iter()
        .map(|(t, s)| json!({"at_secs": round3(*t), "rss_mib": s.rss_mib()}))
        .collect();
    let summary = vec![
        format!(
            "soak: {:.1} min at {} chats/s on {n} connections: {} chats, errors {errors:?}, late {}",
            args.minutes,
            args.rate,
            measured.len(),
            late.load(std::sync::atomic::Ordering::Relaxed)
        ),
        format!("  ttft  {}", ttft.line()),
        format!("  total {}", total.line()),
        format!("  RSS before (after warm-up) {}", warm.rss_mib()),
        format!("  RSS after                  {}", last.rss_mib()),
        format!(
            "  RSS drift % {} (headline, max of {:?}: {headline:.2} %)",
            Value::Object(drift.clone()),
            args.drift_of
        ),
        format!("  cpu   {}", warm.cpu_line(&last)),
    ];
    let result = json!({
        "kind": "soak",
        "minutes": args.minutes,
        "rate": args.rate,
        "connections": n,
        "chats": measured.len(),
        "errors": errors,
        "late": late.load(std::sync::atomic::Ordering::Relaxed),
        "ttft": ttft.summary(),
        "total": total.summary(),
        "rss_cold_mib": cold.rss_mib(),
        "rss_before_mib": warm.rss_mib(),
        "rss_after_mib": last.rss_mib(),
        "rss_idle_after_mib": idle.rss_mib(),
        "rss_drift_percent": drift,
        "rss_drift_headline_percent": round3(headline),
        "drift_of": args.drift_of,
        "rss_series": series,
        "windows": windows,
        "processes": warm.usage_until(&last),
    });
    Ok(Report::new(result, summary))
}

/// Latency per window of `width` seconds after the warm-up (by completion time).
fn windows(samples: &[(f64, Timing)], width: f64) -> anyhow::Result<Vec<Value>> {
    let count = samples
        .iter()
        .filter(|(at, _)| *at >= 0.0)
        .map(|(at, _)| (at / width) as usize + 1)
        .max()
        .unwrap_or(0);
    let mut out = Vec::with_capacity(count);
    for w in 0..count {
        let (lo, hi) = (w as f64 * width, (w + 1) as f64 * width);
        let inside: Vec<&Timing> = samples
            .iter()
            .filter(|(at, _)| *at >= lo && *at < hi)
            .map(|(_, t)| t)
            .collect();
        let ok: Vec<&&Timing> = inside.iter().filter(|t| t.outcome == "ok").collect();
        let ttft = Latency::of(ok.iter().filter_map(|t| t.ttft))?;
        let total = Latency::of(ok.iter().filter_map(|t| t.total))?;
        out.push(json!({
            "from_secs": lo,
            "chats": inside.len(),
            "errors": inside.len() - ok.len(),
            "ttft_p50_ms": round3(ttft.quantile_ms(0.5)),
            "ttft_p99_ms": round3(ttft.quantile_ms(0.99)),
            "total_p99_ms": round3(total.quantile_ms(0.99)),
        }));
    }
    Ok(out)
}
