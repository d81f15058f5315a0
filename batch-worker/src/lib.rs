//! The batch worker: `batch.job.run` runs a batch job recorded by the gateway — its input file
//! checked line by line, then sent to the provider's batch API (OpenAI, Anthropic, Gemini) or
//! answered line by line through the text providers (every other model, and the offline
//! `dummy`), its results written as JSONL files in storage. Jobs survive a crash: a lease, the
//! provider's ids and a journal of finished lines live in PostgreSQL. See `docs/batch.md`.

pub mod config;
pub mod input;
pub mod job;
pub mod lease;
pub mod line;
pub mod output;
pub mod progress;
pub mod providers;
pub mod sequential;
pub mod sweeper;

use std::sync::Arc;

use common::Bus;
use common::llm::Providers;
use common::payloads::batch;
use common::storage::Storage;
use common::worker::{Actions, Worker};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use config::Settings;
use job::{Ctx, RunBatch};
use providers::BatchApis;

/// The service: the first segment of the action types it consumes.
pub const SERVICE: &str = "batch";

/// Runs the worker (and its sweeper) until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let storage = Storage::new(&settings.storage, &settings.core)?;
    let providers = Arc::new(Providers::new(
        settings.registry()?,
        &settings.providers,
        settings.dummy.clone(),
    )?);
    let apis = BatchApis::from_settings(&settings)?;
    let Some(bus) = Bus::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    let Some(db) = common::db::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    storage.prepare().await?;
    tracing::info!(text_providers = ?providers.configured(), batch_apis = ?apis.configured(),
        storage = %storage.describe(), "batch providers ready");
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    let ctx = Arc::new(Ctx {
        db: db.clone(),
        storage: storage.clone(),
        providers,
        apis,
        gates: line::Gates::default(),
        settings: settings.batch.clone(),
        holder: format!(
            "batch-{host}-{}-{}",
            std::process::id(),
            Uuid::now_v7().simple()
        ),
    });
    let sweeper = tokio::spawn(sweeper::run(
        db.clone(),
        storage,
        settings.batch.clone(),
        shutdown.clone(),
    ));
    let actions = Actions::new().action(batch::RUN, RunBatch::new(ctx));
    let result = Worker::new(bus, settings.worker.clone(), SERVICE, Arc::new(actions))
        .with_session_store(db)
        .run(shutdown)
        .await;
    sweeper.abort();
    result
}
