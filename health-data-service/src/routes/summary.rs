//! `GET /api/v1/health/summary`: the same summary the `health.summary.get` action answers.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use common::error::{AppError, ok};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::extract::{AuthUser, Params};
use crate::page::RangeParams;
use crate::state::AppState;

/// The summary's period (default: the 7 days ending today).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// First day of the period (default: `to` − 6 days).
    from: Option<NaiveDate>,
    /// Last day of the period (default: today, UTC).
    to: Option<NaiveDate>,
}

/// `GET /api/v1/health/summary?from=&to=`: the latest day, night, HRV, weigh-in, the period's
/// activities and the out-of-range blood markers.
#[utoipa::path(get, path = "/api/v1/health/summary", tag = "summary",
    params(SummaryQuery), security(("bearer" = [])),
    responses((status = 200, body = inline(crate::openapi::Envelope<crate::summary::Summary>))))]
pub async fn summary(
    State(state): State<AppState>,
    user: AuthUser,
    Params(q): Params<SummaryQuery>,
) -> Result<Response, AppError> {
    RangeParams {
        from: q.from,
        to: q.to,
    }
    .checked()?;
    let (from, to) = crate::summary::period(q.from, q.to);
    if from > to {
        return Err(AppError::BadRequest("from must not be after to".into()));
    }
    let s = crate::summary::summary(state.db(), user.owner(), from, to).await?;
    Ok(ok(s).into_response())
}
