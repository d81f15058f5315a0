//! `fault-abuse`: slow and abusive clients against one gateway while a well-behaved client chats
//! in a loop. Reports the gateway's RSS before, during (peak) and after, and the good client's
//! latency in each phase.
//!
//! Phases: the good client alone (baseline); a login flood ([`login`]: wrong passwords for one
//! account, and a right one in the middle); the other abusers together (after); the good client
//! alone again. The other abusers: WebSocket clients that send chats and never read (with a tiny
//! receive buffer, so the gateway's writes block), half-open connections ([`half_open`]: a
//! partial HTTP request, then silence; to the health-data-service too when `--health` is given),
//! upgraded connections that never authenticate, a flood of connections with invalid tokens, and
//! oversized frames ([`clients`]).

mod clients;
mod half_open;
mod login;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::Report;
use crate::chat::{self, Timing};
use crate::context::Ctx;
use crate::procs;
use crate::stats::{Latency, round3};
use crate::ws::{self, Ws};
use clients::Counters;
use half_open::Release;
pub use login::LoginArgs;
use login::{Flood, GoodLogin};

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
    /// TCP connections to the gateway that send a partial upgrade request and stop.
    #[arg(long, default_value_t = 1000)]
    pub half_open: usize,
    /// Pass when the server closes every half-open connection within this many seconds of its
    /// connecting (the header read timeout, 10 s by default, plus a margin).
    #[arg(long, default_value_t = 30)]
    pub half_open_release_secs: u64,
    /// The health-data-service's base URL; when given, it gets half-open connections too.
    #[arg(long, env = "LOADGEN_HEALTH")]
    pub health: Option<String>,
    /// Half-open connections to the health-data-service (a partial `GET /health`).
    #[arg(long, default_value_t = 1000)]
    pub health_half_open: usize,
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
    /// Pass when the gateway's RSS after the abuse is at most this much above where it was when
    /// the abuse started (and after the login flood, above where it was before it), MiB.
    #[arg(long, default_value_t = 64.0)]
    pub max_rss_growth_mib: f64,
    /// Pass when the gateway's peak RSS stays below this, MiB.
    #[arg(long, default_value_t = 1024.0)]
    pub max_rss_mib: f64,
    /// Pass when the good client's p99 total during the abuse is at most this times the baseline
    /// p99 (or baseline + 250 ms, whichever is larger).
    #[arg(long, default_value_t = 5.0)]
    pub max_latency_factor: f64,
    /// The login flood.
    #[command(flatten)]
    pub login: LoginArgs,
}

const BASELINE: u8 = 0;
const LOGIN: u8 = 1;
const ABUSE: u8 = 2;
const AFTER: u8 = 3;
const PHASES: [(u8, &str); 4] = [
    (BASELINE, "baseline"),
    (LOGIN, "login_flood"),
    (ABUSE, "abuse"),
    (AFTER, "after"),
];

/// What the login phase found.
struct LoginPhase {
    /// Why the account could not be registered, if it could not.
    register_error: Option<String>,
    flood: Flood,
    good: GoodLogin,
    rss_before: f64,
    rss_after: f64,
}

