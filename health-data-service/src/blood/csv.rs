//! The blood-test CSV layout (docs/health.md): one marker per row, with `date`, `marker`, `value`
//! and `unit` required and `lab`, `panel`, `category`, `ref_low`, `ref_high` optional. Rows of
//! the same date and lab form one panel (one lab report).

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::csvfile::{self, Layout};
use crate::error::RowError;
use crate::text::{MAX_LABEL_CHARS, MAX_NAME_CHARS};

/// The columns a blood CSV must have.
pub const REQUIRED: &[&str] = &["date", "marker", "value", "unit"];

/// The longest unit (`mmol/L`, `mL/min/1.73m²`).
pub const MAX_UNIT_CHARS: usize = 40;

/// The blood CSV: its required columns and the lengths of its text columns.
const LAYOUT: Layout<'static> = Layout {
    required: REQUIRED,
    max_chars: &[
        ("marker", MAX_NAME_CHARS),
        ("lab", MAX_NAME_CHARS),
        ("panel", MAX_NAME_CHARS),
        ("category", MAX_LABEL_CHARS),
        ("unit", MAX_UNIT_CHARS),
    ],
};

/// One valid row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its line in the file.
    pub line: u64,
    /// The day the blood was taken.
    pub taken_on: NaiveDate,
    /// The lab (`""` when none).
    pub lab: String,
    /// The report's name.
    pub panel: Option<String>,
    /// The marker.
    pub marker: String,
    /// Its category.
    pub category: Option<String>,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Lower end of the reference range.
    pub ref_low: Option<f64>,
    /// Upper end of the reference range.
    pub ref_high: Option<f64>,
}

/// Every row of the file, or every problem of every bad row.
pub fn parse(bytes: &[u8]) -> Result<Vec<Row>, Vec<RowError>> {
    let table = csvfile::read(bytes, LAYOUT)?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    // A marker may appear once per report: (date, lab, marker) → first line.
    let mut seen: HashMap<(NaiveDate, String, String), u64> = HashMap::new();
    for r in table.rows() {
        let before = errors.len();
        let taken_on = match r.required("date", &mut errors) {
            Some(_) => r.date("date", &mut errors),
            None => None,
        };
        let marker = r.required("marker", &mut errors);
        let value = match r.required("value", &mut errors) {
            Some(_) => r.float("value", &mut errors),
            None => None,
        };
        let unit = r.required("unit", &mut errors);
        let ref_low = r.float("ref_low", &mut errors);
        let ref_high = r.float("ref_high", &mut errors);
        if let (Some(lo), Some(hi)) = (ref_low, ref_high)
            && lo > hi
        {
            errors.push(r.error("ref_low", format!("ref_low {lo} is above ref_high {hi}")));
        }
        let lab = r.text("lab").unwrap_or_default().to_owned();
        if let (Some(day), Some(name)) = (taken_on, marker) {
            let key = (day, lab.to_lowercase(), name.to_lowercase());
            if let Some(first) = seen.get(&key) {
                errors.push(r.error(
                    "marker",
                    format!("{name} already appears for this date and lab on line {first}"),
                ));
            } else {
                seen.insert(key, r.line);
            }
        }
        if errors.len() > before {
            continue;
        }
        if let (Some(taken_on), Some(marker), Some(value), Some(unit)) =
            (taken_on, marker, value, unit)
        {
            rows.push(Row {
                line: r.line,
                taken_on,
                lab,
                panel: r.text("panel").map(str::to_owned),
                marker: marker.to_owned(),
                category: r.text("category").map(str::to_lowercase),
                value,
                unit: unit.to_owned(),
                ref_low,
                ref_high,
            });
        }
    }
    table.finish(rows, errors)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn good_rows_parse() {
        let rows = parse(
            b"date,lab,panel,marker,category,value,unit,ref_low,ref_high\n\
              2024-01-15,Synlab,Check-up,LDL cholesterol,Lipids,3.9,mmol/L,,3.0\n\
              2024-01-15,Synlab,,Glucose,metabolic,5.1,mmol/L,3.9,5.6\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].category.as_deref(), Some("lipids"));
        assert_eq!((rows[0].ref_low, rows[0].ref_high), (None, Some(3.0)));
        assert_eq!(rows[1].line, 3);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let errors = parse(
            b"date,marker,value,unit,ref_low,ref_high\n\
              2024-01-15,Glucose,5.1,mmol/L,3.9,5.6\n\
              15/01/2024,Iron,12,umol/L,,\n\
              2024-01-15,Ferritin,high,ug/L,30,400\n\
              2024-01-15,glucose,5.0,mmol/L,,\n\
              2024-01-15,,1,x,5,1\n",
        )
        .unwrap_err();
        let lines: Vec<(u64, Option<&str>)> = errors
            .iter()
            .map(|e| (e.line, e.column.as_deref()))
            .collect();
        assert_eq!(
            lines,
            [
                (3, Some("date")),
                (4, Some("value")),
                (5, Some("marker")),
                (6, Some("marker")),
                (6, Some("ref_low")),
            ]
        );
    }
}
