//! OpenAI text to speech, `POST /v1/audio/speech`: audio bytes in chunks, or `speech.audio.delta`
//! and `speech.audio.done` server-sent events with `stream_format: "sse"`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::Value;

use super::wire::{ErrorBody, ErrorDetail, SpeechEvent, SpeechUsage, sse};
use super::{
    Invalid, SERVER_ERROR_MESSAGE, bearer_key, failure_response, invalid_request, invalid_value,
    missing, no_api_key,
};
use crate::audio::{self, AudioFormat, Clip, Codec};
use crate::content::word_count;
use crate::engine::{self, Failure, Turn};
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;
use crate::speech::RawAudioTurn;

/// Longest `input` the API accepts, in characters.
const MAX_INPUT_CHARS: usize = 4096;
/// Slowest and fastest `speed`.
const SPEED_RANGE: std::ops::RangeInclusive<f64> = 0.25..=4.0;
/// Built-in voices, as the SDK lists them; a custom voice is an object `{"id": "voice_…"}`.
const VOICES: [&str; 13] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];
/// Models that only answer with audio bytes (no `stream_format: "sse"`).
const BYTES_ONLY_MODELS: [&str; 2] = ["tts-1", "tts-1-hd"];
/// Every output is 24 kHz mono, as OpenAI's is.
const RATE: u32 = 24_000;
/// Bitrate of the (silent) MP3 frames.
const MP3_KBPS: u32 = 64;
/// Audio of a `speech.audio.delta` the `bad_audio` behaviour sends: not base64.
const NOT_BASE64: &str = "!!not base64!!";

/// `POST /v1/audio/speech`.
pub(crate) async fn audio_speech(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The real API checks the key before it reads the body.
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return invalid_request(
                format!("We could not parse the JSON body of your request: {err}"),
                None,
            );
        }
    };
    let request = match SpeechRequest::parse(&body) {
        Ok(request) => request,
        Err(invalid) => return invalid.into_response(),
    };
    let config = shared.config();
    let duration = audio::speech_duration(&request.input, config.speech_per_char, request.speed);
    let clip = Clip::new(request.format, duration, config.audio_chunk);
    let incoming = Incoming::new(WireFormat::OpenAiSpeech, &uri, Some(authorization), body)
        .with_text(&request.input);
    let (behaviour, guard) = shared.begin(incoming);
    tracing::debug!(?behaviour, sse = request.sse, "openai speech");
    let timing = engine::Timing::from(config);
    if request.sse {
        let turn = SseTurn {
            clip,
            model: request.model,
            input_tokens: word_count(&request.input),
        };
        engine::respond(turn, &behaviour, timing, guard, shared.stop_token()).await
    } else {
        // The real API streams the bytes with chunked transfer encoding as they are made.
        let turn = RawAudioTurn::new(clip, true, &request.model, failure_response);
        engine::respond(turn, &behaviour, timing, guard, shared.stop_token()).await
    }
}

/// A speech request the simulator accepted.
struct SpeechRequest {
    model: String,
    input: String,
    format: AudioFormat,
    speed: f64,
    /// `stream_format: "sse"`.
    sse: bool,
}

