//! Import jobs for Garmin exports: the uploaded files (a whole export as `.zip`, or single JSON
//! and FIT files) are unpacked into the files the importer reads, then imported one by one, each
//! file in its own transaction, with the job's progress written after every file.

mod unpack;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::error::AppError;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{self, Counts};
use crate::scope::Owner;

pub use unpack::{ImportFile, UnpackError, Unpacked, read, unpack};

/// A file that could not be imported.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct FileError {
    /// The file.
    pub file: String,
    /// Why.
    pub message: String,
}

/// An import job and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Job {
    /// Its id.
    pub id: Uuid,
    /// `queued`, `running`, `completed` (every file was tried; see `errors`) or `failed`
    /// (no file could be imported, or the service stopped first).
    pub status: String,
    /// Files to import.
    pub files_total: i32,
    /// Files finished (imported or failed).
    pub files_done: i32,
    /// Files of the upload the importer does not read (other parts of the export).
    pub files_skipped: i32,
    /// Per dataset (`daily_summaries`, `sleep`, `activities`, `hrv`, `body_composition`): rows
    /// inserted, updated, unchanged, and entries skipped.
    #[schema(value_type = Object)]
    pub records: serde_json::Value,
    /// Files that could not be imported.
    #[schema(value_type = Vec<FileError>)]
    pub errors: serde_json::Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last progress.
    pub updated_at: DateTime<Utc>,
    /// Finished, if it has.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Creates a queued job for `files_total` files.
pub async fn create(
    pool: &PgPool,
    o: Owner,
    files_total: usize,
    files_skipped: usize,
) -> sqlx::Result<Job> {
    sqlx::query_as!(
        Job,
        r#"INSERT INTO health_import_jobs (id, tenant_id, user_id, kind, status, files_total,
             files_skipped)
           VALUES ($1, $2, $3, 'garmin', 'queued', $4, $5)
           RETURNING id, status, files_total, files_done, files_skipped, records, errors,
                     created_at, updated_at, finished_at"#,
        Uuid::now_v7(),
        o.tenant_id,
        o.user_id,
        i32::try_from(files_total).unwrap_or(i32::MAX),
        i32::try_from(files_skipped).unwrap_or(i32::MAX),
    )
    .fetch_one(pool)
    .await
}

/// One of the owner's jobs.
pub async fn get(pool: &PgPool, o: Owner, id: Uuid) -> sqlx::Result<Option<Job>> {
    sqlx::query_as!(
        Job,
        r#"SELECT id, status, files_total, files_done, files_skipped, records, errors,
                  created_at, updated_at, finished_at
           FROM health_import_jobs
           WHERE tenant_id = $1 AND user_id = $2 AND id = $3"#,
        o.tenant_id,
        o.user_id,
        id,
    )
    .fetch_optional(pool)
    .await
}

/// The owner's latest jobs, newest first.
pub async fn list(pool: &PgPool, o: Owner, limit: i64) -> sqlx::Result<Vec<Job>> {
    sqlx::query_as!(
        Job,
        r#"SELECT id, status, files_total, files_done, files_skipped, records, errors,
                  created_at, updated_at, finished_at
           FROM health_import_jobs
           WHERE tenant_id = $1 AND user_id = $2
           ORDER BY created_at DESC
           LIMIT $3"#,
        o.tenant_id,
        o.user_id,
        limit,
    )
    .fetch_all(pool)
    .await
}

/// Jobs left `queued` or `running` by a process that stopped (no progress for 10 minutes) are
/// marked failed at start-up, so nobody waits for them forever.
pub async fn fail_stale_jobs(pool: &PgPool) {
    let done = sqlx::query!(
        r#"UPDATE health_import_jobs
           SET status = 'failed', finished_at = now(), updated_at = now(),
               errors = errors || '[{"file": "", "message": "interrupted: the service stopped"}]'::jsonb
           WHERE status IN ('queued', 'running') AND updated_at < now() - interval '10 minutes'"#
    )
    .execute(pool)
    .await;
    if let Err(e) = done {
        tracing::warn!(error = %e, "stale import jobs not checked");
    }
}

