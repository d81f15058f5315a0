//! Text providers behind one trait, and the registry that picks one for a request.

mod dummy;
mod openai;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use dummy::DummyProvider;
pub use openai::OpenAiProvider;

use crate::config::Settings;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// A string, or a list of parts (`{"type":"text"}`, `{"type":"image_url"}`).
    pub content: Value,
}

/// What a provider is asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The upstream model id.
    pub model: String,
    /// The conversation, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature, when given.
    pub temperature: Option<f64>,
    /// Output limit, when given.
    pub max_tokens: Option<u32>,
}

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

/// One streamed piece of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// Answer text.
    Text(String),
    /// Reasoning text.
    Reasoning(String),
    /// Final token counts.
    Usage(Usage),
    /// Why generation stopped (`stop`, `length`, ...).
    Finish(String),
}

/// How a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// 429; retry after the given time when the provider said.
    #[error("the provider is rate limiting requests")]
    RateLimited {
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// 5xx from the provider.
    #[error("the provider failed (HTTP {status})")]
    Upstream {
        /// The HTTP status.
        status: u16,
    },
    /// The provider refused the request (4xx); the provider's message, without secrets.
    #[error("the provider refused the request (HTTP {status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The provider's explanation.
        message: String,
    },
    /// Connecting or reading failed, or the stream broke off.
    #[error("connection to the provider failed: {0}")]
    Connection(String),
    /// The provider sent something that is not its protocol.
    #[error("the provider sent an invalid response: {0}")]
    Protocol(String),
}

impl ProviderError {
    /// A stable code for `error` events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Upstream { .. } => "upstream_error",
            Self::Refused { .. } => "upstream_refused",
            Self::Connection(_) => "upstream_connection",
            Self::Protocol(_) => "upstream_protocol",
        }
    }

    /// Whether the same request may succeed later.
    pub fn retryable(&self) -> bool {
        !matches!(self, Self::Refused { .. })
    }
}

/// A stream of deltas; dropping it closes the upstream connection.
pub type DeltaStream = BoxStream<'static, Result<Delta, ProviderError>>;

/// A text provider that streams token by token.
#[async_trait]
pub trait TextProvider: Send + Sync {
    /// The provider's name as shown in `model_in_use`.
    fn name(&self) -> &'static str;
    /// Starts generating; resolves once the provider accepted the request.
    async fn stream(&self, request: ChatRequest) -> Result<DeltaStream, ProviderError>;
}

/// The provider chosen for a request.
#[derive(Clone)]
pub struct Resolved {
    /// The provider.
    pub provider: Arc<dyn TextProvider>,
    /// The upstream model id.
    pub model: String,
    /// Why this provider was chosen, when it is not what the user asked for.
    pub note: Option<&'static str>,
}

/// What `model_in_use` says when the dummy answers because no provider is configured.
pub const NO_KEY_NOTE: &str = "no provider key is set: the offline dummy provider answers";

/// The providers this process can use.
#[derive(Clone)]
pub struct Registry {
    dummy: Arc<DummyProvider>,
    openai: Option<Arc<OpenAiProvider>>,
    default_model: String,
}

impl Registry {
    /// Builds the providers from settings: OpenAI when a key or base URL is set, dummy always.
    pub fn from_settings(s: &Settings) -> anyhow::Result<Self> {
        let openai = if s.openai_api_key.is_some() || s.openai_base_url.is_some() {
            Some(Arc::new(OpenAiProvider::new(
                s.openai_base_url
                    .clone()
                    .unwrap_or_else(|| "https://api.openai.com/v1".into()),
                s.openai_api_key.clone(),
            )?))
        } else {
            None
        };
        let default_model = s.default_model.clone().unwrap_or_else(|| {
            if openai.is_some() {
                "gpt-4o-mini"
            } else {
                "dummy"
            }
            .to_owned()
        });
        Ok(Self {
            dummy: Arc::new(DummyProvider::new(s.dummy.clone())),
            openai,
            default_model,
        })
    }

    /// What answers when a request names no model.
    pub fn default_description(&self) -> String {
        let provider = if self.openai.is_some() && self.default_model != "dummy" {
            "openai"
        } else {
            "dummy"
        };
        format!("{provider}/{}", self.default_model)
    }

    /// Picks the provider for a requested model (or the default).
    pub fn resolve(&self, model: Option<&str>) -> Resolved {
        let model = model
            .filter(|m| !m.is_empty())
            .unwrap_or(&self.default_model);
        if model == "dummy" || model.starts_with("dummy-") {
            return Resolved {
                provider: self.dummy.clone(),
                model: model.to_owned(),
                note: self.openai.is_none().then_some(NO_KEY_NOTE),
            };
        }
        match &self.openai {
            Some(openai) => Resolved {
                provider: openai.clone(),
                model: model.to_owned(),
                note: None,
            },
            None => Resolved {
                provider: self.dummy.clone(),
                model: "dummy".to_owned(),
                note: Some(NO_KEY_NOTE),
            },
        }
    }
}
