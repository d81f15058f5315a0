//! PostgreSQL: the pool, the database's creation on a fresh machine, and migrations (applied at
//! start-up, or checked before serving).

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgPool, Postgres};

use crate::settings::CoreSettings;

/// The migrations in `migrations/`, compiled in.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `DATABASE_URL` does not parse.
    #[error("DATABASE_URL is not a valid PostgreSQL URL")]
    InvalidUrl,
    /// PostgreSQL refused or is unreachable.
    #[error("database unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The schema is behind this build and migrations are off.
    #[error(
        "the database schema is not up to date ({applied} of {known} migrations applied); run with DB__MIGRATE=true"
    )]
    Outdated {
        /// Migrations applied in the database.
        applied: usize,
        /// Migrations this build knows.
        known: usize,
    },
}

/// A pooled connection idle this long is pinged before use.
const IDLE_PING_AFTER: Duration = Duration::from_secs(10);

/// Connects; with `db.migrate` creates the database if missing and applies migrations, otherwise
/// checks that every migration is applied.
pub async fn connect(settings: &CoreSettings) -> Result<PgPool, DbError> {
    let url = settings.database_url.expose();
    let options = PgConnectOptions::from_str(url).map_err(|_| DbError::InvalidUrl)?;
    if settings.db.migrate && !Postgres::database_exists(url).await? {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!("database created"),
            // Another process created it at the same moment: `duplicate_database`, or a unique
            // violation on pg_database when both CREATE DATABASE statements ran concurrently.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.db.max_connections)
        // sqlx pings every connection it hands out by default: a second round trip per query.
        // Only a connection that sat idle (the one a restarted server most likely closed) is
        // pinged; a busy one that broke fails its query, which callers retry.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_PING_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .acquire_timeout(Duration::from_secs(settings.db.acquire_timeout_secs))
        .connect_with(options)
        .await?;
    if settings.db.migrate {
        // Concurrent starts are safe: sqlx serializes migrations with an advisory lock.
        MIGRATOR.run(&pool).await?;
    } else {
        check_schema(&pool).await?;
    }
    Ok(pool)
}

/// Fails unless every migration this build knows is applied.
pub async fn check_schema(pool: &PgPool) -> Result<(), DbError> {
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .unwrap_or(0);
    let known = MIGRATOR.iter().count();
    if (applied as usize) < known {
        return Err(DbError::Outdated {
            applied: applied as usize,
            known,
        });
    }
    Ok(())
}

/// Whether PostgreSQL answers now.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

/// Connects, retrying with backoff while PostgreSQL is unreachable, until `shutdown` fires
/// (then `None`). Configuration and migration errors are returned at once.
pub async fn connect_with_retry(
    settings: &CoreSettings,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<Option<PgPool>, DbError> {
    let mut backoff =
        crate::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match connect(settings).await {
            Ok(pool) => return Ok(Some(pool)),
            Err(DbError::Unavailable(e)) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "postgres unavailable");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}
