//! `semantic.documents.ingest` (a stored upload read, chunked, embedded and indexed, with
//! `progress` events on the way) and `semantic.documents.list`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use common::events::{ErrorData, Progress, TaskEvents, TextCompleted};
use common::payloads::semantic::{IngestPayload, ListDocumentsPayload, MAX_DOCUMENT_BYTES};
use common::storage::{Storage, StorageError};
use common::worker::{Action, HandlerError, Task};

use super::index_error;
use super::search::scope;
use crate::index::{Index, NewDocument};
use crate::ingest::chunk::Chunker;
use crate::ingest::{DocumentError, extract};

/// The most documents one list answers.
pub const MAX_LISTED: usize = 1000;

/// Serves `semantic.documents.ingest`.
#[derive(Debug, Clone)]
pub struct Ingest {
    index: Index,
    storage: Storage,
    chunker: Arc<Chunker>,
    batch_size: usize,
}

impl Ingest {
    /// Ingests files of `storage` into `index`, cut by `chunker`, embedding `batch_size` chunks
    /// per call (one `progress` event each).
    pub fn new(index: Index, storage: Storage, chunker: Arc<Chunker>, batch_size: usize) -> Self {
        Self {
            index,
            storage,
            chunker,
            batch_size: batch_size.max(1),
        }
    }
}

/// A refusal of the document itself: the client's to fix, never retried nor dead-lettered.
fn refused(code: &str, message: impl Into<String>) -> HandlerError {
    HandlerError {
        error: ErrorData::new("semantic", code, message, false),
        rejected: true,
    }
}

async fn progress(
    events: &TaskEvents,
    stage: &str,
    fraction: f64,
    message: String,
    counts: Option<(usize, usize)>,
) -> Result<(), HandlerError> {
    events
        .progress(&Progress {
            stage: stage.to_owned(),
            fraction: Some(fraction),
            message,
            chunks_processed: counts.map(|(done, _)| done as u64),
            total_chunks: counts.map(|(_, total)| total as u64),
            ..Progress::default()
        })
        .await?;
    Ok(())
}

#[async_trait]
impl Action<IngestPayload> for Ingest {
    async fn run(&self, task: Task, payload: IngestPayload) -> Result<(), HandlerError> {
        let Some(user) = task.action.user_id else {
            return Err(HandlerError::rejected(
                "invalid_payload",
                "a document is ingested for a user: the action has no user_id",
            ));
        };
        let tenant = task.action.tenant_id;
        // Read first, before any event: a storage hiccup here is retried like any other.
        let object = self
            .storage
            .get(tenant, &payload.key)
            .await
            .map_err(|e| match e {
                StorageError::NotFound | StorageError::Invalid(_) => {
                    refused("not_found", "the uploaded file is not there (any more)")
                }
                e => {
                    tracing::warn!(error = %e, "document not read");
                    HandlerError::retryable(
                        "semantic",
                        "storage_unavailable",
                        "the document could not be read",
                    )
                }
            })?;
        let outcome = self
            .ingest(&task, &payload, user.to_string(), object.bytes)
            .await;
        // Indexed, refused or failed for good: the upload has served. Not when the runtime may
        // run the action again (a retryable failure, a crash): that run reads it again.
        let again = matches!(&outcome, Err(e) if e.error.retryable);
        if !again && let Err(e) = self.storage.delete(tenant, &payload.key).await {
            tracing::warn!(error = %e, key = %payload.key, "the ingested upload was not deleted");
        }
        outcome
    }
}

