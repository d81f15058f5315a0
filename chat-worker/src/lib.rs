//! The chat-worker: consumes `chat.*` actions (`chat.completion.generate`, `chat.session.name`)
//! and streams provider output to the session.

pub mod config;
pub mod handlers;

use std::sync::Arc;

use common::Bus;
use common::llm::Providers;
use common::payloads::chat;
use common::storage::Storage;
use common::worker::{Actions, Worker};
use tokio_util::sync::CancellationToken;

pub use config::Settings;

/// The service name: the first segment of the action types this worker consumes.
pub const SERVICE: &str = "chat";

/// Runs the worker until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(bus) = Bus::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    let Some(pool) = common::db::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    // One set of clients (and so one HTTP connection pool per provider) serves both handlers.
    let providers = Arc::new(Providers::new(
        settings.registry()?,
        &settings.providers,
        settings.dummy.clone(),
    )?);
    let configured = providers.configured();
    if configured.is_empty() {
        tracing::info!("no provider configured: the offline dummy provider answers every request");
    } else {
        tracing::info!(providers = ?configured, default = %providers.registry().default_model(), "text providers ready");
    }
    // Only direct voice turns read stored recordings: without usable storage settings the
    // worker still serves everything else.
    let storage = Storage::new(&settings.storage, &settings.core)
        .inspect_err(|e| {
            tracing::warn!(error = %e, "no storage: direct audio from stored files is refused");
        })
        .ok();
    let actions = Actions::new()
        .action(
            chat::GENERATE,
            handlers::chat::ChatHandler::new(
                Arc::clone(&providers),
                pool.clone(),
                bus.clone(),
                storage,
                &settings,
            ),
        )
        .action(
            chat::NAME,
            handlers::naming::NamingHandler::new(providers, pool.clone(), &settings),
        );
    Worker::new(bus, settings.worker.clone(), SERVICE, Arc::new(actions))
        .with_session_store(pool)
        .run(shutdown)
        .await
}
