//! `/api/v1/health/garmin/...`: status, dataset fetchers, one activity, the analyses, and import
//! jobs. Handlers unpack the request and call `crate::garmin`.

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::PathRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use common::error::{ApiEnvelope, AppError, ok};
use common::http::path_id;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::not_found;
use crate::extract::{AuthUser, Params};
use crate::garmin::{analysis, import, query as data};
use crate::page::{self, PageParams, RangeParams};
use crate::state::AppState;

/// Range and page of a dataset fetcher.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DatasetQuery {
    /// First day, `YYYY-MM-DD` (inclusive).
    from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD` (inclusive).
    to: Option<NaiveDate>,
    /// Items per page (1..=500, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl DatasetQuery {
    fn range(&self) -> Result<RangeParams, AppError> {
        RangeParams {
            from: self.from,
            to: self.to,
        }
        .checked()
    }
    fn page(&self) -> PageParams {
        PageParams {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }
}

/// The activity list's parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// First day, `YYYY-MM-DD` (inclusive).
    from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD` (inclusive).
    to: Option<NaiveDate>,
    /// Only this activity type, e.g. `running`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    /// Items per page (1..=500, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The period of an analysis (both days required, at most 366 days).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// First day, `YYYY-MM-DD`.
    from: NaiveDate,
    /// Last day, `YYYY-MM-DD`.
    to: NaiveDate,
}

/// The longest analysis period, days.
const MAX_PERIOD_DAYS: i64 = 366;

impl PeriodQuery {
    fn checked(&self) -> Result<(NaiveDate, NaiveDate), AppError> {
        let days = (self.to - self.from).num_days();
        if days < 0 {
            return Err(AppError::BadRequest("from must not be after to".into()));
        }
        if days >= MAX_PERIOD_DAYS {
            return Err(AppError::BadRequest(format!(
                "the period is at most {MAX_PERIOD_DAYS} days"
            )));
        }
        Ok((self.from, self.to))
    }
}

/// `GET /api/v1/health/garmin/status`: what data exists, with date ranges.
#[utoipa::path(get, path = "/api/v1/health/garmin/status", tag = "garmin",
    security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<data::Status>))))]
pub async fn status(State(state): State<AppState>, user: AuthUser) -> Result<Response, AppError> {
    let s = data::status(state.db(), user.owner()).await?;
    Ok(ok(s).into_response())
}

/// `GET /api/v1/health/garmin/daily-summaries`: daily summaries, oldest first.
#[utoipa::path(get, path = "/api/v1/health/garmin/daily-summaries", tag = "garmin",
    params(DatasetQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<page::Page<crate::garmin::DailySummary>>))))]
pub async fn daily(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<DatasetQuery>,
) -> Result<Response, AppError> {
    let p = q.page();
    let page = data::daily(
        state.db(),
        user.owner(),
        q.range()?,
        p.date_cursor()?,
        p.limit()?,
    )
    .await?;
    Ok(ok(page).into_response())
}

/// `GET /api/v1/health/garmin/sleep`: nights, oldest first.
#[utoipa::path(get, path = "/api/v1/health/garmin/sleep", tag = "garmin",
    params(DatasetQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<page::Page<crate::garmin::Sleep>>))))]
pub async fn sleep(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<DatasetQuery>,
) -> Result<Response, AppError> {
    let p = q.page();
    let page = data::sleep(
        state.db(),
        user.owner(),
        q.range()?,
        p.date_cursor()?,
        p.limit()?,
    )
    .await?;
    Ok(ok(page).into_response())
}

/// `GET /api/v1/health/garmin/hrv`: HRV nights, oldest first.
#[utoipa::path(get, path = "/api/v1/health/garmin/hrv", tag = "garmin",
    params(DatasetQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<page::Page<crate::garmin::Hrv>>))))]
pub async fn hrv(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<DatasetQuery>,
) -> Result<Response, AppError> {
    let p = q.page();
    let page = data::hrv(
        state.db(),
        user.owner(),
        q.range()?,
        p.date_cursor()?,
        p.limit()?,
    )
    .await?;
    Ok(ok(page).into_response())
}

/// `GET /api/v1/health/garmin/body-composition`: weigh-ins, oldest first.
#[utoipa::path(get, path = "/api/v1/health/garmin/body-composition", tag = "garmin",
    params(DatasetQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<page::Page<crate::garmin::BodyComposition>>))))]
pub async fn body(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<DatasetQuery>,
) -> Result<Response, AppError> {
    let p = q.page();
    let page = data::body(
        state.db(),
        user.owner(),
        q.range()?,
        p.time_cursor()?,
        p.limit()?,
    )
    .await?;
    Ok(ok(page).into_response())
}

/// `GET /api/v1/health/garmin/activities`: workouts, oldest first.
#[utoipa::path(get, path = "/api/v1/health/garmin/activities", tag = "garmin",
    params(ActivityQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<page::Page<crate::garmin::Activity>>))))]
