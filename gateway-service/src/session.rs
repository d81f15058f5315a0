//! Chat sessions as the gateway sees them: ownership, starting a chat task, cancel, the resume
//! grace after a disconnect. No HTTP or WebSocket types here.

use std::time::Duration;

use common::auth::Claims;
use common::envelope::DomainAction;
use common::error::AppError;
use common::payloads::Payload;
use common::payloads::chat::{ChatAudio, ChatPayload, ChatSettings};
use common::payloads::stt::{StreamPayload, TRANSCRIBE_STREAM};
use common::sessions::{Owner, SessionError};
use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::hub::{Entry, StreamId, Subscription};
use crate::state::AppState;

/// The action type of a chat turn.
pub const CHAT_ACTION: &str = common::payloads::chat::GENERATE;
/// This service's name in `origin_service`.
pub const ORIGIN: &str = "gateway-service";

/// A chat request, as the WebSocket `chat` message and the REST bodies carry it.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatInput {
    /// A string or a list of parts (`text`, `image_url`, `file_url`); absent in a voice turn.
    #[serde(default)]
    pub prompt: Option<Value>,
    /// The model; the worker's default when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Continue this session; a new one when absent.
    #[serde(default)]
    pub session_id: Option<Uuid>,
    /// Generation settings (typed: a wrong type is refused here, not by the worker).
    #[serde(default)]
    pub settings: Option<ChatSettings>,
    /// `false`: a stateless turn, kept out of the chat history.
    #[serde(default)]
    pub store: Option<bool>,
    /// A voice turn: recorded audio (`key` or `audio_base64`) transcribed and answered, or given
    /// to the model (`direct`). Live audio starts with the WebSocket's `audio_start`.
    #[serde(default)]
    pub audio: Option<ChatAudio>,
}

/// The WebSocket's `audio_start`: live audio follows as binary frames, until `audio_end`.
/// Without `reply` it is transcribed (`stt.transcription.stream`); with `reply` it is a voice
/// turn (`chat.completion.generate` with live `audio`): transcribed, then answered.
#[derive(Debug, Clone, Deserialize)]
pub struct AudioStart {
    /// `pcm`: 16-bit little-endian mono samples (the only live format).
    #[serde(default)]
    pub format: Option<String>,
    /// Samples per second, 8,000 to 48,000.
    pub sample_rate: u32,
    /// The spoken language.
    #[serde(default)]
    pub language: Option<String>,
    /// The transcription provider.
    #[serde(default)]
    pub provider: Option<String>,
    /// The transcription model.
    #[serde(default)]
    pub model: Option<String>,
    /// Interim results while a sentence is spoken (default true; transcription only).
    #[serde(default)]
    pub interim_results: Option<bool>,
    /// Words that help the provider.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Continue this session.
    #[serde(default)]
    pub session_id: Option<Uuid>,
    /// Answer what is said: a voice turn.
    #[serde(default)]
    pub reply: Option<VoiceReply>,
}

/// How a voice turn answers.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VoiceReply {
    /// The chat model.
    #[serde(default)]
    pub model: Option<String>,
    /// Generation settings, `tts` included (the answer spoken).
    #[serde(default)]
    pub settings: Option<ChatSettings>,
    /// `false`: a stateless turn.
    #[serde(default)]
    pub store: Option<bool>,
    /// Give the audio to the model itself (Gemini) instead of transcribing it.
    #[serde(default)]
    pub direct: bool,
    /// With `direct`: text that goes with the audio.
    #[serde(default)]
    pub prompt: Option<Value>,
}

