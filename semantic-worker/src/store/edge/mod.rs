//! [`EdgeStore`]: the vector store inside the worker's process, on Qdrant Edge (`qdrant-edge`,
//! Qdrant's engine as a library: segments, HNSW, payload indexes, WAL), in one directory.
//!
//! - **One shard per directory per process.** The engine takes no lock on its directory; two
//!   shards on one directory would overwrite each other's segments. [`EdgeStore::open`] refuses a
//!   directory this process already has open; running two worker processes on one directory is
//!   the operator's mistake to avoid (use the server engine to share a collection).
//! - **Blocking calls off the runtime.** The engine is synchronous; every call runs in
//!   `tokio::task::spawn_blocking`.
//! - **Locking.** Every `EdgeShard` method takes `&self` and the shard is `Send + Sync` (checked at
//!   compile time below): it serialises writes through its WAL mutex and reads through its segment
//!   holder's `RwLock`, and its optimizer swaps segments behind proxy segments so reads and writes
//!   go on while it runs. So the shard is shared in an `Arc` without a lock of ours around it,
//!   and searches run in parallel. The one lock we add (`writes`) makes a delete's count and the
//!   delete one step against upserts, so the count [`VectorStore::delete`] returns is exactly what
//!   it removed.
//! - **Optimization.** Without `optimize()` new points sit in the appendable segment and are
//!   searched by brute force (latency grows linearly: 7.7 ms p50 at 50k points against 1.7 ms
//!   optimized). `optimize()` builds the HNSW index, merges and vacuums segments; it is blocking
//!   and heavy (about 1.2 ms a point on 2 cores) and only does work once a segment passes
//!   Qdrant's indexing threshold (10 MB of vectors by default), so calling it is cheap otherwise.
//!   Policy: after every [`EdgeOptions::optimize_after`] points written (upserted or deleted)
//!   since the last run, one background task runs it; never on a search's path, never two at a
//!   time (a run that finds more writes waiting when it ends runs again). One run also starts at
//!   open, for what the WAL replayed. [`EdgeStore::optimize`] runs it on demand and waits.
//! - **Durability.** The WAL is on: an upsert or delete returns after its operation is in the
//!   WAL (a memory-mapped file), so it survives a crash of the process and is replayed at the
//!   next open; like the Qdrant server, the WAL is not fsynced per operation, so a power loss can
//!   lose the last operations. Segments and WAL are flushed after every optimization, by
//!   [`EdgeStore::close`] at shutdown (which first waits for a running optimization), and when
//!   the last handle is dropped (after a running optimization ends). An optimization cut short
//!   by the process ending leaves temporary segments the next open discards; it runs again.
//! - **Layout.** The dense vector's size is fixed when the directory is created; opening it
//!   with another size (or a directory without the IDF-weighted `bm25` vector) fails naming the
//!   directory, before anything is loaded: a new embedding model needs a new directory.

mod convert;
mod dir;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use qdrant_edge::{
    self as qe, EdgeShard, PointInsertOperations, PointOperations, ScrollRequest, UpdateOperation,
    WithPayloadInterface, WithVector,
};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use self::convert::{count_request, to_filter, to_hit, to_record, to_request};
use self::dir::{DirClaim, check_layout, collection_config, ensure_indexes};
use super::{Filter, Hit, Point, Query, StoreError, VectorStore};

/// Tuning of an [`EdgeStore`].
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeOptions {
    /// Points written since the last optimization that start a background one.
    pub optimize_after: u64,
    /// Qdrant's indexing threshold in KB of vectors: a segment is HNSW-indexed once it holds
    /// more (`None`: Qdrant's 10,000 KB, about 6,500 points of 384 dimensions). Tests lower it
    /// to make small stores build real indexes.
    pub indexing_threshold_kb: Option<usize>,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        Self {
            optimize_after: 1_000,
            indexing_threshold_kb: None,
        }
    }
}

/// What an [`EdgeStore`] holds (approximate while an optimization runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeStats {
    /// Points stored.
    pub points: u64,
    /// Vectors in HNSW-indexed segments (the rest are searched by brute force).
    pub indexed_vectors: u64,
    /// Segments.
    pub segments: u64,
}