pub async fn activities(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<ActivityQuery>,
) -> Result<Response, AppError> {
    let range = RangeParams {
        from: q.from,
        to: q.to,
    }
    .checked()?;
    let p = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let after = p
        .keyed_cursor()?
        .map(|(at, id)| page::parse_instant(&at).map(|at| (at, id)))
        .transpose()?;
    let page = data::activities(
        state.db(),
        user.owner(),
        range,
        q.kind.as_deref(),
        after,
        p.limit()?,
    )
    .await?;
    Ok(ok(page).into_response())
}

/// `GET /api/v1/health/garmin/activities/{id}`: one workout.
#[utoipa::path(get, path = "/api/v1/health/garmin/activities/{id}", tag = "garmin",
    params(("id" = Uuid, Path, description = "activity id")), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<crate::garmin::Activity>)),
              (status = 404, description = "no such activity of the caller")))]
pub async fn activity(
    State(state): State<AppState>,
    user: AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, AppError> {
    let id = path_id(path, "activity")?;
    let a = data::activity(state.db(), user.owner(), id)
        .await?
        .ok_or_else(|| not_found("activity"))?;
    Ok(ok(a).into_response())
}

/// `GET /api/v1/health/garmin/analysis/sleep-vs-load`: per day, sleep against training load.
#[utoipa::path(get, path = "/api/v1/health/garmin/analysis/sleep-vs-load", tag = "garmin",
    params(PeriodQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<analysis::SleepVsLoad>))))]
pub async fn sleep_vs_load(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<PeriodQuery>,
) -> Result<Response, AppError> {
    let (from, to) = q.checked()?;
    let a = analysis::sleep_vs_load(state.db(), user.owner(), from, to).await?;
    Ok(ok(a).into_response())
}

/// `GET /api/v1/health/garmin/analysis/weekly`: weekly averages and totals.
#[utoipa::path(get, path = "/api/v1/health/garmin/analysis/weekly", tag = "garmin",
    params(PeriodQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<Vec<analysis::Week>>))))]
pub async fn weekly(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<PeriodQuery>,
) -> Result<Response, AppError> {
    let (from, to) = q.checked()?;
    let weeks = analysis::weekly(state.db(), user.owner(), from, to).await?;
    Ok(ok(weeks).into_response())
}

/// `POST /api/v1/health/garmin/imports` (`multipart/form-data`, any number of file parts: a
/// Garmin Connect export `.zip`, or its JSON files, or `.fit` files): starts an import job.
#[utoipa::path(post, path = "/api/v1/health/garmin/imports", tag = "garmin",
    request_body(content_type = "multipart/form-data", description = "file parts: .zip, .json, .fit"),
    security(("bearer" = [])),
    responses((status = 202, body = inline(crate::openapi::Envelope<import::Job>)),
              (status = 400, description = "no importable file, or a broken archive")))]
pub async fn import(
    State(state): State<AppState>,
    user: AuthUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let mut multipart = multipart.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let bad = |e: axum::extract::multipart::MultipartError| AppError::BadRequest(e.body_text());
    let mut uploads = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field
            .file_name()
            .or(field.name())
            .unwrap_or("upload")
            .to_owned();
        let bytes = field.bytes().await.map_err(bad)?;
        uploads.push((name, bytes.to_vec()));
    }
    let job = import::start(
        state.db(),
        state.tracker(),
        state.shutdown().clone(),
        user.owner(),
        uploads,
        state.settings().max_import_bytes,
    )
    .await?;
    let status = StatusCode::ACCEPTED;
    let body = ApiEnvelope {
        code: status.as_u16(),
        success: true,
        message: "import started".into(),
        data: job,
    };
    Ok((status, Json(body)).into_response())
}

/// `GET /api/v1/health/garmin/imports`: the caller's latest 50 import jobs, newest first.
#[utoipa::path(get, path = "/api/v1/health/garmin/imports", tag = "garmin",
    security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<Vec<import::Job>>))))]
pub async fn imports(State(state): State<AppState>, user: AuthUser) -> Result<Response, AppError> {
    let jobs = import::list(state.db(), user.owner(), page::DEFAULT_LIMIT).await?;
    Ok(ok(jobs).into_response())
}

/// `GET /api/v1/health/garmin/imports/{id}`: a job's progress.
#[utoipa::path(get, path = "/api/v1/health/garmin/imports/{id}", tag = "garmin",
    params(("id" = Uuid, Path, description = "job id")), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<import::Job>)),
              (status = 404, description = "no such job of the caller")))]
pub async fn import_job(
    State(state): State<AppState>,
    user: AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, AppError> {
    let id = path_id(path, "import")?;
    let job = import::get(state.db(), user.owner(), id)
        .await?
        .ok_or_else(|| not_found("import"))?;
    Ok(ok(job).into_response())
}
