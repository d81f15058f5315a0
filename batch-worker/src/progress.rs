//! A running job's counts, written to its row and told to its submitter in `progress` events,
//! at most once per `BATCH__PROGRESS_INTERVAL_MS` and only when they changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::batch::store;
use common::events::{Progress, TaskEvents};
use sqlx::PgPool;
use tokio::task::JoinHandle;

/// Requests answered and failed so far.
#[derive(Debug, Default)]
pub struct Counts {
    /// Answered.
    pub completed: AtomicU32,
    /// Failed.
    pub failed: AtomicU32,
}

impl Counts {
    /// Both counts now.
    pub fn get(&self) -> (u32, u32) {
        (
            self.completed.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Sets both (a provider's poll reports them whole).
    pub fn set(&self, completed: u32, failed: u32) {
        self.completed.store(completed, Ordering::Relaxed);
        self.failed.store(failed, Ordering::Relaxed);
    }
}

/// What the reporter says about the job besides its counts.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The job.
    pub batch_id: String,
    /// Who holds its lease.
    pub holder: String,
    /// Requests in all.
    pub total: u32,
    /// The provider's batch id and status, in provider mode.
    pub provider: Option<(String, String)>,
}

/// The event for the counts now.
pub fn event(subject: &Subject, stage: &str, completed: u32, failed: u32) -> Progress {
    let done = completed + failed;
    let fraction = if subject.total == 0 {
        1.0
    } else {
        f64::from(done) / f64::from(subject.total)
    };
    Progress {
        stage: stage.to_owned(),
        fraction: Some(fraction.min(1.0)),
        message: format!(
            "{done} of {} requests done ({completed} answered, {failed} failed)",
            subject.total
        ),
        provider_job_id: subject.provider.as_ref().map(|p| p.0.clone()),
        provider_status: subject.provider.as_ref().map(|p| p.1.clone()),
        requests_completed: Some(u64::from(completed)),
        requests_failed: Some(u64::from(failed)),
        requests_total: Some(u64::from(subject.total)),
        ..Progress::default()
    }
}

/// Reports the counts until the returned handle is aborted.
pub fn spawn(
    db: PgPool,
    events: TaskEvents,
    subject: Subject,
    counts: Arc<Counts>,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = counts.get();
        let mut ticker = tokio::time::interval(every.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = counts.get();
            if now == last {
                continue;
            }
            last = now;
            let (completed, failed) = now;
            let (c, f) = (
                i32::try_from(completed).unwrap_or(i32::MAX),
                i32::try_from(failed).unwrap_or(i32::MAX),
            );
            if let Err(e) = store::set_counts(&db, &subject.batch_id, &subject.holder, c, f).await {
                tracing::warn!(batch_id = %subject.batch_id, error = %e, "counts not written");
            }
            if let Err(e) = events
                .progress(&event(&subject, "running", completed, failed))
                .await
            {
                tracing::warn!(batch_id = %subject.batch_id, error = %e, "progress not sent");
            }
        }
    })
}
