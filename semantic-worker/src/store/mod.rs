//! The vector store: points with a dense and a BM25 sparse vector and their payload, searched in
//! three modes, always within one tenant. One trait, two Qdrant engines.
//!
//! The contract's semantics live here once, so the two engines cannot drift apart: which vectors a
//! mode needs and how a request is validated ([`Ranking`]), which payload conditions a [`Filter`]
//! means ([`Condition`]), the payload fields indexed, the RRF constant and the prefetch depth.
//! [`edge`] (Qdrant Edge, in-process) and [`server`] (a Qdrant server over gRPC) only translate
//! them into their engine's types.

pub mod bm25;
pub mod edge;
pub mod server;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// The source and the mode are the actions' own (`semantic.search.execute`): one spelling everywhere.
pub use common::payloads::semantic::{Mode, Source};

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
    /// How many chunks its document has (chunks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_count: Option<u32>,
    /// The client's own fields given at ingestion (chunks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
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
    /// Only chunks from this place in their document on (0: the first).
    pub chunks_from: Option<u32>,
    /// Only chunks up to this place in their document (inclusive).
    pub chunks_to: Option<u32>,
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
    /// The points the filter matches, in no particular order, at most `limit` (without vectors;
    /// `score` is 0).
    async fn scroll(&self, filter: Filter, limit: usize) -> Result<Vec<Hit>, StoreError>;
    /// Makes everything written durable before the process ends (the worker calls it on
    /// shutdown). Nothing to do for a server.
    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The `k` of Reciprocal Rank Fusion in Qdrant's formula, `1 / (rank + k - 1)` with ranks from 1:
/// 61 is the RRF paper's (and Elasticsearch's, OpenSearch's) k = 60 in `1 / (k + rank)`. Qdrant's
/// own default is 2, which lets one retriever's first hit outweigh a point both retrievers rank
/// second; with 61 a point both signals agree on wins, which is what hybrid is asked for here (a
/// short query's BM25 order is noisy at the top).
pub const RRF_K: usize = 61;

/// How many candidates each prefetch of a hybrid search fetches: fusion can only rank what the
/// prefetches return, so they look deeper than `limit`.
pub fn prefetch_limit(limit: usize) -> usize {
    limit.saturating_mul(4).max(50)
}

/// Payload fields with a keyword index (every field a [`Filter`] matches on, and the digest the
/// indexer deduplicates by).
pub const KEYWORD_FIELDS: [&str; 8] = [
    "tenant",
    "user",
    "source",
    "role",
    "tags",
    "session_id",
    "document_id",
    "content_sha256",
];

/// Payload fields with an integer index (range filters).
pub const INTEGER_FIELDS: [&str; 2] = ["created_at", "chunk_index"];

/// One payload condition of a [`Filter`], engine-neutral; a filter is all of them (AND).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The keyword field equals the value.
    Is(&'static str, String),
    /// The keyword field (or one of its values, for arrays) is one of these.
    AnyOf(&'static str, Vec<String>),
    /// The integer field lies within the bounds (both inclusive).
    Between(&'static str, Option<i64>, Option<i64>),
}

impl Filter {
    /// A filter on one tenant and nothing else.
    pub fn tenant(tenant: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            ..Self::default()
        }
    }

    /// The conditions this filter means, tenant first. An empty list field adds no condition.
    pub fn conditions(&self) -> Vec<Condition> {
        let mut all = vec![Condition::Is("tenant", self.tenant.clone())];
        if let Some(user) = &self.user {
            all.push(Condition::Is("user", user.clone()));
        }
        let sources = self.sources.iter().map(|s| s.as_str().to_owned()).collect();
        for (field, values) in [
            ("source", sources),
            ("role", self.roles.clone()),
            ("tags", self.tags.clone()),
            ("session_id", self.session_ids.clone()),
            ("document_id", self.document_ids.clone()),
        ] {
            if !values.is_empty() {
                all.push(Condition::AnyOf(field, values));
            }
        }
        if self.from.is_some() || self.to.is_some() {
            all.push(Condition::Between("created_at", self.from, self.to));
        }
        if self.chunks_from.is_some() || self.chunks_to.is_some() {
            all.push(Condition::Between(
                "chunk_index",
                self.chunks_from.map(i64::from),
                self.chunks_to.map(i64::from),
            ));
        }
        all
    }

    /// Refuses a filter that would not confine a request to one tenant.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.tenant.is_empty() {
            return Err(StoreError::Invalid("the filter has no tenant".into()));
        }
        Ok(())
    }
}

