//! The `chat.completion.generate` handler: resolves a provider, streams its deltas as events,
//! closes the upstream stream on cancel, and reports provider failures as `error` events.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use common::events::{ErrorData, EventType, TaskEvents};
use common::worker::{Handler, HandlerError, Task};

use crate::config::Settings;
use crate::providers::{ChatMessage, ChatRequest, Delta, ProviderError, Registry, Usage};

/// The action type this handler serves.
pub const GENERATE: &str = "chat.completion.generate";

/// The `data` of a `chat.completion.generate` action.
#[derive(Debug, Deserialize)]
pub struct ChatPayload {
    /// The user's message: a string or a list of parts.
    pub prompt: Value,
    /// The model to use; the default when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Earlier turns, oldest first.
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    /// Generation settings.
    #[serde(default)]
    pub settings: ChatSettings,
}

/// Per-request generation settings.
#[derive(Debug, Default, Deserialize)]
pub struct ChatSettings {
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Output token limit.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// A system prompt put first.
    #[serde(default)]
    pub system_prompt: Option<String>,
}

impl ChatPayload {
    fn validate(&self) -> Result<(), String> {
        match &self.prompt {
            Value::String(s) if !s.trim().is_empty() => Ok(()),
            Value::Array(parts) if !parts.is_empty() => Ok(()),
            _ => Err("prompt must be a non-empty string or a non-empty list of parts".into()),
        }
    }

    fn into_request(self, model: String) -> ChatRequest {
        let mut messages = Vec::with_capacity(self.messages.len() + 2);
        if let Some(system) = self.settings.system_prompt.filter(|s| !s.is_empty()) {
            messages.push(ChatMessage {
                role: "system".into(),
                content: Value::String(system),
            });
        }
        messages.extend(self.messages);
        messages.push(ChatMessage {
            role: "user".into(),
            content: self.prompt,
        });
        ChatRequest {
            model,
            messages,
            temperature: self.settings.temperature,
            max_tokens: self.settings.max_tokens,
        }
    }
}

/// Streams chat completions.
pub struct ChatHandler {
    providers: Registry,
    idle_timeout: Duration,
}

impl ChatHandler {
    /// A handler over the given providers.
    pub fn new(providers: Registry, settings: &Settings) -> Self {
        Self {
            providers,
            idle_timeout: Duration::from_secs(settings.provider_idle_timeout_secs.max(1)),
        }
    }
}

/// An event write failed: Redis is away. Retryable while nothing reached the client.
fn emit_failed(e: common::events::EmitError) -> HandlerError {
    HandlerError::retryable("worker", "bus_unavailable", e.to_string())
}

/// What the stream produced so far.
#[derive(Default)]
struct Progress {
    content: String,
    usage: Option<Usage>,
    finish_reason: Option<String>,
}

impl Progress {
    async fn text_completed(&self, events: &TaskEvents, finish: &str) -> Result<(), HandlerError> {
        let finish = self.finish_reason.as_deref().unwrap_or(finish);
        events
            .send(
                EventType::TextCompleted,
                json!({"content": self.content, "usage": self.usage, "finish_reason": finish}),
            )
            .await
            .map_err(emit_failed)?;
        Ok(())
    }
}

#[async_trait]
impl Handler for ChatHandler {
    fn handles(&self, action_type: &str) -> bool {
        action_type == GENERATE
    }

    async fn handle(&self, task: Task) -> Result<(), HandlerError> {
        let events = &task.events;
        let payload: ChatPayload = serde_json::from_value(task.action.data.clone())
            .map_err(|e| HandlerError::fatal("validation", "invalid_payload", e.to_string()))?;
        payload
            .validate()
            .map_err(|e| HandlerError::fatal("validation", "invalid_payload", e))?;
        let resolved = self.providers.resolve(payload.model.as_deref());
        let mut model_in_use =
            json!({"provider": resolved.provider.name(), "model": resolved.model});
        if let Some(note) = resolved.note {
            model_in_use["note"] = json!(note);
        }
        events
            .send(EventType::ModelInUse, model_in_use)
            .await
            .map_err(emit_failed)?;
        let request = payload.into_request(resolved.model.clone());

        let mut progress = Progress::default();
        let started = tokio::select! {
            () = task.cancel.cancelled() => None,
            s = resolved.provider.stream(request) => Some(s),
        };
        let mut stream = match started {
            None => {
                events
                    .send(EventType::Cancelled, json!({}))
                    .await
                    .map_err(emit_failed)?;
                return progress.text_completed(events, "cancelled").await;
            }
            Some(Err(e)) => return provider_failed(events, &progress, &e).await,
            Some(Ok(s)) => s,
        };
        loop {
            let next = tokio::select! {
                biased;
                () = task.cancel.cancelled() => {
                    // Dropping the stream closes the upstream connection now.
                    drop(stream);
                    tracing::info!("cancelled; upstream stream closed");
                    events.send(EventType::Cancelled, json!({})).await.map_err(emit_failed)?;
                    return progress.text_completed(events, "cancelled").await;
                }
                n = tokio::time::timeout(self.idle_timeout, stream.next()) => n,
            };
            let delta = match next {
                Err(_) => {
                    let e = ProviderError::Connection("the provider stopped sending".into());
                    return provider_failed(events, &progress, &e).await;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return provider_failed(events, &progress, &e).await,
                Ok(Some(Ok(d))) => d,
            };
            match delta {
                Delta::Text(t) => {
                    progress.content.push_str(&t);
                    events
                        .send(EventType::TextChunk, json!({"content": t}))
                        .await
                        .map_err(emit_failed)?;
                }
                Delta::Reasoning(r) => {
                    events
                        .send(EventType::ReasoningChunk, json!({"content": r}))
                        .await
                        .map_err(emit_failed)?;
                }
                Delta::Usage(u) => progress.usage = Some(u),
                Delta::Finish(f) => progress.finish_reason = Some(f),
            }
        }
        progress.text_completed(events, "stop").await
    }
}

/// Reports a provider failure: an `error` event (stage `provider`), then `text_completed` with
/// whatever was streamed, so the client sees where the answer stopped.
async fn provider_failed(
    events: &TaskEvents,
    progress: &Progress,
    e: &ProviderError,
) -> Result<(), HandlerError> {
    tracing::warn!(error = %e, streamed = progress.content.len(), "provider failed");
    events
        .error(&ErrorData::new(
            "provider",
            e.code(),
            e.to_string(),
            e.retryable(),
        ))
        .await
        .map_err(emit_failed)?;
    progress.text_completed(events, "error").await
}