impl AudioStart {
    /// The action type and `data` it publishes, checked with the worker's rules.
    pub fn action(&self) -> Result<(&'static str, Value), AppError> {
        let format = self.format.clone().unwrap_or_else(|| "pcm".into());
        let to_value = |v: Result<Value, serde_json::Error>| {
            v.map_err(|e| AppError::Internal(anyhow::anyhow!("audio payload: {e}")))
        };
        match &self.reply {
            None => {
                let payload = StreamPayload {
                    format,
                    sample_rate: self.sample_rate,
                    language: self.language.clone(),
                    provider: self.provider.clone(),
                    model: self.model.clone(),
                    interim_results: self.interim_results.unwrap_or(true),
                    prompt: self.prompt.clone(),
                };
                payload.validate().map_err(|e| AppError::BadRequest(e.0))?;
                Ok((TRANSCRIBE_STREAM, to_value(serde_json::to_value(payload))?))
            }
            Some(reply) => {
                let payload = ChatPayload {
                    prompt: reply.prompt.clone(),
                    model: reply.model.clone(),
                    settings: reply.settings.clone().unwrap_or_default(),
                    store: reply.store.unwrap_or(true),
                    audio: Some(ChatAudio {
                        live: true,
                        format: Some(format),
                        sample_rate: Some(self.sample_rate),
                        language: self.language.clone(),
                        provider: self.provider.clone(),
                        model: self.model.clone(),
                        direct: reply.direct,
                        ..ChatAudio::default()
                    }),
                    ..ChatPayload::from_prompt(Value::Null)
                };
                payload.validate().map_err(|e| AppError::BadRequest(e.0))?;
                Ok((CHAT_ACTION, to_value(serde_json::to_value(payload))?))
            }
        }
    }
}

impl ChatInput {
    /// The action's `data`.
    pub fn payload(&self) -> ChatPayload {
        ChatPayload {
            prompt: self.prompt.clone(),
            model: self.model.clone(),
            settings: self.settings.clone().unwrap_or_default(),
            store: self.store.unwrap_or(true),
            audio: self.audio.clone(),
            ..ChatPayload::from_prompt(Value::Null)
        }
    }

    /// Checks what the worker would refuse (the same rules: `common::payloads::chat`), so the
    /// client hears it at once.
    pub fn validate(&self) -> Result<(), AppError> {
        if self.audio.as_ref().is_some_and(|a| a.live) {
            return Err(AppError::BadRequest(
                "live audio starts with an audio_start message (on the WebSocket)".into(),
            ));
        }
        self.payload()
            .validate()
            .map_err(|e| AppError::BadRequest(e.0))
    }
}

/// A chat task that was published.
#[derive(Debug)]
pub struct Started {
    /// The session.
    pub session_id: Uuid,
    /// The new task.
    pub task_id: Uuid,
}

impl AppState {
    /// Takes ownership of a new session, or checks that an existing one belongs to the caller
    /// (same tenant and same user, on every chat path: chat, resume, replay, cancel, naming).
    /// Another owner's session is "not found", so its existence does not leak.
    pub async fn claim_session(
        &self,
        claims: &Claims,
        session_id: Option<Uuid>,
    ) -> Result<Uuid, AppError> {
        // A session id minted here is new everywhere: no stored session to check.
        let fresh = session_id.is_none();
        let session_id = session_id.unwrap_or_else(Uuid::now_v7);
        let owner = Owner::new(claims.tenant_id, Some(claims.sub));
        match self.owners().claim(session_id, &owner, fresh).await {
            Ok(()) => Ok(session_id),
            Err(SessionError::NotOwner) => Err(AppError::NotFound("session not found".into())),
            Err(e @ SessionError::NilId) => Err(AppError::BadRequest(e.to_string())),
            Err(SessionError::Unavailable(e)) => Err(AppError::Unavailable(anyhow::anyhow!(e))),
        }
    }

    /// The id of the newest entry of a stream, or `0-0`.
    pub async fn last_entry_id(&self, stream: &str) -> Result<StreamId, AppError> {
        let mut conn = self.bus().conn();
        let newest: redis::streams::StreamRangeReply =
            conn.xrevrange_count(stream, "+", "-", 1).await?;
        Ok(newest
            .ids
            .first()
            .and_then(|e| e.id.parse().ok())
            .unwrap_or(StreamId::ZERO))
    }

    /// Subscribes to a session's response stream from its newest entry on.
    pub async fn subscribe_live(&self, session_id: Uuid) -> Result<Subscription, AppError> {
        let stream = self.bus().names().response_stream(session_id);
        let after = self.last_entry_id(&stream).await?;
        Ok(self.hub().subscribe(&stream, after))
    }

