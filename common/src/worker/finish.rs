//! How an entry ends: the completion (to the session or a callback stream), the callback action,
//! the ack and the dead letter.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use redis::{AsyncCommands, RedisResult};
use serde_json::Value;
use uuid::Uuid;

use super::Inner;
use crate::backoff::Backoff;
use crate::envelope::DomainAction;
use crate::events::{Completion, ErrorData, ResponseTarget};
use crate::sessions::Owner;

impl Inner {
    /// When the action names a `callback_action_type`, publishes its result as a new action of
    /// that type (DESIGN §2): same tenant, user and session, `correlation_id` the request's
    /// action id, `data` {request_action_id, request_action_type, content, result, usage,
    /// finish_reason} from the task's `text_completed`.
    pub(super) async fn send_callback(
        &self,
        action: &DomainAction,
        events: &crate::events::TaskEvents,
    ) {
        let Some(kind) = action.callback_action_type.as_deref() else {
            return;
        };
        let done = events.result().unwrap_or(Value::Null);
        let mut reply = DomainAction::new(
            kind,
            self.service.as_str(),
            action.tenant_id,
            action.session_id,
            serde_json::json!({
                "request_action_id": action.action_id,
                "request_action_type": action.action_type,
                "content": done["content"],
                "result": done["data"],
                "usage": done["usage"],
                "finish_reason": done["finish_reason"],
            }),
        );
        reply.user_id = action.user_id;
        reply.correlation_id = action.correlation_id.or(Some(action.action_id));
        reply.traceparent = crate::telemetry::current_traceparent();
        reply.metadata = action.metadata.clone();
        if let Err(e) = self.bus.publish(&reply).await {
            tracing::warn!(error = %e, "callback action not published");
            let error = ErrorData::new(
                "worker",
                "callback_failed",
                "the result could not be published as the callback action",
                true,
            );
            if let Err(err) = events.error(&error).await {
                tracing::warn!(error = %err, "error event not written");
            }
        }
    }

    /// Whether an action may send its events to `callback`: a callback stream, or its own
    /// session's response stream.
    pub(super) fn valid_callback(&self, action: &DomainAction, callback: &str) -> bool {
        let names = self.bus.names();
        names.is_callback_stream(callback) || callback == names.response_stream(action.session_id)
    }

    /// The completion of an action whose session's owner was checked: to its valid callback
    /// stream, else to its session's response stream (an invalid callback is refused and the
    /// client hears about it there).
    pub(super) fn completion_for(&self, action: &DomainAction, marker: String) -> Completion {
        self.completion_to(action, self.target_stream(action), marker)
    }

    /// Where an action's events and `complete` go: its valid callback stream, else its
    /// session's response stream.
    pub(super) fn target_stream(&self, action: &DomainAction) -> String {
        action
            .callback_stream
            .clone()
            .filter(|cb| self.valid_callback(action, cb))
            .unwrap_or_else(|| self.bus.names().response_stream(action.session_id))
    }

    pub(super) fn completion_to(
        &self,
        action: &DomainAction,
        stream: String,
        marker: String,
    ) -> Completion {
        let names = self.bus.names();
        let settings = self.bus.settings();
        Completion::new(
            self.bus.conn(),
            ResponseTarget {
                stream,
                session_id: action.session_id,
                task_id: action.task_id,
                maxlen: settings.response_maxlen,
                ttl_secs: settings.response_ttl_secs,
                retry_for: Duration::from_secs(settings.event_retry_secs),
                cancel_flag: names.cancel_flag(action.task_id),
            },
            marker,
            settings.processed_ttl_secs,
        )
    }

