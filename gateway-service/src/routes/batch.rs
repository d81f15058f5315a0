//! `/api/v1/batch…`: the service's own batch API (the REST envelope): submit a model and its
//! requests, follow the job (state, Server-Sent Events), cancel it, read its results. The jobs are
//! the ones `/v1/batches` runs too. Handlers unpack the request and call `crate::batch`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::error::{ApiEnvelope, AppError, ok};
use common::http::{PageRule, Params};
use serde::Deserialize;
use serde_json::json;

use crate::batch::request::{self, BatchRequest};
use crate::batch::{self, Accepted, Spool};
use crate::extract::AuthUser;
use crate::links::base_url;
use crate::state::AppState;

/// `GET /api/v1/batch`'s page sizes.
const JOBS_PAGE: PageRule = PageRule::new(20, 100);
/// `GET /api/v1/batch/{id}/results`' page sizes.
const RESULTS_PAGE: PageRule = PageRule::new(100, 1000);
/// The name the input file written for `POST /api/v1/batch` is recorded with.
const INPUT_FILENAME: &str = "requests.jsonl";

/// `GET /api/v1/batch` parameters.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    after: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/batch/{id}/results` parameters.
#[derive(Debug, Deserialize)]
pub struct ResultsParams {
    offset: Option<u64>,
    limit: Option<i64>,
}

fn batch_id(path: Result<Path<String>, PathRejection>) -> Result<String, AppError> {
    path.map(|Path(id)| id)
        .map_err(|_| AppError::NotFound("No such Batch object.".into()))
}

/// 202 with the job and where to follow it.
fn accepted(message: &str, data: Accepted) -> Response {
    let status = StatusCode::ACCEPTED;
    let body = ApiEnvelope {
        code: status.as_u16(),
        success: true,
        message: message.into(),
        data,
    };
    (status, Json(body)).into_response()
}

/// `POST /api/v1/batch` `{model, requests: [{custom_id?, prompt | messages, system_prompt?,
/// max_tokens?, temperature?}], metadata?}`: checked at once, written as a batch input file and
/// run as a batch job; 202 with `{batch, task_id, session_id, status_url, events_url,
/// results_url, websocket_url}`.
pub async fn create(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge(format!(
                "the body is larger than {} bytes (BATCH__MAX_BODY_BYTES); upload larger batches \
                 as a file (POST /v1/files, POST /v1/batches)",
                state.settings().batch.max_body_bytes
            ))
        } else {
            AppError::BadRequest(e.body_text())
        }
    })?;
    let request = BatchRequest::parse(&body)?;
    drop(body);
    request.check(state.models())?;
    let settings = &state.settings().batch;
    let mut spool = Spool::create(&settings.spool(), settings.file_limit()).await?;
    request::write_lines(&request, state.models(), &mut spool).await?;
    let input = batch::store_input(&state, &claims, &spool, INPUT_FILENAME, None).await?;
    drop(spool);
    let job = batch::start(&state, &claims, &input, request.metadata).await?;
    let base = base_url(&state, &headers);
    Ok(accepted("batch accepted", Accepted::new(&job, &base)))
}

/// `GET /api/v1/batch?after=&limit=`: the caller's jobs, newest first; `next_after` is the
/// `after` of the next page (null on the last).
pub async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Params(p): Params<ListParams>,
) -> Result<Response, AppError> {
    let limit = JOBS_PAGE.limit(p.limit)?;
    let page = batch::list_jobs(&state, &claims, p.after.as_deref(), limit).await?;
    let next_after = page
        .has_more
        .then(|| page.items.last().map(|j| j.id.clone()))
        .flatten();
    let batches: Vec<_> = page.items.iter().map(|j| j.to_api()).collect();
    Ok(
        ok(json!({"batches": batches, "has_more": page.has_more, "next_after": next_after}))
            .into_response(),
    )
}

/// `GET /api/v1/batch/{id}`: the job.
pub async fn read(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, AppError> {
    let id = batch_id(path)?;
    let job = batch::job(&state, &claims, &id).await?;
    Ok(ok(job.to_api()).into_response())
}

/// `POST /api/v1/batch/{id}/cancel`: 202 as `POST /api/v1/batch`, the job `cancelling`; 409 when
/// it has ended.
pub async fn cancel(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, AppError> {
    let id = batch_id(path)?;
    let job = batch::cancel(&state, &claims, &id).await?;
    let base = base_url(&state, &headers);
    Ok(accepted("cancel requested", Accepted::new(&job, &base)))
}

/// `GET /api/v1/batch/{id}/events` (`Last-Event-ID` to resume): the job's events from its start
/// as Server-Sent Events (`progress`, then `text_completed` with `data.batch`, `complete`).
pub async fn events(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = batch_id(path)?;
    let after = super::sse::last_event_id(&headers)?.unwrap_or(crate::hub::StreamId::ZERO);
    let feed = batch::events(&state, &claims, &id, after).await?;
    Ok(super::sse::response(feed))
}

/// `GET /api/v1/batch/{id}/results?offset=&limit=`: `{results, total, has_more}` of an ended
/// job; 409 while it runs.
pub async fn results(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    path: Result<Path<String>, PathRejection>,
    Params(p): Params<ResultsParams>,
) -> Result<Response, AppError> {
    let id = batch_id(path)?;
    let limit = RESULTS_PAGE.limit(p.limit)?;
    let job = batch::job(&state, &claims, &id).await?;
    if !job.state().is_terminal() {
        return Err(AppError::Conflict(format!(
            "the batch has not ended (status {}); its results are ready once it is completed, \
             expired or cancelled",
            job.status
        )));
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let page = batch::results::page(
        &state,
        batch::owner(&claims),
        &job,
        p.offset.unwrap_or(0),
        limit,
    )
    .await?;
    Ok(ok(page).into_response())
}
