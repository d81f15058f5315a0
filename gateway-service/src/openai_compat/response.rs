//! A task's events in OpenAI's shapes: the decoded event, what every object of a completion shares,
//! and the `chat.completion` object gathered from all the events.

use serde_json::{Value, json};

use super::error::OpenAiError;
use crate::hub::Entry;

/// One event of the task, decoded from its response-stream entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    /// The event type (`text_chunk`, `complete`, ...).
    pub kind: String,
    /// Its `data`.
    pub data: Value,
}

impl TaskEvent {
    /// Decodes an entry; an unreadable payload has `null` data.
    pub fn from_entry(entry: &Entry) -> Self {
        let mut event: Value = serde_json::from_str(&entry.payload).unwrap_or(Value::Null);
        Self {
            kind: entry.kind.clone(),
            data: event["data"].take(),
        }
    }

    /// An event with the given type and data.
    pub fn new(kind: &str, data: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            data,
        }
    }

    /// Whether this event settles how to answer: the first output, the end, or a failure
    /// (`working` and `model_in_use` do not).
    pub fn is_decisive(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "text_chunk"
                | "reasoning_chunk"
                | "tool_start"
                | "text_completed"
                | "text_not_requested"
                | "cancelled"
                | "error"
                | "complete"
        )
    }
}

/// What every object of one completion shares.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionMeta {
    /// `chatcmpl-<task_id>`.
    pub id: String,
    /// Unix seconds when the request arrived.
    pub created: u64,
    /// The model from the latest `model_in_use`, else the one requested.
    pub model: String,
}

impl CompletionMeta {
    /// Follows `model_in_use`: the model that answers names the completion.
    pub fn observe(&mut self, event: &TaskEvent) {
        if event.kind == "model_in_use"
            && let Some(model) = event.data["model"].as_str()
        {
            self.model = model.to_owned();
        }
    }
}

/// OpenAI's `finish_reason` for the worker's.
pub fn finish_reason(worker: Option<&str>) -> &'static str {
    match worker {
        Some("length") => "length",
        Some("tool_calls") => "tool_calls",
        Some("content_filter") => "content_filter",
        // `cancelled` and `error` have no OpenAI counterpart; the answer simply stopped.
        _ => "stop",
    }
}

/// OpenAI's `usage` for the worker's `{input_tokens, output_tokens}`; `null` when unknown.
pub fn usage(worker: &Value) -> Value {
    match (
        worker["input_tokens"].as_u64(),
        worker["output_tokens"].as_u64(),
    ) {
        (None, None) => Value::Null,
        (input, output) => {
            let (input, output) = (input.unwrap_or(0), output.unwrap_or(0));
            json!({"prompt_tokens": input, "completion_tokens": output,
                "total_tokens": input + output})
        }
    }
}

/// A `tool_start`'s data as an OpenAI tool call.
pub fn tool_call(data: &Value) -> Value {
    json!({"id": data["call_id"], "type": "function",
        "function": {"name": data["name"], "arguments": data["arguments"]}})
}

/// Everything a task's events said about the answer, for a non-streaming response.
#[derive(Debug, Clone)]
pub struct Transcript {
    meta: CompletionMeta,
    content: String,
    reasoning: String,
    tool_calls: Vec<Value>,
    usage: Value,
    finish_reason: Option<String>,
    error: Option<Value>,
}

impl Transcript {
    /// An empty transcript.
    pub fn new(meta: CompletionMeta) -> Self {
        Self {
            meta,
            content: String::new(),
            reasoning: String::new(),
            tool_calls: Vec::new(),
            usage: Value::Null,
            finish_reason: None,
            error: None,
        }
    }

    /// Takes one event into account.
    pub fn absorb(&mut self, event: &TaskEvent) {
        self.meta.observe(event);
        let data = &event.data;
        match event.kind.as_str() {
            "text_chunk" => self
                .content
                .push_str(data["content"].as_str().unwrap_or_default()),
            "reasoning_chunk" => self
                .reasoning
                .push_str(data["content"].as_str().unwrap_or_default()),
            "tool_start" => self.tool_calls.push(tool_call(data)),
            "text_completed" => {
                self.usage = usage(&data["usage"]);
                self.finish_reason = data["finish_reason"].as_str().map(str::to_owned);
                // The completed list is authoritative when the worker sends one.
                if let Some(calls) = data["tool_calls"].as_array().filter(|c| !c.is_empty()) {
                    self.tool_calls = calls.clone();
                }
            }
            // A turn the history could not keep is still a whole answer.
            "error" if self.error.is_none() && data["stage"] != "persistence" => {
                self.error = Some(data.clone());
            }
            _ => {}
        }
    }

    /// The first failure, if any: an answer cut short by one is no answer.
    pub fn error(&self) -> Option<OpenAiError> {
        self.error.as_ref().map(OpenAiError::from_event)
    }

    /// The `chat.completion` object.
    pub fn completion(&self) -> Value {
        let content = if self.content.is_empty() && !self.tool_calls.is_empty() {
            Value::Null
        } else {
            json!(self.content)
        };
        let mut message = json!({"role": "assistant", "content": content, "refusal": null});
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = json!(self.tool_calls);
        }
        if !self.reasoning.is_empty() {
            message["reasoning_content"] = json!(self.reasoning);
        }
        let finish = if self.tool_calls.is_empty() {
            finish_reason(self.finish_reason.as_deref())
        } else {
            "tool_calls"
        };
        json!({
            "id": self.meta.id,
            "object": "chat.completion",
            "created": self.meta.created,
            "model": self.meta.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "message": message, "logprobs": null,
                "finish_reason": finish}],
            "usage": self.usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> CompletionMeta {
        CompletionMeta {
            id: "chatcmpl-t".into(),
            created: 7,
            model: "asked".into(),
        }
    }

    #[test]
    fn an_answer_the_history_could_not_keep_is_still_an_answer() {
        let mut t = Transcript::new(meta());
        for e in [
            TaskEvent::new("text_chunk", json!({"content": "whole"})),
            TaskEvent::new(
                "text_completed",
                json!({"content": "whole", "finish_reason": "stop", "usage": null}),
            ),
            TaskEvent::new(
                "error",
                json!({"stage": "persistence", "code": "persistence_failed",
                    "message": "not saved", "retryable": false}),
            ),
        ] {
            t.absorb(&e);
        }
        assert!(t.error().is_none());
        assert_eq!(t.completion()["choices"][0]["message"]["content"], "whole");
        t.absorb(&TaskEvent::new(
            "error",
            json!({"stage": "provider", "code": "upstream_error", "message": "cut",
                "retryable": false}),
        ));
        assert!(t.error().is_some());
    }

    #[test]
    fn the_transcript_is_a_chat_completion() {
        let mut t = Transcript::new(meta());
        for e in [
            TaskEvent::new("model_in_use", json!({"provider": "p", "model": "real"})),
            TaskEvent::new(
                "tool_start",
                json!({"call_id": "c1", "name": "w", "arguments": "{}"}),
            ),
            TaskEvent::new(
                "text_completed",
                json!({"content": "", "finish_reason": "tool_calls", "usage": null,
                    "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "w", "arguments": "{}"}}]}),
            ),
        ] {
            t.absorb(&e);
        }
        let c = t.completion();
        assert_eq!(c["model"], "real");
        assert_eq!(c["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(c["choices"][0]["message"]["tool_calls"][0]["id"], "c1");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c["usage"], Value::Null);
        assert!(t.error().is_none());
    }
}
