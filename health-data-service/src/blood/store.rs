//! Blood tests in PostgreSQL: the all-or-nothing CSV import, panel and marker lists with their
//! filters, a panel with its markers, a marker's trend, and the flagged latest values.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::csv::Row;
use super::{BloodImport, Marker, MarkerName, Panel, PanelDetail, Trend, TrendPoint};
use crate::page::{self, Page, RangeParams};
use crate::report::Counts;
use crate::scope::Owner;

/// Writes every row in one transaction: panels by `(date, lab)`, markers by panel and name.
pub async fn import(pool: &PgPool, o: Owner, rows: &[Row]) -> sqlx::Result<BloodImport> {
    let mut panels: BTreeMap<(NaiveDate, &str), Vec<&Row>> = BTreeMap::new();
    for r in rows {
        panels
            .entry((r.taken_on, r.lab.as_str()))
            .or_default()
            .push(r);
    }
    let mut tx = pool.begin().await?;
    let mut report = BloodImport {
        panels: panels.len(),
        panels_created: 0,
        markers: Counts::default(),
    };
    for ((taken_on, lab), markers) in &panels {
        let name = markers.iter().find_map(|m| m.panel.as_deref());
        let panel = sqlx::query!(
            r#"INSERT INTO health_blood_panels AS t (id, tenant_id, user_id, taken_on, lab, name)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (tenant_id, user_id, taken_on, lab)
                 DO UPDATE SET name = COALESCE(EXCLUDED.name, t.name)
               RETURNING id, (xmax = 0) AS "created!""#,
            Uuid::now_v7(),
            o.tenant_id,
            o.user_id,
            taken_on,
            lab,
            name,
        )
        .fetch_one(&mut *tx)
        .await?;
        if panel.created {
            report.panels_created += 1;
        }
        for m in markers {
            let outcome = sqlx::query_scalar!(
                r#"INSERT INTO health_blood_markers AS t (id, tenant_id, user_id, panel_id,
                     taken_on, name, category, value, unit, ref_low, ref_high)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                   ON CONFLICT (panel_id, lower(name)) DO UPDATE SET
                     name = EXCLUDED.name, category = EXCLUDED.category, value = EXCLUDED.value,
                     unit = EXCLUDED.unit, ref_low = EXCLUDED.ref_low,
                     ref_high = EXCLUDED.ref_high, updated_at = now()
                   WHERE (t.name, t.category, t.value, t.unit, t.ref_low, t.ref_high)
                     IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.category, EXCLUDED.value,
                                       EXCLUDED.unit, EXCLUDED.ref_low, EXCLUDED.ref_high)
                   RETURNING (xmax = 0) AS "inserted!""#,
                Uuid::now_v7(),
                o.tenant_id,
                o.user_id,
                panel.id,
                taken_on,
                m.marker,
                m.category,
                m.value,
                m.unit,
                m.ref_low,
                m.ref_high,
            )
            .fetch_optional(&mut *tx)
            .await?;
            report.markers.add(outcome);
        }
    }
    tx.commit().await?;
    Ok(report)
}

/// Panels in the range (optionally of one lab), oldest first, keyset-paginated on `(date, id)`.
pub async fn panels(
    pool: &PgPool,
    o: Owner,
    range: RangeParams,
    lab: Option<&str>,
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> sqlx::Result<Page<Panel>> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT p.id, p.taken_on, p.lab, p.name, \
           (SELECT count(*) FROM health_blood_markers m WHERE m.panel_id = p.id) AS markers, \
           (SELECT count(*) FROM health_blood_markers m \
             WHERE m.panel_id = p.id AND m.flag IN ('low', 'high')) AS out_of_range \
         FROM health_blood_panels p WHERE p.tenant_id = ",
    );
    q.push_bind(o.tenant_id)
        .push(" AND p.user_id = ")
        .push_bind(o.user_id);
    if let Some(from) = range.from {
        q.push(" AND p.taken_on >= ").push_bind(from);
    }
    if let Some(to) = range.to {
        q.push(" AND p.taken_on <= ").push_bind(to);
    }
    if let Some(lab) = lab {
        q.push(" AND lower(p.lab) = lower(")
            .push_bind(lab.to_owned())
            .push(")");
    }
    if let Some((day, id)) = after {
        q.push(" AND (p.taken_on, p.id) > (")
            .push_bind(day)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY p.taken_on, p.id LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<Panel> = q.build_query_as().fetch_all(pool).await?;
    Ok(page::page(rows, limit, |p| {
        format!("{}|{}", p.taken_on, p.id)
    }))
}

