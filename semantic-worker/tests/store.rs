//! The vector-store contract, run against both engines: Qdrant Edge always (a fresh directory per
//! case), a Qdrant server when `QDRANT_TEST_URL` is set (a fresh collection per case; otherwise
//! those cases are listed as ignored, so a run without a server shows what it did not test).
//!
//! Vectors are 8-dimensional and made by hand, one axis a topic, so no model is needed and the
//! expected order is known: 0 cooking, 1 finance, 2 travel, 3 health, 4 music, 5 sport, 6 code,
//! 7 garden. BM25 vectors come from the real embedder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use libtest_mimic::{Arguments, Failed, Trial};
use semantic_worker::store::bm25::Bm25;
use semantic_worker::store::edge::{EdgeOptions, EdgeStore};
use semantic_worker::store::server::{ServerConfig, ServerStore};
use semantic_worker::store::{
    Filter, Hit, Mode, Payload, Point, Query, Source, StoreError, VectorStore,
};
use uuid::Uuid;

const DIMS: usize = 8;

type CaseFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;
type Case = for<'a> fn(&'a Ctx) -> CaseFuture<'a>;

/// What a case gets: a fresh store and the BM25 embedder.
struct Ctx {
    store: Arc<dyn VectorStore>,
    bm25: Bm25,
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), (|c| Box::pin($name(c))) as Case)),*]
    };
}

fn main() {
    let args = Arguments::from_args();
    let shared = cases![
        semantic_finds_by_meaning,
        keyword_finds_a_rare_word,
        hybrid_beats_either_signal_alone,
        tenants_never_see_each_other,
        user_filter,
        source_role_tag_session_document_filters,
        date_range_filter,
        score_threshold_drops_weak_hits,
        delete_by_session_removes_exactly_those,
        upsert_of_the_same_id_replaces,
        a_mode_without_its_vector_is_invalid,
    ];
    let server_url = std::env::var("QDRANT_TEST_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let mut trials = Vec::new();
    for (name, case) in &shared {
        let case = *case;
        trials.push(Trial::test(format!("edge::{name}"), move || {
            run_edge(EdgeOptions::default(), case)
        }));
        let url = server_url.clone();
        trials.push(
            Trial::test(format!("server::{name}"), move || match url {
                Some(url) => run_server(&url, case),
                None => Ok(()),
            })
            .with_ignored_flag(server_url.is_none()),
        );
    }
    trials.push(Trial::test("edge::reopened_store_keeps_its_points", || {
        block_on(reopened_store_keeps_its_points())
    }));
    trials.push(Trial::test(
        "edge::a_copy_taken_before_any_flush_replays_its_wal",
        || block_on(a_copy_taken_before_any_flush_replays_its_wal()),
    ));
    trials.push(Trial::test(
        "edge::reopen_with_another_dimension_is_refused",
        || block_on(reopen_with_another_dimension_is_refused()),
    ));
    trials.push(Trial::test("edge::one_directory_is_opened_once", || {
        block_on(one_directory_is_opened_once())
    }));
    trials.push(Trial::test(
        "edge::search_works_after_background_optimize",
        || block_on(search_works_after_background_optimize()),
    ));
    if server_url.is_none() {
        eprintln!("QDRANT_TEST_URL is not set: the server:: cases are ignored, not run");
    }
    libtest_mimic::run(&args, trials).exit();
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().expect("runtime"))
}

fn block_on(f: impl Future<Output = anyhow::Result<()>>) -> Result<(), Failed> {
    runtime().block_on(f).map_err(|e| format!("{e:#}").into())
}

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("semantic-store-{}", Uuid::new_v4())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_edge(options: EdgeOptions, case: Case) -> Result<(), Failed> {
    block_on(async move {
        let dir = TempDir::new();
        let store = EdgeStore::open_with(&dir.0, DIMS, options).await?;
        let ctx = Ctx {
            store: Arc::new(store.clone()),
            bm25: Bm25::english()?,
        };
        case(&ctx).await?;
        store.close().await?;
        Ok(())
    })
}

