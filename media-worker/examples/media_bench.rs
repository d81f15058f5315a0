//! The media-worker's figures, in-process against the Redis at `REDIS_URL` (default
//! `redis://127.0.0.1:6379`, a key prefix of its own) and provider-sim:
//!
//! 1. the time a worker adds to an image over the simulated provider (OpenAI's
//!    `/v1/images/generations`, 1024×1024 PNG): the same requests straight to the simulator and
//!    through the worker (publish → `text_completed`, stored on the local disk), p50/p99 at 1 and
//!    20 concurrent;
//! 2. how many video jobs one worker process polls at once: `JOBS` Sora jobs (default 1,000)
//!    each polled `POLLS` times at the simulator's pace (`openai-poll-after-ms`, 1 s), with the
//!    process's resident memory as they run and after;
//! 3. the time from a client's cancel to the provider's cancel call (Sora `DELETE`), p50/p99.
//!
//! `cargo build --release -p media-worker --bin media-worker --example media_bench`, then
//! `target/release/examples/media_bench [JOBS] [POLLS]` (the video part runs the worker binary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use common::Bus;
use common::envelope::DomainAction;
use common::payloads::media::{GENERATE_IMAGE, GENERATE_VIDEO};
use common::settings::Secret;
use common::testing::{fast_worker_settings, isolated_settings};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use media_worker::Settings;
use media_worker::config::ProviderAccess;
use provider_sim::{Behaviour, SimConfig, Simulator};
use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The resident memory of process `pid`, MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn settings(sim: &Simulator, concurrency: usize) -> Settings {
    let mut core = isolated_settings();
    if let Ok(url) = std::env::var("REDIS_URL") {
        core.redis_url = Secret::new(url);
    }
    let mut s = Settings {
        core,
        worker: fast_worker_settings(),
        ..Settings::default()
    };
    s.worker.concurrency = concurrency;
    s.storage.dir = std::env::temp_dir()
        .join(format!("media-bench-{}", Uuid::now_v7().simple()))
        .to_string_lossy()
        .into_owned();
    s.providers.insert(
        "openai".into(),
        ProviderAccess {
            api_key: Secret::new("sk-bench"),
            secret_key: None,
            base_url: Some(sim.base_url()),
        },
    );
    s
}

/// Waits for the first event of `kind` of the task on its session's stream; its arrival time.
async fn wait_for(client: &redis::Client, key: &str, kind: &str) -> Instant {
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut last = "0-0".to_owned();
    loop {
        let opts = StreamReadOptions::default().block(1000).count(100);
        let reply: Option<StreamReadReply> =
            conn.xread_options(&[key], &[&last], &opts).await.unwrap();
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            last.clone_from(&entry.id);
            let t: Option<String> = entry.get("type");
            if t.as_deref() == Some(kind) {
                return Instant::now();
            }
            if t.as_deref() == Some("error") {
                let payload: Option<String> = entry.get("payload");
                panic!("error event: {payload:?}");
            }
        }
    }
}

fn action(action_type: &str, data: Value) -> DomainAction {
    let mut a = DomainAction::new(action_type, "bench", Uuid::now_v7(), Uuid::now_v7(), data);
    a.user_id = Some(Uuid::now_v7());
    a
}

async fn images(concurrency: usize, total: usize) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let s = settings(&sim, 64);
    let shutdown = CancellationToken::new();
    tokio::spawn(media_worker::run(s.clone(), shutdown.clone()));
    let bus = Bus::connect(&s.core).await.unwrap();
    let client = redis::Client::open(s.core.redis_url.expose()).unwrap();
    let http = reqwest::Client::new();
    let body = json!({"model": "gpt-image-1", "prompt": "a lighthouse", "size": "1024x1024"});
    // Warm-up: connections, the worker's consumer group.
    for _ in 0..5 {
        let a = action(GENERATE_IMAGE, body.clone());
        bus.publish(&a).await.unwrap();
        wait_for(
            &client,
            &bus.names().response_stream(a.session_id),
            "complete",
        )
        .await;
    }
    let direct = run_at(concurrency, total, || {
        let http = http.clone();
        let url = format!("{}/images/generations", sim.base_url());
        let body = body.clone();
        async move {
            let started = Instant::now();
            let answer: Value = http
                .post(url)
                .bearer_auth("sk-bench")
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(answer["data"][0]["b64_json"].is_string());
            started.elapsed()
        }
    })
    .await;
    let through = run_at(concurrency, total, || {
        let bus = bus.clone();
        let client = client.clone();
        let body = body.clone();
        async move {
            let a = action(GENERATE_IMAGE, body);
            let key = bus.names().response_stream(a.session_id);
            let started = Instant::now();
            bus.publish(&a).await.unwrap();
            wait_for(&client, &key, "text_completed").await - started
        }
    })
    .await;
    println!(
        "| image, {concurrency} concurrent | {:.1} / {:.1} ms | {:.1} / {:.1} ms | +{:.1} / +{:.1} ms |",
        pct(&direct, 0.5),
        pct(&direct, 0.99),
        pct(&through, 0.5),
        pct(&through, 0.99),
        pct(&through, 0.5) - pct(&direct, 0.5),
        pct(&through, 0.99) - pct(&direct, 0.99),
    );
    shutdown.cancel();
}

/// Runs `total` of `one` with `concurrency` at once: their durations, sorted.
async fn run_at<F, Fut>(concurrency: usize, total: usize, one: F) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let mut running = FuturesUnordered::new();
    let mut started = 0;
    let mut times = Vec::with_capacity(total);
    while times.len() < total {
        while running.len() < concurrency && started < total {
            running.push(one());
            started += 1;
        }
        if let Some(t) = running.next().await {
            times.push(t);
        }
    }
    times.sort();
    times
}

