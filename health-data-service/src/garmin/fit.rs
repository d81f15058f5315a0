//! FIT activity files, read with the `fitparser` crate: `file_id` (serial number, creation time:
//! the file's identity), `session` (one workout per session: sport, start, times, distance,
//! calories, heart rate, time in heart-rate zones), `activity` (the local-time offset) and
//! `record` (heart-rate samples, when the session has no averages).

use chrono::{DateTime, Duration, Local, Utc};
use fitparser::profile::MesgNum;
use fitparser::{FitDataRecord, Value};

use super::NewActivity;
use super::parse::ParseError;

/// The source name of activities read from FIT files.
pub const SOURCE: &str = "fit";

fn field<'a>(record: &'a FitDataRecord, name: &str) -> Option<&'a Value> {
    record
        .fields()
        .iter()
        .find(|f| f.name() == name)
        .map(|f| f.value())
}

fn number(v: Option<&Value>) -> Option<f64> {
    let f = match v? {
        Value::Byte(n) | Value::Enum(n) | Value::UInt8(n) | Value::UInt8z(n) => f64::from(*n),
        Value::SInt8(n) => f64::from(*n),
        Value::SInt16(n) => f64::from(*n),
        Value::UInt16(n) | Value::UInt16z(n) => f64::from(*n),
        Value::SInt32(n) => f64::from(*n),
        Value::UInt32(n) | Value::UInt32z(n) => f64::from(*n),
        Value::SInt64(n) => *n as f64,
        Value::UInt64(n) | Value::UInt64z(n) => *n as f64,
        Value::Float32(n) => f64::from(*n),
        Value::Float64(n) => *n,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

fn time(v: Option<&Value>) -> Option<DateTime<Local>> {
    match v? {
        Value::Timestamp(t) => Some(*t),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(crate::text::strip_controls(s).into_owned()),
        other => number(Some(other)).map(|n| format!("sport_{n}")),
    }
}

/// Seconds in zones 1..5 from a session's `time_in_hr_zone`: six values are zones 0..5 (zone 0
/// is below zone 1 and not counted), five values are zones 1..5.
fn zones(v: Option<&Value>) -> Option<Vec<f64>> {
    let Value::Array(values) = v? else {
        return None;
    };
    let secs: Vec<f64> = values
        .iter()
        .map(|x| number(Some(x)).unwrap_or(0.0))
        .collect();
    match secs.len() {
        n if n >= 6 => Some(secs[1..6].to_vec()),
        5 => Some(secs),
        _ => None,
    }
}

/// Reads every session of a FIT activity file.
pub fn parse(bytes: &[u8]) -> Result<Vec<NewActivity>, ParseError> {
    let records = fitparser::from_bytes(bytes).map_err(|e| ParseError::Fit(e.to_string()))?;
    let of = |kind: MesgNum| records.iter().filter(move |r| r.kind() == kind);
    let file_id = of(MesgNum::FileId).next();
    let serial = file_id.and_then(|r| number(field(r, "serial_number")));
    let created = file_id.and_then(|r| time(field(r, "time_created")));
    // Local time minus UTC, from the activity message (the wall clock of the device).
    let offset = of(MesgNum::Activity)
        .next()
        .and_then(|r| {
            let utc = time(field(r, "timestamp"))?;
            let local = time(field(r, "local_timestamp"))?;
            Some(local.naive_local() - utc.naive_utc())
        })
        .unwrap_or_else(Duration::zero);
    let heart_rates: Vec<f64> = of(MesgNum::Record)
        .filter_map(|r| number(field(r, "heart_rate")))
        .filter(|hr| *hr > 0.0)
        .collect();
    let sessions: Vec<&FitDataRecord> = of(MesgNum::Session).collect();
    if sessions.is_empty() {
        return Err(ParseError::Fit(
            "no session message: not an activity file".into(),
        ));
    }
    let many = sessions.len() > 1;
    sessions
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let start = time(field(s, "start_time"))
                .or(created)
                .ok_or_else(|| ParseError::Fit("session without a start time".into()))?
                .with_timezone(&Utc);
            let id = match (serial, created) {
                (Some(serial), Some(created)) => format!("{serial}-{}", created.timestamp()),
                _ => start.timestamp().to_string(),
            };
            let sport = text(field(s, "sport")).unwrap_or_else(|| "other".into());
            let duration = number(field(s, "total_timer_time"))
                .or_else(|| number(field(s, "total_elapsed_time")))
                .unwrap_or(0.0);
            let samples = !many && !heart_rates.is_empty();
            let avg_hr = number(field(s, "avg_heart_rate")).or_else(|| {
                samples.then(|| heart_rates.iter().sum::<f64>() / heart_rates.len() as f64)
            });
            let max_hr = number(field(s, "max_heart_rate"))
                .or_else(|| samples.then(|| heart_rates.iter().copied().fold(0.0, f64::max)));
            Ok(NewActivity {
                source: SOURCE.into(),
                external_id: if many { format!("{id}#{i}") } else { id },
                name: Some(title(&sport)),
                activity_type: sport,
                started_at: start,
                activity_date: (start.naive_utc() + offset).date(),
                duration_s: duration,
                distance_m: number(field(s, "total_distance")),
                calories: number(field(s, "total_calories")).map(|c| c.round() as i32),
                avg_hr: avg_hr.map(|h| h.round() as i32),
                max_hr: max_hr.map(|h| h.round() as i32),
                hr_zones_s: zones(field(s, "time_in_hr_zone")),
            })
        })
        .collect()
}

/// `"running"` → `"Running"`, `"training"` → `"Training"`.
fn title(sport: &str) -> String {
    let spaced = sport.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => spaced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(parse(b"not a fit file"), Err(ParseError::Fit(_))));
        assert_eq!(title("open_water"), "Open water");
    }
}
