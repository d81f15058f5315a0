//! The detail of the service's errors (all `common::error::AppError`): the bad rows of an import
//! rejected as a whole (422, every row in `data.errors`), and "not found".

use common::error::AppError;
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

/// An import with bad rows: nothing was written (422, every bad row in `data.errors`).
pub fn rejected(errors: Vec<RowError>) -> AppError {
    tracing::debug!(bad_rows = errors.len(), "import rejected");
    let message = format!(
        "the file has {} bad row(s); nothing was imported",
        errors.len()
    );
    AppError::unprocessable(message, &Rejected { errors })
}

/// "Not found" for one kind of thing (also for another user's or tenant's).
pub fn not_found(what: &str) -> AppError {
    AppError::NotFound(format!("{what} not found"))
}
