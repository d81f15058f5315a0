//! The wellness files of an export: daily summaries (`UDSFile_*.json`), sleep
//! (`*_sleepData.json`), HRV (`*_healthStatusData.json`, or API-style `hrvSummary` entries) and
//! weigh-ins (`*_userBioMetrics.json`).

use serde_json::Value;

use super::{date, float, instant, int, level, nonzero, text};
use crate::garmin::{BodyComposition, DailySummary, Hrv, Sleep};

/// The entry of `list` whose `key` equals `wanted`.
fn find<'a>(list: Option<&'a Value>, key: &str, wanted: &str) -> Option<&'a Value> {
    list?
        .as_array()?
        .iter()
        .find(|e| e.get(key).and_then(Value::as_str) == Some(wanted))
}

/// One `UDSFile` entry. Stress and body battery come from the nested aggregator lists of the
/// export, or from the flat fields of Connect's daily-summary API.
pub fn daily(e: &Value) -> Option<DailySummary> {
    let calendar_date = date(e.get("calendarDate"))?;
    let total_stress = find(e.pointer("/allDayStress/aggregatorList"), "type", "TOTAL");
    let battery = |kind: &str, flat: &str| {
        find(
            e.pointer("/bodyBattery/bodyBatteryStatList"),
            "bodyBatteryStatType",
            kind,
        )
        .and_then(|s| level(s.get("statsValue")))
        .or_else(|| level(e.get(flat)))
    };
    Some(DailySummary {
        calendar_date,
        steps: int(e.get("totalSteps")),
        distance_m: float(e.get("totalDistanceMeters")),
        total_kcal: int(e.get("totalKilocalories")),
        active_kcal: int(e.get("activeKilocalories")),
        resting_hr: int(e.get("restingHeartRate"))
            .or_else(|| int(e.get("currentDayRestingHeartRate"))),
        min_hr: int(e.get("minHeartRate")),
        max_hr: int(e.get("maxHeartRate")),
        avg_stress: total_stress
            .and_then(|s| level(s.get("averageStressLevel")))
            .or_else(|| level(e.get("averageStressLevel"))),
        max_stress: total_stress
            .and_then(|s| level(s.get("maxStressLevel")))
            .or_else(|| level(e.get("maxStressLevel"))),
        body_battery_high: battery("HIGHEST", "bodyBatteryHighestValue"),
        body_battery_low: battery("LOWEST", "bodyBatteryLowestValue"),
        body_battery_charged: level(e.pointer("/bodyBattery/chargedValue"))
            .or_else(|| level(e.get("bodyBatteryChargedValue"))),
        body_battery_drained: level(e.pointer("/bodyBattery/drainedValue"))
            .or_else(|| level(e.get("bodyBatteryDrainedValue"))),
        moderate_intensity_min: int(e.get("moderateIntensityMinutes")),
        vigorous_intensity_min: int(e.get("vigorousIntensityMinutes")),
    })
}

/// A sleep score in either spelling: `{"overallScore": 81}` (export) or
/// `{"overall": {"value": 81}}` (API).
fn score(scores: Option<&Value>, flat: &str, nested: &str) -> Option<i32> {
    let scores = scores?;
    int(scores.get(flat)).or_else(|| int(scores.get(nested).and_then(|n| n.get("value"))))
}

/// One night; entries without any stage or start time (days without a recorded night) are
/// skipped.
pub fn sleep(e: &Value) -> Option<Sleep> {
    let e = e.get("dailySleepDTO").unwrap_or(e);
    let calendar_date = date(e.get("calendarDate"))?;
    let scores = e.get("sleepScores");
    let night = Sleep {
        calendar_date,
        sleep_start: instant(e.get("sleepStartTimestampGMT")),
        sleep_end: instant(e.get("sleepEndTimestampGMT")),
        deep_s: int(e.get("deepSleepSeconds")),
        light_s: int(e.get("lightSleepSeconds")),
        rem_s: int(e.get("remSleepSeconds")),
        awake_s: int(e.get("awakeSleepSeconds")),
        unmeasurable_s: int(e.get("unmeasurableSeconds"))
            .or_else(|| int(e.get("unmeasurableSleepSeconds"))),
        asleep_s: 0,
        score: score(scores, "overallScore", "overall"),
        quality_score: score(scores, "qualityScore", "quality"),
        avg_respiration: float(e.get("averageRespiration")),
        avg_sleep_stress: float(e.get("avgSleepStress")).filter(|s| *s >= 0.0),
        awake_count: int(e.get("awakeCount")),
    };
    let asleep = [night.deep_s, night.light_s, night.rem_s];
    if night.sleep_start.is_none() && asleep.iter().all(Option::is_none) {
        return None;
    }
    Some(Sleep {
        asleep_s: asleep.iter().flatten().sum(),
        ..night
    })
}

/// One day of HRV: the `HRV` metric of a `healthStatusData` entry, or an `hrvSummary`.
pub fn hrv(e: &Value) -> Option<Hrv> {
    let e = e.get("hrvSummary").unwrap_or(e);
    let calendar_date = date(e.get("calendarDate"))?;
    if let Some(metric) = find(e.get("metrics"), "type", "HRV") {
        let value = float(metric.get("value"))?;
        return Some(Hrv {
            calendar_date,
            last_night_avg: Some(value),
            weekly_avg: None,
            baseline_low: float(metric.get("baselineLowerLimit")),
            baseline_high: float(metric.get("baselineUpperLimit")),
            status: text(metric.get("status")),
        });
    }
    let last_night_avg = float(e.get("lastNightAvg"));
    let weekly_avg = float(e.get("weeklyAvg"));
    if last_night_avg.is_none() && weekly_avg.is_none() {
        return None;
    }
    Some(Hrv {
        calendar_date,
        last_night_avg,
        weekly_avg,
        baseline_low: float(e.pointer("/baseline/balancedLow")),
        baseline_high: float(e.pointer("/baseline/balancedUpper")),
        status: text(e.get("status")),
    })
}

