//! The edge store's directory: this process's claim on it, the collection's layout (vectors,
//! WAL, optimizer thresholds, payload indexes) and the checks made before a shard is loaded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use qdrant_edge::{
    CreateIndex, Distance, EdgeConfig, EdgeOptimizersConfig, EdgeShard, EdgeSparseVectorParams,
    EdgeVectorParams, FieldIndexOperations, Modifier, PayloadFieldSchema, PayloadSchemaType,
    UpdateOperation,
};

use super::convert::key;
use super::{EdgeOptions, engine, io};
use crate::store::{DENSE, INTEGER_FIELDS, KEYWORD_FIELDS, SPARSE, StoreError};

pub(super) fn collection_config(dimensions: usize, options: &EdgeOptions) -> EdgeConfig {
    EdgeConfig::builder()
        .vector(
            DENSE,
            EdgeVectorParams::builder(dimensions, Distance::Cosine).build(),
        )
        .sparse_vector(
            SPARSE,
            EdgeSparseVectorParams::builder()
                .modifier(Modifier::Idf)
                .build(),
        )
        .wal_enabled(true)
        .optimizers(EdgeOptimizersConfig {
            indexing_threshold: options.indexing_threshold_kb,
            ..EdgeOptimizersConfig::default()
        })
        .build()
}

/// Refuses, before touching anything, a directory made for another dense size or without the
/// IDF-weighted BM25 vector.
pub(super) fn check_layout(dir: &Path, dimensions: usize) -> Result<(), StoreError> {
    let Some(stored) = EdgeConfig::load(dir) else {
        // Segments without a config file: the engine checks them against ours on load.
        return Ok(());
    };
    let stored = stored
        .map_err(|e| StoreError::Unavailable(format!("edge store {}: {e}", dir.display())))?;
    if stored
        .sparse_vectors
        .get(SPARSE)
        .is_none_or(|s| s.modifier != Some(Modifier::Idf))
    {
        return Err(StoreError::Invalid(format!(
            "edge store {} has no `{SPARSE}` vector with IDF: it was not made by this worker",
            dir.display()
        )));
    }
    match stored.vectors.get(DENSE) {
        Some(v) if v.size == dimensions => Ok(()),
        Some(v) => Err(StoreError::Invalid(format!(
            "edge store {} holds {}-dimensional vectors but the embedder gives {dimensions}: \
             a different embedding model needs a different directory (or a re-index into one)",
            dir.display(),
            v.size
        ))),
        None => Err(StoreError::Invalid(format!(
            "edge store {} has no `{DENSE}` vector: it was not made by this worker",
            dir.display()
        ))),
    }
}

/// Creates the payload indexes the shard lacks (all of them for a new one).
pub(super) fn ensure_indexes(shard: &EdgeShard) -> Result<(), StoreError> {
    let existing = shard.info().map_err(engine)?.payload_schema;
    let wanted = KEYWORD_FIELDS
        .iter()
        .map(|f| (*f, PayloadSchemaType::Keyword))
        .chain(
            INTEGER_FIELDS
                .iter()
                .map(|f| (*f, PayloadSchemaType::Integer)),
        );
    for (field, kind) in wanted {
        let key = key(field)?;
        if existing.get(&key).is_some_and(|i| i.data_type == kind) {
            continue;
        }
        shard
            .update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(CreateIndex {
                    field_name: key,
                    field_schema: Some(PayloadFieldSchema::FieldType(kind)),
                }),
            ))
            .map_err(engine)?;
    }
    Ok(())
}

/// This process's claim on a directory, released on drop.
#[derive(Debug)]
pub(super) struct DirClaim(pub(super) PathBuf);

static CLAIMED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

impl DirClaim {
    pub(super) fn take(dir: &Path) -> Result<Self, StoreError> {
        let dir = dir.canonicalize().map_err(|e| io(dir, e))?;
        let mut claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
        if !claimed.insert(dir.clone()) {
            return Err(StoreError::Invalid(format!(
                "edge store {} is already open in this process",
                dir.display()
            )));
        }
        Ok(Self(dir))
    }
}

impl Drop for DirClaim {
    fn drop(&mut self) {
        CLAIMED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}
