//! The `health.*` actions (payloads in `common::payloads::health`), consumed from the service's stream through the worker runtime:
//! `health.summary.get` and `health.marker.trend`. Each answers on the session's response stream
//! with `text_completed` whose `content` is a sentence and whose `data` is the structured result
//! (the runtime then completes the task, and, when the action names a `callback_action_type`,
//! publishes the result as a new action of that type). Only the action's own tenant and user
//! are ever read.

use async_trait::async_trait;
use common::envelope::DomainAction;
use common::events::TextCompleted;
use common::payloads::health::{SUMMARY, SummaryPayload, TREND, TrendPayload};
use common::worker::{Action, Actions, HandlerError, Task};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::blood;
use crate::page::RangeParams;
use crate::scope::Owner;
use crate::summary;

/// The service's action table.
pub fn actions(pool: PgPool) -> Actions {
    Actions::new()
        .action(SUMMARY, Summary(pool.clone()))
        .action(TREND, Trend(pool))
}

/// `health.summary.get`: the user's summary of a period.
struct Summary(PgPool);

/// `health.marker.trend`: one blood marker over time.
struct Trend(PgPool);

fn db_failed(e: sqlx::Error) -> HandlerError {
    tracing::warn!(error = %e, "health data not read");
    HandlerError::retryable(
        "persistence",
        "database_unavailable",
        "the health data is unavailable right now",
    )
}

/// Health data is personal: only an action naming its user is answered, with that user's data.
fn owner(action: &DomainAction) -> Result<Owner, HandlerError> {
    action
        .user_id
        .map(|user_id| Owner::new(action.tenant_id, user_id))
        .ok_or_else(|| {
            HandlerError::rejected(
                "user_required",
                "health data is personal: the action needs a user_id",
            )
        })
}

/// Answers with `text_completed`: `content` the sentence, `data` the structured result.
async fn answer(task: &Task, content: String, result: Value) -> Result<(), HandlerError> {
    let mut done = TextCompleted::new(content, Value::Null, "stop");
    done.data = Some(result);
    task.events.text_completed(&done).await?;
    Ok(())
}

#[async_trait]
impl Action<SummaryPayload> for Summary {
    async fn run(&self, task: Task, payload: SummaryPayload) -> Result<(), HandlerError> {
        let owner = owner(&task.action)?;
        let (from, to) = summary::period(payload.from, payload.to);
        if from > to {
            return Err(HandlerError::rejected(
                "invalid_payload",
                "from must not be after to",
            ));
        }
        let s = summary::summary(&self.0, owner, from, to)
            .await
            .map_err(db_failed)?;
        answer(&task, summary::sentence(&s), json!(s)).await
    }
}

#[async_trait]
impl Action<TrendPayload> for Trend {
    async fn run(&self, task: Task, payload: TrendPayload) -> Result<(), HandlerError> {
        let owner = owner(&task.action)?;
        let range = RangeParams {
            from: payload.from,
            to: payload.to,
        };
        let t = blood::store::trend(&self.0, owner, payload.marker(), range)
            .await
            .map_err(db_failed)?;
        answer(&task, trend_sentence(&t), json!(t)).await
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
