//! Garmin Connect export files: which file holds which dataset (by its name, as Garmin names
//! them), and the JSON readers shared by the dataset parsers. Field names and units are listed in
//! docs/health.md.

mod activities;
mod wellness;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use super::Records;

/// What an export file holds, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `DI-Connect-Aggregator/UDSFile_*.json`: daily summaries.
    Daily,
    /// `DI-Connect-Wellness/*_sleepData.json`.
    Sleep,
    /// `DI-Connect-Fitness/*_summarizedActivities.json`.
    Activities,
    /// `DI-Connect-Wellness/*_healthStatusData.json` or `*hrv*.json`.
    Hrv,
    /// `DI-Connect-Wellness/*_userBioMetrics.json`: weight and body composition.
    Body,
    /// A `.fit` activity file.
    Fit,
    /// A `.zip`: the whole export, or `DI-Connect-Uploaded-Files/UploadedFiles_*.zip` of FIT files.
    Zip,
}

/// The kind of a file from its path; `None` for files the importer does not read.
pub fn kind_of(path: &str) -> Option<FileKind> {
    let name = path
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_lowercase();
    if name.ends_with(".fit") {
        return Some(FileKind::Fit);
    }
    if name.ends_with(".zip") {
        return Some(FileKind::Zip);
    }
    if !name.ends_with(".json") {
        return None;
    }
    if name.starts_with("udsfile") {
        Some(FileKind::Daily)
    } else if name.contains("sleepdata") {
        Some(FileKind::Sleep)
    } else if name.contains("summarizedactivities") {
        Some(FileKind::Activities)
    } else if name.contains("healthstatusdata") || name.contains("hrv") {
        Some(FileKind::Hrv)
    } else if name.contains("biometrics") {
        Some(FileKind::Body)
    } else {
        None
    }
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// JSON, but not the layout Garmin uses for this file.
    #[error("unexpected layout: {0}")]
    Layout(String),
    /// A FIT file the parser refused.
    #[error("not a valid FIT file: {0}")]
    Fit(String),
}

/// What a file yielded: its records, and how many entries were skipped (no date, no values).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The records.
    pub records: Records,
    /// Entries without the fields a record needs.
    pub skipped: usize,
}

/// Parses one JSON export file of a known kind.
pub fn parse_json(kind: FileKind, bytes: &[u8]) -> Result<Parsed, ParseError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))?;
    match kind {
        FileKind::Daily => Ok(collect(
            entries(&value, None)?,
            wellness::daily,
            Records::Daily,
        )),
        FileKind::Sleep => Ok(collect(
            entries(&value, None)?,
            wellness::sleep,
            Records::Sleep,
        )),
        FileKind::Hrv => Ok(collect(entries(&value, None)?, wellness::hrv, Records::Hrv)),
        FileKind::Body => Ok(collect(
            entries(&value, None)?,
            wellness::body,
            Records::Body,
        )),
        FileKind::Activities => Ok(collect(
            entries(&value, Some("summarizedActivitiesExport"))?,
            activities::activity,
            Records::Activities,
        )),
        FileKind::Fit | FileKind::Zip => Err(ParseError::Layout("not a JSON file".into())),
    }
}

/// The entries of a file: a JSON array, or arrays wrapped as `[{"<wrapper>": [...]}]` (the
/// activities file), or a single object.
fn entries<'a>(value: &'a Value, wrapper: Option<&str>) -> Result<Vec<&'a Value>, ParseError> {
    let unwrap = |v: &'a Value| -> Vec<&'a Value> {
        match wrapper.and_then(|w| v.get(w)).and_then(Value::as_array) {
            Some(inner) => inner.iter().collect(),
            None => vec![v],
        }
    };
    match value {
        Value::Array(items) => Ok(items
            .iter()
            .flat_map(|item| match item {
                Value::Array(inner) => inner.iter().collect(),
                other => unwrap(other),
            })
            .collect()),
        Value::Object(_) => Ok(unwrap(value)),
        _ => Err(ParseError::Layout(
            "expected a JSON array of entries".into(),
        )),
    }
}

fn collect<T>(
    entries: Vec<&Value>,
    parse: fn(&Value) -> Option<T>,
    wrap: fn(Vec<T>) -> Records,
) -> Parsed {
    let total = entries.len();
    let records: Vec<T> = entries.into_iter().filter_map(parse).collect();
    Parsed {
        skipped: total - records.len(),
        records: wrap(records),
    }
}

