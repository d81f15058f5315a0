//! `/api/v1/admin/*`: tenant administration, for `role=admin` tokens only (403 otherwise).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use common::error::{ApiEnvelope, AppError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::{self, usage};
use crate::extract::AdminUser;
use crate::state::AppState;

/// Largest page of `GET /api/v1/admin/users`.
const MAX_PAGE: i64 = 1000;

/// `?from=&to=` of the usage report (RFC 3339; `+` must be URL-encoded as `%2B`).
#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `?limit=&offset=` of the user list.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, AppError> {
    q.map(|Query(q)| q)
        .map_err(|e| AppError::BadRequest(format!("invalid query: {}", e.body_text())))
}

/// `GET /api/v1/admin/usage`: the tenant's token usage by model and provider.
pub async fn usage(
    State(state): State<AppState>,
    AdminUser(claims): AdminUser,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<ApiEnvelope<usage::UsageReport>>, AppError> {
    let q = query(q)?;
    let from = usage::parse_bound(q.from.as_deref(), "from")?;
    let to = usage::parse_bound(q.to.as_deref(), "to")?;
    let report = usage::report(state.db(), claims.tenant_id, from, to).await?;
    Ok(common::error::ok(report))
}

/// `GET /api/v1/admin/users`: the tenant's users, oldest first (`limit` 1–1000, default 100).
pub async fn users(
    State(state): State<AppState>,
    AdminUser(claims): AdminUser,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<ApiEnvelope<Value>>, AppError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    let offset = q.offset.unwrap_or(0);
    if !(1..=MAX_PAGE).contains(&limit) || offset < 0 {
        return Err(AppError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE} and offset at least 0"
        )));
    }
    let users = accounts::list_users(state.db(), claims.tenant_id, limit, offset).await?;
    Ok(common::error::ok(
        json!({"users": users, "limit": limit, "offset": offset}),
    ))
}
