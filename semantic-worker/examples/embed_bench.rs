//! The offline embedder's figures on this machine: model load time, sentences per second one at
//! a time and in batches of 8, 16 and 32 (256 sentences of about 20 word pieces), texts per
//! second for texts of the full 256 word pieces, and memory. Run in
//! release (the pooling and the tokenizer are Rust; the model runs in ONNX Runtime's optimised
//! C++ in any profile):
//!
//! ```sh
//! cargo run --release -p semantic-worker --example embed_bench -- \
//!   --model ~/.cache/aibackend/models/all-minilm-l6-v2 \
//!   --ort ~/.cache/aibackend/lib/libonnxruntime.so.1.32.0 --threads 2
//! ```
//!
//! The defaults are `SEMANTIC__MODEL_DIR`, `ORT_DYLIB_PATH` and 2 threads.
#![allow(clippy::print_stdout)] // A command-line tool: its table is its output.

use std::path::PathBuf;
use std::time::Instant;

use semantic_worker::embed::Embedder;
use semantic_worker::embed::local::LocalEmbedder;

/// Sentences measured.
const SENTENCES: usize = 256;

struct Args {
    model: PathBuf,
    ort: PathBuf,
    threads: usize,
}

fn args() -> anyhow::Result<Args> {
    let home = std::env::var("HOME").unwrap_or_default();
    let mut a = Args {
        model: std::env::var("SEMANTIC__MODEL_DIR")
            .unwrap_or_else(|_| format!("{home}/.cache/aibackend/models/all-minilm-l6-v2"))
            .into(),
        ort: std::env::var("ORT_DYLIB_PATH")
            .unwrap_or_else(|_| format!("{home}/.cache/aibackend/lib/libonnxruntime.so.1.32.0"))
            .into(),
        threads: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => a.model = value.into(),
            "--ort" => a.ort = value.into(),
            "--threads" => a.threads = value.parse()?,
            other => anyhow::bail!("unknown flag {other} (--model, --ort, --threads)"),
        }
    }
    Ok(a)
}

/// `SENTENCES` different sentences of 16–19 words (about 20 word pieces with the markers),
/// the same on every run.
fn sentences() -> Vec<String> {
    const WORDS: [&str; 48] = [
        "the",
        "a",
        "user",
        "asked",
        "about",
        "weather",
        "in",
        "paris",
        "tomorrow",
        "and",
        "my",
        "meeting",
        "was",
        "moved",
        "to",
        "friday",
        "because",
        "of",
        "train",
        "strike",
        "please",
        "remind",
        "me",
        "water",
        "plants",
        "before",
        "leaving",
        "for",
        "work",
        "invoice",
        "sent",
        "yesterday",
        "still",
        "unpaid",
        "running",
        "pace",
        "improved",
        "after",
        "three",
        "weeks",
        "training",
        "heart",
        "rate",
        "dropped",
        "while",
        "sleeping",
        "better",
        "lately",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..SENTENCES)
        .map(|i| {
            let n = 16 + i % 4;
            let words: Vec<&str> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    WORDS[(state % WORDS.len() as u64) as usize]
                })
                .collect();
            format!("{}.", words.join(" "))
        })
        .collect()
}

/// A line of `/proc/self/status` (`VmRSS`, `VmHWM`), MB.
fn memory_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let before = memory_mb("VmRSS:");
    let started = Instant::now();
    let model = LocalEmbedder::load(&a.model, &a.ort, a.threads)?;
    let load = started.elapsed();
    println!(
        "model {} ({} dimensions, {} word pieces at most), {} intra-op threads: loaded in {} ms \
         (with one warm-up run); RSS {before:.0} MB before, {:.0} MB after",
        a.model.display(),
        model.dimensions(),
        model.max_tokens(),
        a.threads,
        load.as_millis(),
        memory_mb("VmRSS:"),
    );

    let texts = sentences();
    let tokens = model.embed(&texts).await?.tokens;
    println!(
        "{SENTENCES} sentences, {:.1} word pieces each on average (without [CLS] and [SEP])",
        tokens as f64 / SENTENCES as f64
    );
    println!("| batch | sentences/s | ms per call |");
    println!("| ---: | ---: | ---: |");
    for batch in [1, 8, 16, 32] {
        let started = Instant::now();
        let mut calls = 0;
        for chunk in texts.chunks(batch) {
            model.embed(chunk).await?;
            calls += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "| {batch} | {:.0} | {:.1} |",
            SENTENCES as f64 / secs,
            secs * 1000.0 / f64::from(calls)
        );
    }
    // Long texts: each truncated to 256 word pieces, 16 to a model run.
    let long: Vec<String> = texts.chunks(16).map(|c| c.join(" ")).collect();
    let started = Instant::now();
    let out = model.embed(&long).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} long texts (~300 words, read to {} word pieces each) in one call: {:.0} texts/s",
        long.len(),
        out.tokens / long.len() as u64 + 2,
        long.len() as f64 / secs
    );
    println!(
        "RSS now {:.0} MB, peak {:.0} MB",
        memory_mb("VmRSS:"),
        memory_mb("VmHWM:")
    );
    Ok(())
}
