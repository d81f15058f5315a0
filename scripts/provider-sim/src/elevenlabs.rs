//! ElevenLabs text to speech: `POST /v1/text-to-speech/{voice_id}` (whole clip), `…/stream`
//! (chunked) and the `…/stream-input` WebSocket (text in, audio messages out).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use crate::audio::{self, AudioFormat, Clip, Codec};
use crate::engine::{self, Failure};
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;
use crate::speech::RawAudioTurn;

mod socket;
mod wire;

pub(crate) use socket::stream_input;
use wire::{Detail, DetailError, ValidationError, ValidationItem};

/// Header carrying the API key.
const KEY_HEADER: &str = "xi-api-key";
/// `output_format` when the request names none.
const DEFAULT_OUTPUT_FORMAT: &str = "mp3_44100_128";
/// `model_id` when the request names none.
const DEFAULT_MODEL: &str = "eleven_multilingual_v2";
/// Sample rates of the `pcm_*` and `wav_*` formats.
const PCM_RATES: [u32; 7] = [8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];
/// (rate, kbit/s) of the `mp3_*` formats.
const MP3_FORMATS: [(u32, u32); 7] = [
    (22_050, 32),
    (24_000, 48),
    (44_100, 32),
    (44_100, 64),
    (44_100, 96),
    (44_100, 128),
    (44_100, 192),
];
/// Bitrates of the `opus_48000_*` formats, which the simulator cannot encode.
const OPUS_KBPS: [u32; 5] = [32, 64, 96, 128, 192];

/// `POST /v1/text-to-speech/{voice_id}`: the whole clip in one body.
pub(crate) async fn convert(
    state: State<Arc<Shared>>,
    voice: Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    text_to_speech(state, voice, uri, headers, body, false).await
}

/// `POST /v1/text-to-speech/{voice_id}/stream`: the clip in paced chunks.
pub(crate) async fn convert_stream(
    state: State<Arc<Shared>>,
    voice: Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    text_to_speech(state, voice, uri, headers, body, true).await
}

async fn text_to_speech(
    State(shared): State<Arc<Shared>>,
    Path(_voice_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    streaming: bool,
) -> Response {
    let Some(key) = api_key(&headers) else {
        return invalid_api_key();
    };
    let query = query_of(&uri);
    let format = match output_format(&query) {
        Ok(format) => format,
        Err(rejected) => return rejected.into_response(),
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return Rejected::Validation {
                kind: "json_invalid",
                field: "0",
                msg: format!("JSON decode error: {err}"),
                input: Box::new(Value::Null),
            }
            .into_response();
        }
    };
    let request = match SpeechRequest::parse(&body) {
        Ok(request) => request,
        Err(rejected) => return rejected.into_response(),
    };
    let config = shared.config();
    let duration = audio::speech_duration(&request.text, config.speech_per_char, request.speed);
    let clip = Clip::new(format, duration, config.audio_chunk);
    let incoming =
        Incoming::new(WireFormat::ElevenLabs, &uri, Some(key), body).with_text(&request.text);
    let (behaviour, guard) = shared.begin(incoming);
    tracing::debug!(?behaviour, streaming, "elevenlabs text to speech");
    let turn = RawAudioTurn::new(clip, streaming, &request.model, failure_response);
    engine::respond(
        turn,
        &behaviour,
        engine::Timing::from(config),
        guard,
        shared.stop_token(),
    )
    .await
}

/// A text-to-speech request body the simulator accepted.
struct SpeechRequest {
    text: String,
    model: String,
    /// `voice_settings.speed`, 1.0 when absent.
    speed: f64,
}

impl SpeechRequest {
    fn parse(body: &Value) -> Result<Self, Rejected> {
        let text = match body.get("text") {
            Some(Value::String(text)) => text.clone(),
            Some(other) => {
                return Err(Rejected::Validation {
                    kind: "string_type",
                    field: "text",
                    msg: "Input should be a valid string".to_owned(),
                    input: Box::new(other.clone()),
                });
            }
            None => {
                return Err(Rejected::Validation {
                    kind: "missing",
                    field: "text",
                    msg: "Field required".to_owned(),
                    input: Box::new(body.clone()),
                });
            }
        };
        let model = body
            .get("model_id")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_MODEL)
            .to_owned();
        let limit = character_limit(&model);
        let length = text.chars().count();
        if length > limit {
            return Err(Rejected::Detail {
                status: StatusCode::BAD_REQUEST,
                detail_status: "max_character_limit_exceeded",
                message: format!(
                    "This request's text has {length} characters and exceeds the character limit of {limit} characters."
                ),
            });
        }
        Ok(Self {
            text,
            model,
            speed: voice_speed(body.get("voice_settings")),
        })
    }
}

