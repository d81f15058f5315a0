//! The ranking and writing cases, run on both engines: what a user would notice if one engine
//! answered differently.

use anyhow::ensure;
use semantic_worker::store::{Filter, Mode, Point, Query, StoreError};

use crate::data::{MODES, axis, id, ids, keep, mix, point, query, sorted, topics};
use crate::{Ctx, DIMS};

pub(crate) async fn semantic_finds_by_meaning(ctx: &Ctx) -> anyhow::Result<()> {
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

pub(crate) async fn keyword_finds_a_rare_word(ctx: &Ctx) -> anyhow::Result<()> {
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

pub(crate) async fn hybrid_beats_either_signal_alone(ctx: &Ctx) -> anyhow::Result<()> {
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

pub(crate) async fn tenants_never_see_each_other(ctx: &Ctx) -> anyhow::Result<()> {
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

pub(crate) async fn score_threshold_drops_weak_hits(ctx: &Ctx) -> anyhow::Result<()> {
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

pub(crate) async fn delete_by_session_removes_exactly_those(ctx: &Ctx) -> anyhow::Result<()> {
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

pub(crate) async fn upsert_of_the_same_id_replaces(ctx: &Ctx) -> anyhow::Result<()> {
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

pub(crate) async fn a_mode_without_its_vector_is_invalid(ctx: &Ctx) -> anyhow::Result<()> {
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
