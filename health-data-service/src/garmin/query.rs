//! Reading Garmin data back: what exists (`/status`), each dataset over a date range (oldest
//! first, keyset-paginated), one activity, and the latest row of each dataset (summaries).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Activity, BodyComposition, DailySummary, Hrv, Sleep};
use crate::page::{self, Page, RangeParams};
use crate::scope::Owner;

/// How much of one dataset exists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Coverage {
    /// Rows.
    pub count: i64,
    /// First day with data.
    pub first_date: Option<NaiveDate>,
    /// Last day with data.
    pub last_date: Option<NaiveDate>,
}

/// What Garmin data a user has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Status {
    /// Daily summaries.
    pub daily_summaries: Coverage,
    /// Nights.
    pub sleep: Coverage,
    /// Workouts.
    pub activities: Coverage,
    /// HRV nights.
    pub hrv: Coverage,
    /// Weigh-ins.
    pub body_composition: Coverage,
}

/// Counts and date ranges of every dataset.
pub async fn status(pool: &PgPool, o: Owner) -> sqlx::Result<Status> {
    let r = sqlx::query!(
        r#"SELECT
             (SELECT count(*) FROM health_garmin_daily_summaries WHERE tenant_id = $1 AND user_id = $2) AS "daily_n!",
             (SELECT min(calendar_date) FROM health_garmin_daily_summaries WHERE tenant_id = $1 AND user_id = $2) AS daily_first,
             (SELECT max(calendar_date) FROM health_garmin_daily_summaries WHERE tenant_id = $1 AND user_id = $2) AS daily_last,
             (SELECT count(*) FROM health_garmin_sleep WHERE tenant_id = $1 AND user_id = $2) AS "sleep_n!",
             (SELECT min(calendar_date) FROM health_garmin_sleep WHERE tenant_id = $1 AND user_id = $2) AS sleep_first,
             (SELECT max(calendar_date) FROM health_garmin_sleep WHERE tenant_id = $1 AND user_id = $2) AS sleep_last,
             (SELECT count(*) FROM health_garmin_activities WHERE tenant_id = $1 AND user_id = $2) AS "act_n!",
             (SELECT min(activity_date) FROM health_garmin_activities WHERE tenant_id = $1 AND user_id = $2) AS act_first,
             (SELECT max(activity_date) FROM health_garmin_activities WHERE tenant_id = $1 AND user_id = $2) AS act_last,
             (SELECT count(*) FROM health_garmin_hrv WHERE tenant_id = $1 AND user_id = $2) AS "hrv_n!",
             (SELECT min(calendar_date) FROM health_garmin_hrv WHERE tenant_id = $1 AND user_id = $2) AS hrv_first,
             (SELECT max(calendar_date) FROM health_garmin_hrv WHERE tenant_id = $1 AND user_id = $2) AS hrv_last,
             (SELECT count(*) FROM health_garmin_body_composition WHERE tenant_id = $1 AND user_id = $2) AS "body_n!",
             (SELECT min(measured_at)::date FROM health_garmin_body_composition WHERE tenant_id = $1 AND user_id = $2) AS body_first,
             (SELECT max(measured_at)::date FROM health_garmin_body_composition WHERE tenant_id = $1 AND user_id = $2) AS body_last"#,
        o.tenant_id,
        o.user_id,
    )
    .fetch_one(pool)
    .await?;
    let c = |count, first_date, last_date| Coverage {
        count,
        first_date,
        last_date,
    };
    Ok(Status {
        daily_summaries: c(r.daily_n, r.daily_first, r.daily_last),
        sleep: c(r.sleep_n, r.sleep_first, r.sleep_last),
        activities: c(r.act_n, r.act_first, r.act_last),
        hrv: c(r.hrv_n, r.hrv_first, r.hrv_last),
        body_composition: c(r.body_n, r.body_first, r.body_last),
    })
}

/// Daily summaries in the range, oldest first, after the cursor's day.
pub async fn daily(
    pool: &PgPool,
    o: Owner,
    range: RangeParams,
    after: Option<NaiveDate>,
    limit: i64,
) -> sqlx::Result<Page<DailySummary>> {
    let rows = sqlx::query_as!(
        DailySummary,
        r#"SELECT calendar_date, steps, distance_m, total_kcal, active_kcal, resting_hr, min_hr,
                  max_hr, avg_stress, max_stress, body_battery_high, body_battery_low,
                  body_battery_charged, body_battery_drained, moderate_intensity_min,
                  vigorous_intensity_min
           FROM health_garmin_daily_summaries
           WHERE tenant_id = $1 AND user_id = $2
             AND ($3::date IS NULL OR calendar_date >= $3)
             AND ($4::date IS NULL OR calendar_date <= $4)
             AND ($5::date IS NULL OR calendar_date > $5)
           ORDER BY calendar_date
           LIMIT $6"#,
        o.tenant_id,
        o.user_id,
        range.from,
        range.to,
        after,
        limit + 1,
    )
    .fetch_all(pool)
    .await?;
    Ok(page::page(rows, limit, |r| r.calendar_date.to_string()))
}

