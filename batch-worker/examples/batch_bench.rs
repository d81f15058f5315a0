//! The batch-worker's figures, in-process against the Redis at `REDIS_URL`, the PostgreSQL at
//! `TEST_POSTGRES_URL` (a database of its own) and provider-sim, files in a temporary directory:
//!
//! 1. sequential throughput: jobs of `40 × concurrency` lines on an OpenAI-compatible provider
//!    without a batch API (the simulator answering each request after 50 ms), lines per second
//!    from publish to the job's end, at `BATCH__CONCURRENCY` 8, 32 and 128;
//! 2. memory: the process's resident set while a `LINES`-line job (default 50,000) of the
//!    offline `dummy` runs, against a job a tenth its size: it must stay flat;
//! 3. cancel: the time from a client's cancel to the job's end (`cancelled`, its 64 running
//!    lines dropped and the files written), over 5 jobs.
//!
//! `cargo build --release -p batch-worker --example batch_bench`, then
//! `target/release/examples/batch_bench [LINES]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::batch::Status;
use provider_sim::{SimConfig, Simulator};
use support::{line, lines, owner, settings, start, with};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs one job of `n` lines of `model` on a worker with `concurrency`; answers its wall time
/// and the process's peak resident memory while it ran.
async fn run_job(s: batch_worker::Settings, n: usize, model: &str) -> (Duration, f64) {
    let w = start(s).await;
    // The input is written line by line and stored from the file, so the figures are the
    // worker's, not those of a 50,000-line string built here.
    let path = std::env::temp_dir().join(format!("batch-bench-{}.jsonl", uuid::Uuid::now_v7()));
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 1..=n {
            writeln!(
                f,
                "{}",
                line(
                    &format!("line-{i}"),
                    model,
                    &format!("request line-{i} end")
                )
            )
            .unwrap();
        }
    }
    let (job, a) = w.record_file(owner(), &path).await;
    std::fs::remove_file(&path).unwrap();
    let peak = Arc::new(std::sync::Mutex::new(rss_mib()));
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, running) = (Arc::clone(&peak), Arc::clone(&running));
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let now = rss_mib();
                {
                    let mut p = peak.lock().unwrap();
                    *p = p.max(now);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let t = Instant::now();
    w.bus.publish(&a).await.unwrap();
    loop {
        let j = w.job(&job).await;
        if j.state().is_terminal() {
            assert_eq!(j.state(), Status::Completed, "{j:?}");
            assert_eq!(j.completed as usize, n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t.elapsed();
    running.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak = *peak.lock().unwrap();
    (took, peak)
}

#[tokio::main]
async fn main() {
    let big: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let sim = Simulator::start(SimConfig {
        first_token_delay: Duration::from_millis(50),
        chunks: 1,
        chunk_interval: Duration::ZERO,
        ..SimConfig::default()
    })
    .await
    .unwrap();

    println!("## Sequential throughput (simulator answers after 50 ms)\n");
    println!("| concurrency | lines | seconds | lines/s | ideal (concurrency / 50 ms) |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for c in [8usize, 32, 128] {
        let mut s = with(settings(), "groq", sim.base_url());
        s.batch.concurrency = c;
        s.batch.progress_interval_ms = 1000;
        let n = 40 * c;
        let (took, _) = run_job(s, n, "llama-3-3-70b").await;
        println!(
            "| {c} | {n} | {:.2} | {:.0} | {} |",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            c * 20
        );
    }

    println!("\n## Memory of a large job (offline dummy, concurrency 32)\n");
    println!("| lines | seconds | peak RSS MiB |");
    println!("| ---: | ---: | ---: |");
    let base = rss_mib();
    for n in [big / 10, big] {
        let mut s = settings();
        s.batch.concurrency = 32;
        s.batch.progress_interval_ms = 1000;
        let (took, peak) = run_job(s, n, "dummy").await;
        println!("| {n} | {:.1} | {peak:.1} |", took.as_secs_f64());
    }
    println!("\n(resident before both: {base:.1} MiB)");

    println!("\n## Cancel to the job's end (64 lines running, each answered after 10 s)\n");
    let slow = Simulator::start(SimConfig {
        first_token_delay: Duration::from_secs(10),
        chunks: 1,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut times = Vec::new();
    for _ in 0..5 {
        let mut s = with(settings(), "groq", slow.base_url());
        s.batch.concurrency = 64;
        let w = start(s).await;
        let before = slow.requests().len();
        let (job, a) = w
            .record(owner(), &(lines(200, "llama-3-3-70b").join("\n") + "\n"))
            .await;
        w.bus.publish(&a).await.unwrap();
        while slow.requests().len() < before + 64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t = Instant::now();
        w.bus.request_cancel(a.task_id).await.unwrap();
        loop {
            if w.job(&job).await.state() == Status::Cancelled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        times.push(t.elapsed());
        assert_eq!(
            slow.requests().len(),
            before + 64,
            "no line started after the cancel"
        );
    }
    times.sort();
    println!(
        "cancel → `cancelled` (200-line job, 64 running): p50 {:.1} ms, max {:.1} ms over {} jobs",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
        times.len()
    );
}
