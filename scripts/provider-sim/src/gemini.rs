//! Google Gemini wire format: `generateContent` and `streamGenerateContent` (SSE or JSON array),
//! for chat, text to speech (`speech`) and audio understanding (`transcription`); Batch Mode
//! (`batchGenerateContent` and `/v1beta/batches`) lives in `batch`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use crate::audio::{self, Clip};
use crate::content::{THINKING_PIECES, new_id, tool_arguments};
use crate::engine::{self, Failure, Turn};
use crate::json::to_json;
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;
use crate::transcript::Transcript;

mod batch;
mod image;
mod request;
mod speech;
mod transcription;
mod video;
mod wire;

pub(crate) use batch::{action as batch_action, get as get_batch, list as list_batches};
pub(crate) use video::{file as veo_file, media as veo_media, operation as veo_operation};

use wire::{
    Candidate, Content, ErrorBody, ErrorDetail, FunctionCall, GenerateContentResponse,
    ModalityTokenCount, Part, UsageMetadata,
};

/// Content type of Google's JSON responses.
const JSON: &str = "application/json; charset=UTF-8";

/// `POST /v1beta/models/{model}:{action}` — `generateContent` or `streamGenerateContent`.
pub(crate) async fn models(
    State(shared): State<Arc<Shared>>,
    Path(model_action): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let (model, action) = model_action
        .rsplit_once(':')
        .unwrap_or((model_action.as_str(), ""));
    if action == "predictLongRunning" {
        return video::predict_long_running(&shared, model, &uri, &headers, &body).await;
    }
    if action == "predict" {
        return image::predict(&shared, model, &uri, &headers, &body).await;
    }
    if action == "batchGenerateContent" {
        return batch::create(&shared, model, &uri, &headers, &body);
    }
    let framing = match action {
        "generateContent" => None,
        "streamGenerateContent" if query.get("alt").is_some_and(|alt| alt == "sse") => {
            Some(Framing::Sse)
        }
        "streamGenerateContent" => Some(Framing::JsonArray),
        _ => {
            return error_response(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!(
                    "models/{model} is not found for API version v1beta, or is not supported for {action}. Call ListModels to see the list of available models and their supported methods."
                ),
                Vec::new(),
            );
        }
    };
    let body_len = body.len();
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => return invalid_argument(format!("Invalid JSON payload received. {err}")),
    };
    let request = match request::parse(&body) {
        Ok(request) => request,
        Err(message) => return invalid_argument(message),
    };
    let config = shared.config();
    let wants_audio = match speech::requested(&body) {
        Ok(wants_audio) => wants_audio,
        Err(message) => return invalid_argument(message),
    };
    // The key goes in `x-goog-api-key`, or in the `key` query parameter.
    let authorization = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get("key").cloned());
    let timing = engine::Timing::from(config);
    if wants_audio {
        let text = speech::text_of(&body);
        let duration = audio::speech_duration(&text, config.speech_per_char, 1.0);
        let clip = Clip::new(speech::FORMAT, duration, config.audio_chunk);
        let turn = speech::SpeechTurn::new(clip, model, framing, request.prompt_tokens);
        let incoming =
            Incoming::new(WireFormat::GeminiSpeech, &uri, authorization, body).with_text(&text);
        let (behaviour, guard) = shared.begin(incoming);
        tracing::debug!(?behaviour, action, "gemini speech");
        return engine::respond(turn, &behaviour, timing, guard, shared.stop_token()).await;
    }
    // An image model answers with an image unless asked for text alone.
    match image::requested(model, &body) {
        Ok(Some(ask)) => {
            return image::generate(&shared, model, framing, ask, &uri, &headers, body).await;
        }
        Ok(None) => {}
        Err(message) => return invalid_argument(message),
    }
    // Audio in the prompt makes a transcription when the text asks for one, else a chat that
    // says what it heard; unless audio is asked for out (above).
    let audio = match transcription::audio_of(&body, body_len) {
        Ok(audio) => audio,
        Err(message) => return invalid_argument(message),
    };
    if let Some(audio) = audio
        .as_ref()
        .filter(|_| !transcription::asks_for_transcript(&body))
    {
        let reply = Reply {
            pieces: transcription::heard(audio),
            audio_tokens: audio.tokens(),
        };
        let turn = GenerateTurn::new(request, model, framing, reply);
        let incoming = Incoming::new(WireFormat::Gemini, &uri, authorization, body)
            .with_audio(audio.bytes, audio.duration);
        let (behaviour, guard) = shared.begin(incoming);
        tracing::debug!(?behaviour, action, "gemini generate content about audio");
        return engine::respond(turn, &behaviour, timing, guard, shared.stop_token()).await;
    }
    if let Some(audio) = audio {
        let transcript = Transcript::new(&config.transcript);
        let reply = Reply {
            pieces: transcription::pieces(&transcript, audio.duration),
            audio_tokens: audio.tokens(),
        };
        let turn = GenerateTurn::new(request, model, framing, reply);
        let incoming = Incoming::new(WireFormat::GeminiTranscription, &uri, authorization, body)
            .with_audio(audio.bytes, audio.duration);
        let (behaviour, guard) = shared.begin(incoming);
        tracing::debug!(?behaviour, action, "gemini transcription");
        return engine::respond(turn, &behaviour, timing, guard, shared.stop_token()).await;
    }
    let reply = Reply {
        pieces: vec![config.chunk_text.clone(); config.chunks],
        audio_tokens: 0,
    };
    let turn = GenerateTurn::new(request, model, framing, reply);
    let (behaviour, guard) =
        shared.begin(Incoming::new(WireFormat::Gemini, &uri, authorization, body));
    tracing::debug!(?behaviour, action, "gemini generate content");
    engine::respond(turn, &behaviour, timing, guard, shared.stop_token()).await
}