/// One panel of the owner with its markers.
pub async fn panel(pool: &PgPool, o: Owner, id: Uuid) -> sqlx::Result<Option<PanelDetail>> {
    let panel = sqlx::query_as!(
        Panel,
        r#"SELECT p.id, p.taken_on, p.lab, p.name,
             (SELECT count(*) FROM health_blood_markers m WHERE m.panel_id = p.id) AS "markers!",
             (SELECT count(*) FROM health_blood_markers m
               WHERE m.panel_id = p.id AND m.flag IN ('low', 'high')) AS "out_of_range!"
           FROM health_blood_panels p
           WHERE p.tenant_id = $1 AND p.user_id = $2 AND p.id = $3"#,
        o.tenant_id,
        o.user_id,
        id,
    )
    .fetch_optional(pool)
    .await?;
    let Some(panel) = panel else {
        return Ok(None);
    };
    let results = sqlx::query_as!(
        Marker,
        r#"SELECT m.id, m.panel_id, m.taken_on, p.lab, m.name, m.category, m.value, m.unit,
                  m.ref_low, m.ref_high, m.flag
           FROM health_blood_markers m JOIN health_blood_panels p ON p.id = m.panel_id
           WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.panel_id = $3
           ORDER BY m.category NULLS LAST, lower(m.name)"#,
        o.tenant_id,
        o.user_id,
        id,
    )
    .fetch_all(pool)
    .await?;
    Ok(Some(PanelDetail { panel, results }))
}

/// Filters of the marker list.
#[derive(Debug, Clone, Default)]
pub struct MarkerFilter {
    /// Days.
    pub range: RangeParams,
    /// One marker (case-insensitive).
    pub marker: Option<String>,
    /// One category (case-insensitive).
    pub category: Option<String>,
    /// Only values outside their reference range.
    pub out_of_range: bool,
    /// Only `low`, `high` or `normal` values.
    pub flag: Option<String>,
}

/// Marker values matching the filter, oldest first, keyset-paginated on `(date, id)`.
pub async fn markers(
    pool: &PgPool,
    o: Owner,
    f: &MarkerFilter,
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> sqlx::Result<Page<Marker>> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT m.id, m.panel_id, m.taken_on, p.lab, m.name, m.category, m.value, m.unit, \
           m.ref_low, m.ref_high, m.flag \
         FROM health_blood_markers m JOIN health_blood_panels p ON p.id = m.panel_id \
         WHERE m.tenant_id = ",
    );
    q.push_bind(o.tenant_id)
        .push(" AND m.user_id = ")
        .push_bind(o.user_id);
    if let Some(from) = f.range.from {
        q.push(" AND m.taken_on >= ").push_bind(from);
    }
    if let Some(to) = f.range.to {
        q.push(" AND m.taken_on <= ").push_bind(to);
    }
    if let Some(marker) = &f.marker {
        q.push(" AND lower(m.name) = lower(")
            .push_bind(marker.clone())
            .push(")");
    }
    if let Some(category) = &f.category {
        q.push(" AND lower(m.category) = lower(")
            .push_bind(category.clone())
            .push(")");
    }
    if f.out_of_range {
        q.push(" AND m.flag IN ('low', 'high')");
    }
    if let Some(flag) = &f.flag {
        q.push(" AND m.flag = ").push_bind(flag.to_lowercase());
    }
    if let Some((day, id)) = after {
        q.push(" AND (m.taken_on, m.id) > (")
            .push_bind(day)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY m.taken_on, m.id LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<Marker> = q.build_query_as().fetch_all(pool).await?;
    Ok(page::page(rows, limit, |m| {
        format!("{}|{}", m.taken_on, m.id)
    }))
}

