//! The login flood: many `POST /auth/login` with a wrong password for one account, many at once,
//! from the loopback address, and in the middle of it a login with the right password that
//! retries after `Retry-After`, as a real user's client would.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::procs;
use crate::stats::{Latency, round3};

/// Options of the login flood.
#[derive(Args, Debug, Clone)]
pub struct LoginArgs {
    /// Wrong-password logins sent in the login phase (0: no login phase).
    #[arg(long, default_value_t = 400)]
    pub login_flood: usize,
    /// Of which in flight at once.
    #[arg(long, default_value_t = 100)]
    pub login_concurrency: usize,
    /// Seconds the flood may take; a login not answered by then counts as unanswered.
    #[arg(long, default_value_t = 60)]
    pub login_secs: u64,
    /// Seconds the right-password login may take, retries included.
    #[arg(long, default_value_t = 120)]
    pub good_login_secs: u64,
    /// Seconds after the flood before the gateway's RSS is read again.
    #[arg(long, default_value_t = 10)]
    pub login_settle_secs: u64,
    /// Pass when the gateway's RSS stays below this during the flood, MiB.
    #[arg(long, default_value_t = 512.0)]
    pub login_max_rss_mib: f64,
    /// Stop sending logins once the gateway's RSS passes this, MiB: protects the machine from a
    /// gateway without bounds (the check has failed by then anyway).
    #[arg(long, default_value_t = 4096.0)]
    pub login_abort_rss_mib: f64,
}

/// The account the flood aims at.
pub struct Account {
    email: String,
    password: String,
}

/// Registers a new account (and with it a new tenant) for the flood.
pub async fn register(http: &reqwest::Client, gateway: &str) -> anyhow::Result<Account> {
    let id = Uuid::new_v4().simple().to_string();
    let account = Account {
        email: format!("flood-{}@loadgen.example.com", &id[..12]),
        password: format!("right-{id}"),
    };
    let response = http
        .post(format!("{gateway}/auth/register"))
        .json(&json!({"email": account.email, "password": account.password}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .context("POST /auth/register")?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "POST /auth/register answered {status}: {}",
        response.text().await.unwrap_or_default()
    );
    Ok(account)
}

/// An HTTP client that opens a connection per request, as a flood from many sockets would; a
/// pooled connection could also be closed by the server's idle timeout just as it is reused.
pub fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(0)
        .build()
        .context("building the login client")
}

/// What the flood got back.
#[derive(Debug)]
pub struct Flood {
    /// Logins asked for.
    pub requested: usize,
    /// Of which in flight at once.
    pub concurrency: usize,
    /// Logins sent.
    pub sent: u64,
    /// Answers by status (`401`, `429`, …) and failures without one (`timeout`, `error`).
    pub statuses: BTreeMap<String, u64>,
    /// Time to each answer (any status), as [`Latency::summary`].
    pub answer_time: Value,
    /// `Retry-After` of the 429s, seconds.
    pub retry_after: Vec<u64>,
    /// Sending stopped because the gateway's RSS passed the abort bound.
    pub aborted_at_rss: bool,
    /// From the first send to the last answer.
    pub took: Duration,
}

impl Flood {
    fn count(&self, status: &str) -> u64 {
        self.statuses.get(status).copied().unwrap_or(0)
    }

    /// Answered with any HTTP status.
    pub fn answered(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(k, _)| k.parse::<u16>().is_ok())
            .map(|(_, n)| n)
            .sum()
    }

    /// Answered with a 5xx.
    pub fn server_errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(k, _)| k.parse::<u16>().is_ok_and(|s| s >= 500))
            .map(|(_, n)| n)
            .sum()
    }

    /// Neither 401 nor 429 (other statuses, timeouts, connection errors).
    pub fn other(&self) -> u64 {
        self.statuses.values().sum::<u64>() - self.count("401") - self.count("429")
    }

    /// The figures for the result.
    pub fn json(&self) -> Value {
        json!({
            "requested": self.requested,
            "concurrency": self.concurrency,
            "sent": self.sent,
            "answered": self.answered(),
            "refused_401": self.count("401"),
            "limited_429": self.count("429"),
            "other": self.other(),
            "server_errors": self.server_errors(),
            "statuses": self.statuses,
            "answer_time": self.answer_time,
            "retry_after_secs": {
                "min": self.retry_after.iter().min(),
                "max": self.retry_after.iter().max(),
            },
            "aborted_at_rss": self.aborted_at_rss,
            "took_secs": round3(self.took.as_secs_f64()),
        })
    }
}

