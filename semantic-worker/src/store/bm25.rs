//! BM25 sparse vectors for documents and queries, computed here and not by the engine, so both
//! engines store and search the same vectors.
//!
//! Qdrant Edge's own embedder (`EdgeBm25`, English: lowercasing, English stop words, Snowball
//! stemming, token id = murmur3 of the token) is wire-compatible with Qdrant's server-side BM25
//! and fastembed's `Qdrant/bm25`. A document vector carries only the term-frequency part
//! (`k1 = 1.2`, `b = 0.75`, average length 256 tokens); a query vector carries 1.0 per distinct
//! token. The IDF part is applied by the engine at query time (`Modifier::Idf` on [`SPARSE`]), over
//! the whole collection, so adding documents never requires re-embedding the old ones.
//!
//! [`SPARSE`]: super::SPARSE

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};

use super::{Sparse, StoreError};

/// The English BM25 embedder.
#[derive(Debug)]
pub struct Bm25 {
    inner: EdgeBm25,
}

impl Bm25 {
    /// The embedder with Qdrant's defaults for English.
    pub fn english() -> Result<Self, StoreError> {
        let config = EdgeBm25Config {
            language: Some("english".into()),
            ..EdgeBm25Config::default()
        };
        let inner = EdgeBm25::new(config)
            .map_err(|e| StoreError::Unavailable(format!("BM25 embedder: {e}")))?;
        Ok(Self { inner })
    }

    /// The vector a point stores for `text` (term-frequency part).
    pub fn document(&self, text: &str) -> Sparse {
        let v = self.inner.embed_document(text);
        Sparse {
            indices: v.indices,
            values: v.values,
        }
    }

    /// The vector a keyword or hybrid search sends for `text` (1.0 per distinct token). Empty when
    /// the text has only stop words.
    pub fn query(&self, text: &str) -> Sparse {
        let v = self.inner.embed_query(text);
        Sparse {
            indices: v.indices,
            values: v.values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_and_drops_stop_words() {
        let bm25 = Bm25::english().expect("english");
        let q = bm25.query("the foxes");
        assert_eq!(q.indices.len(), 1, "'the' is a stop word");
        assert_eq!(q.values, vec![1.0]);
        let d = bm25.document("a quick brown fox");
        assert!(d.indices.contains(&q.indices[0]), "foxes is stemmed to fox");
        assert!(bm25.query("the and of").indices.is_empty());
    }

    #[test]
    fn repeated_words_weigh_more_in_documents_only() {
        let bm25 = Bm25::english().expect("english");
        let once = bm25.document("invoice");
        let twice = bm25.document("invoice invoice");
        assert!(twice.values[0] > once.values[0]);
        assert_eq!(bm25.query("invoice invoice").values, vec![1.0]);
    }
}
