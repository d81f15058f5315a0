//! The demo data set: 90 days of realistic synthetic Garmin data for one user (daily summaries,
//! sleep and HRV with a weekly rhythm and noise, about 40 activities, a weight trend), three blood
//! panels with some markers out of range, and a small UFC catalogue with two subscriptions.
//!
//! Each day's values come from a random generator seeded by the user and the date, and every row
//! is written with the importers' idempotent upserts: running the command again the same day
//! changes nothing, and running it on a later day only adds the new days.

mod catalog;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sqlx::PgPool;

use crate::garmin::{self, BodyComposition, DailySummary, Hrv, NewActivity, Records, Sleep};
use crate::report::Counts;
use crate::scope::Owner;

/// Days of Garmin data, ending today.
pub const DAYS: i64 = 90;
/// The `source` of demo rows.
pub const SOURCE: &str = "demo";

/// What the demo command wrote, per dataset.
#[derive(Debug, Default, Serialize)]
pub struct DemoReport {
    /// Per dataset: inserted, updated, unchanged.
    pub datasets: BTreeMap<&'static str, Counts>,
}

/// Writes the demo data set for `owner`, for the 90 days ending on `today`.
pub async fn generate(pool: &PgPool, owner: Owner, today: NaiveDate) -> sqlx::Result<DemoReport> {
    let days: Vec<NaiveDate> = (0..DAYS).rev().map(|n| today - Duration::days(n)).collect();
    let mut daily = Vec::new();
    let mut nights = Vec::new();
    let mut hrv = Vec::new();
    let mut body = Vec::new();
    let mut activities = Vec::new();
    for (i, day) in days.iter().enumerate() {
        let mut rng = day_rng(owner, *day);
        daily.push(daily_summary(&mut rng, *day));
        nights.push(night(&mut rng, *day));
        hrv.push(hrv_night(&mut rng, *day));
        if day.num_days_from_ce() % 3 == 0 {
            body.push(weigh_in(&mut rng, *day, i));
        }
        activities.extend(workout(&mut rng, *day));
    }
    let mut report = DemoReport::default();
    let mut tx = pool.begin().await?;
    for records in [
        Records::Daily(daily),
        Records::Sleep(nights),
        Records::Hrv(hrv),
        Records::Body(body),
        Records::Activities(activities),
    ] {
        let counts = garmin::store::write(&mut tx, owner, SOURCE, &records).await?;
        report.datasets.insert(records.dataset(), counts);
    }
    tx.commit().await?;
    let blood = catalog::blood(pool, owner, &days).await?;
    report.datasets.insert("blood_markers", blood);
    let (fighters, fights, follows) = catalog::ufc(pool, owner).await?;
    report.datasets.insert("ufc_fighters", fighters);
    report.datasets.insert("ufc_fights", fights);
    report.datasets.insert("ufc_subscriptions", follows);
    Ok(report)
}

