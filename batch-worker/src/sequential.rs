//! The sequential run: the lines of a job answered one by one through the text provider layer,
//! a bounded number at once, for models whose provider has no batch API (and for the offline
//! `dummy`). Each finished line is journaled in PostgreSQL before it counts, so a replacement
//! worker skips it; a cancel drops the running lines at once (closing their connections).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::batch::Job;
use common::batch::store::{self, LineResult};
use common::llm::Candidate;
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::input::{InputError, Lines};
use crate::job::{Ctx, Stop, Stops};
use crate::line::{self, Gate};
use crate::progress::Counts;

/// Lines journaled in one statement at most.
const JOURNAL_BATCH: usize = 512;

type Entry = (LineResult, oneshot::Sender<()>);

/// Writes finished lines to the journal, several per statement: a line counts as done once its
/// statement committed. Keeps trying while the database is away (the lines wait).
async fn journal(db: PgPool, id: String, mut rx: mpsc::Receiver<Entry>, window: Duration) {
    while let Some(first) = rx.recv().await {
        let mut entries = vec![first];
        let deadline = tokio::time::Instant::now() + window;
        while entries.len() < JOURNAL_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => entries.push(e),
                Ok(None) | Err(_) => break,
            }
        }
        let lines: Vec<LineResult> = entries.iter().map(|(l, _)| l.clone()).collect();
        let mut delay = Duration::from_millis(100);
        while let Err(e) = store::record_lines(&db, &id, &lines).await {
            tracing::warn!(batch_id = %id, error = %e, "journal write failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        for (_, ack) in entries {
            let _ = ack.send(());
        }
    }
}

/// Runs the job's lines not journaled yet until every line is done or a stop comes.
pub async fn run(
    ctx: &Ctx,
    job: &Job,
    key: &str,
    candidate: &Candidate,
    counts: &Arc<Counts>,
    stops: &Stops,
) -> Result<Option<Stop>, InputError> {
    let (done, ok, failed) = match store::journaled(&ctx.db, &job.id).await {
        Ok(j) => j,
        Err(e) => return Err(InputError::Io(std::io::Error::other(e))),
    };
    counts.completed.store(ok as u32, Ordering::Relaxed);
    counts.failed.store(failed as u32, Ordering::Relaxed);
    let done: HashSet<i32> = done.into_iter().collect();
    if !done.is_empty() {
        tracing::info!(batch_id = %job.id, skipped = done.len(), "resuming: journaled lines are not run again");
    }
    let (tx, rx) = mpsc::channel::<Entry>(JOURNAL_BATCH * 2);
    let writer = tokio::spawn(journal(
        ctx.db.clone(),
        job.id.clone(),
        rx,
        Duration::from_millis(ctx.settings.journal_flush_ms),
    ));
    let registry = ctx.providers.registry();
    // Lines are read while earlier lines wait on the provider, for as long as the job runs: from
    // a local copy, since an object store closes a connection left idle that long.
    let spooled = crate::job::spool_input(ctx, job, key)
        .await
        .map_err(|e| InputError::Io(std::io::Error::other(e)))?;
    let file = tokio::fs::File::open(&spooled).await;
    // Unlinked at once: the open file stays readable, and nothing is left behind by a crash.
    let _ = tokio::fs::remove_file(&spooled).await;
    let reader = Box::new(tokio::io::BufReader::with_capacity(64 * 1024, file?));
    let mut lines = Lines::rereading(reader, &job.endpoint, registry);
    let concurrency = ctx.settings.concurrency.max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    // Lines answered but not yet journaled are bounded too: memory must not grow with the file
    // when the provider answers faster than the journal commits.
    let unjournaled = Arc::new(Semaphore::new(concurrency + 2 * JOURNAL_BATCH));
    let gate: Arc<Gate> = ctx.gates.of(&candidate.provider_name);
    let mut running = JoinSet::new();
    let reading: Result<Option<Stop>, InputError> = async {
        loop {
            while running.try_join_next().is_some() {}
            let held = tokio::select! {
                biased;
                stop = stops.any() => return Ok(Some(stop)),
                p = Arc::clone(&unjournaled).acquire_owned() => p.map_err(std::io::Error::other)?,
            };
            let permit = tokio::select! {
                biased;
                stop = stops.any() => return Ok(Some(stop)),
                p = Arc::clone(&permits).acquire_owned() => p.map_err(std::io::Error::other)?,
            };
            let next = tokio::select! {
                biased;
                stop = stops.any() => return Ok(Some(stop)),
                n = lines.next() => n?,
            };
            let Some((number, checked)) = next else {
                return Ok(None);
            };
            let number = i32::try_from(number).unwrap_or(i32::MAX);
            if done.contains(&number) {
                continue;
            }
            let Ok(request) = checked else {
                // The file was checked before the run; it changed since: the line fails alone.
                continue;
            };
            let (candidate, gate, settings) =
                (candidate.clone(), Arc::clone(&gate), ctx.settings.clone());
            let (tx, counts) = (tx.clone(), Arc::clone(counts));
            running.spawn(async move {
                let answered = line::answer(
                    &candidate,
                    &gate,
                    &request.custom_id,
                    &request.body,
                    &settings,
                )
                .await;
                // The provider's slot is free once the answer is in; the journal write that
                // makes the line count goes on without holding it.
                drop(permit);
                let (ack, acked) = oneshot::channel();
                let ok = answered.ok;
                let entry = LineResult {
                    line: number,
                    ok,
                    result: answered.line,
                };
                if tx.send((entry, ack)).await.is_ok() && acked.await.is_ok() {
                    let counter = if ok {
                        &counts.completed
                    } else {
                        &counts.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                drop(held);
            });
        }
    }
    .await;
    let outcome = match reading {
        Ok(None) => loop {
            tokio::select! {
                biased;
                stop = stops.any() => break Ok(Some(stop)),
                r = running.join_next() => if r.is_none() { break Ok(None) },
            }
        },
        other => other,
    };
    // Dropping a running line closes its upstream request; what it would have answered is not
    // journaled, so a resumed run asks again.
    running.shutdown().await;
    drop(tx);
    let _ = writer.await;
    outcome
}
