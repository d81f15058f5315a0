//! Deepgram speech to text: `POST /v1/listen` transcribes a recording sent as the body, the
//! WebSocket `GET /v1/listen` (in `live`) transcribes audio as it streams in.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::audio::probe::{Container, RawLayout};
use crate::engine::{self, Failure, Turn};
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;
use crate::transcript::{CONFIDENCE, Transcript, Word as TranscriptWord, seconds};

mod live;
mod wire;

pub(crate) use live::live;
use wire::{Alternative, Channel, ErrorBody, ListenResponse, Metadata, ModelInfo, Results, Word};

/// `model` when the query names none.
const DEFAULT_MODEL: &str = "base";
/// `version` of every model the simulator answers as.
const MODEL_VERSION: &str = "provider-sim";
/// Compressed `encoding`s: their length is read at the nominal bitrate.
const COMPRESSED_ENCODINGS: [&str; 7] = [
    "flac", "opus", "ogg-opus", "speex", "amr-nb", "amr-wb", "g729",
];
/// Message of the 400 for audio the API cannot read.
const CORRUPT: &str = "Bad Request: failed to process audio: corrupt or unsupported data";

/// `POST /v1/listen`: the body is the audio, or `{"url": …}` (which an offline simulator
/// refuses).
pub(crate) async fn listen(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(key) = token(&headers, false) else {
        return invalid_auth();
    };
    let options = match Options::parse(&uri) {
        Ok(options) => options,
        Err(message) => return bad_request(message),
    };
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let duration = match recording_duration(content_type.as_deref(), &body, &options) {
        Ok(duration) => duration,
        Err(message) => return bad_request(message),
    };
    let incoming = Incoming::new(
        WireFormat::Deepgram,
        &uri,
        Some(key),
        serde_json::json!({ "content_type": content_type }),
    )
    .with_audio(body.len(), duration);
    let (behaviour, guard) = shared.begin(incoming);
    tracing::debug!(?behaviour, "deepgram listen");
    let turn = ListenTurn {
        model: Model::new(&options.model),
        request_id: uuid::Uuid::new_v4().to_string(),
        sha256: sha256_hex(&body),
        duration,
        options,
        transcript: Transcript::new(&shared.config().transcript),
    };
    engine::respond(
        turn,
        &behaviour,
        engine::Timing::from(shared.config()),
        guard,
        shared.stop_token(),
    )
    .await
}

/// How long a recording lasts, after the checks the API makes of it; `Err` holds the 400's
/// message.
fn recording_duration(
    content_type: Option<&str>,
    body: &[u8],
    options: &Options,
) -> Result<Duration, String> {
    let media_type = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some("application/json") => {
            return Err(match serde_json::from_slice::<Value>(body) {
                Ok(json) => match json.get("url").and_then(Value::as_str) {
                    Some(url) => format!(
                        "Bad Request: provider-sim is offline and cannot fetch {url}; send the audio itself as the body."
                    ),
                    None => "Bad Request: the JSON body needs a 'url'.".to_owned(),
                },
                Err(_) => {
                    "Content-type was application/json, but we could not process the JSON payload."
                        .to_owned()
                }
            });
        }
        None | Some("application/octet-stream") => {}
        Some(media) if media.starts_with("audio/") || media.starts_with("video/") => {}
        Some(_) => return Err(CORRUPT.to_owned()),
    }
    if body.is_empty() {
        return Err(CORRUPT.to_owned());
    }
    let container = Container::sniff(body, options.raw).map_err(|_| CORRUPT.to_owned())?;
    Ok(container.duration(body.len()))
}

/// The key from `Authorization: Token …` (or a temporary `Bearer` token); on a WebSocket also
/// from the `Sec-WebSocket-Protocol: token, …` header browsers use. Returned as received.
fn token(headers: &HeaderMap, websocket: bool) -> Option<String> {
    let header = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            ["Token ", "token ", "Bearer "]
                .iter()
                .any(|scheme| v.len() > scheme.len() && v.starts_with(scheme))
        })
        .map(str::to_owned);
    if header.is_some() || !websocket {
        return header;
    }
    let protocols = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())?;
    let mut parts = protocols.split(',').map(str::trim);
    (parts.next() == Some("token") && parts.next().is_some_and(|key| !key.is_empty()))
        .then(|| protocols.to_owned())
}

