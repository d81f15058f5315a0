//! The `data` of the `stt.*` actions: transcription of a stored file or of audio carried in the
//! action, with one set of shape and range rules for the gateway and the worker.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Invalid, Payload, storable};

/// The action type that transcribes a file.
pub const TRANSCRIBE_FILE: &str = "stt.transcription.file";
/// The action type that transcribes audio while a client streams it.
pub const TRANSCRIBE_STREAM: &str = "stt.transcription.stream";

/// The most audio an action may carry itself, base64 characters (an action is at most 2 MiB;
/// larger files are uploaded and named by `key`).
pub const MAX_INLINE_BASE64: usize = 1_500_000;
/// The formats a client may name.
pub const FORMATS: [&str; 9] = [
    "wav", "mp3", "ogg", "opus", "webm", "flac", "m4a", "mp4", "pcm",
];

/// The `data` of a `stt.transcription.file` action: one of `key` or `audio_base64`. The answer
/// is a `transcription` event (`text`, `is_final: true`, `segments`) and `text_completed`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct TranscribePayload {
    /// A stored file of the action's tenant (`{tenant}/uploads/…`, as the upload route answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    pub key: Option<String>,
    /// Or the audio itself, base64 (at most 1,500,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1_500_000)]
    pub audio_base64: Option<String>,
    /// The audio's format when the key's extension does not tell it: `wav`, `mp3`, `ogg`,
    /// `opus`, `webm`, `flac`, `m4a`, `mp4`, or `pcm` (16-bit little-endian mono at
    /// `sample_rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The sample rate of `pcm` audio, 8,000 to 48,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 8000, maximum = 48000)]
    pub sample_rate: Option<u32>,
    /// The spoken language (ISO-639-1, e.g. `en`); the provider guesses when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 8)]
    pub language: Option<String>,
    /// `local` (offline Whisper, the default with no key), `openai`, `deepgram` or `gemini`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 40)]
    pub provider: Option<String>,
    /// The provider's model (`whisper-1`, `gpt-4o-transcribe`, `nova-3`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub model: Option<String>,
    /// Words that help the provider (names, spellings), where it takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2000)]
    pub prompt: Option<String>,
}

/// The formats of live audio: `pcm`, 16-bit little-endian mono at `sample_rate` (what a browser's
/// `AudioWorklet` gives after converting its floats).
pub const LIVE_FORMATS: [&str; 1] = ["pcm"];

/// The `data` of a `stt.transcription.stream` action: audio that arrives while it is spoken, as
/// entries of the task's audio stream (`Names::audio_input_stream`; the WebSocket's binary frames
/// after `audio_start`). The answer is `transcription` events, interim (`is_final: false`) and
/// final, then `text_completed` with the whole text when the audio ends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamPayload {
    /// `pcm` (16-bit little-endian mono), the only live format.
    #[serde(default = "pcm")]
    #[schema(default = "pcm")]
    pub format: String,
    /// Samples per second, 8,000 to 48,000.
    #[schema(minimum = 8000, maximum = 48000)]
    pub sample_rate: u32,
    /// The spoken language (ISO-639-1, e.g. `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 8)]
    pub language: Option<String>,
    /// `local`, `deepgram` (its live WebSocket), `openai` or `gemini` (both per utterance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 40)]
    pub provider: Option<String>,
    /// The provider's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub model: Option<String>,
    /// Send interim transcriptions while a sentence is still spoken (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub interim_results: bool,
    /// Words that help the provider, where it takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2000)]
    pub prompt: Option<String>,
}

fn pcm() -> String {
    "pcm".into()
}

fn yes() -> bool {
    true
}

impl Payload for StreamPayload {
    fn validate(&self) -> Result<(), Invalid> {
        if !LIVE_FORMATS.contains(&self.format.as_str()) {
            return Err(Invalid(format!(
                "live audio format must be one of {}",
                LIVE_FORMATS.join(", ")
            )));
        }
        check_rate(Some(self.sample_rate))?;
        check_common(
            self.language.as_deref(),
            self.provider.as_deref(),
            self.model.as_deref(),
            self.prompt.as_deref(),
        )
    }
}