/// The generator of one day: the same user and date always give the same values.
fn day_rng(owner: Owner, day: NaiveDate) -> StdRng {
    let user = owner.user_id.as_u128();
    let seed = (user as u64)
        ^ ((user >> 64) as u64)
        ^ (day.num_days_from_ce() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    StdRng::seed_from_u64(seed)
}

/// A value around `center` with uniform noise of `spread` either way, rounded to `step`.
fn around(rng: &mut StdRng, center: f64, spread: f64, step: f64) -> f64 {
    let v = center + rng.random_range(-spread..=spread);
    (v / step).round() * step
}

fn at(day: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let naive = day.and_hms_opt(hour, minute, 0).unwrap_or_default();
    Utc.from_utc_datetime(&naive)
}

fn is_weekend(day: NaiveDate) -> bool {
    matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
}

fn daily_summary(rng: &mut StdRng, day: NaiveDate) -> DailySummary {
    let steps_center = match day.weekday() {
        Weekday::Sat => 13_000.0,
        Weekday::Sun => 7_000.0,
        _ => 9_000.0,
    };
    let steps = around(rng, steps_center, 2_000.0, 1.0);
    let stress = if is_weekend(day) { 24.0 } else { 33.0 };
    let active = around(rng, steps * 0.045, 60.0, 1.0);
    DailySummary {
        calendar_date: day,
        steps: Some(steps as i32),
        distance_m: Some((steps * 0.78).round()),
        total_kcal: Some((1_750.0 + active) as i32),
        active_kcal: Some(active as i32),
        resting_hr: Some(around(rng, 51.0, 2.0, 1.0) as i32),
        min_hr: Some(around(rng, 46.0, 2.0, 1.0) as i32),
        max_hr: Some(around(rng, 150.0, 20.0, 1.0) as i32),
        avg_stress: Some(around(rng, stress, 6.0, 1.0) as i32),
        max_stress: Some(around(rng, 85.0, 10.0, 1.0) as i32),
        body_battery_high: Some(around(rng, 85.0, 10.0, 1.0) as i32),
        body_battery_low: Some(around(rng, 22.0, 8.0, 1.0) as i32),
        body_battery_charged: Some(around(rng, 60.0, 12.0, 1.0) as i32),
        body_battery_drained: Some(around(rng, 62.0, 12.0, 1.0) as i32),
        moderate_intensity_min: Some(around(rng, 30.0, 20.0, 1.0) as i32),
        vigorous_intensity_min: Some(around(rng, 15.0, 15.0, 1.0) as i32),
    }
}

fn night(rng: &mut StdRng, day: NaiveDate) -> Sleep {
    let minutes = around(rng, if is_weekend(day) { 480.0 } else { 430.0 }, 45.0, 1.0);
    let asleep = (minutes * 60.0) as i32;
    let deep = (f64::from(asleep) * around(rng, 0.18, 0.03, 0.001)) as i32;
    let rem = (f64::from(asleep) * around(rng, 0.22, 0.03, 0.001)) as i32;
    let light = asleep - deep - rem;
    let awake = (around(rng, 20.0, 10.0, 1.0) * 60.0) as i32;
    let start = at(day - Duration::days(1), 22, 0) + Duration::minutes(rng.random_range(0..90));
    let score = (55.0 + (minutes - 360.0) / 4.0 + rng.random_range(-6.0..6.0)).clamp(40.0, 98.0);
    Sleep {
        calendar_date: day,
        sleep_start: Some(start),
        sleep_end: Some(start + Duration::seconds(i64::from(asleep + awake))),
        deep_s: Some(deep),
        light_s: Some(light),
        rem_s: Some(rem),
        awake_s: Some(awake),
        unmeasurable_s: Some(0),
        asleep_s: asleep,
        score: Some(score.round() as i32),
        quality_score: Some((score + rng.random_range(-5.0..5.0)).round() as i32),
        avg_respiration: Some(around(rng, 14.5, 1.0, 0.1)),
        avg_sleep_stress: Some(around(rng, 18.0, 5.0, 0.1)),
        awake_count: Some(rng.random_range(0..4)),
    }
}

fn hrv_night(rng: &mut StdRng, day: NaiveDate) -> Hrv {
    let value = around(rng, 56.0, 8.0, 1.0);
    Hrv {
        calendar_date: day,
        last_night_avg: Some(value),
        weekly_avg: Some(around(rng, 56.0, 2.0, 1.0)),
        baseline_low: Some(48.0),
        baseline_high: Some(66.0),
        status: Some(
            if value < 48.0 {
                "UNBALANCED"
            } else {
                "BALANCED"
            }
            .into(),
        ),
    }
}

fn weigh_in(rng: &mut StdRng, day: NaiveDate, index: usize) -> BodyComposition {
    // A slow loss of about 2 kg over the period.
    let trend = 80.5 - 2.0 * index as f64 / DAYS as f64;
    let weight = around(rng, trend, 0.4, 0.1);
    BodyComposition {
        measured_at: at(day, 6, 45),
        weight_kg: weight,
        bmi: Some(((weight / (1.80 * 1.80)) * 10.0).round() / 10.0),
        body_fat_pct: Some(around(rng, 19.0 - index as f64 / DAYS as f64, 0.5, 0.1)),
        body_water_pct: Some(around(rng, 58.0, 1.0, 0.1)),
        muscle_mass_kg: Some(around(rng, 37.0, 0.5, 0.1)),
        bone_mass_kg: Some(3.4),
    }
}

/// The week's plan: easy run on Tuesday, intervals on Thursday, long run on Saturday, strength on
/// Wednesday, a ride on Sunday, each skipped now and then.
fn workout(rng: &mut StdRng, day: NaiveDate) -> Option<NewActivity> {
    let (kind, name, chance, minutes, zones): (&str, &str, f64, f64, Option<[f64; 5]>) =
        match day.weekday() {
            Weekday::Tue => (
                "running",
                "Easy run",
                0.8,
                40.0,
                Some([0.25, 0.55, 0.2, 0.0, 0.0]),
            ),
            Weekday::Wed => ("strength_training", "Strength", 0.4, 45.0, None),
            Weekday::Thu => (
                "running",
                "Intervals",
                0.7,
                50.0,
                Some([0.2, 0.3, 0.2, 0.2, 0.1]),
            ),
            Weekday::Sat => (
                "running",
                "Long run",
                0.8,
                90.0,
                Some([0.1, 0.6, 0.25, 0.05, 0.0]),
            ),
            Weekday::Sun => (
                "cycling",
                "Sunday ride",
                0.3,
                100.0,
                Some([0.3, 0.5, 0.2, 0.0, 0.0]),
            ),
            _ => return None,
        };
    if !rng.random_bool(chance) {
        return None;
    }
    let duration = around(rng, minutes, minutes * 0.15, 1.0) * 60.0;
    let start = at(day, 6, 30) + Duration::minutes(rng.random_range(0..60));
    let speed = match kind {
        "running" => Some(around(rng, 2.9, 0.3, 0.01)),
        "cycling" => Some(around(rng, 7.5, 0.8, 0.01)),
        _ => None,
    };
    Some(NewActivity {
        source: SOURCE.into(),
        external_id: format!("demo-{day}-{kind}"),
        name: Some(name.into()),
        activity_type: kind.into(),
        started_at: start,
        activity_date: day,
        duration_s: duration,
        distance_m: speed.map(|s| (s * duration).round()),
        calories: Some((duration / 60.0 * around(rng, 10.0, 2.0, 0.1)).round() as i32),
        avg_hr: Some(around(rng, if zones.is_some() { 145.0 } else { 110.0 }, 8.0, 1.0) as i32),
        max_hr: Some(around(rng, 172.0, 8.0, 1.0) as i32),
        hr_zones_s: zones.map(|z| z.iter().map(|share| (share * duration).round()).collect()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_day_always_gets_the_same_values() {
        let owner = Owner::new(Uuid::nil(), Uuid::from_u128(7));
        let day = NaiveDate::from_ymd_opt(2024, 3, 7).unwrap();
        let a = daily_summary(&mut day_rng(owner, day), day);
        let b = daily_summary(&mut day_rng(owner, day), day);
        assert_eq!(a, b);
        let other = daily_summary(&mut day_rng(owner, day + Duration::days(1)), day);
        assert_ne!(a, other);
        let s = night(&mut day_rng(owner, day), day);
        assert_eq!(
            s.asleep_s,
            s.deep_s.unwrap() + s.light_s.unwrap() + s.rem_s.unwrap()
        );
    }
}
