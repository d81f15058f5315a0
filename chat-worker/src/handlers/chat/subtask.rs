//! A sub-action of a chat task: an action the chat publishes to another service under the chat's
//! own task id, with a private callback stream, and the events that come back there.
//!
//! The task id is shared on purpose: a cancel of the chat reaches the sub-action too (every
//! worker's cancel listener cancels the task ids it runs), and the other service finds what is
//! keyed by the task (the speech-input stream, the live audio stream). The sub-action's own
//! `complete` goes to its callback stream only; the chat task stays the one owner of the task's
//! completion. The speech half (`tts.speech.stream`, `speech.rs`) and the transcription of a
//! voice turn (`stt.transcription.*`, `transcribe.rs`) are sub-actions.

use std::collections::VecDeque;
use std::time::Duration;

use common::bus::Conn;
use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use serde_json::Value;

use common::Bus;
use common::envelope::DomainAction;
use common::worker::{HandlerError, Task};

/// How long one blocking read of the callback stream waits.
const BLOCK: Duration = Duration::from_millis(500);

/// How long the chat waits for a sub-action's events.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the first event (a worker taking the action).
    pub start: Duration,
    /// Between events afterwards.
    pub idle: Duration,
}

/// One event of the sub-action, as it was written to the callback stream.
#[derive(Debug)]
pub struct SubEvent {
    /// The event type (`working`, `transcription`, `error`, `complete`, …).
    pub kind: String,
    /// The event's `data`.
    pub data: Value,
}

/// Why no event came.
#[derive(Debug)]
pub enum Silence {
    /// Nothing at all within the start timeout: no worker took the action.
    NotStarted,
    /// Nothing within the idle timeout after the sub-action began.
    Stopped,
    /// The callback stream could not be read (Redis).
    Unavailable(String),
}

/// A published sub-action.
pub struct SubAction {
    bus: Bus,
    callback: String,
}

impl SubAction {
    /// Publishes `action_type` with `data` under the chat task's task id, session, tenant and
    /// user, its events going to the callback stream `callback_name`. A bus failure is retryable
    /// (of `stage`), as nothing reached the client yet.
    pub async fn publish(
        bus: &Bus,
        task: &Task,
        action_type: &str,
        data: Value,
        callback_name: &str,
        stage: &str,
    ) -> Result<Self, HandlerError> {
        let chat = &task.action;
        let callback = bus.names().callback_stream(callback_name);
        let mut action = DomainAction::new(
            action_type,
            "chat-worker",
            chat.tenant_id,
            chat.session_id,
            data,
        );
        action.task_id = chat.task_id;
        action.user_id = chat.user_id;
        action.correlation_id = Some(chat.action_id);
        action.callback_stream = Some(callback.clone());
        action.traceparent.clone_from(&chat.traceparent);
        action.trace_id.clone_from(&chat.trace_id);
        bus.publish(&action).await.map_err(|e| {
            HandlerError::retryable(
                stage,
                "bus_unavailable",
                format!("{action_type} not started: {e}"),
            )
        })?;
        Ok(Self {
            bus: bus.clone(),
            callback,
        })
    }

    /// A reader of the sub-action's events, from the first.
    pub fn follow(&self, timeouts: Timeouts) -> SubEvents {
        SubEvents {
            bus: self.bus.clone(),
            callback: self.callback.clone(),
            timeouts,
            conn: None,
            last: "0".to_owned(),
            quiet: Duration::ZERO,
            heard: false,
            pending: VecDeque::new(),
        }
    }

    /// Deletes the callback stream once the chat has what it needs from it. Events the
    /// sub-action still writes recreate it only if it had not written yet (its first write
    /// creates its stream); such a stream expires after the sub-action's `complete`.
    pub async fn remove(self) {
        let deleted: redis::RedisResult<()> = self.bus.conn().del(&self.callback).await;
        if let Err(e) = deleted {
            tracing::debug!(error = %e, "callback stream not deleted");
        }
    }
}

/// The events of a sub-action, in order.
pub struct SubEvents {
    bus: Bus,
    callback: String,
    timeouts: Timeouts,
    conn: Option<Conn>,
    last: String,
    quiet: Duration,
    heard: bool,
    pending: VecDeque<SubEvent>,
}

impl SubEvents {
    /// The next event, or why none came in time. Reads the callback stream with blocking
    /// `XREAD`s on a connection of its own; a failed read counts as silence.
    pub async fn next(&mut self) -> Result<SubEvent, Silence> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let conn = match &mut self.conn {
                Some(conn) => conn,
                None => {
                    let conn = self
                        .bus
                        .blocking_conn(&self.callback, BLOCK * 2)
                        .await
                        .map_err(|e| Silence::Unavailable(e.to_string()))?;
                    self.conn.insert(conn)
                }
            };
            let opts = StreamReadOptions::default()
                .count(256)
                .block(BLOCK.as_millis() as usize);
            let keys = [self.callback.as_str()];
            let ids = [self.last.as_str()];
            let reply: redis::RedisResult<Option<StreamReadReply>> =
                conn.xread_options(&keys, &ids, &opts).await;
            let entries: Vec<_> = match reply {
                Ok(r) => r
                    .into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|k| k.ids)
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, callback = %self.callback,
                        "sub-action events not read; retrying");
                    tokio::time::sleep(BLOCK).await;
                    Vec::new()
                }
            };
            if entries.is_empty() {
                self.quiet += BLOCK;
                let limit = if self.heard {
                    self.timeouts.idle
                } else {
                    self.timeouts.start
                };
                if self.quiet >= limit {
                    return Err(if self.heard {
                        Silence::Stopped
                    } else {
                        Silence::NotStarted
                    });
                }
                continue;
            }
            self.quiet = Duration::ZERO;
            self.heard = true;
            for entry in entries {
                self.last.clone_from(&entry.id);
                let kind: String = entry.get("type").unwrap_or_default();
                let payload: String = entry.get("payload").unwrap_or_default();
                let data = serde_json::from_str::<Value>(&payload)
                    .map(|mut v| v["data"].take())
                    .unwrap_or(Value::Null);
                self.pending.push_back(SubEvent { kind, data });
            }
        }
    }
}
