//! The semantic index as the handlers use it: texts in (embedded, BM25-weighted, deduplicated by
//! content), hits out, within one tenant. No bus or HTTP types here: the store and the embedder
//! are traits.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use common::digest::{derived_uuid as point_id, sha256_hex};
use common::payloads::semantic::{IndexedMessage, SearchPayload};

use crate::embed::{EmbedError, Embedder};
use crate::store::bm25::Bm25;
use crate::store::{Filter, Hit, Mode, Payload, Point, Query, Source, StoreError, VectorStore};

/// Who a search or an index write is for: the tenant always, the user unless the whole tenant
/// is meant (an admin's search, an internal service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The tenant.
    pub tenant: String,
    /// The user, when the search is limited to them.
    pub user: Option<String>,
}

/// Why the index could not serve.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The embedder failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The store, the embedder that fills its dense vectors, and BM25 for its sparse ones.
#[derive(Debug, Clone)]
pub struct Index {
    store: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    bm25: Arc<Bm25>,
    batch_size: usize,
}

/// A document's version to index, with who it belongs to.
#[derive(Debug, Clone)]
pub struct NewDocument {
    /// The tenant.
    pub tenant: String,
    /// The user who ingested it.
    pub user: String,
    /// Its id.
    pub document_id: Uuid,
    /// Its file name.
    pub name: String,
    /// Tags of each chunk.
    pub tags: Vec<String>,
    /// The client's fields, kept with each chunk.
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// When this version was ingested.
    pub created_at: DateTime<Utc>,
}

/// Points per store write when a document is indexed.
const UPSERT_BATCH: usize = 256;

/// What a search found.
#[derive(Debug, Clone)]
pub struct Found {
    /// Best first.
    pub hits: Vec<Hit>,
    /// Milliseconds spent embedding the query.
    pub embed_ms: f64,
    /// Milliseconds spent in the store.
    pub search_ms: f64,
}

