//! The batch tables: files and jobs for the API (every read scoped by owner), and what a worker
//! running a job writes — its lease, its progress, the journal of finished lines, its end.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::{BatchFile, Job, Owner, Status};

/// A file to record.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    /// `file-…`.
    pub id: &'a str,
    /// Who owns it.
    pub owner: Owner,
    /// `batch` or `batch_output`.
    pub purpose: &'a str,
    /// Its name.
    pub filename: &'a str,
    /// Its size.
    pub bytes: i64,
    /// Where it is in storage.
    pub storage_key: &'a str,
    /// When the sweeper removes it.
    pub expires_at: DateTime<Utc>,
}

/// Records a file; recording the same id again (a resumed job writing its output) updates it.
pub async fn insert_file(db: &PgPool, f: &NewFile<'_>) -> sqlx::Result<BatchFile> {
    sqlx::query_as!(
        BatchFile,
        r#"INSERT INTO batch_files (id, tenant_id, user_id, purpose, filename, bytes, storage_key, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (id) DO UPDATE SET bytes = EXCLUDED.bytes, storage_key = EXCLUDED.storage_key
           WHERE batch_files.tenant_id = EXCLUDED.tenant_id
           RETURNING id, tenant_id, user_id, purpose, filename, bytes, storage_key, created_at, expires_at"#,
        f.id,
        f.owner.tenant_id,
        f.owner.user_id,
        f.purpose,
        f.filename,
        f.bytes,
        f.storage_key,
        f.expires_at
    )
    .fetch_one(db)
    .await
}

/// The owner's file `id`.
pub async fn file(db: &PgPool, owner: Owner, id: &str) -> sqlx::Result<Option<BatchFile>> {
    sqlx::query_as!(
        BatchFile,
        r#"SELECT id, tenant_id, user_id, purpose, filename, bytes, storage_key, created_at, expires_at
           FROM batch_files
           WHERE id = $1 AND tenant_id = $2 AND user_id IS NOT DISTINCT FROM $3"#,
        id,
        owner.tenant_id,
        owner.user_id
    )
    .fetch_optional(db)
    .await
}

/// The owner's files, newest first, after the file `after` (a cursor), at most `limit + 1` (one
/// more tells that another page exists), of one purpose when given.
pub async fn files(
    db: &PgPool,
    owner: Owner,
    after: Option<&str>,
    purpose: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<BatchFile>> {
    sqlx::query_as!(
        BatchFile,
        r#"SELECT id, tenant_id, user_id, purpose, filename, bytes, storage_key, created_at, expires_at
           FROM batch_files f
           WHERE tenant_id = $1 AND user_id IS NOT DISTINCT FROM $2
             AND ($3::text IS NULL OR purpose = $3)
             AND ($4::text IS NULL OR (created_at, id) < (
                   SELECT created_at, id FROM batch_files a
                   WHERE a.id = $4 AND a.tenant_id = $1 AND a.user_id IS NOT DISTINCT FROM $2))
           ORDER BY created_at DESC, id DESC
           LIMIT $5"#,
        owner.tenant_id,
        owner.user_id,
        purpose,
        after,
        limit
    )
    .fetch_all(db)
    .await
}

/// Removes the owner's file record `id` and answers it (its object is the caller's to delete).
pub async fn delete_file(db: &PgPool, owner: Owner, id: &str) -> sqlx::Result<Option<BatchFile>> {
    sqlx::query_as!(
        BatchFile,
        r#"DELETE FROM batch_files
           WHERE id = $1 AND tenant_id = $2 AND user_id IS NOT DISTINCT FROM $3
           RETURNING id, tenant_id, user_id, purpose, filename, bytes, storage_key, created_at, expires_at"#,
        id,
        owner.tenant_id,
        owner.user_id
    )
    .fetch_optional(db)
    .await
}

/// A job to record (status `validating`).
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// `batch_…`.
    pub id: &'a str,
    /// Who submits it.
    pub owner: Owner,
    /// Where its events go.
    pub session_id: Uuid,
    /// Their task.
    pub task_id: Uuid,
    /// The endpoint of its lines.
    pub endpoint: &'a str,
    /// Its input.
    pub input_file_id: &'a str,
    /// `24h`.
    pub completion_window: &'a str,
    /// The submitter's metadata.
    pub metadata: Option<Value>,
    /// End of the completion window.
    pub expires_at: DateTime<Utc>,
    /// When it is removed.
    pub delete_at: DateTime<Utc>,
}