/// Runs `fault-abuse`; the gateway must be watched as `--proc gateway=<pid>`.
pub async fn run(ctx: &Ctx, args: &AbuseArgs) -> anyhow::Result<Report> {
    let gateway = ctx
        .watch
        .pid("gateway")
        .context("fault-abuse needs --proc gateway=<pid>")?;
    let addr = host_port(ctx.gateway());
    let phase = Arc::new(AtomicU8::new(BASELINE));
    let done = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let login_http = login::client()?;
    // The flood's account exists before anything is measured.
    let account = if args.login.login_flood > 0 {
        Some(login::register(&login_http, ctx.gateway()).await)
    } else {
        None
    };

    // RSS, every 250 ms, with the peak per phase.
    let rss_series: Arc<Mutex<Vec<(u8, f64)>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (phase, done, series) = (phase.clone(), done.clone(), rss_series.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let rss = rss_mib(gateway);
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
    let rss_before = rss_mib(gateway);
    tokio::time::sleep(Duration::from_secs(args.baseline_secs)).await;

    let login = match account {
        Some(account) => {
            phase.store(LOGIN, Ordering::Relaxed);
            Some(login_phase(ctx, &args.login, gateway, &login_http, account).await?)
        }
        None => None,
    };

    phase.store(ABUSE, Ordering::Relaxed);
    let abuse_start = ctx.watch.snapshot().await;
    // What the abuse phase adds is measured from here: the login phase may have kept memory
    // (password hashing threads keep their Argon2 blocks).
    let rss_abuse_start = rss_mib(gateway);
    let abuse_end = Instant::now() + Duration::from_secs(args.abuse_secs);
    let stop_abuse = Arc::new(AtomicBool::new(false));
    let mut abusers = Vec::new();
    for _ in 0..args.slow {
        let (ctx, c, stop) = (ctx.clone(), counters.clone(), stop_abuse.clone());
        let addr = addr.clone();
        abusers.push(tokio::spawn(async move {
            clients::slow_reader(&ctx, &addr, &c, &stop).await
        }));
    }
    {
        let (ctx, c, stop) = (ctx.clone(), counters.clone(), stop_abuse.clone());
        let n = args.silent;
        abusers.push(tokio::spawn(async move {
            clients::silent(&ctx, n, &c, &stop).await
        }));
    }
    {
        let (ctx, c, stop) = (ctx.clone(), counters.clone(), stop_abuse.clone());
        let rate = args.invalid_rate;
        abusers.push(tokio::spawn(async move {
            clients::invalid_flood(&ctx, rate, &c, &stop).await
        }));
    }
    {
        let (ctx, c, stop) = (ctx.clone(), counters.clone(), stop_abuse.clone());
        let (n, bytes, secs) = (args.oversized, args.oversized_bytes, args.abuse_secs);
        abusers.push(tokio::spawn(async move {
            clients::oversized(&ctx, n, bytes, secs, &c, &stop).await;
        }));
    }
    // Half-open connections: held through the abuse, and until each has been open for the bound.
    let bound = Duration::from_secs(args.half_open_release_secs);
    let hard_end = abuse_end + bound + Duration::from_secs(30);
    let mut half_open = vec![tokio::spawn(half_open::hold(
        "gateway",
        addr.clone(),
        format!(
            "GET /chat/ws?token={} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
            ctx.token
        ),
        args.half_open,
        bound,
        stop_abuse.clone(),
        hard_end,
    ))];
    if let Some(health) = args.health.as_deref().filter(|_| args.health_half_open > 0) {
        let health = host_port(health);
        half_open.push(tokio::spawn(half_open::hold(
            "health",
            health.clone(),
            format!("GET /health HTTP/1.1\r\nHost: {health}\r\nAccept: */*\r\n"),
            args.health_half_open,
            bound,
            stop_abuse.clone(),
            hard_end,
        )));
    }
    tokio::time::sleep_until(abuse_end.into()).await;
    let during = ctx.watch.snapshot().await;
    stop_abuse.store(true, Ordering::Relaxed);
    for a in abusers {
        let _ = tokio::time::timeout(Duration::from_secs(10), a).await;
    }
    let mut released: Vec<Release> = Vec::new();
    for h in half_open {
        released.push(h.await.context("a half-open watcher failed")?);
    }
    phase.store(AFTER, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let rss_after = rss_mib(gateway);
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
    let mut p99 = [0.0_f64; PHASES.len()];
    let mut good_errors = [0u64; PHASES.len()];
    for (p, name) in PHASES {
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
    let mut checks: Vec<(String, bool)> = vec![
        (
            "good client served during abuse without errors".into(),
            good_errors[ABUSE as usize] == 0 && good.iter().any(|(p, _)| *p == ABUSE),
        ),
        (
            "good client p99 within limit".into(),
            p99[ABUSE as usize] <= latency_limit,
        ),
        (
            "gateway RSS peak bounded".into(),
            rss_peak <= args.max_rss_mib,
        ),
        (
            "gateway RSS returns after abuse".into(),
            rss_after - rss_abuse_start <= args.max_rss_growth_mib,
        ),
        (
            "no oversized frame accepted".into(),
            counters.oversized_accepted() == 0,
        ),
    ];
    let mut line = format!(
        "gateway RSS before {rss_before:.1} MiB, at abuse start {rss_abuse_start:.1} MiB, peak {rss_peak:.1} MiB, after {rss_after:.1} MiB; good client p99 total {:.0} / {:.0} / {:.0} / {:.0} ms (baseline / login flood / abuse / after), errors {:?}",
        p99[0], p99[1], p99[2], p99[3], good_errors
    );
    let login_json = match &login {
        Some(l) => {
            let login_peak = peak(LOGIN);
            let a = &args.login;
            checks.extend([
                (
                    format!(
                        "login flood: gateway RSS peak below {:.0} MiB",
                        a.login_max_rss_mib
                    ),
                    login_peak < a.login_max_rss_mib,
                ),
                (
                    format!(
                        "login flood: gateway RSS after within {:.0} MiB of before",
                        args.max_rss_growth_mib
                    ),
                    l.rss_after - l.rss_before <= args.max_rss_growth_mib,
                ),
                (
                    "login flood: no 5xx answer".into(),
                    l.flood.server_errors() == 0,
                ),
                (
                    "login flood: right-password login succeeded".into(),
                    l.good.ok,
                ),
            ]);
            line.push_str(&format!("; {}", login_line(l, login_peak)));
            let mut j = l.flood.json();
            if let Some(map) = j.as_object_mut() {
                map.insert("register_error".into(), l.register_error.clone().into());
                map.insert("gateway_rss_before_mib".into(), round3(l.rss_before).into());
                map.insert("gateway_rss_peak_mib".into(), round3(login_peak).into());
                map.insert("gateway_rss_after_mib".into(), round3(l.rss_after).into());
                map.insert("good_login".into(), l.good.json());
            }
            j
        }
        None => Value::Null,
    };
    let mut half_open_json = serde_json::Map::new();
    for r in &released {
        let who = if r.service == "gateway" {
            "the gateway"
        } else {
            "the health-data-service"
        };
        checks.push((
            format!(
                "half-open connections closed by {who} within {} s",
                r.bound.as_secs()
            ),
            r.released(),
        ));
        line.push_str(&format!("; {}", r.line()));
        half_open_json.insert(r.service.into(), r.json());
    }
    if args.health.is_none() {
        half_open_json.insert("health".into(), "not measured (no --health)".into());
    }
    let passed = checks.iter().all(|(_, ok)| *ok);
    let abusers_json = counters.json();
    let mut summary = vec![
        format!("fault-abuse: {line}"),
        format!("  abusers {abusers_json}"),
    ];
    for (name, ok) in &checks {
        summary.push(format!("  [{}] {name}", if *ok { "ok" } else { "FAIL" }));
    }
    summary.push(format!(
        "  cpu during abuse {}",
        abuse_start.cpu_line(&during)
    ));
    let result = json!({
        "kind": "fault_abuse",
        "summary": line,
        "gateway_rss_before_mib": round3(rss_before),
        "gateway_rss_abuse_start_mib": round3(rss_abuse_start),
        "gateway_rss_peak_mib": round3(rss_peak),
        "gateway_rss_after_mib": round3(rss_after),
        "good_client": per_phase,
        "login_flood": login_json,
        "half_open": half_open_json,
        "abusers": abusers_json,
        "checks": checks.iter().map(|(n, ok)| json!({"check": n, "ok": ok})).collect::<Vec<_>>(),
        "processes_login_flood": before.usage_until(&abuse_start),
        "processes_during": abuse_start.usage_until(&during),
        "processes_after": during.usage_until(&after),
    });
    Ok(Report {
        result,
        summary,
        passed,
    })
}

/// Floods `account` with wrong passwords, logs in with the right one in the middle, waits
/// `login_settle_secs`, and reads the gateway's RSS before and after.
async fn login_phase(
    ctx: &Ctx,
    args: &LoginArgs,
    gateway: u32,
    http: &reqwest::Client,
    account: anyhow::Result<login::Account>,
) -> anyhow::Result<LoginPhase> {
    let rss_before = rss_mib(gateway);
    let sent = Arc::new(AtomicU64::new(0));
    let email = account
        .as_ref()
        .map_or("unregistered@loadgen.example.com", |a| a.email())
        .to_owned();
    let flood = {
        let (http, url, args, sent) = (
            http.clone(),
            ctx.gateway().to_owned(),
            args.clone(),
            sent.clone(),
        );
        tokio::spawn(async move { login::flood(&http, &url, &email, &args, gateway, sent).await })
    };
    let good = match &account {
        Ok(account) => {
            // Once the first wave is in flight, so that the login meets the flood.
            let wave = args.login_concurrency.min(args.login_flood) as u64;
            let until = Instant::now() + Duration::from_secs(5);
            while sent.load(Ordering::Relaxed) < wave && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let bound = Duration::from_secs(args.good_login_secs);
            login::good_login(http, ctx.gateway(), account, bound).await
        }
        Err(_) => GoodLogin::default(),
    };
    let flood = flood.await.context("the login flood failed")?;
    tokio::time::sleep(Duration::from_secs(args.login_settle_secs)).await;
    Ok(LoginPhase {
        register_error: account.err().map(|e| format!("{e:#}")),
        flood,
        good,
        rss_before,
        rss_after: rss_mib(gateway),
    })
}

/// The login phase in one line.
fn login_line(l: &LoginPhase, peak: f64) -> String {
    let f = &l.flood;
    let j = f.json();
    let good = if l.good.ok {
        format!(
            "right-password login ok after {} attempt(s), {:.1} s",
            l.good.attempts.len(),
            l.good.took.as_secs_f64()
        )
    } else if let Some(e) = &l.register_error {
        format!("no account: {e}")
    } else {
        format!(
            "right-password login FAILED ({})",
            l.good.attempts.join(", ")
        )
    };
    format!(
        "login flood {} × wrong password ({} at once): 401 ×{}, 429 ×{}, other {} (5xx {}); {} sent, {} answered in {:.1} s{}; gateway RSS {:.1} / {:.1} / {:.1} MiB (before / peak / after); {good}",
        f.requested,
        f.concurrency,
        j["refused_401"],
        j["limited_429"],
        f.other(),
        f.server_errors(),
        f.sent,
        f.answered(),
        f.took.as_secs_f64(),
        if f.aborted_at_rss {
            " (sending stopped: the gateway's RSS passed the abort bound)"
        } else {
            ""
        },
        l.rss_before,
        peak,
        l.rss_after,
    )
}

/// `host:port` of a base URL.
fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// The gateway's RSS now, MiB (0 when it is gone).
fn rss_mib(pid: u32) -> f64 {
    procs::rss_kib(pid).unwrap_or(0) as f64 / 1024.0
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