/// The query parameters the simulator acts on.
#[derive(Clone, Debug)]
struct Options {
    model: String,
    /// `punctuate=true` or `smart_format=true`: punctuated words and transcripts.
    punctuate: bool,
    diarize: bool,
    /// Stated by `encoding` (and `sample_rate`, `channels`) for raw audio.
    raw: Option<RawLayout>,
    channels: u16,
    interim_results: bool,
    /// `endpointing` is on unless `endpointing=false`: finals at the end of speech are
    /// `speech_final`.
    endpointing: bool,
    utterance_end: bool,
    vad_events: bool,
}

impl Options {
    fn parse(uri: &Uri) -> Result<Self, String> {
        let query = Query::<HashMap<String, String>>::try_from_uri(uri)
            .map(|Query(q)| q)
            .unwrap_or_default();
        let flag = |name: &str| query.get(name).is_some_and(|v| v == "true");
        let number = |name: &str| -> Result<Option<u32>, String> {
            query
                .get(name)
                .map(|v| {
                    v.parse::<u32>()
                        .map_err(|_| format!("Bad Request: invalid value for '{name}': '{v}'."))
                })
                .transpose()
        };
        let channels = number("channels")?.unwrap_or(1);
        let channels = u16::try_from(channels)
            .ok()
            .filter(|c| *c >= 1)
            .ok_or_else(|| format!("Bad Request: invalid value for 'channels': '{channels}'."))?;
        let sample_rate = number("sample_rate")?;
        let raw = match query.get("encoding").map(String::as_str) {
            None => None,
            Some(encoding) => {
                let sample_bytes = match encoding {
                    "linear16" => Some(2),
                    "linear32" => Some(4),
                    "mulaw" | "alaw" => Some(1),
                    compressed if COMPRESSED_ENCODINGS.contains(&compressed) => None,
                    unknown => {
                        return Err(format!("Bad Request: unsupported encoding '{unknown}'."));
                    }
                };
                match (sample_bytes, sample_rate) {
                    (Some(sample_bytes), Some(rate)) if rate > 0 => Some(RawLayout {
                        rate,
                        channels,
                        sample_bytes,
                    }),
                    (Some(_), _) => {
                        return Err(format!(
                            "Bad Request: sample_rate is required for encoding '{encoding}'."
                        ));
                    }
                    (None, _) => None,
                }
            }
        };
        Ok(Self {
            model: query
                .get("model")
                .filter(|m| !m.is_empty())
                .map_or(DEFAULT_MODEL, String::as_str)
                .to_owned(),
            punctuate: flag("punctuate") || flag("smart_format"),
            diarize: flag("diarize"),
            raw,
            channels,
            interim_results: flag("interim_results"),
            endpointing: query.get("endpointing").is_none_or(|v| v != "false"),
            utterance_end: query.contains_key("utterance_end_ms"),
            vad_events: flag("vad_events"),
        })
    }

    /// A word as the options write it, heard from `start` to `end`.
    fn word<'a>(&self, word: &'a TranscriptWord, start: f64, end: f64) -> Word<'a> {
        Word {
            word: word.bare(),
            start: seconds(start),
            end: seconds(end),
            confidence: CONFIDENCE,
            punctuated_word: self.punctuate.then(|| word.text()),
            speaker: self.diarize.then_some(0),
        }
    }
}

/// The model that answers, under a fresh id, as `metadata` names it.
#[derive(Clone, Debug)]
struct Model {
    uuid: String,
    name: String,
    arch: String,
}