fn check_rate(rate: Option<u32>) -> Result<(), Invalid> {
    if let Some(rate) = rate
        && !(8000..=48_000).contains(&rate)
    {
        return Err(Invalid("sample_rate must be between 8000 and 48000".into()));
    }
    Ok(())
}

/// The rules of the options both transcription actions share.
fn check_common(
    language: Option<&str>,
    provider: Option<&str>,
    model: Option<&str>,
    prompt: Option<&str>,
) -> Result<(), Invalid> {
    if let Some(language) = language
        && (language.is_empty()
            || language.len() > 8
            || !language
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == '-'))
    {
        return Err(Invalid(
            "language must be a language code such as en or pt-BR".into(),
        ));
    }
    for (value, name, max) in [(provider, "provider", 40), (model, "model", 100)] {
        if let Some(v) = value {
            crate::text::check(name, v, max).map_err(Invalid)?;
        }
    }
    if let Some(prompt) = prompt {
        storable(prompt, "prompt")?;
        crate::text::check("prompt", prompt, 2000).map_err(Invalid)?;
    }
    Ok(())
}

impl Payload for TranscribePayload {
    fn validate(&self) -> Result<(), Invalid> {
        match (&self.key, &self.audio_base64) {
            (Some(_), Some(_)) => {
                return Err(Invalid("give key or audio_base64, not both".into()));
            }
            (None, None) => return Err(Invalid("key or audio_base64 is required".into())),
            (Some(key), None) => crate::text::check("key", key, 1024).map_err(Invalid)?,
            (None, Some(audio)) => {
                if audio.is_empty() {
                    return Err(Invalid("audio_base64 is empty".into()));
                }
                if audio.len() > MAX_INLINE_BASE64 {
                    return Err(Invalid(format!(
                        "audio_base64 is longer than {MAX_INLINE_BASE64} characters; upload the file and give its key"
                    )));
                }
            }
        }
        if let Some(format) = &self.format
            && !FORMATS.contains(&format.as_str())
        {
            return Err(Invalid(format!(
                "format must be one of {}",
                FORMATS.join(", ")
            )));
        }
        check_rate(self.sample_rate)?;
        if self.format.as_deref() == Some("pcm") && self.sample_rate.is_none() {
            return Err(Invalid("pcm audio needs its sample_rate".into()));
        }
        check_common(
            self.language.as_deref(),
            self.provider.as_deref(),
            self.model.as_deref(),
            self.prompt.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(data: serde_json::Value) -> String {
        TranscribePayload::parse(&data)
            .err()
            .map(|e| e.0)
            .unwrap_or_default()
    }

    #[test]
    fn one_source_of_audio_and_sane_options() {
        assert!(TranscribePayload::parse(&json!({"key": "t/uploads/a.wav"})).is_ok());
        assert!(
            TranscribePayload::parse(&json!({"audio_base64": "UklGRg==", "language": "en"}))
                .is_ok()
        );
        assert!(refused(json!({})).contains("required"));
        assert!(refused(json!({"key": "k", "audio_base64": "x"})).contains("not both"));
        assert!(refused(json!({"key": "k", "format": "exe"})).contains("format"));
        assert!(refused(json!({"key": "k", "format": "pcm"})).contains("sample_rate"));
        assert!(refused(json!({"key": "k", "sample_rate": 100})).contains("sample_rate"));
        assert!(refused(json!({"key": "k", "language": "en;drop"})).contains("language"));
        assert!(refused(json!({"key": "a\u{0}"})).contains("NUL"));
    }

    #[test]
    fn live_audio_is_pcm_at_a_stated_rate() {
        let p = StreamPayload::parse(&json!({"sample_rate": 16000})).unwrap();
        assert_eq!(p.format, "pcm");
        assert!(p.interim_results);
        let refused = |data| {
            StreamPayload::parse(&data)
                .err()
                .map(|e| e.0)
                .unwrap_or_default()
        };
        assert!(!refused(json!({})).is_empty());
        assert!(refused(json!({"sample_rate": 16000, "format": "mp3"})).contains("pcm"));
        assert!(refused(json!({"sample_rate": 4000})).contains("sample_rate"));
        assert!(refused(json!({"sample_rate": 16000, "language": "x y"})).contains("language"));
    }
}
