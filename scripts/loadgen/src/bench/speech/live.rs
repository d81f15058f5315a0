//! `stt-live`: live transcription over `/chat/ws` (`audio_start`, binary frames at real time,
//! `audio_end`) through the gateway, the bus and the tts-worker's `stt` service to the
//! simulator's Deepgram live WebSocket. Two added latencies, lined up on the wall clock with the
//! simulator's request log: an audio frame leaving the client → the simulator receiving it, and
//! a `Results` message leaving the simulator → the client's `transcription` event.
//!
//! Each client streams at its own sample rate (16,000 + its index), which is how its session is
//! found in the simulator's log (the rate is in the upgrade's query); the simulator only counts
//! the audio, so a rate one sample off changes nothing it says.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Barrier, Mutex};
use tokio_tungstenite::tungstenite::Message;

use crate::Report;
use crate::chat::unix_us;
use crate::context::Ctx;
use crate::stats::{Latency, round3};
use crate::ws;

/// Options of `stt-live`.
#[derive(Args, Debug, Clone)]
pub struct LiveArgs {
    /// Concurrent live streams.
    #[arg(long, default_value_t = 20)]
    pub concurrency: usize,
    /// Seconds of audio each stream sends, at real time.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Milliseconds of audio per frame.
    #[arg(long, default_value_t = 20)]
    pub frame_ms: u64,
    /// Longest a stream may take after its audio ended, seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
}

/// What one client saw, on the wall clock (µs since the epoch).
#[derive(Debug, Default)]
struct Stream {
    rate: u32,
    frames_sent: Vec<u64>,
    results_seen: Vec<u64>,
    outcome: String,
}

/// The simulator's record of a live session, as `GET /_sim/requests` lists it.
#[derive(Debug, Deserialize)]
struct LiveRecord {
    #[serde(default)]
    path: String,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    audio_frames_at_unix_us: Vec<u64>,
    #[serde(default)]
    unit_sent_at_unix_us: Vec<u64>,
}

/// Runs `stt-live`.
pub async fn run(ctx: &Ctx, args: &LiveArgs) -> anyhow::Result<Report> {
    let n = args.concurrency.max(1);
    let barrier = Arc::new(Barrier::new(n));
    let streams: Arc<Mutex<Vec<Stream>>> = Arc::new(Mutex::new(Vec::new()));
    let before = ctx.watch.snapshot().await;
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (ctx, args) = (ctx.clone(), args.clone());
        let (barrier, streams) = (barrier.clone(), streams.clone());
        tasks.push(tokio::spawn(async move {
            let rate = 16_000 + i as u32;
            let s = match one_stream(&ctx, &args, rate, &barrier).await {
                Ok(s) => s,
                Err(e) => Stream {
                    rate,
                    outcome: crate::chat::short_error(&e),
                    ..Stream::default()
                },
            };
            streams.lock().await.push(s);
        }));
    }
    for t in tasks {
        t.await?;
    }
    let after = ctx.watch.snapshot().await;
    let streams = std::mem::take(&mut *streams.lock().await);

    let records: Vec<LiveRecord> = reqwest::Client::new()
        .get(format!("{}/_sim/requests", ctx.common.sim))
        .send()
        .await
        .context("GET /_sim/requests")?
        .error_for_status()?
        .json()
        .await
        .context("decoding /_sim/requests")?;
    let mut frame_ms = Latency::new()?;
    let mut result_ms = Latency::new()?;
    let mut unmatched = 0usize;
    for s in streams.iter().filter(|s| s.outcome == "ok") {
        let needle = format!("sample_rate={}", s.rate);
        let Some(record) = records.iter().rev().find(|r| {
            r.path == "/v1/listen"
                && r.query
                    .as_deref()
                    .is_some_and(|q| q.split('&').any(|p| p == needle))
        }) else {
            unmatched += 1;
            continue;
        };
        for (sent, got) in s.frames_sent.iter().zip(&record.audio_frames_at_unix_us) {
            frame_ms.record(Duration::from_micros(got.saturating_sub(*sent)));
        }
        for (sent, seen) in record.unit_sent_at_unix_us.iter().zip(&s.results_seen) {
            result_ms.record(Duration::from_micros(seen.saturating_sub(*sent)));
        }
        if record.audio_frames_at_unix_us.len() != s.frames_sent.len()
            || record.unit_sent_at_unix_us.len() != s.results_seen.len()
        {
            unmatched += 1;
        }
    }
    let ok = streams.iter().filter(|s| s.outcome == "ok").count();
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    for s in streams.iter().filter(|s| s.outcome != "ok") {
        *errors.entry(s.outcome.clone()).or_default() += 1;
    }
    let summary = vec![
        format!(
            "stt-live c={n} ok={ok} errors={errors:?} mismatched={unmatched} ({} s of audio, {} ms frames)",
            args.seconds, args.frame_ms
        ),
        format!("  frame: client → provider   {}", frame_ms.line()),
        format!("  result: provider → client  {}", result_ms.line()),
        format!("  cpu   {}", before.cpu_line(&after)),
    ];
    let result = json!({
        "kind": "stt_live",
        "concurrency": n,
        "seconds": args.seconds,
        "frame_ms": args.frame_ms,
        "ok": ok,
        "errors": errors,
        "mismatched": unmatched,
        "frame_to_provider": frame_ms.summary(),
        "result_to_client": result_ms.summary(),
        "frames": frame_ms.count(),
        "results": result_ms.count(),
        "duration_secs": round3(args.seconds as f64),
        "processes": before.usage_until(&after),
    });
    Ok(Report::new(result, summary))
}

