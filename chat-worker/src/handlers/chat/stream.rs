//! Relaying one provider stream to the client, and what it produced so far.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use common::events::{ErrorData, EventType, TaskEvents, TextCompleted};
use common::llm::{Delta, DeltaStream, ProviderError, Usage};
use common::worker::HandlerError;

use super::speech::SpeechFeed;

/// Most events written in one round trip.
const MAX_BATCH: usize = 64;

/// How one provider stream ended.
pub enum StreamEnd {
    /// The answer is complete and `text_completed` was sent.
    Finished,
    /// The client cancelled; `cancelled` and `text_completed` were sent.
    Cancelled,
    /// The provider failed; nothing about it was sent yet.
    Failed(ProviderError),
}

#[derive(Default)]
struct ToolCall {
    id: String,
    name: String,
    arguments: String,
}

/// What the streams of a task produced.
#[derive(Default)]
pub struct Progress {
    content: String,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    tool_calls: BTreeMap<usize, ToolCall>,
    /// The tool calls of the answer, as sent in `text_completed`.
    final_calls: Vec<Value>,
    output_sent: bool,
    /// The finish reason sent in `text_completed`.
    final_finish: String,
    /// Provider and model of the attempt that answered.
    answered_by: Option<(String, String)>,
    /// Where the answer's text is also sent to be spoken, for a chat with speech.
    speech: Option<SpeechFeed>,
}

impl Progress {
    /// Progress of a chat whose text is also spoken through `speech`.
    pub fn speaking(speech: Option<SpeechFeed>) -> Self {
        Self {
            speech,
            ..Self::default()
        }
    }

    /// Whether text or reasoning reached the client (then no retry or fallback may follow).
    pub fn output_sent(&self) -> bool {
        self.output_sent
    }

    /// Records which provider and model the current attempt uses.
    pub fn set_answered_by(&mut self, provider: &str, model: &str) {
        self.answered_by = Some((provider.to_owned(), model.to_owned()));
    }

    /// Provider and model of the attempt that answered.
    pub fn answered_by(&self) -> (Option<&str>, Option<&str>) {
        match &self.answered_by {
            Some((p, m)) => (Some(p), Some(m)),
            None => (None, None),
        }
    }

    /// The text streamed.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// Token counts, if reported.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The finish reason sent to the client (`error` when none was sent).
    pub fn finish_reason(&self) -> &str {
        if self.final_finish.is_empty() {
            "error"
        } else {
            &self.final_finish
        }
    }

    /// The answer's tool calls, if any.
    pub fn tool_calls_json(&self) -> Option<Value> {
        (!self.final_calls.is_empty()).then(|| json!({"tool_calls": self.final_calls}))
    }

