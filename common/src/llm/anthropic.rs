//! Anthropic Messages streaming: text, thinking and `tool_use` deltas, system prompt, max tokens.

use std::collections::HashMap;

use async_trait::async_trait;
use eventsource_stream::Event;
use serde_json::{Value, json};

use crate::settings::Secret;

use super::http::{self, SseParser};
use super::{
    ChatRequest, Delta, DeltaStream, ProviderError, TextProvider, Usage, content_text, data_url,
    image_url,
};

/// The API version this client speaks.
const VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the API; used when neither request nor registry give one.
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Thinking budget when reasoning is asked for.
const THINKING_BUDGET: u32 = 2048;

/// A client of `{base_url}/v1/messages`.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    http: reqwest::Client,
    url: String,
    api_key: Option<Secret>,
}

impl AnthropicProvider {
    /// A client for the given base URL (e.g. `https://api.anthropic.com`).
    pub fn new(base_url: &str, api_key: Option<Secret>) -> anyhow::Result<Self> {
        Ok(Self {
            http: http::client()?,
            url: format!("{}/v1/messages", base_url.trim_end_matches('/')),
            api_key,
        })
    }
}

/// Converts OpenAI-format content to Anthropic content blocks.
fn blocks(content: &Value) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| {
                if let Some(url) = image_url(part) {
                    return Some(Ok(match data_url(url) {
                        Some((mime, data)) => json!({"type": "image",
                            "source": {"type": "base64", "media_type": mime, "data": data}}),
                        None => json!({"type": "image", "source": {"type": "url", "url": url}}),
                    }));
                }
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => Some(Ok(json!({"type": "text", "text": part["text"]}))),
                    Some(other) => Some(Err(ProviderError::Unsupported(format!(
                        "anthropic does not take {other} parts"
                    )))),
                    None => None,
                }
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![json!({"type": "text", "text": other.to_string()})]),
    }
}

/// Splits system messages out and converts the rest, merging consecutive same-role turns (the API
/// wants user and assistant to alternate; tool results travel as user turns).
fn convert(messages: &[Value]) -> Result<(String, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for m in messages {
        let (role, content) = match m["role"].as_str().unwrap_or("user") {
            "system" | "developer" => {
                system.push(content_text(&m["content"]));
                continue;
            }
            "assistant" => {
                let mut content = blocks(&m["content"])?;
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let args = call["function"]["arguments"].as_str().unwrap_or("{}");
                    content.push(json!({"type": "tool_use", "id": call["id"],
                        "name": call["function"]["name"],
                        "input": serde_json::from_str::<Value>(args).unwrap_or(json!({}))}));
                }
                ("assistant", content)
            }
            "tool" => (
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": m["tool_call_id"],
                    "content": content_text(&m["content"])}),
                ],
            ),
            _ => ("user", blocks(&m["content"])?),
        };
        match out.last_mut() {
            Some((r, c)) if r == role => c.extend(content),
            _ => out.push((role.to_owned(), content)),
        }
    }
    let messages = out
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system.join("\n\n"), messages))
}

fn tool_choice(choice: &Value) -> Option<Value> {
    match choice {
        Value::String(s) if s == "auto" => Some(json!({"type": "auto"})),
        Value::String(s) if s == "required" => Some(json!({"type": "any"})),
        Value::String(s) if s == "none" => Some(json!({"type": "none"})),
        Value::Object(_) => choice["function"]["name"]
            .as_str()
            .map(|n| json!({"type": "tool", "name": n})),
        _ => None,
    }
}

/// The Messages API request body for `request`: the system prompt apart, OpenAI-format messages
/// converted to content blocks (`tool_use`, `tool_result`, images) in alternating turns, tools,
/// thinking or temperature, `max_tokens` (required by the API) and `stream: true`.
pub fn request_body(request: &ChatRequest) -> Result<Value, ProviderError> {
    let (system, messages) = convert(&request.messages)?;
    let mut max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let mut body = json!({"model": request.model, "messages": messages, "stream": true});
    if !system.is_empty() {
        body["system"] = json!(system);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        body["tools"] = json!(tools);
        if let Some(choice) = request.tool_choice.as_ref().and_then(tool_choice) {
            body["tool_choice"] = choice;
        }
    }
    if request.reasoning {
        // Thinking needs room beyond its budget and refuses a custom temperature.
        max_tokens = max_tokens.max(THINKING_BUDGET + 1024);
        body["thinking"] = json!({"type": "enabled", "budget_tokens": THINKING_BUDGET});
    } else if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    body["max_tokens"] = json!(max_tokens);
    Ok(body)
}

