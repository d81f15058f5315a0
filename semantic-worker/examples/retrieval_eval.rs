//! Retrieval quality of the three search modes on a public test collection with graded relevance
//! judgements, through the worker's own pipeline: every passage ingested as a document (chunked
//! by the worker's chunker, embedded by the offline model, BM25-weighted, written to a fresh
//! Qdrant Edge store), then every query searched in each mode as `semantic.search.execute` runs
//! it. Prints nDCG@10 per mode (graded gains, as `trec_eval`'s `ndcg_cut.10`: gain = grade,
//! discount log2(rank + 1), passages ranked by their best chunk), MRR@10, the search latency
//! including the query's embedding, and the ingestion rate.
//!
//! The collection is what `ensure_ir_collection` (scripts/lib.sh) writes: `corpus.jsonl`,
//! `queries.jsonl`, `qrels.tsv`. `scripts/bench --only semantic-quality` runs it:
//!
//! ```sh
//! cargo run --release -p semantic-worker --example retrieval_eval -- \
//!   ~/.cache/aibackend/ir/trec-rag24-nist [max-passages]
//! ```
//!
//! `max-passages` keeps the first passages only (a quick look; the figures then mean little).

#![allow(clippy::print_stdout, reason = "a command-line report")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::payloads::semantic::SearchPayload;
use semantic_worker::config::SemanticSettings;
use semantic_worker::embed::Embedder;
use semantic_worker::embed::local::LocalEmbedder;
use semantic_worker::index::{Index, NewDocument, Scope};
use semantic_worker::ingest::chunk::{Chunker, Sizer};
use semantic_worker::store::bm25::Bm25;
use semantic_worker::store::edge::EdgeStore;
use semantic_worker::store::{Mode, VectorStore};
use serde_json::Value;
use uuid::Uuid;

