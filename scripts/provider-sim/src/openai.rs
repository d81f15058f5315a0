//! OpenAI Chat Completions wire format: request parsing, stream chunks, completions and errors;
//! the audio endpoints live in `speech` and `transcription`, embeddings in `embeddings`, the
//! Files and Batches APIs in `files` and `batches`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use crate::content::{TOOL_ARGUMENT_PIECES, new_id, word_count};
use crate::engine::{self, Failure, Turn};
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;

mod batches;
mod embeddings;
mod files;
mod images;
mod request;
mod speech;
mod transcription;
mod videos;
mod wire;

pub(crate) use batches::{cancel_batch, create_batch, list_batches, retrieve_batch};
pub(crate) use embeddings::embeddings;
pub(crate) use files::{Files, delete_file, file_content, retrieve_file, upload_file};
pub(crate) use images::images_generations;
pub(crate) use speech::audio_speech;
pub(crate) use transcription::{transcriptions, translations};
pub(crate) use videos::{create_video, delete_video, retrieve_video, video_content};

use request::{requested_tool, text_of};
use wire::{
    Chunk, ChunkChoice, Completion, CompletionChoice, Delta, ErrorBody, ErrorDetail, Function,
    FunctionDelta, Message, ToolCall, ToolCallDelta, Usage, UsageChunk, sse,
};

/// Message of OpenAI's 500 and mid-stream errors.
const SERVER_ERROR_MESSAGE: &str =
    "The server had an error while processing your request. Sorry about that!";

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return invalid_request(
                format!("We could not parse the JSON body of your request: {err}"),
                None,
            );
        }
    };
    let config = shared.config();
    let turn = match ChatTurn::parse(&body, &config.chunk_text, config.chunks) {
        Ok(turn) => turn,
        Err(invalid) => return invalid.into_response(),
    };
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (behaviour, guard) =
        shared.begin(Incoming::new(WireFormat::OpenAi, &uri, authorization, body));
    tracing::debug!(?behaviour, stream = turn.stream, "chat completion");
    engine::respond(
        turn,
        &behaviour,
        engine::Timing::from(config),
        guard,
        shared.stop_token(),
    )
    .await
}

/// The `Authorization: Bearer …` header as received.
fn bearer_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("Bearer ") && v.len() > "Bearer ".len())
        .map(str::to_owned)
}

/// The API's 401 for a request without a Bearer key.
fn no_api_key() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".to_owned(),
        "invalid_request_error",
    )
}

/// An OpenAI-style error response.
pub(crate) fn error_response(status: StatusCode, message: String, kind: &str) -> Response {
    error_with_param(status, message, kind, None, None)
}

fn invalid_request(message: String, param: Option<&str>) -> Response {
    error_with_param(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        param,
        None,
    )
}

fn error_with_param(
    status: StatusCode,
    message: String,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            message,
            kind,
            param,
            code,
        },
    };
    (status, Json(body)).into_response()
}

/// A required parameter is absent.
fn missing(param: &'static str) -> Invalid {
    Invalid::new(
        format!("Missing required parameter: '{param}'."),
        Some(param),
    )
    .with_code("missing_required_parameter")
}

/// `value` is not one of the `supported` values of `param`.
fn invalid_value(param: &'static str, value: &str, supported: &[&str]) -> Invalid {
    let supported = supported
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Invalid::new(
        format!("Invalid value: '{value}'. Supported values are: {supported}."),
        Some(param),
    )
    .with_code("invalid_value")
}

/// Why a request body was rejected, which parameter was at fault and OpenAI's code for it.
struct Invalid {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

impl Invalid {
    fn new(message: String, param: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
            param,
            code: None,
        }
    }

    fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// A refusal with another status than 400.
    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn into_response(self) -> Response {
        error_with_param(
            self.status,
            self.message,
            "invalid_request_error",
            self.param,
            self.code,
        )
    }
}

enum Reply {
    Text { text: String, chunks: usize },
    ToolCall { call_id: String, name: String },
}

/// One chat completion request and the reply the simulator will give to it.
struct ChatTurn {
    id: String,
    created: u64,
    model: String,
    stream: bool,
    include_usage: bool,
    prompt_tokens: u64,
    reply: Reply,
}