/// Records a job.
pub async fn insert_job(db: &PgPool, j: &NewJob<'_>) -> sqlx::Result<Job> {
    sqlx::query_as!(
        Job,
        r#"INSERT INTO batch_jobs (id, tenant_id, user_id, session_id, task_id, endpoint,
             input_file_id, completion_window, status, metadata, expires_at, delete_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'validating', $9, $10, $11)
           RETURNING id, tenant_id, user_id, session_id, task_id, endpoint, input_file_id, completion_window,
           status, model, provider, mode, provider_batch_id, provider_file_id, output_file_id,
           error_file_id, total, completed, failed, errors, metadata, usage, created_at,
           in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at,
           cancelled_at, expires_at, delete_at"#,
        j.id,
        j.owner.tenant_id,
        j.owner.user_id,
        j.session_id,
        j.task_id,
        j.endpoint,
        j.input_file_id,
        j.completion_window,
        j.metadata,
        j.expires_at,
        j.delete_at
    )
    .fetch_one(db)
    .await
}

/// The owner's job `id`.
pub async fn job(db: &PgPool, owner: Owner, id: &str) -> sqlx::Result<Option<Job>> {
    sqlx::query_as!(
        Job,
        r#"SELECT id, tenant_id, user_id, session_id, task_id, endpoint, input_file_id, completion_window,
           status, model, provider, mode, provider_batch_id, provider_file_id, output_file_id,
           error_file_id, total, completed, failed, errors, metadata, usage, created_at,
           in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at,
           cancelled_at, expires_at, delete_at
           FROM batch_jobs WHERE id = $1 AND tenant_id = $2 AND user_id IS NOT DISTINCT FROM $3"#,
        id,
        owner.tenant_id,
        owner.user_id
    )
    .fetch_optional(db)
    .await
}

/// The tenant's job `id`, whoever submitted it (the worker's read: the action names the tenant).
pub async fn job_of_tenant(db: &PgPool, tenant_id: Uuid, id: &str) -> sqlx::Result<Option<Job>> {
    sqlx::query_as!(
        Job,
        r#"SELECT id, tenant_id, user_id, session_id, task_id, endpoint, input_file_id, completion_window,
           status, model, provider, mode, provider_batch_id, provider_file_id, output_file_id,
           error_file_id, total, completed, failed, errors, metadata, usage, created_at,
           in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at,
           cancelled_at, expires_at, delete_at
           FROM batch_jobs WHERE id = $1 AND tenant_id = $2"#,
        id,
        tenant_id
    )
    .fetch_optional(db)
    .await
}