/// The in-process Qdrant Edge engine on one directory. Cheap to clone (one shared shard).
#[derive(Debug, Clone)]
pub struct EdgeStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Declared before `claim`: fields drop in order, so the shard flushes before the directory
    /// is released.
    shard: EdgeShard,
    claim: DirClaim,
    dimensions: usize,
    options: EdgeOptions,
    /// Held by writes so a delete counts and deletes in one step.
    writes: Mutex<()>,
    /// Held by the one optimization running.
    optimizer: Arc<tokio::sync::Mutex<()>>,
    /// Points written since the last optimization started.
    pending: AtomicU64,
    closed: AtomicBool,
    /// Optimizations finished (background or on demand), for tests and `/ready`.
    optimized: watch::Sender<u64>,
    tasks: TaskTracker,
}

const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<EdgeShard>();
};

impl EdgeStore {
    /// Opens the store in `dir` (created with the collection's layout if empty, loaded and its WAL
    /// replayed otherwise) for dense vectors of `dimensions`.
    pub async fn open(dir: impl Into<PathBuf>, dimensions: usize) -> Result<Self, StoreError> {
        Self::open_with(dir, dimensions, EdgeOptions::default()).await
    }

    /// [`EdgeStore::open`] with tuning.
    pub async fn open_with(
        dir: impl Into<PathBuf>,
        dimensions: usize,
        options: EdgeOptions,
    ) -> Result<Self, StoreError> {
        let dir = dir.into();
        let inner = tokio::task::spawn_blocking(move || Inner::open(&dir, dimensions, options))
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening the edge store: {e}")))??;
        let store = Self {
            inner: Arc::new(inner),
        };
        store.spawn_optimize();
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.claim.0
    }

    /// Runs the optimizers now (after a running background optimization) and waits; whether
    /// anything was rebuilt.
    pub async fn optimize(&self) -> Result<bool, StoreError> {
        let _one = self.inner.optimizer.lock().await;
        self.inner.pending.store(0, Ordering::SeqCst);
        self.blocking(Inner::optimize_and_flush).await
    }

    /// What the engine holds, for `/ready` and tests.
    pub async fn stats(&self) -> Result<EdgeStats, StoreError> {
        self.blocking(|inner| {
            let info = inner.shard.info().map_err(engine)?;
            Ok(EdgeStats {
                points: info.points_count as u64,
                indexed_vectors: info.indexed_vectors_count as u64,
                segments: info.segments_count as u64,
            })
        })
        .await
    }

    /// Counts finished optimizations; changes when one ends.
    pub fn optimizations(&self) -> watch::Receiver<u64> {
        self.inner.optimized.subscribe()
    }

    /// Stops scheduling optimizations, waits for the one running if any, and flushes the WAL and
    /// segments to disk. An optimization cannot be interrupted (up to a minute for 50k new points
    /// on 2 cores): a shutdown with a deadline races this call against it; if the process ends
    /// first, nothing acknowledged is lost (the WAL has it) and the next open optimizes again.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.blocking(|inner| inner.shard.flush().map_err(engine))
            .await
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Unavailable(format!("edge store task: {e}")))?
    }

    /// Counts written points and starts an optimization when enough have arrived.
    fn wrote(&self, points: u64) {
        let pending = self.inner.pending.fetch_add(points, Ordering::SeqCst) + points;
        if pending >= self.inner.options.optimize_after {
            self.spawn_optimize();
        }
    }

    /// Starts a background optimization unless one is running (that one re-checks the writes
    /// waiting when it ends) or the store is closed.
    fn spawn_optimize(&self) {
        if self.inner.closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(one) = Arc::clone(&self.inner.optimizer).try_lock_owned() else {
            return;
        };
        // Weak between runs: dropping the last handle closes the shard (flush, directory
        // released) unless a run is under way, which then finishes first.
        let store = Arc::downgrade(&self.inner);
        self.inner.tasks.spawn(async move {
            let _one = one;
            while let Some(inner) = store.upgrade() {
                inner.pending.store(0, Ordering::SeqCst);
                let started = Instant::now();
                let run = Arc::clone(&inner);
                match tokio::task::spawn_blocking(move || run.optimize_and_flush()).await {
                    Ok(Ok(rebuilt)) => tracing::info!(
                        rebuilt,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        dir = %inner.claim.0.display(),
                        "edge store optimized"
                    ),
                    Ok(Err(e)) => tracing::error!(error = %e, "edge store optimization failed"),
                    Err(e) => tracing::error!(error = %e, "edge store optimization panicked"),
                }
                let again = inner.pending.load(Ordering::SeqCst) >= inner.options.optimize_after;
                if !again || inner.closed.load(Ordering::SeqCst) {
                    break;
                }
            }
        });
    }
}

