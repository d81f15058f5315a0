//! The gateway's shared state: bus, auth, the response hub, the model registry, file storage,
//! settings, and shutdown handles.

use std::sync::Arc;

use common::Bus;
use common::auth::JwtAuth;
use common::models::ModelRegistry;
use common::sessions::SessionOwners;
use common::storage::Storage;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::Passwords;
use crate::config::Settings;
use crate::connections::WsSlots;
use crate::hub::Hub;
use crate::rate_limit::RateLimiter;

/// Cloneable handle on everything a request needs.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    bus: Bus,
    db: PgPool,
    auth: JwtAuth,
    hub: Hub,
    models: ModelRegistry,
    limiter: RateLimiter,
    owners: SessionOwners,
    passwords: Passwords,
    ws_slots: WsSlots,
    storage: Storage,
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
    /// Builds the state; the hub's readers stop with `shutdown`.
    pub fn new(
        bus: Bus,
        db: PgPool,
        auth: JwtAuth,
        models: ModelRegistry,
        storage: Storage,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Self {
        let hub = Hub::start(
            &bus,
            settings.hub.shards,
            settings.hub.block_ms,
            shutdown.clone(),
        );
        let limiter = RateLimiter::new(bus.conn(), &settings.core, &settings.rate_limit);
        let owners = SessionOwners::new(
            bus.conn(),
            bus.names().clone(),
            bus.settings().session_owner_ttl_secs(),
            Some(db.clone()),
        );
        let passwords = Passwords::new(settings.auth.hash_threads, settings.auth.hash_queue);
        Self {
            inner: Arc::new(Inner {
                bus,
                db,
                auth,
                hub,
                models,
                limiter,
                owners,
                passwords,
                ws_slots: WsSlots::new(settings.ws.max_per_tenant),
                storage,
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

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }
    /// Token verification.
    pub fn auth(&self) -> &JwtAuth {
        &self.inner.auth
    }
    /// The response-stream fan-in.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }
    /// The model registry, loaded once at start-up.
    pub fn models(&self) -> &ModelRegistry {
        &self.inner.models
    }
    /// The per-tenant request limiter.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }
    /// Session ownership (DESIGN §6).
    pub fn owners(&self) -> &SessionOwners {
        &self.inner.owners
    }
    /// The password hashing threads.
    pub fn passwords(&self) -> &Passwords {
        &self.inner.passwords
    }
    /// Open WebSockets per tenant.
    pub fn ws_slots(&self) -> &WsSlots {
        &self.inner.ws_slots
    }
    /// File storage (uploads, signed downloads).
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }
    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }
    /// Background tasks (resume-grace timers) drained on shutdown.
    pub fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }
    /// Fires when the gateway shuts down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}