/// Nights in the range, oldest first.
pub async fn sleep(
    pool: &PgPool,
    o: Owner,
    range: RangeParams,
    after: Option<NaiveDate>,
    limit: i64,
) -> sqlx::Result<Page<Sleep>> {
    let rows = sqlx::query_as!(
        Sleep,
        r#"SELECT calendar_date, sleep_start, sleep_end, deep_s, light_s, rem_s, awake_s,
                  unmeasurable_s, asleep_s AS "asleep_s!", score, quality_score, avg_respiration,
                  avg_sleep_stress, awake_count
           FROM health_garmin_sleep
           WHERE tenant_id = $1 AND user_id = $2
             AND ($3::date IS NULL OR calendar_date >= $3)
             AND ($4::date IS NULL OR calendar_date <= $4)
             AND ($5::date IS NULL OR calendar_date > $5)
           ORDER BY calendar_date
           LIMIT $6"#,
        o.tenant_id,
        o.user_id,
        range.from,
        range.to,
        after,
        limit + 1,
    )
    .fetch_all(pool)
    .await?;
    Ok(page::page(rows, limit, |r| r.calendar_date.to_string()))
}

/// HRV nights in the range, oldest first.
pub async fn hrv(
    pool: &PgPool,
    o: Owner,
    range: RangeParams,
    after: Option<NaiveDate>,
    limit: i64,
) -> sqlx::Result<Page<Hrv>> {
    let rows = sqlx::query_as!(
        Hrv,
        r#"SELECT calendar_date, last_night_avg, weekly_avg, baseline_low, baseline_high, status
           FROM health_garmin_hrv
           WHERE tenant_id = $1 AND user_id = $2
             AND ($3::date IS NULL OR calendar_date >= $3)
             AND ($4::date IS NULL OR calendar_date <= $4)
             AND ($5::date IS NULL OR calendar_date > $5)
           ORDER BY calendar_date
           LIMIT $6"#,
        o.tenant_id,
        o.user_id,
        range.from,
        range.to,
        after,
        limit + 1,
    )
    .fetch_all(pool)
    .await?;
    Ok(page::page(rows, limit, |r| r.calendar_date.to_string()))
}

/// Weigh-ins whose UTC day is in the range, oldest first.
pub async fn body(
    pool: &PgPool,
    o: Owner,
    range: RangeParams,
    after: Option<DateTime<Utc>>,
    limit: i64,
) -> sqlx::Result<Page<BodyComposition>> {
    let rows = sqlx::query_as!(
        BodyComposition,
        r#"SELECT measured_at, weight_kg, bmi, body_fat_pct, body_water_pct, muscle_mass_kg,
                  bone_mass_kg
           FROM health_garmin_body_composition
           WHERE tenant_id = $1 AND user_id = $2
             AND ($3::date IS NULL OR measured_at >= $3::date::timestamp AT TIME ZONE 'UTC')
             AND ($4::date IS NULL OR measured_at < ($4::date + 1)::timestamp AT TIME ZONE 'UTC')
             AND ($5::timestamptz IS NULL OR measured_at > $5)
           ORDER BY measured_at
           LIMIT $6"#,
        o.tenant_id,
        o.user_id,
        range.from,
        range.to,
        after,
        limit + 1,
    )
    .fetch_all(pool)
    .await?;
    Ok(page::page(rows, limit, |r| page::instant(r.measured_at)))
}

/// The columns of an [`Activity`].
const ACTIVITY_COLUMNS: &str = "SELECT id, source, external_id, name, activity_type, started_at, \
     activity_date, duration_s, distance_m, calories, avg_hr, max_hr, hr_zones_s, \
     health_training_load(duration_s, hr_zones_s) AS training_load \
     FROM health_garmin_activities";