    /// Publishes a chat task for an owned session (subscribe before calling, so no event is missed).
    pub async fn publish_chat(
        &self,
        claims: &Claims,
        session_id: Uuid,
        input: &ChatInput,
    ) -> Result<Started, AppError> {
        let data = serde_json::to_value(input.payload())
            .map_err(|e| AppError::Internal(anyhow::anyhow!("chat payload: {e}")))?;
        self.publish_chat_data(claims, session_id, data).await
    }

    /// Publishes a chat task whose `data` the caller prepared (the OpenAI-compatible surface
    /// passes `messages`, `tools` and `tool_choice` through); subscribe before calling.
    pub async fn publish_chat_data(
        &self,
        claims: &Claims,
        session_id: Uuid,
        data: Value,
    ) -> Result<Started, AppError> {
        self.publish_task(claims, session_id, CHAT_ACTION, data)
            .await
    }

    /// Publishes a task of `action_type` in a session and marks it as the session's running
    /// task (what a resume adopts and a disconnect grace cancels); subscribe before calling.
    pub async fn publish_task(
        &self,
        claims: &Claims,
        session_id: Uuid,
        action_type: &str,
        data: Value,
    ) -> Result<Started, AppError> {
        let (action, span) = traced_action(action_type, claims, session_id, data);
        let mut conn = self.bus().conn();
        // One round trip: the session's running task, then the action itself.
        let _: () = redis::pipe()
            .set_ex(
                self.bus().names().session_running_task(session_id),
                action.task_id.to_string(),
                self.settings().chat_timeout_secs.max(60) * 10,
            )
            .ignore()
            .add_command(self.bus().publish_cmd(&action))
            .ignore()
            .query_async(&mut conn)
            .await?;
        span.in_scope(|| tracing::info!("task published"));
        Ok(Started {
            session_id,
            task_id: action.task_id,
        })
    }

    /// The task running in a session, if the gateway started one that has not completed.
    pub async fn running_task(&self, session_id: Uuid) -> Result<Option<Uuid>, AppError> {
        let mut conn = self.bus().conn();
        let task: Option<String> = conn
            .get(self.bus().names().session_running_task(session_id))
            .await?;
        Ok(task.and_then(|t| t.parse().ok()))
    }

    /// Forgets the running task once it completed.
    pub async fn task_finished(&self, session_id: Uuid, task_id: Uuid) {
        let key = self.bus().names().session_running_task(session_id);
        // Only this task's mark: a task started meanwhile keeps its own.
        if let Err(e) = self
            .bus()
            .delete_if_equals(&key, &task_id.to_string())
            .await
        {
            tracing::debug!(error = %e, "running task not cleared; it expires");
        }
    }

    /// Asks the worker running a task to stop it.
    pub async fn cancel_task(&self, task_id: Uuid) -> Result<(), AppError> {
        self.bus().request_cancel(task_id).await?;
        tracing::info!(%task_id, "cancel requested");
        Ok(())
    }

    /// Marks a session as resumed, so a pending disconnect-grace timer does not cancel its task.
    pub async fn mark_resumed(&self, session_id: Uuid) -> Result<(), AppError> {
        let mut conn = self.bus().conn();
        let ttl = self.settings().ws.resume_grace_secs * 2 + 60;
        let _: () = conn
            .set_ex(
                self.bus().names().session_attached(session_id),
                "resumed",
                ttl,
            )
            .await?;
        Ok(())
    }

