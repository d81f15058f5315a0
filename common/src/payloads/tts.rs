//! The `data` of the `tts.*` actions and the speech settings of a chat (`settings.tts`): which
//! provider, voice, model and format, with one set of shape and range rules. Whether a provider
//! knows a voice or a format is the tts-worker's to say (an `error` of stage `tts`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Invalid, Payload, storable};

/// The action type that speaks a whole text.
pub const SYNTHESIZE: &str = "tts.speech.synthesize";
/// The action type that speaks a chat's answer while it is written: its text arrives on the
/// task's speech-input stream (`docs/streams.md`), its events go to a callback stream that the
/// chat task relays.
pub const STREAM: &str = "tts.speech.stream";

/// The longest text one action may speak, in characters (a provider's own limit is smaller:
/// longer texts are spoken in pieces).
pub const MAX_TEXT_CHARS: usize = 100_000;
/// Entries of a `chunk_schedule`.
pub const MAX_SCHEDULE_ENTRIES: usize = 8;
/// The range of each `chunk_schedule` entry, in characters (ElevenLabs' own).
pub const SCHEDULE_RANGE: (u32, u32) = (50, 500);

/// How to speak: every field is optional; the worker's defaults fill the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpeechOptions {
    /// `espeak` (offline, the default when no key is configured), `openai`, `elevenlabs` or
    /// `gemini`. A provider named here whose key is missing is an error, never a silent fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 40)]
    pub provider: Option<String>,
    /// The provider's voice (OpenAI `alloy`…, an ElevenLabs voice id, a Gemini voice name such
    /// as `Kore`, an espeak-ng voice such as `en-us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub voice: Option<String>,
    /// The provider's model (`gpt-4o-mini-tts`, `eleven_flash_v2_5`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub model: Option<String>,
    /// The audio format: `mp3`, `wav` or `pcm` (16-bit little-endian mono), and where the
    /// provider has them `opus`, `aac`, `flac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 20)]
    pub format: Option<String>,
    /// Speaking rate, 0.25 to 4 (1 is normal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.25, maximum = 4.0)]
    pub speed: Option<f64>,
    /// How to speak, in words (OpenAI's `gpt-4o-mini-tts`, Gemini's style prompt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub instructions: Option<String>,
    /// For an input-streaming provider (ElevenLabs): after how many buffered characters each
    /// successive piece of audio is generated; 1 to 8 entries of 50 to 500. Absent: the
    /// provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 8)]
    pub chunk_schedule: Option<Vec<u32>>,
}

impl SpeechOptions {
    /// The shape and range rules, with `prefix` naming where the options sit.
    pub fn check(&self, prefix: &str) -> Result<(), Invalid> {
        let short = |value: &Option<String>, field: &str, max: usize| {
            let Some(value) = value else { return Ok(()) };
            let name = format!("{prefix}{field}");
            if value.trim().is_empty() {
                return Err(Invalid(format!("{name} must not be empty")));
            }
            crate::text::check(&name, value, max).map_err(Invalid)
        };
        short(&self.provider, "provider", 40)?;
        short(&self.voice, "voice", 100)?;
        short(&self.model, "model", 100)?;
        short(&self.format, "format", 20)?;
        if let Some(instructions) = &self.instructions {
            storable(instructions, &format!("{prefix}instructions"))?;
            if instructions.chars().count() > 4096 {
                return Err(Invalid(format!(
                    "{prefix}instructions is longer than 4096 characters"
                )));
            }
        }
        if let Some(speed) = self.speed
            && !(speed.is_finite() && (0.25..=4.0).contains(&speed))
        {
            return Err(Invalid(format!("{prefix}speed must be between 0.25 and 4")));
        }
        if let Some(schedule) = &self.chunk_schedule {
            let (lo, hi) = SCHEDULE_RANGE;
            if schedule.is_empty() || schedule.len() > MAX_SCHEDULE_ENTRIES {
                return Err(Invalid(format!(
                    "{prefix}chunk_schedule must have 1 to {MAX_SCHEDULE_ENTRIES} entries"
                )));
            }
            if schedule.iter().any(|n| !(lo..=hi).contains(n)) {
                return Err(Invalid(format!(
                    "{prefix}chunk_schedule entries must be between {lo} and {hi}"
                )));
            }
        }
        Ok(())
    }
}

