//! `/api/v1/health/ufc/...`: the tenant's catalogue (CSV imports by admins, fighter and event
//! lists and details) and the caller's subscriptions. Handlers unpack the request and call
//! `crate::ufc`.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use common::error::{AppError, ok};
use common::http::path_id;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::{not_found, rejected};
use crate::extract::{AdminUser, AuthUser, Params};
use crate::page::{self, Page, PageParams, RangeParams};
use crate::scope::Owner;
use crate::state::AppState;
use crate::ufc::{csv, import, store};

/// The fighter list's parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FighterQuery {
    /// Part of the name or nickname (case-insensitive).
    q: Option<String>,
    /// Weight class (case-insensitive), e.g. `Lightweight`.
    division: Option<String>,
    /// Stance (case-insensitive).
    stance: Option<String>,
    /// Country (case-insensitive).
    country: Option<String>,
    /// At least this many wins.
    min_wins: Option<i32>,
    /// Only fighters the caller follows.
    #[serde(default)]
    followed: bool,
    /// Items per page (1..=500, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The event list's parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// First day, `YYYY-MM-DD` (inclusive).
    from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD` (inclusive).
    to: Option<NaiveDate>,
    /// Part of the name (case-insensitive).
    q: Option<String>,
    /// Items per page (1..=500, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The subscription list's parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    /// Items per page (1..=500, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn bad_cursor() -> AppError {
    AppError::BadRequest("cursor is not a valid cursor".into())
}

/// `POST /api/v1/health/ufc/fighters/import` (admin; body: the fighters CSV): all or nothing.
#[utoipa::path(post, path = "/api/v1/health/ufc/fighters/import", tag = "ufc",
    request_body(content_type = "text/csv", description = "the fighters CSV (docs/health.md)"),
    security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<crate::ufc::UfcImport>)),
              (status = 403, description = "not an admin"),
              (status = 422, body = inline(crate::openapi::Envelope<crate::error::Rejected>))))]
pub async fn import_fighters(
    State(state): State<AppState>,
    AdminUser(claims): AdminUser,
    body: Bytes,
) -> Result<Response, AppError> {
    let rows = csv::fighters(&body).map_err(rejected)?;
    let report = import::fighters(state.db(), Owner::of(&claims), &rows).await?;
    Ok(ok(report).into_response())
}

/// `POST /api/v1/health/ufc/fights/import` (admin; body: the fights CSV): all or nothing.
#[utoipa::path(post, path = "/api/v1/health/ufc/fights/import", tag = "ufc",
    request_body(content_type = "text/csv", description = "the fights CSV (docs/health.md)"),
    security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<crate::ufc::UfcImport>)),
              (status = 403, description = "not an admin"),
              (status = 422, body = inline(crate::openapi::Envelope<crate::error::Rejected>))))]
pub async fn import_fights(
    State(state): State<AppState>,
    AdminUser(claims): AdminUser,
    body: Bytes,
) -> Result<Response, AppError> {
    let owner = Owner::of(&claims);
    let catalogue = import::catalogue(state.db(), owner.tenant_id).await?;
    let rows = csv::fights(&body, &catalogue).map_err(rejected)?;
    let report = import::fights(state.db(), owner, &rows).await?;
    Ok(ok(report).into_response())
}

/// `GET /api/v1/health/ufc/fighters`: the tenant's fighters by name, filtered.
#[utoipa::path(get, path = "/api/v1/health/ufc/fighters", tag = "ufc",
    params(FighterQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<Page<crate::ufc::Fighter>>))))]
pub async fn fighters(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<FighterQuery>,
) -> Result<Response, AppError> {
    let filter = store::FighterFilter {
        q: q.q.clone().filter(|s| !s.trim().is_empty()),
        division: q.division.clone(),
        stance: q.stance.clone(),
        country: q.country.clone(),
        min_wins: q.min_wins,
        followed: q.followed,
    };
    let p = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let page = store::fighters(
        state.db(),
        user.owner(),
        &filter,
        p.keyed_cursor()?,
        p.limit()?,
    )
    .await?;
    Ok(ok(page).into_response())
}

/// `GET /api/v1/health/ufc/fighters/{id}`: a fighter with their fights.
#[utoipa::path(get, path = "/api/v1/health/ufc/fighters/{id}", tag = "ufc",
    params(("id" = Uuid, Path, description = "fighter id")), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<crate::ufc::FighterDetail>)),
              (status = 404, description = "no such fighter in the caller's tenant")))]
pub async fn fighter(
    State(state): State<AppState>,
    user: AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, AppError> {
    let id = path_id(path, "fighter")?;
    let f = store::fighter_detail(state.db(), user.owner(), id)
        .await?
        .ok_or_else(|| not_found("fighter"))?;
    Ok(ok(f).into_response())
}

/// `PUT /api/v1/health/ufc/fighters/{id}/follow`: follow a fighter (idempotent).
#[utoipa::path(put, path = "/api/v1/health/ufc/fighters/{id}/follow", tag = "ufc",
    params(("id" = Uuid, Path, description = "fighter id")), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<crate::ufc::Subscription>)),
              (status = 404, description = "no such fighter in the caller's tenant")))]
pub async fn follow(
    State(state): State<AppState>,
    user: AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, AppError> {
    let id = path_id(path, "fighter")?;
    let s = store::follow(state.db(), user.owner(), id)
        .await?
        .ok_or_else(|| not_found("fighter"))?;
    Ok(ok(s).into_response())
}

/// `DELETE /api/v1/health/ufc/fighters/{id}/follow`: stop following.
#[utoipa::path(delete, path = "/api/v1/health/ufc/fighters/{id}/follow", tag = "ufc",
    params(("id" = Uuid, Path, description = "fighter id")), security(("bearer" = [])),
    responses((status = 200, description = "`{\"fighter_id\", \"followed\": false}`"),
              (status = 404, description = "the caller does not follow that fighter")))]