/// The longest external id of an activity (Garmin's are numbers of about 11 digits); a longer
/// one cannot be a key, and its entry is skipped.
const MAX_EXTERNAL_ID_CHARS: usize = 200;

/// A string, without control characters: Garmin's files are not the user's to fix, so their text
/// is cleaned rather than refused (PostgreSQL refuses NUL).
fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(|s| crate::text::strip_controls(s).into_owned())
}

/// An id that can key a row: no control characters, at most [`MAX_EXTERNAL_ID_CHARS`].
fn key(id: &str) -> Option<&str> {
    (!id.is_empty() && crate::text::check("id", id, MAX_EXTERNAL_ID_CHARS).is_ok()).then_some(id)
}

/// A number as `f64`.
fn float(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64).filter(|f| f.is_finite())
}

/// A number as `i32`, rounded.
fn int(v: Option<&Value>) -> Option<i32> {
    float(v).and_then(|f| {
        let r = f.round();
        (r >= f64::from(i32::MIN) && r <= f64::from(i32::MAX)).then_some(r as i32)
    })
}

/// A level Garmin reports as negative when it has no value (stress: -1, -2).
fn level(v: Option<&Value>) -> Option<i32> {
    int(v).filter(|n| *n >= 0)
}

/// A number that is missing when 0 (a scale's failed impedance reading).
fn nonzero(v: Option<&Value>) -> Option<f64> {
    float(v).filter(|f| *f != 0.0)
}

/// A calendar day: `"2024-03-07"` (or the date part of a date-time), or epoch milliseconds.
fn date(v: Option<&Value>) -> Option<NaiveDate> {
    match v? {
        Value::String(s) => s.get(..10).and_then(|d| d.parse().ok()),
        Value::Number(_) => instant(v).map(|t| t.date_naive()),
        _ => None,
    }
}

/// An instant: epoch milliseconds, RFC 3339, or a zone-less GMT date-time
/// (`"2024-03-06T22:45:00.0"`, as the export writes them).
fn instant(v: Option<&Value>) -> Option<DateTime<Utc>> {
    match v? {
        Value::Number(n) => n
            .as_f64()
            .and_then(|ms| DateTime::from_timestamp_millis(ms.round() as i64)),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|n| n.and_utc())
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn files_are_recognised_by_name() {
        let cases = [
            (
                "DI_CONNECT/DI-Connect-Aggregator/UDSFile_2024-03-07_2024-03-12.json",
                Some(FileKind::Daily),
            ),
            (
                "x/2024-03-07_2024-03-12_123_sleepData.json",
                Some(FileKind::Sleep),
            ),
            (
                "a@b.c_0_summarizedActivities.json",
                Some(FileKind::Activities),
            ),
            ("123_healthStatusData.json", Some(FileKind::Hrv)),
            ("123_userBioMetrics.json", Some(FileKind::Body)),
            ("UploadedFiles_0-_Part1.zip", Some(FileKind::Zip)),
            ("a_123.FIT", Some(FileKind::Fit)),
            ("123_personalRecord.json", None),
            ("notes.txt", None),
        ];
        for (name, kind) in cases {
            assert_eq!(kind_of(name), kind, "{name}");
        }
    }

    #[test]
    fn instants_and_dates_in_every_export_spelling() {
        let t = instant(Some(&json!("2024-03-06T22:45:00.0"))).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-03-06T22:45:00+00:00");
        assert_eq!(instant(Some(&json!(1_709_765_100_000_i64))), Some(t));
        assert_eq!(instant(Some(&json!("2024-03-06T22:45:00Z"))), Some(t));
        assert_eq!(
            date(Some(&json!("2023-11-27T13:12:55.727"))),
            NaiveDate::from_ymd_opt(2023, 11, 27)
        );
        assert_eq!(level(Some(&json!(-2))), None);
        assert_eq!(int(Some(&json!(2460.6))), Some(2461));
    }

    #[test]
    fn bad_json_and_layouts_are_errors() {
        assert!(matches!(
            parse_json(FileKind::Daily, b"{not json"),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse_json(FileKind::Sleep, b"42"),
            Err(ParseError::Layout(_))
        ));
    }
}
