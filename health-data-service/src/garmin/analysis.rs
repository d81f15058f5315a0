//! Analyses computed in SQL: sleep against training load, day by day, and weekly trends. The
//! training load of an activity is `health_training_load()` (migrations, docs/health.md).

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::scope::Owner;

/// One day of the sleep-vs-load analysis.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SleepLoadDay {
    /// The day (the night that ended on it).
    pub date: NaiveDate,
    /// Sleep score of the night, if recorded.
    pub sleep_score: Option<i32>,
    /// Minutes asleep that night, if recorded.
    pub sleep_minutes: Option<f64>,
    /// Training load of the day's activities.
    pub load: f64,
    /// Training load of the 7 days before (day-7 ..= day-1).
    pub load_prev_7d: f64,
}

/// Sleep against training load over a period.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SleepVsLoad {
    /// Every day of the period, oldest first.
    pub days: Vec<SleepLoadDay>,
    /// Average sleep score over the nights recorded.
    pub avg_sleep_score: Option<f64>,
    /// Average daily load.
    pub avg_load: Option<f64>,
    /// Pearson correlation of the sleep score with the previous 7 days' load, over the nights
    /// recorded (null with fewer than two, or no variation).
    pub correlation: Option<f64>,
}

/// Per day of `[from, to]`: the night's sleep, the day's load and the 7 days' load before it.
pub async fn sleep_vs_load(
    pool: &PgPool,
    o: Owner,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<SleepVsLoad> {
    let rows = sqlx::query!(
        r#"WITH days AS (
             SELECT d::date AS day
             FROM generate_series($3::date - 7, $4::date, interval '1 day') AS d
           ), loads AS (
             SELECT activity_date AS day, sum(health_training_load(duration_s, hr_zones_s)) AS load
             FROM health_garmin_activities
             WHERE tenant_id = $1 AND user_id = $2
               AND activity_date BETWEEN $3::date - 7 AND $4::date
             GROUP BY activity_date
           ), per_day AS (
             SELECT days.day, COALESCE(loads.load, 0) AS load,
                    COALESCE(sum(loads.load) OVER (ORDER BY days.day
                             ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING), 0) AS load_prev_7d
             FROM days LEFT JOIN loads ON loads.day = days.day
           ), joined AS (
             SELECT p.day, s.score, s.asleep_s::float8 / 60 AS sleep_minutes, p.load,
                    p.load_prev_7d
             FROM per_day p
             LEFT JOIN health_garmin_sleep s
               ON s.tenant_id = $1 AND s.user_id = $2 AND s.calendar_date = p.day
             WHERE p.day >= $3::date
           )
           SELECT day AS "day!", score, sleep_minutes, load AS "load!",
                  load_prev_7d AS "load_prev_7d!",
                  avg(score) OVER ()::float8 AS avg_sleep_score,
                  avg(load) OVER () AS avg_load,
                  corr(score::float8, load_prev_7d) OVER () AS correlation
           FROM joined
           ORDER BY day"#,
        o.tenant_id,
        o.user_id,
        from,
        to,
    )
    .fetch_all(pool)
    .await?;
    let first = rows.first();
    Ok(SleepVsLoad {
        avg_sleep_score: first.and_then(|r| r.avg_sleep_score),
        avg_load: first.and_then(|r| r.avg_load),
        correlation: first.and_then(|r| r.correlation),
        days: rows
            .iter()
            .map(|r| SleepLoadDay {
                date: r.day,
                sleep_score: r.score,
                sleep_minutes: r.sleep_minutes,
                load: r.load,
                load_prev_7d: r.load_prev_7d,
            })
            .collect(),
    })
}

/// One week (Monday to Sunday) of trends.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Week {
    /// The Monday starting the week.
    pub week_start: NaiveDate,
    /// Days with a daily summary.
    pub days: i64,
    /// Average steps per day.
    pub avg_steps: Option<f64>,
    /// Change of the average steps against the week before.
    pub steps_change: Option<f64>,
    /// Average resting heart rate.
    pub avg_resting_hr: Option<f64>,
    /// Average stress level.
    pub avg_stress: Option<f64>,
    /// Average minutes asleep per night.
    pub avg_sleep_minutes: Option<f64>,
    /// Average sleep score.
    pub avg_sleep_score: Option<f64>,
    /// Average overnight HRV, ms.
    pub avg_hrv: Option<f64>,
    /// Activities.
    pub activities: i64,
    /// Minutes of activity.
    pub activity_minutes: f64,
    /// Training load of the week.
    pub training_load: f64,
}

/// Weekly averages over the weeks touching `[from, to]` (only days inside it count).
pub async fn weekly(
    pool: &PgPool,
    o: Owner,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<Vec<Week>> {
    sqlx::query_as!(
        Week,
        r#"WITH weeks AS (
             SELECT w::date AS week
             FROM generate_series(date_trunc('week', $3::date::timestamp), date_trunc('week', $4::date::timestamp),
                                  interval '1 week') AS w
           ), daily AS (
             SELECT date_trunc('week', calendar_date::timestamp)::date AS week, count(*) AS days,
                    avg(steps)::float8 AS avg_steps, avg(resting_hr)::float8 AS avg_resting_hr,
                    avg(avg_stress)::float8 AS avg_stress
             FROM health_garmin_daily_summaries
             WHERE tenant_id = $1 AND user_id = $2 AND calendar_date BETWEEN $3 AND $4
             GROUP BY 1
           ), nights AS (
             SELECT date_trunc('week', calendar_date::timestamp)::date AS week,
                    avg(asleep_s)::float8 / 60 AS avg_sleep_minutes,
                    avg(score)::float8 AS avg_sleep_score
             FROM health_garmin_sleep
             WHERE tenant_id = $1 AND user_id = $2 AND calendar_date BETWEEN $3 AND $4
             GROUP BY 1
           ), hrv AS (
             SELECT date_trunc('week', calendar_date::timestamp)::date AS week,
                    avg(last_night_avg) AS avg_hrv
             FROM health_garmin_hrv
             WHERE tenant_id = $1 AND user_id = $2 AND calendar_date BETWEEN $3 AND $4
             GROUP BY 1
           ), acts AS (
             SELECT date_trunc('week', activity_date::timestamp)::date AS week, count(*) AS activities,
                    sum(duration_s) / 60 AS activity_minutes,
                    sum(health_training_load(duration_s, hr_zones_s)) AS training_load
             FROM health_garmin_activities
             WHERE tenant_id = $1 AND user_id = $2 AND activity_date BETWEEN $3 AND $4
             GROUP BY 1
           )
           SELECT weeks.week AS "week_start!", COALESCE(daily.days, 0) AS "days!",
                  daily.avg_steps,
                  daily.avg_steps - lag(daily.avg_steps) OVER (ORDER BY weeks.week)
                    AS steps_change,
                  daily.avg_resting_hr, daily.avg_stress, nights.avg_sleep_minutes,
                  nights.avg_sleep_score, hrv.avg_hrv,
                  COALESCE(acts.activities, 0) AS "activities!",
                  COALESCE(acts.activity_minutes, 0) AS "activity_minutes!",
                  COALESCE(acts.training_load, 0) AS "training_load!"
           FROM weeks
           LEFT JOIN daily ON daily.week = weeks.week
           LEFT JOIN nights ON nights.week = weeks.week
           LEFT JOIN hrv ON hrv.week = weeks.week
           LEFT JOIN acts ON acts.week = weeks.week
           ORDER BY weeks.week"#,
        o.tenant_id,
        o.user_id,
        from,
        to,
    )
    .fetch_all(pool)
    .await
}
