//! The `data` of a `chat.completion.generate` action (`docs/envelope.md` lists its fields).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::semantic::ChatSemantic;
use super::stt::{StreamPayload, TranscribePayload};
use super::tts::ChatSpeech;
use super::{Invalid, Payload, storable, storable_json};

/// The action type of a chat turn.
pub const GENERATE: &str = "chat.completion.generate";
/// The action type that titles a session.
pub const NAME: &str = "chat.session.name";

/// Most earlier messages one action may carry.
pub const MAX_MESSAGES: usize = 2048;
/// Most tools one action may offer.
pub const MAX_TOOLS: usize = 128;
/// Largest output token limit a client may ask for.
pub const MAX_TOKENS: u32 = 1_000_000;
/// Longest model name, in bytes.
pub const MAX_MODEL_BYTES: usize = 200;

/// The `data` of a `chat.completion.generate` action: a prompt, or a non-empty `messages` list,
/// or both, or `audio` (a voice turn). No string of `prompt`, `messages` or `settings.system_prompt` may hold a NUL
/// character or be longer than 1 MiB (1,048,576 bytes). A payload that breaks a rule gets an
/// `error` event (stage `validation`, code `invalid_payload`, not retryable) and the completion
/// events; it is not dead-lettered. Unknown fields are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatPayload {
    /// The user's message, sent last as a `user` message: a string that is not blank, or a
    /// non-empty list of content parts in OpenAI's chat format
    /// (`{"type":"text","text":"..."}`, `{"type":"image_url","image_url":{"url":"..."}}`). May
    /// be absent or null when `messages` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Prompt>)]
    pub prompt: Option<Value>,
    /// A model name or alias of the model registry (`config/models.toml`), 1 to 200 bytes of
    /// UTF-8. Absent or null: the registry's default model. An unknown name fails the task with
    /// an `error` event (code `unknown_model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub model: Option<String>,
    /// The conversation before the prompt, oldest first, in OpenAI's message format; at most
    /// 2048. When empty, the worker loads the session's earlier turns from the chat history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<ChatMessage>, max_items = 2048)]
    pub messages: Vec<Value>,
    /// Tools the model may call, in OpenAI's format
    /// (`{"type":"function","function":{"name","description","parameters"}}`); at most 128.
    /// Entries that do not parse are left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>, max_items = 128)]
    pub tools: Vec<Value>,
    /// OpenAI's `tool_choice` (`auto`, `none`, `required`, or a named function), passed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Generation settings.
    #[serde(default)]
    pub settings: ChatSettings,
    /// Keep the turn in the chat history (the default). `false`: a stateless turn, neither
    /// read from nor written to PostgreSQL.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub store: bool,
    /// A voice turn: the user's message is this audio, transcribed first (`transcription`
    /// events) and then answered; or, with `direct`, given to the model as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<ChatAudio>,
}

/// The audio of a voice turn: a stored file (`key`), the audio itself (`audio_base64`), or
/// `live` audio that arrives on the task's audio stream while the user speaks (the WebSocket's
/// `audio_start` with `reply`). Transcribed by the `stt` service with `provider` and `model`
/// unless `direct`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ChatAudio {
    /// The audio arrives live, as `pcm` at `sample_rate`, on the task's audio stream.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live: bool,
    /// A stored file of the tenant (`{tenant}/uploads/…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    pub key: Option<String>,
    /// Or the audio itself, base64 (at most 1,500,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1_500_000)]
    pub audio_base64: Option<String>,
    /// `wav`, `mp3`, `ogg`, `opus`, `webm`, `flac`, `m4a`, `mp4` or `pcm`; live audio is `pcm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The sample rate of `pcm` audio, 8,000 to 48,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 8000, maximum = 48000)]
    pub sample_rate: Option<u32>,
    /// The spoken language (ISO-639-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 8)]
    pub language: Option<String>,
    /// The transcription provider (`local`, `openai`, `deepgram`, `gemini`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 40)]
    pub provider: Option<String>,
    /// The transcription model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub model: Option<String>,
    /// Give the audio to the chat model itself (Gemini's audio input) instead of transcribing
    /// it: no `transcription` events; models that cannot hear fail with `unsupported_input`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
}

impl ChatAudio {
    /// The `stt.transcription.file` request for recorded audio; `None` when live.
    pub fn file_request(&self) -> Option<TranscribePayload> {
        (!self.live).then(|| TranscribePayload {
            key: self.key.clone(),
            audio_base64: self.audio_base64.clone(),
            format: self.format.clone(),
            sample_rate: self.sample_rate,
            language: self.language.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            prompt: None,
        })
    }