    /// After a client vanished mid-task: wait the resume grace, then cancel the task unless some
    /// client resumed the session (on any gateway replica) meanwhile.
    pub fn cancel_unless_resumed(&self, session_id: Uuid, task_id: Uuid) {
        let state = self.clone();
        self.tracker().spawn(async move {
            let key = state.bus().names().session_attached(session_id);
            let mark = format!("detached:{}", Uuid::now_v7());
            let grace = Duration::from_secs(state.settings().ws.resume_grace_secs);
            let mut conn = state.bus().conn();
            let set: redis::RedisResult<()> =
                conn.set_ex(&key, &mark, grace.as_secs() * 2 + 60).await;
            if set.is_err() {
                return;
            }
            tokio::select! {
                () = state.shutdown().cancelled() => return,
                () = tokio::time::sleep(grace) => {}
            }
            let now: redis::RedisResult<Option<String>> = conn.get(&key).await;
            let still_running = state.running_task(session_id).await.ok().flatten() == Some(task_id);
            if matches!(now, Ok(Some(m)) if m == mark) && still_running {
                tracing::info!(%task_id, %session_id, "no client resumed the session; cancelling its task");
                let _ = state.cancel_task(task_id).await;
            }
        });
    }
}

/// A new action of the caller in a session, with the W3C trace context of a span of its own: the
/// worker's span becomes a child of it, so one trace spans gateway and worker.
pub fn traced_action(
    action_type: &str,
    claims: &Claims,
    session_id: Uuid,
    data: Value,
) -> (DomainAction, tracing::Span) {
    let mut action = DomainAction::new(action_type, ORIGIN, claims.tenant_id, session_id, data);
    action.user_id = Some(claims.sub);
    let span = tracing::info_span!(
        "publish",
        action_type,
        action_id = %action.action_id,
        task_id = %action.task_id,
        session_id = %session_id,
        tenant_id = %claims.tenant_id,
    );
    action.traceparent = span.in_scope(common::telemetry::current_traceparent);
    action.trace_id = action
        .traceparent
        .as_deref()
        .and_then(|tp| tp.split('-').nth(1))
        .map(str::to_owned);
    (action, span)
}

/// An entry as the client event JSON: the stored event with its `event_id`.
pub fn client_event(entry: &Entry) -> String {
    let p = entry.payload.trim();
    // Fast path: the worker's payload is a JSON object; append the id instead of re-serializing.
    if let Some(body) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
        if body.trim().is_empty() {
            format!("{{\"event_id\":\"{}\"}}", entry.id)
        } else {
            format!("{{{body},\"event_id\":\"{}\"}}", entry.id)
        }
    } else {
        json!({"type": entry.kind, "event_id": entry.id.to_string(), "data": {"raw": entry.payload}})
            .to_string()
    }
}

/// The task id an entry belongs to.
pub fn entry_task(entry: &Entry) -> Option<Uuid> {
    entry.task_id.parse().ok()
}

/// An event the gateway itself sends (not from a response stream).
pub fn local_event(
    kind: &str,
    session_id: Option<Uuid>,
    task_id: Option<Uuid>,
    data: Value,
) -> String {
    json!({"type": kind, "session_id": session_id, "task_id": task_id, "event_id": null, "data": data})
        .to_string()
}

/// A gateway-side `error` event.
pub fn error_event(session_id: Option<Uuid>, stage: &str, code: &str, message: &str) -> String {
    local_event(
        "error",
        session_id,
        None,
        json!({"stage": stage, "code": code, "message": message, "retryable": false}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::StreamId;

    fn sent(payload: &str) -> Value {
        let entry = Entry {
            id: StreamId { ms: 5, seq: 1 },
            kind: "text_chunk".into(),
            task_id: String::new(),
            payload: payload.into(),
        };
        serde_json::from_str(&client_event(&entry)).unwrap()
    }

    #[test]
    fn stored_objects_reach_the_client_with_their_event_id() {
        let e = sent(r#"{"type":"text_chunk","data":{"content":"hi"}}"#);
        assert_eq!(e["data"]["content"], "hi");
        assert_eq!(e["event_id"], "5-1");
        // Found by the `ws_event` fuzz target: an empty object with white space inside.
        assert_eq!(sent("{\n}"), json!({"event_id": "5-1"}));
        assert_eq!(sent(" { } "), json!({"event_id": "5-1"}));
        // Not an object: wrapped, never passed on as is.
        assert_eq!(sent("[1]")["data"]["raw"], "[1]");
    }
}
