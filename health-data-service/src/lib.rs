//! The health-data-service: Garmin, blood-test and UFC data over PostgreSQL. It serves a REST API
//! (JWT-authenticated, every row scoped to its tenant and user), imports Garmin Connect exports,
//! FIT files and CSV files, and answers `health.*` actions from its stream through the shared
//! worker runtime, in the same process.

pub mod blood;
pub mod cli;
pub mod config;
pub mod csvfile;
pub mod demo;
pub mod error;
pub mod extract;
pub mod garmin;
pub mod handlers;
pub mod openapi;
pub mod page;
pub mod report;
pub mod routes;
pub mod scope;
pub mod state;
pub mod summary;
pub mod text;
pub mod ufc;

use std::sync::Arc;
use std::time::Duration;

use common::Bus;
use common::auth::JwtAuth;
use common::worker::Worker;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Settings;
pub use state::AppState;

/// The service name: the first segment of the action types this service consumes.
pub const SERVICE: &str = "health";

/// Binds `HEALTH_ADDR` and serves HTTP and the `health.*` worker until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&settings.health_addr).await?;
    serve(listener, settings, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0): the REST API and the worker.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let auth = JwtAuth::from_settings(&settings.core)?;
    let Some(bus) = Bus::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    let Some(db) = common::db::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    garmin::import::fail_stale_jobs(&db).await;
    let state = AppState::new(
        bus.clone(),
        db.clone(),
        auth,
        settings.clone(),
        shutdown.child_token(),
    );
    let actions = Arc::new(handlers::actions(db.clone()));
    let worker = Worker::new(bus, settings.worker.clone(), SERVICE, actions).with_session_store(db);
    let app = common::http::harden(routes::router(state.clone()), &settings.http);
    // The worker stops with the process, or when the HTTP server ends for any other reason.
    let worker_stop = shutdown.child_token();
    let worker_task = tokio::spawn(worker.run(worker_stop.clone()));
    tracing::info!(addr = %listener.local_addr()?, "health-data-service listening");
    let served = common::http::serve(listener, app, &settings.http, shutdown.clone()).await;
    worker_stop.cancel();
    let worked = worker_task.await;
    // Imports still running get the worker's grace period to finish their current file.
    state.shutdown().cancel();
    state.tracker().close();
    let grace = Duration::from_secs(settings.worker.shutdown_grace_secs);
    let _ = tokio::time::timeout(grace, state.tracker().wait()).await;
    tracing::info!("health-data-service stopped");
    served?;
    worked?
}
