//! The `health.*` actions, consumed from the service's stream through the worker runtime:
//! `health.summary.get` and `health.marker.trend`. Each answers on the session's response stream
//! with `text_completed` whose `content` is a sentence and whose `data` is the structured result
//! (the runtime then completes the task, and, when the action names a `callback_action_type`,
//! publishes the result as a new action of that type). Only the action's own tenant and user
//! are ever read.

use async_trait::async_trait;
use chrono::NaiveDate;
use common::envelope::DomainAction;
use common::events::{ErrorData, TextCompleted};
use common::worker::{Handler, HandlerError, Task};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::blood;
use crate::page::RangeParams;
use crate::scope::Owner;
use crate::summary;
use crate::text;

/// `data {from?, to?}` → the user's summary.
pub const SUMMARY: &str = "health.summary.get";
/// `data {marker, from?, to?}` → one blood marker over time.
pub const TREND: &str = "health.marker.trend";

/// `health.summary.get` data.
#[derive(Debug, Default, Deserialize)]
struct SummaryData {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

/// `health.marker.trend` data.
#[derive(Debug, Deserialize)]
struct TrendData {
    marker: String,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

/// Answers `health.*` actions from PostgreSQL.
pub struct HealthHandler {
    pool: PgPool,
}

impl HealthHandler {
    /// A handler reading `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn db_failed(e: sqlx::Error) -> HandlerError {
    tracing::warn!(error = %e, "health data not read");
    HandlerError::retryable(
        "persistence",
        "database_unavailable",
        "the health data is unavailable right now",
    )
}

/// Why an action cannot be answered (sent as an `error` event, stage `validation`).
struct Invalid(&'static str, String);

fn data<T: DeserializeOwned>(action: &DomainAction) -> Result<T, Invalid> {
    serde_json::from_value(action.data.clone())
        .map_err(|e| Invalid("invalid_payload", format!("invalid data: {e}")))
}

fn range(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Result<RangeParams, Invalid> {
    RangeParams { from, to }
        .checked()
        .map_err(|e| Invalid("invalid_payload", e.to_string()))
}

#[async_trait]
impl Handler for HealthHandler {
    fn handles(&self, action_type: &str) -> bool {
        matches!(action_type, SUMMARY | TREND)
    }

    async fn handle(&self, task: Task) -> Result<(), HandlerError> {
        let (events, action) = (&task.events, &task.action);
        let answered = match self.answer(action).await? {
            Ok(answer) => answer,
            Err(Invalid(code, message)) => {
                events
                    .error(&ErrorData::new("validation", code, message, false))
                    .await?;
                return Ok(());
            }
        };
        let (content, result) = answered;
        let mut done = TextCompleted::new(content, Value::Null, "stop");
        done.data = Some(result);
        events.text_completed(&done).await?;
        Ok(())
    }
}

impl HealthHandler {
    /// The sentence and the structured result, or why the action is invalid.
    async fn answer(
        &self,
        action: &DomainAction,
    ) -> Result<Result<(String, Value), Invalid>, HandlerError> {
        let Some(user_id) = action.user_id else {
            return Ok(Err(Invalid(
                "user_required",
                "health data is personal: the action needs a user_id".into(),
            )));
        };
        let owner = Owner::new(action.tenant_id, user_id);
        match action.action_type.as_str() {
            SUMMARY => {
                let d: SummaryData = match data(action) {
                    Ok(d) => d,
                    Err(e) => return Ok(Err(e)),
                };
                if let Err(e) = range(d.from, d.to) {
                    return Ok(Err(e));
                }
                let (from, to) = summary::period(d.from, d.to);
                if from > to {
                    return Ok(Err(Invalid(
                        "invalid_payload",
                        "from must not be after to".into(),
                    )));
                }
                let s = summary::summary(&self.pool, owner, from, to)
                    .await
                    .map_err(db_failed)?;
                Ok(Ok((summary::sentence(&s), json!(s))))
            }
            _ => {
                let d: TrendData = match data(action) {
                    Ok(d) => d,
                    Err(e) => return Ok(Err(e)),
                };
                let marker = d.marker.trim();
                if marker.is_empty() {
                    return Ok(Err(Invalid("invalid_payload", "marker is empty".into())));
                }
                // The same rule as the REST query: a NUL would fail in PostgreSQL and be retried
                // as if the database were down.
                if let Err(message) = text::check("marker", marker, text::MAX_PARAM_CHARS) {
                    return Ok(Err(Invalid("invalid_payload", message)));
                }
                let r = match range(d.from, d.to) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                let t = blood::store::trend(&self.pool, owner, marker, r)
                    .await
                    .map_err(db_failed)?;
                Ok(Ok((trend_sentence(&t), json!(t))))
            }
        }
    }
}

/// One sentence for people about a trend.
pub fn trend_sentence(t: &blood::Trend) -> String {
    let (Some(first), Some(last)) = (t.points.first(), t.points.last()) else {
        return format!("No values of {} are recorded.", t.marker);
    };
    let mut s = format!(
        "{}: {} value{} from {} to {}, latest {} {} on {}",
        t.marker,
        t.points.len(),
        if t.points.len() == 1 { "" } else { "s" },
        first.date,
        last.date,
        last.value,
        last.unit,
        last.date
    );
    if let Some(flag) = last.flag.as_deref().filter(|f| *f != "normal") {
        s.push_str(&format!(" ({flag})"));
    }
    if t.out_of_range > 0 {
        s.push_str(&format!("; {} out of range", t.out_of_range));
    }
    s.push('.');
    s
}
