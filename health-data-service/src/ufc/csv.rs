//! The UFC CSV layouts (docs/health.md): a fighters file (one fighter per row, `name` required)
//! and a fights file (one bout per row, naming its event and two fighters of the catalogue).

use std::collections::HashMap;

use chrono::{NaiveDate, Utc};
use uuid::Uuid;

use crate::csvfile::{self, Layout};
use crate::error::RowError;
use crate::text::{MAX_LABEL_CHARS, MAX_NAME_CHARS};

/// The fighters file: its required column and the lengths of its text columns.
const FIGHTERS: Layout<'static> = Layout {
    required: &["name"],
    max_chars: &[
        ("name", MAX_NAME_CHARS),
        ("nickname", MAX_NAME_CHARS),
        ("division", MAX_LABEL_CHARS),
        ("stance", MAX_LABEL_CHARS),
        ("country", MAX_LABEL_CHARS),
    ],
};

/// The fights file: its required columns and the lengths of its text columns.
const FIGHTS: Layout<'static> = Layout {
    required: &["event", "event_date", "fighter_a", "fighter_b"],
    max_chars: &[
        ("event", MAX_NAME_CHARS),
        ("location", MAX_NAME_CHARS),
        ("fighter_a", MAX_NAME_CHARS),
        ("fighter_b", MAX_NAME_CHARS),
        ("winner", MAX_NAME_CHARS),
        ("method", MAX_LABEL_CHARS),
        ("weight_class", MAX_LABEL_CHARS),
        ("time", 10),
    ],
};

/// The largest win, loss, draw or no-contest count.
const MAX_RECORD: i32 = 1000;
/// Height, cm: the shortest and tallest plausible fighter.
const HEIGHT_CM: (f64, f64) = (100.0, 250.0);
/// Reach, cm.
const REACH_CM: (f64, f64) = (100.0, 275.0);
/// Rates (strikes per minute, takedowns and submissions per 15 minutes): non-negative and far
/// above any real career, so only nonsense is refused.
const MAX_RATE: f64 = 1000.0;
/// The career statistics and their ranges: rates, and percentages 0–100.
const STATS: [(&str, f64, f64); 5] = [
    ("sig_strikes_per_min", 0.0, MAX_RATE),
    ("strike_accuracy_pct", 0.0, 100.0),
    ("takedown_avg", 0.0, MAX_RATE),
    ("takedown_accuracy_pct", 0.0, 100.0),
    ("submission_avg", 0.0, MAX_RATE),
];
/// The earliest date of birth.
const BORN_AFTER: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(day) => day,
    None => NaiveDate::MIN,
};
/// Rounds of a bout.
const ROUNDS: (i32, i32) = (1, 10);
/// Positions on a card.
const BOUT_ORDER: (i32, i32) = (1, 100);

/// One fighter row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FighterRow {
    /// Full name (the key).
    pub name: String,
    /// Nickname.
    pub nickname: Option<String>,
    /// Weight class.
    pub division: Option<String>,
    /// Wins, losses, draws, no contests.
    pub record: [i32; 4],
    /// Height, cm.
    pub height_cm: Option<f64>,
    /// Reach, cm.
    pub reach_cm: Option<f64>,
    /// Stance.
    pub stance: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Date of birth.
    pub date_of_birth: Option<NaiveDate>,
    /// Strikes per minute, accuracy %, takedowns per 15 min, takedown accuracy %, submissions
    /// per 15 min.
    pub stats: [Option<f64>; 5],
}