async fn videos(jobs: usize, polls: usize) {
    let sim = Simulator::start(SimConfig {
        job_polls: polls,
        poll_after: Duration::from_secs(1),
        video_bytes: 64 * 1024,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // The worker as its own process (the release binary next to this example), so that its
    // memory is its own: not the simulator's request log, not this process's.
    let s = settings(&sim, jobs + 16);
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|examples| examples.parent())
        .unwrap()
        .join("media-worker");
    let mut worker = std::process::Command::new(&binary)
        .env("REDIS_URL", s.core.redis_url.expose())
        .env("STREAM_PREFIX", &s.core.stream_prefix)
        .env("APP_ENV", &s.core.app_env)
        .env("JWT_SECRET", "bench-secret")
        .env("OPENAI_API_KEY", "sk-bench")
        .env("OPENAI_BASE_URL", sim.base_url())
        .env("STORAGE__DIR", &s.storage.dir)
        .env("WORKER__CONCURRENCY", (jobs + 16).to_string())
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (cargo build --release --bin media-worker)",
                binary.display()
            )
        });
    let pid = worker.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_mib(pid);
    let bus = Bus::connect(&s.core).await.unwrap();
    let client = redis::Client::open(s.core.redis_url.expose()).unwrap();
    let started = Instant::now();
    let mut pending = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let a = action(
            GENERATE_VIDEO,
            json!({"prompt": "waves", "model": "sora-2"}),
        );
        bus.publish(&a).await.unwrap();
        pending.push(bus.names().response_stream(a.session_id));
    }
    // One connection for the whole watch: every second, the last event of each job still
    // running, in one pipeline.
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut peak: f64 = 0.0;
    let mut samples = Vec::new();
    let (mut done, mut answered) = (0, 0);
    while !pending.is_empty() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut pipe = redis::pipe();
        for key in &pending {
            pipe.cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(4);
        }
        let last: Vec<redis::streams::StreamRangeReply> =
            pipe.query_async(&mut conn).await.unwrap();
        let mut still = Vec::with_capacity(pending.len());
        for (key, reply) in pending.into_iter().zip(last) {
            let kinds: Vec<String> = reply
                .ids
                .iter()
                .map(|e| e.get::<String>("type").unwrap_or_default())
                .collect();
            if kinds.first().map(String::as_str) == Some("complete") {
                done += 1;
                if kinds.iter().any(|k| k == "text_completed") {
                    answered += 1;
                }
            } else {
                still.push(key);
            }
        }
        pending = still;
        let rss = rss_mib(pid);
        peak = peak.max(rss);
        let polling = sim
            .requests()
            .iter()
            .filter(|r| serde_json::to_value(r.format).unwrap() == "sora_poll")
            .count();
        samples.push((started.elapsed().as_secs(), rss, polling, done));
    }
    assert_eq!(answered, jobs, "every job ends with its video");
    let elapsed = started.elapsed();
    let submissions = sim
        .requests()
        .iter()
        .filter(|r| serde_json::to_value(r.format).unwrap() == "sora")
        .count();
    let polls_seen = sim
        .requests()
        .iter()
        .filter(|r| serde_json::to_value(r.format).unwrap() == "sora_poll")
        .count();
    println!(
        "| videos | {jobs} jobs at once, {polls} polls each 1 s apart: all done in {:.1} s \
         ({submissions} submissions, {polls_seen} polls, {:.0} polls/s); resident memory {:.0} MiB \
         before, peak {:.0} MiB |",
        elapsed.as_secs_f64(),
        polls_seen as f64 / elapsed.as_secs_f64(),
        before,
        peak
    );
    for (t, rss, polling, done) in samples.iter().step_by(5) {
        println!("|   t={t:>3} s | {rss:.0} MiB resident, {polling} polls so far, {done} done |");
    }
    println!("|   after | {:.0} MiB resident |", rss_mib(pid));
    let _ = worker.kill();
    let _ = worker.wait();
}

async fn cancels(rounds: usize) {
    let sim = Simulator::start(SimConfig {
        poll_after: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let s = settings(&sim, 64);
    let shutdown = CancellationToken::new();
    tokio::spawn(media_worker::run(s.clone(), shutdown.clone()));
    let bus = Bus::connect(&s.core).await.unwrap();
    let client = redis::Client::open(s.core.redis_url.expose()).unwrap();
    let mut times = Vec::new();
    for _ in 0..rounds {
        sim.push_script(Behaviour::JobStuck);
        let a = action(GENERATE_VIDEO, json!({"prompt": "x", "model": "sora-2"}));
        bus.publish(&a).await.unwrap();
        let key = bus.names().response_stream(a.session_id);
        // Polling under way: the second `generating` progress.
        wait_for(&client, &key, "progress").await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        let asked = Instant::now();
        bus.request_cancel(a.task_id).await.unwrap();
        wait_for(&client, &key, "complete").await;
        let delete = sim
            .requests()
            .into_iter()
            .filter(|r| serde_json::to_value(r.format).unwrap() == "sora_delete")
            .map(|r| r.received_at)
            .max()
            .expect("a DELETE");
        times.push(delete.saturating_duration_since(asked));
    }
    times.sort();
    println!(
        "| cancel → provider's cancel call | {rounds} Sora jobs | p50 {:.2} ms, p99 {:.2} ms |",
        pct(&times, 0.5),
        pct(&times, 0.99)
    );
    shutdown.cancel();
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let polls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    println!(
        "| what | direct to the simulator p50 / p99 | through the worker p50 / p99 | added p50 / p99 |"
    );
    println!("| --- | --- | --- | --- |");
    images(1, 200).await;
    images(20, 400).await;
    println!();
    cancels(30).await;
    println!();
    videos(jobs, polls).await;
}
