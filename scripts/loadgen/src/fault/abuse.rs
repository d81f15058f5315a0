//! `fault-abuse`: slow and abusive clients against one gateway while a well-behaved client chats
//! in a loop. Reports the gateway's RSS before, during (peak) and after, and the good client's
//! latency in each phase.
//!
//! Abusers: WebSocket clients that send chats and never read (with a tiny receive buffer, so the
//! gateway's writes block), half-open connections (a partial HTTP upgrade, then silence),
//! upgraded connections that never authenticate, a flood of connections with invalid tokens, and
//! oversized frames.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::Report;
use crate::chat::{self, Timing};
use crate::context::Ctx;
use crate::procs;
use crate::stats::{Latency, round3};
use crate::ws::{self, Ws};

/// Options of `fault-abuse`.
#[derive(Args, Debug, Clone)]
pub struct AbuseArgs {
    /// Seconds of the good client alone, before the abuse.
    #[arg(long, default_value_t = 10)]
    pub baseline_secs: u64,
    /// Seconds of abuse.
    #[arg(long, default_value_t = 60)]
    pub abuse_secs: u64,
    /// Seconds after the abusers left, before the last reading.
    #[arg(long, default_value_t = 15)]
    pub settle_secs: u64,
    /// WebSocket clients that chat and never read.
    #[arg(long, default_value_t = 100)]
    pub slow: usize,
    /// TCP connections that send a partial upgrade request and stop.
    #[arg(long, default_value_t = 1000)]
    pub half_open: usize,
    /// Upgraded connections without a token that never send `auth`.
    #[arg(long, default_value_t = 500)]
    pub silent: usize,
    /// Connections with an invalid token per second.
    #[arg(long, default_value_t = 200)]
    pub invalid_rate: u64,
    /// Oversized frames sent (one per connection, spread over the abuse).
    #[arg(long, default_value_t = 100)]
    pub oversized: usize,
    /// Size of an oversized frame, bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub oversized_bytes: usize,
    /// Pass when the gateway's RSS after the abuse is at most this much above before, MiB.
    #[arg(long, default_value_t = 64.0)]
    pub max_rss_growth_mib: f64,
    /// Pass when the gateway's peak RSS stays below this, MiB.
    #[arg(long, default_value_t = 1024.0)]
    pub max_rss_mib: f64,
    /// Pass when the good client's p99 total during the abuse is at most this times the baseline
    /// p99 (or baseline + 250 ms, whichever is larger).
    #[arg(long, default_value_t = 5.0)]
    pub max_latency_factor: f64,
}

const BASELINE: u8 = 0;
const ABUSE: u8 = 1;
const AFTER: u8 = 2;

/// Outcome counters of the abusers.
#[derive(Default)]
struct Counters {
    slow_connected: AtomicU64,
    slow_chats_sent: AtomicU64,
    slow_sends_blocked: AtomicU64,
    half_open_connected: AtomicU64,
    half_open_closed_by_server: AtomicU64,
    silent_connected: AtomicU64,
    silent_closed_by_server: AtomicU64,
    invalid_attempts: AtomicU64,
    invalid_refused: AtomicU64,
    invalid_other: AtomicU64,
    oversized_sent: AtomicU64,
    oversized_closed_1009: AtomicU64,
    oversized_closed_1008: AtomicU64,
    oversized_dropped: AtomicU64,
    oversized_accepted: AtomicU64,
}

