//! The lease on a running job (in `batch_jobs`): one worker runs a job at a time. It is renewed
//! at a third of its life while the run goes on, given back when the run ends, and lapses on its
//! own when the worker dies, so a replacement takes the job over.

use std::time::{Duration, Instant};

use common::batch::{Job, store};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A held lease; renewed in the background until dropped or released.
#[derive(Debug)]
pub struct Lease {
    db: PgPool,
    id: String,
    holder: String,
    lost: CancellationToken,
    keeper: JoinHandle<()>,
}

/// What waiting for a lease found.
#[derive(Debug)]
pub enum Taken {
    /// The lease is ours, with the job as it was when taken.
    Held(Lease, Box<Job>),
    /// The job has ended (or is gone): nothing to run.
    Ended,
    /// Shutting down before the lease came free.
    Stopped,
}

impl Lease {
    /// Takes the lease on job `id` for `holder`, waiting while another live worker holds it.
    pub async fn take(
        db: &PgPool,
        id: &str,
        holder: &str,
        ttl: Duration,
        stop: &CancellationToken,
    ) -> sqlx::Result<Taken> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        loop {
            if let Some(job) = store::take_lease(db, id, holder, ttl_ms).await? {
                let lost = CancellationToken::new();
                let keeper = tokio::spawn(keep(
                    db.clone(),
                    id.to_owned(),
                    holder.to_owned(),
                    ttl,
                    lost.clone(),
                ));
                let lease = Lease {
                    db: db.clone(),
                    id: id.to_owned(),
                    holder: holder.to_owned(),
                    lost,
                    keeper,
                };
                return Ok(Taken::Held(lease, Box::new(job)));
            }
            match store::status(db, id).await? {
                None => return Ok(Taken::Ended),
                Some(s) if s.is_terminal() => return Ok(Taken::Ended),
                Some(_) => {}
            }
            tracing::info!(
                batch_id = id,
                "another worker runs this job; waiting for its lease"
            );
            tokio::select! {
                () = stop.cancelled() => return Ok(Taken::Stopped),
                () = tokio::time::sleep(ttl / 3) => {}
            }
        }
    }

    /// Who holds it.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Fires when the lease could not be kept (another worker may run the job now).
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Gives the lease back (a job that has not ended is then free for another worker at once).
    pub async fn release(self) {
        self.keeper.abort();
        if let Err(e) = store::release_lease(&self.db, &self.id, &self.holder).await {
            tracing::warn!(batch_id = %self.id, error = %e, "lease not given back; it lapses");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Renews the lease at a third of its life; declares it lost when the job says another holder
/// has it, or when no renewal succeeded for a whole life (it may have lapsed meanwhile).
async fn keep(db: PgPool, id: String, holder: String, ttl: Duration, lost: CancellationToken) {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        match store::take_lease(&db, &id, &holder, ttl_ms).await {
            Ok(Some(_)) => renewed = Instant::now(),
            Ok(None) => {
                // Ended by this run (the lease goes with the end) or taken by another worker:
                // either way this run must stop writing.
                lost.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(batch_id = %id, error = %e, "lease not renewed");
                if renewed.elapsed() >= ttl {
                    lost.cancel();
                    return;
                }
            }
        }
    }
}
