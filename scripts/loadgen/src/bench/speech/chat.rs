//! `speech-chat`: chats that speak over `/chat/ws` (`settings.tts`): per chat, the time from the
//! first `text_chunk` to the first `audio_chunk`, and how long before `text_completed` the first
//! `audio_chunk` arrived (negative: after it).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::sync::{Barrier, Mutex};
use uuid::Uuid;

use crate::Report;
use crate::chat::{self, Path};
use crate::context::Ctx;
use crate::pool::{self, Client};
use crate::stats::{Latency, mean, round3};
use crate::ws;

/// Options of `speech-chat`.
#[derive(Args, Debug, Clone)]
pub struct ChatArgs {
    /// Concurrent WebSocket clients, each running one chat after another.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Recorded chats in all (after the warm-up).
    #[arg(long, default_value_t = 50)]
    pub requests: usize,
    /// Unrecorded warm-up chats per client.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// The speech provider (`settings.tts.provider`).
    #[arg(long, default_value = "elevenlabs")]
    pub provider: String,
    /// The audio format (`settings.tts.format`).
    #[arg(long, default_value = "pcm")]
    pub format: String,
    /// ElevenLabs' `chunk_schedule` (characters buffered before each generation), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "50")]
    pub chunk_schedule: Vec<u32>,
    /// Longest a chat may take before it counts as a timeout, seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

/// What one spoken chat saw, on the client's clock.
#[derive(Debug, Default, Clone)]
struct Spoken {
    first_text: Option<Instant>,
    first_audio: Option<Instant>,
    text_completed: Option<Instant>,
    tts_completed: Option<Instant>,
    audio_chunks: u64,
    input_streaming: Option<bool>,
}

/// Runs `speech-chat`.
pub async fn run(ctx: &Ctx, args: &ChatArgs) -> anyhow::Result<Report> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let (clients, connect_errors) = pool::open(ctx, Path::Ws, args.concurrency, 200).await;
    anyhow::ensure!(
        !clients.is_empty(),
        "no client connected: {connect_errors:?}"
    );
    let n = clients.len();
    let barrier = Arc::new(Barrier::new(n + 1));
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<(chat::Timing, Spoken)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::with_capacity(n);
    for (i, mut client) in clients.into_iter().enumerate() {
        let (ctx, args) = (ctx.clone(), args.clone());
        let (barrier, next, results) = (barrier.clone(), next.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let mut length = Duration::ZERO;
            for _ in 0..args.warmup {
                let started = Instant::now();
                spoken_chat(&ctx, &mut client, &args, timeout).await;
                length = started.elapsed();
            }
            barrier.wait().await;
            tokio::time::sleep(length.mul_f64(i as f64 / n as f64)).await;
            while next.fetch_add(1, Ordering::Relaxed) < args.requests {
                let r = spoken_chat(&ctx, &mut client, &args, timeout).await;
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

    let ms = |a: Instant, b: Instant| -> f64 {
        if b >= a {
            b.duration_since(a).as_secs_f64() * 1000.0
        } else {
            -(a.duration_since(b).as_secs_f64() * 1000.0)
        }
    };
    let ok: Vec<&(chat::Timing, Spoken)> =
        results.iter().filter(|(t, _)| t.outcome == "ok").collect();
    let text_to_audio: Vec<f64> = ok
        .iter()
        .filter_map(|(_, s)| Some(ms(s.first_text?, s.first_audio?)))
        .collect();
    let audio_lead: Vec<f64> = ok
        .iter()
        .filter_map(|(_, s)| Some(ms(s.first_audio?, s.text_completed?)))
        .collect();
    let text_to_tts_completed: Vec<f64> = ok
        .iter()
        .filter_map(|(_, s)| Some(ms(s.text_completed?, s.tts_completed?)))
        .collect();
    let ttft = Latency::of(ok.iter().filter_map(|(t, _)| t.ttft))?;
    let total = Latency::of(ok.iter().filter_map(|(t, _)| t.total))?;
    let chunks: Vec<f64> = ok.iter().map(|(_, s)| s.audio_chunks as f64).collect();
    let streaming = ok
        .iter()
        .filter(|(_, s)| s.input_streaming == Some(true))
        .count();
    let errors = pool::error_counts(results.iter().map(|(t, _)| t));
    let before_completed = audio_lead.iter().filter(|v| **v > 0.0).count();
    let summary = vec![
        format!(
            "speech-chat {} c={} n={} ok={} errors={:?} connect_errors={:?}",
            args.provider,
            n,
            results.len(),
            ok.len(),
            errors,
            connect_errors
        ),
        format!(
            "  first text → first audio  {}",
            signed(&text_to_audio)["p50_ms"]
        ),
        format!(
            "  first audio before text_completed  {} ({} of {} before)",
            signed(&audio_lead)["p50_ms"],
            before_completed,
            audio_lead.len()
        ),
        format!("  cpu   {}", before.cpu_line(&after)),
    ];
    let result = json!({
        "kind": "speech_chat",
        "provider": args.provider,
        "format": args.format,
        "chunk_schedule": args.chunk_schedule,
        "concurrency": args.concurrency,
        "connected": n,
        "requests": results.len(),
        "ok": ok.len(),
        "errors": errors,
        "connect_errors": connect_errors,
        "input_streaming": streaming,
        "first_text_to_first_audio": signed(&text_to_audio),
        "first_audio_before_text_completed": signed(&audio_lead),
        "first_audio_before_text_completed_count": before_completed,
        "text_completed_to_tts_completed": signed(&text_to_tts_completed),
        "ttft": ttft.summary(),
        "total": total.summary(),
        "audio_chunks_per_chat": mean(&chunks).map(round3),
        "chats_per_sec": round3(results.len() as f64 / elapsed.as_secs_f64()),
        "duration_secs": round3(elapsed.as_secs_f64()),
        "processes": before.usage_until(&after),
    });
    Ok(Report::new(result, summary))
}

/// One chat with `settings.tts` on `client`, timed until its `complete`.
async fn spoken_chat(
    ctx: &Ctx,
    client: &mut Client,
    args: &ChatArgs,
    timeout: Duration,
) -> (chat::Timing, Spoken) {
    let Client::Ws(socket) = client else {
        let timing = chat::Timing {
            outcome: "no_socket".into(),
            ..chat::Timing::default()
        };
        return (timing, Spoken::default());
    };
    let marker = Uuid::new_v4().simple().to_string();
    let mut message = ws::chat_message(&chat::prompt(&marker, 20), &ctx.common.model);
    message["settings"] = json!({"tts": {
        "enabled": true,
        "provider": args.provider,
        "format": args.format,
        "chunk_schedule": args.chunk_schedule,
    }});
    let mut spoken = Spoken::default();
    let timing = chat::ws_chat(socket, &message, timeout, |event, _| {
        let now = Instant::now();
        match event.kind.as_str() {
            "text_chunk" => {
                spoken.first_text.get_or_insert(now);
            }
            "tts_started" => spoken.input_streaming = event.data["input_streaming"].as_bool(),
            "audio_chunk" => {
                spoken.audio_chunks += 1;
                spoken.first_audio.get_or_insert(now);
            }
            "text_completed" => spoken.text_completed = Some(now),
            "tts_completed" => spoken.tts_completed = Some(now),
            _ => {}
        }
        None
    })
    .await;
    (timing, spoken)
}

/// Percentiles (nearest rank) of values that may be negative, in ms.
pub fn signed(values: &[f64]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let q = |q: f64| {
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        round3(v[rank - 1])
    };
    json!({
        "count": v.len(),
        "mean_ms": mean(&v).map(round3),
        "min_ms": round3(v[0]),
        "p50_ms": q(0.5),
        "p90_ms": q(0.9),
        "p95_ms": q(0.95),
        "p99_ms": q(0.99),
        "max_ms": round3(v[v.len() - 1]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_percentiles_keep_the_sign() {
        let s = signed(&[-3.0, -1.0, 2.0, 5.0]);
        assert_eq!(s["p50_ms"], -1.0);
        assert_eq!(s["min_ms"], -3.0);
        assert_eq!(s["max_ms"], 5.0);
        assert_eq!(signed(&[]), Value::Null);
    }
}