/// Runs `fault-abuse`; the gateway must be watched as `--proc gateway=<pid>`.
pub async fn run(ctx: &Ctx, args: &AbuseArgs) -> anyhow::Result<Report> {
    let gateway = ctx
        .watch
        .pid("gateway")
        .context("fault-abuse needs --proc gateway=<pid>")?;
    let addr = ctx
        .gateway()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let phase = Arc::new(AtomicU8::new(BASELINE));
    let done = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());

    // RSS, every 250 ms, with the peak per phase.
    let rss_series: Arc<Mutex<Vec<(u8, f64)>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (phase, done, series) = (phase.clone(), done.clone(), rss_series.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let rss = procs::rss_kib(gateway).unwrap_or(0) as f64 / 1024.0;
                series
                    .lock()
                    .await
                    .push((phase.load(Ordering::Relaxed), rss));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    // The well-behaved client.
    let good: Arc<Mutex<Vec<(u8, Timing)>>> = Arc::new(Mutex::new(Vec::new()));
    let good_task = {
        let (ctx, phase, done, good) = (ctx.clone(), phase.clone(), done.clone(), good.clone());
        tokio::spawn(async move { good_client(&ctx, &phase, &done, &good).await })
    };
    let before = ctx.watch.snapshot().await;
    let rss_before = procs::rss_kib(gateway).unwrap_or(0) as f64 / 1024.0;
    tokio::time::sleep(Duration::from_secs(args.baseline_secs)).await;

    phase.store(ABUSE, Ordering::Relaxed);
    let abuse_end = Instant::now() + Duration::from_secs(args.abuse_secs);
    let stop_abuse = Arc::new(AtomicBool::new(false));
    let mut abusers = Vec::new();
    for _ in 0..args.slow {
        let (ctx, c, stop) = (ctx.clone(), counters.clone(), stop_abuse.clone());
        let addr = addr.clone();
        abusers.push(tokio::spawn(async move {
            slow_reader(&ctx, &addr, &c, &stop).await
        }));
    }
    {
        let (ctx, c, stop, addr) = (
            ctx.clone(),
            counters.clone(),
            stop_abuse.clone(),
            addr.clone(),
        );
        let (half, silent) = (args.half_open, args.silent);
        abusers.push(tokio::spawn(async move {
            half_open(&ctx, &addr, half, silent, &c, &stop).await;
        }));
    }
    {
        let (ctx, c, stop) = (ctx.clone(), counters.clone(), stop_abuse.clone());
        let rate = args.invalid_rate;
        abusers.push(tokio::spawn(async move {
            invalid_flood(&ctx, rate, &c, &stop).await
        }));
    }
    {
        let (ctx, c, stop) = (ctx.clone(), counters.clone(), stop_abuse.clone());
        let (n, bytes, secs) = (args.oversized, args.oversized_bytes, args.abuse_secs);
        abusers.push(tokio::spawn(async move {
            oversized(&ctx, n, bytes, secs, &c, &stop).await;
        }));
    }
    tokio::time::sleep_until(abuse_end.into()).await;
    let during = ctx.watch.snapshot().await;
    stop_abuse.store(true, Ordering::Relaxed);
    for a in abusers {
        let _ = tokio::time::timeout(Duration::from_secs(10), a).await;
    }
    phase.store(AFTER, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let rss_after = procs::rss_kib(gateway).unwrap_or(0) as f64 / 1024.0;
    let after = ctx.watch.snapshot().await;
    done.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(70), good_task).await;
    let _ = sampler.await;

    let series = std::mem::take(&mut *rss_series.lock().await);
    let peak = |p: u8| {
        series
            .iter()
            .filter(|(ph, _)| *ph == p)
            .map(|(_, r)| *r)
            .fold(0.0_f64, f64::max)
    };
    let rss_peak = peak(ABUSE).max(peak(AFTER));
    let good = std::mem::take(&mut *good.lock().await);
    let mut per_phase = serde_json::Map::new();
    let mut p99 = [0.0_f64; 3];
    let mut good_errors = [0u64; 3];
    for (p, name) in [(BASELINE, "baseline"), (ABUSE, "abuse"), (AFTER, "after")] {
        let in_phase: Vec<&Timing> = good
            .iter()
            .filter(|(ph, _)| *ph == p)
            .map(|(_, t)| t)
            .collect();
        let ok: Vec<&&Timing> = in_phase.iter().filter(|t| t.outcome == "ok").collect();
        let total = Latency::of(ok.iter().filter_map(|t| t.total))?;
        let ttft = Latency::of(ok.iter().filter_map(|t| t.ttft))?;
        p99[p as usize] = total.quantile_ms(0.99);
        good_errors[p as usize] = (in_phase.len() - ok.len()) as u64;
        per_phase.insert(
            name.into(),
            json!({"chats": in_phase.len(), "errors": pool_errors(&in_phase), "ttft": ttft.summary(), "total": total.summary()}),
        );
    }
    let latency_limit = (p99[0] * args.max_latency_factor).max(p99[0] + 250.0);
    let checks = [
        (
            "good client served during abuse without errors",
            good_errors[1] == 0 && good.iter().any(|(p, _)| *p == ABUSE),
        ),
        ("good client p99 within limit", p99[1] <= latency_limit),
        ("gateway RSS peak bounded", rss_peak <= args.max_rss_mib),
        (
            "gateway RSS returns after abuse",
            rss_after - rss_before <= args.max_rss_growth_mib,
        ),
        (
            "no oversized frame accepted",
            counters.oversized_accepted.load(Ordering::Relaxed) == 0,
        ),
    ];
    let passed = checks.iter().all(|(_, ok)| *ok);
    let c = &counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let abusers_json = json!({
        "slow_connected": load(&c.slow_connected),
        "slow_chats_sent": load(&c.slow_chats_sent),
        "slow_sends_blocked": load(&c.slow_sends_blocked),
        "half_open_connected": load(&c.half_open_connected),
        "half_open_closed_by_server": load(&c.half_open_closed_by_server),
        "silent_connected": load(&c.silent_connected),
        "silent_closed_by_server": load(&c.silent_closed_by_server),
        "invalid_attempts": load(&c.invalid_attempts),
        "invalid_refused": load(&c.invalid_refused),
        "invalid_other": load(&c.invalid_other),
        "oversized_sent": load(&c.oversized_sent),
        "oversized_closed_1009": load(&c.oversized_closed_1009),
        "oversized_closed_1008": load(&c.oversized_closed_1008),
        "oversized_dropped": load(&c.oversized_dropped),
        "oversized_accepted": load(&c.oversized_accepted),
    });
    let line = format!(
        "gateway RSS before {rss_before:.1} MiB, peak {rss_peak:.1} MiB, after {rss_after:.1} MiB; good client p99 total {:.0} / {:.0} / {:.0} ms (baseline / abuse / after), errors {:?}",
        p99[0], p99[1], p99[2], good_errors
    );
    let mut summary = vec![
        format!("fault-abuse: {line}"),
        format!("  abusers {abusers_json}"),
    ];
    for (name, ok) in &checks {
        summary.push(format!("  [{}] {name}", if *ok { "ok" } else { "FAIL" }));
    }
    summary.push(format!("  cpu during abuse {}", before.cpu_line(&during)));
    let result = json!({
        "kind": "fault_abuse",
        "summary": line,
        "gateway_rss_before_mib": round3(rss_before),
        "gateway_rss_peak_mib": round3(rss_peak),
        "gateway_rss_after_mib": round3(rss_after),
        "good_client": per_phase,
        "abusers": abusers_json,
        "checks": checks.iter().map(|(n, ok)| json!({"check": n, "ok": ok})).collect::<Vec<_>>(),
        "processes_during": before.usage_until(&during),
        "processes_after": during.usage_until(&after),
    });
    Ok(Report {
        result,
        summary,
        passed,
    })
}

