//! A compact summary of a user's latest data, for `GET /api/v1/health/summary` and the
//! `health.summary.get` action: the latest day, night, HRV and weigh-in, the activities of a
//! period, and the blood markers whose latest value is out of range.

use chrono::{Duration, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::blood::{self, Marker};
use crate::garmin::{BodyComposition, DailySummary, Hrv, Sleep, query};
use crate::scope::Owner;

/// Days of the default period, ending today.
pub const DEFAULT_DAYS: i64 = 7;

/// Activity totals of the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct ActivityTotals {
    /// Activities.
    pub count: i64,
    /// Their duration, seconds.
    pub duration_s: f64,
    /// Their distance, metres.
    pub distance_m: f64,
    /// Their training load.
    pub training_load: f64,
    /// Activity types, most frequent first.
    pub types: Vec<String>,
}

/// The summary.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Summary {
    /// First day of the period.
    pub from: NaiveDate,
    /// Last day of the period; "latest" means on or before it.
    pub to: NaiveDate,
    /// The latest daily summary.
    pub daily: Option<DailySummary>,
    /// The latest night.
    pub sleep: Option<Sleep>,
    /// The latest HRV night.
    pub hrv: Option<Hrv>,
    /// The latest weigh-in.
    pub body_composition: Option<BodyComposition>,
    /// Activities within the period.
    pub activities: ActivityTotals,
    /// The latest value of each blood marker, where it is out of range.
    pub out_of_range_markers: Vec<Marker>,
}

/// The period: `to` defaults to today (UTC), `from` to six days before `to`.
pub fn period(from: Option<NaiveDate>, to: Option<NaiveDate>) -> (NaiveDate, NaiveDate) {
    let to = to.unwrap_or_else(|| Utc::now().date_naive());
    let from = from.unwrap_or(to - Duration::days(DEFAULT_DAYS - 1));
    (from, to)
}

/// Builds the summary of `[from, to]`.
pub async fn summary(
    pool: &PgPool,
    o: Owner,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<Summary> {
    let (daily, sleep, hrv, body, activities, markers) = tokio::try_join!(
        query::latest_daily(pool, o, to),
        query::latest_sleep(pool, o, to),
        query::latest_hrv(pool, o, to),
        query::latest_body(pool, o, to),
        activity_totals(pool, o, from, to),
        blood::store::flagged_latest(pool, o, to),
    )?;
    Ok(Summary {
        from,
        to,
        daily,
        sleep,
        hrv,
        body_composition: body,
        activities,
        out_of_range_markers: markers,
    })
}

async fn activity_totals(
    pool: &PgPool,
    o: Owner,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<ActivityTotals> {
    sqlx::query_as!(
        ActivityTotals,
        r#"SELECT count(*) AS "count!",
                  COALESCE(sum(duration_s), 0) AS "duration_s!",
                  COALESCE(sum(distance_m), 0) AS "distance_m!",
                  COALESCE(sum(health_training_load(duration_s, hr_zones_s)), 0) AS "training_load!",
                  COALESCE((SELECT array_agg(activity_type ORDER BY n DESC, activity_type)
                            FROM (SELECT activity_type, count(*) AS n
                                  FROM health_garmin_activities
                                  WHERE tenant_id = $1 AND user_id = $2
                                    AND activity_date BETWEEN $3 AND $4
                                  GROUP BY activity_type) t), '{}') AS "types!"
           FROM health_garmin_activities
           WHERE tenant_id = $1 AND user_id = $2 AND activity_date BETWEEN $3 AND $4"#,
        o.tenant_id,
        o.user_id,
        from,
        to,
    )
    .fetch_one(pool)
    .await
}

/// One sentence for people: what the summary says.
pub fn sentence(s: &Summary) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &s.daily {
        let mut p = format!("On {}", d.calendar_date);
        if let Some(steps) = d.steps {
            p.push_str(&format!(": {steps} steps"));
        }
        if let Some(hr) = d.resting_hr {
            p.push_str(&format!(", resting heart rate {hr} bpm"));
        }
        parts.push(p);
    }
    if let Some(n) = &s.sleep {
        let mut p = format!(
            "slept {} h {:02} min the night to {}",
            n.asleep_s / 3600,
            (n.asleep_s % 3600) / 60,
            n.calendar_date
        );
        if let Some(score) = n.score {
            p.push_str(&format!(" (score {score})"));
        }
        parts.push(p);
    }
    let a = &s.activities;
    parts.push(format!(
        "{} activit{} from {} to {}",
        a.count,
        if a.count == 1 { "y" } else { "ies" },
        s.from,
        s.to
    ));
    match s.out_of_range_markers.len() {
        0 => parts.push("no blood marker out of range".into()),
        _ => {
            let names: Vec<String> = s
                .out_of_range_markers
                .iter()
                .map(|m| format!("{} {}", m.name, m.flag.as_deref().unwrap_or("")))
                .collect();
            parts.push(format!("out of range: {}", names.join(", ")));
        }
    }
    if s.daily.is_none() && s.sleep.is_none() {
        parts.insert(0, "No Garmin data yet".into());
    }
    format!("{}.", parts.join("; "))
}
