//! `/health` and `/ready` of a worker process (DESIGN §4): liveness, and readiness naming Redis
//! (and PostgreSQL for a worker that has it), so an orchestrator sees a worker that lost Redis.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::http::probe::{self, Dependency};

/// How long one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Probed {
    bus: Bus,
    db: Option<PgPool>,
}

async fn ready(State(p): State<Probed>) -> Response {
    let redis = tokio::time::timeout(CHECK_TIMEOUT, p.bus.ping())
        .await
        .unwrap_or(false);
    let mut dependencies = vec![Dependency::required("redis", redis)];
    if let Some(db) = &p.db {
        let postgres = tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(db))
            .await
            .is_ok_and(|r| r.is_ok());
        dependencies.push(Dependency::required("postgres", postgres));
    }
    probe::readiness(&dependencies)
}

/// Binds `addr` (fails at once when it cannot) and serves the probes until `shutdown` fires.
pub(super) async fn start(
    addr: &str,
    bus: Bus,
    db: Option<PgPool>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "worker probes listening");
    let app = Router::new()
        .route("/health", get(|| async { probe::health().into_response() }))
        .route("/ready", get(ready))
        .with_state(Probed { bus, db });
    let settings = crate::http::HttpSettings::default();
    Ok(tokio::spawn(async move {
        if let Err(e) = crate::http::serve(listener, app, &settings, shutdown).await {
            tracing::error!(error = %e, "worker probes stopped");
        }
    }))
}