impl Index {
    /// An index over `store`, embedding with `embedder` in batches of `batch_size`.
    pub fn new(
        store: Arc<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
        bm25: Arc<Bm25>,
        batch_size: usize,
    ) -> Self {
        Self {
            store,
            embedder,
            bm25,
            batch_size: batch_size.max(1),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }

    /// The embedder of the index's dense vectors.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// Embeds `texts` in batches.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            vectors.extend(self.embedder.embed(batch).await?.vectors);
        }
        Ok(vectors)
    }

    /// Indexes the messages of a chat turn of `session` (empty texts skipped). The same text of
    /// one user is one point (its id is derived from the tenant, the user and the text's
    /// SHA-256), so indexing it again replaces it rather than adding a second. Returns how many
    /// points were written.
    pub async fn index_messages(
        &self,
        tenant: &str,
        user: &str,
        session: Uuid,
        messages: &[IndexedMessage],
        tags: &[String],
    ) -> Result<usize, IndexError> {
        let now = Utc::now();
        let mut seen = std::collections::HashSet::new();
        let kept: Vec<&IndexedMessage> = messages
            .iter()
            .filter(|m| !m.content.trim().is_empty())
            .filter(|m| seen.insert(sha256_hex(m.content.as_bytes())))
            .collect();
        if kept.is_empty() {
            return Ok(0);
        }
        let texts: Vec<String> = kept.iter().map(|m| m.content.clone()).collect();
        let dense = self.embed(&texts).await?;
        let points = kept
            .iter()
            .zip(dense)
            .map(|(m, dense)| {
                let hash = sha256_hex(m.content.as_bytes());
                Point {
                    id: point_id(&[tenant, user, "message", &hash]),
                    dense,
                    sparse: self.bm25.document(&m.content),
                    payload: Payload {
                        tenant: tenant.to_owned(),
                        user: user.to_owned(),
                        source: Source::Message,
                        text: m.content.clone(),
                        content_sha256: hash,
                        created_at: m.created_at.unwrap_or(now).timestamp(),
                        tags: tags.to_vec(),
                        session_id: Some(session.to_string()),
                        message_id: m.message_id.clone(),
                        role: Some(m.role.clone()),
                        document_id: None,
                        document_name: None,
                        chunk_index: None,
                        chunk_count: None,
                        metadata: None,
                    },
                }
            })
            .collect::<Vec<_>>();
        let n = points.len();
        self.store.upsert(points).await?;
        Ok(n)
    }

    /// Writes the chunks of a document (with their dense vectors, in order) as the document's
    /// new content, then removes the chunks an earlier, longer version had past the new end; a
    /// chunk's point id is the tenant's, the document's and its place's, so writing a version
    /// replaces the earlier one in place. Returns how many chunks the document had before.
    ///
    /// A document id another user of the tenant holds is refused (`Ok(None)`), so one user
    /// cannot overwrite another's document by naming its id. When a write fails half-way, the
    /// document's chunks are deleted rather than left half-written.
    pub async fn replace_document(
        &self,
        doc: &NewDocument,
        chunks: &[String],
        dense: Vec<Vec<f32>>,
    ) -> Result<Option<u64>, IndexError> {
        let all = Filter {
            document_ids: vec![doc.document_id.to_string()],
            ..Filter::tenant(&doc.tenant)
        };
        let mine = Filter {
            user: Some(doc.user.clone()),
            ..all.clone()
        };
        let before = self.store.count(all.clone()).await?;
        if before > 0 && self.store.count(mine).await? != before {
            return Ok(None);
        }
        let count = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
        let document_id = doc.document_id.to_string();
        let points: Vec<Point> = chunks
            .iter()
            .zip(dense)
            .enumerate()
            .map(|(i, (text, dense))| {
                let index = u32::try_from(i).unwrap_or(u32::MAX);
                Point {
                    id: point_id(&[&doc.tenant, "document", &document_id, &index.to_string()]),
                    dense,
                    sparse: self.bm25.document(text),
                    payload: Payload {
                        tenant: doc.tenant.clone(),
                        user: doc.user.clone(),
                        source: Source::Document,
                        text: text.clone(),
                        content_sha256: sha256_hex(text.as_bytes()),
                        created_at: doc.created_at.timestamp(),
                        tags: doc.tags.clone(),
                        session_id: None,
                        message_id: None,
                        role: None,
                        document_id: Some(document_id.clone()),
                        document_name: Some(doc.name.clone()),
                        chunk_index: Some(index),
                        chunk_count: Some(count),
                        metadata: doc.metadata.clone(),
                    },
                }
            })
            .collect();
        let mut written = points.into_iter().peekable();
        while written.peek().is_some() {
            let batch: Vec<Point> = written.by_ref().take(UPSERT_BATCH).collect();
            if let Err(e) = self.store.upsert(batch).await {
                if let Err(cleanup) = self.store.delete(all.clone()).await {
                    tracing::error!(error = %cleanup, %document_id, "a half-written document was not removed");
                }
                return Err(e.into());
            }
        }
        let stale = Filter {
            chunks_from: Some(count),
            ..all
        };
        self.store.delete(stale).await?;
        Ok(Some(before))
    }

    /// The documents of `scope` (their first chunks, which carry the name, the count and the
    /// metadata), newest first, at most `limit`.
    pub async fn documents(&self, scope: &Scope, limit: usize) -> Result<Vec<Hit>, IndexError> {
        let filter = Filter {
            user: scope.user.clone(),
            sources: vec![Source::Document],
            chunks_to: Some(0),
            ..Filter::tenant(&scope.tenant)
        };
        let mut firsts = self.store.scroll(filter, limit).await?;
        firsts.sort_by(|a, b| {
            b.payload
                .created_at
                .cmp(&a.payload.created_at)
                .then_with(|| a.payload.document_name.cmp(&b.payload.document_name))
        });
        Ok(firsts)
    }

    /// Searches within `scope`.
    pub async fn search(
        &self,
        scope: &Scope,
        request: &SearchPayload,
    ) -> Result<Found, IndexError> {
        let mode = request.mode;
        let started = Instant::now();
        let dense = match mode {
            Mode::Semantic | Mode::Hybrid => {
                let texts = [request.query.clone()];
                let mut vectors = self.embedder.embed(&texts).await?.vectors;
                Some(vectors.pop().unwrap_or_default())
            }
            Mode::Keyword => None,
        };
        let embed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let sparse = match mode {
            Mode::Keyword | Mode::Hybrid => Some(self.bm25.query(&request.query)),
            Mode::Semantic => None,
        };
        let query = Query {
            mode,
            dense,
            sparse,
            filter: filter(scope, request),
            limit: request.limit as usize,
            score_threshold: request.score_threshold,
        };
        let started = Instant::now();
        let hits = self.store.search(query).await?;
        Ok(Found {
            hits,
            embed_ms,
            search_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

/// The store's filter for a search request in `scope`.
fn filter(scope: &Scope, r: &SearchPayload) -> Filter {
    Filter {
        tenant: scope.tenant.clone(),
        user: scope.user.clone(),
        sources: r.sources.clone(),
        roles: r.roles.clone(),
        tags: r.tags.clone(),
        session_ids: r.session_ids.iter().map(Uuid::to_string).collect(),
        document_ids: r.document_ids.iter().map(Uuid::to_string).collect(),
        from: r.from.map(|t| t.timestamp()),
        to: r.to.map(|t| t.timestamp()),
        chunks_from: None,
        chunks_to: None,
    }
}

/// A hit as clients see it.
pub fn hit_json(hit: &Hit) -> Value {
    let p = &hit.payload;
    let created_at = DateTime::<Utc>::from_timestamp(p.created_at, 0).map(|t| t.to_rfc3339());
    let mut v = json!({
        "id": hit.id,
        "score": hit.score,
        "text": p.text,
        "source": p.source,
        "tags": p.tags,
        "created_at": created_at,
    });
    for (name, value) in [
        ("session_id", &p.session_id),
        ("message_id", &p.message_id),
        ("role", &p.role),
        ("document_id", &p.document_id),
        ("document_name", &p.document_name),
    ] {
        if let Some(value) = value {
            v[name] = json!(value);
        }
    }
    if let Some(i) = p.chunk_index {
        v["chunk_index"] = json!(i);
    }
    if let Some(metadata) = &p.metadata {
        v["metadata"] = json!(metadata);
    }
    v
}