/// One weigh-in; entries without a weight (height-only profile updates) are skipped. Masses are
/// grams in the export.
pub fn body(e: &Value) -> Option<BodyComposition> {
    let w = e.get("weight")?;
    let grams = nonzero(w.get("weight"))?;
    let measured_at =
        instant(w.get("timestampGMT")).or_else(|| instant(e.pointer("/metaData/calendarDate")))?;
    let kg = |v: Option<f64>| v.map(|g| g / 1000.0);
    Some(BodyComposition {
        measured_at,
        weight_kg: grams / 1000.0,
        bmi: nonzero(w.get("bmi")),
        body_fat_pct: nonzero(w.get("bodyFat")),
        body_water_pct: nonzero(w.get("bodyWater")),
        muscle_mass_kg: kg(nonzero(w.get("muscleMass"))),
        bone_mass_kg: kg(nonzero(w.get("boneMass"))),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn daily_summary_reads_nested_and_flat_layouts() {
        let d = daily(&json!({
            "calendarDate": "2024-03-07", "totalSteps": 8000, "restingHeartRate": 52,
            "totalKilocalories": 2310.4, "activeKilocalories": 410.0,
            "allDayStress": {"aggregatorList": [
                {"type": "AWAKE", "averageStressLevel": 41},
                {"type": "TOTAL", "averageStressLevel": 30, "maxStressLevel": 88}]},
            "bodyBattery": {"chargedValue": 55, "drainedValue": 60, "bodyBatteryStatList": [
                {"bodyBatteryStatType": "HIGHEST", "statsValue": 85},
                {"bodyBatteryStatType": "LOWEST", "statsValue": 20}]}
        }))
        .unwrap();
        assert_eq!(
            (d.steps, d.avg_stress, d.max_stress, d.total_kcal),
            (Some(8000), Some(30), Some(88), Some(2310))
        );
        assert_eq!(
            (d.body_battery_high, d.body_battery_low),
            (Some(85), Some(20))
        );
        let flat = daily(
            &json!({"calendarDate": "2024-03-08", "averageStressLevel": -1,
            "bodyBatteryHighestValue": 70}),
        )
        .unwrap();
        assert_eq!((flat.avg_stress, flat.body_battery_high), (None, Some(70)));
        assert!(daily(&json!({"totalSteps": 1})).is_none());
    }

    #[test]
    fn sleep_reads_export_and_api_spellings() {
        let s = sleep(&json!({"calendarDate": "2024-03-07",
            "sleepStartTimestampGMT": "2024-03-06T22:45:00.0",
            "sleepEndTimestampGMT": "2024-03-07T06:05:00.0",
            "deepSleepSeconds": 5400, "lightSleepSeconds": 14400, "remSleepSeconds": 5400,
            "awakeSleepSeconds": 1200, "sleepScores": {"overallScore": 80, "qualityScore": 77}}))
        .unwrap();
        assert_eq!(
            (s.asleep_s, s.score, s.quality_score),
            (25200, Some(80), Some(77))
        );
        let api = sleep(&json!({"dailySleepDTO": {"calendarDate": "2024-03-08",
            "sleepStartTimestampGMT": 1_709_852_400_000_i64, "deepSleepSeconds": 3600,
            "sleepScores": {"overall": {"value": 70}}}}))
        .unwrap();
        assert_eq!((api.score, api.asleep_s), (Some(70), 3600));
        assert!(sleep(&json!({"calendarDate": "2024-03-09", "retro": false})).is_none());
    }

    #[test]
    fn hrv_and_weigh_ins() {
        let h = hrv(&json!({"calendarDate": "2024-03-07", "metrics": [
            {"type": "HR", "value": 52.0},
            {"type": "HRV", "value": 55.0, "baselineLowerLimit": 48.0,
             "baselineUpperLimit": 66.0, "status": "BALANCED"}]}))
        .unwrap();
        assert_eq!(
            (h.last_night_avg, h.baseline_high),
            (Some(55.0), Some(66.0))
        );
        let s = hrv(
            &json!({"hrvSummary": {"calendarDate": "2024-03-08", "lastNightAvg": 50,
            "weeklyAvg": 53, "status": "UNBALANCED", "baseline": {"balancedLow": 47}}}),
        )
        .unwrap();
        assert_eq!((s.weekly_avg, s.baseline_low), (Some(53.0), Some(47.0)));
        let b = body(
            &json!({"metaData": {"calendarDate": "2024-03-07T07:10:00.0"},
            "weight": {"weight": 78500.0, "bodyFat": 18.5, "muscleMass": 36100.0, "boneMass": 0,
                       "timestampGMT": "2024-03-07T06:10:00.0"}}),
        )
        .unwrap();
        assert_eq!(
            (b.weight_kg, b.muscle_mass_kg, b.bone_mass_kg),
            (78.5, Some(36.1), None)
        );
        assert_eq!(b.measured_at.to_rfc3339(), "2024-03-07T06:10:00+00:00");
        assert!(
            body(&json!({"metaData": {"calendarDate": "2024-03-07"}, "height": 180.0})).is_none()
        );
    }
}
