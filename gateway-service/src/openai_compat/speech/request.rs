//! A speech request body (`POST /v1/audio/speech`): parsed, checked with the speech payload's rules
//! (each refusal names OpenAI's parameter), and turned into the `data` of a
//! `tts.speech.synthesize` action for the provider its `model` picks.

use common::payloads::Payload;
use common::payloads::tts::{SpeechOptions, SynthesizePayload};
use serde_json::{Map, Value};

use crate::openai_compat::error::OpenAiError;
use crate::openai_compat::request::{invalid, present, wrong_type};

/// The audio formats OpenAI offers.
const FORMATS: [&str; 6] = ["mp3", "opus", "aac", "flac", "wav", "pcm"];
/// OpenAI's built-in voices: names no other provider knows.
const OPENAI_VOICES: [&str; 13] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];
/// The `model` that asks for the deployment's default provider.
const DEFAULT_MODEL: &str = "default";

/// Which provider speaks, from the request's `model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// An OpenAI speech model (`tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`, …): OpenAI speaks when the
    /// tts-worker has its key; otherwise the worker's default provider, with its own model and
    /// voice, so the SDK works against an offline deployment too.
    OpenAi(String),
    /// `<provider>/<model>` or a bare `<provider>`: that provider (its default model when none
    /// is named), never another one.
    Named {
        /// The worker's provider name (`espeak`, `openai`, `elevenlabs`, `gemini`).
        provider: String,
        /// Its model.
        model: Option<String>,
    },
    /// `default`: the worker's default provider and model.
    Default,
}

impl Route {
    /// The route `model` names.
    pub fn of(model: &str) -> Self {
        let model = model.trim();
        let openai =
            model.starts_with("tts-") || (model.starts_with("gpt-") && model.contains("tts"));
        if openai {
            return Self::OpenAi(model.to_owned());
        }
        Self::other(model)
    }

    /// The route `model` names for a transcription: OpenAI's transcription models (`whisper-1`,
    /// `gpt-4o-transcribe`, `gpt-4o-mini-transcribe`, …) as [`Route::OpenAi`], the rest as
    /// for speech.
    pub fn for_transcription(model: &str) -> Self {
        let model = model.trim();
        let openai = model.starts_with("whisper-")
            || (model.starts_with("gpt-") && model.contains("transcribe"));
        if openai {
            return Self::OpenAi(model.to_owned());
        }
        Self::other(model)
    }

    /// `default`, `<provider>/<model>` or a bare `<provider>`.
    fn other(model: &str) -> Self {
        if model == DEFAULT_MODEL {
            return Self::Default;
        }
        let (provider, model) = match model.split_once('/') {
            Some((provider, model)) => (provider, Some(model).filter(|m| !m.is_empty())),
            None => (model, None),
        };
        Self::Named {
            provider: provider.to_ascii_lowercase(),
            model: model.map(str::to_owned),
        }
    }
}

/// A voice as OpenAI's API takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Voice {
    /// A voice name (OpenAI's built-in ones, or another provider's: an espeak-ng voice, an
    /// ElevenLabs voice id, a Gemini voice).
    Named(String),
    /// `{"id": "voice_…"}`: an OpenAI custom voice.
    Custom(String),
}

/// What the gateway uses of a speech request; other fields are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechRequest {
    /// The model, which picks the provider ([`Route`]).
    pub model: String,
    /// The text to speak.
    pub input: String,
    /// The voice; the provider's default when absent (OpenAI requires one; this server does not).
    pub voice: Option<Voice>,
    /// `response_format`: `mp3` (the default), `opus`, `aac`, `flac`, `wav` or `pcm`.
    pub format: String,
    /// Speaking rate, 0.25 to 4.
    pub speed: Option<f64>,
    /// How to speak, in words.
    pub instructions: Option<String>,
    /// `stream_format: "sse"`: `speech.audio.delta` events instead of the bytes.
    pub sse: bool,
}

/// An optional string parameter.
fn optional_string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, OpenAiError> {
    match present(body, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong_type(key, "a string")),
    }
}

/// A string parameter that must be one of `allowed` (`default` when absent).
fn one_of(
    body: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
    default: &str,
) -> Result<String, OpenAiError> {
    let value = optional_string(body, key)?.unwrap_or_else(|| default.to_owned());
    if allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(invalid(
            format!(
                "Invalid value for '{key}': '{value}'. Supported values are: {}.",
                allowed.join(", ")
            ),
            key,
        ))
    }
}

