//! A document as ingestion reads it: the stored file's text ([`extract`]) cut into overlapping
//! chunks that fit the embedder ([`chunk`]). No bus or store types here: the handler
//! (`handlers::documents`) embeds and indexes what these give.

pub mod chunk;
pub mod extract;

/// Why a document cannot be ingested as it is: the client's to change (`invalid_document`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DocumentError(pub String);

/// The longest text one document may hold, characters (after extraction): at the default chunk
/// size that is about 10,000 chunks, the most one ingestion keeps in memory before it writes.
pub const MAX_TEXT_CHARS: usize = 6_000_000;