/// Passages chunked and embedded together.
const GROUP: usize = 64;
/// Chunks fetched per query: enough for ten different passages.
const FETCH: u32 = 40;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir =
        PathBuf::from(args.next().ok_or_else(|| {
            anyhow::anyhow!("usage: retrieval_eval <collection dir> [max-passages]")
        })?);
    let max: Option<usize> = args.next().map(|a| a.parse()).transpose()?;
    let mut corpus = read_jsonl(&dir.join("corpus.jsonl"))?;
    if let Some(max) = max {
        corpus.truncate(max);
    }
    let queries = read_jsonl(&dir.join("queries.jsonl"))?;
    let qrels = read_qrels(&dir.join("qrels.tsv"))?;

    let settings = SemanticSettings::default();
    let model_dir = std::env::var("SEMANTIC__MODEL_DIR").unwrap_or(settings.model_dir.clone());
    let embedder: Arc<dyn Embedder> = Arc::new(
        LocalEmbedder::load(
            model_dir.as_ref(),
            settings.onnxruntime.as_ref(),
            settings.threads,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let chunker = Chunker::new(
        Sizer::from_model_dir(model_dir.as_ref()),
        settings.chunk_tokens,
        settings.chunk_overlap_tokens,
    );
    let store_dir =
        std::env::temp_dir().join(format!("retrieval-eval-{}", Uuid::new_v4().simple()));
    let store = Arc::new(EdgeStore::open(&store_dir, embedder.dimensions()).await?);
    let index = Index::new(
        Arc::clone(&store) as Arc<dyn VectorStore>,
        Arc::clone(&embedder),
        Arc::new(Bm25::english()?),
        settings.batch_size,
    );
    let outcome = evaluate(&index, &store, &chunker, &corpus, &queries, &qrels).await;
    store.close().await?;
    drop(store);
    let _ = std::fs::remove_dir_all(&store_dir);
    outcome
}

async fn evaluate(
    index: &Index,
    store: &EdgeStore,
    chunker: &Chunker,
    corpus: &[(String, String)],
    queries: &[(String, String)],
    qrels: &HashMap<String, HashMap<String, u32>>,
) -> anyhow::Result<()> {
    let scope = Scope {
        tenant: "eval".into(),
        user: Some("eval".into()),
    };
    println!(
        "== {} passages, {} queries ({} judged), chunks of {} tokens",
        corpus.len(),
        queries.len(),
        queries
            .iter()
            .filter(|(q, _)| qrels.contains_key(q))
            .count(),
        chunker.tokens()
    );
    let started = Instant::now();
    let mut chunks_written = 0;
    for group in corpus.chunks(GROUP) {
        let cut: Vec<Vec<String>> = group
            .iter()
            .map(|(_, text)| chunker.chunks("txt", text))
            .collect();
        let all: Vec<String> = cut.iter().flatten().cloned().collect();
        let mut dense = index.embed(&all).await?.into_iter();
        for ((id, _), chunks) in group.iter().zip(&cut) {
            let vectors: Vec<Vec<f32>> = dense.by_ref().take(chunks.len()).collect();
            let doc = NewDocument {
                tenant: scope.tenant.clone(),
                user: "eval".into(),
                document_id: common::digest::derived_uuid(&["eval", id]),
                name: id.clone(),
                tags: Vec::new(),
                metadata: None,
                created_at: Utc::now(),
            };
            index.replace_document(&doc, chunks, vectors).await?;
            chunks_written += chunks.len();
        }
    }
    let ingest = started.elapsed();
    let started = Instant::now();
    store.optimize().await?;
    println!(
        "ingestion (chunk, embed, write): {chunks_written} chunks in {:.1} s, {:.0} chunks/s; \
         optimize {:.1} s",
        ingest.as_secs_f64(),
        chunks_written as f64 / ingest.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    println!("| mode | nDCG@10 | MRR@10 | search p50 / p99 (ms, embedding included) |");
    println!("| --- | --- | --- | --- |");
    for mode in [Mode::Semantic, Mode::Keyword, Mode::Hybrid] {
        let (mut ndcg, mut mrr, mut n) = (0.0, 0.0, 0usize);
        let mut took = Vec::new();
        for (qid, text) in queries {
            let Some(judged) = qrels.get(qid) else {
                continue;
            };
            let request = SearchPayload {
                mode,
                limit: FETCH,
                ..SearchPayload::new(text.clone())
            };
            let t = Instant::now();
            let found = index.search(&scope, &request).await?;
            took.push(t.elapsed());
            let mut ranked: Vec<&str> = Vec::with_capacity(10);
            for hit in &found.hits {
                let name = hit.payload.document_name.as_deref().unwrap_or_default();
                if !ranked.contains(&name) {
                    ranked.push(name);
                }
                if ranked.len() == 10 {
                    break;
                }
            }
            ndcg += ndcg_at_10(&ranked, judged);
            mrr += ranked
                .iter()
                .position(|p| judged.contains_key(*p))
                .map_or(0.0, |i| 1.0 / (i + 1) as f64);
            n += 1;
        }
        took.sort();
        let ms = |p: f64| {
            took.get(((took.len() as f64 * p) as usize).min(took.len().saturating_sub(1)))
                .copied()
                .unwrap_or(Duration::ZERO)
                .as_secs_f64()
                * 1000.0
        };
        println!(
            "| {} | {:.4} | {:.4} | {:.2} / {:.2} |",
            mode.as_str(),
            ndcg / n.max(1) as f64,
            mrr / n.max(1) as f64,
            ms(0.5),
            ms(0.99)
        );
    }
    Ok(())
}

/// nDCG@10 of a ranking against graded judgements (gain = grade, discount log2(rank + 1)).
fn ndcg_at_10(ranked: &[&str], judged: &HashMap<String, u32>) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, p)| f64::from(judged.get(*p).copied().unwrap_or(0)) / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<u32> = judged.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, g)| f64::from(*g) / (i as f64 + 2.0).log2())
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

fn read_jsonl(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (scripts/lib.sh ensure_ir_collection)",
            path.display()
        )
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            Ok((
                v["id"].as_str().unwrap_or_default().to_owned(),
                v["text"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn read_qrels(path: &Path) -> anyhow::Result<HashMap<String, HashMap<String, u32>>> {
    let mut out: HashMap<String, HashMap<String, u32>> = HashMap::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let mut parts = line.split('\t');
        if let (Some(q), Some(p), Some(g)) = (parts.next(), parts.next(), parts.next()) {
            out.entry(q.to_owned())
                .or_default()
                .insert(p.to_owned(), g.trim().parse()?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndcg_is_one_for_the_ideal_order_and_less_otherwise() {
        let judged: HashMap<String, u32> = [("a", 3), ("b", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert!((ndcg_at_10(&["a", "b"], &judged) - 1.0).abs() < 1e-12);
        let swapped = ndcg_at_10(&["b", "a"], &judged);
        assert!(swapped < 1.0 && swapped > 0.5, "{swapped}");
        assert_eq!(ndcg_at_10(&["x", "y"], &judged), 0.0);
    }
}
