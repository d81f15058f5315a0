//! Benchmark of the edge store: builds stores of N synthetic chunks (about 60 words from a fixed
//! word list, 384-d random unit vectors, 8 tenants, seeded so runs compare), optimizes them, and
//! prints search latency per mode with a tenant filter (the store call only: embedding excluded),
//! upsert rate, optimize time, reopen time and directory size. When the offline model is
//! installed (`SEMANTIC__MODEL_DIR`, `ORT_DYLIB_PATH`, as the worker reads them), the same
//! searches again with the query embedded first, as a search action does: the latency a caller
//! sees from the index, embedding included (the stored vectors stay random; only the query's is
//! real).
//!
//! `cargo run --release -p semantic-worker --example store_bench -- [N ...]` (default 10000 50000);
//! `STORE_BENCH_DIR` picks where the stores are built (default: the system's temp dir).

#![allow(clippy::print_stdout, reason = "a command-line report")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use semantic_worker::embed::Embedder;
use semantic_worker::embed::local::LocalEmbedder;
use semantic_worker::store::bm25::Bm25;
use semantic_worker::store::edge::{EdgeOptions, EdgeStore};
use semantic_worker::store::{Filter, Mode, Payload, Point, Query, Source, VectorStore};
use uuid::Uuid;

const DIMS: usize = 384;
const TENANTS: usize = 8;
const WORDS_PER_CHUNK: usize = 60;
const BATCH: usize = 1_000;
const QUERIES: usize = 300;

const WORDS: &[&str] = &[
    "account",
    "address",
    "agenda",
    "airport",
    "allergy",
    "apartment",
    "appointment",
    "assistant",
    "backup",
    "balance",
    "battery",
    "bicycle",
    "birthday",
    "blood",
    "booking",
    "budget",
    "calendar",
    "camera",
    "cancel",
    "carrot",
    "chapter",
    "checkout",
    "chicken",
    "client",
    "coffee",
    "contract",
    "cooking",
    "customer",
    "database",
    "deadline",
    "delivery",
    "dentist",
    "deploy",
    "design",
    "dinner",
    "doctor",
    "document",
    "draft",
    "email",
    "engine",
    "error",
    "exercise",
    "expense",
    "family",
    "feedback",
    "ferry",
    "flight",
    "garden",
    "grocery",
    "guitar",
    "holiday",
    "hotel",
    "insurance",
    "invoice",
    "journal",
    "kitchen",
    "ladder",
    "laptop",
    "lawyer",
    "lecture",
    "letter",
    "library",
    "license",
    "lunch",
    "manager",
    "meeting",
    "message",
    "migration",
    "monitor",
    "mortgage",
    "museum",
    "network",
    "newsletter",
    "notebook",
    "office",
    "package",
    "painting",
    "parking",
    "passport",
    "payment",
    "pension",
    "pharmacy",
    "photo",
    "piano",
    "pizza",
    "planning",
    "plumber",
    "podcast",
    "policy",
    "printer",
    "project",
    "quarter",
    "receipt",
    "recipe",
    "refund",
    "release",
    "rent",
    "report",
    "research",
    "restaurant",
    "review",
    "roadmap",
    "running",
    "salary",
    "schedule",
    "school",
    "server",
    "shipping",
    "soccer",
    "spreadsheet",
    "station",
    "storage",
    "subscription",
    "summer",
    "support",
    "surgery",
    "swimming",
    "tax",
    "teacher",
    "ticket",
    "timeline",
    "tomato",
    "train",
    "travel",
    "update",
    "vacation",
    "vendor",
    "version",
    "warranty",
    "weather",
    "website",
    "wedding",
    "weekend",
    "workshop",
    "yoga",
    "zanzibar",
    "the",
    "and",
    "for",
    "with",
    "about",
    "from",
    "next",
    "last",
    "this",
    "that",
    "our",
    "my",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![10_000, 50_000]
    } else {
        sizes
    };
    let base = std::env::var_os("STORE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let bm25 = Bm25::english()?;
    let embedder = embedder();
    for n in sizes {
        let dir = base.join(format!("store-bench-{n}-{}", Uuid::new_v4().simple()));
        let outcome = run(&dir, n, &bm25, embedder.as_ref()).await;
        let _ = std::fs::remove_dir_all(&dir);
        outcome?;
    }
    Ok(())
}

/// The worker's offline model, where the worker would find it; `None` (and a note) without it.
fn embedder() -> Option<LocalEmbedder> {
    let settings = semantic_worker::config::SemanticSettings::default();
    let model_dir = std::env::var("SEMANTIC__MODEL_DIR").unwrap_or(settings.model_dir);
    match LocalEmbedder::load(
        model_dir.as_ref(),
        settings.onnxruntime.as_ref(),
        settings.threads,
    ) {
        Ok(model) => Some(model),
        Err(e) => {
            println!("no local model ({e}): latencies without the query's embedding only");
            None
        }
    }
}