fn run_server(url: &str, case: Case) -> Result<(), Failed> {
    block_on(async move {
        let config = ServerConfig {
            url: url.to_owned(),
            api_key: std::env::var("QDRANT_TEST_API_KEY").ok(),
            collection: format!("test_{}", Uuid::new_v4().simple()),
        };
        let store = ServerStore::connect(config, DIMS).await?;
        let ctx = Ctx {
            store: Arc::new(store.clone()),
            bm25: Bm25::english()?,
        };
        let outcome = case(&ctx).await;
        store.delete_collection().await?;
        outcome
    })
}

// --- data ----------------------------------------------------------------------------------

fn axis(i: usize) -> [f32; DIMS] {
    let mut v = [0.0; DIMS];
    v[i] = 1.0;
    v
}

fn mix(parts: &[(usize, f32)]) -> [f32; DIMS] {
    let mut v = [0.0; DIMS];
    for (i, w) in parts {
        v[*i] += w;
    }
    v
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// A message of `tenant`/`user-1`, created at `1_000 + n`; `edit` sets the rest.
fn point(
    bm25: &Bm25,
    n: u128,
    tenant: &str,
    text: &str,
    dense: [f32; DIMS],
    edit: impl FnOnce(&mut Payload),
) -> Point {
    let mut payload = Payload {
        tenant: tenant.into(),
        user: "user-1".into(),
        source: Source::Message,
        text: text.into(),
        content_sha256: format!("{n:064x}"),
        created_at: 1_000 + n as i64,
        tags: Vec::new(),
        session_id: Some("session-1".into()),
        message_id: Some(format!("m{n}")),
        role: Some("user".into()),
        document_id: None,
        document_name: None,
        chunk_index: None,
    };
    edit(&mut payload);
    Point {
        id: id(n),
        dense: dense.to_vec(),
        sparse: bm25.document(text),
        payload,
    }
}

fn keep(_: &mut Payload) {}

/// Three topics in tenant `a`.
fn topics(bm25: &Bm25) -> Vec<Point> {
    vec![
        point(
            bm25,
            1,
            "a",
            "slow cooked tomato soup with basil",
            axis(0),
            keep,
        ),
        point(
            bm25,
            2,
            "a",
            "quarterly invoice totals for the accountant",
            axis(1),
            keep,
        ),
        point(
            bm25,
            3,
            "a",
            "ferry from the mainland to zanzibar",
            axis(2),
            keep,
        ),
    ]
}

fn query(ctx: &Ctx, mode: Mode, dense: [f32; DIMS], text: &str, filter: Filter) -> Query {
    Query {
        mode,
        dense: Some(dense.to_vec()),
        sparse: Some(ctx.bm25.query(text)),
        filter,
        limit: 10,
        score_threshold: None,
    }
}

fn ids(hits: &[Hit]) -> Vec<Uuid> {
    hits.iter().map(|h| h.id).collect()
}

fn sorted(mut v: Vec<Uuid>) -> Vec<Uuid> {
    v.sort();
    v
}

const MODES: [Mode; 3] = [Mode::Semantic, Mode::Hybrid, Mode::Keyword];

// --- cases on both engines -----------------------------------------------------------------

async fn semantic_finds_by_meaning(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.store.upsert(topics(&ctx.bm25)).await?;
    // "something warm to eat tonight" shares no word with the soup; its meaning is cooking.
    let q = query(
        ctx,
        Mode::Semantic,
        mix(&[(0, 0.9), (3, 0.3)]),
        "something warm to eat tonight",
        Filter::tenant("a"),
    );
    let hits = ctx.store.search(q).await?;
    ensure!(
        hits.first().map(|h| h.id) == Some(id(1)),
        "got {:?}",
        ids(&hits)
    );
    ensure!(hits[0].payload.text.contains("tomato soup"));
    ensure!(
        hits[0].score > 0.9 && hits[0].score <= 1.0001,
        "cosine {}",
        hits[0].score
    );
    Ok(())
}

async fn keyword_finds_a_rare_word(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.store.upsert(topics(&ctx.bm25)).await?;
    // The dense vector points at cooking: keyword mode must ignore it.
    let q = query(ctx, Mode::Keyword, axis(0), "Zanzibar", Filter::tenant("a"));
    let hits = ctx.store.search(q).await?;
    ensure!(ids(&hits) == vec![id(3)], "got {:?}", ids(&hits));
    // Only stop words: nothing to match, no error.
    let q = query(
        ctx,
        Mode::Keyword,
        axis(0),
        "the and of",
        Filter::tenant("a"),
    );
    ensure!(ctx.store.search(q).await?.is_empty());
    Ok(())
}

async fn hybrid_beats_either_signal_alone(ctx: &Ctx) -> anyhow::Result<()> {
    let b = &ctx.bm25;
    let q_dense = mix(&[(2, 1.0), (1, 0.3)]);
    let mut points = vec![
        // The answer: close in meaning and has the words, second on both lists.
        point(
            b,
            10,
            "a",
            "hotel invoice from the lisbon trip",
            mix(&[(2, 1.0), (1, 0.5)]),
            keep,
        ),
        // Closest in meaning, none of the words.
        point(
            b,
            11,
            "a",
            "boarding pass for the morning flight",
            q_dense,
            keep,
        ),
        // All the words, repeated, but about music.
        point(
            b,
            12,
            "a",
            "lisbon lisbon hotel invoice lisbon hotel invoice",
            mix(&[(4, 1.0), (2, 0.05)]),
            keep,
        ),
    ];
    // Nearer in meaning than the music one, none of the words: it sinks on the dense list.
    for (n, w) in (20..28).zip([0.9f32, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]) {
        points.push(point(
            b,
            n,
            "a",
            "packing list and passport",
            mix(&[(2, w), (5, 1.0)]),
            keep,
        ));
    }
    ctx.store.upsert(points).await?;
    let text = "lisbon hotel invoice";
    let first = |mode| async move {
        let hits = ctx
            .store
            .search(query(ctx, mode, q_dense, text, Filter::tenant("a")))
            .await?;
        anyhow::Ok(hits.first().map(|h| h.id))
    };
    ensure!(
        first(Mode::Semantic).await? == Some(id(11)),
        "semantic alone ranks the flight first"
    );
    ensure!(
        first(Mode::Keyword).await? == Some(id(12)),
        "keyword alone ranks the repetition first"
    );
    ensure!(
        first(Mode::Hybrid).await? == Some(id(10)),
        "hybrid ranks the answer first"
    );
    let hits = ctx
        .store
        .search(query(ctx, Mode::Hybrid, q_dense, text, Filter::tenant("a")))
        .await?;
    // RRF with k = 61 in Qdrant's formula: second on both lists = 2 / 62.
    ensure!(
        (hits[0].score - 2.0 / 62.0).abs() < 1e-4,
        "rrf score {}",
        hits[0].score
    );
    Ok(())
}

async fn tenants_never_see_each_other(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.store.upsert(topics(&ctx.bm25)).await?;
    for mode in MODES {
        for (dense, text) in [(axis(0), "tomato soup"), (axis(2), "zanzibar ferry")] {
            let hits = ctx
                .store
                .search(query(ctx, mode, dense, text, Filter::tenant("b")))
                .await?;
            ensure!(
                hits.is_empty(),
                "tenant b found {:?} in {mode:?}",
                ids(&hits)
            );
        }
    }
    ensure!(ctx.store.count(Filter::tenant("b")).await? == 0);
    ensure!(ctx.store.scroll(Filter::tenant("b"), 100).await?.is_empty());
    ensure!(ctx.store.delete(Filter::tenant("b")).await? == 0);
    ensure!(
        ctx.store.count(Filter::tenant("a")).await? == 3,
        "tenant b's delete touched a"
    );
    // An empty tenant is not "every tenant".
    let err = ctx.store.count(Filter::tenant("")).await.unwrap_err();
    ensure!(matches!(err, StoreError::Invalid(_)), "{err}");
    Ok(())
}

async fn user_filter(ctx: &Ctx) -> anyhow::Result<()> {
    let b = &ctx.bm25;
    ctx.store
        .upsert(vec![
            point(b, 1, "a", "my tomato soup recipe", axis(0), keep),
            point(b, 2, "a", "her tomato soup recipe", axis(0), |p| {
                p.user = "user-2".into()
            }),
        ])
        .await?;
    let mine = Filter {
        user: Some("user-1".into()),
        ..Filter::tenant("a")
    };
    for mode in MODES {
        let hits = ctx
            .store
            .search(query(ctx, mode, axis(0), "tomato soup", mine.clone()))
            .await?;
        ensure!(ids(&hits) == vec![id(1)], "{mode:?}: {:?}", ids(&hits));
        ensure!(hits[0].payload.user == "user-1");
    }
    ensure!(ctx.store.count(mine).await? == 1);
    ensure!(ctx.store.count(Filter::tenant("a")).await? == 2);
    Ok(())
}

async fn source_role_tag_session_document_filters(ctx: &Ctx) -> anyhow::Result<()> {
    let b = &ctx.bm25;
    let text = "notes about the garden shed";
    ctx.store
        .upsert(vec![
            point(b, 1, "a", text, axis(7), |p| {
                p.tags = vec!["home".into(), "diy".into()];
            }),
            point(b, 2, "a", text, axis(7), |p| {
                p.role = Some("assistant".into());
                p.session_id = Some("session-2".into());
                p.tags = vec!["work".into()];
            }),
            point(b, 3, "a", text, axis(7), |p| {
                p.source = Source::Document;
                p.role = None;
                p.session_id = None;
                p.message_id = None;
                p.document_id = Some("doc-1".into());
                p.document_name = Some("shed.pdf".into());
                p.chunk_index = Some(0);
                p.tags = vec!["diy".into()];
            }),
            point(b, 4, "a", text, axis(7), |p| {
                p.source = Source::Document;
                p.role = None;
                p.session_id = None;
                p.document_id = Some("doc-2".into());
                p.chunk_index = Some(3);
            }),
        ])
        .await?;
    let base = Filter::tenant("a");
    let checks: Vec<(&str, Filter, Vec<u128>)> = vec![
        ("no filter", base.clone(), vec![1, 2, 3, 4]),
        (
            "documents",
            Filter {
                sources: vec![Source::Document],
                ..base.clone()
            },
            vec![3, 4],
        ),
        (
            "both sources",
            Filter {
                sources: vec![Source::Document, Source::Message],
                ..base.clone()
            },
            vec![1, 2, 3, 4],
        ),
        (
            "assistant",
            Filter {
                roles: vec!["assistant".into()],
                ..base.clone()
            },
            vec![2],
        ),
        (
            "tag any of",
            Filter {
                tags: vec!["diy".into(), "work".into()],
                ..base.clone()
            },
            vec![1, 2, 3],
        ),
        (
            "tag home",
            Filter {
                tags: vec!["home".into()],
                ..base.clone()
            },
            vec![1],
        ),
        (
            "session",
            Filter {
                session_ids: vec!["session-2".into()],
                ..base.clone()
            },
            vec![2],
        ),
        (
            "two documents",
            Filter {
                document_ids: vec!["doc-1".into(), "doc-2".into()],
                ..base.clone()
            },
            vec![3, 4],
        ),
        (
            "document and tag",
            Filter {
                document_ids: vec!["doc-1".into(), "doc-2".into()],
                tags: vec!["diy".into()],
                ..base.clone()
            },
            vec![3],
        ),
        (
            "unknown tag",
            Filter {
                tags: vec!["nope".into()],
                ..base.clone()
            },
            vec![],
        ),
    ];
    for (what, filter, want) in checks {
        let want = sorted(want.into_iter().map(id).collect());
        ensure!(
            ctx.store.count(filter.clone()).await? == want.len() as u64,
            "{what}: count"
        );
        let scrolled = ctx.store.scroll(filter.clone(), 100).await?;
        ensure!(
            sorted(ids(&scrolled)) == want,
            "{what}: scroll {:?}",
            ids(&scrolled)
        );
        for mode in MODES {
            let hits = ctx
                .store
                .search(query(ctx, mode, axis(7), "garden shed", filter.clone()))
                .await?;
            ensure!(
                sorted(ids(&hits)) == want,
                "{what}: {mode:?} {:?}",
                ids(&hits)
            );
        }
    }
    let chunk = ctx
        .store
        .scroll(
            Filter {
                document_ids: vec!["doc-1".into()],
                ..base
            },
            1,
        )
        .await?;
    ensure!(
        chunk[0].payload.document_name.as_deref() == Some("shed.pdf"),
        "payload round trip"
    );
    Ok(())
}

async fn date_range_filter(ctx: &Ctx) -> anyhow::Result<()> {
    let b = &ctx.bm25;
    // created_at = 1_000 + n
    let points = (1..=5)
        .map(|n| point(b, n, "a", "daily standup notes", axis(6), keep))
        .collect();
    ctx.store.upsert(points).await?;
    let base = Filter::tenant("a");
    for (from, to, want) in [
        (Some(1_002), Some(1_004), vec![2, 3, 4]),
        (Some(1_004), None, vec![4, 5]),
        (None, Some(1_001), vec![1]),
        (Some(1_006), None, vec![]),
    ] {
        let filter = Filter {
            from,
            to,
            ..base.clone()
        };
        let want = sorted(want.into_iter().map(id).collect());
        for mode in MODES {
            let hits = ctx
                .store
                .search(query(ctx, mode, axis(6), "standup", filter.clone()))
                .await?;
            ensure!(
                sorted(ids(&hits)) == want,
                "{from:?}..{to:?} {mode:?}: {:?}",
                ids(&hits)
            );
        }
        ensure!(ctx.store.count(filter).await? == want.len() as u64);
    }
    Ok(())
}

async fn score_threshold_drops_weak_hits(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.store.upsert(topics(&ctx.bm25)).await?;
    let mut q = query(
        ctx,
        Mode::Semantic,
        mix(&[(0, 1.0), (1, 0.2)]),
        "",
        Filter::tenant("a"),
    );
    ensure!(ctx.store.search(q.clone()).await?.len() == 3);
    q.score_threshold = Some(0.9);
    let hits = ctx.store.search(q).await?;
    ensure!(ids(&hits) == vec![id(1)], "got {:?}", hits);
    ensure!(hits.iter().all(|h| h.score >= 0.9));
    let mut q = query(ctx, Mode::Hybrid, axis(2), "zanzibar", Filter::tenant("a"));
    q.score_threshold = Some(1.5 / 61.0); // only a point on both lists passes
    let hits = ctx.store.search(q).await?;
    ensure!(ids(&hits) == vec![id(3)], "hybrid got {:?}", hits);
    Ok(())
}

async fn delete_by_session_removes_exactly_those(ctx: &Ctx) -> anyhow::Result<()> {
    let b = &ctx.bm25;
    let mut points: Vec<Point> = (1..=6)
        .map(|n| {
            point(b, n, "a", "chat about the weekend", axis(5), |p| {
                p.session_id = Some(if n <= 4 { "s-gone" } else { "s-kept" }.into());
            })
        })
        .collect();
    // The same session id in another tenant is another session.
    points.push(point(b, 7, "b", "chat about the weekend", axis(5), |p| {
        p.session_id = Some("s-gone".into());
    }));
    ctx.store.upsert(points).await?;
    let gone = Filter {
        session_ids: vec!["s-gone".into()],
        ..Filter::tenant("a")
    };
    ensure!(ctx.store.delete(gone.clone()).await? == 4);
    ensure!(ctx.store.count(gone.clone()).await? == 0);
    ensure!(ctx.store.count(Filter::tenant("a")).await? == 2);
    ensure!(
        ctx.store.count(Filter::tenant("b")).await? == 1,
        "tenant b's session survived"
    );
    let left = ctx.store.scroll(Filter::tenant("a"), 10).await?;
    ensure!(sorted(ids(&left)) == vec![id(5), id(6)]);
    for mode in MODES {
        let hits = ctx
            .store
            .search(query(ctx, mode, axis(5), "weekend", Filter::tenant("a")))
            .await?;
        ensure!(
            sorted(ids(&hits)) == vec![id(5), id(6)],
            "{mode:?}: {:?}",
            ids(&hits)
        );
    }
    ensure!(
        ctx.store.delete(gone).await? == 0,
        "deleting again deletes nothing"
    );
    Ok(())
}

async fn upsert_of_the_same_id_replaces(ctx: &Ctx) -> anyhow::Result<()> {
    let b = &ctx.bm25;
    ctx.store
        .upsert(vec![point(b, 1, "a", "the old walrus text", axis(4), keep)])
        .await?;
    ctx.store
        .upsert(vec![point(
            b,
            1,
            "a",
            "the new pelican text",
            axis(3),
            keep,
        )])
        .await?;
    ensure!(ctx.store.count(Filter::tenant("a")).await? == 1);
    let all = ctx.store.scroll(Filter::tenant("a"), 10).await?;
    ensure!(all.len() == 1 && all[0].payload.text == "the new pelican text");
    let old = ctx
        .store
        .search(query(
            ctx,
            Mode::Keyword,
            axis(3),
            "walrus",
            Filter::tenant("a"),
        ))
        .await?;
    ensure!(old.is_empty(), "the old words are gone: {old:?}");
    let new = ctx
        .store
        .search(query(ctx, Mode::Semantic, axis(3), "", Filter::tenant("a")))
        .await?;
    ensure!(new[0].score > 0.99, "the new vector is searched");
    Ok(())
}

async fn a_mode_without_its_vector_is_invalid(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.store.upsert(topics(&ctx.bm25)).await?;
    let full = query(ctx, Mode::Hybrid, axis(0), "soup", Filter::tenant("a"));
    let bad = [
        Query {
            mode: Mode::Semantic,
            dense: None,
            ..full.clone()
        },
        Query {
            mode: Mode::Hybrid,
            dense: None,
            ..full.clone()
        },
        Query {
            mode: Mode::Hybrid,
            sparse: None,
            ..full.clone()
        },
        Query {
            mode: Mode::Keyword,
            sparse: None,
            ..full.clone()
        },
        Query {
            dense: Some(vec![1.0; DIMS + 1]),
            ..full.clone()
        },
        Query {
            dense: Some(vec![0.0; DIMS]),
            ..full.clone()
        },
        Query {
            dense: Some(vec![f32::NAN; DIMS]),
            ..full.clone()
        },
    ];
    for q in bad {
        let what = format!(
            "{:?} dense {:?} sparse {}",
            q.mode,
            q.dense.as_ref().map(Vec::len),
            q.sparse.is_some()
        );
        match ctx.store.search(q).await {
            Err(StoreError::Invalid(_)) => {}
            other => anyhow::bail!("{what}: {other:?}"),
        }
    }
    // A keyword search needs no dense vector, a semantic one no sparse.
    ctx.store
        .search(Query {
            mode: Mode::Keyword,
            dense: None,
            ..full.clone()
        })
        .await?;
    ctx.store
        .search(Query {
            mode: Mode::Semantic,
            sparse: None,
            ..full
        })
        .await?;
    let mut wrong = point(&ctx.bm25, 9, "a", "short", axis(0), keep);
    wrong.dense.pop();
    let err = ctx.store.upsert(vec![wrong]).await.unwrap_err();
    ensure!(matches!(err, StoreError::Invalid(_)), "{err}");
    ensure!(
        ctx.store.count(Filter::tenant("a")).await? == 3,
        "a refused batch writes nothing"
    );
    Ok(())
}

// --- edge only -----------------------------------------------------------------------------

async fn reopened_store_keeps_its_points() -> anyhow::Result<()> {
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
async fn a_copy_taken_before_any_flush_replays_its_wal() -> anyhow::Result<()> {
    let dir = TempDir::new();
    let copy = TempDir::new();
    let bm25 = Bm25::english()?;
    let options = EdgeOptions {
        optimize_after: u64::MAX,
        ..EdgeOptions::default()
    };
    let store = EdgeStore::open_with(&dir.0, DIMS, options.clone()).await?;
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

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
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

async fn reopen_with_another_dimension_is_refused() -> anyhow::Result<()> {
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

async fn one_directory_is_opened_once() -> anyhow::Result<()> {
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

async fn search_works_after_background_optimize() -> anyhow::Result<()> {
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
