//! `speech-ttfb`: time to the first audio byte of a streamed text-to-speech request and its total
//! time, through the system (`POST /tts/stream` on the gateway: bus, tts-worker, provider) or
//! against the simulator's OpenAI `POST /v1/audio/speech` directly, at a fixed number of clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Barrier, Mutex};
use uuid::Uuid;

use crate::Report;
use crate::chat::{short_error, unix_us};
use crate::context::Ctx;
use crate::sim;
use crate::stats::{Latency, mean, round3};

pub mod chat;
pub mod live;
pub mod memory;

/// Which path a speech request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeechPath {
    /// The simulator's own OpenAI `POST /v1/audio/speech`: the baseline.
    Direct,
    /// The gateway's `POST /tts/stream` (bus, tts-worker, the same simulator).
    System,
}

/// Options of `speech-ttfb`.
#[derive(Args, Debug, Clone)]
pub struct TtfbArgs {
    /// The path: `direct` (the simulator itself) or `system` (the gateway's `/tts/stream`).
    #[arg(long, value_enum)]
    pub target: SpeechPath,
    /// Concurrent clients, each sending one request after another.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Recorded requests in all (after the warm-up).
    #[arg(long, default_value_t = 100)]
    pub requests: usize,
    /// Unrecorded warm-up requests per client.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Characters of text per request (the simulator speaks `--speech-ms-per-char` of audio for
    /// each).
    #[arg(long, default_value_t = 60)]
    pub text_chars: usize,
    /// The audio format (`pcm`: 24 kHz 16-bit mono).
    #[arg(long, default_value = "pcm")]
    pub format: String,
    /// Longest a request may take before it counts as a timeout, seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

/// Timings of one speech request, from the moment it was sent.
#[derive(Debug, Clone, Default)]
struct SpeechTiming {
    sent_unix_us: u64,
    first_byte: Option<Duration>,
    first_byte_unix_us: Option<u64>,
    total: Option<Duration>,
    bytes: u64,
    outcome: String,
}

/// A text of about `chars` characters that starts `bench <marker>`, so the simulator's record of
/// the request can be matched to the client's.
pub fn text(marker: &str, chars: usize) -> String {
    let mut t = format!("bench {marker}");
    let mut i = 0;
    while t.len() + 1 < chars {
        t.push_str(if i % 2 == 0 { " lorem" } else { " ipsum" });
        i += 1;
    }
    t.push('.');
    t
}

/// Runs `speech-ttfb`.
pub async fn run(ctx: &Ctx, args: &TtfbArgs) -> anyhow::Result<Report> {
    let n = args.concurrency.max(1);
    let barrier = Arc::new(Barrier::new(n + 1));
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<(String, SpeechTiming)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (ctx, args) = (ctx.clone(), args.clone());
        let (barrier, next, results) = (barrier.clone(), next.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let mut length = Duration::ZERO;
            for _ in 0..args.warmup {
                let started = Instant::now();
                one(&ctx, &args).await;
                length = started.elapsed();
            }
            barrier.wait().await;
            // Spread the first recorded requests over one request's length: steady concurrency.
            tokio::time::sleep(length.mul_f64(i as f64 / n as f64)).await;
            while next.fetch_add(1, Ordering::Relaxed) < args.requests {
                let r = one(&ctx, &args).await;
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

    let ok: Vec<&SpeechTiming> = results
        .iter()
        .map(|(_, t)| t)
        .filter(|t| t.outcome == "ok")
        .collect();
    let first_byte = Latency::of(ok.iter().filter_map(|t| t.first_byte))?;
    let total = Latency::of(ok.iter().filter_map(|t| t.total))?;
    let bytes: Vec<f64> = ok.iter().map(|t| t.bytes as f64).collect();
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    for (_, t) in &results {
        if t.outcome != "ok" {
            *errors.entry(t.outcome.clone()).or_default() += 1;
        }
    }
    let breakdown = match sim::records_by_marker(&ctx.http, ctx.sim()).await {
        Ok(records) => breakdown(&results, &records)?,
        Err(e) => json!({"unavailable": e.to_string()}),
    };
    let summary = vec![
        format!(
            "speech-ttfb {:?} c={} n={} ok={} errors={:?}",
            args.target,
            n,
            results.len(),
            ok.len(),
            errors
        ),
        format!("  first byte {}", first_byte.line()),
        format!("  total      {}", total.line()),
        format!("  cpu        {}", before.cpu_line(&after)),
    ];
    let result = json!({
        "kind": "speech_ttfb",
        "target": args.target,
        "concurrency": n,
        "format": args.format,
        "text_chars": args.text_chars,
        "requests": results.len(),
        "ok": ok.len(),
        "errors": errors,
        "first_byte": first_byte.summary(),
        "total": total.summary(),
        "bytes_per_request": mean(&bytes).map(round3),
        "requests_per_sec": round3(results.len() as f64 / elapsed.as_secs_f64()),
        "duration_secs": round3(elapsed.as_secs_f64()),
        "processes": before.usage_until(&after),
        "breakdown": breakdown,
    });
    Ok(Report::new(result, summary))
}

/// One timed request on `args.target`; returns its marker and timing.
async fn one(ctx: &Ctx, args: &TtfbArgs) -> (String, SpeechTiming) {
    let marker = Uuid::new_v4().simple().to_string();
    let text = text(&marker, args.text_chars);
    let (url, bearer, body) = match args.target {
        SpeechPath::Direct => (
            format!("{}/v1/audio/speech", ctx.sim()),
            "sk-bench".to_owned(),
            json!({"model": "gpt-4o-mini-tts", "voice": "alloy", "input": text,
                "response_format": args.format}),
        ),
        SpeechPath::System => (
            format!("{}/tts/stream", ctx.gateway()),
            ctx.token.clone(),
            json!({"text": text, "provider": "openai", "format": args.format, "save": false}),
        ),
    };
    let timing = timed_stream(
        &ctx.http,
        &url,
        &bearer,
        &body,
        Duration::from_secs(args.timeout_secs),
    )
    .await;
    (marker, timing)
}

/// POSTs `body` and reads the answer's body to its end, timing its first byte.
async fn timed_stream(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
    body: &Value,
    timeout: Duration,
) -> SpeechTiming {
    let mut timing = SpeechTiming {
        sent_unix_us: unix_us(),
        ..SpeechTiming::default()
    };
    let start = Instant::now();
    let run = async {
        let response = http.post(url).bearer_auth(bearer).json(body).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!("http_{}", status.as_u16());
        }
        let mut stream = response.bytes_stream();
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| anyhow::anyhow!("body: {e}"))?;
            if piece.is_empty() {
                continue;
            }
            if timing.first_byte.is_none() {
                timing.first_byte = Some(start.elapsed());
                timing.first_byte_unix_us = Some(unix_us());
            }
            timing.bytes += piece.len() as u64;
        }
        timing.total = Some(start.elapsed());
        if timing.bytes == 0 {
            bail!("no_audio");
        }
        Ok(())
    };
    timing.outcome = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(e)) => short_error(&e),
        Err(_) => "timeout".into(),
    };
    timing
}