impl SpeechRequest {
    /// Checks the fields the real API checks, with its messages and codes.
    fn parse(body: &Value) -> Result<Self, Invalid> {
        let Some(object) = body.as_object() else {
            return Err(Invalid::new(
                "The request body must be a JSON object.".to_owned(),
                None,
            ));
        };
        let present = |key: &str| object.get(key).filter(|v| !v.is_null());
        let model = match present("model") {
            Some(Value::String(model)) => model.clone(),
            Some(other) => return Err(invalid_type("model", "a string", other)),
            None => {
                return Err(Invalid::new(
                    "you must provide a model parameter".to_owned(),
                    Some("model"),
                ));
            }
        };
        let input = match present("input") {
            Some(Value::String(input)) => input.clone(),
            Some(other) => return Err(invalid_type("input", "a string", other)),
            None => return Err(missing("input")),
        };
        let length = input.chars().count();
        if length > MAX_INPUT_CHARS {
            return Err(Invalid::new(
                format!(
                    "Invalid 'input': string too long. Expected a string with maximum length {MAX_INPUT_CHARS}, but got a string with length {length} instead."
                ),
                Some("input"),
            )
            .with_code("string_above_max_length"));
        }
        if length == 0 {
            return Err(Invalid::new(
                "Invalid 'input': string too short. Expected a string with minimum length 1, but got an empty string instead.".to_owned(),
                Some("input"),
            )
            .with_code("string_below_min_length"));
        }
        match present("voice") {
            Some(Value::String(voice)) if VOICES.contains(&voice.as_str()) => {}
            Some(Value::String(voice)) => {
                return Err(invalid_value("voice", voice, &VOICES));
            }
            Some(Value::Object(custom)) if custom.get("id").is_some_and(Value::is_string) => {}
            Some(other) => {
                return Err(invalid_type(
                    "voice",
                    "a string or an object with an 'id'",
                    other,
                ));
            }
            None => return Err(missing("voice")),
        }
        let format = match present("response_format") {
            None => response_format("mp3")?,
            Some(Value::String(format)) => response_format(format)?,
            Some(other) => return Err(invalid_type("response_format", "a string", other)),
        };
        let speed = match present("speed") {
            None => 1.0,
            Some(Value::Number(speed)) => {
                let speed = speed.as_f64().unwrap_or(f64::NAN);
                if speed < *SPEED_RANGE.start() {
                    return Err(Invalid::new(
                        format!("Invalid 'speed': decimal below minimum value. Expected a value >= 0.25, but got {speed} instead."),
                        Some("speed"),
                    )
                    .with_code("decimal_below_min_value"));
                }
                if speed > *SPEED_RANGE.end() || speed.is_nan() {
                    return Err(Invalid::new(
                        format!("Invalid 'speed': decimal above maximum value. Expected a value <= 4, but got {speed} instead."),
                        Some("speed"),
                    )
                    .with_code("decimal_above_max_value"));
                }
                speed
            }
            Some(other) => return Err(invalid_type("speed", "a number", other)),
        };
        match present("instructions") {
            None | Some(Value::String(_)) => {}
            Some(other) => return Err(invalid_type("instructions", "a string", other)),
        }
        let sse = match present("stream_format") {
            None => false,
            Some(Value::String(f)) if f == "audio" => false,
            Some(Value::String(f)) if f == "sse" => true,
            Some(Value::String(f)) => {
                return Err(invalid_value("stream_format", f, &["sse", "audio"]));
            }
            Some(other) => return Err(invalid_type("stream_format", "a string", other)),
        };
        if sse && BYTES_ONLY_MODELS.contains(&model.as_str()) {
            return Err(Invalid::new(
                format!("Unsupported value: 'stream_format' does not support 'sse' with model '{model}'. Use 'audio' instead."),
                Some("stream_format"),
            )
            .with_code("unsupported_value"));
        }
        Ok(Self {
            model,
            input,
            format,
            speed,
            sse,
        })
    }
}

/// The encoding for a `response_format`; the compressed formats the simulator cannot encode are
/// refused so that no test mistakes a stand-in for real audio.
fn response_format(name: &str) -> Result<AudioFormat, Invalid> {
    let codec = match name {
        "pcm" => Codec::Pcm,
        "wav" => Codec::Wav,
        "mp3" => Codec::Mp3 { kbps: MP3_KBPS },
        "opus" | "aac" | "flac" => {
            return Err(Invalid::new(
                format!("provider-sim cannot encode '{name}'; ask for 'pcm', 'wav' or 'mp3' (silent frames)."),
                Some("response_format"),
            )
            .with_code("unsupported_in_simulator"));
        }
        other => {
            return Err(invalid_value(
                "response_format",
                other,
                &["mp3", "opus", "aac", "flac", "wav", "pcm"],
            ));
        }
    };
    Ok(AudioFormat { codec, rate: RATE })
}

fn invalid_type(param: &'static str, expected: &str, got: &Value) -> Invalid {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    Invalid::new(
        format!("Invalid type for '{param}': expected {expected}, but got {got} instead."),
        Some(param),
    )
    .with_code("invalid_type")
}

/// A `stream_format: "sse"` reply: one `speech.audio.delta` per chunk, then `speech.audio.done`.
struct SseTurn {
    clip: Clip,
    model: String,
    input_tokens: u64,
}

impl SseTurn {
    fn delta(audio: &str) -> Bytes {
        sse(&SpeechEvent::Delta { audio })
    }