async fn run(
    dir: &Path,
    n: usize,
    bm25: &Bm25,
    embedder: Option<&LocalEmbedder>,
) -> anyhow::Result<()> {
    println!("== {n} chunks, {DIMS}-d, {TENANTS} tenants, {dir:?}");
    let mut rng = StdRng::seed_from_u64(7);
    // Optimization by hand here, to time it; the worker leaves it to the background policy.
    let options = EdgeOptions {
        optimize_after: u64::MAX,
        ..EdgeOptions::default()
    };
    let store = EdgeStore::open_with(dir, DIMS, options.clone()).await?;

    let mut texts = Vec::with_capacity(n);
    let (mut embed, mut write) = (Duration::ZERO, Duration::ZERO);
    for start in (0..n).step_by(BATCH) {
        let mut batch = Vec::with_capacity(BATCH);
        for i in start..(start + BATCH).min(n) {
            let text = chunk_text(&mut rng);
            let t = Instant::now();
            let sparse = bm25.document(&text);
            embed += t.elapsed();
            batch.push(Point {
                id: Uuid::from_u128(i as u128 + 1),
                dense: unit_vector(&mut rng),
                sparse,
                payload: payload(i, &text),
            });
            texts.push(text);
        }
        let t = Instant::now();
        store.upsert(batch).await?;
        write += t.elapsed();
    }
    println!(
        "upsert: {:.0} points/s ({:.2} s in the store, batches of {BATCH}; BM25 embedding {:.2} s more)",
        n as f64 / write.as_secs_f64(),
        write.as_secs_f64(),
        embed.as_secs_f64()
    );

    let (queries, query_texts): (Vec<Query>, Vec<String>) = (0..QUERIES)
        .map(|q| query(&mut rng, bm25, &texts[q * 7919 % n], q % TENANTS))
        .unzip();
    let before = latencies(&store, &queries[..100]).await?;
    println!("hybrid before optimize: {}", summary(&before));

    let t = Instant::now();
    store.optimize().await?;
    let optimize = t.elapsed();
    let stats = store.stats().await?;
    println!(
        "optimize: {:.1} s ({:.2} ms/point); {} segments, {} of {} vectors indexed",
        optimize.as_secs_f64(),
        optimize.as_secs_f64() * 1_000.0 / n as f64,
        stats.segments,
        stats.indexed_vectors,
        stats.points
    );

    for mode in [Mode::Semantic, Mode::Keyword, Mode::Hybrid] {
        let qs: Vec<Query> = queries
            .iter()
            .map(|q| Query { mode, ..q.clone() })
            .collect();
        let l = latencies(&store, &qs).await?;
        println!("{mode:?} (tenant filter, top 10): {}", summary(&l));
    }
    if let Some(model) = embedder {
        for mode in [Mode::Semantic, Mode::Keyword, Mode::Hybrid] {
            let mut l = Vec::with_capacity(queries.len());
            for (q, text) in queries.iter().zip(&query_texts) {
                let t = Instant::now();
                let dense = match mode {
                    Mode::Keyword => None,
                    _ => model.embed(std::slice::from_ref(text)).await?.vectors.pop(),
                };
                let hits = store
                    .search(Query {
                        mode,
                        dense: dense.or_else(|| q.dense.clone()),
                        ..q.clone()
                    })
                    .await?;
                l.push(t.elapsed());
                anyhow::ensure!(hits.iter().all(|h| h.payload.tenant == q.filter.tenant));
            }
            println!("{mode:?} including the query's embedding: {}", summary(&l));
        }
    }

    store.close().await?;
    drop(store);
    let size = dir_size(dir)?;
    let t = Instant::now();
    let store = EdgeStore::open_with(dir, DIMS, options).await?;
    let reopen = t.elapsed();
    let after = latencies(&store, &queries).await?;
    println!(
        "reopen: {:.0} ms; hybrid after reopen: {}; directory {:.0} MB",
        reopen.as_secs_f64() * 1_000.0,
        summary(&after),
        size as f64 / 1e6
    );
    store.close().await?;
    Ok(())
}

async fn latencies(store: &EdgeStore, queries: &[Query]) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        let hits = store.search(q.clone()).await?;
        out.push(t.elapsed());
        anyhow::ensure!(
            hits.iter().all(|h| h.payload.tenant == q.filter.tenant),
            "tenant leak"
        );
    }
    Ok(out)
}

fn summary(l: &[Duration]) -> String {
    let mut ms: Vec<f64> = l.iter().map(|d| d.as_secs_f64() * 1_000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
    format!(
        "p50 {:.2} / p95 {:.2} / p99 {:.2} ms ({} queries)",
        at(0.5),
        at(0.95),
        at(0.99),
        ms.len()
    )
}

fn chunk_text(rng: &mut StdRng) -> String {
    (0..WORDS_PER_CHUNK)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn unit_vector(rng: &mut StdRng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIMS).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn payload(i: usize, text: &str) -> Payload {
    Payload {
        tenant: format!("tenant-{}", i % TENANTS),
        user: format!("user-{}", i % 50),
        source: if i.is_multiple_of(3) {
            Source::Document
        } else {
            Source::Message
        },
        text: text.to_owned(),
        content_sha256: format!("{i:064x}"),
        created_at: 1_700_000_000 + i as i64,
        tags: vec![format!("tag-{}", i % 10)],
        session_id: Some(format!("session-{}", i % 500)),
        message_id: Some(format!("m{i}")),
        role: Some(
            if i.is_multiple_of(2) {
                "user"
            } else {
                "assistant"
            }
            .into(),
        ),
        document_id: None,
        document_name: None,
        chunk_index: None,
        chunk_count: None,
        metadata: None,
    }
}

/// Three words of an existing chunk and a random vector, in one tenant; and the three words.
fn query(rng: &mut StdRng, bm25: &Bm25, text: &str, tenant: usize) -> (Query, String) {
    let words: Vec<&str> = text.split(' ').collect();
    let at = rng.random_range(0..words.len() - 3);
    let text = words[at..at + 3].join(" ");
    let q = Query {
        mode: Mode::Hybrid,
        dense: Some(unit_vector(rng)),
        sparse: Some(bm25.query(&text)),
        filter: Filter::tenant(format!("tenant-{tenant}")),
        limit: 10,
        score_threshold: None,
    };
    (q, text)
}

fn dir_size(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