/// Characters one request may hold, by model family.
fn character_limit(model: &str) -> usize {
    if model.ends_with("_v2_5") {
        40_000
    } else if model.starts_with("eleven_flash") || model.starts_with("eleven_turbo") {
        30_000
    } else {
        10_000
    }
}

/// `voice_settings.speed` if it is a positive number, else 1.0.
fn voice_speed(settings: Option<&Value>) -> f64 {
    settings
        .and_then(|s| s.get("speed"))
        .and_then(Value::as_f64)
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0)
}

/// The key from the `xi-api-key` header.
fn api_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn query_of(uri: &Uri) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(q)| q)
        .unwrap_or_default()
}

/// The encoding named by the `output_format` query parameter.
fn output_format(query: &HashMap<String, String>) -> Result<AudioFormat, Rejected> {
    let name = query
        .get("output_format")
        .map_or(DEFAULT_OUTPUT_FORMAT, String::as_str);
    match parse_output_format(name) {
        OutputFormat::Supported(format) => Ok(format),
        OutputFormat::Unsupported => Err(Rejected::Detail {
            status: StatusCode::BAD_REQUEST,
            detail_status: "unsupported_in_simulator",
            message: format!(
                "provider-sim cannot encode {name}; ask for pcm_*, wav_*, mp3_* (silent frames), ulaw_8000 or alaw_8000."
            ),
        }),
        OutputFormat::Unknown => Err(Rejected::Validation {
            kind: "enum",
            field: "output_format",
            msg: format!("Input should be a valid output format, got '{name}'"),
            input: Box::new(Value::String(name.to_owned())),
        }),
    }
}

/// Why a request is refused before it is served.
enum Rejected {
    /// `{"detail": {"status": …, "message": …}}` with an HTTP status.
    Detail {
        status: StatusCode,
        detail_status: &'static str,
        message: String,
    },
    /// A 422 for one invalid field.
    Validation {
        kind: &'static str,
        field: &'static str,
        msg: String,
        /// Boxed: a `Value` is large, and the error travels in every `Result` of the parsers.
        input: Box<Value>,
    },
}

impl Rejected {
    fn into_response(self) -> Response {
        match self {
            Rejected::Detail {
                status,
                detail_status,
                message,
            } => detail_error(status, detail_status, message),
            Rejected::Validation {
                kind,
                field,
                msg,
                input,
            } => validation_error(kind, field, msg, *input),
        }
    }
}

enum OutputFormat {
    Supported(AudioFormat),
    /// A real format the simulator does not encode (Opus).
    Unsupported,
    Unknown,
}

/// Parses `codec_rate[_kbps]`, e.g. `pcm_24000`, `mp3_44100_128`, `ulaw_8000`.
fn parse_output_format(name: &str) -> OutputFormat {
    let mut parts = name.split('_');
    let codec = parts.next().unwrap_or_default();
    let rate = parts.next().and_then(|r| r.parse::<u32>().ok());
    let kbps = parts.next().map(|k| k.parse::<u32>().ok());
    if parts.next().is_some() {
        return OutputFormat::Unknown;
    }
    let pcm_like = |codec| match (rate, kbps) {
        (Some(rate), None) if PCM_RATES.contains(&rate) => {
            OutputFormat::Supported(AudioFormat { codec, rate })
        }
        _ => OutputFormat::Unknown,
    };
    match codec {
        "pcm" => pcm_like(Codec::Pcm),
        "wav" => pcm_like(Codec::Wav),
        "ulaw" | "alaw" if rate == Some(8_000) && kbps.is_none() => {
            let codec = if codec == "ulaw" {
                Codec::Mulaw
            } else {
                Codec::Alaw
            };
            OutputFormat::Supported(AudioFormat { codec, rate: 8_000 })
        }
        "mp3" => match (rate, kbps) {
            (Some(rate), Some(Some(kbps))) if MP3_FORMATS.contains(&(rate, kbps)) => {
                AudioFormat::mp3(rate, kbps).map_or(OutputFormat::Unknown, OutputFormat::Supported)
            }
            _ => OutputFormat::Unknown,
        },
        "opus" => match (rate, kbps) {
            (Some(48_000), Some(Some(kbps))) if OPUS_KBPS.contains(&kbps) => {
                OutputFormat::Unsupported
            }
            _ => OutputFormat::Unknown,
        },
        _ => OutputFormat::Unknown,
    }
}

