//! Running one job (`batch.job.run`): take its lease, check its input, run it on the provider's
//! batch API or line by line, stop it on a cancel or at the end of its window, write its output
//! and error files, and end it. Everything a replacement worker needs to go on is in PostgreSQL
//! before it matters: the validated state, the provider's ids, the journal of finished lines.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use common::backoff::Backoff;
use common::batch::jsonl;
use common::batch::store::{self, Ending};
use common::batch::{Job, Owner, Status};
use common::events::{TaskEvents, TextCompleted};
use common::llm::{Candidate, Providers};
use common::payloads::batch::RunPayload;
use common::storage::{Storage, StorageError};
use common::worker::{Action, HandlerError, Task};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::config::BatchSettings;
use crate::input::{self, InputError, Lines};
use crate::lease::{Lease, Taken};
use crate::line::Gates;
use crate::output::{Output, OutputError};
use crate::progress::{self, Counts, Subject};
use crate::providers::{BatchApi, BatchApis, Submitted};
use crate::sequential;

/// What every run shares.
pub struct Ctx {
    /// The job tables.
    pub db: PgPool,
    /// Input and output files.
    pub storage: Storage,
    /// The text providers (sequential runs).
    pub providers: Arc<Providers>,
    /// The provider batch APIs.
    pub apis: BatchApis,
    /// Rate-limit pauses per provider.
    pub gates: Gates,
    /// How jobs run.
    pub settings: BatchSettings,
    /// This process's name; each run holds its lease as `{holder}/{run}`.
    pub holder: String,
}

/// Why a run stops before its lines are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The submitter cancelled the job.
    Cancelled,
    /// The completion window ended.
    Expired,
    /// The lease could not be kept: another worker may run the job now.
    LeaseLost,
}

/// The things that stop a run.
#[derive(Debug, Clone)]
pub struct Stops {
    cancel: CancellationToken,
    lost: CancellationToken,
    deadline: tokio::time::Instant,
}

impl Stops {
    /// Resolves with the first stop that comes.
    pub async fn any(&self) -> Stop {
        tokio::select! {
            biased;
            () = self.lost.cancelled() => Stop::LeaseLost,
            () = self.cancel.cancelled() => Stop::Cancelled,
            () = tokio::time::sleep_until(self.deadline) => Stop::Expired,
        }
    }

    /// A stop that has already come, if any.
    pub fn now(&self) -> Option<Stop> {
        if self.lost.is_cancelled() {
            Some(Stop::LeaseLost)
        } else if self.cancel.is_cancelled() {
            Some(Stop::Cancelled)
        } else if tokio::time::Instant::now() >= self.deadline {
            Some(Stop::Expired)
        } else {
            None
        }
    }
}