pub async fn unfollow(
    State(state): State<AppState>,
    user: AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, AppError> {
    let id = path_id(path, "fighter")?;
    if !store::unfollow(state.db(), user.owner(), id).await? {
        return Err(not_found("subscription"));
    }
    Ok(ok(json!({"fighter_id": id, "followed": false})).into_response())
}

/// `GET /api/v1/health/ufc/events`: the tenant's events, newest first.
#[utoipa::path(get, path = "/api/v1/health/ufc/events", tag = "ufc",
    params(EventQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<Page<crate::ufc::Event>>))))]
pub async fn events(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<EventQuery>,
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
        .map(|(day, id)| day.parse().map(|d| (d, id)).map_err(|_| bad_cursor()))
        .transpose()?;
    let text = q.q.as_deref().filter(|s| !s.trim().is_empty());
    let page = store::events(state.db(), user.owner(), range, text, after, p.limit()?).await?;
    Ok(ok(page).into_response())
}

/// `GET /api/v1/health/ufc/events/{id}`: an event with its card.
#[utoipa::path(get, path = "/api/v1/health/ufc/events/{id}", tag = "ufc",
    params(("id" = Uuid, Path, description = "event id")), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<crate::ufc::EventDetail>)),
              (status = 404, description = "no such event in the caller's tenant")))]
pub async fn event(
    State(state): State<AppState>,
    user: AuthUser,
    path: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, AppError> {
    let id = path_id(path, "event")?;
    let e = store::event_detail(state.db(), user.owner(), id)
        .await?
        .ok_or_else(|| not_found("event"))?;
    Ok(ok(e).into_response())
}

/// `GET /api/v1/health/ufc/subscriptions`: the fighters the caller follows.
#[utoipa::path(get, path = "/api/v1/health/ufc/subscriptions", tag = "ufc",
    params(SubscriptionQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<Page<crate::ufc::Subscription>>))))]
pub async fn subscriptions(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<SubscriptionQuery>,
) -> Result<Response, AppError> {
    let p = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let after = p
        .keyed_cursor()?
        .map(|(at, id)| page::parse_instant(&at).map(|at| (at, id)))
        .transpose()?;
    let page = store::subscriptions(state.db(), user.owner(), after, p.limit()?).await?;
    Ok(ok(page).into_response())
}