impl SpeechRequest {
    /// Parses and checks a request body, refusing what the worker would refuse with the OpenAI
    /// parameter named.
    pub fn parse(body: &[u8]) -> Result<Self, OpenAiError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            OpenAiError::invalid_request(
                format!("We could not parse the JSON body of your request: {e}"),
                None,
            )
        })?;
        let body = value.as_object().ok_or_else(|| {
            OpenAiError::invalid_request("The request body must be a JSON object.", None)
        })?;
        let model = match present(body, "model") {
            None => return Err(invalid("You must provide a model parameter.", "model")),
            Some(Value::String(m)) if !m.trim().is_empty() => m.trim().to_owned(),
            Some(_) => return Err(wrong_type("model", "a non-empty string")),
        };
        let input = optional_string(body, "input")?
            .ok_or_else(|| invalid("Missing required parameter: 'input'.", "input"))?;
        let voice = match present(body, "voice") {
            None => None,
            Some(Value::String(v)) => Some(Voice::Named(v.clone())),
            Some(Value::Object(custom)) => match custom.get("id") {
                Some(Value::String(id)) => Some(Voice::Custom(id.clone())),
                _ => return Err(wrong_type("voice", "a string or an object with an 'id'")),
            },
            Some(_) => return Err(wrong_type("voice", "a string or an object with an 'id'")),
        };
        let format = one_of(body, "response_format", &FORMATS, "mp3")?;
        let speed = match present(body, "speed") {
            None => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| wrong_type("speed", "a number"))?),
        };
        let instructions = optional_string(body, "instructions")?;
        let sse = one_of(body, "stream_format", &["audio", "sse"], "audio")? == "sse";
        let request = Self {
            model,
            input,
            voice,
            format,
            speed,
            instructions,
            sse,
        };
        // The worker's rules, named as OpenAI names the parameters.
        request
            .payload(&Route::of(&request.model), false)
            .validate()
            .map_err(|e| refusal(&e.0))?;
        Ok(request)
    }

    /// The action's `data` for `route`; `fallback`: OpenAI was asked for but is not configured,
    /// so the default provider speaks with its own model.
    pub fn payload(&self, route: &Route, fallback: bool) -> SynthesizePayload {
        let (provider, model) = match route {
            Route::OpenAi(model) if !fallback => (Some("openai".to_owned()), Some(model.clone())),
            Route::OpenAi(_) | Route::Default => (None, None),
            Route::Named { provider, model } => (Some(provider.clone()), model.clone()),
        };
        let openai_speaks = provider.as_deref() == Some("openai");
        let voice = match &self.voice {
            // OpenAI's voices mean nothing to another provider: its own default speaks.
            Some(Voice::Named(v)) if !openai_speaks && OPENAI_VOICES.contains(&v.as_str()) => None,
            Some(Voice::Custom(_)) if !openai_speaks => None,
            Some(Voice::Named(v) | Voice::Custom(v)) => Some(v.clone()),
            None => None,
        };
        SynthesizePayload {
            text: self.input.clone(),
            options: SpeechOptions {
                provider,
                voice,
                model,
                format: Some(self.format.clone()),
                speed: self.speed,
                instructions: self.instructions.clone(),
                chunk_schedule: None,
            },
            // The audio is the answer; nothing is stored.
            save: false,
        }
    }
}

