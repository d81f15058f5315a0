//! `speech-memory`: Redis memory held per minute of audio in the sessions' response streams.
//! Speaks `--clips` texts of a known length per provider and format with `POST /tts/generate`
//! (`save: false`, each in its own session), then sums `MEMORY USAGE` of those sessions' response
//! streams and divides by the minutes of audio the clips play (`duration_s`).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Report;
use crate::context::Ctx;
use crate::stats::round3;

/// Options of `speech-memory`.
#[derive(Args, Debug, Clone)]
pub struct MemoryArgs {
    /// What to speak, as `provider:format` pairs, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "openai:pcm,openai:mp3,elevenlabs:mp3"
    )]
    pub formats: Vec<String>,
    /// Clips per pair (spoken at once, each in its own session).
    #[arg(long, default_value_t = 10)]
    pub clips: usize,
    /// Characters of text per clip (the simulator speaks `--speech-ms-per-char` of audio each).
    #[arg(long, default_value_t = 1000)]
    pub text_chars: usize,
    /// Longest a clip may take, seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

/// Runs `speech-memory`.
pub async fn run(ctx: &Ctx, args: &MemoryArgs) -> anyhow::Result<Report> {
    let mut redis = ctx.redis_conn().await?;
    let mut rows = Vec::new();
    let mut summary = vec![format!(
        "speech-memory: {} clips of {} characters per format",
        args.clips, args.text_chars
    )];
    for pair in &args.formats {
        let (provider, format) = pair
            .split_once(':')
            .with_context(|| format!("expected provider:format, got {pair:?}"))?;
        let used_before = used_memory(&mut redis).await?;
        let started = Instant::now();
        let answers: Vec<anyhow::Result<Value>> = futures::stream::iter(0..args.clips)
            .map(|_| generate(ctx, provider, format, args))
            .buffer_unordered(args.clips.max(1))
            .collect()
            .await;
        let spoken_in = started.elapsed();
        let mut errors = Vec::new();
        let (mut seconds, mut audio_bytes, mut chunks, mut stream_bytes, mut entries) =
            (0.0, 0u64, 0u64, 0u64, 0u64);
        let mut clips = 0;
        for answer in answers {
            let data = match answer {
                Ok(data) => data,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let session: Uuid = data["session_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .context("no session_id in the answer")?;
            let key = common::Names::new(&ctx.common.stream_prefix, &ctx.common.app_env)
                .response_stream(session);
            let usage: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(&mut redis)
                .await?;
            let len: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut redis).await?;
            clips += 1;
            seconds += data["duration_s"].as_f64().unwrap_or(0.0);
            audio_bytes += data["bytes"].as_u64().unwrap_or(0);
            chunks += data["chunks"].as_u64().unwrap_or(0);
            stream_bytes += usage.unwrap_or(0);
            entries += len;
        }
        let used_after = used_memory(&mut redis).await?;
        let minutes = seconds / 60.0;
        let per_min = |bytes: f64| (minutes > 0.0).then(|| round3(bytes / 1e6 / minutes));
        summary.push(format!(
            "  {pair}: {clips} clips, {:.1} min of audio; stream {:?} MB/min (audio {:?} MB/min), {} entries, errors {errors:?}",
            minutes,
            per_min(stream_bytes as f64),
            per_min(audio_bytes as f64),
            entries
        ));
        rows.push(json!({
            "provider": provider,
            "format": format,
            "clips": clips,
            "errors": errors,
            "audio_minutes": round3(minutes),
            "audio_bytes": audio_bytes,
            "audio_chunks": chunks,
            "stream_entries": entries,
            "stream_bytes": stream_bytes,
            "stream_mb_per_audio_minute": per_min(stream_bytes as f64),
            "audio_mb_per_audio_minute": per_min(audio_bytes as f64),
            "stream_bytes_per_audio_byte": (audio_bytes > 0)
                .then(|| round3(stream_bytes as f64 / audio_bytes as f64)),
            "bytes_per_entry": (entries > 0).then(|| round3(stream_bytes as f64 / entries as f64)),
            "used_memory_delta_bytes": used_after as i64 - used_before as i64,
            "used_memory_delta_mb_per_audio_minute":
                per_min(used_after.saturating_sub(used_before) as f64),
            "spoken_in_secs": round3(spoken_in.as_secs_f64()),
        }));
    }
    let result = json!({
        "kind": "speech_memory",
        "clips": args.clips,
        "text_chars": args.text_chars,
        "formats": rows,
    });
    Ok(Report::new(result, summary))
}

/// One `POST /tts/generate` with `save: false`; the answer's `data`.
async fn generate(
    ctx: &Ctx,
    provider: &str,
    format: &str,
    args: &MemoryArgs,
) -> anyhow::Result<Value> {
    let text = super::text(&Uuid::new_v4().simple().to_string(), args.text_chars);
    let response = ctx
        .http
        .post(format!("{}/tts/generate", ctx.gateway()))
        .bearer_auth(&ctx.token)
        .json(&json!({"text": text, "provider": provider, "format": format, "save": false}))
        .timeout(Duration::from_secs(args.timeout_secs))
        .send()
        .await
        .context("POST /tts/generate")?;
    let status = response.status();
    let body: Value = response.json().await.context("the answer is not JSON")?;
    anyhow::ensure!(
        status.is_success(),
        "http_{}: {}",
        status.as_u16(),
        body["message"]
    );
    Ok(body["data"].clone())
}

/// `used_memory` of `INFO memory`.
async fn used_memory(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no used_memory in INFO memory")
}