/// How one attempt ended.
enum Attempt {
    /// The job has ended (by this run or another).
    Ended,
    /// The lease was lost; wait for it again.
    LeaseLost,
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
enum Fault {
    /// The job cannot run as submitted; it was ended `failed` and the client is told.
    #[error("{}", .0.error.message)]
    Refused(HandlerError),
    /// Something this service depends on failed; the attempt is tried again.
    #[error(transparent)]
    Infra(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Fault {
    fn from(e: sqlx::Error) -> Self {
        Self::Infra(e.into())
    }
}

impl From<OutputError> for Fault {
    fn from(e: OutputError) -> Self {
        Self::Infra(e.into())
    }
}

impl From<std::io::Error> for Fault {
    fn from(e: std::io::Error) -> Self {
        Self::Infra(e.into())
    }
}

impl From<InputError> for Fault {
    fn from(e: InputError) -> Self {
        Self::Infra(e.into())
    }
}

impl From<common::provider::ProviderError> for Fault {
    fn from(e: common::provider::ProviderError) -> Self {
        Self::Infra(e.into())
    }
}

/// The `batch.job.run` action.
pub struct RunBatch {
    ctx: Arc<Ctx>,
}

impl RunBatch {
    /// The action over `ctx`.
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }
}

fn db_error(e: sqlx::Error) -> HandlerError {
    HandlerError::retryable("batch", "database_unavailable", e.to_string())
}

fn summary(job: &Job) -> String {
    format!(
        "batch {} {}: {} of {} requests answered, {} failed",
        job.id, job.status, job.completed, job.total, job.failed
    )
}

#[async_trait]
impl Action<RunPayload> for RunBatch {
    async fn run(&self, task: Task, payload: RunPayload) -> Result<(), HandlerError> {
        let ctx = &self.ctx;
        let tenant = task.action.tenant_id;
        let id = payload.batch_id;
        if store::job_of_tenant(&ctx.db, tenant, &id)
            .await
            .map_err(db_error)?
            .is_none()
        {
            return Err(HandlerError::rejected(
                "not_found",
                format!("no batch job {id} for this tenant"),
            ));
        }
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match attempt(ctx, &task, &id).await {
                Ok(Attempt::Ended) => break,
                Ok(Attempt::LeaseLost) => {
                    tracing::warn!(batch_id = %id, "lease lost; waiting to take the job back");
                }
                Err(Fault::Refused(e)) => return Err(e),
                Err(Fault::Infra(e)) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(batch_id = %id, error = %e, retry_in_ms = wait.as_millis() as u64, "batch run failed; trying again");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        let job = store::job_of_tenant(&ctx.db, tenant, &id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| HandlerError::fatal("batch", "not_found", "the job vanished"))?;
        let mut done = TextCompleted::new(
            summary(&job),
            job.usage.clone().unwrap_or(Value::Null),
            "stop",
        );
        done.data = Some(json!({"batch": job.to_api()}));
        task.events.text_completed(&done).await?;
        Ok(())
    }
}

async fn attempt(ctx: &Ctx, task: &Task, id: &str) -> Result<Attempt, Fault> {
    let ttl = Duration::from_secs(ctx.settings.lease_secs.max(1));
    // A duplicate delivery waits for the live holder rather than running beside it. Each run
    // holds the lease under its own name: two deliveries in one process must not share it.
    let holder = format!("{}/{}", ctx.holder, uuid::Uuid::now_v7().simple());
    let holder = holder.as_str();
    let (lease, job) =
        match Lease::take(&ctx.db, id, holder, ttl, &CancellationToken::new()).await? {
            Taken::Held(lease, job) => (lease, *job),
            Taken::Ended | Taken::Stopped => return Ok(Attempt::Ended),
        };
    let result = drive(ctx, task, &lease, job).await;
    match result {
        Ok(Some(Stop::LeaseLost)) => Ok(Attempt::LeaseLost),
        Ok(_) => {
            lease.release().await;
            Ok(Attempt::Ended)
        }
        Err(e) => {
            lease.release().await;
            Err(e)
        }
    }
}

fn deadline(job: &Job) -> tokio::time::Instant {
    let left = (job.expires_at - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + left
}

/// Ends a job that cannot run with one error and tells the client.
async fn refuse(
    ctx: &Ctx,
    holder: &str,
    job: &Job,
    code: &'static str,
    message: String,
) -> Result<(), Fault> {
    let errors = json!([{"code": code, "line": null, "message": message, "param": null}]);
    store::fail_validation(&ctx.db, &job.id, holder, job.total, &errors).await?;
    Err(Fault::Refused(HandlerError::rejected(code, message)))
}

/// The candidate for the job's model: the model itself on a configured provider, or the
/// offline dummy when no provider at all is configured (as chats do).
fn candidate(ctx: &Ctx, model: &str) -> Result<(Candidate, bool), (&'static str, String)> {
    let plan = ctx
        .providers
        .plan(Some(model))
        .map_err(|e| (e.code(), e.to_string()))?;
    let asked = ctx
        .providers
        .registry()
        .resolve(Some(model))
        .map_err(|e| ("unknown_model", e.to_string()))?
        .name
        .to_owned();
    let placeholder = plan.note.is_some();
    let Some(first) = plan.candidates.into_iter().next() else {
        return Err((
            "provider_unavailable",
            format!("no configured provider serves {model}"),
        ));
    };
    if !placeholder && first.model != asked {
        // A batch is answered by the model it names or not at all: no silent fallback.
        return Err((
            "provider_unavailable",
            format!("no configured provider serves {asked}; its provider's key is not set"),
        ));
    }
    Ok((first, placeholder))
}

/// Runs the job under `lease`; `Some(LeaseLost)` when another worker may have it now.
async fn drive(ctx: &Ctx, task: &Task, lease: &Lease, mut job: Job) -> Result<Option<Stop>, Fault> {
    let holder = lease.holder();
    let stops = Stops {
        cancel: task.cancel.clone(),
        lost: lease.lost(),
        deadline: deadline(&job),
    };
    let owner = Owner {
        tenant_id: job.tenant_id,
        user_id: job.user_id,
    };
    let Some(input) = store::file(&ctx.db, owner, &job.input_file_id).await? else {
        refuse(
            ctx,
            holder,
            &job,
            "file_not_found",
            format!("the input file {} no longer exists", job.input_file_id),
        )
        .await?;
        return Ok(None);
    };
    let key = input.storage_key.clone();
    let asked_cancel = job.state() == Status::Cancelling;
    if job.state() == Status::Validating || (asked_cancel && job.model.is_none()) {
        if asked_cancel || stops.now() == Some(Stop::Cancelled) {
            end(ctx, holder, &job, Status::Cancelled, None).await?;
            return Ok(None);
        }
        let registry = ctx.providers.registry();
        let lines =
            match Lines::open(&ctx.storage, job.tenant_id, &key, &job.endpoint, registry).await {
                Err(InputError::Storage(StorageError::NotFound)) => {
                    refuse(
                        ctx,
                        holder,
                        &job,
                        "file_not_found",
                        "the input file is gone from storage".into(),
                    )
                    .await?;
                    return Ok(None);
                }
                other => other?,
            };
        let checked = input::check(lines).await?;
        let total = i32::try_from(checked.total).unwrap_or(i32::MAX);
        if !checked.errors.is_empty() {
            let first = checked.errors[0].message.clone();
            let n = checked.errors.len();
            let errors = serde_json::to_value(&checked.errors).unwrap_or(Value::Null);
            store::fail_validation(&ctx.db, &job.id, holder, total, &errors).await?;
            let more = if n > 1 {
                format!(" ({n} problems; see the job's errors)")
            } else {
                String::new()
            };
            return Err(Fault::Refused(HandlerError::rejected(
                "invalid_batch_file",
                format!("{first}{more}"),
            )));
        }
        let Some(model) = checked.model else {
            refuse(
                ctx,
                holder,
                &job,
                "empty_file",
                "the input file holds no requests".into(),
            )
            .await?;
            return Ok(None);
        };
        let (candidate, placeholder) = match candidate(ctx, &model) {
            Ok(c) => c,
            Err((code, message)) => {
                refuse(ctx, holder, &job, code, message).await?;
                return Ok(None);
            }
        };
        let api = ctx.apis.get(&candidate.provider_name).filter(|api| {
            candidate.spec.batch
                && !placeholder
                && api
                    .max_input_bytes()
                    .is_none_or(|max| u64::try_from(input.bytes).unwrap_or(u64::MAX) <= max)
        });
        let mode = if api.is_some() {
            "provider"
        } else {
            "sequential"
        };
        if !store::start(
            &ctx.db,
            &job.id,
            holder,
            total,
            &model,
            &candidate.provider_name,
            mode,
        )
        .await?
        {
            return Ok(Some(Stop::LeaseLost));
        }
        tracing::info!(batch_id = %job.id, total, model, provider = %candidate.provider_name, mode, "batch validated");
        job = store::job_of_tenant(&ctx.db, job.tenant_id, &job.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("job {} vanished", job.id))?;
    }
    let model = job.model.clone().unwrap_or_default();
    let candidate = match candidate(ctx, &model) {
        Ok((c, _)) => c,
        Err((code, message)) => {
            refuse(ctx, holder, &job, code, message).await?;
            return Ok(None);
        }
    };
    let total = u32::try_from(job.total).unwrap_or(0);
    let subject = Subject {
        batch_id: job.id.clone(),
        holder: holder.to_owned(),
        total,
        provider: None,
    };
    let counts = Arc::new(Counts::default());
    counts.set(
        u32::try_from(job.completed).unwrap_or(0),
        u32::try_from(job.failed).unwrap_or(0),
    );
    let (c, f) = counts.get();
    send_progress(&task.events, &progress::event(&subject, "running", c, f)).await;
    let stopped = if asked_cancel {
        Some(Stop::Cancelled)
    } else {
        None
    };
    if job.mode.as_deref() == Some("provider") {
        let Some(api) = ctx.apis.get(&candidate.provider_name) else {
            let message = format!(
                "the batch API of {} is not configured here any more",
                candidate.provider_name
            );
            return Err(Fault::Infra(anyhow::anyhow!(message)));
        };
        return provider_run(
            ctx,
            holder,
            task,
            &job,
            &key,
            &candidate,
            api.as_ref(),
            &stops,
            subject,
            stopped,
        )
        .await;
    }
    let outcome = match stopped {
        Some(s) => Some(s),
        None => {
            let reporter = progress::spawn(
                ctx.db.clone(),
                task.events.clone(),
                subject,
                Arc::clone(&counts),
                Duration::from_millis(ctx.settings.progress_interval_ms),
            );
            let r = sequential::run(ctx, &job, &key, &candidate, &counts, &stops).await;
            reporter.abort();
            r?
        }
    };
    let status = match outcome {
        Some(Stop::LeaseLost) => return Ok(Some(Stop::LeaseLost)),
        Some(Stop::Cancelled) => Status::Cancelled,
        Some(Stop::Expired) => Status::Expired,
        None => Status::Completed,
    };
    if status == Status::Completed {
        store::finalizing(&ctx.db, &job.id, holder).await?;
    }
    let mut out = Output::create(ctx.settings.spool(), &job).await?;
    if status != Status::Completed {
        unfinished(ctx, &job, &key, status, &mut out).await?;
    }
    let mut after = 0;
    loop {
        let page = store::journal_page(&ctx.db, &job.id, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.line;
        for line in &page {
            out.push(line.ok, &line.result).await?;
        }
    }
    end(ctx, holder, &job, status, Some(out)).await?;
    Ok(None)
}

async fn send_progress(events: &TaskEvents, p: &common::events::Progress) {
    if let Err(e) = events.progress(p).await {
        tracing::warn!(error = %e, "progress not sent");
    }
}

/// Lines a cancelled or expired sequential run never finished go to the error file.
async fn unfinished(
    ctx: &Ctx,
    job: &Job,
    key: &str,
    status: Status,
    out: &mut Output,
) -> Result<(), Fault> {
    let (done, _, _) = store::journaled(&ctx.db, &job.id).await?;
    let done: std::collections::HashSet<i32> = done.into_iter().collect();
    let (code, message) = if status == Status::Cancelled {
        (
            "batch_cancelled",
            "the batch was cancelled before this request ran",
        )
    } else {
        (
            "batch_expired",
            "the batch's completion window ended before this request ran",
        )
    };
    let reader = ctx
        .storage
        .get_stream(job.tenant_id, key)
        .await
        .map_err(|e| Fault::Infra(e.into()))?;
    let mut lines = Lines::rereading(Box::new(reader), &job.endpoint, ctx.providers.registry());
    while let Some((number, line)) = lines.next().await? {
        let number = i32::try_from(number).unwrap_or(i32::MAX);
        if let (false, Ok(line)) = (done.contains(&number), line) {
            out.push(false, &jsonl::failed_line(&line.custom_id, code, message))
                .await?;
        }
    }
    Ok(())
}

/// Stores the files (if any) and ends the job.
async fn end(
    ctx: &Ctx,
    holder: &str,
    job: &Job,
    status: Status,
    out: Option<Output>,
) -> Result<(), Fault> {
    let stored = match out {
        Some(out) => Some(out.store(&ctx.db, &ctx.storage, job).await?),
        None => None,
    };
    let ending = Ending {
        status,
        output_file_id: stored.as_ref().and_then(|s| s.output_file_id.as_deref()),
        error_file_id: stored.as_ref().and_then(|s| s.error_file_id.as_deref()),
        completed: stored.as_ref().map_or(job.completed, |s| s.completed),
        failed: stored.as_ref().map_or(job.failed, |s| s.failed),
        usage: stored.as_ref().map(|s| s.usage.clone()),
    };
    if !store::finish(&ctx.db, &job.id, holder, &ending).await? {
        return Err(Fault::Infra(anyhow::anyhow!(
            "lease lost while ending the job"
        )));
    }
    tracing::info!(batch_id = %job.id, status = status.as_str(), completed = ending.completed, failed = ending.failed, "batch ended");
    Ok(())
}

/// Copies the input from storage to a spool file (what a provider's submission reads).
pub(crate) async fn spool_input(
    ctx: &Ctx,
    job: &Job,
    key: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let dir = ctx.settings.spool();
    tokio::fs::create_dir_all(&dir).await?;
    let path = dir.join(format!(
        "{}-{}-input.jsonl",
        job.id,
        uuid::Uuid::now_v7().simple()
    ));
    let mut reader = ctx.storage.get_stream(job.tenant_id, key).await?;
    let mut file = tokio::fs::File::create(&path).await?;
    tokio::io::copy_buf(&mut reader, &mut file).await?;
    file.flush().await?;
    Ok(path)
}

/// Runs the job on the provider's batch API.
#[allow(clippy::too_many_arguments)]
async fn provider_run(
    ctx: &Ctx,
    holder: &str,
    task: &Task,
    job: &Job,
    key: &str,
    candidate: &Candidate,
    api: &dyn BatchApi,
    stops: &Stops,
    mut subject: Subject,
    mut stopped: Option<Stop>,
) -> Result<Option<Stop>, Fault> {
    let mut submitted = job.provider_batch_id.clone().map(|batch_id| Submitted {
        batch_id,
        file_id: job.provider_file_id.clone(),
    });
    if submitted.is_none() && job.in_progress_at.is_some() {
        // An earlier run may have submitted and died before recording the id.
        submitted = api.find(job).await?;
        if let Some(s) = &submitted {
            tracing::info!(batch_id = %job.id, provider_batch_id = %s.batch_id, "found the batch an earlier run submitted");
        }
    }
    let stop_now = stopped.or_else(|| stops.now());
    if submitted.is_none() && stop_now.is_some() {
        // Nothing reached the provider: every request ends unrun.
        let status = if stop_now == Some(Stop::Expired) {
            Status::Expired
        } else {
            Status::Cancelled
        };
        if stop_now == Some(Stop::LeaseLost) {
            return Ok(Some(Stop::LeaseLost));
        }
        let mut out = Output::create(ctx.settings.spool(), job).await?;
        unfinished(ctx, job, key, status, &mut out).await?;
        end(ctx, holder, job, status, Some(out)).await?;
        return Ok(None);
    }
    let submitted = match submitted {
        Some(s) => s,
        None => {
            let path = spool_input(ctx, job, key).await?;
            let result = api.submit(job, candidate, &path).await;
            if let Err(e) = tokio::fs::remove_file(&path).await {
                tracing::warn!(error = %e, "spool file not removed");
            }
            let s = match result {
                Ok(s) => s,
                // A refusal (a wrong key, a request the provider will never take) does not pass
                // by trying again: the job fails with it. Rate limits and 5xx are retried.
                Err(e) if !e.retryable() => {
                    tracing::warn!(batch_id = %job.id, error = %e, "the provider refused the batch");
                    refuse(ctx, holder, job, e.code(), e.to_string()).await?;
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            if !store::set_provider_ids(
                &ctx.db,
                &job.id,
                holder,
                s.file_id.as_deref(),
                Some(&s.batch_id),
            )
            .await?
            {
                return Ok(Some(Stop::LeaseLost));
            }
            tracing::info!(batch_id = %job.id, provider_batch_id = %s.batch_id, "submitted to the provider's batch API");
            s
        }
    };
    let every = Duration::from_millis(ctx.settings.poll_interval_ms.max(10));
    let mut last: Option<(String, u32, u32)> = None;
    let mut cancel_sent: Option<tokio::time::Instant> = None;
    let cancel_wait = Duration::from_secs(ctx.settings.provider_cancel_wait_secs);
    loop {
        if let Some(Stop::Cancelled | Stop::Expired) = stopped
            && cancel_sent.is_none()
        {
            if let Err(e) = api.cancel(&submitted.batch_id).await {
                tracing::warn!(batch_id = %job.id, error = %e, "provider cancel failed; collecting what finished");
            }
            cancel_sent = Some(tokio::time::Instant::now());
        }
        let polled = match api.poll(&submitted.batch_id).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(batch_id = %job.id, error = %e, "poll failed; polling again");
                None
            }
        };
        if let Some(p) = polled {
            let now = (p.status.clone(), p.completed, p.failed);
            if last.as_ref() != Some(&now) {
                subject.provider = Some((submitted.batch_id.clone(), p.status.clone()));
                let c = i32::try_from(p.completed).unwrap_or(i32::MAX);
                let f = i32::try_from(p.failed).unwrap_or(i32::MAX);
                if !store::set_counts(&ctx.db, &job.id, holder, c, f).await? {
                    return Ok(Some(Stop::LeaseLost));
                }
                send_progress(
                    &task.events,
                    &progress::event(&subject, "running", p.completed, p.failed),
                )
                .await;
                last = Some(now);
            }
            if p.ended {
                break;
            }
        }
        if cancel_sent.is_some_and(|t| t.elapsed() >= cancel_wait) {
            break;
        }
        if stopped.is_none() {
            tokio::select! {
                stop = stops.any() => {
                    if stop == Stop::LeaseLost {
                        return Ok(Some(Stop::LeaseLost));
                    }
                    stopped = Some(stop);
                }
                () = tokio::time::sleep(every) => {}
            }
        } else {
            tokio::select! {
                () = stops.lost.cancelled() => return Ok(Some(Stop::LeaseLost)),
                () = tokio::time::sleep(every) => {}
            }
        }
    }
    let status = match stopped {
        Some(Stop::Cancelled) => Status::Cancelled,
        Some(Stop::Expired) => Status::Expired,
        _ => Status::Completed,
    };
    if status == Status::Completed {
        store::finalizing(&ctx.db, &job.id, holder).await?;
    }
    let mut out = Output::create(ctx.settings.spool(), job)
        .await?
        .remembering();
    api.results(&submitted.batch_id, candidate, &mut out)
        .await?;
    unanswered(ctx, job, key, status, &mut out).await?;
    end(ctx, holder, job, status, Some(out)).await?;
    Ok(None)
}

/// Every request of the input the provider's results do not mention goes to the error file
/// (OpenAI leaves a cancelled batch's unrun requests out of both files): each line of the job is
/// accounted for, whatever the provider returned or a crash forgot.
async fn unanswered(
    ctx: &Ctx,
    job: &Job,
    key: &str,
    status: Status,
    out: &mut Output,
) -> Result<(), Fault> {
    let (code, message) = match status {
        Status::Cancelled => (
            "batch_cancelled",
            "the batch was cancelled before this request ran",
        ),
        Status::Expired => (
            "batch_expired",
            "the batch's completion window ended before this request ran",
        ),
        _ => (
            "no_result",
            "the provider returned no result for this request",
        ),
    };
    let reader = ctx
        .storage
        .get_stream(job.tenant_id, key)
        .await
        .map_err(|e| Fault::Infra(e.into()))?;
    let mut lines = Lines::rereading(Box::new(reader), &job.endpoint, ctx.providers.registry());
    while let Some((_, line)) = lines.next().await? {
        if let Ok(line) = line
            && !out.has(&line.custom_id)
        {
            out.push(false, &jsonl::failed_line(&line.custom_id, code, message))
                .await?;
        }
    }
    Ok(())
}
