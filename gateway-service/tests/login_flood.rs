//! The unauthenticated endpoints under a flood: password hashing runs on a bounded pool (memory
//! stays flat, overflow is 429 at once), and `/auth/*` is limited per client address and per
//! account. A test binary of its own, so the process's peak memory is this test's alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Opts, System};

/// The process's peak resident memory so far (`VmHWM`), MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

async fn login(
    http: &reqwest::Client,
    system: &System,
    email: &str,
    password: &str,
    from: &str,
) -> (u16, Option<String>, Value) {
    let r = http
        .post(format!("{}/auth/login", system.http))
        .header("x-forwarded-for", from)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_login_flood_keeps_memory_flat_and_is_limited_per_address_and_account() {
    let mut opts = Opts::new();
    opts.gateway.auth.trust_forwarded_for = true;
    opts.gateway.auth.hash_threads =
        std::env::var("FLOOD_THREADS").map_or(2, |v| v.parse().unwrap());
    opts.gateway.auth.hash_queue = 8;
    // First the hashing pool alone: no rate limits.
    opts.gateway.auth.per_address_per_minute = 0;
    opts.gateway.auth.per_account_per_minute = 0;
    let system = System::start(opts.clone()).await;
    let http = reqwest::Client::new();
    let email = format!("victim-{}@example.com", uuid::Uuid::now_v7());
    let r = http
        .post(format!("{}/auth/register", system.http))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    // The probe: 400 wrong logins, 100 at a time. Unbounded, each held 19 MiB at once.
    let before = peak_rss_mib();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let wave = (0..100).map(|_| login(&http, &system, &email, "wrong guess", "10.0.0.1"));
        statuses.extend(
            futures::future::join_all(wave)
                .await
                .into_iter()
                .map(|(s, _, _)| s),
        );
    }
    let grown = peak_rss_mib() - before;
    eprintln!(
        "login flood: before {before:.0} MiB, peak grew {grown:.0} MiB; {}",
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("VmRSS") || l.starts_with("Threads"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "overflow is refused at once");
    assert!(
        grown < 100.0,
        "peak memory grew {grown:.0} MiB under the flood"
    );
    // The right password still works once the flood is over.
    let (status, _, body) =
        login(&http, &system, &email, "correct horse battery", "10.0.0.2").await;
    assert_eq!(status, 200, "{body}");
    system.stop().await;

    // With the limits on: per client address...
    opts.gateway.auth.per_address_per_minute = 60;
    opts.gateway.auth.address_burst = 5;
    opts.gateway.auth.per_account_per_minute = 10;
    opts.gateway.auth.account_burst = 3;
    let system = System::start(opts).await;
    let mut answers = Vec::new();
    for i in 0..6 {
        let other = format!("nobody-{i}@example.com");
        answers.push(login(&http, &system, &other, "wrong guess", "10.0.0.3").await);
    }
    assert!(
        answers[..5].iter().all(|(s, _, _)| *s == 401),
        "{answers:?}"
    );
    let (status, retry, body) = &answers[5];
    assert_eq!(*status, 429, "{body}");
    assert!(
        retry
            .as_deref()
            .is_some_and(|r| r.parse::<u64>().unwrap() >= 1)
    );
    // ...and per account, whatever the address.
    let mut answers = Vec::new();
    for i in 0..4 {
        let from = format!("10.0.1.{i}");
        answers.push(login(&http, &system, &email, "wrong guess", &from).await.0);
    }
    assert_eq!(answers, [401, 401, 401, 429]);
    // Registration from one address is bounded too.
    let mut last = 0;
    for i in 0..6 {
        let r = http
            .post(format!("{}/auth/register", system.http))
            .header("x-forwarded-for", "10.0.2.1")
            .json(
                &json!({"email": format!("new-{i}-{}@example.com", uuid::Uuid::now_v7()),
                "password": "long enough password"}),
            )
            .send()
            .await
            .unwrap();
        last = r.status().as_u16();
    }
    assert_eq!(last, 429);
    system.stop().await;
}