/// A Google-style error: `{"error":{"code":…,"message":…,"status":…}}`.
fn error_response(
    status: StatusCode,
    google_status: &'static str,
    message: String,
    details: Vec<Value>,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: status.as_u16(),
            message,
            status: google_status,
            details,
        },
    };
    json_response(status, &body)
}

fn invalid_argument(message: String) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        message,
        Vec::new(),
    )
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let json = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = (status, json).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

/// Places chunks in the framing of their stream: bare JSON, SSE events or JSON array elements.
struct Framer {
    /// `None` for the non-streamed `generateContent`.
    framing: Option<Framing>,
    /// Chunks written so far, to place the JSON array's separators.
    written: usize,
}

impl Framer {
    fn new(framing: Option<Framing>) -> Self {
        Self {
            framing,
            written: 0,
        }
    }

    fn streaming(&self) -> bool {
        self.framing.is_some()
    }

    /// Frames one chunk (or any JSON text) as the next element of the stream.
    fn element(&mut self, json: &str) -> Bytes {
        let first = self.written == 0;
        self.written += 1;
        match self.framing {
            Some(Framing::JsonArray) if !first => Bytes::from(format!(",\r\n{json}")),
            Some(Framing::JsonArray) | None => Bytes::from(json.to_owned()),
            Some(Framing::Sse) => Bytes::from(format!("data: {json}\r\n\r\n")),
        }
    }

    /// Gemini sends nothing before its first chunk; the array's bracket is the exception.
    fn opening(&self) -> Vec<Bytes> {
        match self.framing {
            Some(Framing::JsonArray) => vec![Bytes::from_static(b"[")],
            Some(Framing::Sse) | None => Vec::new(),
        }
    }

    fn end_of_array(&self) -> Option<Bytes> {
        (self.framing == Some(Framing::JsonArray)).then(|| Bytes::from_static(b"]"))
    }

    fn content_type(&self) -> &'static str {
        match self.framing {
            Some(Framing::JsonArray) => JSON,
            Some(Framing::Sse) | None => "text/event-stream",
        }
    }
}

/// How `streamGenerateContent` frames its chunks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `alt=sse`: one `data: <json>` event per chunk, CRLF line endings, no end marker.
    Sse,
    /// No `alt=sse`: one JSON array whose elements arrive as the model produces them.
    JsonArray,
}

/// One paced chunk of the reply.
enum Unit {
    Thought(usize),
    /// The text piece of this index.
    Text(usize),
    Call,
}

/// What a text reply says: its pieces, one per streamed chunk, and the audio the prompt held.
struct Reply {
    /// `chunks` × `chunk_text` for chat, the transcript's words for a transcription.
    pieces: Vec<String>,
    /// Prompt tokens of audio, reported apart from the text's.
    audio_tokens: u64,
}