/// The owner's jobs, newest first, after the job `after`, at most `limit + 1`.
pub async fn jobs(
    db: &PgPool,
    owner: Owner,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<Job>> {
    sqlx::query_as!(
        Job,
        r#"SELECT id, tenant_id, user_id, session_id, task_id, endpoint, input_file_id, completion_window,
           status, model, provider, mode, provider_batch_id, provider_file_id, output_file_id,
           error_file_id, total, completed, failed, errors, metadata, usage, created_at,
           in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at,
           cancelled_at, expires_at, delete_at
           FROM batch_jobs
           WHERE tenant_id = $1 AND user_id IS NOT DISTINCT FROM $2
             AND ($3::text IS NULL OR (created_at, id) < (
                   SELECT created_at, id FROM batch_jobs a
                   WHERE a.id = $3 AND a.tenant_id = $1 AND a.user_id IS NOT DISTINCT FROM $2))
           ORDER BY created_at DESC, id DESC
           LIMIT $4"#,
        owner.tenant_id,
        owner.user_id,
        after,
        limit
    )
    .fetch_all(db)
    .await
}

/// Removes a job that never ran (its run action could not be published): nothing is left that
/// no worker would ever take.
pub async fn delete_unstarted_job(db: &PgPool, owner: Owner, id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"DELETE FROM batch_jobs
           WHERE id = $1 AND tenant_id = $2 AND user_id IS NOT DISTINCT FROM $3
             AND status = 'validating' AND lease_owner IS NULL"#,
        id,
        owner.tenant_id,
        owner.user_id
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// What asking to cancel a job found.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelAsked {
    /// The job is now `cancelling` (or already was): its worker stops it.
    Cancelling(Job),
    /// The job had already ended; nothing changed.
    AlreadyEnded(Job),
    /// No such job for this owner.
    NotFound,
}

/// Marks the owner's job `cancelling` unless it has ended.
pub async fn ask_cancel(db: &PgPool, owner: Owner, id: &str) -> sqlx::Result<CancelAsked> {
    let updated = sqlx::query_as!(
        Job,
        r#"UPDATE batch_jobs SET status = 'cancelling', cancelling_at = coalesce(cancelling_at, now())
           WHERE id = $1 AND tenant_id = $2 AND user_id IS NOT DISTINCT FROM $3
             AND status IN ('validating', 'in_progress', 'finalizing', 'cancelling')
           RETURNING id, tenant_id, user_id, session_id, task_id, endpoint, input_file_id, completion_window,
           status, model, provider, mode, provider_batch_id, provider_file_id, output_file_id,
           error_file_id, total, completed, failed, errors, metadata, usage, created_at,
           in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at,
           cancelled_at, expires_at, delete_at"#,
        id,
        owner.tenant_id,
        owner.user_id
    )
    .fetch_optional(db)
    .await?;
    if let Some(job) = updated {
        return Ok(CancelAsked::Cancelling(job));
    }
    Ok(match job(db, owner, id).await? {
        Some(job) => CancelAsked::AlreadyEnded(job),
        None => CancelAsked::NotFound,
    })
}

// ---- what a worker running a job writes ----

/// Takes (or renews) the lease on job `id` for `holder` until `ttl_ms` from now, unless another
/// holder's lease is still running or the job has ended. `None`: not taken.
pub async fn take_lease(
    db: &PgPool,
    id: &str,
    holder: &str,
    ttl_ms: i64,
) -> sqlx::Result<Option<Job>> {
    sqlx::query_as!(
        Job,
        r#"UPDATE batch_jobs
           SET lease_owner = $2, lease_until = now() + make_interval(secs => $3::bigint / 1000.0)
           WHERE id = $1
             AND status IN ('validating', 'in_progress', 'finalizing', 'cancelling')
             AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < now())
           RETURNING id, tenant_id, user_id, session_id, task_id, endpoint, input_file_id, completion_window,
           status, model, provider, mode, provider_batch_id, provider_file_id, output_file_id,
           error_file_id, total, completed, failed, errors, metadata, usage, created_at,
           in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at,
           cancelled_at, expires_at, delete_at"#,
        id,
        holder,
        ttl_ms
    )
    .fetch_optional(db)
    .await
}

