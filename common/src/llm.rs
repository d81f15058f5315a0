//! Text providers behind one trait: OpenAI-compatible, Anthropic, Gemini and the offline dummy,
//! and the plan of which provider and model answer a request.

pub mod anthropic;
pub mod dummy;
pub mod gemini;
mod http;
pub mod openai;
mod plan;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::provider::ProviderError;

pub use anthropic::AnthropicProvider;
pub use dummy::{DummyProvider, DummySettings};
pub use gemini::GeminiProvider;
pub use openai::OpenAiProvider;
pub use plan::{
    Candidate, NO_KEY_NOTE, Plan, PlanError, ProviderAccess, Providers, provider_access_from_env,
};

/// A tool the model may call (OpenAI's function shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    /// The function name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    #[serde(default)]
    pub parameters: Value,
}

/// What a provider is asked for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The upstream model id.
    pub model: String,
    /// The conversation in OpenAI's message format (`role`, `content`, `tool_calls`,
    /// `tool_call_id`), oldest first; each provider converts it to its own.
    pub messages: Vec<Value>,
    /// Tools the model may call.
    pub tools: Vec<ToolDef>,
    /// OpenAI's `tool_choice` (`auto`, `none`, `required`, or a named function).
    pub tool_choice: Option<Value>,
    /// Sampling temperature (already clamped to the model's range; absent when it refuses one).
    pub temperature: Option<f64>,
    /// Output limit.
    pub max_tokens: Option<u32>,
    /// Ask for the model's reasoning (thinking) where the provider streams it.
    pub reasoning: bool,
}

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

impl Usage {
    /// Combines partial reports (Anthropic sends input and output counts in different events).
    pub fn merge(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.max(other.input_tokens),
            output_tokens: self.output_tokens.max(other.output_tokens),
        }
    }
}

/// One streamed piece of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// Answer text.
    Text(String),
    /// Reasoning text.
    Reasoning(String),
    /// A piece of a tool call; pieces with the same `index` form one call.
    ToolCall {
        /// Which call (0, 1, ...).
        index: usize,
        /// The call id, on its first piece.
        id: Option<String>,
        /// The function name, on its first piece.
        name: Option<String>,
        /// A piece of the JSON arguments.
        arguments: String,
    },
    /// Token counts (possibly partial; merged).
    Usage(Usage),
    /// Why generation stopped, in OpenAI's words (`stop`, `length`, `tool_calls`, ...).
    Finish(String),
}

/// A stream of deltas; dropping it closes the upstream connection.
pub type DeltaStream = BoxStream<'static, Result<Delta, ProviderError>>;

/// A text provider that streams token by token.
#[async_trait]
pub trait TextProvider: Send + Sync {
    /// The wire format's name (`openai`, `anthropic`, `gemini`, `dummy`).
    fn kind(&self) -> &'static str;
    /// Starts generating; resolves once the provider accepted the request.
    async fn stream(&self, request: ChatRequest) -> Result<DeltaStream, ProviderError>;
}

/// The text of a message's content (a string, or the text parts of a list).
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// An image part's URL, when the part is one.
pub fn image_url(part: &Value) -> Option<&str> {
    if part.get("type").and_then(Value::as_str) != Some("image_url") {
        return None;
    }
    let url = &part["image_url"];
    url.get("url")
        .and_then(Value::as_str)
        .or_else(|| url.as_str())
}

/// Splits a `data:<mime>;base64,<data>` URL.
pub fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((mime, data))
}