impl Ingest {
    async fn ingest(
        &self,
        task: &Task,
        p: &IngestPayload,
        user: String,
        bytes: bytes::Bytes,
    ) -> Result<(), HandlerError> {
        let started = Instant::now();
        let events = &task.events;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(refused(
                "file_too_large",
                format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"),
            ));
        }
        progress(
            events,
            "reading",
            0.02,
            format!("Reading {} ({} bytes)", p.name, bytes.len()),
            None,
        )
        .await?;
        let (format, chunker) = (p.format.clone(), Arc::clone(&self.chunker));
        let read = tokio::task::spawn_blocking(move || {
            let text = extract::text(&format, &bytes)?;
            let chunks = chunker.chunks(&format, &text);
            Ok::<_, DocumentError>((text.chars().count(), chunks))
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "document reading stopped");
            refused("invalid_document", "the document could not be read")
        })?;
        let (characters, chunks) = read.map_err(|e| refused("invalid_document", e.0))?;
        let total = chunks.len();
        if total == 0 {
            return Err(refused("invalid_document", "the document has no text"));
        }
        progress(
            events,
            "chunking",
            0.1,
            format!("{characters} characters in {total} chunks"),
            Some((0, total)),
        )
        .await?;
        let mut dense = Vec::with_capacity(total);
        for batch in chunks.chunks(self.batch_size) {
            let embedded = tokio::select! {
                () = task.cancel.cancelled() => return Ok(()),
                r = self.index.embed(batch) => r,
            };
            dense.extend(embedded.map_err(|e| index_error(e.into()))?);
            let done = dense.len();
            progress(
                events,
                "embedding",
                0.1 + 0.8 * done as f64 / total as f64,
                format!("Embedded {done} of {total} chunks"),
                Some((done, total)),
            )
            .await?;
        }
        if task.cancel.is_cancelled() {
            return Ok(());
        }
        progress(
            events,
            "indexing",
            0.95,
            format!("Writing {total} chunks to the index"),
            Some((total, total)),
        )
        .await?;
        let doc = NewDocument {
            tenant: task.action.tenant_id.to_string(),
            user,
            document_id: p.document_id,
            name: p.name.clone(),
            tags: p.tags.clone(),
            metadata: p.metadata.clone(),
            created_at: Utc::now(),
        };
        let Some(before) = self
            .index
            .replace_document(&doc, &chunks, dense)
            .await
            .map_err(index_error)?
        else {
            return Err(refused(
                "not_found",
                "no such document of yours: choose another document_id",
            ));
        };
        let took_ms = started.elapsed().as_millis();
        tracing::info!(
            document_id = %p.document_id,
            chunks = total,
            replaced = before,
            took_ms,
            "document ingested"
        );
        let mut done = TextCompleted::new("", serde_json::Value::Null, "stop");
        done.data = Some(json!({
            "status": "completed",
            "document_id": p.document_id,
            "name": p.name,
            "chunks": total,
            "characters": characters,
            "replaced": before,
            "chunk_tokens": self.chunker.tokens(),
            "took_ms": took_ms,
        }));
        events.text_completed(&done).await?;
        Ok(())
    }
}

/// Serves `semantic.documents.list`.
#[derive(Debug, Clone)]
pub struct ListDocuments(pub Index);

#[async_trait]
impl Action<ListDocumentsPayload> for ListDocuments {
    async fn run(&self, task: Task, payload: ListDocumentsPayload) -> Result<(), HandlerError> {
        let scope = scope(&task, payload.all_users);
        let firsts = self
            .0
            .documents(&scope, MAX_LISTED)
            .await
            .map_err(index_error)?;
        let documents: Vec<_> = firsts
            .iter()
            .map(|hit| {
                let p = &hit.payload;
                json!({
                    "document_id": p.document_id,
                    "name": p.document_name,
                    "chunks": p.chunk_count,
                    "tags": p.tags,
                    "metadata": p.metadata,
                    "user_id": p.user,
                    "created_at": DateTime::<Utc>::from_timestamp(p.created_at, 0)
                        .map(|t| t.to_rfc3339()),
                })
            })
            .collect();
        let mut done = TextCompleted::new("", serde_json::Value::Null, "stop");
        done.data = Some(json!({ "documents": documents }));
        task.events.text_completed(&done).await?;
        Ok(())
    }
}