    /// For an invalid envelope that still names its tenant, session and task, a way to tell the
    /// client: on the session's response stream, when the session is the envelope's tenant's.
    pub(super) async fn salvage_completion(&self, raw: Option<&str>) -> Option<Completion> {
        let value: Value = serde_json::from_str(raw?).ok()?;
        let uuid = |k: &str| value.get(k)?.as_str()?.parse::<Uuid>().ok();
        let (tenant_id, session_id, task_id) =
            (uuid("tenant_id")?, uuid("session_id")?, uuid("task_id")?);
        let owner = Owner::new(tenant_id, uuid("user_id"));
        if let Err(e) = self.owners.claim(session_id, &owner, false).await {
            tracing::warn!(reason = %e, "malformed action's session not told");
            return None;
        }
        let action_id = uuid("action_id").unwrap_or(task_id);
        let settings = self.bus.settings();
        let stream = self.bus.names().response_stream(session_id);
        let marker = self
            .bus
            .names()
            .processed_marker(&self.service, action_id, &stream);
        Some(Completion::new(
            self.bus.conn(),
            ResponseTarget {
                stream,
                session_id,
                task_id,
                maxlen: settings.response_maxlen,
                ttl_secs: settings.response_ttl_secs,
                retry_for: Duration::from_secs(settings.event_retry_secs),
                cancel_flag: self.bus.names().cancel_flag(task_id),
            },
            marker,
            settings.processed_ttl_secs,
        ))
    }

    pub(super) async fn fail_and_complete(&self, completion: Completion, error: &ErrorData) {
        if let Err(e) = completion.events().error(error).await {
            tracing::warn!(error = %e, "error event not written");
        }
        if let Err(e) = completion.complete().await {
            tracing::warn!(error = %e, "complete not written");
        }
    }

    /// Completes, then acks; retried briefly because a lost `complete` would leave a client waiting.
    pub(super) async fn complete_and_ack(&self, completion: Completion, id: &str) {
        match completion.complete().await {
            Ok(_) => self.ack(id).await,
            Err(e) => {
                // Left pending: another consumer reclaims it after `min_idle` and the
                // processed-marker (not set) lets it run again.
                tracing::error!(error = %e, "complete not written; entry left pending");
            }
        }
    }

    pub(super) async fn ack(&self, id: &str) {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        for _ in 0..5 {
            let mut conn = self.bus.conn();
            let acked: RedisResult<u64> = conn.xack(&self.stream, &self.group, &[id]).await;
            match acked {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, entry_id = id, "XACK failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Writes the entry to the dead-letter stream with the reason, delivery count and original id.
    pub(super) async fn dead_letter(
        &self,
        id: &str,
        fields: &HashMap<String, redis::Value>,
        raw: Option<&str>,
        error: &str,
        delivery: u64,
    ) {
        // The entry's own fields, else the envelope's (a publisher may have set only `payload`).
        let envelope: Option<serde_json::Value> = raw.and_then(|r| serde_json::from_str(r).ok());
        let field = |k: &str| -> String {
            fields
                .get(k)
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                .filter(|v| !v.is_empty())
                .or_else(|| {
                    envelope
                        .as_ref()
                        .and_then(|e| e.get(k)?.as_str().map(str::to_owned))
                })
                .unwrap_or_default()
        };
        let payload = match raw {
            Some(r) => r.to_owned(),
            None => {
                let all: HashMap<String, String> = fields
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            redis::from_redis_value_ref(v).unwrap_or_default(),
                        )
                    })
                    .collect();
                serde_json::to_string(&all).unwrap_or_default()
            }
        };
        let mut conn = self.bus.conn();
        let written: RedisResult<String> = redis::cmd("XADD")
            .arg(&self.dead)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.bus.settings().action_maxlen)
            .arg("*")
            .arg("original_id")
            .arg(id)
            .arg("stream")
            .arg(&self.stream)
            .arg("action_type")
            .arg(field("action_type"))
            .arg("action_id")
            .arg(field("action_id"))
            .arg("task_id")
            .arg(field("task_id"))
            .arg("error")
            .arg(error)
            .arg("delivery_count")
            .arg(delivery)
            .arg("consumer")
            .arg(&self.consumer)
            .arg("failed_at")
            .arg(Utc::now().to_rfc3339())
            .arg("payload")
            .arg(payload)
            .query_async(&mut conn)
            .await;
        if let Err(e) = written {
            tracing::error!(error = %e, entry_id = id, "dead-letter write failed");
        }
    }
}
