//! The chat-worker: consumes `chat.*` actions and streams provider output to the session.

pub mod config;
pub mod handler;
pub mod providers;

use std::sync::Arc;

use common::Bus;
use common::worker::Worker;
use tokio_util::sync::CancellationToken;

pub use config::Settings;

/// The service name: the first segment of the action types this worker consumes.
pub const SERVICE: &str = "chat";

/// Runs the worker until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(bus) = Bus::connect_with_retry(&settings.core, &shutdown).await else {
        return Ok(());
    };
    let Some(pool) = common::db::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    let providers = providers::Providers::from_settings(&settings)?;
    let configured = providers.configured();
    if configured.is_empty() {
        tracing::info!("no provider configured: the offline dummy provider answers every request");
    } else {
        tracing::info!(providers = ?configured, default = %providers.registry().default_model(), "text providers ready");
    }
    let handler = Arc::new(handler::ChatHandler::new(providers, pool, &settings));
    Worker::new(bus, settings.worker.clone(), SERVICE, handler)
        .run(shutdown)
        .await
}
