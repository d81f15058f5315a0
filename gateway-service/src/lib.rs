//! The gateway: serves frontends over WebSocket, REST and SSE, publishes DomainActions onto Redis
//! Streams and relays each session's response stream back to its client.

pub mod accounts;
pub mod batch;
pub mod catalog;
pub mod config;
pub mod connections;
pub mod extract;
pub mod files;
pub mod history;
pub mod hub;
pub mod ingest;
pub mod jobs;
pub mod links;
pub mod media;
pub mod openai_compat;
pub mod protocol;
pub mod rate_limit;
pub mod routes;
pub mod semantic;
pub mod session;
pub mod speech;
pub mod state;
pub mod task;
pub mod transcription;

use std::path::Path;
use std::time::Duration;

use common::Bus;
use common::auth::JwtAuth;
use common::models::ModelRegistry;
use common::storage::Storage;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Settings;
pub use state::AppState;

/// Binds `GATEWAY_ADDR` and serves until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&settings.gateway_addr).await?;
    serve(listener, settings, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0).
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let auth = JwtAuth::from_settings(&settings.core)?;
    let models = ModelRegistry::load(settings.models_file.as_deref().map(Path::new))?;
    let storage = Storage::new(&settings.storage, &settings.core)?;
    storage
        .prepare()
        .await
        .map_err(|e| anyhow::Error::new(e).context("file storage"))?;
    tracing::info!(storage = %storage.describe(), "file storage ready");
    let Some(bus) = Bus::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    let Some(db) = common::db::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    let state = AppState::new(
        bus,
        db,
        auth,
        models,
        storage,
        settings,
        shutdown.child_token(),
    );
    let app = common::http::harden(routes::router(state.clone()), &state.settings().http);
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    common::http::serve(listener, app, &state.settings().http, shutdown).await?;
    state.shutdown().cancel();
    state.tracker().close();
    let _ = tokio::time::timeout(Duration::from_secs(5), state.tracker().wait()).await;
    tracing::info!("gateway stopped");
    Ok(())
}
