//! `*_summarizedActivities.json`: one entry per workout. Times are epoch milliseconds
//! (`startTimeGmt`, and `startTimeLocal` = the local wall clock written as if it were UTC),
//! durations milliseconds, distances centimetres, `hrTimeInZone_N` milliseconds.

use chrono::DateTime;
use serde_json::Value;

use super::{float, instant, int, key, text};
use crate::garmin::NewActivity;

/// The source name of activities read from this file.
pub const SOURCE: &str = "garmin_connect";

/// One workout; entries without an id or a start time are skipped.
pub fn activity(e: &Value) -> Option<NewActivity> {
    let external_id = match e.get("activityId")? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => key(s)?.to_owned(),
        _ => return None,
    };
    let started_at = instant(e.get("startTimeGmt")).or_else(|| instant(e.get("beginTimestamp")))?;
    // The local wall clock, written as epoch milliseconds: its UTC date is the local date.
    let activity_date = float(e.get("startTimeLocal"))
        .and_then(|ms| DateTime::from_timestamp_millis(ms.round() as i64))
        .unwrap_or(started_at)
        .date_naive();
    let activity_type = match e.get("activityType") {
        Some(Value::String(_)) => text(e.get("activityType")),
        Some(Value::Object(o)) => text(o.get("typeKey")),
        _ => None,
    }
    .filter(|t| !t.is_empty())
    .unwrap_or_else(|| "other".to_owned());
    let seconds = |key: &str| float(e.get(key)).map(|ms| ms / 1000.0);
    let zones: Vec<Option<f64>> = (1..=5)
        .map(|z| seconds(&format!("hrTimeInZone_{z}")))
        .collect();
    let hr_zones_s = zones
        .iter()
        .any(Option::is_some)
        .then(|| zones.iter().map(|z| z.unwrap_or(0.0)).collect());
    Some(NewActivity {
        source: SOURCE.to_owned(),
        external_id,
        name: text(e.get("name")),
        activity_type: activity_type.to_lowercase(),
        started_at,
        activity_date,
        duration_s: seconds("duration")
            .or_else(|| seconds("elapsedDuration"))
            .unwrap_or(0.0),
        distance_m: float(e.get("distance")).map(|cm| cm / 100.0),
        calories: int(e.get("calories")),
        avg_hr: int(e.get("avgHr")).or_else(|| int(e.get("averageHR"))),
        max_hr: int(e.get("maxHr")).or_else(|| int(e.get("maxHR"))),
        hr_zones_s,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn units_are_converted_and_the_local_day_kept() {
        let a = activity(&json!({
            "activityId": 14_100_000_001_i64, "name": "Morning Run", "activityType": "running",
            "sportType": "RUNNING", "startTimeGmt": 1_709_789_400_000_i64,
            "startTimeLocal": 1_709_793_000_000_i64, "duration": 1_800_000.0,
            "distance": 520_000.0, "calories": 410.0, "avgHr": 148.0, "maxHr": 171.0,
            "hrTimeInZone_1": 300_000.0, "hrTimeInZone_2": 600_000.0,
            "hrTimeInZone_3": 600_000.0, "hrTimeInZone_4": 240_000.0
        }))
        .unwrap();
        assert_eq!(a.external_id, "14100000001");
        assert_eq!(a.started_at.to_rfc3339(), "2024-03-07T05:30:00+00:00");
        assert_eq!(a.activity_date.to_string(), "2024-03-07");
        assert_eq!((a.duration_s, a.distance_m), (1800.0, Some(5200.0)));
        assert_eq!(a.hr_zones_s, Some(vec![300.0, 600.0, 600.0, 240.0, 0.0]));
        let bare = activity(
            &json!({"activityId": "7", "beginTimestamp": 1_709_789_400_000_i64,
            "activityType": {"typeKey": "Strength_Training"}, "elapsedDuration": 60_000}),
        )
        .unwrap();
        assert_eq!(
            (
                bare.activity_type.as_str(),
                bare.duration_s,
                bare.hr_zones_s
            ),
            ("strength_training", 60.0, None)
        );
        assert!(activity(&json!({"activityId": 1})).is_none());
    }
}