/// The `data` of a `tts.speech.synthesize` action: speaks `text`, streams the audio as
/// `audio_chunk` events, and stores the whole clip (its URL in `tts_completed`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SynthesizePayload {
    /// What to say: not blank, at most 100,000 characters, no NUL.
    #[schema(min_length = 1, max_length = 100_000)]
    pub text: String,
    /// How to say it.
    #[serde(flatten)]
    pub options: SpeechOptions,
    /// Store the clip and send its URL in `tts_completed` (the default); `false`: the audio
    /// reaches the client only as `audio_chunk` events.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub save: bool,
}

impl Payload for SynthesizePayload {
    fn validate(&self) -> Result<(), Invalid> {
        if self.text.trim().is_empty() {
            return Err(Invalid("text is empty".into()));
        }
        storable(&self.text, "text")?;
        if self.text.chars().count() > MAX_TEXT_CHARS {
            return Err(Invalid(format!(
                "text is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        self.options.check("")
    }
}

/// The `data` of a `tts.speech.stream` action, published by the chat-worker for a chat with
/// `settings.tts.enabled`: the same task id as the chat, a `callback_stream` for its events.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StreamPayload {
    /// How to speak.
    #[serde(flatten)]
    pub options: SpeechOptions,
    /// Store the clip (the default).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub save: bool,
}

impl Payload for StreamPayload {
    fn validate(&self) -> Result<(), Invalid> {
        self.options.check("")
    }
}

/// A chat's `settings.tts`: speak the answer while it is written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatSpeech {
    /// Speak the answer.
    #[serde(default)]
    pub enabled: bool,
    /// How to speak.
    #[serde(flatten)]
    pub options: SpeechOptions,
    /// Store the clip (the default).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub save: bool,
}

impl ChatSpeech {
    /// The shape and range rules (fields named `settings.tts.<field>`).
    pub fn check(&self) -> Result<(), Invalid> {
        self.options.check("settings.tts.")
    }
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused<P: Payload>(data: serde_json::Value) -> String {
        P::parse(&data).err().map(|e| e.0).unwrap_or_default()
    }

    #[test]
    fn texts_and_options_are_checked() {
        let p = SynthesizePayload::parse(&json!({"text": "hi", "voice": "alloy", "speed": 1.5}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.options.voice.as_deref(), Some("alloy"));
        assert!(p.save);
        assert!(refused::<SynthesizePayload>(json!({"text": "  "})).contains("text is empty"));
        assert!(refused::<SynthesizePayload>(json!({})).contains("text"));
        assert!(refused::<SynthesizePayload>(json!({"text": "a\u{0}"})).contains("NUL"));
        assert!(refused::<SynthesizePayload>(json!({"text": "hi", "speed": 9})).contains("speed"));
        assert!(refused::<SynthesizePayload>(json!({"text": "hi", "voice": ""})).contains("voice"));
        assert!(
            refused::<StreamPayload>(json!({"chunk_schedule": [10]}))
                .contains("between 50 and 500")
        );
        assert!(refused::<StreamPayload>(json!({"chunk_schedule": []})).contains("entries"));
        assert!(
            refused::<StreamPayload>(json!({"chunk_schedule": vec![60; 9]})).contains("entries")
        );
        assert!(StreamPayload::parse(&json!({"chunk_schedule": [50, 120, 500]})).is_ok());
        let chat: ChatSpeech =
            serde_json::from_value(json!({"enabled": true, "chunk_schedule": [1]}))
                .unwrap_or_default();
        assert!(
            chat.check()
                .is_err_and(|e| e.0.starts_with("settings.tts.chunk_schedule"))
        );
    }
}
