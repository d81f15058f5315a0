//! OpenAI Chat Completions streaming, for OpenAI and every server that speaks its API.

use std::time::Duration;

use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use serde_json::{Value, json};

use common::settings::Secret;

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
    pub fn new(base_url: String, api_key: Option<Secret>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            http,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
        })
    }

    fn body(request: &ChatRequest) -> Value {
        let mut body = json!({
            "model": request.model,
            "messages": request.messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = request.max_tokens {
            body["max_completion_tokens"] = json!(m);
        }
        body
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: WireDelta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    /// DeepSeek, vLLM and others stream reasoning under this name.
    #[serde(default)]
    reasoning_content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// Maps a chunk to the deltas it carries.
fn deltas_of(chunk: Chunk) -> Vec<Delta> {
    let mut out = Vec::new();
    for choice in chunk.choices {
        if let Some(r) = choice.delta.reasoning_content.filter(|r| !r.is_empty()) {
            out.push(Delta::Reasoning(r));
        }
        if let Some(c) = choice.delta.content.filter(|c| !c.is_empty()) {
            out.push(Delta::Text(c));
        }
        if let Some(f) = choice.finish_reason {
            out.push(Delta::Finish(f));
        }
    }
    if let Some(u) = chunk.usage {
        out.push(Delta::Usage(Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
        }));
    }
    out
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The provider's own error message, cut short; never echoes request headers.
async fn error_message(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or(text);
    message.chars().take(300).collect()
}

#[async_trait]
impl TextProvider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai"
    }

    async fn stream(&self, request: ChatRequest) -> Result<DeltaStream, ProviderError> {
        let mut builder = self.http.post(&self.url).json(&Self::body(&request));
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let response = builder
            .send()
            .await
            .map_err(|e| ProviderError::Connection(without_url(&e)))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ProviderError::RateLimited {
                retry_after: retry_after(response.headers()),
            });
        }
        if status.is_server_error() {
            return Err(ProviderError::Upstream {
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(ProviderError::Refused {
                status: status.as_u16(),
                message: error_message(response).await,
            });
        }
        let events = response.bytes_stream().eventsource();
        // `done` is set by `[DONE]`; a stream that ends without it broke off upstream.
        let stream = futures::stream::unfold(
            (events, false, Vec::<Delta>::new().into_iter()),
            |(mut events, done, mut pending)| async move {
                loop {
                    if let Some(d) = pending.next() {
                        return Some((Ok(d), (events, done, pending)));
                    }
                    if done {
                        return None;
                    }
                    match events.next().await {
                        Some(Ok(event)) => {
                            if event.data.trim() == "[DONE]" {
                                return None;
                            }
                            match serde_json::from_str::<Chunk>(&event.data) {
                                Ok(chunk) => pending = deltas_of(chunk).into_iter(),
                                Err(e) => {
                                    let err =
                                        ProviderError::Protocol(format!("malformed chunk: {e}"));
                                    return Some((Err(err), (events, true, pending)));
                                }
                            }
                        }
                        Some(Err(e)) => {
                            let err = ProviderError::Connection(format!("stream broke off: {e}"));
                            return Some((Err(err), (events, true, pending)));
                        }
                        None => {
                            let err = ProviderError::Connection(
                                "stream ended before the provider finished".into(),
                            );
                            return Some((Err(err), (events, true, pending)));
                        }
                    }
                }
            },
        );
        Ok(stream.boxed())
    }
}

/// A reqwest error's description without the URL (which may carry a key in a query string).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    kind.to_owned()
}