/// Where the time to the first byte goes, from the client's clock and the simulator's log:
/// client send → request at the simulator (what runs before the provider is called), and the
/// simulator's first audio chunk → the client's first byte (what runs after). Mean and p50 in
/// ms; the simulator's unit times have 1 ms resolution.
fn breakdown(
    results: &[(String, SpeechTiming)],
    records: &HashMap<String, sim::SimRecord>,
) -> anyhow::Result<Value> {
    let mut before = Vec::new();
    let mut after = Vec::new();
    for (marker, t) in results.iter().filter(|(_, t)| t.outcome == "ok") {
        let Some(r) = records.get(marker) else {
            continue;
        };
        let sent = t.sent_unix_us as f64 / 1000.0;
        if let Some(at) = r.received_at_unix_us {
            before.push(at as f64 / 1000.0 - sent);
        }
        if let Some((unit, seen)) = r.first_unit_unix_us().zip(t.first_byte_unix_us) {
            after.push(seen as f64 / 1000.0 - unit as f64 / 1000.0);
        }
    }
    let segment = |list: &[f64]| -> anyhow::Result<Value> {
        let p50 = Latency::of_ms(list.iter().copied())?;
        Ok(
            json!({"mean_ms": mean(list).map(round3), "p50_ms": round3(p50.quantile_ms(0.5)),
            "n": list.len()}),
        )
    };
    Ok(json!({
        "send_to_provider_request": segment(&before)?,
        "provider_first_audio_to_client": segment(&after)?,
    }))
}
