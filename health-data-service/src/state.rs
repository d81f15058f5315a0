//! The service's shared state: the pool, the bus, token verification, settings, and the
//! background imports drained on shutdown.

use std::sync::Arc;

use common::Bus;
use common::auth::JwtAuth;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;

/// Cloneable handle on everything a request needs.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    bus: Bus,
    db: PgPool,
    auth: JwtAuth,
    settings: Settings,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state; background imports stop between files when `shutdown` fires.
    pub fn new(
        bus: Bus,
        db: PgPool,
        auth: JwtAuth,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                bus,
                db,
                auth,
                settings,
                tracker: TaskTracker::new(),
                shutdown,
            }),
        }
    }

    /// The PostgreSQL pool.
    pub fn db(&self) -> &PgPool {
        &self.inner.db
    }
    /// The bus (readiness).
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }
    /// Token verification.
    pub fn auth(&self) -> &JwtAuth {
        &self.inner.auth
    }
    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }
    /// Background imports, drained on shutdown.
    pub fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }
    /// Fires when the service shuts down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}
