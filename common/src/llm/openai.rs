//! OpenAI Chat Completions streaming, for OpenAI and every server that speaks its API (Groq,
//! DeepSeek, xAI, Perplexity, OpenRouter, Ollama, vLLM).

use async_trait::async_trait;
use eventsource_stream::Event;
use serde_json::{Value, json};

use crate::settings::Secret;

use super::http::{self, SseParser};
use super::{ChatRequest, Delta, DeltaStream, ProviderError, TextProvider, Usage};

/// A client of `{base_url}/chat/completions`.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    http: reqwest::Client,
    url: String,
    api_key: Option<Secret>,
}

impl OpenAiProvider {
    /// A client for the given base URL (e.g. `https://api.openai.com/v1`).
    pub fn new(base_url: &str, api_key: Option<Secret>) -> anyhow::Result<Self> {
        Ok(Self {
            http: http::client()?,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
        })
    }
}

/// The Chat Completions request body for `request`: its messages as they are (already OpenAI's
/// format), tools, sampling settings, and `stream: true` with `stream_options.include_usage`.
/// Never fails; a `Result` like the other providers' `request_body`.
pub fn request_body(request: &ChatRequest) -> Result<Value, ProviderError> {
    let mut body = json!({
        "model": request.model,
        "messages": request.messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": t}))
            .collect();
        body["tools"] = json!(tools);
        if let Some(choice) = &request.tool_choice {
            body["tool_choice"] = choice.clone();
        }
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(m) = request.max_tokens {
        body["max_completion_tokens"] = json!(m);
    }
    Ok(body)
}

/// Parses `data:` chunks until `[DONE]`.
#[derive(Default)]
struct Parser {
    done: bool,
}

impl SseParser for Parser {
    fn event(&mut self, event: &Event) -> Result<Vec<Delta>, ProviderError> {
        if event.data.trim() == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        let chunk = http::json(event)?;
        if let Some(message) = chunk["error"]["message"].as_str() {
            let message: String = message.chars().take(200).collect();
            return Err(ProviderError::Protocol(format!(
                "error in stream: {message}"
            )));
        }
        let mut out = Vec::new();
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            // DeepSeek, vLLM and others stream reasoning as `reasoning_content`.
            for (field, reasoning) in [("reasoning_content", true), ("content", false)] {
                if let Some(text) = delta[field].as_str().filter(|t| !t.is_empty()) {
                    out.push(if reasoning {
                        Delta::Reasoning(text.to_owned())
                    } else {
                        Delta::Text(text.to_owned())
                    });
                }
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                out.push(Delta::ToolCall {
                    index: call["index"].as_u64().unwrap_or(0) as usize,
                    id: call["id"].as_str().map(str::to_owned),
                    name: call["function"]["name"].as_str().map(str::to_owned),
                    arguments: call["function"]["arguments"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                out.push(Delta::Finish(f.to_owned()));
            }
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            out.push(Delta::Usage(Usage {
                input_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
                output_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
            }));
        }
        Ok(out)
    }

    fn done(&self) -> bool {
        self.done
    }
}

#[async_trait]
impl TextProvider for OpenAiProvider {
    fn kind(&self) -> &'static str {
        "openai"
    }

    async fn stream(&self, request: ChatRequest) -> Result<DeltaStream, ProviderError> {
        let mut builder = self.http.post(&self.url).json(&request_body(&request)?);
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let response = http::send(builder, self.api_key.as_ref()).await?;
        Ok(http::sse_stream(response, Parser::default()))
    }
}
