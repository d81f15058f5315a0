//! The filter cases, run on both engines: each of the contract's filters lets through exactly
//! the points it names, in every mode and in count and scroll.

use anyhow::ensure;
use semantic_worker::store::{Filter, Source};

use crate::Ctx;
use crate::data::{MODES, axis, id, ids, keep, point, query, sorted};

pub(crate) async fn user_filter(ctx: &Ctx) -> anyhow::Result<()> {
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

pub(crate) async fn source_role_tag_session_document_filters(ctx: &Ctx) -> anyhow::Result<()> {
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
                p.chunk_count = Some(1);
                p.metadata = serde_json::json!({"author": "Ann", "pages": 2})
                    .as_object()
                    .cloned();
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
        (
            "first chunks",
            Filter {
                chunks_to: Some(0),
                ..base.clone()
            },
            vec![3],
        ),
        (
            "chunks from 1 on",
            Filter {
                chunks_from: Some(1),
                ..base.clone()
            },
            vec![4],
        ),
        (
            "chunks 0 to 3",
            Filter {
                chunks_from: Some(0),
                chunks_to: Some(3),
                ..base.clone()
            },
            vec![3, 4],
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
    ensure!(
        chunk[0].payload.chunk_count == Some(1),
        "chunk_count round trip"
    );
    ensure!(
        chunk[0]
            .payload
            .metadata
            .as_ref()
            .map(|m| (&m["author"], &m["pages"]))
            == Some((&serde_json::json!("Ann"), &serde_json::json!(2))),
        "metadata round trip: {:?}",
        chunk[0].payload.metadata
    );
    // What a shorter version of a document leaves behind: its chunks past the new end.
    let past_the_end = Filter {
        document_ids: vec!["doc-1".into(), "doc-2".into()],
        chunks_from: Some(1),
        ..Filter::tenant("a")
    };
    ensure!(
        ctx.store.delete(past_the_end).await? == 1,
        "delete past the end"
    );
    ensure!(
        sorted(ids(&ctx.store.scroll(Filter::tenant("a"), 100).await?))
            == sorted(vec![id(1), id(2), id(3)])
    );
    Ok(())
}

pub(crate) async fn date_range_filter(ctx: &Ctx) -> anyhow::Result<()> {
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
