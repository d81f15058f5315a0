//! The semantic worker: finds a tenant's past messages and documents by meaning and by keyword.
//! Points carry a dense embedding and a BM25 sparse vector in one Qdrant collection (the
//! in-process Qdrant Edge by default, a Qdrant server when `QDRANT_URL` is set); a search is
//! dense, keyword, or both fused with Reciprocal Rank Fusion.

pub mod embed;
pub mod store;