/// Unpacks an upload, creates its job and imports it in the background (on `tracker`, stopping
/// between files when `stop` fires); returns the queued job at once.
pub async fn start(
    pool: &PgPool,
    tracker: &TaskTracker,
    stop: CancellationToken,
    o: Owner,
    uploads: Vec<(String, Vec<u8>)>,
    max_bytes: usize,
) -> Result<Job, AppError> {
    let unpacked = tokio::task::spawn_blocking(move || unpack(uploads, max_bytes))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    if unpacked.files.is_empty() {
        return Err(AppError::BadRequest(
            "no Garmin export files in the upload (expected a Garmin Connect export .zip, \
             UDSFile_*.json, *_sleepData.json, *_summarizedActivities.json, \
             *_healthStatusData.json, *_userBioMetrics.json or .fit files)"
                .into(),
        ));
    }
    let job = create(pool, o, unpacked.files.len(), unpacked.skipped).await?;
    let (pool, id) = (pool.clone(), job.id);
    tracker.spawn(async move {
        let ran = run(&pool, o, id, unpacked.files, &stop, &|_, _| {}).await;
        if let Err(e) = ran {
            tracing::error!(error = %e, job_id = %id, "import job failed");
            let _ = sqlx::query!(
                r#"UPDATE health_import_jobs SET status = 'failed', finished_at = now(),
                     updated_at = now(),
                     errors = errors || '[{"file": "", "message": "the database failed during the import"}]'::jsonb
                   WHERE id = $1"#,
                id
            )
            .execute(&pool)
            .await;
        }
    });
    Ok(job)
}

/// What happened to each file, for the CLI's progress lines.
pub type Progress<'a> = &'a (dyn Fn(&str, Result<&Counts, &str>) + Send + Sync);

/// Imports the files one by one, writing the job's progress after each. Stops between files
/// when `stop` fires (the job then fails, naming the files not imported).
pub async fn run(
    pool: &PgPool,
    o: Owner,
    job_id: Uuid,
    files: Vec<ImportFile>,
    stop: &CancellationToken,
    progress: Progress<'_>,
) -> sqlx::Result<Job> {
    sqlx::query!(
        "UPDATE health_import_jobs SET status = 'running', updated_at = now() WHERE id = $1",
        job_id
    )
    .execute(pool)
    .await?;
    let mut records: BTreeMap<&'static str, Counts> = BTreeMap::new();
    let mut errors: Vec<FileError> = Vec::new();
    let total = files.len();
    let mut imported = 0usize;
    for (done, file) in files.into_iter().enumerate() {
        if stop.is_cancelled() {
            errors.push(FileError {
                file: String::new(),
                message: format!(
                    "interrupted: the service stopped before {} file(s) were imported",
                    total - done
                ),
            });
            break;
        }
        let name = file.name.clone();
        let outcome = import_file(pool, o, file).await;
        match outcome {
            Ok((dataset, counts)) => {
                imported += 1;
                progress(&name, Ok(&counts));
                records.entry(dataset).or_default().merge(counts);
            }
            Err(message) => {
                progress(&name, Err(&message));
                errors.push(FileError {
                    file: name,
                    message,
                });
            }
        }
        sqlx::query!(
            r#"UPDATE health_import_jobs SET files_done = $2, records = $3, errors = $4,
                 updated_at = now()
               WHERE id = $1"#,
            job_id,
            i32::try_from(done + 1).unwrap_or(i32::MAX),
            json!(records),
            json!(errors),
        )
        .execute(pool)
        .await?;
    }
    let interrupted = errors.iter().any(|e| e.file.is_empty());
    let status = if interrupted || (total > 0 && imported == 0) {
        "failed"
    } else {
        "completed"
    };
    sqlx::query_as!(
        Job,
        r#"UPDATE health_import_jobs SET status = $2, errors = $3, finished_at = now(),
             updated_at = now()
           WHERE id = $1
           RETURNING id, status, files_total, files_done, files_skipped, records, errors,
                     created_at, updated_at, finished_at"#,
        job_id,
        status,
        json!(errors),
    )
    .fetch_one(pool)
    .await
}

/// Parses (off the async threads) and writes one file in one transaction.
async fn import_file(
    pool: &PgPool,
    o: Owner,
    file: ImportFile,
) -> Result<(&'static str, Counts), String> {
    let parsed = tokio::task::spawn_blocking(move || read(&file))
        .await
        .map_err(|e| format!("the parser failed: {e}"))?
        .map_err(|e| e.to_string())?;
    // Wellness rows name their source; activities carry their own (`garmin_connect`, `fit`).
    let source = "garmin_connect";
    let write = async {
        let mut tx = pool.begin().await?;
        let counts = store::write(&mut tx, o, source, &parsed.records).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(counts)
    };
    let mut counts = write.await.map_err(|e| {
        tracing::warn!(error = %e, "import file not written");
        "the database could not store this file; import it again".to_owned()
    })?;
    counts.skipped += u32::try_from(parsed.skipped).unwrap_or(u32::MAX);
    Ok((parsed.records.dataset(), counts))
}