    /// The `stt.transcription.stream` request for live audio; `None` when recorded.
    pub fn stream_request(&self) -> Option<StreamPayload> {
        self.live.then(|| StreamPayload {
            format: self.format.clone().unwrap_or_else(|| "pcm".into()),
            sample_rate: self.sample_rate.unwrap_or_default(),
            language: self.language.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            interim_results: true,
            prompt: None,
        })
    }

    /// Checks it with the rules of the transcription action it becomes.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.live && (self.key.is_some() || self.audio_base64.is_some()) {
            return Err(Invalid(
                "audio: live audio has no key or audio_base64".into(),
            ));
        }
        let checked = match (self.file_request(), self.stream_request()) {
            (Some(file), _) => file.validate(),
            (_, Some(stream)) => stream.validate(),
            _ => Ok(()),
        };
        checked.map_err(|e| Invalid(format!("audio: {e}")))
    }
}

/// The JSON Schema of [`ChatPayload`], with the rule the types cannot say: a prompt, messages or
/// audio.
pub fn generate_schema() -> Value {
    let mut schema = super::schema::<ChatPayload>(GENERATE);
    schema["anyOf"] = serde_json::json!([
        {"required": ["prompt"], "properties": {"prompt": {"$ref": "#/$defs/Prompt"}}},
        {"required": ["messages"], "properties": {"messages": {"minItems": 1}}},
        {"required": ["audio"]},
    ]);
    schema
}

fn yes() -> bool {
    true
}

/// The user's message: a string that is not blank, or a non-empty list of content parts.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Prompt {
    /// Plain text.
    Text(String),
    /// Content parts in OpenAI's chat format.
    Parts(Vec<Value>),
}

/// One message in OpenAI's chat format. The worker requires an object with a string `role`;
/// the rest is passed to the provider.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    role: String,
    /// A string, a list of content parts, or null (an assistant turn that only calls tools).
    content: Option<Value>,
    /// On an assistant message: the calls it made.
    #[schema(value_type = Option<Vec<Object>>)]
    tool_calls: Option<()>,
    /// On a tool message: the call it answers.
    tool_call_id: Option<String>,
}

/// Per-request generation settings. Settings this version does not know are carried through as
/// they came.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ChatSettings {
    /// Sampling temperature, 0 to 2; then clamped to the model's range, dropped for models that
    /// refuse one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    /// Output token limit, 1 to 1,000,000; capped at the model's `max_output_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_tokens: Option<u32>,
    /// A system message put first; ignored when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Ask for the model's reasoning where the model and provider can stream it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reasoning: bool,
    /// Speak the answer while it is written (`enabled`, and how: provider, voice, model, format,
    /// speed, chunk_schedule, save).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<ChatSpeech>,
    /// Search the user's past messages and documents first and add what is found to the prompt
    /// (`enabled`, `mode`, `limit`, `score_threshold`, `sources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<ChatSemantic>,
    /// Other settings, kept as they came.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

/// The `data` of a `chat.session.name` action: titles the session from its first messages.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct NamePayload {
    /// The model that writes the title; the registry's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub model: Option<String>,
}

impl Payload for NamePayload {
    fn validate(&self) -> Result<(), Invalid> {
        check_model(self.model.as_deref())
    }
}

fn check_model(model: Option<&str>) -> Result<(), Invalid> {
    if model.is_some_and(|m| m.is_empty() || m.len() > MAX_MODEL_BYTES) {
        return Err(Invalid(format!(
            "model must be 1 to {MAX_MODEL_BYTES} bytes"
        )));
    }
    Ok(())
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
            audio: None,
        }
    }
}

/// The rules every chat payload meets, wherever it comes from: what the worker would refuse and
/// what could not be stored, so a client hears it before anything runs.
impl Payload for ChatPayload {
    fn validate(&self) -> Result<(), Invalid> {
        if let Some(audio) = &self.audio {
            audio.validate()?;
            if !audio.direct && self.prompt.is_some() {
                return Err(Invalid(
                    "give prompt or audio, not both (the audio's transcript is the prompt; a prompt goes with direct audio)".into(),
                ));
            }
        }
        let prompt_ok = match &self.prompt {
            None => !self.messages.is_empty() || self.audio.is_some(),
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
        check_model(self.model.as_deref())?;
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
        if let Some(semantic) = &self.semantic {
            semantic.check()?;
        }
        if let Some(tts) = &self.tts {
            tts.check()?;
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
