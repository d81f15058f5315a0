//! The semantic worker: finds a tenant's past messages and documents by meaning and by keyword.
//! Points carry a dense embedding and a BM25 sparse vector in one Qdrant collection (the
//! in-process Qdrant Edge by default, a Qdrant server when `QDRANT_URL` is set); a search is
//! dense, keyword, or both fused with Reciprocal Rank Fusion.

pub mod config;
pub mod embed;
pub mod handlers;
pub mod index;
pub mod ingest;
pub mod store;

use std::sync::Arc;

use common::Bus;
use common::payloads::semantic;
use common::storage::Storage;
use common::worker::{Actions, Worker};
use tokio_util::sync::CancellationToken;

pub use config::Settings;
use embed::Embedder;
use handlers::documents::{Ingest, ListDocuments};
use handlers::embed::Embed;
use handlers::messages::{DeletePoints, IndexMessages};
use handlers::search::Search;
use index::Index;
use ingest::chunk::{Chunker, Sizer};
use store::VectorStore;
use store::bm25::Bm25;

/// The service: the first segment of the action types it consumes.
pub const SERVICE: &str = "semantic";

/// Runs the worker until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let embedder = embedder(&settings).await?;
    let store = store(&settings, embedder.dimensions()).await?;
    tracing::info!(
        engine = store.engine(),
        provider = embedder.provider(),
        model = embedder.model(),
        dimensions = embedder.dimensions(),
        "semantic index ready"
    );
    let storage = Storage::new(&settings.storage, &settings.core)?;
    storage.prepare().await?;
    let s = &settings.semantic;
    let chunker = Arc::new(Chunker::new(
        Sizer::from_model_dir(s.model_dir.as_ref()),
        s.chunk_tokens,
        s.chunk_overlap_tokens,
    ));
    tracing::info!(
        storage = %storage.describe(),
        chunk_tokens = chunker.tokens(),
        counted_by = chunker.sizer().name(),
        "document ingestion ready"
    );
    let Some(bus) = Bus::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    let index = Index::new(
        Arc::clone(&store),
        Arc::clone(&embedder),
        Arc::new(Bm25::english()?),
        settings.semantic.batch_size,
    );
    let actions = Actions::new()
        .action(semantic::SEARCH, Search(index.clone()))
        .action(semantic::INDEX_MESSAGES, IndexMessages(index.clone()))
        .action(semantic::DELETE, DeletePoints(index.clone()))
        .action(semantic::EMBED, Embed(vec![embedder]))
        .action(
            semantic::INGEST,
            Ingest::new(
                index.clone(),
                storage,
                chunker,
                settings.semantic.batch_size,
            ),
        )
        .action(semantic::LIST_DOCUMENTS, ListDocuments(index));
    let ran = Worker::new(bus, settings.worker.clone(), SERVICE, Arc::new(actions))
        .run(shutdown)
        .await;
    // The worker has stopped taking actions: what it wrote is made durable before it exits.
    if let Err(e) = store.close().await {
        tracing::error!(error = %e, "the vector store did not close cleanly");
    }
    ran
}

/// The embedder of the index: the local model (loaded off the runtime), or OpenAI's.
async fn embedder(settings: &Settings) -> anyhow::Result<Arc<dyn Embedder>> {
    let s = &settings.semantic;
    if s.embedding_provider == "openai" {
        let Some(access) = &settings.openai else {
            anyhow::bail!("SEMANTIC__EMBEDDING_PROVIDER is openai but OPENAI_API_KEY is not set");
        };
        let model = s
            .embedding_model
            .clone()
            .unwrap_or_else(|| "text-embedding-3-small".into());
        let mut config = embed::openai::OpenAiConfig::openai(access.api_key.clone(), model);
        if let Some(base) = &access.base_url {
            config.base_url = base.trim_end_matches('/').to_owned();
        }
        config.dimensions = s.embedding_dimensions;
        return Ok(Arc::new(
            embed::openai::OpenAiEmbedder::connect(config).await?,
        ));
    }
    let (dir, ort, threads) = (s.model_dir.clone(), s.onnxruntime.clone(), s.threads);
    let started = std::time::Instant::now();
    let model = tokio::task::spawn_blocking(move || {
        embed::local::LocalEmbedder::load(dir.as_ref(), ort.as_ref(), threads)
    })
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(
        load_ms = started.elapsed().as_millis(),
        threads,
        "local embedding model loaded"
    );
    Ok(Arc::new(model))
}

/// The vector store: a Qdrant server when `QDRANT_URL` is set, else Qdrant Edge in
/// `SEMANTIC__STORE_DIR`.
async fn store(settings: &Settings, dimensions: usize) -> anyhow::Result<Arc<dyn VectorStore>> {
    if let Some(server) = &settings.qdrant {
        let config = store::server::ServerConfig {
            url: server.url.clone(),
            api_key: server.api_key.as_ref().map(|k| k.expose().to_owned()),
            collection: settings.semantic.collection.clone(),
        };
        let store = store::server::ServerStore::connect(config, dimensions).await?;
        return Ok(Arc::new(store));
    }
    let dir = std::path::PathBuf::from(&settings.semantic.store_dir);
    let store = store::edge::EdgeStore::open(&dir, dimensions).await?;
    Ok(Arc::new(store))
}
