//! Batch jobs as the gateway runs them, for both of its batch APIs (OpenAI's `/v1/files` +
//! `/v1/batches` and the service's own `/api/v1/batch…`): input files stored from a spool and
//! recorded, jobs recorded and handed to the batch-worker (`batch.job.run`), cancels, and the
//! rules both APIs share. The rows are `common::batch`'s; no HTTP types here (see `docs/batch.md`).

pub mod request;
pub mod results;
pub mod spool;

use chrono::Utc;
use common::auth::Claims;
use common::batch::store::{self, CancelAsked, NewFile, NewJob};
use common::batch::{BatchFile, CHAT_ENDPOINT, COMPLETION_WINDOW, FOLDER, Job, Owner};
use common::error::AppError;
use common::payloads::Payload;
use common::payloads::batch::{RUN, RunPayload};
use common::storage::content_type_of;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::hub::StreamId;
use crate::session::traced_action;
use crate::state::AppState;
use crate::task::TaskFeed;

pub use spool::Spool;

/// The purpose of an uploaded input file.
pub const INPUT_PURPOSE: &str = "batch";
/// The extension (and type) of every batch file.
const EXT: &str = "jsonl";
/// Pairs a job's `metadata` may hold (OpenAI's limit).
pub const MAX_METADATA_PAIRS: usize = 16;
/// Characters of a metadata key.
pub const MAX_METADATA_KEY_CHARS: usize = 64;
/// Characters of a metadata value.
pub const MAX_METADATA_VALUE_CHARS: usize = 512;
/// Characters of an uploaded file's name.
pub const MAX_FILENAME_CHARS: usize = 255;
/// The longest id looked up; longer ones are no id of ours.
const MAX_ID_CHARS: usize = 64;

/// Who may see what a caller creates: the caller's tenant and, within it, the caller.
pub fn owner(claims: &Claims) -> Owner {
    Owner {
        tenant_id: claims.tenant_id,
        user_id: Some(claims.sub),
    }
}