/// `{"detail": {"status": …, "message": …}}` with `status`.
fn detail_error(status: StatusCode, detail_status: &str, message: String) -> Response {
    let body = DetailError {
        detail: Detail {
            status: detail_status,
            message,
        },
    };
    (status, Json(body)).into_response()
}

/// A 422 for one invalid field: `loc` is `["body", field]` or, for `output_format`,
/// `["query", "output_format"]`.
fn validation_error(kind: &str, field: &str, msg: String, input: Value) -> Response {
    let place = if field == "output_format" {
        "query"
    } else {
        "body"
    };
    let body = ValidationError {
        detail: [ValidationItem {
            kind,
            loc: [place, field],
            msg,
            input,
        }],
    };
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

fn invalid_api_key() -> Response {
    detail_error(
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
        "Invalid API key".to_owned(),
    )
}

/// ElevenLabs' error response for `failure`.
fn failure_response(failure: Failure, _model: &str) -> Response {
    match failure {
        Failure::Server => detail_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "An internal server error occurred (simulated).".to_owned(),
        ),
        Failure::Overloaded => detail_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "system_busy",
            "We are experiencing heavy traffic, please try again later (simulated).".to_owned(),
        ),
        Failure::RateLimited { retry_after_secs } => {
            let mut response = detail_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_concurrent_requests",
                format!(
                    "Too many concurrent requests (simulated). Please try again in {retry_after_secs}s."
                ),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Failure::Refused { status, message } => {
            let detail_status = match status {
                StatusCode::UNAUTHORIZED => "invalid_api_key",
                StatusCode::FORBIDDEN => "missing_permissions",
                StatusCode::NOT_FOUND => "voice_not_found",
                _ => "invalid_request",
            };
            detail_error(status, detail_status, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_formats() {
        let supported = |name| match parse_output_format(name) {
            OutputFormat::Supported(format) => Some(format),
            OutputFormat::Unsupported | OutputFormat::Unknown => None,
        };
        assert_eq!(
            supported("pcm_24000"),
            Some(AudioFormat {
                codec: Codec::Pcm,
                rate: 24_000
            })
        );
        assert_eq!(supported("wav_44100").map(|f| f.codec), Some(Codec::Wav));
        assert_eq!(supported("ulaw_8000").map(|f| f.codec), Some(Codec::Mulaw));
        assert_eq!(supported("alaw_8000").map(|f| f.codec), Some(Codec::Alaw));
        assert_eq!(
            supported("mp3_44100_128").map(|f| f.codec),
            Some(Codec::Mp3 { kbps: 128 })
        );
        assert_eq!(supported("mp3_22050_32").map(|f| f.rate), Some(22_050));
        assert!(matches!(
            parse_output_format("opus_48000_64"),
            OutputFormat::Unsupported
        ));
        for unknown in [
            "pcm_12345",
            "mp3_44100_100",
            "pcm",
            "flac_44100",
            "pcm_24000_1",
            "",
        ] {
            assert!(
                matches!(parse_output_format(unknown), OutputFormat::Unknown),
                "{unknown}"
            );
        }
    }

    #[test]
    fn character_limits_by_model() {
        assert_eq!(character_limit("eleven_flash_v2_5"), 40_000);
        assert_eq!(character_limit("eleven_turbo_v2"), 30_000);
        assert_eq!(character_limit("eleven_multilingual_v2"), 10_000);
    }
}
