//! Reading the UFC catalogue: fighter and event lists with their filters, details, and a user's
//! subscriptions. Catalogue rows belong to the tenant; subscriptions to one user of it.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Bout, Event, EventDetail, Fighter, FighterBout, FighterDetail, Subscription};
use crate::page::{self, Page, RangeParams};
use crate::scope::Owner;

/// The columns of a [`Fighter`] as seen by user `$2` (`f` is the fighter).
const FIGHTER_COLUMNS: &str = "f.id, f.name, f.nickname, f.division, f.wins, f.losses, f.draws, \
     f.no_contests, f.height_cm, f.reach_cm, f.stance, f.country, f.date_of_birth, \
     f.sig_strikes_per_min, f.strike_accuracy_pct, f.takedown_avg, f.takedown_accuracy_pct, \
     f.submission_avg";

/// Filters of the fighter list.
#[derive(Debug, Clone, Default)]
pub struct FighterFilter {
    /// Part of the name or nickname (case-insensitive).
    pub q: Option<String>,
    /// Weight class (case-insensitive).
    pub division: Option<String>,
    /// Stance (case-insensitive).
    pub stance: Option<String>,
    /// Country (case-insensitive).
    pub country: Option<String>,
    /// At least this many wins.
    pub min_wins: Option<i32>,
    /// Only fighters the caller follows.
    pub followed: bool,
}

fn push_followed(q: &mut QueryBuilder<Postgres>, o: Owner) {
    q.push(", EXISTS (SELECT 1 FROM health_ufc_subscriptions s WHERE s.tenant_id = ")
        .push_bind(o.tenant_id)
        .push(" AND s.user_id = ")
        .push_bind(o.user_id)
        .push(" AND s.fighter_id = f.id) AS followed");
}

