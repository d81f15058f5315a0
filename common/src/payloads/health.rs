//! The `data` of the `health.*` actions (`docs/health.md` describes their answers). Both are
//! personal: the action must name its `user_id`, and only that user's data of the action's tenant
//! is read.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Invalid, Payload};

/// The action type of a user's health summary.
pub const SUMMARY: &str = "health.summary.get";
/// The action type of one blood marker over time.
pub const TREND: &str = "health.marker.trend";

/// The longest marker name, in characters.
pub const MAX_MARKER_CHARS: usize = 200;

/// The `data` of a `health.summary.get` action: the summary of a period (by default the 7 days
/// ending with `to`, which defaults to today). Unknown fields are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SummaryPayload {
    /// First day of the period (`YYYY-MM-DD`), inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    /// Last day of the period (`YYYY-MM-DD`), inclusive; not before `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NaiveDate>,
}

impl Payload for SummaryPayload {
    fn validate(&self) -> Result<(), Invalid> {
        ordered(self.from, self.to)
    }
}

/// The `data` of a `health.marker.trend` action: one blood marker's values over time, with the
/// ones outside their reference range counted. Unknown fields are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrendPayload {
    /// The marker's name as recorded (e.g. `LDL`), matched without regard to case; not blank, at
    /// most 200 characters, no control characters but tab.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub marker: String,
    /// First day (`YYYY-MM-DD`), inclusive; all earlier values when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    /// Last day (`YYYY-MM-DD`), inclusive; not before `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NaiveDate>,
}

impl TrendPayload {
    /// The marker name as it is looked up.
    pub fn marker(&self) -> &str {
        self.marker.trim()
    }
}

impl Payload for TrendPayload {
    fn validate(&self) -> Result<(), Invalid> {
        let marker = self.marker();
        if marker.is_empty() {
            return Err(Invalid("marker is empty".into()));
        }
        // A NUL would fail in PostgreSQL and be retried as if the database were down.
        crate::text::check("marker", marker, MAX_MARKER_CHARS).map_err(Invalid)?;
        ordered(self.from, self.to)
    }
}

fn ordered(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Result<(), Invalid> {
    match (from, to) {
        (Some(f), Some(t)) if f > t => Err(Invalid("from must not be after to".into())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused<P: Payload>(data: serde_json::Value) -> String {
        P::parse(&data).err().map(|e| e.0).unwrap_or_default()
    }

    #[test]
    fn periods_and_markers_are_checked() {
        assert!(SummaryPayload::parse(&json!({})).is_ok());
        assert!(SummaryPayload::parse(&json!({"from": "2026-01-01", "to": "2026-02-01"})).is_ok());
        assert!(
            refused::<SummaryPayload>(json!({"from": "2026-02-01", "to": "2026-01-01"}))
                .contains("from must not be after to")
        );
        assert!(!refused::<SummaryPayload>(json!({"from": "yesterday"})).is_empty());
        assert_eq!(
            TrendPayload::parse(&json!({"marker": " LDL "}))
                .map(|p| p.marker().to_owned())
                .ok(),
            Some("LDL".into())
        );
        assert!(refused::<TrendPayload>(json!({"marker": "  "})).contains("marker is empty"));
        assert!(refused::<TrendPayload>(json!({"marker": "a\u{0}"})).contains("NUL"));
        assert!(refused::<TrendPayload>(json!({})).contains("marker"));
        assert!(
            refused::<TrendPayload>(json!({"marker": "x".repeat(201)})).contains("longer than")
        );
    }
}
