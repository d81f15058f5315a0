//! Garmin data: the records of each dataset (daily summaries, sleep, activities, HRV, body
//! composition), their parsers (Garmin Connect export JSON and FIT files), storage, the dataset
//! fetchers, the analysis queries and the import jobs.

pub mod analysis;
pub mod fit;
pub mod import;
pub mod parse;
pub mod query;
pub mod store;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// One day's totals (`UDSFile_*.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct DailySummary {
    /// The day.
    pub calendar_date: NaiveDate,
    /// Steps.
    pub steps: Option<i32>,
    /// Distance covered, metres.
    pub distance_m: Option<f64>,
    /// Calories burned, kcal (resting + active).
    pub total_kcal: Option<i32>,
    /// Active calories, kcal.
    pub active_kcal: Option<i32>,
    /// Resting heart rate, bpm.
    pub resting_hr: Option<i32>,
    /// Lowest heart rate, bpm.
    pub min_hr: Option<i32>,
    /// Highest heart rate, bpm.
    pub max_hr: Option<i32>,
    /// Average stress level (0-100).
    pub avg_stress: Option<i32>,
    /// Highest stress level (0-100).
    pub max_stress: Option<i32>,
    /// Highest body battery of the day (0-100).
    pub body_battery_high: Option<i32>,
    /// Lowest body battery of the day (0-100).
    pub body_battery_low: Option<i32>,
    /// Body battery charged during the day.
    pub body_battery_charged: Option<i32>,
    /// Body battery drained during the day.
    pub body_battery_drained: Option<i32>,
    /// Minutes of moderate intensity.
    pub moderate_intensity_min: Option<i32>,
    /// Minutes of vigorous intensity.
    pub vigorous_intensity_min: Option<i32>,
}

/// One night (`*_sleepData.json`), dated by the day of waking up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Sleep {
    /// The day the night is attributed to.
    pub calendar_date: NaiveDate,
    /// Fell asleep.
    pub sleep_start: Option<DateTime<Utc>>,
    /// Woke up.
    pub sleep_end: Option<DateTime<Utc>>,
    /// Deep sleep, seconds.
    pub deep_s: Option<i32>,
    /// Light sleep, seconds.
    pub light_s: Option<i32>,
    /// REM sleep, seconds.
    pub rem_s: Option<i32>,
    /// Awake in bed, seconds.
    pub awake_s: Option<i32>,
    /// Not classified, seconds.
    pub unmeasurable_s: Option<i32>,
    /// Time asleep (deep + light + REM), seconds.
    pub asleep_s: i32,
    /// Sleep score (0-100).
    pub score: Option<i32>,
    /// Quality sub-score (0-100).
    pub quality_score: Option<i32>,
    /// Average breaths per minute.
    pub avg_respiration: Option<f64>,
    /// Average stress during sleep.
    pub avg_sleep_stress: Option<f64>,
    /// Times awake.
    pub awake_count: Option<i32>,
}

/// A workout as an importer produces it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewActivity {
    /// `garmin_connect` (summarizedActivities.json), `fit`, or `demo`.
    pub source: String,
    /// The id within the source (activity id, FIT file id).
    pub external_id: String,
    /// The name the user gave it.
    pub name: Option<String>,
    /// `running`, `cycling`, `strength_training`, ...
    pub activity_type: String,
    /// Start, UTC.
    pub started_at: DateTime<Utc>,
    /// The local calendar day of the start.
    pub activity_date: NaiveDate,
    /// Duration (moving/timer time), seconds.
    pub duration_s: f64,
    /// Distance, metres.
    pub distance_m: Option<f64>,
    /// Calories, kcal.
    pub calories: Option<i32>,
    /// Average heart rate, bpm.
    pub avg_hr: Option<i32>,
    /// Highest heart rate, bpm.
    pub max_hr: Option<i32>,
    /// Seconds in heart-rate zones 1..5.
    pub hr_zones_s: Option<Vec<f64>>,
}

/// A stored workout with its training load.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Activity {
    /// Its id.
    pub id: Uuid,
    /// Where it came from: `garmin_connect`, `fit` or `demo`.
    pub source: String,
    /// The id within the source.
    pub external_id: String,
    /// Its name.
    pub name: Option<String>,
    /// `running`, `cycling`, ...
    pub activity_type: String,
    /// Start, UTC.
    pub started_at: DateTime<Utc>,
    /// The local calendar day of the start.
    pub activity_date: NaiveDate,
    /// Duration, seconds.
    pub duration_s: f64,
    /// Distance, metres.
    pub distance_m: Option<f64>,
    /// Calories, kcal.
    pub calories: Option<i32>,
    /// Average heart rate, bpm.
    pub avg_hr: Option<i32>,
    /// Highest heart rate, bpm.
    pub max_hr: Option<i32>,
    /// Seconds in heart-rate zones 1..5.
    pub hr_zones_s: Option<Vec<f64>>,
    /// Training load: Edwards' TRIMP from the zones, or 2 × minutes without zones
    /// (docs/health.md).
    pub training_load: f64,
}

/// One night's heart-rate variability.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Hrv {
    /// The day.
    pub calendar_date: NaiveDate,
    /// Overnight average, ms.
    pub last_night_avg: Option<f64>,
    /// Seven-day average, ms.
    pub weekly_avg: Option<f64>,
    /// Lower end of the personal baseline, ms.
    pub baseline_low: Option<f64>,
    /// Upper end of the personal baseline, ms.
    pub baseline_high: Option<f64>,
    /// Garmin's status: `BALANCED`, `UNBALANCED`, `LOW`, `POOR`...
    pub status: Option<String>,
}

/// One weigh-in.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct BodyComposition {
    /// When.
    pub measured_at: DateTime<Utc>,
    /// Weight, kg.
    pub weight_kg: f64,
    /// Body-mass index.
    pub bmi: Option<f64>,
    /// Body fat, %.
    pub body_fat_pct: Option<f64>,
    /// Body water, %.
    pub body_water_pct: Option<f64>,
    /// Muscle mass, kg.
    pub muscle_mass_kg: Option<f64>,
    /// Bone mass, kg.
    pub bone_mass_kg: Option<f64>,
}

/// The records one import file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Records {
    /// `UDSFile_*.json`.
    Daily(Vec<DailySummary>),
    /// `*_sleepData.json`.
    Sleep(Vec<Sleep>),
    /// `*_summarizedActivities.json` or a FIT file.
    Activities(Vec<NewActivity>),
    /// `*_healthStatusData.json` or an HRV summary file.
    Hrv(Vec<Hrv>),
    /// `*_userBioMetrics.json`.
    Body(Vec<BodyComposition>),
}

impl Records {
    /// The dataset's name, as in import reports and `/status`.
    pub fn dataset(&self) -> &'static str {
        match self {
            Self::Daily(_) => DAILY,
            Self::Sleep(_) => SLEEP,
            Self::Activities(_) => ACTIVITIES,
            Self::Hrv(_) => HRV,
            Self::Body(_) => BODY,
        }
    }
}

/// Dataset names.
pub const DAILY: &str = "daily_summaries";
/// Sleep dataset name.
pub const SLEEP: &str = "sleep";
/// Activities dataset name.
pub const ACTIVITIES: &str = "activities";
/// HRV dataset name.
pub const HRV: &str = "hrv";
/// Body composition dataset name.
pub const BODY: &str = "body_composition";