/// Gives the lease back (at the end of a run, or when stopping).
pub async fn release_lease(db: &PgPool, id: &str, holder: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE batch_jobs SET lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND lease_owner = $2",
        id,
        holder
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The job's status now (a cancel asked through the API shows here).
pub async fn status(db: &PgPool, id: &str) -> sqlx::Result<Option<Status>> {
    let s = sqlx::query_scalar!("SELECT status FROM batch_jobs WHERE id = $1", id)
        .fetch_optional(db)
        .await?;
    Ok(s.as_deref().map(Status::parse))
}

/// A validated input: the job runs, `total` lines of `model` on `provider` in `mode`. Only the
/// lease holder writes; `false` when it no longer holds the lease. A job cancelled meanwhile stays
/// `cancelling`.
pub async fn start(
    db: &PgPool,
    id: &str,
    holder: &str,
    total: i32,
    model: &str,
    provider: &str,
    mode: &str,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE batch_jobs SET total = $3, model = $4, provider = $5, mode = $6,
             status = CASE WHEN status = 'validating' THEN 'in_progress' ELSE status END,
             in_progress_at = coalesce(in_progress_at, now())
           WHERE id = $1 AND lease_owner = $2"#,
        id,
        holder,
        total,
        model,
        provider,
        mode
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The input was refused: the job ends `failed` with its line errors.
pub async fn fail_validation(
    db: &PgPool,
    id: &str,
    holder: &str,
    total: i32,
    errors: &Value,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE batch_jobs SET status = 'failed', failed_at = now(), total = $3, errors = $4,
             lease_owner = NULL, lease_until = NULL
           WHERE id = $1 AND lease_owner = $2"#,
        id,
        holder,
        total,
        errors
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Writes the provider's ids as soon as they exist (before anything is polled).
pub async fn set_provider_ids(
    db: &PgPool,
    id: &str,
    holder: &str,
    provider_file_id: Option<&str>,
    provider_batch_id: Option<&str>,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE batch_jobs SET provider_file_id = coalesce($3, provider_file_id),
             provider_batch_id = coalesce($4, provider_batch_id)
           WHERE id = $1 AND lease_owner = $2"#,
        id,
        holder,
        provider_file_id,
        provider_batch_id
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Updates the request counts.
pub async fn set_counts(
    db: &PgPool,
    id: &str,
    holder: &str,
    completed: i32,
    failed: i32,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE batch_jobs SET completed = $3, failed = $4 WHERE id = $1 AND lease_owner = $2",
        id,
        holder,
        completed,
        failed
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Every line ran (or the run stops): the output files are being written.
pub async fn finalizing(db: &PgPool, id: &str, holder: &str) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE batch_jobs SET finalizing_at = coalesce(finalizing_at, now()),
             status = CASE WHEN status = 'in_progress' THEN 'finalizing' ELSE status END
           WHERE id = $1 AND lease_owner = $2"#,
        id,
        holder
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// How a job ended.
#[derive(Debug, Clone)]
pub struct Ending<'a> {
    /// `completed`, `cancelled` or `expired`.
    pub status: Status,
    /// The output file, if any line succeeded.
    pub output_file_id: Option<&'a str>,
    /// The error file, if any line failed.
    pub error_file_id: Option<&'a str>,
    /// Lines answered.
    pub completed: i32,
    /// Lines failed.
    pub failed: i32,
    /// Tokens used.
    pub usage: Option<Value>,
}

/// Ends the job: its status, files and counts, its journal emptied and its lease given back, in
/// one transaction.
pub async fn finish(db: &PgPool, id: &str, holder: &str, e: &Ending<'_>) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    let r = sqlx::query!(
        r#"UPDATE batch_jobs SET status = $3, output_file_id = $4, error_file_id = $5,
             completed = $6, failed = $7, usage = $8,
             completed_at = CASE WHEN $3 = 'completed' THEN now() ELSE completed_at END,
             cancelled_at = CASE WHEN $3 = 'cancelled' THEN now() ELSE cancelled_at END,
             expired_at = CASE WHEN $3 = 'expired' THEN now() ELSE expired_at END,
             lease_owner = NULL, lease_until = NULL
           WHERE id = $1 AND lease_owner = $2"#,
        id,
        holder,
        e.status.as_str(),
        e.output_file_id,
        e.error_file_id,
        e.completed,
        e.failed,
        e.usage
    )
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query!("DELETE FROM batch_lines WHERE batch_id = $1", id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// One finished line of a sequential run.
#[derive(Debug, Clone)]
pub struct LineResult {
    /// Its number in the input, from 1.
    pub line: i32,
    /// Whether it goes to the output file (else the error file).
    pub ok: bool,
    /// The file's line.
    pub result: String,
}

/// Journals finished lines in one statement; lines already journaled keep their first result.
pub async fn record_lines(db: &PgPool, id: &str, lines: &[LineResult]) -> sqlx::Result<()> {
    let numbers: Vec<i32> = lines.iter().map(|l| l.line).collect();
    let oks: Vec<bool> = lines.iter().map(|l| l.ok).collect();
    let results: Vec<String> = lines.iter().map(|l| l.result.clone()).collect();
    sqlx::query!(
        r#"INSERT INTO batch_lines (batch_id, line, ok, result)
           SELECT $1, * FROM UNNEST($2::int[], $3::bool[], $4::text[])
           ON CONFLICT (batch_id, line) DO NOTHING"#,
        id,
        &numbers,
        &oks,
        &results
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The lines journaled so far: their numbers, and how many succeeded and failed.
pub async fn journaled(db: &PgPool, id: &str) -> sqlx::Result<(Vec<i32>, i32, i32)> {
    let rows = sqlx::query!(
        "SELECT line, ok FROM batch_lines WHERE batch_id = $1 ORDER BY line",
        id
    )
    .fetch_all(db)
    .await?;
    let ok = rows.iter().filter(|r| r.ok).count();
    let lines: Vec<i32> = rows.iter().map(|r| r.line).collect();
    let failed = lines.len() - ok;
    Ok((lines, ok as i32, failed as i32))
}

/// The journal in line order, `page` rows after line `after` (read page by page so the output
/// files are written without holding them in memory).
pub async fn journal_page(
    db: &PgPool,
    id: &str,
    after: i32,
    page: i64,
) -> sqlx::Result<Vec<LineResult>> {
    sqlx::query_as!(
        LineResult,
        "SELECT line, ok, result FROM batch_lines WHERE batch_id = $1 AND line > $2
         ORDER BY line LIMIT $3",
        id,
        after,
        page
    )
    .fetch_all(db)
    .await
}

// ---- the sweeper ----

/// Jobs whose window ended long ago with nobody running them (their action was lost): ended
/// `expired` as they are. Answers how many.
pub async fn expire_abandoned(db: &PgPool, grace_secs: i64) -> sqlx::Result<u64> {
    let r = sqlx::query!(
        r#"UPDATE batch_jobs SET status = 'expired', expired_at = now()
           WHERE status IN ('validating', 'in_progress', 'finalizing', 'cancelling')
             AND expires_at + make_interval(secs => $1::bigint) < now()
             AND (lease_owner IS NULL OR lease_until < now())"#,
        grace_secs
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Deletes up to `limit` jobs past their `delete_at` and answers their ids with the files they
/// wrote (the input file has its own expiry).
pub async fn delete_due_jobs(db: &PgPool, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"DELETE FROM batch_jobs WHERE id IN (
             SELECT id FROM batch_jobs WHERE delete_at < now() ORDER BY delete_at
             LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id"#,
        limit
    )
    .fetch_all(db)
    .await
}

/// Up to `limit` files past their expiry, locked in `tx` so two sweepers never take the same.
pub async fn due_files(tx: &mut sqlx::PgConnection, limit: i64) -> sqlx::Result<Vec<BatchFile>> {
    sqlx::query_as!(
        BatchFile,
        r#"SELECT id, tenant_id, user_id, purpose, filename, bytes, storage_key, created_at, expires_at
           FROM batch_files WHERE expires_at < now() ORDER BY expires_at
           LIMIT $1 FOR UPDATE SKIP LOCKED"#,
        limit
    )
    .fetch_all(tx)
    .await
}

/// Removes file records (after their objects were deleted).
pub async fn delete_files(tx: &mut sqlx::PgConnection, ids: &[String]) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM batch_files WHERE id = ANY($1)", ids)
        .execute(tx)
        .await?;
    Ok(())
}
