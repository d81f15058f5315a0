//! The vector-store contract, run against both engines: Qdrant Edge always (a fresh directory per
//! case), a Qdrant server when `QDRANT_TEST_URL` is set (a fresh collection per case; otherwise
//! those cases are listed as ignored, so a run without a server shows what it did not test).
//!
//! Vectors are 8-dimensional and made by hand, one axis a topic, so no model is needed and the
//! expected order is known: 0 cooking, 1 finance, 2 travel, 3 health, 4 music, 5 sport, 6 code,
//! 7 garden. BM25 vectors come from the real embedder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod both;
mod data;
mod edge;
mod filters;

use libtest_mimic::{Arguments, Failed, Trial};
use semantic_worker::store::bm25::Bm25;
use semantic_worker::store::edge::{EdgeOptions, EdgeStore};
use semantic_worker::store::server::{ServerConfig, ServerStore};
use semantic_worker::store::{StoreError, VectorStore};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

pub(crate) const DIMS: usize = 8;

type CaseFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;
type Case = for<'a> fn(&'a Ctx) -> CaseFuture<'a>;

/// What a case gets: a fresh store and the BM25 embedder.
pub(crate) struct Ctx {
    pub(crate) store: Arc<dyn VectorStore>,
    pub(crate) bm25: Bm25,
}

macro_rules! cases {
    ($($module:ident :: $name:ident),* $(,)?) => {
        vec![$((stringify!($name), (|c| Box::pin($module::$name(c))) as Case)),*]
    };
}

fn main() {
    let args = Arguments::from_args();
    let shared = cases![
        both::semantic_finds_by_meaning,
        both::keyword_finds_a_rare_word,
        both::hybrid_beats_either_signal_alone,
        both::tenants_never_see_each_other,
        filters::user_filter,
        filters::source_role_tag_session_document_filters,
        filters::date_range_filter,
        both::score_threshold_drops_weak_hits,
        both::delete_by_session_removes_exactly_those,
        both::upsert_of_the_same_id_replaces,
        both::a_mode_without_its_vector_is_invalid,
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
        block_on(edge::reopened_store_keeps_its_points())
    }));
    trials.push(Trial::test(
        "edge::a_copy_taken_before_any_flush_replays_its_wal",
        || block_on(edge::a_copy_taken_before_any_flush_replays_its_wal()),
    ));
    trials.push(Trial::test(
        "edge::reopen_with_another_dimension_is_refused",
        || block_on(edge::reopen_with_another_dimension_is_refused()),
    ));
    trials.push(Trial::test("edge::one_directory_is_opened_once", || {
        block_on(edge::one_directory_is_opened_once())
    }));
    trials.push(Trial::test(
        "edge::search_works_after_background_optimize",
        || block_on(edge::search_works_after_background_optimize()),
    ));
    // Needs no server: the error a worker sees when its server is down.
    trials.push(Trial::test(
        "server::an_unreachable_server_is_unavailable",
        || block_on(an_unreachable_server_is_unavailable()),
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
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
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

async fn an_unreachable_server_is_unavailable() -> anyhow::Result<()> {
    let config = ServerConfig {
        // A port nothing listens on (the discard port, refused on any test machine).
        url: "http://127.0.0.1:9".into(),
        api_key: None,
        collection: "unreachable".into(),
    };
    let connect = ServerStore::connect(config, DIMS);
    match tokio::time::timeout(std::time::Duration::from_secs(30), connect).await? {
        Err(StoreError::Unavailable(msg)) => anyhow::ensure!(msg.contains("qdrant"), "{msg}"),
        other => anyhow::bail!("{other:?}"),
    }
    Ok(())
}