/// Sends `args.login_flood` wrong-password logins for `account`, `args.login_concurrency` at
/// once, until all are answered or `args.login_secs` have passed; `sent` counts them as they go.
pub async fn flood(
    http: &reqwest::Client,
    gateway: &str,
    email: &str,
    args: &LoginArgs,
    gateway_pid: u32,
    sent: Arc<AtomicU64>,
) -> Flood {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.login_secs);
    let next = Arc::new(AtomicU64::new(0));
    let aborted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = json!({"email": email, "password": "wrong-password-0"}).to_string();
    let url = format!("{gateway}/auth/login");
    let mut workers = Vec::new();
    for _ in 0..args.login_concurrency.max(1) {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        let (next, sent, aborted) = (next.clone(), sent.clone(), aborted.clone());
        let (n, abort_kib) = (args.login_flood as u64, args.login_abort_rss_mib * 1024.0);
        workers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                if procs::rss_kib(gateway_pid).unwrap_or(0) as f64 > abort_kib {
                    aborted.store(true, Ordering::Relaxed);
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                let answer = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .timeout(deadline - now)
                    .send()
                    .await;
                let (status, retry_after) = match answer {
                    Ok(r) => (r.status().as_str().to_owned(), retry_after(&r)),
                    Err(e) if e.is_timeout() => ("timeout".into(), None),
                    Err(_) => ("error".into(), None),
                };
                answers.push(Answer {
                    status,
                    took: now.elapsed(),
                    retry_after,
                });
            }
            answers
        }));
    }
    let mut statuses = BTreeMap::new();
    let mut retry = Vec::new();
    let mut times = Vec::new();
    for w in workers {
        for a in w.await.unwrap_or_default() {
            if a.status.parse::<u16>().is_ok() {
                times.push(a.took);
            }
            *statuses.entry(a.status).or_insert(0) += 1;
            retry.extend(a.retry_after);
        }
    }
    let took = start.elapsed();
    let answer_time = Latency::of(times).map_or(Value::Null, |l| l.summary());
    Flood {
        requested: args.login_flood,
        concurrency: args.login_concurrency,
        sent: sent.load(Ordering::Relaxed),
        statuses,
        answer_time,
        retry_after: retry,
        aborted_at_rss: aborted.load(Ordering::Relaxed),
        took,
    }
}

/// One login of the flood: its status (or `timeout`, `error`), how long it took, `Retry-After`.
struct Answer {
    status: String,
    took: Duration,
    retry_after: Option<u64>,
}

fn retry_after(r: &reqwest::Response) -> Option<u64> {
    r.headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How the right-password login went.
#[derive(Debug, Default)]
pub struct GoodLogin {
    /// It got a token.
    pub ok: bool,
    /// The status (or failure) of each attempt, in order.
    pub attempts: Vec<String>,
    /// From the first attempt to the token (or to giving up).
    pub took: Duration,
    /// Seconds spent waiting as `Retry-After` said.
    pub waited_secs: u64,
}

impl GoodLogin {
    /// The figures for the result.
    pub fn json(&self) -> Value {
        json!({
            "ok": self.ok,
            "attempts": self.attempts,
            "waited_retry_after_secs": self.waited_secs,
            "took_secs": round3(self.took.as_secs_f64()),
        })
    }
}

/// Logs in with the right password; on 429 waits `Retry-After` (1 s when absent) and tries
/// again, for at most `bound` and 50 attempts.
pub async fn good_login(
    http: &reqwest::Client,
    gateway: &str,
    account: &Account,
    bound: Duration,
) -> GoodLogin {
    let start = Instant::now();
    let deadline = start + bound;
    let body = json!({"email": account.email, "password": account.password});
    let mut out = GoodLogin::default();
    for _ in 0..50 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let answer = http
            .post(format!("{gateway}/auth/login"))
            .json(&body)
            .timeout(deadline - now)
            .send()
            .await;
        let wait = match answer {
            Ok(r) => {
                let status = r.status();
                out.attempts.push(status.as_str().to_owned());
                if status.is_success() {
                    let token = r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["data"]["token"].as_str().map(str::to_owned));
                    out.ok = token.is_some();
                    break;
                }
                // Busy (429, 503) is worth another try; any other answer to the right password
                // is wrong and final.
                if !matches!(status.as_u16(), 429 | 503) {
                    break;
                }
                retry_after(&r).unwrap_or(1).clamp(1, 60)
            }
            Err(e) => {
                out.attempts
                    .push(if e.is_timeout() { "timeout" } else { "error" }.into());
                1
            }
        };
        out.waited_secs += wait;
        tokio::time::sleep(
            Duration::from_secs(wait).min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    }
    out.took = start.elapsed();
    out
}

impl Account {
    /// The account's email.
    pub fn email(&self) -> &str {
        &self.email
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_counted_as_refused_limited_and_other() {
        let statuses: BTreeMap<String, u64> =
            [("401", 20), ("429", 370), ("503", 4), ("timeout", 6)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
        let f = Flood {
            requested: 400,
            concurrency: 100,
            sent: 400,
            statuses,
            answer_time: Value::Null,
            retry_after: vec![1, 6],
            aborted_at_rss: false,
            took: Duration::from_secs(1),
        };
        assert_eq!(f.answered(), 394);
        assert_eq!(f.server_errors(), 4);
        assert_eq!(f.other(), 10);
        assert_eq!(f.json()["retry_after_secs"]["max"], 6);
    }
}
