//! The offline, deterministic provider: the default when no provider key is set.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde::Deserialize;

use super::{ChatRequest, Delta, DeltaStream, ProviderError, TextProvider, Usage, content_text};
use crate::payloads::semantic::CONTEXT_HEADER;

/// Words the dummy answer is made of after echoing the prompt.
const FILLER: &[&str] = &[
    "This",
    "is",
    "the",
    "offline",
    "dummy",
    "provider.",
    "Set",
    "a",
    "provider",
    "key",
    "to",
    "get",
    "real",
    "answers.",
];

/// Pacing of the offline `dummy` provider (a worker's `DUMMY__*` settings).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DummySettings {
    /// Tokens per answer.
    pub tokens: usize,
    /// Delay before the first token, milliseconds.
    pub first_token_delay_ms: u64,
    /// Delay between tokens, milliseconds.
    pub token_interval_ms: u64,
}

impl Default for DummySettings {
    fn default() -> Self {
        Self {
            tokens: 24,
            first_token_delay_ms: 0,
            token_interval_ms: 25,
        }
    }
}

/// Answers with the prompt's words followed by filler, paced like a real stream.
#[derive(Debug, Clone)]
pub struct DummyProvider {
    settings: DummySettings,
}

impl DummyProvider {
    /// A dummy provider with the given pacing.
    pub fn new(settings: DummySettings) -> Self {
        Self { settings }
    }
}

/// The first text of the context a chat with `settings.semantic` found, from the system prompt.
fn remembered(request: &ChatRequest) -> Option<String> {
    let system = request
        .messages
        .iter()
        .find(|m| m["role"] == "system")
        .map(|m| content_text(&m["content"]))?;
    let context = &system[system.find(CONTEXT_HEADER)?..];
    let line = context.lines().find(|l| l.starts_with("[1] "))?;
    // `[1] (origin) text`
    let text = line.split_once(") ").map_or(line, |(_, text)| text);
    Some(text.to_owned())
}

/// The tokens of the answer to a request: "Echo:" and the last user message's words, then
/// "Remembered:" and the first text of the context it was given (a chat with
/// `settings.semantic`), then filler.
pub fn answer_tokens(request: &ChatRequest, count: usize) -> Vec<String> {
    let prompt = request
        .messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default();
    let remembered = remembered(request)
        .map(|text| format!("Remembered: {text}"))
        .unwrap_or_default();
    std::iter::once("Echo:")
        .chain(prompt.split_whitespace())
        .chain(remembered.split_whitespace())
        .chain(FILLER.iter().copied().cycle())
        .take(count)
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            }
        })
        .collect()
}

#[async_trait]
impl TextProvider for DummyProvider {
    fn kind(&self) -> &'static str {
        "dummy"
    }

    async fn stream(&self, request: ChatRequest) -> Result<DeltaStream, ProviderError> {
        let s = &self.settings;
        let count = request
            .max_tokens
            .map_or(s.tokens, |m| s.tokens.min(m as usize));
        let tokens = answer_tokens(&request, count);
        let input_tokens = request
            .messages
            .iter()
            .map(|m| content_text(&m["content"]).split_whitespace().count() as u64)
            .sum();
        let usage = Usage {
            input_tokens,
            output_tokens: tokens.len() as u64,
        };
        let first = Duration::from_millis(s.first_token_delay_ms);
        let interval = Duration::from_millis(s.token_interval_ms);
        let stream = futures::stream::iter(tokens.into_iter().enumerate())
            .then(move |(i, token)| async move {
                let pause = if i == 0 { first } else { interval };
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                Ok(Delta::Text(token))
            })
            .chain(futures::stream::iter([
                Ok(Delta::Usage(usage)),
                Ok(Delta::Finish("stop".into())),
            ]));
        Ok(stream.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn deterministic_echo_then_filler() {
        let p = DummyProvider::new(DummySettings {
            tokens: 5,
            first_token_delay_ms: 0,
            token_interval_ms: 0,
        });
        let request = ChatRequest {
            model: "dummy".into(),
            messages: vec![json!({"role": "user", "content": "hello world"})],
            ..ChatRequest::default()
        };
        let deltas: Vec<_> = p.stream(request).await.unwrap().collect().await;
        let text: String = deltas
            .iter()
            .filter_map(|d| match d {
                Ok(Delta::Text(t)) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Echo: hello world This is");
        assert!(deltas.contains(&Ok(Delta::Usage(Usage {
            input_tokens: 2,
            output_tokens: 5
        }))));
    }
}
