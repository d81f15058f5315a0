//! Hand-made data: one axis of the 8-d vectors per topic, messages with every payload field set,
//! queries with both vectors.

use semantic_worker::store::bm25::Bm25;
use semantic_worker::store::{Filter, Hit, Mode, Payload, Point, Query, Source};
use uuid::Uuid;

use crate::{Ctx, DIMS};

pub(crate) fn axis(i: usize) -> [f32; DIMS] {
    let mut v = [0.0; DIMS];
    v[i] = 1.0;
    v
}

pub(crate) fn mix(parts: &[(usize, f32)]) -> [f32; DIMS] {
    let mut v = [0.0; DIMS];
    for (i, w) in parts {
        v[*i] += w;
    }
    v
}

pub(crate) fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// A message of `tenant`/`user-1`, created at `1_000 + n`; `edit` sets the rest.
pub(crate) fn point(
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
        chunk_count: None,
        metadata: None,
    };
    edit(&mut payload);
    Point {
        id: id(n),
        dense: dense.to_vec(),
        sparse: bm25.document(text),
        payload,
    }
}

pub(crate) fn keep(_: &mut Payload) {}

/// Three topics in tenant `a`.
pub(crate) fn topics(bm25: &Bm25) -> Vec<Point> {
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

pub(crate) fn query(
    ctx: &Ctx,
    mode: Mode,
    dense: [f32; DIMS],
    text: &str,
    filter: Filter,
) -> Query {
    Query {
        mode,
        dense: Some(dense.to_vec()),
        sparse: Some(ctx.bm25.query(text)),
        filter,
        limit: 10,
        score_threshold: None,
    }
}

pub(crate) fn ids(hits: &[Hit]) -> Vec<Uuid> {
    hits.iter().map(|h| h.id).collect()
}

pub(crate) fn sorted(mut v: Vec<Uuid>) -> Vec<Uuid> {
    v.sort();
    v
}

pub(crate) const MODES: [Mode; 3] = [Mode::Semantic, Mode::Hybrid, Mode::Keyword];
