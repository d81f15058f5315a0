//! `ingest`: documents uploaded to `POST /api/v1/ingest` one after another and followed over
//! their `WS /ws/ingest/{job_id}` until `complete`: chunks per second end to end (upload to
//! `complete`) and in the worker (its own `took_ms`), and the time to the first `progress`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;

use crate::Report;
use crate::context::Ctx;
use crate::stats::{Latency, round3};
use crate::ws;

/// Options of `ingest`.
#[derive(Args, Debug, Clone)]
pub struct IngestArgs {
    /// Documents uploaded, one after another.
    #[arg(long, default_value_t = 5)]
    pub documents: usize,
    /// Paragraphs of about 50 words in each (Markdown, one heading every ten).
    #[arg(long, default_value_t = 400)]
    pub paragraphs: usize,
    /// Longest wait for one document, seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

const WORDS: &[&str] = &[
    "river",
    "otter",
    "survey",
    "dawn",
    "volunteer",
    "water",
    "temperature",
    "fish",
    "valley",
    "heron",
    "count",
    "weather",
    "report",
    "lamp",
    "keeper",
    "harbour",
    "tide",
    "island",
    "boat",
    "season",
    "nest",
    "willow",
    "stone",
    "bridge",
    "meadow",
    "frost",
    "summer",
    "migration",
];

/// A document of `paragraphs` paragraphs, different for each `seed` (so each is a document of
/// its own, not the same one replaced).
fn document(seed: usize, paragraphs: usize) -> String {
    let mut state = seed as u64 * 2_654_435_761 + 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = format!("# Field notes {seed}\n\n");
    for p in 0..paragraphs {
        if p % 10 == 0 {
            out.push_str(&format!("## Section {}\n\n", p / 10 + 1));
        }
        let words: Vec<&str> = (0..50)
            .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
            .collect();
        out.push_str(&format!("Note {seed}.{p}: {}.\n\n", words.join(" ")));
    }
    out
}

struct Outcome {
    chunks: u64,
    total: Duration,
    first_progress: Option<Duration>,
    worker_ms: f64,
}

async fn one(ctx: &Ctx, args: &IngestArgs, seed: usize) -> anyhow::Result<Outcome> {
    let body = document(seed, args.paragraphs);
    let started = Instant::now();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(body.into_bytes()).file_name(format!("notes-{seed}.md")),
    );
    let answer: Value = ctx
        .http
        .post(format!("{}/api/v1/ingest", ctx.gateway()))
        .bearer_auth(&ctx.token)
        .multipart(form)
        .send()
        .await
        .context("upload")?
        .json()
        .await
        .context("upload answer")?;
    let Some(url) = answer["data"]["websocket_url"].as_str() else {
        bail!("upload refused: {answer}");
    };
    let (mut socket, _) = connect_async(format!("{url}?token={}", ctx.token))
        .await
        .context("job websocket")?;
    let mut first_progress = None;
    let wait = Duration::from_secs(args.timeout_secs);
    let mut result = None;
    loop {
        let event = tokio::time::timeout(wait, ws::next_event(&mut socket))
            .await
            .context("no event in time")??;
        let Some(event) = event else {
            bail!("the job's socket closed before complete");
        };
        match event.kind.as_str() {
            "progress" if first_progress.is_none() => first_progress = Some(started.elapsed()),
            "text_completed" => result = Some(event.data["data"].clone()),
            "error" => bail!("job failed: {}", event.data),
            "complete" => break,
            _ => {}
        }
    }
    let total = started.elapsed();
    let result = result.context("complete without a result")?;
    Ok(Outcome {
        chunks: result["chunks"].as_u64().unwrap_or(0),
        total,
        first_progress,
        worker_ms: result["took_ms"].as_f64().unwrap_or(0.0),
    })
}

/// Runs `ingest`.
pub async fn run(ctx: &Ctx, args: &IngestArgs) -> anyhow::Result<Report> {
    let before = ctx.watch.snapshot().await;
    let mut outcomes = Vec::with_capacity(args.documents);
    // A first document, not recorded: the worker's model and index warm up.
    one(ctx, args, 0).await?;
    for i in 1..=args.documents {
        outcomes.push(one(ctx, args, i).await?);
    }
    let after = ctx.watch.snapshot().await;
    let chunks: u64 = outcomes.iter().map(|o| o.chunks).sum();
    let secs: f64 = outcomes.iter().map(|o| o.total.as_secs_f64()).sum();
    let worker_secs: f64 = outcomes.iter().map(|o| o.worker_ms / 1000.0).sum();
    let total = Latency::of(outcomes.iter().map(|o| o.total))?;
    let first = Latency::of(outcomes.iter().filter_map(|o| o.first_progress))?;
    let per_doc = outcomes.first().map_or(0, |o| o.chunks);
    let rate = chunks as f64 / secs.max(1e-9);
    let worker_rate = chunks as f64 / worker_secs.max(1e-9);
    let summary = vec![
        format!(
            "ingest {} documents of {} paragraphs: {chunks} chunks, {rate:.0} chunks/s end to end, \
             {worker_rate:.0}/s in the worker",
            outcomes.len(),
            args.paragraphs
        ),
        format!("  upload → complete  {}", total.line()),
        format!("  first progress     {}", first.line()),
        format!("  cpu   {}", before.cpu_line(&after)),
    ];
    let result = json!({
        "kind": "ingest",
        "documents": outcomes.len(),
        "paragraphs": args.paragraphs,
        "chunks": per_doc,
        "chunks_per_sec": round3(rate),
        "worker_chunks_per_sec": round3(worker_rate),
        "total": total.summary(),
        "first_progress": first.summary(),
        "processes": before.usage_until(&after),
    });
    Ok(Report::new(result, summary))
}
