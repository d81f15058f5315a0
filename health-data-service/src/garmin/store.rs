//! Writing Garmin records: idempotent upserts on each dataset's natural key. A row whose values
//! did not change is not rewritten, so a re-import reports every record as `unchanged`.

use sqlx::PgConnection;
use uuid::Uuid;

use super::{BodyComposition, DailySummary, Hrv, NewActivity, Records, Sleep};
pub use crate::report::Counts;
use crate::scope::Owner;

/// Writes one file's records; `source` names where wellness rows came from.
pub async fn write(
    conn: &mut PgConnection,
    owner: Owner,
    source: &str,
    records: &Records,
) -> sqlx::Result<Counts> {
    let mut counts = Counts::default();
    match records {
        Records::Daily(rows) => {
            for r in rows {
                counts.add(daily(conn, owner, source, r).await?);
            }
        }
        Records::Sleep(rows) => {
            for r in rows {
                counts.add(sleep(conn, owner, source, r).await?);
            }
        }
        Records::Activities(rows) => {
            for r in rows {
                counts.add(activity(conn, owner, r).await?);
            }
        }
        Records::Hrv(rows) => {
            for r in rows {
                counts.add(hrv(conn, owner, source, r).await?);
            }
        }
        Records::Body(rows) => {
            for r in rows {
                counts.add(body(conn, owner, source, r).await?);
            }
        }
    }
    Ok(counts)
}

// Each upsert returns `Some(true)` for an insert, `Some(false)` for an update, `None` when the
// stored row already had these values (the `WHERE ... IS DISTINCT FROM` skips the write).

async fn daily(
    conn: &mut PgConnection,
    o: Owner,
    source: &str,
    r: &DailySummary,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"INSERT INTO health_garmin_daily_summaries AS t (tenant_id, user_id, calendar_date,
             steps, distance_m, total_kcal, active_kcal, resting_hr, min_hr, max_hr, avg_stress,
             max_stress, body_battery_high, body_battery_low, body_battery_charged,
             body_battery_drained, moderate_intensity_min, vigorous_intensity_min, source)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   $18, $19)
           ON CONFLICT (tenant_id, user_id, calendar_date) DO UPDATE SET
             steps = EXCLUDED.steps, distance_m = EXCLUDED.distance_m,
             total_kcal = EXCLUDED.total_kcal, active_kcal = EXCLUDED.active_kcal,
             resting_hr = EXCLUDED.resting_hr, min_hr = EXCLUDED.min_hr,
             max_hr = EXCLUDED.max_hr, avg_stress = EXCLUDED.avg_stress,
             max_stress = EXCLUDED.max_stress, body_battery_high = EXCLUDED.body_battery_high,
             body_battery_low = EXCLUDED.body_battery_low,
             body_battery_charged = EXCLUDED.body_battery_charged,
             body_battery_drained = EXCLUDED.body_battery_drained,
             moderate_intensity_min = EXCLUDED.moderate_intensity_min,
             vigorous_intensity_min = EXCLUDED.vigorous_intensity_min,
             source = EXCLUDED.source, updated_at = now()
           WHERE (t.steps, t.distance_m, t.total_kcal, t.active_kcal, t.resting_hr, t.min_hr,
                  t.max_hr, t.avg_stress, t.max_stress, t.body_battery_high, t.body_battery_low,
                  t.body_battery_charged, t.body_battery_drained, t.moderate_intensity_min,
                  t.vigorous_intensity_min, t.source)
             IS DISTINCT FROM
                 (EXCLUDED.steps, EXCLUDED.distance_m, EXCLUDED.total_kcal, EXCLUDED.active_kcal,
                  EXCLUDED.resting_hr, EXCLUDED.min_hr, EXCLUDED.max_hr, EXCLUDED.avg_stress,
                  EXCLUDED.max_stress, EXCLUDED.body_battery_high, EXCLUDED.body_battery_low,
                  EXCLUDED.body_battery_charged, EXCLUDED.body_battery_drained,
                  EXCLUDED.moderate_intensity_min, EXCLUDED.vigorous_intensity_min,
                  EXCLUDED.source)
           RETURNING (xmax = 0) AS "inserted!""#,
        o.tenant_id,
        o.user_id,
        r.calendar_date,
        r.steps,
        r.distance_m,
        r.total_kcal,
        r.active_kcal,
        r.resting_hr,
        r.min_hr,
        r.max_hr,
        r.avg_stress,
        r.max_stress,
        r.body_battery_high,
        r.body_battery_low,
        r.body_battery_charged,
        r.body_battery_drained,
        r.moderate_intensity_min,
        r.vigorous_intensity_min,
        source,
    )
    .fetch_optional(conn)
    .await
}