/// What a validated [`Query`] ranks by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ranking<'a> {
    /// Nearest by the dense vector.
    Dense(&'a [f32]),
    /// Nearest by the BM25 vector (IDF applied by the engine).
    Sparse(&'a Sparse),
    /// Both as prefetches of [`prefetch_limit`] candidates, fused by RRF with [`RRF_K`].
    Hybrid(&'a [f32], &'a Sparse),
}

impl Query {
    /// Checks the query against a store of `dimensions` and says what it ranks by; the same
    /// rules for both engines, so a bad query is [`StoreError::Invalid`] on either, never a panic
    /// or an engine error.
    pub fn ranking(&self, dimensions: usize) -> Result<Ranking<'_>, StoreError> {
        self.filter.check()?;
        let dense = match (self.mode, &self.dense) {
            (Mode::Semantic | Mode::Hybrid, None) => {
                return Err(StoreError::Invalid(format!(
                    "a {:?} search needs the query's dense vector",
                    self.mode
                )));
            }
            (_, Some(dense)) => {
                check_dense(dense, dimensions)?;
                Some(dense.as_slice())
            }
            (Mode::Keyword, None) => None,
        };
        let sparse = match (self.mode, &self.sparse) {
            (Mode::Keyword | Mode::Hybrid, None) => {
                return Err(StoreError::Invalid(format!(
                    "a {:?} search needs the query's BM25 vector",
                    self.mode
                )));
            }
            (_, Some(sparse)) => {
                sparse.check()?;
                Some(sparse)
            }
            (Mode::Semantic, None) => None,
        };
        if self.score_threshold.is_some_and(|t| !t.is_finite()) {
            return Err(StoreError::Invalid(
                "score_threshold is not a number".into(),
            ));
        }
        Ok(match (self.mode, dense, sparse) {
            (Mode::Semantic, Some(dense), _) => Ranking::Dense(dense),
            (Mode::Keyword, _, Some(sparse)) => Ranking::Sparse(sparse),
            (Mode::Hybrid, Some(dense), Some(sparse)) => Ranking::Hybrid(dense, sparse),
            _ => return Err(StoreError::Invalid("the query lacks a vector".into())),
        })
    }
}

impl Point {
    /// Checks a point against a store of `dimensions` (the same rules for both engines).
    pub fn check(&self, dimensions: usize) -> Result<(), StoreError> {
        check_dense(&self.dense, dimensions)?;
        self.sparse.check()?;
        if self.payload.tenant.is_empty() {
            return Err(StoreError::Invalid(format!(
                "point {} has no tenant",
                self.id
            )));
        }
        Ok(())
    }
}

impl Sparse {
    /// Ids unique, one weight per id, weights finite.
    fn check(&self) -> Result<(), StoreError> {
        if self.indices.len() != self.values.len() {
            return Err(StoreError::Invalid(format!(
                "a sparse vector has {} ids and {} weights",
                self.indices.len(),
                self.values.len()
            )));
        }
        if self.values.iter().any(|v| !v.is_finite()) {
            return Err(StoreError::Invalid(
                "a sparse weight is not a number".into(),
            ));
        }
        let mut ids = self.indices.clone();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(StoreError::Invalid("a sparse vector repeats an id".into()));
        }
        Ok(())
    }
}

fn check_dense(dense: &[f32], dimensions: usize) -> Result<(), StoreError> {
    if dense.len() != dimensions {
        return Err(StoreError::Invalid(format!(
            "a dense vector has {} dimensions, the store {dimensions}",
            dense.len()
        )));
    }
    if dense.iter().any(|v| !v.is_finite()) {
        return Err(StoreError::Invalid("a dense value is not a number".into()));
    }
    if dense.iter().all(|v| *v == 0.0) {
        // Cosine of a zero vector is undefined; Qdrant would store NaNs.
        return Err(StoreError::Invalid("a dense vector is all zeros".into()));
    }
    Ok(())
}
