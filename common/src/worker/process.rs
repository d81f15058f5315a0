//! What happens to one entry: validation, idempotency, the owner check, the handler with
//! heartbeats and retries, and the decision that follows it (how an entry ends is `finish.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use redis::streams::{StreamClaimOptions, StreamPendingCountReply};
use redis::{AsyncCommands, RedisResult};
use tracing::Instrument;

use super::{HandlerError, Inner, Task, sleep_or_shutdown};
use crate::backoff::Backoff;
use crate::envelope::{DomainAction, is_valid_action_type};
use crate::events::{ErrorData, EventType};
use crate::sessions::{Owner, SessionError};

/// What follows one run of the handler.
#[derive(Debug)]
enum AfterRun {
    /// It finished: the callback action (if any) is published, then the task completed.
    Succeed,
    /// It ended after a cancel, with or without an error: completed, never retried.
    FinishCancelled(Option<HandlerError>),
    /// The client's mistake: an `error` event and the completion, no dead letter.
    Reject(HandlerError),
    /// A retryable failure before any output, with deliveries left: run again after a backoff.
    Retry(HandlerError),
    /// A failure the system could not get past: dead-lettered, the client told, completed.
    DeadLetter(HandlerError),
}

/// Decides what follows a handler run, from its result, whether the task was cancelled, whether
/// output already reached the client (a retry would repeat it), and the delivery so far against
/// `max_deliveries`.
fn after_run(
    result: Result<(), HandlerError>,
    cancelled: bool,
    output_sent: bool,
    delivery: u64,
    max_deliveries: u64,
) -> AfterRun {
    match result {
        Ok(()) if cancelled => AfterRun::FinishCancelled(None),
        Ok(()) => AfterRun::Succeed,
        Err(e) if e.rejected => AfterRun::Reject(e),
        Err(e) if cancelled => AfterRun::FinishCancelled(Some(e)),
        Err(e) if e.error.retryable && !output_sent && delivery < max_deliveries => {
            AfterRun::Retry(e)
        }
        Err(e) => AfterRun::DeadLetter(e),
    }
}

/// How one run of the handler ended.
enum Outcome {
    Finished(Result<(), HandlerError>),
    /// Another consumer took the entry over (this one stalled past `min_idle`).
    LostClaim,
}

impl Inner {
    pub(super) async fn process(
        self: Arc<Self>,
        id: String,
        fields: HashMap<String, redis::Value>,
        delivery: u64,
    ) {
        let raw: Option<String> = fields
            .get("payload")
            .and_then(|v| redis::from_redis_value_ref(v).ok());
        let max = self.bus.settings().max_action_bytes;
        if let Some(text) = raw.as_deref().filter(|r| r.len() > max) {
            // Refused unread: parsing it is what would cost the memory.
            let reason = format!(
                "the action is {} bytes, over the limit of {max} (BUS__MAX_ACTION_BYTES)",
                text.len()
            );
            tracing::warn!(entry_id = %id, %reason, "oversized action; dead-lettered");
            let mut end = text.len().min(4096);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let head = &text[..end];
            self.dead_letter(&id, &fields, Some(head), &reason, delivery)
                .await;
            self.ack(&id).await;
            return;
        }
        let parsed = match &raw {
            Some(text) => DomainAction::parse(text).map_err(|e| e.to_string()),
            None => Err("entry has no payload field".to_owned()),
        };
        let action = match parsed {
            Ok(action) => action,
            Err(reason) => {
                tracing::warn!(entry_id = %id, %reason, "malformed action; dead-lettered");
                self.dead_letter(&id, &fields, raw.as_deref(), &reason, delivery)
                    .await;
                if let Some(completion) = self.salvage_completion(raw.as_deref()).await {
                    let error = ErrorData::new("validation", "invalid_envelope", reason, false);
                    self.fail_and_complete(completion, &error).await;
                }
                self.ack(&id).await;
                return;
            }
        };
        let span = tracing::info_span!(
            "action",
            action_id = %action.action_id,
            action_type = %action.action_type,
            task_id = %action.task_id,
            session_id = %action.session_id,
            tenant_id = %action.tenant_id,
            delivery,
        );
        crate::telemetry::set_parent(&span, action.traceparent.as_deref());
        self.process_action(id, fields, raw.unwrap_or_default(), action, delivery)
            .instrument(span)
            .await;
    }