async fn sleep(
    conn: &mut PgConnection,
    o: Owner,
    source: &str,
    r: &Sleep,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"INSERT INTO health_garmin_sleep AS t (tenant_id, user_id, calendar_date, sleep_start,
             sleep_end, deep_s, light_s, rem_s, awake_s, unmeasurable_s, score, quality_score,
             avg_respiration, avg_sleep_stress, awake_count, source)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
           ON CONFLICT (tenant_id, user_id, calendar_date) DO UPDATE SET
             sleep_start = EXCLUDED.sleep_start, sleep_end = EXCLUDED.sleep_end,
             deep_s = EXCLUDED.deep_s, light_s = EXCLUDED.light_s, rem_s = EXCLUDED.rem_s,
             awake_s = EXCLUDED.awake_s, unmeasurable_s = EXCLUDED.unmeasurable_s,
             score = EXCLUDED.score, quality_score = EXCLUDED.quality_score,
             avg_respiration = EXCLUDED.avg_respiration,
             avg_sleep_stress = EXCLUDED.avg_sleep_stress, awake_count = EXCLUDED.awake_count,
             source = EXCLUDED.source, updated_at = now()
           WHERE (t.sleep_start, t.sleep_end, t.deep_s, t.light_s, t.rem_s, t.awake_s,
                  t.unmeasurable_s, t.score, t.quality_score, t.avg_respiration,
                  t.avg_sleep_stress, t.awake_count, t.source)
             IS DISTINCT FROM
                 (EXCLUDED.sleep_start, EXCLUDED.sleep_end, EXCLUDED.deep_s, EXCLUDED.light_s,
                  EXCLUDED.rem_s, EXCLUDED.awake_s, EXCLUDED.unmeasurable_s, EXCLUDED.score,
                  EXCLUDED.quality_score, EXCLUDED.avg_respiration, EXCLUDED.avg_sleep_stress,
                  EXCLUDED.awake_count, EXCLUDED.source)
           RETURNING (xmax = 0) AS "inserted!""#,
        o.tenant_id,
        o.user_id,
        r.calendar_date,
        r.sleep_start,
        r.sleep_end,
        r.deep_s,
        r.light_s,
        r.rem_s,
        r.awake_s,
        r.unmeasurable_s,
        r.score,
        r.quality_score,
        r.avg_respiration,
        r.avg_sleep_stress,
        r.awake_count,
        source,
    )
    .fetch_optional(conn)
    .await
}

/// A workout: by its source and id; else, when another source already has a workout starting at
/// the same instant (the FIT file of an activity also listed in summarizedActivities.json), the
/// values that one lacks are filled in; else a new row.
async fn activity(
    conn: &mut PgConnection,
    o: Owner,
    a: &NewActivity,
) -> sqlx::Result<Option<bool>> {
    let same = sqlx::query_scalar!(
        r#"UPDATE health_garmin_activities AS t SET name = $5, activity_type = $6,
             started_at = $7, activity_date = $8, duration_s = $9, distance_m = $10,
             calories = $11, avg_hr = $12, max_hr = $13, hr_zones_s = $14, updated_at = now()
           WHERE t.tenant_id = $1 AND t.user_id = $2 AND t.source = $3 AND t.external_id = $4
             AND (t.name, t.activity_type, t.started_at, t.activity_date, t.duration_s,
                  t.distance_m, t.calories, t.avg_hr, t.max_hr, t.hr_zones_s)
                 IS DISTINCT FROM ($5, $6, $7, $8, $9, $10, $11, $12, $13, $14::float8[])
           RETURNING true AS "updated!""#,
        o.tenant_id,
        o.user_id,
        a.source,
        a.external_id,
        a.name,
        a.activity_type,
        a.started_at,
        a.activity_date,
        a.duration_s,
        a.distance_m,
        a.calories,
        a.avg_hr,
        a.max_hr,
        a.hr_zones_s.as_deref(),
    )
    .fetch_optional(&mut *conn)
    .await?;
    if same.is_some() {
        return Ok(Some(false));
    }
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM health_garmin_activities
             WHERE tenant_id = $1 AND user_id = $2 AND source = $3 AND external_id = $4)
           AS "exists!""#,
        o.tenant_id,
        o.user_id,
        a.source,
        a.external_id,
    )
    .fetch_one(&mut *conn)
    .await?;
    if exists {
        return Ok(None);
    }
    let filled = sqlx::query_scalar!(
        r#"UPDATE health_garmin_activities AS t SET
             name = COALESCE(t.name, $4), distance_m = COALESCE(t.distance_m, $5),
             calories = COALESCE(t.calories, $6), avg_hr = COALESCE(t.avg_hr, $7),
             max_hr = COALESCE(t.max_hr, $8), hr_zones_s = COALESCE(t.hr_zones_s, $9),
             updated_at = now()
           WHERE t.tenant_id = $1 AND t.user_id = $2 AND t.started_at = $3
             AND (t.name, t.distance_m, t.calories, t.avg_hr, t.max_hr, t.hr_zones_s)
                 IS DISTINCT FROM (COALESCE(t.name, $4), COALESCE(t.distance_m, $5),
                   COALESCE(t.calories, $6), COALESCE(t.avg_hr, $7), COALESCE(t.max_hr, $8),
                   COALESCE(t.hr_zones_s, $9::float8[]))
           RETURNING true AS "filled!""#,
        o.tenant_id,
        o.user_id,
        a.started_at,
        a.name,
        a.distance_m,
        a.calories,
        a.avg_hr,
        a.max_hr,
        a.hr_zones_s.as_deref(),
    )
    .fetch_optional(&mut *conn)
    .await?;
    if filled.is_some() {
        return Ok(Some(false));
    }
    let same_start = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM health_garmin_activities
             WHERE tenant_id = $1 AND user_id = $2 AND started_at = $3) AS "exists!""#,
        o.tenant_id,
        o.user_id,
        a.started_at,
    )
    .fetch_one(&mut *conn)
    .await?;
    if same_start {
        // Another source's row holds this workout; it is never duplicated.
        return Ok(None);
    }
    let inserted = sqlx::query!(
        r#"INSERT INTO health_garmin_activities (id, tenant_id, user_id, source, external_id,
             name, activity_type, started_at, activity_date, duration_s, distance_m, calories,
             avg_hr, max_hr, hr_zones_s)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
           ON CONFLICT (tenant_id, user_id, source, external_id) DO NOTHING"#,
        Uuid::now_v7(),
        o.tenant_id,
        o.user_id,
        a.source,
        a.external_id,
        a.name,
        a.activity_type,
        a.started_at,
        a.activity_date,
        a.duration_s,
        a.distance_m,
        a.calories,
        a.avg_hr,
        a.max_hr,
        a.hr_zones_s.as_deref(),
    )
    .execute(conn)
    .await?;
    // A concurrent import of the same workout won the insert: nothing changed here.
    Ok((inserted.rows_affected() > 0).then_some(true))
}