fn pool_errors(timings: &[&Timing]) -> BTreeMap<String, u64> {
    crate::pool::error_counts(timings.iter().copied())
}

/// Chats in a loop on one connection (reconnecting when it breaks), tagging each with the phase.
async fn good_client(
    ctx: &Ctx,
    phase: &AtomicU8,
    done: &AtomicBool,
    out: &Mutex<Vec<(u8, Timing)>>,
) {
    let url = ctx.ws_url_with(&ctx.token);
    let mut socket: Option<Ws> = None;
    while !done.load(Ordering::Relaxed) {
        let Some(s) = socket.as_mut() else {
            match ws::connect(&url, Duration::from_secs(10)).await {
                Ok((s, _)) => socket = Some(s),
                Err(e) => {
                    let t = Timing {
                        outcome: format!("connect_{}", chat::short_error(&e)),
                        ..Timing::default()
                    };
                    out.lock().await.push((phase.load(Ordering::Relaxed), t));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            continue;
        };
        let p = phase.load(Ordering::Relaxed);
        let message = ws::chat_message(
            &chat::prompt(&Uuid::new_v4().simple().to_string(), 10),
            &ctx.common.model,
        );
        let t = chat::ws_chat(s, &message, Duration::from_secs(60), |_, _| None).await;
        if t.outcome != "ok" {
            socket = None;
        }
        out.lock().await.push((p, t));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP connection to `addr` with a tiny receive buffer, so unread data backs up at once.
async fn tiny_buffer_tcp(addr: &str) -> anyhow::Result<TcpStream> {
    let sockaddr: std::net::SocketAddr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .context("no address")?;
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    Ok(socket.connect(sockaddr).await?)
}

/// Sends a chat every 200 ms and never reads.
async fn slow_reader(ctx: &Ctx, addr: &str, c: &Counters, stop: &AtomicBool) {
    let Ok(tcp) = tiny_buffer_tcp(addr).await else {
        return;
    };
    let url = ctx.ws_url_with(&ctx.token);
    let Ok((mut socket, _)) =
        tokio_tungstenite::client_async_with_config(url, tcp, Some(ws::small_config())).await
    else {
        return;
    };
    c.slow_connected.fetch_add(1, Ordering::Relaxed);
    while !stop.load(Ordering::Relaxed) {
        let message = ws::chat_message(
            &chat::prompt(&Uuid::new_v4().simple().to_string(), 5),
            &ctx.common.model,
        );
        let sent = tokio::time::timeout(
            Duration::from_secs(1),
            socket.send(Message::text(message.to_string())),
        )
        .await;
        match sent {
            Ok(Ok(())) => c.slow_chats_sent.fetch_add(1, Ordering::Relaxed),
            _ => c.slow_sends_blocked.fetch_add(1, Ordering::Relaxed),
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Opens `half` connections that stop in the middle of the upgrade request and `silent` upgraded
/// connections that never authenticate; holds them and counts those the server closes.
async fn half_open(
    ctx: &Ctx,
    addr: &str,
    half: usize,
    silent: usize,
    c: &Counters,
    stop: &AtomicBool,
) {
    let mut held: Vec<(bool, TcpStream)> = Vec::new();
    let partial = format!(
        "GET /chat/ws?token={} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
        ctx.token
    );
    for _ in 0..half {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Ok(mut s) = TcpStream::connect(addr).await
            && s.write_all(partial.as_bytes()).await.is_ok()
        {
            c.half_open_connected.fetch_add(1, Ordering::Relaxed);
            held.push((true, s));
        }
    }
    let mut silent_held: Vec<Ws> = Vec::new();
    for _ in 0..silent {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let url = ctx.ws_url.clone();
        if let Ok(Ok((s, _))) = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async_with_config(url, Some(ws::small_config()), true),
        )
        .await
        {
            c.silent_connected.fetch_add(1, Ordering::Relaxed);
            silent_held.push(s);
        }
    }
    // Watch for server closes until the abuse ends.
    let mut silent_open: Vec<bool> = vec![true; silent_held.len()];
    while !stop.load(Ordering::Relaxed) {
        for (open, s) in held.iter_mut() {
            if *open {
                let mut buf = [0u8; 512];
                let closed = match s.try_read(&mut buf) {
                    Ok(n) => n == 0,
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                };
                if closed {
                    *open = false;
                    c.half_open_closed_by_server.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for (open, s) in silent_open.iter_mut().zip(silent_held.iter_mut()) {
            if *open {
                // Whatever arrives (an error event, a close) or a read failure means the server
                // acted; a silent connection has nothing else to receive.
                let polled = tokio::time::timeout(Duration::from_millis(1), s.next()).await;
                if let Ok(item) = polled
                    && !matches!(item, Some(Ok(Message::Text(_))))
                {
                    *open = false;
                    c.silent_closed_by_server.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Connects with an invalid token `rate` times a second (at most 256 at once).
async fn invalid_flood(ctx: &Ctx, rate: u64, c: &Arc<Counters>, stop: &AtomicBool) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            continue;
        };
        i += 1;
        // Garbage, a well-formed token signed with another key, and `alg: none`.
        let token = match i % 3 {
            0 => "not-a-token".to_owned(),
            1 => "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl".to_owned(),
            _ => "eyJhbGciOiJub25lIn0.eyJzdWIiOiIwMTkwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJ0ZW5hbnRfaWQiOiIwMTkwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJyb2xlIjoiYWRtaW4iLCJleHAiOjQxMDI0NDQ4MDB9.".to_owned(),
        };
        let url = ctx.ws_url_with(&token);
        let c = c.clone();
        c.invalid_attempts.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let refused = tokio::time::timeout(Duration::from_secs(5), async {
                let (mut s, _) = tokio_tungstenite::connect_async_with_config(
                    url,
                    Some(ws::small_config()),
                    true,
                )
                .await?;
                let e = ws::next_event(&mut s).await?;
                Ok::<_, anyhow::Error>(e.is_some_and(|e| e.error_code() == Some("unauthorized")))
            })
            .await;
            if matches!(refused, Ok(Ok(true))) {
                c.invalid_refused.fetch_add(1, Ordering::Relaxed);
            } else {
                c.invalid_other.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
}

/// How the gateway answered an oversized frame.
enum Refusal {
    Closed(u16),
    Dropped,
    Accepted,
}

/// Sends `n` oversized text frames, each on its own authenticated connection, spread over
/// `secs`; half of them on connections without a token, as the first (`auth`) message.
async fn oversized(ctx: &Ctx, n: usize, bytes: usize, secs: u64, c: &Counters, stop: &AtomicBool) {
    let pause = Duration::from_secs_f64(secs as f64 / n.max(1) as f64);
    let big = format!("{{\"type\":\"chat\",\"prompt\":\"{}\"}}", "x".repeat(bytes));
    for i in 0..n {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let url = if i % 2 == 0 {
            ctx.ws_url_with(&ctx.token)
        } else {
            ctx.ws_url.clone()
        };
        // The server may close (and reset) while the frame is still being sent: a send or read
        // error is a dropped connection, a refusal too. Anything else means it was accepted.
        let outcome = tokio::time::timeout(Duration::from_secs(10), async {
            let (mut s, _) =
                tokio_tungstenite::connect_async_with_config(url, Some(ws::small_config()), true)
                    .await?;
            let sent = s.send(Message::text(big.clone())).await;
            c.oversized_sent.fetch_add(1, Ordering::Relaxed);
            if sent.is_err() {
                return Ok::<_, anyhow::Error>(Refusal::Dropped);
            }
            while let Some(m) = s.next().await {
                match m {
                    Ok(Message::Close(Some(frame))) => {
                        return Ok(Refusal::Closed(u16::from(frame.code)));
                    }
                    Ok(Message::Close(None)) | Err(_) => return Ok(Refusal::Dropped),
                    // `websocket_ready` (sent on connect, before the frame was read), and the
                    // `error` event that comes before the close.
                    Ok(Message::Text(t))
                        if t.as_str().contains("\"websocket_ready\"")
                            || t.as_str().contains("\"error\"") => {}
                    Ok(_) => return Ok(Refusal::Accepted),
                }
            }
            Ok(Refusal::Dropped)
        })
        .await;
        match outcome {
            Ok(Ok(Refusal::Closed(1009))) => {
                c.oversized_closed_1009.fetch_add(1, Ordering::Relaxed)
            }
            // Without a token the frame is the would-be `auth` message: refused as unauthorized.
            Ok(Ok(Refusal::Closed(1008))) => {
                c.oversized_closed_1008.fetch_add(1, Ordering::Relaxed)
            }
            Ok(Ok(Refusal::Dropped)) | Ok(Err(_)) => {
                c.oversized_dropped.fetch_add(1, Ordering::Relaxed)
            }
            Ok(Ok(Refusal::Closed(_) | Refusal::Accepted)) | Err(_) => {
                c.oversized_accepted.fetch_add(1, Ordering::Relaxed)
            }
        };
        tokio::time::sleep(pause).await;
    }
}