/// One `generateContent` request and the reply the simulator will give to it.
struct GenerateTurn {
    model: String,
    response_id: String,
    framer: Framer,
    prompt_tokens: u64,
    audio_tokens: u64,
    pieces: Vec<String>,
    function: Option<String>,
    units: Vec<Unit>,
    sent_units: usize,
}

impl GenerateTurn {
    fn new(request: request::Request, model: &str, framing: Option<Framing>, reply: Reply) -> Self {
        let mut units = Vec::new();
        if request.thoughts {
            units.extend((0..THINKING_PIECES.len()).map(Unit::Thought));
        }
        match request.function {
            // Gemini sends a function call whole, in one chunk.
            Some(_) => units.push(Unit::Call),
            None => units.extend((0..reply.pieces.len()).map(Unit::Text)),
        }
        Self {
            model: model.to_owned(),
            response_id: response_id(),
            framer: Framer::new(framing),
            prompt_tokens: request.prompt_tokens,
            audio_tokens: reply.audio_tokens,
            pieces: reply.pieces,
            function: request.function,
            units,
            sent_units: 0,
        }
    }

    /// Token counts once the first `sent` units are out; each unit counts as one token.
    fn usage(&self, sent: usize) -> UsageMetadata {
        let units = self.units.get(..sent).unwrap_or(&self.units);
        let thoughts = units
            .iter()
            .filter(|u| matches!(u, Unit::Thought(_)))
            .count() as u64;
        let candidates = units.len() as u64 - thoughts;
        let prompt = self.prompt_tokens + self.audio_tokens;
        let prompt_tokens_details = if self.audio_tokens == 0 {
            Vec::new()
        } else {
            vec![
                ModalityTokenCount {
                    modality: "TEXT",
                    token_count: self.prompt_tokens,
                },
                ModalityTokenCount {
                    modality: "AUDIO",
                    token_count: self.audio_tokens,
                },
            ]
        };
        UsageMetadata {
            prompt_token_count: prompt,
            candidates_token_count: candidates,
            total_token_count: prompt + candidates + thoughts,
            prompt_tokens_details,
            thoughts_token_count: thoughts,
        }
    }

    fn response(
        &self,
        parts: Vec<Part<'_>>,
        finish_reason: Option<&'static str>,
        sent: usize,
    ) -> String {
        let response = GenerateContentResponse {
            candidates: vec![Candidate {
                content: Content {
                    parts,
                    role: "model",
                },
                finish_reason,
                index: 0,
            }],
            usage_metadata: self.usage(sent),
            model_version: &self.model,
            response_id: &self.response_id,
        };
        to_json(&response)
    }

    fn parts(&self, index: usize) -> Vec<Part<'_>> {
        match self.units.get(index) {
            Some(Unit::Thought(k)) => vec![Part::Text {
                text: THINKING_PIECES
                    .get(*k)
                    .copied()
                    .unwrap_or_default()
                    .to_owned(),
                thought: Some(true),
            }],
            Some(Unit::Text(i)) => vec![Part::Text {
                text: self.pieces.get(*i).cloned().unwrap_or_default(),
                thought: None,
            }],
            Some(Unit::Call) => vec![Part::FunctionCall {
                function_call: FunctionCall {
                    name: self.function.as_deref().unwrap_or_default(),
                    args: tool_arguments(),
                },
            }],
            None => Vec::new(),
        }
    }

    fn unit_chunk(&mut self, index: usize, finish_reason: Option<&'static str>) -> Bytes {
        self.sent_units = self.sent_units.max(index + 1);
        let json = self.response(self.parts(index), finish_reason, self.sent_units);
        self.framer.element(&json)
    }

    /// A chunk with empty text that only finishes the reply, for when no unit can carry the end.
    fn finish_chunk(&mut self) -> Bytes {
        let parts = vec![Part::Text {
            text: String::new(),
            thought: None,
        }];
        let json = self.response(parts, Some("STOP"), self.sent_units);
        self.framer.element(&json)
    }
}

impl Turn for GenerateTurn {
    fn streaming(&self) -> bool {
        self.framer.streaming()
    }

    fn units(&self) -> usize {
        self.units.len()
    }

    fn opening(&mut self) -> Vec<Bytes> {
        self.framer.opening()
    }

