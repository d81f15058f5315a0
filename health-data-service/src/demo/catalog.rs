//! The demo's blood panels and UFC catalogue, written through the CSV importers' storage.

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use sqlx::PgPool;

use super::day_rng;
use crate::blood::csv::Row;
use crate::report::Counts;
use crate::scope::Owner;
use crate::ufc::{csv, import, store};

/// A marker of the demo panels: a few sit outside their reference range.
struct MarkerSpec {
    name: &'static str,
    category: &'static str,
    unit: &'static str,
    low: Option<f64>,
    high: Option<f64>,
    typical: f64,
    spread: f64,
}

const fn m(
    name: &'static str,
    category: &'static str,
    unit: &'static str,
    (low, high): (Option<f64>, Option<f64>),
    (typical, spread): (f64, f64),
) -> MarkerSpec {
    MarkerSpec {
        name,
        category,
        unit,
        low,
        high,
        typical,
        spread,
    }
}

#[rustfmt::skip]
const MARKERS: &[MarkerSpec] = &[
    m("Hemoglobin", "blood count", "g/dL", (Some(13.5), Some(17.5)), (15.1, 0.6)),
    m("Hematocrit", "blood count", "%", (Some(40.0), Some(52.0)), (45.0, 1.5)),
    m("White blood cells", "blood count", "10^9/L", (Some(4.0), Some(10.0)), (6.2, 1.0)),
    m("Platelets", "blood count", "10^9/L", (Some(150.0), Some(400.0)), (240.0, 30.0)),
    m("Ferritin", "iron", "ug/L", (Some(30.0), Some(400.0)), (85.0, 25.0)),
    m("Glucose", "metabolic", "mmol/L", (Some(3.9), Some(5.6)), (5.0, 0.4)),
    m("HbA1c", "metabolic", "%", (Some(4.0), Some(5.7)), (5.3, 0.2)),
    m("Total cholesterol", "lipids", "mmol/L", (None, Some(5.2)), (5.0, 0.4)),
    m("LDL cholesterol", "lipids", "mmol/L", (None, Some(3.0)), (3.4, 0.3)),
    m("HDL cholesterol", "lipids", "mmol/L", (Some(1.0), None), (1.5, 0.15)),
    m("Triglycerides", "lipids", "mmol/L", (None, Some(1.7)), (1.1, 0.3)),
    m("Creatinine", "kidney", "umol/L", (Some(62.0), Some(106.0)), (88.0, 8.0)),
    m("ALT", "liver", "U/L", (Some(7.0), Some(55.0)), (28.0, 8.0)),
    m("TSH", "thyroid", "mU/L", (Some(0.4), Some(4.0)), (1.9, 0.5)),
    m("Vitamin D", "vitamins", "nmol/L", (Some(75.0), Some(250.0)), (68.0, 12.0)),
];

/// Three panels within the days: on each day whose day number is a multiple of 30.
pub async fn blood(pool: &PgPool, owner: Owner, days: &[NaiveDate]) -> sqlx::Result<Counts> {
    let mut rows = Vec::new();
    for day in days.iter().filter(|d| d.num_days_from_ce() % 30 == 0) {
        let mut rng = day_rng(owner, *day);
        for (i, spec) in MARKERS.iter().enumerate() {
            let value = spec.typical + rng.random_range(-spec.spread..=spec.spread);
            rows.push(Row {
                line: i as u64 + 2,
                taken_on: *day,
                lab: "Demo Lab".into(),
                panel: Some("Routine check-up".into()),
                marker: spec.name.into(),
                category: Some(spec.category.into()),
                value: (value * 100.0).round() / 100.0,
                unit: spec.unit.into(),
                ref_low: spec.low,
                ref_high: spec.high,
            });
        }
    }
    Ok(crate::blood::store::import(pool, owner, &rows)
        .await?
        .markers)
}

/// The demo's fighters (fictional), in the fighters CSV layout.
const FIGHTERS_CSV: &str = "\
name,nickname,division,wins,losses,stance,country,sig_strikes_per_min,strike_accuracy_pct
Ana Lima,The Hurricane,Flyweight,14,2,Orthodox,Brazil,4.6,51
Bo Chan,Iron,Flyweight,11,4,Southpaw,Canada,3.9,47
Carla Nyberg,Frost,Bantamweight,9,1,Orthodox,Sweden,5.2,55
Dana Okafor,Quiet Storm,Bantamweight,12,3,Switch,Nigeria,4.1,49
Eli Santos,The Engineer,Lightweight,21,5,Orthodox,Portugal,5.8,46
Femi Adeyemi,Lionheart,Lightweight,17,6,Southpaw,Nigeria,4.4,44
Gus Petrov,The Bear,Heavyweight,15,4,Orthodox,Bulgaria,3.1,52
Hugo Marin,El Toro,Heavyweight,10,2,Orthodox,Mexico,2.9,50
";

/// The demo's events and fights, in the fights CSV layout.
const FIGHTS_CSV: &str = "\
event,event_date,location,fighter_a,fighter_b,winner,method,round,time,title_fight,bout_order
Demo Fight Night 1,2024-09-14,Lisbon,Eli Santos,Femi Adeyemi,Eli Santos,Decision,5,5:00,true,1
Demo Fight Night 1,2024-09-14,Lisbon,Ana Lima,Bo Chan,Ana Lima,KO/TKO,2,3:41,false,2
Demo Fight Night 1,2024-09-14,Lisbon,Gus Petrov,Hugo Marin,draw,Decision,3,5:00,false,3
Demo Fight Night 2,2025-02-08,Toronto,Carla Nyberg,Dana Okafor,Carla Nyberg,Submission,3,4:12,true,1
Demo Fight Night 2,2025-02-08,Toronto,Bo Chan,Femi Adeyemi,Bo Chan,Decision,3,5:00,false,2
";

/// The fighters the demo user follows.
const FOLLOWED: [&str; 2] = ["Ana Lima", "Eli Santos"];

/// The catalogue through the CSV importers, and the demo user's subscriptions.
pub async fn ufc(pool: &PgPool, owner: Owner) -> sqlx::Result<(Counts, Counts, Counts)> {
    let invalid = |errors: Vec<crate::error::RowError>| {
        sqlx::Error::Protocol(format!("the demo catalogue does not parse: {errors:?}"))
    };
    let fighters = csv::fighters(FIGHTERS_CSV.as_bytes()).map_err(invalid)?;
    let fighter_counts = import::fighters(pool, owner, &fighters).await?.rows;
    let catalogue = import::catalogue(pool, owner.tenant_id).await?;
    let fights = csv::fights(FIGHTS_CSV.as_bytes(), &catalogue).map_err(invalid)?;
    let fight_counts = import::fights(pool, owner, &fights).await?.rows;
    let followed = store::subscriptions(pool, owner, None, 100).await?.items;
    let mut follows = Counts::default();
    for name in FOLLOWED {
        if let Some(fighter) = catalogue.get(&name.to_lowercase()).copied() {
            let existed = followed.iter().any(|s| s.fighter.id == fighter);
            store::follow(pool, owner, fighter).await?;
            follows.add((!existed).then_some(true));
        }
    }
    Ok((fighter_counts, fight_counts, follows))
}
