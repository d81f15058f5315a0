//! The `data` of a `chat.completion.generate` action, and the provider request built from it.

use serde::Deserialize;
use serde_json::{Value, json};

use common::models::ModelSpec;

use crate::providers::{ChatRequest, ToolDef, image_url};

/// The `data` of a `chat.completion.generate` action.
#[derive(Debug, Deserialize)]
pub struct ChatPayload {
    /// The user's message (a string or a list of parts); optional when `messages` is given.
    #[serde(default)]
    pub prompt: Option<Value>,
    /// The model (a registry name or alias); the default when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Earlier turns in OpenAI's message format, oldest first.
    #[serde(default)]
    pub messages: Vec<Value>,
    /// Tools in OpenAI's format (`{"type":"function","function":{...}}`).
    #[serde(default)]
    pub tools: Vec<Value>,
    /// OpenAI's `tool_choice`.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// Generation settings.
    #[serde(default)]
    pub settings: ChatSettings,
    /// Keep the turn in the chat history (the default). `false`: a stateless turn, neither
    /// read from nor written to PostgreSQL.
    #[serde(default = "yes")]
    pub store: bool,
}

fn yes() -> bool {
    true
}

/// Per-request generation settings.
#[derive(Debug, Default, Deserialize)]
pub struct ChatSettings {
    /// Sampling temperature (clamped to the model's range; dropped where the model refuses one).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Output token limit (capped at the model's maximum).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// A system prompt put first.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Ask for the model's reasoning where it can stream it.
    #[serde(default)]
    pub reasoning: bool,
}

impl ChatPayload {
    /// Parses and checks the payload.
    pub fn parse(data: &Value) -> Result<Self, String> {
        let payload: Self = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
        let prompt_ok = match &payload.prompt {
            None => !payload.messages.is_empty(),
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Array(parts)) => !parts.is_empty(),
            Some(_) => false,
        };
        if !prompt_ok {
            return Err(
                "prompt must be a non-empty string or list of parts (or give messages)".into(),
            );
        }
        if payload
            .messages
            .iter()
            .any(|m| !m.is_object() || !m["role"].is_string())
        {
            return Err("every message needs a role".into());
        }
        Ok(payload)
    }

    /// The conversation in OpenAI's format: system prompt, earlier turns, then the prompt.
    fn messages(&self) -> Vec<Value> {
        let mut out = Vec::with_capacity(self.messages.len() + 2);
        if let Some(system) = self
            .settings
            .system_prompt
            .as_ref()
            .filter(|s| !s.is_empty())
        {
            out.push(json!({"role": "system", "content": system}));
        }
        out.extend(self.messages.iter().cloned());
        if let Some(prompt) = &self.prompt {
            out.push(json!({"role": "user", "content": prompt}));
        }
        out
    }

    fn tools(&self) -> Vec<ToolDef> {
        self.tools
            .iter()
            .filter_map(|t| serde_json::from_value(t.get("function").unwrap_or(t).clone()).ok())
            .collect()
    }

    /// Refuses what the model cannot take, with a sentence saying so.
    pub fn check_capabilities(&self, spec: &ModelSpec, model: &str) -> Result<(), String> {
        let has_image = self.messages().iter().any(|m| {
            m["content"]
                .as_array()
                .is_some_and(|parts| parts.iter().any(|p| image_url(p).is_some()))
        });
        if has_image && !spec.vision {
            return Err(format!("{model} does not accept images"));
        }
        if !self.tools.is_empty() && !spec.tools {
            return Err(format!("{model} does not support tool calls"));
        }
        Ok(())
    }

    /// The provider request for one candidate, within that model's limits.
    pub fn request_for(&self, candidate: &crate::providers::Candidate) -> ChatRequest {
        let spec = &candidate.spec;
        let temperature = match (self.settings.temperature, spec.temperature) {
            (Some(t), Some([lo, hi])) => Some(t.clamp(lo, hi)),
            _ => None,
        };
        let max_tokens = match (self.settings.max_tokens, spec.max_output_tokens) {
            (Some(m), Some(cap)) => Some(m.min(cap)),
            (m, _) => m,
        };
        ChatRequest {
            model: candidate.upstream.clone(),
            messages: self.messages(),
            tools: self.tools(),
            tool_choice: self.tool_choice.clone(),
            temperature,
            max_tokens,
            reasoning: self.settings.reasoning && spec.reasoning,
        }
    }
}
