//! The semantic-worker's settings: the shared core, the worker runtime, where the index lives
//! (Qdrant Edge's directory, or a Qdrant server), and which model embeds.

use common::settings::{CoreSettings, Secret, optional_string};
use common::storage::StorageSettings;
use common::worker::WorkerSettings;
use serde::Deserialize;

/// Everything the semantic-worker reads at start-up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Bus, auth and telemetry.
    #[serde(flatten)]
    pub core: CoreSettings,
    /// Consumer-group behaviour (`WORKER__CONCURRENCY`, ...).
    pub worker: WorkerSettings,
    /// The index and the embeddings (`SEMANTIC__*`).
    pub semantic: SemanticSettings,
    /// Where uploaded documents are read from (`STORAGE__*`, the gateway's storage).
    pub storage: StorageSettings,
    /// A Qdrant server (`QDRANT_URL`, `QDRANT_API_KEY`), read by [`Settings::load`]; the
    /// in-process Qdrant Edge when unset.
    #[serde(skip)]
    pub qdrant: Option<QdrantServer>,
    /// OpenAI's key and endpoint (`OPENAI_API_KEY`, `OPENAI_BASE_URL`) for OpenAI's embeddings or
    /// an OpenAI-compatible server's.
    #[serde(skip)]
    pub openai: Option<OpenAiAccess>,
}

/// A Qdrant server.
#[derive(Debug, Clone)]
pub struct QdrantServer {
    /// Its gRPC address (`http://qdrant:6334`).
    pub url: String,
    /// Its API key (Qdrant Cloud), a secret.
    pub api_key: Option<Secret>,
}

/// OpenAI's (or a compatible server's) key and endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiAccess {
    /// The key (a secret).
    pub api_key: Secret,
    /// The endpoint, when not OpenAI's own.
    pub base_url: Option<String>,
}

/// The index and the embeddings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SemanticSettings {
    /// Qdrant Edge's directory (one semantic-worker process per directory).
    pub store_dir: String,
    /// The collection on a Qdrant server.
    pub collection: String,
    /// `local` (all-MiniLM-L6-v2 in the worker, the default) or `openai` (OpenAI or an
    /// OpenAI-compatible server at `OPENAI_BASE_URL`).
    pub embedding_provider: String,
    /// The model of `openai` embeddings (`text-embedding-3-small`); the local one is fixed.
    #[serde(deserialize_with = "optional_string")]
    pub embedding_model: Option<String>,
    /// Fewer dimensions for `text-embedding-3-*`.
    pub embedding_dimensions: Option<usize>,
    /// The local model's directory (`model.onnx`, `tokenizer.json`), installed by
    /// `ensure_embedding_model` in `scripts/lib.sh`.
    pub model_dir: String,
    /// ONNX Runtime's shared library (`ensure_onnxruntime`); `ORT_DYLIB_PATH` when set.
    pub onnxruntime: String,
    /// CPU threads of the local model.
    pub threads: usize,
    /// Texts per embedding call when indexing.
    pub batch_size: usize,
    /// Most tokens of one document chunk (counted by the local model's tokenizer).
    pub chunk_tokens: usize,
    /// Tokens consecutive chunks of a document share.
    pub chunk_overlap_tokens: usize,
}

fn cache_dir() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    format!("{home}/.cache/aibackend")
}

impl Default for SemanticSettings {
    fn default() -> Self {
        let cache = cache_dir();
        Self {
            store_dir: format!("{cache}/semantic-index"),
            collection: "semantic".into(),
            embedding_provider: "local".into(),
            embedding_model: None,
            embedding_dimensions: None,
            model_dir: format!("{cache}/models/all-minilm-l6-v2"),
            onnxruntime: std::env::var("ORT_DYLIB_PATH")
                .unwrap_or_else(|_| format!("{cache}/lib/libonnxruntime.so.1.32.0")),
            threads: 2,
            batch_size: 32,
            // all-MiniLM-L6-v2 reads 256 word pieces; 200 leaves room for `[CLS]`, `[SEP]`
            // and a tokenizer that counts a little differently.
            chunk_tokens: 200,
            chunk_overlap_tokens: 40,
        }
    }
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// Loads settings (defaults → `config/semantic-worker.toml` → env) and checks them.
    pub fn load() -> anyhow::Result<Self> {
        let mut s: Self = common::settings::load("semantic-worker")?;
        s.core.check_without_auth()?;
        s.qdrant = env_value("QDRANT_URL").map(|url| QdrantServer {
            url,
            api_key: env_value("QDRANT_API_KEY").map(Secret::new),
        });
        s.openai = env_value("OPENAI_API_KEY").map(|key| OpenAiAccess {
            api_key: Secret::new(key),
            base_url: env_value("OPENAI_BASE_URL"),
        });
        s.check()?;
        Ok(s)
    }

    /// The rules the types do not hold.
    pub fn check(&self) -> anyhow::Result<()> {
        let p = self.semantic.embedding_provider.as_str();
        anyhow::ensure!(
            p == "local" || p == "openai",
            "SEMANTIC__EMBEDDING_PROVIDER is {p:?}: local or openai"
        );
        anyhow::ensure!(
            p != "openai" || self.openai.is_some(),
            "SEMANTIC__EMBEDDING_PROVIDER is openai but OPENAI_API_KEY is not set"
        );
        anyhow::ensure!(
            self.semantic.batch_size >= 1,
            "SEMANTIC__BATCH_SIZE must be at least 1"
        );
        anyhow::ensure!(
            (16..=8192).contains(&self.semantic.chunk_tokens),
            "SEMANTIC__CHUNK_TOKENS must be between 16 and 8192"
        );
        anyhow::ensure!(
            self.semantic.chunk_overlap_tokens < self.semantic.chunk_tokens / 2,
            "SEMANTIC__CHUNK_OVERLAP_TOKENS must be less than half of SEMANTIC__CHUNK_TOKENS"
        );
        Ok(())
    }
}