impl Model {
    fn new(model: &str) -> Self {
        Self {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: format!("general-{model}"),
            arch: model.to_owned(),
        }
    }

    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            version: MODEL_VERSION,
            arch: self.arch.clone(),
        }
    }

    /// `metadata` of a recording, or the last message of a live stream.
    fn metadata<'a>(
        &'a self,
        request_id: &'a str,
        sha256: String,
        duration: f64,
        channels: u16,
    ) -> Metadata<'a> {
        Metadata {
            transaction_key: "deprecated",
            request_id,
            sha256,
            created: chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
            duration: seconds(duration),
            channels,
            models: vec![&self.uuid],
            model_info: BTreeMap::from([(self.uuid.as_str(), self.info())]),
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A recording's reply: one JSON body with every word (each word counts as a unit).
struct ListenTurn {
    model: Model,
    request_id: String,
    sha256: String,
    duration: Duration,
    options: Options,
    transcript: Transcript,
}

impl Turn for ListenTurn {
    fn streaming(&self) -> bool {
        false
    }

    fn units(&self) -> usize {
        self.transcript.len()
    }

    fn opening(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn unit(&mut self, _index: usize) -> Bytes {
        Bytes::new()
    }

    fn closing(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn malformed(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn error_event(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn complete(&self) -> Response {
        // Audio without any sound holds no words.
        let timed = if self.duration.is_zero() {
            Vec::new()
        } else {
            self.transcript.spread(self.duration)
        };
        let words = timed
            .iter()
            .map(|t| self.options.word(t.word, t.start, t.end))
            .collect();
        let transcript = if timed.is_empty() {
            String::new()
        } else {
            self.transcript
                .join(0..self.transcript.len(), self.options.punctuate)
        };
        let response = ListenResponse {
            metadata: self.model.metadata(
                &self.request_id,
                self.sha256.clone(),
                self.duration.as_secs_f64(),
                self.options.channels,
            ),
            results: Results {
                channels: vec![Channel {
                    alternatives: vec![Alternative {
                        transcript,
                        confidence: if timed.is_empty() { 0.0 } else { CONFIDENCE },
                        words,
                    }],
                }],
            },
        };
        let mut response = Json(response).into_response();
        insert_request_id(&mut response, &self.request_id);
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
        failure_response(failure, &self.request_id)
    }
}

/// Deepgram names every request in a `dg-request-id` header.
fn insert_request_id(response: &mut Response, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("dg-request-id", value);
    }
}

/// An error in Deepgram's shape, with its request id in the body and the header.
fn error_response(
    status: StatusCode,
    err_code: &str,
    err_msg: String,
    request_id: &str,
) -> Response {
    let body = ErrorBody {
        err_code,
        err_msg,
        request_id,
    };
    let mut response = (status, Json(body)).into_response();
    insert_request_id(&mut response, request_id);
    response
}

fn bad_request(message: String) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "Bad Request",
        message,
        &uuid::Uuid::new_v4().to_string(),
    )
}

fn invalid_auth() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        "INVALID_AUTH",
        "Invalid credentials.".to_owned(),
        &uuid::Uuid::new_v4().to_string(),
    )
}

/// Deepgram's error response for `failure`.
fn failure_response(failure: Failure, request_id: &str) -> Response {
    match failure {
        Failure::Server => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "An internal server error occurred (simulated).".to_owned(),
            request_id,
        ),
        Failure::Overloaded => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "The service is overloaded, please try again later (simulated).".to_owned(),
            request_id,
        ),
        Failure::RateLimited { retry_after_secs } => {
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                format!("Too many requests (simulated). Please try again in {retry_after_secs}s."),
                request_id,
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Failure::Refused { status, message } => {
            let err_code = match status {
                StatusCode::UNAUTHORIZED => "INVALID_AUTH",
                StatusCode::PAYMENT_REQUIRED => "ASR_PAYMENT_REQUIRED",
                StatusCode::FORBIDDEN => "INSUFFICIENT_PERMISSIONS",
                StatusCode::NOT_FOUND => "NOT_FOUND",
                _ => "Bad Request",
            };
            error_response(status, err_code, message, request_id)
        }
    }
}