/// The fighters file: every row, or every problem.
pub fn fighters(bytes: &[u8]) -> Result<Vec<FighterRow>, Vec<RowError>> {
    let table = csvfile::read(bytes, FIGHTERS)?;
    let today = Utc::now().date_naive();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for r in table.rows() {
        let before = errors.len();
        let name = r.required("name", &mut errors);
        if let Some(name) = name
            && let Some(first) = seen.insert(name.to_lowercase(), r.line)
        {
            errors.push(r.error("name", format!("{name} is already on line {first}")));
        }
        let mut record = [0; 4];
        for (i, col) in ["wins", "losses", "draws", "no_contests"]
            .iter()
            .enumerate()
        {
            if let Some(n) = r.int_in(col, 0, MAX_RECORD, &mut errors) {
                record[i] = n;
            }
        }
        let height_cm = r.float_in("height_cm", HEIGHT_CM.0, HEIGHT_CM.1, &mut errors);
        let reach_cm = r.float_in("reach_cm", REACH_CM.0, REACH_CM.1, &mut errors);
        let date_of_birth = r.date("date_of_birth", &mut errors);
        if let Some(day) = date_of_birth
            && !(BORN_AFTER..=today).contains(&day)
        {
            errors.push(r.error(
                "date_of_birth",
                format!("date_of_birth must be between {BORN_AFTER} and today"),
            ));
        }
        let mut stats = [None; 5];
        for (i, (col, min, max)) in STATS.iter().enumerate() {
            stats[i] = r.float_in(col, *min, *max, &mut errors);
        }
        let row = FighterRow {
            name: name.unwrap_or_default().to_owned(),
            nickname: r.text("nickname").map(str::to_owned),
            division: r.text("division").map(str::to_owned),
            record,
            height_cm,
            reach_cm,
            stance: r.text("stance").map(str::to_owned),
            country: r.text("country").map(str::to_owned),
            date_of_birth,
            stats,
        };
        if errors.len() == before {
            rows.push(row);
        }
    }
    table.finish(rows, errors)
}

/// How a fight ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// One fighter won.
    Win(Uuid),
    /// A draw.
    Draw,
    /// No contest.
    NoContest,
}

/// One fight row, with its fighters resolved against the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct FightRow {
    /// The event's name.
    pub event: String,
    /// The event's day.
    pub event_date: NaiveDate,
    /// Where.
    pub location: Option<String>,
    /// Red corner.
    pub fighter_a: Uuid,
    /// Blue corner.
    pub fighter_b: Uuid,
    /// The result; `None` before the fight.
    pub outcome: Option<Outcome>,
    /// How it ended.
    pub method: Option<String>,
    /// Round.
    pub round: Option<i32>,
    /// Time in the round.
    pub time: Option<String>,
    /// Weight class.
    pub weight_class: Option<String>,
    /// Title fight.
    pub title_fight: bool,
    /// Position on the card.
    pub bout_order: Option<i32>,
}

