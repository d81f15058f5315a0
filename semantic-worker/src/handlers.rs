//! The semantic-worker's actions, one file per family: `semantic.search.execute`,
//! `semantic.messages.index` and `semantic.points.delete`, `semantic.embeddings.create`,
//! `semantic.documents.ingest` and `semantic.documents.list`. Each unpacks its
//! task and calls [`crate::index::Index`]; this file maps the index's failures to `error` events.

pub mod documents;
pub mod embed;
pub mod messages;
pub mod search;

use common::worker::HandlerError;

use crate::embed::EmbedError;
use crate::index::IndexError;
use crate::store::StoreError;

/// The `error` a failure of the index becomes (stage `semantic`). An embedder or a store that
/// is away is retried by the runtime while nothing reached the client; an embedder that refuses
/// the input is the caller's to change.
pub fn index_error(e: IndexError) -> HandlerError {
    match e {
        IndexError::Embed(EmbedError::Invalid(m)) => HandlerError::rejected("unsupported_input", m),
        IndexError::Embed(EmbedError::Failed(m)) => {
            tracing::warn!(error = %m, "embedding failed");
            HandlerError::fatal("semantic", "embedding_failed", m)
        }
        IndexError::Embed(EmbedError::Provider(e)) => {
            tracing::warn!(error = %e, "embedding provider failed");
            let mut error = if e.retryable() {
                HandlerError::retryable("semantic", e.code(), e.to_string())
            } else {
                HandlerError::fatal("semantic", e.code(), e.to_string())
            };
            error.error.retry_after_secs = e.retry_after().map(|d| d.as_secs().max(1));
            error
        }
        IndexError::Store(StoreError::Unavailable(m)) => {
            tracing::warn!(error = %m, "vector store failed");
            HandlerError::retryable(
                "semantic",
                "index_unavailable",
                "the search index is unavailable",
            )
        }
        IndexError::Store(StoreError::Invalid(m)) => {
            tracing::error!(error = %m, "vector store refused a request");
            HandlerError::fatal(
                "semantic",
                "index_unavailable",
                "the search index refused the request",
            )
        }
    }
}
