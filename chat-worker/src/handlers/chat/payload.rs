//! The provider request built from a `chat.completion.generate` action's `data` (the payload
//! type and its rules live in `common::payloads::chat`, shared with the gateway).

use serde_json::{Value, json};

use common::llm::{Candidate, ChatRequest, ToolDef, image_url};
use common::models::ModelSpec;
pub use common::payloads::chat::ChatPayload;

/// What the worker makes of a payload for one provider.
pub trait ProviderRequest {
    /// Refuses what the model cannot take, with a sentence saying so.
    fn check_capabilities(&self, spec: &ModelSpec, model: &str) -> Result<(), String>;
    /// The provider request for one candidate, within that model's limits.
    fn request_for(&self, candidate: &Candidate) -> ChatRequest;
}

/// The conversation in OpenAI's format: system prompt, earlier turns, then the prompt.
fn conversation(payload: &ChatPayload) -> Vec<Value> {
    let mut out = Vec::with_capacity(payload.messages.len() + 2);
    if let Some(system) = payload
        .settings
        .system_prompt
        .as_ref()
        .filter(|s| !s.is_empty())
    {
        out.push(json!({"role": "system", "content": system}));
    }
    out.extend(payload.messages.iter().cloned());
    if let Some(prompt) = &payload.prompt {
        out.push(json!({"role": "user", "content": prompt}));
    }
    out
}

/// Whether a content part is audio (OpenAI's `input_audio`).
fn is_audio(part: &Value) -> bool {
    part.get("type").and_then(Value::as_str) == Some("input_audio")
}

fn tools(payload: &ChatPayload) -> Vec<ToolDef> {
    payload
        .tools
        .iter()
        .filter_map(|t| serde_json::from_value(t.get("function").unwrap_or(t).clone()).ok())
        .collect()
}

impl ProviderRequest for ChatPayload {
    fn check_capabilities(&self, spec: &ModelSpec, model: &str) -> Result<(), String> {
        let conversation = conversation(self);
        let has_part = |is: fn(&Value) -> bool| {
            conversation.iter().any(|m| {
                m["content"]
                    .as_array()
                    .is_some_and(|parts| parts.iter().any(is))
            })
        };
        if has_part(|p| image_url(p).is_some()) && !spec.vision {
            return Err(format!("{model} does not accept images"));
        }
        // Direct audio is checked before it is read (live audio is spoken meanwhile).
        let direct_audio = self.audio.as_ref().is_some_and(|a| a.direct);
        if (direct_audio || has_part(is_audio)) && !spec.audio_input {
            return Err(format!(
                "{model} does not accept audio; leave out direct to have the audio transcribed"
            ));
        }
        if !self.tools.is_empty() && !spec.tools {
            return Err(format!("{model} does not support tool calls"));
        }
        Ok(())
    }

    fn request_for(&self, candidate: &Candidate) -> ChatRequest {
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
            messages: conversation(self),
            tools: tools(self),
            tool_choice: self.tool_choice.clone(),
            temperature,
            max_tokens,
            reasoning: self.settings.reasoning && spec.reasoning,
        }
    }
}