/// Every marker the owner has values of, by name.
pub async fn marker_names(pool: &PgPool, o: Owner) -> sqlx::Result<Vec<MarkerName>> {
    sqlx::query_as!(
        MarkerName,
        r#"SELECT DISTINCT ON (lower(name)) name, category,
                  count(*) OVER (PARTITION BY lower(name)) AS "count!",
                  max(taken_on) OVER (PARTITION BY lower(name)) AS "last_date!"
           FROM health_blood_markers
           WHERE tenant_id = $1 AND user_id = $2
           ORDER BY lower(name), taken_on DESC"#,
        o.tenant_id,
        o.user_id,
    )
    .fetch_all(pool)
    .await
}

/// One marker's values over the range, oldest first, with min, max, latest and change.
pub async fn trend(
    pool: &PgPool,
    o: Owner,
    marker: &str,
    range: RangeParams,
) -> sqlx::Result<Trend> {
    let rows = sqlx::query!(
        r#"SELECT m.name, m.taken_on, m.value, m.unit, m.ref_low, m.ref_high, m.flag, p.lab,
                  min(m.value) OVER () AS "min!", max(m.value) OVER () AS "max!",
                  last_value(m.value) OVER w - first_value(m.value) OVER w AS "change!",
                  last_value(m.value) OVER w AS "latest!",
                  count(*) FILTER (WHERE m.flag IN ('low', 'high')) OVER () AS "out_of_range!"
           FROM health_blood_markers m JOIN health_blood_panels p ON p.id = m.panel_id
           WHERE m.tenant_id = $1 AND m.user_id = $2 AND lower(m.name) = lower($3)
             AND ($4::date IS NULL OR m.taken_on >= $4)
             AND ($5::date IS NULL OR m.taken_on <= $5)
           WINDOW w AS (ORDER BY m.taken_on, m.id
                        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
           ORDER BY m.taken_on, m.id"#,
        o.tenant_id,
        o.user_id,
        marker,
        range.from,
        range.to,
    )
    .fetch_all(pool)
    .await?;
    let first = rows.first();
    Ok(Trend {
        // The name as last written, when there are values.
        marker: rows
            .last()
            .map_or_else(|| marker.to_owned(), |r| r.name.clone()),
        latest: first.map(|r| r.latest),
        min: first.map(|r| r.min),
        max: first.map(|r| r.max),
        change: first.map(|r| r.change),
        out_of_range: first.map_or(0, |r| r.out_of_range),
        points: rows
            .into_iter()
            .map(|r| TrendPoint {
                date: r.taken_on,
                value: r.value,
                unit: r.unit,
                ref_low: r.ref_low,
                ref_high: r.ref_high,
                flag: r.flag,
                lab: r.lab,
            })
            .collect(),
    })
}

/// The latest value of every marker measured on or before `day` that is outside its range.
pub async fn flagged_latest(pool: &PgPool, o: Owner, day: NaiveDate) -> sqlx::Result<Vec<Marker>> {
    sqlx::query_as!(
        Marker,
        r#"SELECT id AS "id!", panel_id AS "panel_id!", taken_on AS "taken_on!", lab AS "lab!",
                  name AS "name!", category, value AS "value!", unit AS "unit!", ref_low,
                  ref_high, flag
           FROM (SELECT DISTINCT ON (lower(m.name)) m.id, m.panel_id, m.taken_on, p.lab, m.name,
                        m.category, m.value, m.unit, m.ref_low, m.ref_high, m.flag
                 FROM health_blood_markers m JOIN health_blood_panels p ON p.id = m.panel_id
                 WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.taken_on <= $3
                 ORDER BY lower(m.name), m.taken_on DESC) latest
           WHERE flag IN ('low', 'high')
           ORDER BY name"#,
        o.tenant_id,
        o.user_id,
        day,
    )
    .fetch_all(pool)
    .await
}
