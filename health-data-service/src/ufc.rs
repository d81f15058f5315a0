//! A tenant's UFC catalogue (fighters with record, division and statistics; events; fights),
//! imported from CSV by the tenant's admins, searched and listed with filters, and per-user
//! subscriptions (a user follows fighters).

pub mod csv;
pub mod import;
pub mod store;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A fighter.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Fighter {
    /// Its id.
    pub id: Uuid,
    /// Full name.
    pub name: String,
    /// Nickname.
    pub nickname: Option<String>,
    /// Weight class, e.g. `Lightweight`.
    pub division: Option<String>,
    /// Wins.
    pub wins: i32,
    /// Losses.
    pub losses: i32,
    /// Draws.
    pub draws: i32,
    /// No contests.
    pub no_contests: i32,
    /// Height, cm.
    pub height_cm: Option<f64>,
    /// Reach, cm.
    pub reach_cm: Option<f64>,
    /// `Orthodox`, `Southpaw`, `Switch`.
    pub stance: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Date of birth.
    pub date_of_birth: Option<NaiveDate>,
    /// Significant strikes landed per minute.
    pub sig_strikes_per_min: Option<f64>,
    /// Striking accuracy, %.
    pub strike_accuracy_pct: Option<f64>,
    /// Takedowns per 15 minutes.
    pub takedown_avg: Option<f64>,
    /// Takedown accuracy, %.
    pub takedown_accuracy_pct: Option<f64>,
    /// Submission attempts per 15 minutes.
    pub submission_avg: Option<f64>,
    /// Whether the caller follows this fighter.
    pub followed: bool,
}

/// A fight from one fighter's side.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct FighterBout {
    /// The fight.
    pub fight_id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The event's name.
    pub event_name: String,
    /// The event's day.
    pub event_date: NaiveDate,
    /// The opponent.
    pub opponent_id: Uuid,
    /// The opponent's name.
    pub opponent_name: String,
    /// `win`, `loss`, `draw`, `no_contest`, or `null` before the fight.
    pub result: Option<String>,
    /// How it ended, e.g. `KO/TKO`.
    pub method: Option<String>,
    /// The round it ended in.
    pub round: Option<i32>,
    /// The time in that round, `m:ss`.
    pub time: Option<String>,
    /// Weight class of the bout.
    pub weight_class: Option<String>,
    /// A title fight.
    pub title_fight: bool,
}

/// A fighter with their fights, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FighterDetail {
    /// The fighter.
    #[serde(flatten)]
    pub fighter: Fighter,
    /// Their fights.
    pub fights: Vec<FighterBout>,
}

/// An event.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Event {
    /// Its id.
    pub id: Uuid,
    /// Its name, e.g. `UFC 300`.
    pub name: String,
    /// Its day.
    pub event_date: NaiveDate,
    /// Where.
    pub location: Option<String>,
    /// Fights on the card.
    pub fights: i64,
}

/// A fight on an event's card.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Bout {
    /// Its id.
    pub id: Uuid,
    /// Red corner.
    pub fighter_a_id: Uuid,
    /// Red corner's name.
    pub fighter_a: String,
    /// Blue corner.
    pub fighter_b_id: Uuid,
    /// Blue corner's name.
    pub fighter_b: String,
    /// `win`, `draw`, `no_contest`, or `null` before the fight.
    pub outcome: Option<String>,
    /// The winner, when one won.
    pub winner_id: Option<Uuid>,
    /// How it ended.
    pub method: Option<String>,
    /// The round it ended in.
    pub round: Option<i32>,
    /// The time in that round.
    pub time: Option<String>,
    /// Weight class.
    pub weight_class: Option<String>,
    /// A title fight.
    pub title_fight: bool,
    /// Position on the card (1 = main event).
    pub bout_order: Option<i32>,
}

/// An event with its card.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventDetail {
    /// The event.
    #[serde(flatten)]
    pub event: Event,
    /// Its fights in card order.
    pub card: Vec<Bout>,
}

/// A followed fighter.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Subscription {
    /// The fighter.
    pub fighter: Fighter,
    /// Since when.
    pub followed_at: DateTime<Utc>,
}

/// What a UFC CSV import wrote.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UfcImport {
    /// Fighter rows (fighters file) or fight rows (fights file).
    pub rows: crate::report::Counts,
    /// Events created (fights file).
    pub events_created: usize,
}
