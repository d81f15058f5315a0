//! The `chat.completion.chunk`s of a streamed answer, written as the task's events arrive, ending
//! with `[DONE]`.

use serde_json::{Value, json};

use super::error::OpenAiError;
use super::response::{CompletionMeta, TaskEvent, finish_reason, tool_call, usage};

/// The payload of the stream's last event.
pub const DONE: &str = "[DONE]";

/// Turns a task's events into the `data:` payloads of a Chat Completions stream.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    meta: CompletionMeta,
    include_usage: bool,
    role_sent: bool,
    tool_calls: usize,
    /// An `error` was sent (or the answer finished): later output is not part of it.
    closed: bool,
    done: bool,
}

impl ChunkWriter {
    /// A writer for one completion.
    pub fn new(meta: CompletionMeta, include_usage: bool) -> Self {
        Self {
            meta,
            include_usage,
            role_sent: false,
            tool_calls: 0,
            closed: false,
            done: false,
        }
    }

    /// Whether `[DONE]` was written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// A chunk with the given `choices`.
    fn chunk_with(&self, choices: Value) -> Value {
        let mut chunk = json!({
            "id": self.meta.id,
            "object": "chat.completion.chunk",
            "created": self.meta.created,
            "model": self.meta.model,
            "system_fingerprint": null,
            "choices": choices,
        });
        if self.include_usage {
            // As OpenAI does: every chunk has `usage: null` but the last one.
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        self.chunk_with(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
        )
        .to_string()
    }

    /// The opening chunk with the role, once.
    fn open(&mut self, out: &mut Vec<String>) {
        if !self.role_sent {
            self.role_sent = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn delta(&mut self, out: &mut Vec<String>, delta: Value) {
        self.open(out);
        out.push(self.chunk(delta, None));
    }

    fn tool_call(&mut self, out: &mut Vec<String>, call: &Value) {
        let mut call = call.clone();
        call["index"] = json!(self.tool_calls);
        self.tool_calls += 1;
        self.delta(out, json!({"tool_calls": [call]}));
    }

    /// The payloads one event adds to the stream (often none).
    pub fn write(&mut self, event: &TaskEvent) -> Vec<String> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.meta.observe(event);
        let data = &event.data;
        match event.kind.as_str() {
            _ if self.closed && event.kind != "complete" => {}
            "text_chunk" => self.delta(&mut out, json!({"content": data["content"]})),
            "reasoning_chunk" => {
                self.delta(&mut out, json!({"reasoning_content": data["content"]}));
            }
            "tool_start" => self.tool_call(&mut out, &tool_call(data)),
            "text_completed" => {
                if self.tool_calls == 0
                    && let Some(calls) = data["tool_calls"].as_array()
                {
                    for call in calls {
                        self.tool_call(&mut out, call);
                    }
                }
                self.open(&mut out);
                let finish = if self.tool_calls > 0 {
                    "tool_calls"
                } else {
                    finish_reason(data["finish_reason"].as_str())
                };
                out.push(self.chunk(json!({}), Some(finish)));
                if self.include_usage {
                    let mut last = self.chunk_with(json!([]));
                    last["usage"] = usage(&data["usage"]);
                    out.push(last.to_string());
                }
                self.closed = true;
            }
            "error" => {
                out.push(OpenAiError::from_event(data).body().to_string());
                self.closed = true;
            }
            "complete" => {
                out.push(DONE.to_owned());
                self.done = true;
            }
            _ => {}
        }
        out
    }

    /// Ends the stream early with an error (e.g. no event for too long).
    pub fn fail(&mut self, error: &OpenAiError) -> Vec<String> {
        if self.done {
            return Vec::new();
        }
        self.closed = true;
        self.done = true;
        vec![error.body().to_string(), DONE.to_owned()]
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

    fn run(writer: &mut ChunkWriter, events: &[TaskEvent]) -> Vec<Value> {
        events
            .iter()
            .flat_map(|e| writer.write(e))
            .map(|p| serde_json::from_str(&p).unwrap_or(json!(p)))
            .collect()
    }

    #[test]
    fn a_text_answer_streams_role_deltas_finish_usage_and_done() {
        let mut w = ChunkWriter::new(meta(), true);
        let out = run(
            &mut w,
            &[
                TaskEvent::new("working", json!({})),
                TaskEvent::new("model_in_use", json!({"provider": "p", "model": "real"})),
                TaskEvent::new("text_chunk", json!({"content": "Hel"})),
                TaskEvent::new("reasoning_chunk", json!({"content": "hmm"})),
                TaskEvent::new("text_chunk", json!({"content": "lo"})),
                TaskEvent::new(
                    "text_completed",
                    json!({"content": "Hello", "finish_reason": "cancelled",
                        "usage": {"input_tokens": 3, "output_tokens": 2}}),
                ),
                TaskEvent::new("tts_not_requested", json!({})),
                TaskEvent::new("complete", json!({})),
            ],
        );
        let deltas: Vec<&Value> = out.iter().map(|c| &c["choices"][0]["delta"]).collect();
        assert_eq!(deltas[0], &json!({"role": "assistant", "content": ""}));
        assert_eq!(deltas[1], &json!({"content": "Hel"}));
        assert_eq!(deltas[2], &json!({"reasoning_content": "hmm"}));
        assert_eq!(out[4]["choices"][0]["finish_reason"], "stop");
        assert_eq!(out[4]["usage"], Value::Null);
        assert_eq!(out[5]["choices"], json!([]));
        assert_eq!(
            out[5]["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
        );
        assert_eq!(out[6], json!(DONE));
        assert_eq!(out.len(), 7);
        assert!(out[..6].iter().all(|c| c["model"] == "real"
            && c["id"] == "chatcmpl-t"
            && c["object"] == "chat.completion.chunk"));
        assert!(w.is_done());
    }

    #[test]
    fn tool_calls_are_indexed_and_an_error_mid_stream_closes_the_answer() {
        let mut w = ChunkWriter::new(meta(), false);
        let out = run(
            &mut w,
            &[
                TaskEvent::new(
                    "tool_start",
                    json!({"call_id": "c1", "name": "a", "arguments": "{}"}),
                ),
                TaskEvent::new(
                    "tool_start",
                    json!({"call_id": "c2", "name": "b", "arguments": "{\"x\":1}"}),
                ),
                TaskEvent::new("text_completed", json!({"finish_reason": "tool_calls"})),
                TaskEvent::new("complete", json!({})),
            ],
        );
        let call = &out[2]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            call,
            &json!({"index": 1, "id": "c2", "type": "function",
                "function": {"name": "b", "arguments": "{\"x\":1}"}})
        );
        assert_eq!(out[3]["choices"][0]["finish_reason"], "tool_calls");
        assert!(out[3].get("usage").is_none());

        let mut w = ChunkWriter::new(meta(), false);
        let out = run(
            &mut w,
            &[
                TaskEvent::new("text_chunk", json!({"content": "par"})),
                TaskEvent::new(
                    "error",
                    json!({"stage": "provider", "code": "upstream_connection",
                        "message": "connection to the provider failed", "retryable": true}),
                ),
                TaskEvent::new("text_completed", json!({"finish_reason": "error"})),
                TaskEvent::new("complete", json!({})),
            ],
        );
        assert_eq!(out.len(), 4);
        assert_eq!(out[2]["error"]["code"], "upstream_connection");
        assert_eq!(out[3], json!(DONE));
    }
}
