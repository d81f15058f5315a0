//! The cases only the edge engine has: its directory (reopen, WAL replay, dimension check, one
//! open per directory) and its background optimization.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use semantic_worker::store::bm25::Bm25;
use semantic_worker::store::edge::{EdgeOptions, EdgeStore};
use semantic_worker::store::{Filter, Mode, Query, StoreError, VectorStore};

use crate::data::{axis, id, ids, keep, mix, point, topics};
use crate::{DIMS, TempDir};

pub(crate) async fn reopened_store_keeps_its_points() -> anyhow::Result<()> {
    let dir = TempDir::new();
    let bm25 = Bm25::english()?;
    {
        let store = EdgeStore::open(&dir.0, DIMS).await?;
        // The optimization every open starts would keep the shard open past the drop.
        store.optimizations().wait_for(|n| *n >= 1).await?;
        store.upsert(topics(&bm25)).await?;
        store
            .delete(Filter {
                user: Some("nobody".into()),
                ..Filter::tenant("a")
            })
            .await?;
        // Dropped without close: the last handle's drop flushes and releases the directory.
    }
    let store = EdgeStore::open(&dir.0, DIMS).await?;
    ensure!(store.count(Filter::tenant("a")).await? == 3);
    let hits = store
        .search(Query {
            mode: Mode::Keyword,
            dense: None,
            sparse: Some(bm25.query("zanzibar")),
            filter: Filter::tenant("a"),
            limit: 5,
            score_threshold: None,
        })
        .await?;
    ensure!(
        ids(&hits) == vec![id(3)],
        "the BM25 vectors and indexes came back"
    );
    store.close().await?;
    Ok(())
}

/// A crash: the directory as it is on disk while the store is open and nothing was flushed
/// since the writes (the copy is what a killed process leaves).
pub(crate) async fn a_copy_taken_before_any_flush_replays_its_wal() -> anyhow::Result<()> {
    let dir = TempDir::new();
    let copy = TempDir::new();
    let bm25 = Bm25::english()?;
    let options = EdgeOptions {
        optimize_after: u64::MAX,
        ..EdgeOptions::default()
    };
    let store = EdgeStore::open_with(&dir.0, DIMS, options.clone()).await?;
    // The open's optimization (and its flush) ends before the writes; none runs after them,
    // so nothing moves files during the copy and the writes are only in the WAL.
    store.optimizations().wait_for(|n| *n >= 1).await?;
    store.upsert(topics(&bm25)).await?;
    store
        .delete(Filter {
            session_ids: vec!["none".into()],
            ..Filter::tenant("a")
        })
        .await?;
    store
        .upsert(vec![point(&bm25, 4, "a", "late message", axis(5), keep)])
        .await?;
    copy_dir(&dir.0, &copy.0)?;
    let replayed = EdgeStore::open_with(&copy.0, DIMS, options).await?;
    ensure!(replayed.count(Filter::tenant("a")).await? == 4);
    ensure!(
        replayed
            .scroll(Filter::tenant("a"), 10)
            .await?
            .iter()
            .any(|h| h.payload.text == "late message")
    );
    replayed.close().await?;
    store.close().await?;
    Ok(())
}

pub(crate) fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("{:?}", entry.path()))?;
        }
    }
    Ok(())
}

pub(crate) async fn reopen_with_another_dimension_is_refused() -> anyhow::Result<()> {
    let dir = TempDir::new();
    let store = EdgeStore::open(&dir.0, DIMS).await?;
    store.close().await?;
    drop(store);
    let err = EdgeStore::open(&dir.0, 384).await.unwrap_err();
    let msg = err.to_string();
    ensure!(matches!(err, StoreError::Invalid(_)), "{msg}");
    ensure!(
        msg.contains(&dir.0.display().to_string()) && msg.contains("384"),
        "{msg}"
    );
    EdgeStore::open(&dir.0, DIMS)
        .await
        .context("the right size still opens")?;
    Ok(())
}

pub(crate) async fn one_directory_is_opened_once() -> anyhow::Result<()> {
    let dir = TempDir::new();
    let store = EdgeStore::open(&dir.0, DIMS).await?;
    let err = EdgeStore::open(&dir.0, DIMS).await.unwrap_err();
    ensure!(err.to_string().contains("already open"), "{err}");
    store.close().await?;
    drop(store);
    EdgeStore::open(&dir.0, DIMS)
        .await
        .context("released on drop")?;
    Ok(())
}

pub(crate) async fn search_works_after_background_optimize() -> anyhow::Result<()> {
    let dir = TempDir::new();
    let bm25 = Bm25::english()?;
    // A 1 KB indexing threshold makes these few hundred 8-d points a real HNSW segment.
    let options = EdgeOptions {
        optimize_after: 100,
        indexing_threshold_kb: Some(1),
    };
    let store = EdgeStore::open_with(&dir.0, DIMS, options).await?;
    // Waits for the run every open starts, so the next one is the writes'.
    store.optimize().await?;
    let mut optimized = store.optimizations();
    let before = *optimized.borrow_and_update();
    for batch in 0..4u128 {
        let points = (0..100)
            .map(|i| {
                let n = 100 + batch * 100 + i;
                let w = (n % 7) as f32 / 10.0;
                point(
                    &bm25,
                    n,
                    "a",
                    &format!("filler note number {n}"),
                    mix(&[(1, 1.0), (6, w)]),
                    keep,
                )
            })
            .collect();
        store.upsert(points).await?;
    }
    store.upsert(topics(&bm25)).await?;
    // The first batch started a background run.
    tokio::time::timeout(
        Duration::from_secs(120),
        optimized.wait_for(|n| *n > before),
    )
    .await
    .context("no background optimization finished")??;
    let stats = store.stats().await?;
    ensure!(stats.points == 403, "{stats:?}");
    ensure!(
        stats.indexed_vectors > 0,
        "an HNSW index was built: {stats:?}"
    );
    let hits = store
        .search(Query {
            mode: Mode::Hybrid,
            dense: Some(axis(2).to_vec()),
            sparse: Some(bm25.query("zanzibar ferry")),
            filter: Filter::tenant("a"),
            limit: 5,
            score_threshold: None,
        })
        .await?;
    ensure!(
        hits.first().map(|h| h.id) == Some(id(3)),
        "{:?}",
        ids(&hits)
    );
    let hits = store
        .search(Query {
            mode: Mode::Semantic,
            dense: Some(axis(0).to_vec()),
            sparse: None,
            filter: Filter::tenant("a"),
            limit: 5,
            score_threshold: None,
        })
        .await?;
    ensure!(
        hits.first().map(|h| h.id) == Some(id(1)),
        "{:?}",
        ids(&hits)
    );
    store.close().await?;
    Ok(())
}
