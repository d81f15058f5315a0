//! What an import wrote: rows inserted, updated, unchanged, and entries skipped.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What writing one dataset's records did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    /// New rows.
    pub inserted: u32,
    /// Rows whose values changed.
    pub updated: u32,
    /// Rows that were already stored as they are.
    pub unchanged: u32,
    /// Entries of the file that were not records (no date, no values).
    pub skipped: u32,
}

impl Counts {
    /// Counts one upsert: `Some(true)` inserted, `Some(false)` updated, `None` unchanged.
    pub fn add(&mut self, outcome: Option<bool>) {
        match outcome {
            Some(true) => self.inserted += 1,
            Some(false) => self.updated += 1,
            None => self.unchanged += 1,
        }
    }

    /// Adds another file's counts.
    pub fn merge(&mut self, other: Counts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.skipped += other.skipped;
    }
}