/// Workouts whose local day is in the range, optionally of one type, oldest first, after the
/// cursor's `(started_at, id)`.
pub async fn activities(
    pool: &PgPool,
    o: Owner,
    range: RangeParams,
    activity_type: Option<&str>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Page<Activity>> {
    let mut q = QueryBuilder::<Postgres>::new(ACTIVITY_COLUMNS);
    q.push(" WHERE tenant_id = ")
        .push_bind(o.tenant_id)
        .push(" AND user_id = ")
        .push_bind(o.user_id);
    if let Some(from) = range.from {
        q.push(" AND activity_date >= ").push_bind(from);
    }
    if let Some(to) = range.to {
        q.push(" AND activity_date <= ").push_bind(to);
    }
    if let Some(kind) = activity_type {
        q.push(" AND activity_type = ")
            .push_bind(kind.to_lowercase());
    }
    if let Some((at, id)) = after {
        q.push(" AND (started_at, id) > (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY started_at, id LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<Activity> = q.build_query_as().fetch_all(pool).await?;
    Ok(page::page(rows, limit, |a| {
        format!("{}|{}", page::instant(a.started_at), a.id)
    }))
}

/// One workout of the owner.
pub async fn activity(pool: &PgPool, o: Owner, id: Uuid) -> sqlx::Result<Option<Activity>> {
    sqlx::query_as!(
        Activity,
        r#"SELECT id, source, external_id, name, activity_type, started_at, activity_date,
                  duration_s, distance_m, calories, avg_hr, max_hr, hr_zones_s,
                  health_training_load(duration_s, hr_zones_s) AS "training_load!"
           FROM health_garmin_activities
           WHERE tenant_id = $1 AND user_id = $2 AND id = $3"#,
        o.tenant_id,
        o.user_id,
        id,
    )
    .fetch_optional(pool)
    .await
}

/// The latest daily summary on or before `day`.
pub async fn latest_daily(
    pool: &PgPool,
    o: Owner,
    day: NaiveDate,
) -> sqlx::Result<Option<DailySummary>> {
    sqlx::query_as!(
        DailySummary,
        r#"SELECT calendar_date, steps, distance_m, total_kcal, active_kcal, resting_hr, min_hr,
                  max_hr, avg_stress, max_stress, body_battery_high, body_battery_low,
                  body_battery_charged, body_battery_drained, moderate_intensity_min,
                  vigorous_intensity_min
           FROM health_garmin_daily_summaries
           WHERE tenant_id = $1 AND user_id = $2 AND calendar_date <= $3
           ORDER BY calendar_date DESC LIMIT 1"#,
        o.tenant_id,
        o.user_id,
        day,
    )
    .fetch_optional(pool)
    .await
}

/// The latest night on or before `day`.
pub async fn latest_sleep(pool: &PgPool, o: Owner, day: NaiveDate) -> sqlx::Result<Option<Sleep>> {
    sqlx::query_as!(
        Sleep,
        r#"SELECT calendar_date, sleep_start, sleep_end, deep_s, light_s, rem_s, awake_s,
                  unmeasurable_s, asleep_s AS "asleep_s!", score, quality_score, avg_respiration,
                  avg_sleep_stress, awake_count
           FROM health_garmin_sleep
           WHERE tenant_id = $1 AND user_id = $2 AND calendar_date <= $3
           ORDER BY calendar_date DESC LIMIT 1"#,
        o.tenant_id,
        o.user_id,
        day,
    )
    .fetch_optional(pool)
    .await
}

/// The latest HRV night on or before `day`.
pub async fn latest_hrv(pool: &PgPool, o: Owner, day: NaiveDate) -> sqlx::Result<Option<Hrv>> {
    sqlx::query_as!(
        Hrv,
        r#"SELECT calendar_date, last_night_avg, weekly_avg, baseline_low, baseline_high, status
           FROM health_garmin_hrv
           WHERE tenant_id = $1 AND user_id = $2 AND calendar_date <= $3
           ORDER BY calendar_date DESC LIMIT 1"#,
        o.tenant_id,
        o.user_id,
        day,
    )
    .fetch_optional(pool)
    .await
}

/// The latest weigh-in on or before the end of `day` (UTC).
pub async fn latest_body(
    pool: &PgPool,
    o: Owner,
    day: NaiveDate,
) -> sqlx::Result<Option<BodyComposition>> {
    sqlx::query_as!(
        BodyComposition,
        r#"SELECT measured_at, weight_kg, bmi, body_fat_pct, body_water_pct, muscle_mass_kg,
                  bone_mass_kg
           FROM health_garmin_body_composition
           WHERE tenant_id = $1 AND user_id = $2
             AND measured_at < ($3::date + 1)::timestamp AT TIME ZONE 'UTC'
           ORDER BY measured_at DESC LIMIT 1"#,
        o.tenant_id,
        o.user_id,
        day,
    )
    .fetch_optional(pool)
    .await
}