/// Whether `id` can be one of our ids (`file-…`, `batch_…`): anything else is not looked up.
fn plausible(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The 404 of a file the caller does not have (OpenAI's sentence).
pub fn no_such_file(id: &str) -> AppError {
    AppError::NotFound(format!("No such File object: {id}"))
}

/// The 404 of a batch the caller does not have.
pub fn no_such_batch(id: &str) -> AppError {
    AppError::NotFound(format!("No such Batch object: {id}"))
}

/// The caller's file `id`; another tenant's or user's is not found.
pub async fn file(state: &AppState, claims: &Claims, id: &str) -> Result<BatchFile, AppError> {
    if !plausible(id) {
        return Err(no_such_file(id));
    }
    store::file(state.db(), owner(claims), id)
        .await?
        .ok_or_else(|| no_such_file(id))
}

/// The caller's job `id`; another tenant's or user's is not found.
pub async fn job(state: &AppState, claims: &Claims, id: &str) -> Result<Job, AppError> {
    if !plausible(id) {
        return Err(no_such_batch(id));
    }
    store::job(state.db(), owner(claims), id)
        .await?
        .ok_or_else(|| no_such_batch(id))
}

/// A page of the caller's items, newest first.
#[derive(Debug)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Whether older items follow (ask again with `after` = the last item's id).
    pub has_more: bool,
}

/// The caller's files after `after`, `limit` at most, of one purpose when given.
pub async fn list_files(
    state: &AppState,
    claims: &Claims,
    after: Option<&str>,
    purpose: Option<&str>,
    limit: i64,
) -> Result<Page<BatchFile>, AppError> {
    let mut items = store::files(state.db(), owner(claims), after, purpose, limit + 1).await?;
    let has_more = common::http::truncate_page(&mut items, limit);
    Ok(Page { items, has_more })
}

/// The caller's jobs after `after`, `limit` at most.
pub async fn list_jobs(
    state: &AppState,
    claims: &Claims,
    after: Option<&str>,
    limit: i64,
) -> Result<Page<Job>, AppError> {
    let mut items = store::jobs(state.db(), owner(claims), after, limit + 1).await?;
    let has_more = common::http::truncate_page(&mut items, limit);
    Ok(Page { items, has_more })
}

/// Stores a spooled input file of the caller as `{tenant}/batches/{file_id}.jsonl` and records
/// it (purpose `batch`, kept `BATCH__RETENTION_DAYS`). The object is removed again when the
/// record cannot be written, so no object is left that no row names.
pub async fn store_input(
    state: &AppState,
    claims: &Claims,
    spool: &Spool,
    filename: &str,
    expires_in: Option<chrono::Duration>,
) -> Result<BatchFile, AppError> {
    let owner = owner(claims);
    let id = common::batch::new_file_id();
    let stored = state
        .storage()
        .put_file_named(
            owner.tenant_id,
            FOLDER,
            &format!("{id}.{EXT}"),
            &content_type_of(Some(EXT)),
            spool.path(),
        )
        .await?;
    let expires_at = Utc::now() + expires_in.unwrap_or_else(|| state.settings().batch.retention());
    let recorded = store::insert_file(
        state.db(),
        &NewFile {
            id: &id,
            owner,
            purpose: INPUT_PURPOSE,
            filename,
            bytes: i64::try_from(stored.size).unwrap_or(i64::MAX),
            storage_key: &stored.key,
            expires_at,
        },
    )
    .await;
    match recorded {
        Ok(file) => Ok(file),
        Err(e) => {
            if let Err(removed) = state.storage().delete(owner.tenant_id, &stored.key).await {
                tracing::warn!(key = %stored.key, error = %removed, "unrecorded batch file not removed");
            }
            Err(e.into())
        }
    }
}

/// Deletes the caller's file: its object in storage, then its row (so a failure leaves a row
/// that a retry deletes, never an object no row names).
pub async fn delete_file(state: &AppState, claims: &Claims, id: &str) -> Result<(), AppError> {
    let file = file(state, claims, id).await?;
    state
        .storage()
        .delete(file.tenant_id, &file.storage_key)
        .await?;
    store::delete_file(state.db(), owner(claims), id).await?;
    Ok(())
}

/// Checks a job's `metadata`: at most 16 pairs, keys up to 64 characters, string values up to
/// 512 (OpenAI's rules). `Err` says what is wrong.
pub fn check_metadata(metadata: &Map<String, Value>) -> Result<(), String> {
    if metadata.len() > MAX_METADATA_PAIRS {
        return Err(format!(
            "metadata holds {} pairs; at most {MAX_METADATA_PAIRS} are allowed",
            metadata.len()
        ));
    }
    for (key, value) in metadata {
        common::text::check("a metadata key", key, MAX_METADATA_KEY_CHARS)?;
        let Value::String(value) = value else {
            return Err(format!("metadata[{key:?}] must be a string"));
        };
        common::text::check(
            &format!("metadata[{key:?}]"),
            value,
            MAX_METADATA_VALUE_CHARS,
        )?;
    }
    Ok(())
}

/// Records a job of the caller over its input file `input` (already checked: the caller's,
/// purpose `batch`) and hands it to the batch-worker: a new session owned by the caller carries
/// its events, a new task names them (and is what a cancel stops). Status `validating`; its
/// window ends in 24 h, it is deleted after `BATCH__RETENTION_DAYS`.
pub async fn start(
    state: &AppState,
    claims: &Claims,
    input: &BatchFile,
    metadata: Option<Map<String, Value>>,
) -> Result<Job, AppError> {
    let session_id = state.claim_session(claims, None).await?;
    let id = common::batch::new_batch_id();
    let payload = RunPayload {
        batch_id: id.clone(),
    };
    payload
        .validate()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("batch payload: {}", e.0)))?;
    let data = serde_json::to_value(&payload)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("batch payload: {e}")))?;
    let (action, span) = traced_action(RUN, claims, session_id, data);
    let now = Utc::now();
    // The row first: the worker reads the job the action names.
    let job = store::insert_job(
        state.db(),
        &NewJob {
            id: &id,
            owner: owner(claims),
            session_id,
            task_id: action.task_id,
            endpoint: CHAT_ENDPOINT,
            input_file_id: &input.id,
            completion_window: COMPLETION_WINDOW,
            metadata: metadata.map(Value::Object),
            expires_at: now + chrono::Duration::hours(24),
            delete_at: now + state.settings().batch.retention(),
        },
    )
    .await?;
    // The job's session is in its row (its events are found through the job), so no
    // task → session record is written, unlike a video's (`crate::jobs::publish`). Should the
    // publish fail, the job is removed again: no worker would ever take it.
    if let Err(e) = state.bus().publish(&action).await {
        if let Err(d) = store::delete_unstarted_job(state.db(), owner(claims), &id).await {
            tracing::warn!(batch_id = %id, error = %d, "unpublished job not removed; the sweeper expires it");
        }
        return Err(e.into());
    }
    span.in_scope(|| tracing::info!(batch_id = %id, "batch job published"));
    Ok(job)
}