/// A refusal of the speech payload's rules, with the OpenAI parameter for the payload's field.
fn refusal(message: &str) -> OpenAiError {
    const PARAMS: [(&str, &str); 7] = [
        ("text", "input"),
        ("format", "response_format"),
        ("provider", "model"),
        ("model", "model"),
        ("voice", "voice"),
        ("speed", "speed"),
        ("instructions", "instructions"),
    ];
    match PARAMS.iter().find(|(field, _)| message.starts_with(field)) {
        Some((field, param)) => invalid(format!("{param}{}", &message[field.len()..]), param),
        None => OpenAiError::invalid_request(message, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<SpeechRequest, OpenAiError> {
        SpeechRequest::parse(v.to_string().as_bytes())
    }

    fn param_of(v: Value) -> Value {
        match parse(v) {
            Err(e) => e.body()["error"]["param"].clone(),
            Ok(r) => panic!("accepted: {r:?}"),
        }
    }

    #[test]
    fn models_pick_providers() {
        assert_eq!(Route::of("tts-1"), Route::OpenAi("tts-1".into()));
        assert_eq!(
            Route::of("gpt-4o-mini-tts-2025-12-15"),
            Route::OpenAi("gpt-4o-mini-tts-2025-12-15".into())
        );
        assert_eq!(Route::of("default"), Route::Default);
        assert_eq!(
            Route::of("ElevenLabs/eleven_flash_v2_5"),
            Route::Named {
                provider: "elevenlabs".into(),
                model: Some("eleven_flash_v2_5".into())
            }
        );
        assert_eq!(
            Route::of("espeak"),
            Route::Named {
                provider: "espeak".into(),
                model: None
            }
        );
        assert_eq!(
            Route::of("espeak/"),
            Route::Named {
                provider: "espeak".into(),
                model: None
            }
        );
    }

    #[test]
    fn a_request_becomes_the_payload_of_its_route() {
        let r = parse(json!({"model": "tts-1", "input": "Hello", "voice": "nova",
            "response_format": "wav", "speed": 1.5, "instructions": "calm",
            "stream_format": "sse", "user": "ignored"}))
        .unwrap_or_else(|e| panic!("{:?}", e.body()));
        assert!(r.sse);
        let route = Route::of(&r.model);
        let openai = serde_json::to_value(r.payload(&route, false)).unwrap_or_default();
        assert_eq!(
            openai,
            json!({"text": "Hello", "provider": "openai", "model": "tts-1", "voice": "nova",
                "format": "wav", "speed": 1.5, "instructions": "calm", "save": false})
        );
        // Without OpenAI: the default provider, its model and voice.
        let fallback = serde_json::to_value(r.payload(&route, true)).unwrap_or_default();
        assert_eq!(
            fallback,
            json!({"text": "Hello", "format": "wav", "speed": 1.5, "instructions": "calm",
                "save": false})
        );
        // Another provider's voice goes through.
        let r = parse(json!({"model": "espeak", "input": "Hi", "voice": "en-gb"}))
            .unwrap_or_else(|e| panic!("{:?}", e.body()));
        let espeak = r.payload(&Route::of(&r.model), false);
        assert_eq!(espeak.options.voice.as_deref(), Some("en-gb"));
        assert_eq!(espeak.options.format.as_deref(), Some("mp3"));
        let custom =
            parse(json!({"model": "openai/tts-1", "input": "Hi", "voice": {"id": "voice_1"}}))
                .unwrap_or_else(|e| panic!("{:?}", e.body()));
        let payload = custom.payload(&Route::of(&custom.model), false);
        assert_eq!(payload.options.voice.as_deref(), Some("voice_1"));
    }

    #[test]
    fn refusals_name_the_parameter() {
        assert_eq!(param_of(json!({"input": "hi"})), "model");
        assert_eq!(param_of(json!({"model": "tts-1"})), "input");
        assert_eq!(param_of(json!({"model": "tts-1", "input": " "})), "input");
        assert_eq!(
            param_of(json!({"model": "tts-1", "input": "a\u{0}"})),
            "input"
        );
        assert_eq!(
            param_of(json!({"model": "tts-1", "input": "hi", "response_format": "ogg"})),
            "response_format"
        );
        assert_eq!(
            param_of(json!({"model": "tts-1", "input": "hi", "speed": 5})),
            "speed"
        );
        assert_eq!(
            param_of(json!({"model": "tts-1", "input": "hi", "speed": "fast"})),
            "speed"
        );
        assert_eq!(
            param_of(json!({"model": "tts-1", "input": "hi", "voice": 1})),
            "voice"
        );
        assert_eq!(
            param_of(json!({"model": "tts-1", "input": "hi", "stream_format": "ws"})),
            "stream_format"
        );
        assert_eq!(param_of(json!({"model": "/x", "input": "hi"})), "model");
        let e = parse(json!({"model": "tts-1", "input": " "})).err();
        assert_eq!(
            e.map(|e| e.body()["error"]["message"].clone()),
            Some(json!("input is empty"))
        );
    }
}
