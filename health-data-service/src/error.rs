//! Errors of the REST surface: `common::error::AppError` for everything it covers, plus the one
//! answer it has no variant for: an import rejected as a whole, with every bad row (422).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::error::{ApiEnvelope, AppError};
use serde::Serialize;
use utoipa::ToSchema;

/// One bad row of an import: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RowError {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// The column at fault, when one is.
    pub column: Option<String>,
    /// What is wrong, for people.
    pub message: String,
}

impl RowError {
    /// A bad row.
    pub fn new(line: u64, column: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            line,
            column: column.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// The `data` of a rejected import.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejected {
    /// Every bad row, in file order.
    pub errors: Vec<RowError>,
}

/// The error of a REST handler.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The common errors (400, 401, 403, 404, 503, 500...).
    #[error(transparent)]
    App(#[from] AppError),
    /// An import with bad rows: nothing was written (422, every bad row in `data.errors`).
    #[error("the file has {} bad row(s); nothing was imported", .0.len())]
    Rejected(Vec<RowError>),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::App(e) => e.into_response(),
            Self::Rejected(errors) => {
                let status = StatusCode::UNPROCESSABLE_ENTITY;
                tracing::debug!(bad_rows = errors.len(), "import rejected");
                let body = ApiEnvelope {
                    code: status.as_u16(),
                    success: false,
                    message: format!(
                        "the file has {} bad row(s); nothing was imported",
                        errors.len()
                    ),
                    data: Rejected { errors },
                };
                (status, Json(body)).into_response()
            }
        }
    }
}

/// A database failure as the client sees it: unavailable when PostgreSQL cannot be reached,
/// internal otherwise (the cause is logged once, by `AppError`'s response).
pub fn db(e: sqlx::Error) -> AppError {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => AppError::Unavailable(e.into()),
        other => AppError::Internal(other.into()),
    }
}

/// "Not found" for one kind of thing (also for another user's or tenant's).
pub fn not_found(what: &str) -> AppError {
    AppError::NotFound(format!("{what} not found"))
}