    async fn process_action(
        &self,
        id: String,
        fields: HashMap<String, redis::Value>,
        raw: String,
        action: DomainAction,
        mut delivery: u64,
    ) {
        let marker = self.bus.names().processed_marker(
            &self.service,
            action.action_id,
            &self.target_stream(&action),
        );
        // Registered before the flag is read, so a cancel arriving in between is not missed.
        let registration = self.cancels.register(action.task_id, &self.tasks_root);
        let owner = Owner::new(action.tenant_id, action.user_id);
        // One round trip for the reads: the processed-marker, the cancel flag, and the session's
        // owner (claimed for this action's tenant and user when the session is new).
        let reads: RedisResult<(bool, bool, Option<String>)> = redis::pipe()
            .exists(&marker)
            .exists(self.bus.names().cancel_flag(action.task_id))
            .add_command(self.owners.claim_cmd(action.session_id, &owner))
            .query_async(&mut self.bus.conn())
            .await;
        let Ok((processed, cancel_requested, previous_owner)) = reads else {
            tracing::warn!("redis unavailable before the action ran; entry left pending");
            return;
        };
        if processed {
            tracing::info!("action already processed; acknowledged without running again");
            self.ack(&id).await;
            return;
        }
        // Nothing reaches a session's stream or history before its owner is known to be the
        // action's: a mismatch is told on the action's own callback stream, never the session's.
        match self
            .owners
            .settle(action.session_id, &owner, previous_owner, false)
            .await
        {
            Ok(()) => {}
            Err(SessionError::Unavailable(e)) => {
                tracing::warn!(error = %e, "session owner unknown; entry left pending");
                return;
            }
            Err(e) => {
                let error = ErrorData::new("validation", "session_not_owned", e.to_string(), false);
                tracing::warn!(reason = %e, "action for a session of another owner; dead-lettered");
                self.dead_letter(&id, &fields, Some(&raw), &error.message, delivery)
                    .await;
                let callback = action
                    .callback_stream
                    .as_deref()
                    .filter(|cb| self.bus.names().is_callback_stream(cb));
                if let Some(stream) = callback {
                    let completion = self.completion_to(&action, stream.to_owned(), marker);
                    self.fail_and_complete(completion, &error).await;
                }
                self.ack(&id).await;
                return;
            }
        }
        let completion = self.completion_for(&action, marker);
        let rejection = if !self.handler.handles(&action.action_type) {
            Some(ErrorData::new(
                "validation",
                "unknown_action_type",
                format!("{} does not handle {}", self.service, action.action_type),
                false,
            ))
        } else if action
            .callback_stream
            .as_deref()
            .is_some_and(|cb| !self.valid_callback(&action, cb))
        {
            Some(ErrorData::new(
                "validation",
                "invalid_callback_stream",
                "callback_stream must name a callback stream ({ns}:callbacks:{name}) or the \
                 session's own response stream",
                false,
            ))
        } else if delivery > self.settings.max_deliveries {
            Some(ErrorData::new(
                "worker",
                "max_deliveries_exceeded",
                format!("the action was delivered {delivery} times without finishing"),
                false,
            ))
        } else {
            None
        };
        if let Some(error) = rejection {
            tracing::warn!(reason = %error.message, "action dead-lettered");
            self.dead_letter(&id, &fields, Some(&raw), &error.message, delivery)
                .await;
            self.fail_and_complete(completion, &error).await;
            self.ack(&id).await;
            return;
        }
        if let Some(kind) = action
            .callback_action_type
            .as_deref()
            .filter(|k| !is_valid_action_type(k))
        {
            // The publisher's mistake: told, completed, not dead-lettered.
            let error = ErrorData::new(
                "validation",
                "invalid_callback_action_type",
                format!("callback_action_type {kind:?} is not service.entity.verb"),
                false,
            );
            self.fail_and_complete(completion, &error).await;
            self.ack(&id).await;
            return;
        }
        if action.is_expired(Utc::now()) {
            tracing::info!("deadline passed; not executed");
            let error = ErrorData::new(
                "deadline",
                "deadline_exceeded",
                "the action's deadline passed before it could run",
                false,
            );
            self.fail_and_complete(completion, &error).await;
            self.ack(&id).await;
            return;
        }

        if cancel_requested {
            registration.token.cancel();
        }
        let events = completion.events().clone();
        if let Err(e) = events.send(EventType::Working, serde_json::json!({})).await {
            tracing::warn!(error = %e, "cannot write to the response stream; entry left pending");
            return;
        }
        let retry_base = Duration::from_millis(self.settings.retry_base_ms);
        let retry_max = Duration::from_millis(self.settings.retry_max_ms);
        loop {
            let task = Task {
                action: action.clone(),
                events: events.clone(),
                cancel: registration.token.clone(),
                delivery,
            };
            let result = match self.run_handler(task, &id).await {
                Outcome::LostClaim => {
                    tracing::warn!("claim lost to another consumer; abandoning this run");
                    registration.token.cancel();
                    return;
                }
                Outcome::Finished(r) => r,
            };
            let cancelled = registration.token.is_cancelled();
            let next = after_run(
                result,
                cancelled,
                events.output_sent(),
                delivery,
                self.settings.max_deliveries,
            );
            match next {
                AfterRun::Succeed => self.send_callback(&action, &events).await,
                AfterRun::FinishCancelled(None) => {}
                AfterRun::FinishCancelled(Some(e)) => {
                    tracing::info!(error = %e, "handler ended after cancel");
                }
                AfterRun::Reject(e) => {
                    tracing::info!(reason = %e, "action rejected");
                    if let Err(err) = events.error(&e.error).await {
                        tracing::warn!(error = %err, "error event not written");
                    }
                }
                AfterRun::Retry(e) => {
                    let delay = Backoff::delay_for(retry_base, retry_max, delivery as u32);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "handler failed; retrying");
                    if sleep_or_shutdown(delay, &self.stopping).await {
                        return;
                    }
                    match self.reclaim_for_retry(&id).await {
                        Ok(true) => {
                            delivery += 1;
                            continue;
                        }
                        Ok(false) => {
                            // The entry was trimmed away meanwhile: finish the task with the
                            // failure rather than leave its client waiting.
                            tracing::warn!("entry gone before its retry; task failed");
                            self.dead_letter(&id, &fields, Some(&raw), &e.to_string(), delivery)
                                .await;
                            if let Err(err) = events.error(&e.error).await {
                                tracing::warn!(error = %err, "error event not written");
                            }
                            self.complete_and_ack(completion, &id).await;
                            return;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "cannot re-claim for retry; left pending");
                            return;
                        }
                    }
                }
                AfterRun::DeadLetter(e) => {
                    tracing::error!(error = %e, "handler failed for good; dead-lettered");
                    self.dead_letter(&id, &fields, Some(&raw), &e.to_string(), delivery)
                        .await;
                    if let Err(err) = events.error(&e.error).await {
                        tracing::warn!(error = %err, "error event not written");
                    }
                }
            }
            if cancelled && let Err(e) = completion.ensure_cancelled_sent().await {
                tracing::warn!(error = %e, "cancelled event not written");
            }
            self.complete_and_ack(completion, &id).await;
            return;
        }
    }

    /// Runs the handler in its own task (a panic is a retryable failure), refreshing the claim.
    async fn run_handler(&self, task: Task, id: &str) -> Outcome {
        let marker = self.bus.names().processed_marker(
            &self.service,
            task.action.action_id,
            &self.target_stream(&task.action),
        );
        let handler = self.handler.clone();
        let mut handle = tokio::spawn(async move { handler.handle(task).await }.in_current_span());
        let mut ticker = tokio::time::interval(Duration::from_millis(self.settings.heartbeat_ms));
        ticker.tick().await;
        loop {
            tokio::select! {
                joined = &mut handle => {
                    return Outcome::Finished(joined.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "handler panicked");
                        Err(HandlerError::retryable("worker", "internal", "the worker failed unexpectedly"))
                    }));
                }
                _ = ticker.tick() => {
                    if !self.heartbeat(id, &marker).await {
                        handle.abort();
                        return Outcome::LostClaim;
                    }
                }
            }
        }
    }

    /// Refreshes this consumer's claim on an entry; false when another consumer owns it now.
    async fn heartbeat(&self, id: &str, marker: &str) -> bool {
        let mut conn = self.bus.conn();
        let owner: RedisResult<StreamPendingCountReply> = conn
            .xpending_count(&self.stream, &self.group, id, id, 1)
            .await;
        match owner {
            Ok(reply) => match reply.ids.first() {
                Some(p) if p.consumer == self.consumer => {
                    let opts = StreamClaimOptions::default().with_justid();
                    let refreshed: RedisResult<Vec<String>> = conn
                        .xclaim_options(&self.stream, &self.group, &self.consumer, 0, &[id], opts)
                        .await;
                    if let Err(e) = refreshed {
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                    true
                }
                Some(_) => false,
                // Not pending at all: completed and acked by another consumer (its processed-
                // marker is set), or gone with a Redis that restarted without its data, in
                // which case this run still owes the client its ending.
                None => !self.processed(marker).await,
            },
            // Cannot tell while Redis is away; keep working.
            Err(_) => true,
        }
    }

    /// Whether the action's processed-marker is set (unknown counts as not).
    async fn processed(&self, marker: &str) -> bool {
        let set: RedisResult<bool> = self.bus.conn().exists(marker).await;
        set.unwrap_or(false)
    }

    /// Claims the entry again for a retry; a plain `XCLAIM` counts a delivery in `XPENDING`, so
    /// retries and crash recoveries share one counter. False when the entry is gone.
    async fn reclaim_for_retry(&self, id: &str) -> RedisResult<bool> {
        let mut conn = self.bus.conn();
        let claimed: redis::streams::StreamClaimReply = conn
            .xclaim(&self.stream, &self.group, &self.consumer, 0, &[id])
            .await?;
        Ok(!claimed.ids.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 3;

    fn retryable() -> Result<(), HandlerError> {
        Err(HandlerError::retryable(
            "provider",
            "upstream_error",
            "HTTP 502",
        ))
    }

    fn fatal() -> Result<(), HandlerError> {
        Err(HandlerError::fatal("worker", "internal", "broken"))
    }

    fn rejected() -> Result<(), HandlerError> {
        Err(HandlerError::rejected("invalid_payload", "bad"))
    }

    #[test]
    fn a_finished_run_succeeds() {
        assert!(matches!(
            after_run(Ok(()), false, true, 1, MAX),
            AfterRun::Succeed
        ));
        // Even on the last delivery, with output sent.
        assert!(matches!(
            after_run(Ok(()), false, true, MAX, MAX),
            AfterRun::Succeed
        ));
    }

    #[test]
    fn a_run_that_ends_after_a_cancel_finishes_cancelled() {
        assert!(matches!(
            after_run(Ok(()), true, true, 1, MAX),
            AfterRun::FinishCancelled(None)
        ));
        // A retryable failure after a cancel is not retried, nor dead-lettered.
        assert!(matches!(
            after_run(retryable(), true, false, 1, MAX),
            AfterRun::FinishCancelled(Some(_))
        ));
        assert!(matches!(
            after_run(fatal(), true, false, 1, MAX),
            AfterRun::FinishCancelled(Some(_))
        ));
    }

    #[test]
    fn a_rejection_is_rejected_whatever_else_holds() {
        for (cancelled, output, delivery) in
            [(false, false, 1), (true, false, 1), (false, true, MAX)]
        {
            assert!(matches!(
                after_run(rejected(), cancelled, output, delivery, MAX),
                AfterRun::Reject(e) if e.error.code == "invalid_payload"
            ));
        }
    }

    #[test]
    fn a_retryable_failure_before_output_is_retried_while_deliveries_are_left() {
        assert!(matches!(
            after_run(retryable(), false, false, 1, MAX),
            AfterRun::Retry(_)
        ));
        assert!(matches!(
            after_run(retryable(), false, false, MAX - 1, MAX),
            AfterRun::Retry(_)
        ));
    }

    #[test]
    fn a_retryable_failure_is_dead_lettered_after_output_or_on_the_last_delivery() {
        // Output reached the client: a retry would repeat it.
        assert!(matches!(
            after_run(retryable(), false, true, 1, MAX),
            AfterRun::DeadLetter(_)
        ));
        assert!(matches!(
            after_run(retryable(), false, false, MAX, MAX),
            AfterRun::DeadLetter(_)
        ));
    }

    #[test]
    fn a_fatal_failure_is_dead_lettered() {
        assert!(matches!(
            after_run(fatal(), false, false, 1, MAX),
            AfterRun::DeadLetter(e) if e.error.code == "internal"
        ));
    }
}
