//! `/api/v1/health/blood/...`: the CSV import, panels, markers with filters, marker names, and a
//! marker's trend. Handlers unpack the request and call `crate::blood`.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use common::error::{AppError, ok};
use common::http::path_id;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::blood::{csv, store};
use crate::error::{not_found, rejected};
use crate::extract::{AuthUser, Params};
use crate::page::{Page, PageParams, RangeParams};
use crate::state::AppState;

/// The panel list's parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PanelQuery {
    /// First day, `YYYY-MM-DD` (inclusive).
    from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD` (inclusive).
    to: Option<NaiveDate>,
    /// Only this lab (case-insensitive).
    lab: Option<String>,
    /// Items per page (1..=500, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The marker list's parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MarkerQuery {
    /// First day, `YYYY-MM-DD` (inclusive).
    from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD` (inclusive).
    to: Option<NaiveDate>,
    /// Only this marker (case-insensitive), e.g. `LDL cholesterol`.
    marker: Option<String>,
    /// Only this category (case-insensitive), e.g. `lipids`.
    category: Option<String>,
    /// Only values outside their reference range.
    #[serde(default)]
    out_of_range: bool,
    /// Only `low`, `high` or `normal` values.
    flag: Option<String>,
    /// Items per page (1..=500, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The trend's parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendQuery {
    /// The marker (case-insensitive).
    marker: String,
    /// First day, `YYYY-MM-DD` (inclusive).
    from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD` (inclusive).
    to: Option<NaiveDate>,
}

/// A `(date, id)` cursor.
fn date_id(p: &PageParams) -> Result<Option<(NaiveDate, Uuid)>, AppError> {
    p.keyed_cursor()?
        .map(|(day, id)| {
            day.parse()
                .map(|d| (d, id))
                .map_err(|_| AppError::BadRequest("cursor is not a valid cursor".into()))
        })
        .transpose()
}

/// `POST /api/v1/health/blood/imports` (body: the CSV file): imports blood tests, all or nothing.
#[utoipa::path(post, path = "/api/v1/health/blood/imports", tag = "blood",
    request_body(content_type = "text/csv", description = "the CSV file (docs/health.md)"),
    security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<crate::blood::BloodImport>)),
              (status = 422, body = inline(crate::openapi::Envelope<crate::error::Rejected>),
               description = "bad rows, each with its line; nothing was written")))]
pub async fn import(
    State(state): State<AppState>,
    user: AuthUser,
    body: Bytes,
) -> Result<Response, AppError> {
    let rows = csv::parse(&body).map_err(rejected)?;
    let report = store::import(state.db(), user.owner(), &rows).await?;
    Ok(ok(report).into_response())
}

/// `GET /api/v1/health/blood/panels`: panels, oldest first.
#[utoipa::path(get, path = "/api/v1/health/blood/panels", tag = "blood",
    params(PanelQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<Page<crate::blood::Panel>>))))]
pub async fn panels(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<PanelQuery>,
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
    let page = store::panels(
        state.db(),
        user.owner(),
        range,
        q.lab.as_deref(),
        date_id(&p)?,
        p.limit()?,
    )
    .await?;
    Ok(ok(page).into_response())
}

/// `GET /api/v1/health/blood/panels/{id}`: a panel with its markers.
#[utoipa::path(get, path = "/api/v1/health/blood/panels/{id}", tag = "blood",
    params(("id" = Uuid, Path, description = "panel id")), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<crate::blood::PanelDetail>)),
              (status = 404, description = "no such panel of the caller")))]
pub async fn panel(
    State(state): State<AppState>,
    user: AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, AppError> {
    let id = path_id(path, "panel")?;
    let panel = store::panel(state.db(), user.owner(), id)
        .await?
        .ok_or_else(|| not_found("panel"))?;
    Ok(ok(panel).into_response())
}

/// `GET /api/v1/health/blood/markers`: marker values, oldest first, filtered.
#[utoipa::path(get, path = "/api/v1/health/blood/markers", tag = "blood",
    params(MarkerQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<Page<crate::blood::Marker>>))))]
pub async fn markers(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<MarkerQuery>,
) -> Result<Response, AppError> {
    if let Some(flag) = q.flag.as_deref()
        && !matches!(flag.to_lowercase().as_str(), "low" | "high" | "normal")
    {
        return Err(AppError::BadRequest(
            "flag must be low, high or normal".into(),
        ));
    }
    let filter = store::MarkerFilter {
        range: RangeParams {
            from: q.from,
            to: q.to,
        }
        .checked()?,
        marker: q.marker.clone(),
        category: q.category.clone(),
        out_of_range: q.out_of_range,
        flag: q.flag.clone(),
    };
    let p = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let page = store::markers(state.db(), user.owner(), &filter, date_id(&p)?, p.limit()?).await?;
    Ok(ok(page).into_response())
}

/// `GET /api/v1/health/blood/markers/names`: every marker measured, with counts.
#[utoipa::path(get, path = "/api/v1/health/blood/markers/names", tag = "blood",
    security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<Vec<crate::blood::MarkerName>>))))]
pub async fn marker_names(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Response, AppError> {
    let names = store::marker_names(state.db(), user.owner()).await?;
    Ok(ok(names).into_response())
}

/// `GET /api/v1/health/blood/markers/trend?marker=`: one marker over time.
#[utoipa::path(get, path = "/api/v1/health/blood/markers/trend", tag = "blood",
    params(TrendQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<crate::blood::Trend>))))]
pub async fn trend(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<TrendQuery>,
) -> Result<Response, AppError> {
    let marker = q.marker.trim();
    if marker.is_empty() {
        return Err(AppError::BadRequest("marker is empty".into()));
    }
    let range = RangeParams {
        from: q.from,
        to: q.to,
    }
    .checked()?;
    let trend = store::trend(state.db(), user.owner(), marker, range).await?;
    Ok(ok(trend).into_response())
}
