//! The `data` of a `chat.completion.generate` action (`docs/envelope.md` lists its fields).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Invalid, storable, storable_json};

/// The action type of a chat turn.
pub const GENERATE: &str = "chat.completion.generate";

/// Most earlier messages one action may carry.
pub const MAX_MESSAGES: usize = 2048;
/// Most tools one action may offer.
pub const MAX_TOOLS: usize = 128;
/// Largest output token limit a client may ask for.
pub const MAX_TOKENS: u32 = 1_000_000;
/// Longest model name, in bytes.
pub const MAX_MODEL_BYTES: usize = 200;

/// The `data` of a `chat.completion.generate` action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatPayload {
    /// The user's message (a string or a list of parts); optional when `messages` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Value>,
    /// The model (a registry name or alias); the default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Earlier turns in OpenAI's message format, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Value>,
    /// Tools in OpenAI's format (`{"type":"function","function":{...}}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    /// OpenAI's `tool_choice`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// Per-request generation settings. Fields this version does not know are carried through.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatSettings {
    /// Sampling temperature, 0 to 2 (clamped to the model's range; dropped where the model
    /// refuses one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Output token limit, 1 to [`MAX_TOKENS`] (capped at the model's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// A system prompt put first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Ask for the model's reasoning where it can stream it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reasoning: bool,
    /// Other settings, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatPayload {
    /// A turn with a prompt and nothing else set.
    pub fn from_prompt(prompt: Value) -> Self {
        Self {
            prompt: Some(prompt),
            model: None,
            messages: Vec::new(),
            tools: Vec::new(),
            tool_choice: None,
            settings: ChatSettings::default(),
            store: true,
        }
    }

    /// Parses an action's `data` and checks it.
    pub fn parse(data: &Value) -> Result<Self, Invalid> {
        let payload = Self::deserialize(data).map_err(|e| Invalid(e.to_string()))?;
        payload.validate()?;
        Ok(payload)
    }

    /// The rules every chat payload meets, wherever it comes from: what the worker would refuse
    /// and what could not be stored, so a client hears it before anything runs.
    pub fn validate(&self) -> Result<(), Invalid> {
        let prompt_ok = match &self.prompt {
            None => !self.messages.is_empty(),
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Array(parts)) => !parts.is_empty() && parts.iter().all(Value::is_object),
            Some(_) => false,
        };
        if !prompt_ok {
            return Err(Invalid(
                "prompt must be a non-empty string or a non-empty list of parts (or give messages)"
                    .into(),
            ));
        }
        if let Some(prompt) = &self.prompt {
            storable_json(prompt, "prompt")?;
        }
        if self.messages.len() > MAX_MESSAGES {
            return Err(Invalid(format!(
                "at most {MAX_MESSAGES} messages, not {}",
                self.messages.len()
            )));
        }
        if self
            .messages
            .iter()
            .any(|m| !m.is_object() || !m["role"].is_string())
        {
            return Err(Invalid("every message needs a role".into()));
        }
        for message in &self.messages {
            storable_json(message, "messages")?;
        }
        if self.tools.len() > MAX_TOOLS {
            return Err(Invalid(format!("at most {MAX_TOOLS} tools")));
        }
        if self
            .model
            .as_ref()
            .is_some_and(|m| m.is_empty() || m.len() > MAX_MODEL_BYTES)
        {
            return Err(Invalid(format!(
                "model must be 1 to {MAX_MODEL_BYTES} bytes"
            )));
        }
        self.settings.validate()
    }
}

impl ChatSettings {
    /// Checks the ranges serde's types do not.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(t) = self.temperature
            && !(t.is_finite() && (0.0..=2.0).contains(&t))
        {
            return Err(Invalid(
                "settings.temperature must be between 0 and 2".into(),
            ));
        }
        if let Some(m) = self.max_tokens
            && !(1..=MAX_TOKENS).contains(&m)
        {
            return Err(Invalid(format!(
                "settings.max_tokens must be between 1 and {MAX_TOKENS}"
            )));
        }
        if let Some(system) = &self.system_prompt {
            storable(system, "settings.system_prompt")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(data: Value) -> String {
        ChatPayload::parse(&data).unwrap_err().0
    }

    #[test]
    fn good_payloads_parse_and_keep_unknown_settings() {
        let p = ChatPayload::parse(&json!({"prompt": "hi", "settings": {"temperature": 0.5,
            "max_tokens": 100, "top_k": 3}}))
        .unwrap();
        assert_eq!(p.settings.max_tokens, Some(100));
        assert!(p.store);
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["settings"]["top_k"], 3);
        ChatPayload::parse(&json!({"messages": [{"role": "user", "content": "hi"}]})).unwrap();
    }

    #[test]
    fn what_could_never_succeed_is_refused_with_the_field() {
        assert!(refused(json!({"prompt": " "})).contains("prompt"));
        assert!(refused(json!({"prompt": "a\u{0}b"})).contains("NUL"));
        assert!(refused(json!({"prompt": [{"type": "text", "text": "\u{0}"}]})).contains("NUL"));
        assert!(
            refused(json!({"prompt": "hi", "settings": {"temperature": "hot"}}))
                .contains("invalid type")
        );
        assert!(
            refused(json!({"prompt": "hi", "settings": {"temperature": 9}}))
                .contains("temperature")
        );
        assert!(!refused(json!({"prompt": "hi", "settings": {"max_tokens": -1}})).is_empty());
        assert!(!refused(json!({"prompt": "hi", "settings": {"max_tokens": 1e18}})).is_empty());
        assert!(
            refused(json!({"prompt": "hi", "settings": {"max_tokens": 0}})).contains("max_tokens")
        );
        assert!(
            refused(json!({"prompt": "hi", "settings": {"system_prompt": "\u{0}"}}))
                .contains("system_prompt")
        );
        let many: Vec<Value> = (0..=MAX_MESSAGES)
            .map(|_| json!({"role": "user", "content": "x"}))
            .collect();
        assert!(refused(json!({"messages": many})).contains("messages"));
        assert!(refused(json!({"messages": [{"content": "x"}]})).contains("role"));
        assert!(refused(json!({"prompt": "hi", "model": ""})).contains("model"));
    }
}