    fn unit(&mut self, index: usize) -> Bytes {
        self.unit_chunk(index, None)
    }

    /// The last chunk carries `finishReason` and the final usage, as the real API's does.
    fn final_unit(&mut self, index: usize) -> Bytes {
        self.unit_chunk(index, Some("STOP"))
    }

    fn closing(&mut self) -> Vec<Bytes> {
        let mut events = Vec::new();
        if self.units.is_empty() {
            events.push(self.finish_chunk());
        }
        events.extend(self.framer.end_of_array());
        events
    }

    /// Gemini has no end marker, so the malformed chunk is followed by a finishing chunk.
    fn malformed(&mut self) -> Vec<Bytes> {
        let mut events = vec![self.framer.element("{not json"), self.finish_chunk()];
        events.extend(self.framer.end_of_array());
        events
    }

    fn error_event(&mut self) -> Vec<Bytes> {
        error_event(&mut self.framer)
    }

    fn stream_content_type(&self) -> &'static str {
        self.framer.content_type()
    }

    fn complete(&self) -> Response {
        let mut response = self.complete_json().into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
        response
    }

    fn malformed_complete(&self) -> Response {
        malformed_complete()
    }

    fn failure(&self, failure: Failure) -> Response {
        failure_response(failure, &self.model)
    }
}

impl GenerateTurn {
    /// The whole reply as one `GenerateContentResponse` (a non-streamed reply, a batch's answer).
    fn complete_json(&self) -> String {
        let mut parts = Vec::new();
        let thoughts: String = self
            .units
            .iter()
            .filter_map(|u| match u {
                Unit::Thought(k) => THINKING_PIECES.get(*k).copied(),
                Unit::Text(_) | Unit::Call => None,
            })
            .collect();
        if !thoughts.is_empty() {
            parts.push(Part::Text {
                text: thoughts,
                thought: Some(true),
            });
        }
        if let Some(name) = &self.function {
            parts.push(Part::FunctionCall {
                function_call: FunctionCall {
                    name,
                    args: tool_arguments(),
                },
            });
        } else {
            parts.push(Part::Text {
                text: self.pieces.concat(),
                thought: None,
            });
        }
        self.response(parts, Some("STOP"), self.units.len())
    }
}

/// A random response id, 22 characters like the real API's.
fn response_id() -> String {
    let id = new_id("");
    id.get(..22).unwrap_or(&id).to_owned()
}

/// The real API reports a failure after the headers as a chunk holding a Google error.
fn error_event(framer: &mut Framer) -> Vec<Bytes> {
    let error = ErrorBody {
        error: ErrorDetail {
            code: 503,
            message: OVERLOADED_MESSAGE.to_owned(),
            status: "UNAVAILABLE",
            details: Vec::new(),
        },
    };
    let json = to_json(&error);
    let mut events = vec![framer.element(&json)];
    events.extend(framer.end_of_array());
    events
}

/// A non-streamed response whose body is not JSON.
fn malformed_complete() -> Response {
    let mut response = "{not json".into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

/// Google's error response for `failure` on a request for `model`.
fn failure_response(failure: Failure, model: &str) -> Response {
    match failure {
            Failure::Server => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting".to_owned(),
                Vec::new(),
            ),
            Failure::RateLimited { retry_after_secs } => {
                // Google states the delay in a RetryInfo detail; the Retry-After header is the
                // simulator's addition, so clients that honour either one are tested.
                let mut response = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "RESOURCE_EXHAUSTED",
                    format!(
                        "You exceeded your current quota for {model} (simulated). Please retry in {retry_after_secs}s."
                    ),
                    vec![json!({
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": format!("{retry_after_secs}s"),
                    })],
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
                response
            }
            Failure::Overloaded => error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                OVERLOADED_MESSAGE.to_owned(),
                Vec::new(),
            ),
            Failure::Refused { status, message } => {
                let google_status = match status {
                    StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
                    StatusCode::FORBIDDEN => "PERMISSION_DENIED",
                    StatusCode::NOT_FOUND => "NOT_FOUND",
                    _ => "INVALID_ARGUMENT",
                };
                error_response(status, google_status, message, Vec::new())
            }
        }
}

/// Message of Gemini's 503 `UNAVAILABLE`, over HTTP or mid-stream.
const OVERLOADED_MESSAGE: &str = "The model is overloaded. Please try again later.";
