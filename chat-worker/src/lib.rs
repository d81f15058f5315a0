//! The chat-worker: consumes `chat.*` actions (`chat.completion.generate`, `chat.session.name`)
//! and streams provider output to the session.

pub mod config;
pub mod dispatch;
pub mod handler;
pub mod naming;
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
    // One set of clients (and so one HTTP connection pool per provider) serves both handlers.
    let providers = Arc::new(providers::Providers::from_settings(&settings)?);
    let configured = providers.configured();
    if configured.is_empty() {
        tracing::info!("no provider configured: the offline dummy provider answers every request");
    } else {
        tracing::info!(providers = ?configured, default = %providers.registry().default_model(), "text providers ready");
    }
    let handler = Arc::new(dispatch::Dispatcher::new(vec![
        Arc::new(handler::ChatHandler::new(
            Arc::clone(&providers),
            pool.clone(),
            &settings,
        )),
        Arc::new(naming::NamingHandler::new(
            providers,
            pool.clone(),
            &settings,
        )),
    ]));
    Worker::new(bus, settings.worker.clone(), SERVICE, handler)
        .with_session_store(pool)
        .run(shutdown)
        .await
}