    fn done(&self) -> Bytes {
        // Each chunk counts as one output token, as each unit of a chat reply does.
        let output_tokens = self.clip.chunk_count() as u64;
        sse(&SpeechEvent::Done {
            usage: SpeechUsage {
                input_tokens: self.input_tokens,
                output_tokens,
                total_tokens: self.input_tokens + output_tokens,
            },
        })
    }
}

impl Turn for SseTurn {
    fn streaming(&self) -> bool {
        true
    }

    fn units(&self) -> usize {
        self.clip.chunk_count()
    }

    fn opening(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn unit(&mut self, index: usize) -> Bytes {
        Self::delta(&BASE64.encode(self.clip.chunk(index)))
    }

    fn closing(&mut self) -> Vec<Bytes> {
        vec![self.done()]
    }

    fn malformed(&mut self) -> Vec<Bytes> {
        vec![Bytes::from_static(b"data: {not json\n\n"), self.done()]
    }

    fn bad_audio(&mut self) -> Vec<Bytes> {
        vec![Self::delta(NOT_BASE64), self.done()]
    }

    /// Like a chat stream's: a `data:` line holding an error object, and no `speech.audio.done`.
    fn error_event(&mut self) -> Vec<Bytes> {
        vec![sse(&ErrorBody {
            error: ErrorDetail {
                message: SERVER_ERROR_MESSAGE.to_owned(),
                kind: "server_error",
                param: None,
                code: None,
            },
        })]
    }

    /// Never asked for (the reply is always streamed); the whole event stream at once.
    fn complete(&self) -> Response {
        let mut body = Vec::new();
        for index in 0..self.clip.chunk_count() {
            body.extend_from_slice(&Self::delta(&BASE64.encode(self.clip.chunk(index))));
        }
        body.extend_from_slice(&self.done());
        let mut response = body.into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        response
    }

    fn malformed_complete(&self) -> Response {
        let mut response = "{not json".into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }

    fn failure(&self, failure: Failure) -> Response {
        failure_response(failure, &self.model)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body() -> Value {
        json!({"model": "gpt-4o-mini-tts", "input": "Hello there", "voice": "alloy"})
    }

    fn rejected(mut patch: impl FnMut(&mut Value)) -> Invalid {
        let mut body = body();
        patch(&mut body);
        match SpeechRequest::parse(&body) {
            Ok(_) => panic!("accepted {body}"),
            Err(invalid) => invalid,
        }
    }

    #[test]
    fn defaults_are_mp3_at_speed_one_as_bytes() {
        let Ok(request) = SpeechRequest::parse(&body()) else {
            panic!("refused the default body");
        };
        assert_eq!(request.format.codec, Codec::Mp3 { kbps: MP3_KBPS });
        assert_eq!(request.format.rate, RATE);
        assert!((request.speed - 1.0).abs() < f64::EPSILON);
        assert!(!request.sse);
    }

    #[test]
    fn the_api_refusals() {
        let long = rejected(|b| b["input"] = json!("x".repeat(4097)));
        assert_eq!(long.code, Some("string_above_max_length"));
        assert_eq!(long.param, Some("input"));
        assert_eq!(rejected(|b| b["voice"] = json!("bob")).param, Some("voice"));
        assert_eq!(
            rejected(|b| b["response_format"] = json!("ogg")).code,
            Some("invalid_value")
        );
        assert_eq!(
            rejected(|b| b["response_format"] = json!("opus")).code,
            Some("unsupported_in_simulator")
        );
        assert_eq!(
            rejected(|b| b["speed"] = json!(4.5)).code,
            Some("decimal_above_max_value")
        );
        assert_eq!(
            rejected(|b| b["speed"] = json!(0.1)).code,
            Some("decimal_below_min_value")
        );
        let sse_on_tts1 = rejected(|b| {
            b["model"] = json!("tts-1");
            b["stream_format"] = json!("sse");
        });
        assert_eq!(sse_on_tts1.param, Some("stream_format"));
        assert_eq!(rejected(|b| b["input"] = json!("")).param, Some("input"));
        let mut no_voice = body();
        no_voice.as_object_mut().unwrap().remove("voice");
        assert!(SpeechRequest::parse(&no_voice).is_err());
    }

    #[test]
    fn custom_voice_objects_and_4096_characters_are_accepted() {
        let mut body = body();
        body["voice"] = json!({"id": "voice_1234"});
        body["input"] = json!("é".repeat(4096));
        assert!(SpeechRequest::parse(&body).is_ok());
    }
}
