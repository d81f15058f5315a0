//! Gemini audio understanding: a request whose contents carry an audio `inlineData` part (with,
//! say, "Transcribe this audio") is answered with the transcript as text, in the usual
//! `generateContent` shape and one word per streamed chunk.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::Value;

use super::request::at;
use crate::audio::probe::{Container, RawLayout};
use crate::transcript::Transcript;

/// Largest request the API takes with inline data; bigger files go through the Files API.
const MAX_REQUEST_BYTES: usize = 20 * 1024 * 1024;
/// Prompt tokens a second of audio counts, as the API documents.
const TOKENS_PER_SECOND: f64 = 32.0;
/// Audio MIME types the API understands, with the aliases clients send.
const MIME_TYPES: [&str; 12] = [
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/mp3",
    "audio/mpeg",
    "audio/aiff",
    "audio/x-aiff",
    "audio/aac",
    "audio/ogg",
    "audio/flac",
    "audio/pcm",
    "audio/l16",
];
/// Sample rate of raw PCM (`audio/pcm`, `audio/L16`) that names none.
const DEFAULT_PCM_RATE: u32 = 16_000;
/// Google's message for an argument it cannot use, such as audio it cannot decode.
const INVALID: &str = "Request contains an invalid argument.";

/// The audio a request carries, all parts together.
pub(super) struct Audio {
    pub(super) bytes: usize,
    pub(super) duration: Duration,
}

impl Audio {
    /// Prompt tokens of the audio.
    pub(super) fn tokens(&self) -> u64 {
        (self.duration.as_secs_f64() * TOKENS_PER_SECOND).ceil() as u64
    }
}

/// The audio of every audio `inlineData` part, decoded and measured; `None` if there is none,
/// `Err` with the `INVALID_ARGUMENT` message if the API would refuse it.
pub(super) fn audio_of(body: &Value, body_len: usize) -> Result<Option<Audio>, String> {
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut found: Option<Audio> = None;
    for (c, content) in contents.iter().enumerate() {
        let parts = content
            .get("parts")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for (p, part) in parts.iter().enumerate() {
            let Some(inline) = at(part, "inlineData", "inline_data") else {
                continue;
            };
            let mime = at(inline, "mimeType", "mime_type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut params = mime.split(';').map(str::trim);
            let media = params.next().unwrap_or_default().to_ascii_lowercase();
            if !media.starts_with("audio/") {
                continue;
            }
            if body_len > MAX_REQUEST_BYTES {
                return Err(format!(
                    "Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes."
                ));
            }
            if !MIME_TYPES.contains(&media.as_str()) {
                return Err(format!("Unsupported MIME type: {mime}"));
            }
            let data = inline
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let bytes = STANDARD
                .decode(data)
                .or_else(|_| URL_SAFE.decode(data))
                .map_err(|_| {
                    let start: String = data.chars().take(20).collect();
                    format!(
                        "Invalid value at 'contents[{c}].parts[{p}].inline_data.data' (TYPE_BYTES), Base64 decoding failed for \"{start}\""
                    )
                })?;
            if bytes.is_empty() {
                return Err(INVALID.to_owned());
            }
            let raw = matches!(media.as_str(), "audio/pcm" | "audio/l16").then(|| {
                let param = |name: &str| {
                    params
                        .clone()
                        .filter_map(|p| p.split_once('='))
                        .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
                        .and_then(|(_, value)| value.trim().parse::<u32>().ok())
                        .filter(|value| *value > 0)
                };
                RawLayout {
                    rate: param("rate").unwrap_or(DEFAULT_PCM_RATE),
                    channels: param("channels")
                        .and_then(|c| u16::try_from(c).ok())
                        .unwrap_or(1),
                    sample_bytes: 2,
                }
            });
            let container = Container::sniff(&bytes, raw).map_err(|_| INVALID.to_owned())?;
            let wav = matches!(media.as_str(), "audio/wav" | "audio/x-wav" | "audio/wave");
            if wav && !matches!(container, Container::Wav { .. }) {
                return Err(INVALID.to_owned());
            }
            let audio = found.get_or_insert(Audio {
                bytes: 0,
                duration: Duration::ZERO,
            });
            audio.bytes += bytes.len();
            audio.duration = audio
                .duration
                .saturating_add(container.duration(bytes.len()));
        }
    }
    Ok(found)
}

/// The transcript as streamed text pieces, one per word; none for audio without any sound.
pub(super) fn pieces(transcript: &Transcript, duration: Duration) -> Vec<String> {
    if duration.is_zero() {
        return Vec::new();
    }
    (0..transcript.len())
        .filter_map(|k| transcript.cyclic(k))
        .enumerate()
        .map(|(i, word)| {
            if i == 0 {
                word.text().to_owned()
            } else {
                format!(" {}", word.text())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with_audio(mime: &str, data: &str) -> Value {
        json!({"contents": [{"parts": [
            {"text": "Transcribe this audio"},
            {"inlineData": {"mimeType": mime, "data": data}}
        ]}]})
    }

    fn refused(body: &Value) -> String {
        match audio_of(body, 100) {
            Err(message) => message,
            Ok(_) => panic!("accepted {body}"),
        }
    }

    #[test]
    fn raw_pcm_follows_its_rate_and_chat_has_no_audio() {
        // 0.5 s of 24 kHz 16-bit mono, as Gemini's own speech replies carry.
        let pcm = STANDARD.encode(vec![0u8; 24_000]);
        let audio = audio_of(&with_audio("audio/L16;codec=pcm;rate=24000", &pcm), 100);
        let audio = audio
            .ok()
            .flatten()
            .map(|a| (a.bytes, a.duration, a.tokens()));
        assert_eq!(audio, Some((24_000, Duration::from_millis(500), 16)));
        let chat = json!({"contents": [{"parts": [{"text": "hi"}]}]});
        assert!(matches!(audio_of(&chat, 100), Ok(None)));
        // An image is not audio.
        let image = with_audio("image/png", "AAAA");
        assert!(matches!(audio_of(&image, 100), Ok(None)));
    }

    #[test]
    fn what_the_api_refuses() {
        assert!(
            refused(&with_audio("audio/x-ms-wma", "AAAA")).starts_with("Unsupported MIME type")
        );
        assert!(
            refused(&with_audio("audio/wav", "not base64!")).contains("Base64 decoding failed")
        );
        assert_eq!(refused(&with_audio("audio/wav", "")), INVALID);
        assert_eq!(refused(&with_audio("audio/wav", "AAAAAAAA")), INVALID);
        let big = with_audio("audio/mp3", "AAAA");
        assert!(audio_of(&big, MAX_REQUEST_BYTES + 1).is_err());
    }

    #[test]
    fn pieces_join_into_the_transcript() {
        let transcript = Transcript::new("Hello there, world.");
        let pieces = pieces(&transcript, Duration::from_secs(1));
        assert_eq!(pieces, ["Hello", " there,", " world."]);
        assert!(super::pieces(&transcript, Duration::ZERO).is_empty());
    }
}
