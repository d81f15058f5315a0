//! `cancel`: from the client's `cancel` to the provider seeing its request closed, measured on
//! the simulator's log (its wall-clock `closed_at_unix_us` against the client's send time).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::Report;
use crate::chat::{self, Path, unix_us};
use crate::context::Ctx;
use crate::pool::{self, Client};
use crate::sim;
use crate::stats::Latency;
use crate::ws;

/// Options of `cancel`.
#[derive(Args, Debug, Clone)]
pub struct CancelArgs {
    /// Concurrent WebSocket clients.
    #[arg(long, default_value_t = 20)]
    pub concurrency: usize,
    /// Chats cancelled in all.
    #[arg(long, default_value_t = 500)]
    pub requests: usize,
    /// Text chunks received before the client cancels.
    #[arg(long, default_value_t = 3)]
    pub after_chunks: u64,
    /// Longest a chat may take, seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

/// One cancelled chat as the client saw it.
struct Cancelled {
    marker: String,
    /// When `cancel` went out, µs since the epoch.
    sent_unix_us: Option<u64>,
    /// From `cancel` sent to the `cancelled` event received.
    to_event: Option<Duration>,
    outcome: String,
}

/// Runs `cancel` against a simulator whose replies are long (many paced chunks).
pub async fn run(ctx: &Ctx, args: &CancelArgs) -> anyhow::Result<Report> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let (clients, connect_errors) = pool::open(ctx, Path::Ws, args.concurrency, 100).await;
    anyhow::ensure!(
        !clients.is_empty(),
        "no client connected: {connect_errors:?}"
    );
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<Cancelled>>> = Arc::new(Mutex::new(Vec::new()));
    let before = ctx.watch.snapshot().await;
    let mut tasks = Vec::new();
    for client in clients {
        let (ctx, args) = (ctx.clone(), args.clone());
        let (next, results) = (next.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let Client::Ws(mut socket) = client else {
                return;
            };
            while next.fetch_add(1, Ordering::Relaxed) < args.requests {
                let marker = Uuid::new_v4().simple().to_string();
                let prompt = chat::prompt(&marker, 5);
                let mut sent: Option<(u64, Instant)> = None;
                let mut to_event = None;
                let message = ws::chat_message(&prompt, &ctx.common.model);
                let t = chat::ws_chat(&mut socket, &message, timeout, |e, t| {
                    if e.kind == "cancelled" {
                        to_event = sent.map(|(_, at)| at.elapsed());
                    }
                    if sent.is_none() && t.chunks >= args.after_chunks {
                        sent = Some((unix_us(), Instant::now()));
                        return Some(json!({"type": "cancel"}));
                    }
                    None
                })
                .await;
                let failed = t.outcome != "ok" && t.outcome != "closed";
                results.lock().await.push(Cancelled {
                    marker,
                    sent_unix_us: sent.map(|(us, _)| us),
                    to_event,
                    outcome: t.outcome,
                });
                if failed {
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let after = ctx.watch.snapshot().await;
    let results = std::mem::take(&mut *results.lock().await);
    let records = sim::records_by_marker(&ctx.http, ctx.sim()).await?;

    let mut upstream = Vec::new();
    let mut problems: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &results {
        if r.outcome != "ok" {
            *problems.entry("chat_failed").or_default() += 1;
        }
        let Some(sent) = r.sent_unix_us else {
            *problems.entry("cancel_not_sent").or_default() += 1;
            continue;
        };
        match records.get(&r.marker) {
            Some(rec) if rec.client_closed => {
                if let Some(closed) = rec.closed_at_unix_us {
                    upstream.push(Duration::from_micros(closed.saturating_sub(sent)));
                }
            }
            Some(rec) if rec.finished => *problems.entry("upstream_finished").or_default() += 1,
            Some(_) => *problems.entry("upstream_still_open").or_default() += 1,
            None => *problems.entry("not_seen_by_provider").or_default() += 1,
        }
        if r.to_event.is_none() {
            *problems.entry("no_cancelled_event").or_default() += 1;
        }
    }
    let upstream = Latency::of(upstream)?;
    let to_event = Latency::of(results.iter().filter_map(|r| r.to_event))?;
    let summary = vec![
        format!(
            "cancel: {} chats, problems {problems:?}, connect errors {connect_errors:?}",
            results.len()
        ),
        format!("  cancel sent → upstream closed  {}", upstream.line()),
        format!("  cancel sent → cancelled event  {}", to_event.line()),
        format!("  cpu   {}", before.cpu_line(&after)),
    ];
    let result = json!({
        "kind": "cancel",
        "concurrency": args.concurrency,
        "requests": results.len(),
        "after_chunks": args.after_chunks,
        "cancel_to_upstream_closed": upstream.summary(),
        "cancel_to_cancelled_event": to_event.summary(),
        "problems": problems,
        "connect_errors": connect_errors,
        "processes": before.usage_until(&after),
    });
    Ok(Report::new(result, summary))
}
