//! One line of a sequential run: an OpenAI chat completion request answered through the text
//! provider layer, tried again after a rate limit or a failure that may pass, and written as the
//! output (or error) file's line.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::batch::jsonl;
use common::llm::{Candidate, ChatRequest, Delta, ToolDef, Usage};
use common::provider::ProviderError;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::config::BatchSettings;

/// A provider's pause after a rate limit, shared by every line (of every job) this process runs
/// on that provider: no line starts before it ends.
#[derive(Debug, Default)]
pub struct Gate {
    until: Mutex<Option<Instant>>,
}

impl Gate {
    /// Waits until the provider's pause (if any) is over.
    pub async fn pass(&self) {
        loop {
            let until = *self.until.lock().await;
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => return,
            }
        }
    }

    /// Pauses the provider for `wait` (a longer pause already set stays).
    pub async fn hold(&self, wait: Duration) {
        let mut until = self.until.lock().await;
        let t = Instant::now() + wait;
        if until.is_none_or(|u| u < t) {
            *until = Some(t);
        }
    }
}

/// The gates of this process, one per provider.
#[derive(Debug, Default)]
pub struct Gates {
    gates: std::sync::Mutex<HashMap<String, Arc<Gate>>>,
}

impl Gates {
    /// The gate of `provider`.
    pub fn of(&self, provider: &str) -> Arc<Gate> {
        let mut gates = self
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(gates.entry(provider.to_owned()).or_default())
    }
}

/// How a line ended: the file it goes to and its line there.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    /// The output file (else the error file).
    pub ok: bool,
    /// The file's line.
    pub line: String,
}

/// Reads an OpenAI chat completion body into a provider request for `candidate`.
pub fn request(body: &Value, candidate: &Candidate) -> Result<ChatRequest, String> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .ok_or("body.messages must be an array")?;
    let tools = match body.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tools)) => tools
            .iter()
            .map(|t| {
                let f = t.get("function").unwrap_or(t);
                serde_json::from_value::<ToolDef>(f.clone()).map_err(|e| format!("body.tools: {e}"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("body.tools must be an array".into()),
    };
    let spec = &candidate.spec;
    let temperature = match (
        body.get("temperature").and_then(Value::as_f64),
        spec.temperature,
    ) {
        (Some(t), Some([lo, hi])) => Some(t.clamp(lo, hi)),
        _ => None,
    };
    let asked = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let max_tokens = match (asked, spec.max_output_tokens) {
        (Some(a), Some(cap)) => Some(a.min(cap)),
        (a, _) => a,
    };
    Ok(ChatRequest {
        model: candidate.upstream.clone(),
        messages,
        tools,
        tool_choice: body.get("tool_choice").filter(|v| !v.is_null()).cloned(),
        temperature,
        max_tokens,
        reasoning: spec.reasoning && body.get("reasoning_effort").is_some_and(|v| !v.is_null()),
    })
}

/// The answer of one request, gathered from its stream.
#[derive(Debug, Default)]
struct Gathered {
    text: String,
    tools: Vec<(Option<String>, Option<String>, String)>,
    usage: Usage,
    finish: Option<String>,
}

async fn ask(candidate: &Candidate, request: ChatRequest) -> Result<Gathered, ProviderError> {
    let mut stream = candidate.provider.stream(request).await?;
    let mut g = Gathered::default();
    while let Some(delta) = stream.next().await {
        match delta? {
            Delta::Text(t) => g.text.push_str(&t),
            Delta::Reasoning(_) => {}
            Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                if g.tools.len() <= index {
                    g.tools.resize(index + 1, (None, None, String::new()));
                }
                let call = &mut g.tools[index];
                if id.is_some() {
                    call.0 = id;
                }
                if name.is_some() {
                    call.1 = name;
                }
                call.2.push_str(&arguments);
            }
            Delta::Usage(u) => g.usage = g.usage.merge(u),
            Delta::Finish(f) => g.finish = Some(f),
        }
    }
    Ok(g)
}

/// The chat completion object for a gathered answer.
fn completion(candidate: &Candidate, g: Gathered) -> Value {
    let tool_calls: Vec<Value> = g
        .tools
        .into_iter()
        .enumerate()
        .map(|(i, (id, name, arguments))| {
            json!({
                "id": id.unwrap_or_else(|| format!("call_{i}")),
                "type": "function",
                "function": {"name": name.unwrap_or_default(), "arguments": arguments},
            })
        })
        .collect();
    let finish = g.finish.unwrap_or_else(|| {
        if tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }
        .to_owned()
    });
    let mut message = json!({"role": "assistant", "content": g.text, "refusal": null});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    json!({
        "id": format!("chatcmpl-{}", Uuid::now_v7().simple()),
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": candidate.upstream,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
        "usage": {
            "prompt_tokens": g.usage.input_tokens,
            "completion_tokens": g.usage.output_tokens,
            "total_tokens": g.usage.input_tokens + g.usage.output_tokens,
        },
    })
}

/// Answers one line: tries it until it succeeds, fails for good, or its tries run out; waits
/// out the provider's gate before each try and sets it after a rate limit.
pub async fn answer(
    candidate: &Candidate,
    gate: &Gate,
    custom_id: &str,
    body: &Value,
    settings: &BatchSettings,
) -> Answered {
    let request_id = format!("req_{}", Uuid::now_v7().simple());
    let request = match request(body, candidate) {
        Ok(r) => r,
        Err(m) => {
            return Answered {
                ok: false,
                line: jsonl::refused_line(custom_id, &request_id, 400, "invalid_request", &m),
            };
        }
    };
    let timeout = Duration::from_secs(settings.line_timeout_secs.max(1));
    let cap = Duration::from_secs(settings.retry_after_cap_secs);
    let base = Duration::from_millis(settings.retry_base_ms.max(1));
    let mut tries = 0;
    loop {
        gate.pass().await;
        tries += 1;
        let result = match tokio::time::timeout(timeout, ask(candidate, request.clone())).await {
            Ok(r) => r,
            Err(_) => Err(ProviderError::Connection(format!(
                "no whole answer within {} s",
                timeout.as_secs()
            ))),
        };
        let error = match result {
            Ok(g) => {
                return Answered {
                    ok: true,
                    line: jsonl::success_line(custom_id, &request_id, &completion(candidate, g)),
                };
            }
            Err(e) => e,
        };
        if error.retryable() && tries <= settings.line_retries {
            let backoff = base.saturating_mul(1 << (tries - 1).min(16));
            let wait = error.retry_after().map_or(backoff, |w| w.min(cap));
            if error.retry_after().is_some() {
                gate.hold(wait).await;
            } else {
                tokio::time::sleep(wait).await;
            }
            continue;
        }
        tracing::info!(custom_id, error = %error, tries, "batch line failed");
        let line = match &error {
            ProviderError::Refused { status, message } => {
                jsonl::refused_line(custom_id, &request_id, *status, error.code(), message)
            }
            _ => jsonl::failed_line(custom_id, error.code(), &error.to_string()),
        };
        return Answered { ok: false, line };
    }
}