async fn hrv(
    conn: &mut PgConnection,
    o: Owner,
    source: &str,
    r: &Hrv,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"INSERT INTO health_garmin_hrv AS t (tenant_id, user_id, calendar_date, last_night_avg,
             weekly_avg, baseline_low, baseline_high, status, source)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (tenant_id, user_id, calendar_date) DO UPDATE SET
             last_night_avg = EXCLUDED.last_night_avg, weekly_avg = EXCLUDED.weekly_avg,
             baseline_low = EXCLUDED.baseline_low, baseline_high = EXCLUDED.baseline_high,
             status = EXCLUDED.status, source = EXCLUDED.source, updated_at = now()
           WHERE (t.last_night_avg, t.weekly_avg, t.baseline_low, t.baseline_high, t.status,
                  t.source)
             IS DISTINCT FROM
                 (EXCLUDED.last_night_avg, EXCLUDED.weekly_avg, EXCLUDED.baseline_low,
                  EXCLUDED.baseline_high, EXCLUDED.status, EXCLUDED.source)
           RETURNING (xmax = 0) AS "inserted!""#,
        o.tenant_id,
        o.user_id,
        r.calendar_date,
        r.last_night_avg,
        r.weekly_avg,
        r.baseline_low,
        r.baseline_high,
        r.status,
        source,
    )
    .fetch_optional(conn)
    .await
}

async fn body(
    conn: &mut PgConnection,
    o: Owner,
    source: &str,
    r: &BodyComposition,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"INSERT INTO health_garmin_body_composition AS t (tenant_id, user_id, measured_at,
             weight_kg, bmi, body_fat_pct, body_water_pct, muscle_mass_kg, bone_mass_kg, source)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (tenant_id, user_id, measured_at) DO UPDATE SET
             weight_kg = EXCLUDED.weight_kg, bmi = EXCLUDED.bmi,
             body_fat_pct = EXCLUDED.body_fat_pct, body_water_pct = EXCLUDED.body_water_pct,
             muscle_mass_kg = EXCLUDED.muscle_mass_kg, bone_mass_kg = EXCLUDED.bone_mass_kg,
             source = EXCLUDED.source, updated_at = now()
           WHERE (t.weight_kg, t.bmi, t.body_fat_pct, t.body_water_pct, t.muscle_mass_kg,
                  t.bone_mass_kg, t.source)
             IS DISTINCT FROM
                 (EXCLUDED.weight_kg, EXCLUDED.bmi, EXCLUDED.body_fat_pct,
                  EXCLUDED.body_water_pct, EXCLUDED.muscle_mass_kg, EXCLUDED.bone_mass_kg,
                  EXCLUDED.source)
           RETURNING (xmax = 0) AS "inserted!""#,
        o.tenant_id,
        o.user_id,
        r.measured_at,
        r.weight_kg,
        r.bmi,
        r.body_fat_pct,
        r.body_water_pct,
        r.muscle_mass_kg,
        r.bone_mass_kg,
        source,
    )
    .fetch_optional(conn)
    .await
}