impl Inner {
    fn open(dir: &Path, dimensions: usize, options: EdgeOptions) -> Result<Self, StoreError> {
        if dimensions == 0 {
            return Err(StoreError::Invalid("dense vectors need dimensions".into()));
        }
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let claim = DirClaim::take(dir)?;
        let config = collection_config(dimensions, &options);
        let exists = dir.join("edge_config.json").exists() || dir.join("segments").exists();
        let shard = if exists {
            check_layout(dir, dimensions)?;
            EdgeShard::load(dir, Some(config))
        } else {
            EdgeShard::new(dir, config)
        }
        .map_err(|e| StoreError::Unavailable(format!("edge store {}: {e}", dir.display())))?;
        ensure_indexes(&shard)?;
        Ok(Self {
            shard,
            claim,
            dimensions,
            options,
            writes: Mutex::new(()),
            optimizer: Arc::new(tokio::sync::Mutex::new(())),
            pending: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            optimized: watch::Sender::new(0),
            tasks: TaskTracker::new(),
        })
    }

    fn writes(&self) -> MutexGuard<'_, ()> {
        // Guards no data: a panic while held leaves nothing inconsistent.
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn optimize_and_flush(&self) -> Result<bool, StoreError> {
        let rebuilt = self.shard.optimize().map_err(engine)?;
        self.shard.flush().map_err(engine)?;
        self.optimized.send_modify(|n| *n += 1);
        Ok(rebuilt)
    }
}
#[async_trait]
impl VectorStore for EdgeStore {
    fn engine(&self) -> &'static str {
        "edge"
    }

    async fn close(&self) -> Result<(), StoreError> {
        EdgeStore::close(self).await
    }

    async fn upsert(&self, points: Vec<Point>) -> Result<(), StoreError> {
        for point in &points {
            point.check(self.inner.dimensions)?;
        }
        if points.is_empty() {
            return Ok(());
        }
        let n = points.len() as u64;
        let records = points
            .into_iter()
            .map(to_record)
            .collect::<Result<Vec<_>, _>>()?;
        self.blocking(move |inner| {
            let _writes = inner.writes();
            inner
                .shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::UpsertPoints(PointInsertOperations::PointsList(records)),
                ))
                .map_err(engine)
        })
        .await?;
        self.wrote(n);
        Ok(())
    }

    async fn search(&self, query: Query) -> Result<Vec<Hit>, StoreError> {
        let Some(request) = to_request(&query, self.inner.dimensions)? else {
            return Ok(Vec::new());
        };
        let threshold = query.score_threshold;
        self.blocking(move |inner| {
            let found = inner.shard.query(request).map_err(engine)?;
            found
                .into_iter()
                // The threshold is also the engine's; this keeps the contract's `>=` exact.
                .filter(|p| threshold.is_none_or(|t| p.score >= t))
                .map(|p| to_hit(p.id, p.score, p.payload))
                .collect()
        })
        .await
    }

    async fn delete(&self, filter: Filter) -> Result<u64, StoreError> {
        filter.check()?;
        let filter = to_filter(&filter)?;
        let deleted = self
            .blocking(move |inner| {
                let _writes = inner.writes();
                let n = inner
                    .shard
                    .count(count_request(filter.clone()))
                    .map_err(engine)?;
                if n > 0 {
                    inner
                        .shard
                        .update(UpdateOperation::PointOperation(
                            PointOperations::DeletePointsByFilter(filter),
                        ))
                        .map_err(engine)?;
                }
                Ok(n as u64)
            })
            .await?;
        self.wrote(deleted);
        Ok(deleted)
    }

    async fn count(&self, filter: Filter) -> Result<u64, StoreError> {
        filter.check()?;
        let filter = to_filter(&filter)?;
        self.blocking(move |inner| {
            let n = inner.shard.count(count_request(filter)).map_err(engine)?;
            Ok(n as u64)
        })
        .await
    }

    async fn scroll(&self, filter: Filter, limit: usize) -> Result<Vec<Hit>, StoreError> {
        filter.check()?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let request = ScrollRequest {
            limit: Some(limit),
            filter: Some(to_filter(&filter)?),
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: WithVector::Bool(false),
            ..ScrollRequest::default()
        };
        self.blocking(move |inner| {
            let (records, _next) = inner.shard.scroll(request).map_err(engine)?;
            records
                .into_iter()
                .map(|r| to_hit(r.id, 0.0, r.payload))
                .collect()
        })
        .await
    }
}

fn engine(e: qe::OperationError) -> StoreError {
    StoreError::Unavailable(format!("edge engine: {e}"))
}

fn io(dir: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("edge store {}: {e}", dir.display()))
}