/// The fights file: every row, or every problem. `catalogue` maps lower-case fighter names to
/// their ids.
pub fn fights(
    bytes: &[u8],
    catalogue: &HashMap<String, Uuid>,
) -> Result<Vec<FightRow>, Vec<RowError>> {
    let table = csvfile::read(bytes, FIGHTS)?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut event_dates: HashMap<String, (NaiveDate, u64)> = HashMap::new();
    let mut bouts: HashMap<(String, Uuid, Uuid), u64> = HashMap::new();
    for r in table.rows() {
        let before = errors.len();
        let event = r.required("event", &mut errors);
        let event_date = match r.required("event_date", &mut errors) {
            Some(_) => r.date("event_date", &mut errors),
            None => None,
        };
        if let (Some(event), Some(day)) = (event, event_date) {
            match event_dates.get(&event.to_lowercase()) {
                Some((other, line)) if *other != day => errors.push(r.error(
                    "event_date",
                    format!("{event} is dated {other} on line {line}"),
                )),
                Some(_) => {}
                None => {
                    event_dates.insert(event.to_lowercase(), (day, r.line));
                }
            }
        }
        let fighter = |col: &str, errors: &mut Vec<RowError>| -> Option<Uuid> {
            let name = r.required(col, errors)?;
            let id = catalogue.get(&name.to_lowercase()).copied();
            if id.is_none() {
                errors.push(r.error(col, format!("{name} is not in the fighters catalogue")));
            }
            id
        };
        let a = fighter("fighter_a", &mut errors);
        let b = fighter("fighter_b", &mut errors);
        if a.is_some() && a == b {
            errors.push(r.error("fighter_b", "a fighter cannot fight themselves"));
        }
        let outcome = match r.text("winner") {
            None => None,
            Some(w) => match w.to_lowercase().as_str() {
                "draw" => Some(Outcome::Draw),
                "nc" | "no contest" | "no_contest" => Some(Outcome::NoContest),
                name => match catalogue.get(name).copied() {
                    Some(id) if Some(id) == a || Some(id) == b => Some(Outcome::Win(id)),
                    _ => {
                        errors.push(r.error(
                            "winner",
                            format!("{w} is neither fighter_a nor fighter_b (or draw, nc)"),
                        ));
                        None
                    }
                },
            },
        };
        if let (Some(event), Some(a), Some(b)) = (event, a, b)
            && let Some(first) = bouts.insert((event.to_lowercase(), a, b), r.line)
        {
            errors.push(r.error("fighter_a", format!("this bout is already on line {first}")));
        }
        let round = r.int_in("round", ROUNDS.0, ROUNDS.1, &mut errors);
        let bout_order = r.int_in("bout_order", BOUT_ORDER.0, BOUT_ORDER.1, &mut errors);
        let title_fight = r.flag("title_fight", &mut errors).unwrap_or(false);
        if errors.len() > before {
            continue;
        }
        if let (Some(event), Some(event_date), Some(fighter_a), Some(fighter_b)) =
            (event, event_date, a, b)
        {
            rows.push(FightRow {
                event: event.to_owned(),
                event_date,
                location: r.text("location").map(str::to_owned),
                fighter_a,
                fighter_b,
                outcome,
                method: r.text("method").map(str::to_owned),
                round,
                time: r.text("time").map(str::to_owned),
                weight_class: r.text("weight_class").map(str::to_owned),
                title_fight,
                bout_order,
            });
        }
    }
    table.finish(rows, errors)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fighters_file() {
        let rows = fighters(
            b"name,division,wins,losses,draws,sig_strikes_per_min\n\
            Ana Lima,Flyweight,12,2,0,4.1\nBo Chan,Flyweight,,,,\n",
        )
        .unwrap();
        assert_eq!(rows[0].record, [12, 2, 0, 0]);
        assert_eq!(rows[0].stats[0], Some(4.1));
        let errors = fighters(b"name,wins\nAna,-1\nana,3\n,2\n").unwrap_err();
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4]);
    }

    #[test]
    fn fights_resolve_fighters_and_results() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let catalogue = HashMap::from([("ana lima".to_owned(), a), ("bo chan".to_owned(), b)]);
        let rows = fights(
            b"event,event_date,fighter_a,fighter_b,winner,method,round,title_fight\n\
              UFC 1,2024-04-13,Ana Lima,Bo Chan,bo chan,Decision,3,yes\n\
              UFC 2,2024-05-13,Bo Chan,Ana Lima,draw,,,\n",
            &catalogue,
        )
        .unwrap();
        assert_eq!(rows[0].outcome, Some(Outcome::Win(b)));
        assert!(rows[0].title_fight);
        assert_eq!(rows[1].outcome, Some(Outcome::Draw));
        let errors = fights(
            b"event,event_date,fighter_a,fighter_b,winner\n\
              UFC 1,2024-04-13,Ana Lima,Nobody,\n\
              UFC 1,2024-04-14,Ana Lima,Bo Chan,Someone\n",
            &catalogue,
        )
        .unwrap_err();
        let cells: Vec<(u64, Option<&str>)> = errors
            .iter()
            .map(|e| (e.line, e.column.as_deref()))
            .collect();
        assert_eq!(
            cells,
            [
                (2, Some("fighter_b")),
                (3, Some("event_date")),
                (3, Some("winner"))
            ]
        );
    }
}
