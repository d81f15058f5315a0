//! Blood tests: panels (one lab report: a date and a lab) with their markers (name, value, unit,
//! reference range, out-of-range flag), the CSV importer, filters, and a marker's trend.

pub mod csv;
pub mod store;

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::report::Counts;

/// One measured value.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Marker {
    /// Its id.
    pub id: Uuid,
    /// The panel (report) it belongs to.
    pub panel_id: Uuid,
    /// The day the blood was taken.
    pub taken_on: NaiveDate,
    /// The lab (`""` when none was named).
    pub lab: String,
    /// The marker, e.g. `LDL cholesterol`.
    pub name: String,
    /// Its group, e.g. `lipids`.
    pub category: Option<String>,
    /// The value.
    pub value: f64,
    /// Its unit, e.g. `mmol/L`.
    pub unit: String,
    /// Lower end of the reference range.
    pub ref_low: Option<f64>,
    /// Upper end of the reference range.
    pub ref_high: Option<f64>,
    /// `low` or `high` outside the range, `normal` inside, `null` without a range.
    pub flag: Option<String>,
}

/// A panel in lists.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Panel {
    /// Its id.
    pub id: Uuid,
    /// The day the blood was taken.
    pub taken_on: NaiveDate,
    /// The lab (`""` when none was named).
    pub lab: String,
    /// Its name, e.g. `Annual check-up`.
    pub name: Option<String>,
    /// Markers measured.
    pub markers: i64,
    /// Markers outside their reference range.
    pub out_of_range: i64,
}

/// A panel with its markers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PanelDetail {
    /// The panel.
    #[serde(flatten)]
    pub panel: Panel,
    /// Its markers, by category and name.
    pub results: Vec<Marker>,
}

/// A marker that was measured, with how often.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct MarkerName {
    /// The name as last written.
    pub name: String,
    /// Its category, as last written.
    pub category: Option<String>,
    /// Values stored.
    pub count: i64,
    /// The last day it was measured.
    pub last_date: NaiveDate,
}

/// One value of a trend.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TrendPoint {
    /// The day.
    pub date: NaiveDate,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Lower end of the reference range.
    pub ref_low: Option<f64>,
    /// Upper end of the reference range.
    pub ref_high: Option<f64>,
    /// `low`, `high`, `normal`, or `null`.
    pub flag: Option<String>,
    /// The lab.
    pub lab: String,
}

/// One marker over time.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Trend {
    /// The marker (as last written; as asked for when it has no values).
    pub marker: String,
    /// Its values, oldest first.
    pub points: Vec<TrendPoint>,
    /// The newest value.
    pub latest: Option<f64>,
    /// The lowest value.
    pub min: Option<f64>,
    /// The highest value.
    pub max: Option<f64>,
    /// Newest minus oldest value.
    pub change: Option<f64>,
    /// Values outside their reference range.
    pub out_of_range: i64,
}

/// What a blood CSV import wrote.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BloodImport {
    /// Panels the file names (new or existing).
    pub panels: usize,
    /// Panels created by this import.
    pub panels_created: usize,
    /// Marker rows written.
    pub markers: Counts,
}
