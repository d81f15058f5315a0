//! The vector store: points with a dense and a BM25 sparse vector and their payload, searched in
//! three modes, always within one tenant. One trait, two Qdrant engines.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The name of the dense vector in the collection.
pub const DENSE: &str = "dense";
/// The name of the BM25 sparse vector (IDF applied by the engine at query time).
pub const SPARSE: &str = "bm25";

/// A sparse vector: token ids and their weights, ids unique.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sparse {
    /// Token ids.
    pub indices: Vec<u32>,
    /// Their weights.
    pub values: Vec<f32>,
}

/// Where a point's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A chat message.
    Message,
    /// A chunk of an ingested document.
    Document,
}

/// What a point carries besides its vectors; every field a filter can use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The tenant; every query is filtered by it.
    pub tenant: String,
    /// The user who wrote the message or ingested the document.
    pub user: String,
    /// A message or a document chunk.
    pub source: Source,
    /// The text itself.
    pub text: String,
    /// SHA-256 of the text (hex): the same text of one user is indexed once.
    pub content_sha256: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Tags given at indexing.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The chat session (messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The message's id in the history (messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// `user` or `assistant` (messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The document (chunks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    /// The document's file name (chunks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_name: Option<String>,
    /// The chunk's place in its document, from 0 (chunks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_index: Option<u32>,
}

/// A point to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Its id; writing an existing id replaces the point.
    pub id: Uuid,
    /// The dense embedding.
    pub dense: Vec<f32>,
    /// The BM25 document vector (term-frequency part).
    pub sparse: Sparse,
    /// What it carries.
    pub payload: Payload,
}

/// How a search ranks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Dense vectors only: by meaning.
    Semantic,
    /// Dense and BM25, fused with Reciprocal Rank Fusion.
    #[default]
    Hybrid,
    /// BM25 only: by the words.
    Keyword,
}

/// Which points a search or a delete may touch. `tenant` is not optional: no query crosses
/// tenants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// The tenant (always applied).
    pub tenant: String,
    /// Only this user's points (every non-admin query).
    pub user: Option<String>,
    /// Only these sources (empty: both).
    pub sources: Vec<Source>,
    /// Only messages with one of these roles (empty: any).
    pub roles: Vec<String>,
    /// Only points with at least one of these tags (empty: any).
    pub tags: Vec<String>,
    /// Only these sessions (empty: any).
    pub session_ids: Vec<String>,
    /// Only these documents (empty: any).
    pub document_ids: Vec<String>,
    /// Only points created at or after (unix seconds).
    pub from: Option<i64>,
    /// Only points created at or before (unix seconds).
    pub to: Option<i64>,
}

/// A search.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// How to rank.
    pub mode: Mode,
    /// The query's dense embedding (needed by `semantic` and `hybrid`).
    pub dense: Option<Vec<f32>>,
    /// The query's BM25 vector, 1.0 per unique token (needed by `keyword` and `hybrid`).
    pub sparse: Option<Sparse>,
    /// Which points.
    pub filter: Filter,
    /// Most hits.
    pub limit: usize,
    /// Drop hits scoring below (cosine for `semantic`, BM25 for `keyword`, RRF for `hybrid`).
    pub score_threshold: Option<f32>,
}

/// A point found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The point's id.
    pub id: Uuid,
    /// Its score in the query's mode.
    pub score: f32,
    /// What it carries.
    pub payload: Payload,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request cannot be served as asked (a vector missing for the mode, a wrong size).
    #[error("{0}")]
    Invalid(String),
    /// The engine failed or cannot be reached.
    #[error("{0}")]
    Unavailable(String),
}

/// A Qdrant engine holding one collection of [`Point`]s.
#[async_trait]
pub trait VectorStore: Send + Sync + std::fmt::Debug {
    /// The engine's name for logs and `/ready` (`edge`, `server`).
    fn engine(&self) -> &'static str;
    /// Writes points (replacing those with the same id).
    async fn upsert(&self, points: Vec<Point>) -> Result<(), StoreError>;
    /// The best hits for a query, best first, at most `limit`.
    async fn search(&self, query: Query) -> Result<Vec<Hit>, StoreError>;
    /// Deletes every point the filter matches; how many there were.
    async fn delete(&self, filter: Filter) -> Result<u64, StoreError>;
    /// How many points the filter matches.
    async fn count(&self, filter: Filter) -> Result<u64, StoreError>;
    /// The points the filter matches, in no particular order, at most `limit` (without vectors).
    async fn scroll(&self, filter: Filter, limit: usize) -> Result<Vec<Hit>, StoreError>;
}
