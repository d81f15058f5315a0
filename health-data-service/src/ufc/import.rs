//! Writing the UFC catalogue: the fighters and fights CSV files, each in one transaction, keyed by
//! name (fighters, events) and by event and corners (fights), so a re-import changes nothing.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use super::UfcImport;
use super::csv::{FightRow, FighterRow, Outcome};
use crate::report::Counts;
use crate::scope::Owner;

/// Writes the fighters file in one transaction (by name within the tenant).
pub async fn fighters(pool: &PgPool, o: Owner, rows: &[FighterRow]) -> sqlx::Result<UfcImport> {
    let mut tx = pool.begin().await?;
    let mut counts = Counts::default();
    for f in rows {
        let [wins, losses, draws, no_contests] = f.record;
        let [slpm, acc, td, td_acc, sub] = f.stats;
        let outcome = sqlx::query_scalar!(
            r#"INSERT INTO health_ufc_fighters AS t (id, tenant_id, imported_by, name, nickname,
                 division, wins, losses, draws, no_contests, height_cm, reach_cm, stance, country,
                 date_of_birth, sig_strikes_per_min, strike_accuracy_pct, takedown_avg,
                 takedown_accuracy_pct, submission_avg)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                       $18, $19, $20)
               ON CONFLICT (tenant_id, lower(name)) DO UPDATE SET
                 imported_by = EXCLUDED.imported_by, name = EXCLUDED.name,
                 nickname = EXCLUDED.nickname, division = EXCLUDED.division,
                 wins = EXCLUDED.wins, losses = EXCLUDED.losses, draws = EXCLUDED.draws,
                 no_contests = EXCLUDED.no_contests, height_cm = EXCLUDED.height_cm,
                 reach_cm = EXCLUDED.reach_cm, stance = EXCLUDED.stance,
                 country = EXCLUDED.country, date_of_birth = EXCLUDED.date_of_birth,
                 sig_strikes_per_min = EXCLUDED.sig_strikes_per_min,
                 strike_accuracy_pct = EXCLUDED.strike_accuracy_pct,
                 takedown_avg = EXCLUDED.takedown_avg,
                 takedown_accuracy_pct = EXCLUDED.takedown_accuracy_pct,
                 submission_avg = EXCLUDED.submission_avg, updated_at = now()
               WHERE (t.name, t.nickname, t.division, t.wins, t.losses, t.draws, t.no_contests,
                      t.height_cm, t.reach_cm, t.stance, t.country, t.date_of_birth,
                      t.sig_strikes_per_min, t.strike_accuracy_pct, t.takedown_avg,
                      t.takedown_accuracy_pct, t.submission_avg)
                 IS DISTINCT FROM
                     (EXCLUDED.name, EXCLUDED.nickname, EXCLUDED.division, EXCLUDED.wins,
                      EXCLUDED.losses, EXCLUDED.draws, EXCLUDED.no_contests, EXCLUDED.height_cm,
                      EXCLUDED.reach_cm, EXCLUDED.stance, EXCLUDED.country,
                      EXCLUDED.date_of_birth, EXCLUDED.sig_strikes_per_min,
                      EXCLUDED.strike_accuracy_pct, EXCLUDED.takedown_avg,
                      EXCLUDED.takedown_accuracy_pct, EXCLUDED.submission_avg)
               RETURNING (xmax = 0) AS "inserted!""#,
            Uuid::now_v7(),
            o.tenant_id,
            o.user_id,
            f.name,
            f.nickname,
            f.division,
            wins,
            losses,
            draws,
            no_contests,
            f.height_cm,
            f.reach_cm,
            f.stance,
            f.country,
            f.date_of_birth,
            slpm,
            acc,
            td,
            td_acc,
            sub,
        )
        .fetch_optional(&mut *tx)
        .await?;
        counts.add(outcome);
    }
    tx.commit().await?;
    Ok(UfcImport {
        rows: counts,
        events_created: 0,
    })
}

/// The tenant's fighters by lower-case name (to resolve the fights file).
pub async fn catalogue(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<HashMap<String, Uuid>> {
    let rows = sqlx::query!(
        r#"SELECT lower(name) AS "key!", id FROM health_ufc_fighters WHERE tenant_id = $1"#,
        tenant_id
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.key, r.id)).collect())
}

/// Writes the fights file in one transaction: events by name, fights by event and corners.
pub async fn fights(pool: &PgPool, o: Owner, rows: &[FightRow]) -> sqlx::Result<UfcImport> {
    let mut tx = pool.begin().await?;
    let mut counts = Counts::default();
    let mut events: HashMap<String, Uuid> = HashMap::new();
    let mut events_created = 0;
    for f in rows {
        let key = f.event.to_lowercase();
        let event_id = match events.get(&key) {
            Some(id) => *id,
            None => {
                let e = sqlx::query!(
                    r#"INSERT INTO health_ufc_events AS t (id, tenant_id, imported_by, name,
                         event_date, location)
                       VALUES ($1, $2, $3, $4, $5, $6)
                       ON CONFLICT (tenant_id, lower(name)) DO UPDATE SET
                         event_date = EXCLUDED.event_date,
                         location = COALESCE(EXCLUDED.location, t.location),
                         updated_at = now()
                       RETURNING id, (xmax = 0) AS "created!""#,
                    Uuid::now_v7(),
                    o.tenant_id,
                    o.user_id,
                    f.event,
                    f.event_date,
                    f.location,
                )
                .fetch_one(&mut *tx)
                .await?;
                events_created += usize::from(e.created);
                events.insert(key, e.id);
                e.id
            }
        };
        let (outcome, winner) = match f.outcome {
            Some(Outcome::Win(id)) => (Some("win"), Some(id)),
            Some(Outcome::Draw) => (Some("draw"), None),
            Some(Outcome::NoContest) => (Some("no_contest"), None),
            None => (None, None),
        };
        let written = sqlx::query_scalar!(
            r#"INSERT INTO health_ufc_fights AS t (id, tenant_id, event_id, fighter_a_id,
                 fighter_b_id, outcome, winner_id, weight_class, method, round, time,
                 title_fight, bout_order)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
               ON CONFLICT (tenant_id, event_id, fighter_a_id, fighter_b_id) DO UPDATE SET
                 outcome = EXCLUDED.outcome, winner_id = EXCLUDED.winner_id,
                 weight_class = EXCLUDED.weight_class, method = EXCLUDED.method,
                 round = EXCLUDED.round, time = EXCLUDED.time,
                 title_fight = EXCLUDED.title_fight, bout_order = EXCLUDED.bout_order,
                 updated_at = now()
               WHERE (t.outcome, t.winner_id, t.weight_class, t.method, t.round, t.time,
                      t.title_fight, t.bout_order)
                 IS DISTINCT FROM
                     (EXCLUDED.outcome, EXCLUDED.winner_id, EXCLUDED.weight_class,
                      EXCLUDED.method, EXCLUDED.round, EXCLUDED.time, EXCLUDED.title_fight,
                      EXCLUDED.bout_order)
               RETURNING (xmax = 0) AS "inserted!""#,
            Uuid::now_v7(),
            o.tenant_id,
            event_id,
            f.fighter_a,
            f.fighter_b,
            outcome,
            winner,
            f.weight_class,
            f.method,
            f.round,
            f.time,
            f.title_fight,
            f.bout_order,
        )
        .fetch_optional(&mut *tx)
        .await?;
        counts.add(written);
    }
    tx.commit().await?;
    Ok(UfcImport {
        rows: counts,
        events_created,
    })
}