/// `%text%` for `ILIKE`, with the pattern characters of `text` escaped.
fn contains(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The tenant's fighters matching the filter, by name, keyset-paginated on `(lower(name), id)`.
pub async fn fighters(
    pool: &PgPool,
    o: Owner,
    f: &FighterFilter,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> sqlx::Result<Page<Fighter>> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT ");
    q.push(FIGHTER_COLUMNS);
    push_followed(&mut q, o);
    q.push(" FROM health_ufc_fighters f WHERE f.tenant_id = ")
        .push_bind(o.tenant_id);
    if let Some(text) = &f.q {
        let pattern = contains(text);
        q.push(" AND (f.name ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR f.nickname ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
    if let Some(division) = &f.division {
        q.push(" AND lower(f.division) = lower(")
            .push_bind(division.clone())
            .push(")");
    }
    if let Some(stance) = &f.stance {
        q.push(" AND lower(f.stance) = lower(")
            .push_bind(stance.clone())
            .push(")");
    }
    if let Some(country) = &f.country {
        q.push(" AND lower(f.country) = lower(")
            .push_bind(country.clone())
            .push(")");
    }
    if let Some(min) = f.min_wins {
        q.push(" AND f.wins >= ").push_bind(min);
    }
    if f.followed {
        q.push(" AND EXISTS (SELECT 1 FROM health_ufc_subscriptions s WHERE s.tenant_id = ")
            .push_bind(o.tenant_id)
            .push(" AND s.user_id = ")
            .push_bind(o.user_id)
            .push(" AND s.fighter_id = f.id)");
    }
    if let Some((name, id)) = after {
        q.push(" AND (lower(f.name), f.id) > (")
            .push_bind(name)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY lower(f.name), f.id LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<Fighter> = q.build_query_as().fetch_all(pool).await?;
    Ok(page::page(rows, limit, |f| {
        format!("{}|{}", f.name.to_lowercase(), f.id)
    }))
}

async fn fighter(pool: &PgPool, o: Owner, id: Uuid) -> sqlx::Result<Option<Fighter>> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT ");
    q.push(FIGHTER_COLUMNS);
    push_followed(&mut q, o);
    q.push(" FROM health_ufc_fighters f WHERE f.tenant_id = ")
        .push_bind(o.tenant_id)
        .push(" AND f.id = ")
        .push_bind(id);
    q.build_query_as().fetch_optional(pool).await
}

/// One fighter of the tenant with their fights, newest first.
pub async fn fighter_detail(
    pool: &PgPool,
    o: Owner,
    id: Uuid,
) -> sqlx::Result<Option<FighterDetail>> {
    let Some(fighter) = fighter(pool, o, id).await? else {
        return Ok(None);
    };
    let fights = sqlx::query_as!(
        FighterBout,
        r#"SELECT x.id AS fight_id, e.id AS event_id, e.name AS event_name, e.event_date,
                  opp.id AS opponent_id, opp.name AS opponent_name,
                  CASE WHEN x.outcome = 'win' AND x.winner_id = $2 THEN 'win'
                       WHEN x.outcome = 'win' THEN 'loss'
                       ELSE x.outcome END AS result,
                  x.method, x.round, x.time, x.weight_class, x.title_fight
           FROM health_ufc_fights x
           JOIN health_ufc_events e ON e.id = x.event_id
           JOIN health_ufc_fighters opp
             ON opp.id = CASE WHEN x.fighter_a_id = $2 THEN x.fighter_b_id ELSE x.fighter_a_id END
           WHERE x.tenant_id = $1 AND (x.fighter_a_id = $2 OR x.fighter_b_id = $2)
           ORDER BY e.event_date DESC, x.bout_order NULLS LAST"#,
        o.tenant_id,
        id,
    )
    .fetch_all(pool)
    .await?;
    Ok(Some(FighterDetail { fighter, fights }))
}

/// The tenant's events in the range (optionally matching a name), newest first, keyset-paginated
/// on `(event_date, id)`.
pub async fn events(
    pool: &PgPool,
    o: Owner,
    range: RangeParams,
    text: Option<&str>,
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> sqlx::Result<Page<Event>> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT e.id, e.name, e.event_date, e.location, \
           (SELECT count(*) FROM health_ufc_fights x WHERE x.event_id = e.id) AS fights \
         FROM health_ufc_events e WHERE e.tenant_id = ",
    );
    q.push_bind(o.tenant_id);
    if let Some(from) = range.from {
        q.push(" AND e.event_date >= ").push_bind(from);
    }
    if let Some(to) = range.to {
        q.push(" AND e.event_date <= ").push_bind(to);
    }
    if let Some(text) = text {
        q.push(" AND e.name ILIKE ").push_bind(contains(text));
    }
    if let Some((day, id)) = after {
        q.push(" AND (e.event_date, e.id) < (")
            .push_bind(day)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY e.event_date DESC, e.id DESC LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<Event> = q.build_query_as().fetch_all(pool).await?;
    Ok(page::page(rows, limit, |e| {
        format!("{}|{}", e.event_date, e.id)
    }))
}

/// One event of the tenant with its card.
pub async fn event_detail(pool: &PgPool, o: Owner, id: Uuid) -> sqlx::Result<Option<EventDetail>> {
    let event = sqlx::query_as!(
        Event,
        r#"SELECT e.id, e.name, e.event_date, e.location,
                  (SELECT count(*) FROM health_ufc_fights x WHERE x.event_id = e.id) AS "fights!"
           FROM health_ufc_events e WHERE e.tenant_id = $1 AND e.id = $2"#,
        o.tenant_id,
        id,
    )
    .fetch_optional(pool)
    .await?;
    let Some(event) = event else {
        return Ok(None);
    };
    let card = sqlx::query_as!(
        Bout,
        r#"SELECT x.id, a.id AS fighter_a_id, a.name AS fighter_a, b.id AS fighter_b_id,
                  b.name AS fighter_b, x.outcome, x.winner_id, x.method, x.round, x.time,
                  x.weight_class, x.title_fight, x.bout_order
           FROM health_ufc_fights x
           JOIN health_ufc_fighters a ON a.id = x.fighter_a_id
           JOIN health_ufc_fighters b ON b.id = x.fighter_b_id
           WHERE x.tenant_id = $1 AND x.event_id = $2
           ORDER BY x.bout_order NULLS LAST, a.name"#,
        o.tenant_id,
        id,
    )
    .fetch_all(pool)
    .await?;
    Ok(Some(EventDetail { event, card }))
}

/// Follows a fighter of the tenant (idempotent); `None` when the tenant has no such fighter.
pub async fn follow(
    pool: &PgPool,
    o: Owner,
    fighter_id: Uuid,
) -> sqlx::Result<Option<Subscription>> {
    let followed = sqlx::query_scalar!(
        r#"WITH f AS (SELECT id FROM health_ufc_fighters WHERE tenant_id = $1 AND id = $3),
           ins AS (
             INSERT INTO health_ufc_subscriptions (tenant_id, user_id, fighter_id)
             SELECT $1, $2, id FROM f
             ON CONFLICT (tenant_id, user_id, fighter_id) DO NOTHING
             RETURNING created_at
           )
           SELECT created_at AS "created_at!" FROM ins
           UNION ALL
           SELECT s.created_at FROM health_ufc_subscriptions s
           WHERE s.tenant_id = $1 AND s.user_id = $2 AND s.fighter_id = $3"#,
        o.tenant_id,
        o.user_id,
        fighter_id,
    )
    .fetch_optional(pool)
    .await?;
    let Some(followed_at) = followed else {
        return Ok(None);
    };
    Ok(fighter(pool, o, fighter_id)
        .await?
        .map(|fighter| Subscription {
            fighter,
            followed_at,
        }))
}

/// Stops following; false when the caller did not follow that fighter.
pub async fn unfollow(pool: &PgPool, o: Owner, fighter_id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM health_ufc_subscriptions WHERE tenant_id = $1 AND user_id = $2 AND fighter_id = $3",
        o.tenant_id,
        o.user_id,
        fighter_id,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The fighters the caller follows, most recently followed first, keyset-paginated on
/// `(followed_at, fighter id)`.
pub async fn subscriptions(
    pool: &PgPool,
    o: Owner,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Page<Subscription>> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT ");
    q.push(FIGHTER_COLUMNS);
    q.push(", true AS followed, s.created_at AS followed_at FROM health_ufc_subscriptions s JOIN health_ufc_fighters f ON f.id = s.fighter_id WHERE s.tenant_id = ")
        .push_bind(o.tenant_id)
        .push(" AND s.user_id = ")
        .push_bind(o.user_id)
        .push(" AND f.tenant_id = ")
        .push_bind(o.tenant_id);
    if let Some((at, id)) = after {
        q.push(" AND (s.created_at, s.fighter_id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY s.created_at DESC, s.fighter_id DESC LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<FollowedRow> = q.build_query_as().fetch_all(pool).await?;
    let rows = rows
        .into_iter()
        .map(|r| Subscription {
            followed_at: r.followed_at,
            fighter: r.fighter,
        })
        .collect();
    Ok(page::page(rows, limit, |s: &Subscription| {
        format!("{}|{}", page::instant(s.followed_at), s.fighter.id)
    }))
}

#[derive(sqlx::FromRow)]
struct FollowedRow {
    #[sqlx(flatten)]
    fighter: Fighter,
    followed_at: DateTime<Utc>,
}