    /// Forwards deltas as events until the stream ends, fails or the task is cancelled.
    pub async fn relay(
        &mut self,
        mut stream: DeltaStream,
        events: &TaskEvents,
        cancel: &CancellationToken,
        idle_timeout: Duration,
    ) -> Result<StreamEnd, HandlerError> {
        // Tool calls are per attempt: a failed attempt's partial calls are not the answer's.
        self.tool_calls.clear();
        loop {
            let next = tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    // Dropping the stream closes the upstream connection now.
                    drop(stream);
                    tracing::info!("cancelled; upstream stream closed");
                    self.cancelled(events).await?;
                    return Ok(StreamEnd::Cancelled);
                }
                n = tokio::time::timeout(idle_timeout, stream.next()) => n,
            };
            let first = match next {
                Err(_) => {
                    return Ok(StreamEnd::Failed(ProviderError::Connection(
                        "the provider stopped sending".into(),
                    )));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Ok(StreamEnd::Failed(e)),
                Ok(Some(Ok(d))) => d,
            };
            // Deltas that arrived while the last events were being written go out together, in
            // one round trip; nothing waits for more to arrive.
            let mut outgoing = Vec::new();
            self.apply(first, &mut outgoing);
            let mut end = None;
            while !outgoing.is_empty() && outgoing.len() < MAX_BATCH {
                match stream.next().now_or_never() {
                    Some(Some(Ok(d))) => self.apply(d, &mut outgoing),
                    Some(Some(Err(e))) => {
                        end = Some(StreamEnd::Failed(e));
                        break;
                    }
                    Some(None) => {
                        end = Some(StreamEnd::Finished);
                        break;
                    }
                    None => break,
                }
            }
            events.send_all(outgoing).await?;
            match end {
                Some(StreamEnd::Finished) => break,
                Some(failed) => return Ok(failed),
                None => {}
            }
        }
        self.finish(events).await?;
        Ok(StreamEnd::Finished)
    }

    /// Takes in one delta; the events it makes are appended to `outgoing`.
    fn apply(&mut self, delta: Delta, outgoing: &mut Vec<(EventType, Value)>) {
        match delta {
            Delta::Text(t) => {
                self.content.push_str(&t);
                self.output_sent = true;
                if let Some(speech) = &self.speech {
                    speech.push(&t);
                }
                outgoing.push((EventType::TextChunk, json!({"content": t})));
            }
            Delta::Reasoning(r) => {
                self.output_sent = true;
                outgoing.push((EventType::ReasoningChunk, json!({"content": r})));
            }
            Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                let call = self.tool_calls.entry(index).or_default();
                if let Some(id) = id {
                    call.id = id;
                }
                if let Some(name) = name {
                    call.name.push_str(&name);
                }
                call.arguments.push_str(&arguments);
            }
            Delta::Usage(u) => self.usage = Some(self.usage.unwrap_or_default().merge(u)),
            Delta::Finish(f) => self.finish_reason = Some(f),
        }
    }

    /// The answer is whole: one `tool_start` per tool call, then `text_completed`.
    async fn finish(&mut self, events: &TaskEvents) -> Result<(), HandlerError> {
        let mut calls = Vec::new();
        for (index, call) in &self.tool_calls {
            let id = if call.id.is_empty() {
                format!("call_{index}")
            } else {
                call.id.clone()
            };
            let arguments = if call.arguments.is_empty() {
                "{}".to_owned()
            } else {
                call.arguments.clone()
            };
            events.tool_start(&id, &call.name, &arguments).await?;
            calls.push(json!({"id": id, "type": "function",
                "function": {"name": call.name, "arguments": arguments}}));
        }
        let finish = match self.finish_reason.as_deref() {
            _ if !calls.is_empty() => "tool_calls",
            Some(f) => f,
            None => "stop",
        }
        .to_owned();
        self.text_completed(events, &finish, calls).await
    }

    async fn text_completed(
        &mut self,
        events: &TaskEvents,
        finish: &str,
        tool_calls: Vec<Value>,
    ) -> Result<(), HandlerError> {
        let mut done = TextCompleted::new(self.content.clone(), json!(self.usage), finish);
        if !tool_calls.is_empty() {
            done.tool_calls = Some(tool_calls.clone());
        }
        self.final_finish = finish.to_owned();
        self.final_calls = tool_calls;
        events.text_completed(&done).await?;
        Ok(())
    }

    /// `cancelled`, then `text_completed` with what was streamed.
    pub async fn cancelled(&mut self, events: &TaskEvents) -> Result<(), HandlerError> {
        events.cancelled().await?;
        self.text_completed(events, "cancelled", Vec::new()).await
    }

    /// An `error` event (stage `provider`), then `text_completed` with whatever was streamed, so
    /// the client sees where the answer stopped.
    pub async fn provider_failed(
        &mut self,
        events: &TaskEvents,
        e: &ProviderError,
    ) -> Result<(), HandlerError> {
        tracing::warn!(error = %e, streamed = self.content.len(), "provider failed");
        let mut error = ErrorData::new("provider", e.code(), e.to_string(), e.retryable());
        error.retry_after_secs = e.retry_after().map(|d| d.as_secs().max(1));
        events.error(&error).await?;
        self.text_completed(events, "error", Vec::new()).await
    }
}