/// One live stream: connect, start, frames at real time while reading events, end, wait for
/// `complete`.
async fn one_stream(
    ctx: &Ctx,
    args: &LiveArgs,
    rate: u32,
    barrier: &Barrier,
) -> anyhow::Result<Stream> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let (socket, _) = ws::connect(&ctx.ws_url_with(&ctx.token), timeout).await?;
    let (mut sink, mut events) = socket.split();
    barrier.wait().await;
    let start = json!({"type": "audio_start", "sample_rate": rate, "provider": "deepgram",
        "language": "en"});
    sink.send(Message::text(start.to_string())).await?;
    // The first event is the worker's `working`: the provider's session is being opened.
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let next = tokio::time::timeout(timeout + Duration::from_secs(60), events.next()).await;
            let Ok(Some(Ok(message))) = next else {
                bail!("the connection ended before complete");
            };
            let Message::Text(text) = message else {
                continue;
            };
            let at = unix_us();
            let event: Value = serde_json::from_str(text.as_str())?;
            match event["type"].as_str() {
                Some("transcription") => seen.push(at),
                Some("complete") => return Ok(seen),
                Some("error") => bail!("error {}", event["data"]["code"]),
                _ => {}
            }
        }
    });
    let frame_bytes = (u64::from(rate) * args.frame_ms / 1000 * 2) as usize;
    let frames = args.seconds * 1000 / args.frame_ms.max(1);
    let mut sent = Vec::with_capacity(frames as usize);
    let mut tick = tokio::time::interval(Duration::from_millis(args.frame_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // A quiet tone: the simulator counts audio; its content does not matter.
    let frame: Vec<u8> = (0..frame_bytes / 2)
        .flat_map(|i| (((i % 40) as i16 - 20) * 300).to_le_bytes())
        .collect();
    for _ in 0..frames {
        tick.tick().await;
        sent.push(unix_us());
        sink.send(Message::binary(frame.clone())).await?;
    }
    sink.send(Message::text(json!({"type": "audio_end"}).to_string()))
        .await?;
    let seen = reader.await??;
    let _ = sink.close().await;
    Ok(Stream {
        rate,
        frames_sent: sent,
        results_seen: seen,
        outcome: "ok".into(),
    })
}
