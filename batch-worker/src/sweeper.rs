//! The sweeper: ends jobs nobody runs any more once their window is long over, and removes
//! jobs and files past their retention (29 days by default), objects first, then their rows.
//! Several replicas may sweep at once: rows are taken with `FOR UPDATE SKIP LOCKED`.

use std::time::Duration;

use common::batch::store;
use common::storage::{Storage, StorageError};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::BatchSettings;

/// Rows handled per statement.
const PAGE: i64 = 500;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Abandoned jobs ended `expired`.
    pub expired: u64,
    /// Jobs deleted.
    pub jobs: usize,
    /// Files deleted (objects and rows).
    pub files: usize,
}

/// One sweep.
pub async fn sweep(
    db: &PgPool,
    storage: &Storage,
    settings: &BatchSettings,
) -> anyhow::Result<Swept> {
    let grace = i64::try_from(settings.abandoned_grace_secs).unwrap_or(i64::MAX);
    let mut swept = Swept {
        expired: store::expire_abandoned(db, grace).await?,
        ..Swept::default()
    };
    loop {
        let ids = store::delete_due_jobs(db, PAGE).await?;
        swept.jobs += ids.len();
        if ids.len() < PAGE as usize {
            break;
        }
    }
    loop {
        let mut tx = db.begin().await?;
        let due = store::due_files(&mut tx, PAGE).await?;
        let mut gone = Vec::with_capacity(due.len());
        for file in &due {
            match storage.delete(file.tenant_id, &file.storage_key).await {
                Ok(()) | Err(StorageError::NotFound) => gone.push(file.id.clone()),
                Err(e) => {
                    tracing::warn!(file_id = %file.id, error = %e, "expired file not deleted; next sweep tries again");
                }
            }
        }
        store::delete_files(&mut tx, &gone).await?;
        tx.commit().await?;
        swept.files += gone.len();
        if due.len() < PAGE as usize || gone.is_empty() {
            break;
        }
    }
    Ok(swept)
}

/// Sweeps every `BATCH__SWEEP_INTERVAL_SECS` until `shutdown`.
pub async fn run(
    db: PgPool,
    storage: Storage,
    settings: BatchSettings,
    shutdown: CancellationToken,
) {
    let every = Duration::from_secs(settings.sweep_interval_secs.max(1));
    loop {
        match sweep(&db, &storage, &settings).await {
            Ok(s) if s != Swept::default() => {
                tracing::info!(
                    expired = s.expired,
                    jobs = s.jobs,
                    files = s.files,
                    "batch sweep"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "batch sweep failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