impl ChatTurn {
    fn parse(body: &Value, chunk_text: &str, chunks: usize) -> Result<Self, Invalid> {
        let Some(object) = body.as_object() else {
            return Err(Invalid::new(
                "The request body must be a JSON object.".to_owned(),
                None,
            ));
        };
        let Some(model) = object.get("model").and_then(Value::as_str) else {
            return Err(Invalid::new(
                "you must provide a model parameter".to_owned(),
                Some("model"),
            ));
        };
        let Some(messages) = object.get("messages").and_then(Value::as_array) else {
            return Err(Invalid::new(
                "Missing required parameter: 'messages'.".to_owned(),
                Some("messages"),
            ));
        };
        let stream = match object.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(stream)) => *stream,
            Some(_) => {
                return Err(Invalid::new(
                    "'stream' must be a boolean.".to_owned(),
                    Some("stream"),
                ));
            }
        };
        let include_usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let prompt_tokens = messages.iter().map(|m| word_count(&text_of(m))).sum();
        let reply = match requested_tool(object.get("tools"), messages) {
            Some(name) => Reply::ToolCall {
                call_id: new_id("call_"),
                name,
            },
            None => Reply::Text {
                text: chunk_text.to_owned(),
                chunks,
            },
        };
        Ok(Self {
            id: new_id("chatcmpl-"),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            model: model.to_owned(),
            stream,
            include_usage,
            prompt_tokens,
            reply,
        })
    }

    fn completion_tokens(&self) -> u64 {
        self.units() as u64
    }

    fn usage(&self) -> Usage {
        let completion_tokens = self.completion_tokens();
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens,
            total_tokens: self.prompt_tokens + completion_tokens,
        }
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<&'static str>) -> Bytes {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            system_fingerprint: None,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: self.include_usage.then_some(None),
        };
        sse(&chunk)
    }

    fn finish_reason(&self) -> &'static str {
        match self.reply {
            Reply::Text { .. } => "stop",
            Reply::ToolCall { .. } => "tool_calls",
        }
    }
}

impl Turn for ChatTurn {
    fn streaming(&self) -> bool {
        self.stream
    }

    fn units(&self) -> usize {
        match &self.reply {
            Reply::Text { chunks, .. } => *chunks,
            Reply::ToolCall { .. } => TOOL_ARGUMENT_PIECES.len(),
        }
    }

    fn opening(&mut self) -> Vec<Bytes> {
        let delta = match &self.reply {
            Reply::Text { .. } => Delta {
                role: Some("assistant"),
                content: Some(Some(String::new())),
                tool_calls: None,
            },
            Reply::ToolCall { call_id, name } => Delta {
                role: Some("assistant"),
                content: Some(None),
                tool_calls: Some(vec![ToolCallDelta {
                    index: 0,
                    id: Some(call_id.clone()),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(name.clone()),
                        arguments: String::new(),
                    },
                }]),
            },
        };
        vec![self.chunk(delta, None)]
    }

    fn unit(&mut self, index: usize) -> Bytes {
        let delta = match &self.reply {
            Reply::Text { text, .. } => Delta {
                content: Some(Some(text.clone())),
                ..Delta::default()
            },
            Reply::ToolCall { .. } => Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index: 0,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments: TOOL_ARGUMENT_PIECES
                            .get(index)
                            .copied()
                            .unwrap_or_default()
                            .to_owned(),
                    },
                }]),
                ..Delta::default()
            },
        };
        self.chunk(delta, None)
    }

    fn closing(&mut self) -> Vec<Bytes> {
        let mut events = vec![self.chunk(Delta::default(), Some(self.finish_reason()))];
        if self.include_usage {
            events.push(sse(&UsageChunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                system_fingerprint: None,
                choices: Vec::new(),
                usage: self.usage(),
            }));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }

    fn malformed(&mut self) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"data: {not json\n\n"),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ]
    }

    /// The real API reports a failure after the headers as a `data:` line holding an error
    /// object (the official SDKs raise it as an API error) and ends the body without `[DONE]`.
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

    fn complete(&self) -> Response {
        Json(self.completion()).into_response()
    }

    fn malformed_complete(&self) -> Response {
        let mut response = "{not json".into_response();
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    fn failure(&self, failure: Failure) -> Response {
        failure_response(failure, &self.model)
    }
}

impl ChatTurn {
    /// The whole reply as a `chat.completion` object (a non-streamed reply, a batch's answer).
    fn completion(&self) -> Completion<'_> {
        let message = match &self.reply {
            Reply::Text { text, chunks } => Message {
                role: "assistant",
                content: Some(text.repeat(*chunks)),
                refusal: None,
                tool_calls: None,
            },
            Reply::ToolCall { call_id, name } => Message {
                role: "assistant",
                content: None,
                refusal: None,
                tool_calls: Some(vec![ToolCall {
                    id: call_id.clone(),
                    kind: "function",
                    function: Function {
                        name: name.clone(),
                        arguments: TOOL_ARGUMENT_PIECES.concat(),
                    },
                }]),
            },
        };
        Completion {
            id: &self.id,
            object: "chat.completion",
            created: self.created,
            model: &self.model,
            choices: vec![CompletionChoice {
                index: 0,
                message,
                logprobs: None,
                finish_reason: self.finish_reason(),
            }],
            usage: self.usage(),
            system_fingerprint: None,
        }
    }
}

/// OpenAI's error response for `failure` on a request for `model`.
fn failure_response(failure: Failure, model: &str) -> Response {
    match failure {
        Failure::Server => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            SERVER_ERROR_MESSAGE.to_owned(),
            "server_error",
        ),
        Failure::Overloaded => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "The engine is currently overloaded, please try again later.".to_owned(),
            "server_error",
        ),
        // OpenAI answers a wrong key, a missing permission and an unknown model alike.
        Failure::Refused { status, message } => {
            error_response(status, message, "invalid_request_error")
        }
        Failure::RateLimited { retry_after_secs } => {
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Rate limit reached for {model} (simulated). Please try again in {retry_after_secs}s."
                ),
                "rate_limit_exceeded",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
    }
}