/// Follows the content blocks of one message.
#[derive(Default)]
struct Parser {
    /// Content-block index → tool-call ordinal.
    tools: HashMap<u64, usize>,
    done: bool,
}

fn stop_reason(reason: &str) -> &'static str {
    match reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

impl SseParser for Parser {
    fn event(&mut self, event: &Event) -> Result<Vec<Delta>, ProviderError> {
        let data = http::json(event)?;
        let index = data["index"].as_u64().unwrap_or(0);
        Ok(
            match data["type"].as_str().unwrap_or(event.event.as_str()) {
                "message_start" => {
                    let u = &data["message"]["usage"];
                    vec![Delta::Usage(Usage {
                        input_tokens: u["input_tokens"].as_u64().unwrap_or(0),
                        output_tokens: 0,
                    })]
                }
                "content_block_start" => {
                    let block = &data["content_block"];
                    if block["type"] == "tool_use" {
                        let ordinal = self.tools.len();
                        self.tools.insert(index, ordinal);
                        vec![Delta::ToolCall {
                            index: ordinal,
                            id: block["id"].as_str().map(str::to_owned),
                            name: block["name"].as_str().map(str::to_owned),
                            arguments: String::new(),
                        }]
                    } else {
                        Vec::new()
                    }
                }
                "content_block_delta" => {
                    let delta = &data["delta"];
                    let text = |k: &str| delta[k].as_str().unwrap_or_default().to_owned();
                    match delta["type"].as_str() {
                        Some("text_delta") => vec![Delta::Text(text("text"))],
                        Some("thinking_delta") => vec![Delta::Reasoning(text("thinking"))],
                        Some("input_json_delta") => vec![Delta::ToolCall {
                            index: self.tools.get(&index).copied().unwrap_or(0),
                            id: None,
                            name: None,
                            arguments: text("partial_json"),
                        }],
                        _ => Vec::new(),
                    }
                }
                "message_delta" => {
                    let mut out = Vec::new();
                    if let Some(r) = data["delta"]["stop_reason"].as_str() {
                        out.push(Delta::Finish(stop_reason(r).to_owned()));
                    }
                    if let Some(n) = data["usage"]["output_tokens"].as_u64() {
                        out.push(Delta::Usage(Usage {
                            input_tokens: 0,
                            output_tokens: n,
                        }));
                    }
                    out
                }
                "message_stop" => {
                    self.done = true;
                    Vec::new()
                }
                "error" => {
                    let kind = data["error"]["type"].as_str().unwrap_or("api_error");
                    return Err(match kind {
                        "rate_limit_error" => ProviderError::RateLimited { retry_after: None },
                        "overloaded_error" => ProviderError::Upstream { status: 529 },
                        "api_error" => ProviderError::Upstream { status: 500 },
                        _ => ProviderError::Protocol(format!("error event: {kind}")),
                    });
                }
                _ => Vec::new(),
            },
        )
    }

    fn done(&self) -> bool {
        self.done
    }
}

#[async_trait]
impl TextProvider for AnthropicProvider {
    fn kind(&self) -> &'static str {
        "anthropic"
    }

    async fn stream(&self, request: ChatRequest) -> Result<DeltaStream, ProviderError> {
        let mut builder = self
            .http
            .post(&self.url)
            .header("anthropic-version", VERSION)
            .json(&request_body(&request)?);
        if let Some(key) = &self.api_key {
            builder = builder.header("x-api-key", key.expose());
        }
        let response = http::send(builder, self.api_key.as_ref()).await?;
        Ok(http::sse_stream(response, Parser::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_system_tools_and_images() {
        let messages = vec![
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "user", "content": [{"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"location\":\"Paris\"}"}}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}),
            json!({"role": "user", "content": "thanks"}),
        ];
        let (system, out) = convert(&messages).unwrap();
        assert_eq!(system, "be brief");
        assert_eq!(
            out[0]["content"][1]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "AAAA"})
        );
        assert_eq!(out[1]["content"][0]["input"], json!({"location": "Paris"}));
        assert_eq!(out[2]["role"], "user");
        assert_eq!(out[2]["content"][0]["type"], "tool_result");
        assert_eq!(out[2]["content"][1]["text"], "thanks");
        assert_eq!(out.len(), 3);
    }
}