/// Asks the caller's job to stop: `cancelling` in the database (what the worker reads when it
/// starts the job) and the cancel flag of its task (what stops a running one). 409 when it has
/// already ended.
pub async fn cancel(state: &AppState, claims: &Claims, id: &str) -> Result<Job, AppError> {
    if !plausible(id) {
        return Err(no_such_batch(id));
    }
    match store::ask_cancel(state.db(), owner(claims), id).await? {
        CancelAsked::Cancelling(job) => {
            state.cancel_task(job.task_id).await?;
            Ok(job)
        }
        CancelAsked::AlreadyEnded(job) => Err(AppError::Conflict(format!(
            "Cannot cancel a batch with status '{}'.",
            job.status
        ))),
        CancelAsked::NotFound => Err(no_such_batch(id)),
    }
}

/// The caller's job's events after `after` (`StreamId::ZERO`: from its start), ending after its
/// `complete`. 409 for an ended job whose events have expired (`BUS__RESPONSE_TTL_SECS` after
/// its end): its state is in the job itself.
pub async fn events(
    state: &AppState,
    claims: &Claims,
    id: &str,
    after: StreamId,
) -> Result<TaskFeed, AppError> {
    let job = job(state, claims, id).await?;
    if job.state().is_terminal() {
        let stream = state.bus().names().response_stream(job.session_id);
        let mut conn = state.bus().conn();
        let kept: bool = redis::AsyncCommands::exists(&mut conn, &stream).await?;
        if !kept {
            return Err(AppError::Conflict(format!(
                "the batch has ended ({}) and its events have expired; read the batch itself",
                job.status
            )));
        }
    }
    Ok(crate::jobs::follow(
        state,
        job.session_id,
        job.task_id,
        after,
    ))
}

/// What the service's own API answers about a job it accepted (`POST /api/v1/batch`, a
/// cancel): the job and where to follow it.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// The job (`Job::to_api`).
    pub batch: Value,
    /// Its task: the id its events carry.
    pub task_id: Uuid,
    /// The session whose response stream carries them (`resume` it on the WebSocket).
    pub session_id: Uuid,
    /// `GET /api/v1/batch/{id}`.
    pub status_url: String,
    /// `GET /api/v1/batch/{id}/events` (Server-Sent Events).
    pub events_url: String,
    /// `GET /api/v1/batch/{id}/results`, once it has ended.
    pub results_url: String,
    /// The chat WebSocket.
    pub websocket_url: String,
}

impl Accepted {
    /// The answer for `job`, links under `base` (`http://host`).
    pub fn new(job: &Job, base: &str) -> Self {
        let at = format!("{base}/api/v1/batch/{}", job.id);
        Self {
            batch: job.to_api(),
            task_id: job.task_id,
            session_id: job.session_id,
            events_url: format!("{at}/events"),
            results_url: format!("{at}/results"),
            status_url: at,
            websocket_url: format!("{}/chat/ws", crate::links::websocket_base(base)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata(v: Value) -> Result<(), String> {
        match v {
            Value::Object(m) => check_metadata(&m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn metadata_follows_openais_rules() {
        assert_eq!(metadata(json!({"a": "b"})), Ok(()));
        let many: Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(check_metadata(&many).unwrap_err().contains("17 pairs"));
        let long_key = "k".repeat(65);
        assert!(
            metadata(json!({long_key: "v"}))
                .unwrap_err()
                .contains("64 characters")
        );
        assert!(
            metadata(json!({"k": "v".repeat(513)}))
                .unwrap_err()
                .contains("512 characters")
        );
        assert!(
            metadata(json!({"k": 1}))
                .unwrap_err()
                .contains("must be a string")
        );
    }

    #[test]
    fn only_plausible_ids_are_looked_up() {
        assert!(plausible("file-0193abc"));
        assert!(plausible("batch_0193abc"));
        for bad in ["", "a/b", "x'--", &"a".repeat(65)] {
            assert!(!plausible(bad), "{bad}");
        }
    }
}
