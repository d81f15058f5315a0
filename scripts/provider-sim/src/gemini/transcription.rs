//! Gemini audio understanding: a request whose contents carry an audio `inlineData` part is
//! answered, in the usual `generateContent` shape and one word per streamed chunk, with the
//! transcript when its text asks for one ("Transcribe this audio"), and otherwise, as a chat
//! about the audio, with what the model heard: "I heard 115244 bytes of audio/wav (3.6 s)."

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
    /// The media type of the first audio part, lower case, without parameters (`audio/wav`).
    pub(super) mime: String,
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
            let audio = found.get_or_insert_with(|| Audio {
                bytes: 0,
                duration: Duration::ZERO,
                mime: media.clone(),
            });
            audio.bytes += bytes.len();
            audio.duration = audio
                .duration
                .saturating_add(container.duration(bytes.len()));
        }
    }
    Ok(found)
}

/// Whether the request's text asks for a transcript: one of its text parts, the system
/// instruction's included, says "transcribe", "transcript" or "transcription".
pub(super) fn asks_for_transcript(body: &Value) -> bool {
    let contents = body.get("contents").and_then(Value::as_array);
    let system = at(body, "systemInstruction", "system_instruction");
    contents
        .into_iter()
        .flatten()
        .chain(system)
        .filter_map(|content| content.get("parts").and_then(Value::as_array))
        .flatten()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .any(|text| text.to_lowercase().contains("transcri"))
}

/// A chat's answer about its audio, one word per piece: "I heard 115244 bytes of audio/wav
/// (3.6 s)." — checkable proof that the audio arrived whole.
pub(super) fn heard(audio: &Audio) -> Vec<String> {
    let said = format!(
        "I heard {} bytes of {} ({:.1} s).",
        audio.bytes,
        audio.mime,
        audio.duration.as_secs_f64()
    );
    said.split(' ')
        .enumerate()
        .map(|(i, word)| {
            if i == 0 {
                word.to_owned()
            } else {
                format!(" {word}")
            }
        })
        .collect()
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
    fn a_chat_about_audio_hears_it_and_a_transcription_asks_for_one() {
        let transcribe = with_audio("audio/wav", "AAAA");
        let chat = json!({"contents": [{"parts": [
            {"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}},
            {"text": "What is said here?"}
        ]}]});
        assert!(asks_for_transcript(&transcribe));
        assert!(!asks_for_transcript(&chat));
        let system = json!({"systemInstruction": {"parts": [{"text": "You write transcripts."}]},
            "contents": []});
        assert!(asks_for_transcript(&system));
        let audio = Audio {
            bytes: 12_345,
            duration: Duration::from_millis(3_250),
            mime: "audio/wav".into(),
        };
        assert_eq!(
            heard(&audio).concat(),
            "I heard 12345 bytes of audio/wav (3.2 s)."
        );
        assert_eq!(heard(&audio)[1], " heard");
    }

    #[test]
    fn pieces_join_into_the_transcript() {
        let transcript = Transcript::new("Hello there, world.");
        let pieces = pieces(&transcript, Duration::from_secs(1));
        assert_eq!(pieces, ["Hello", " there,", " world."]);
        assert!(super::pieces(&transcript, Duration::ZERO).is_empty());
    }
}
