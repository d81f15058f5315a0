//! Anthropic Messages wire format: request checks, stream events, messages and errors; the
//! Message Batches API lives in `batches`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use crate::content::{
    THINKING_PIECES, TOOL_ARGUMENT_PIECES, TOOL_PREAMBLE, new_id, tool_arguments,
};
use crate::engine::{self, Failure, Turn};
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;

mod batches;
mod request;
mod wire;

pub(crate) use batches::{batch_results, cancel_batch, create_batch, list_batches, retrieve_batch};

use wire::{
    BlockDelta, ContentBlock, ErrorBody, ErrorDetail, Message, MessageDelta, OutputUsage,
    StreamEvent, Usage, sse,
};

/// HTTP status Anthropic uses for `overloaded_error`.
const OVERLOADED: u16 = 529;

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("There was an error parsing the body of your request as JSON: {err}"),
            );
        }
    };
    let config = shared.config();
    let request = match request::parse(&body) {
        Ok(request) => request,
        Err(message) => {
            return error_response(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        }
    };
    let turn = MessageTurn::new(request, &config.chunk_text, config.chunks);
    // The API key goes in `x-api-key`; OAuth-style clients send `Authorization: Bearer` instead.
    let authorization = headers
        .get("x-api-key")
        .or_else(|| headers.get(AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (behaviour, guard) = shared.begin(Incoming::new(
        WireFormat::Anthropic,
        &uri,
        authorization,
        body,
    ));
    tracing::debug!(?behaviour, stream = turn.stream, "anthropic message");
    engine::respond(
        turn,
        &behaviour,
        engine::Timing::from(config),
        guard,
        shared.stop_token(),
    )
    .await
}

/// An Anthropic-style error: `{"type":"error","error":{"type":kind,"message":…},"request_id":…}`.
fn error_response(status: StatusCode, kind: &str, message: String) -> Response {
    let body = ErrorBody {
        kind: "error",
        error: ErrorDetail { kind, message },
        request_id: new_id("req_"),
    };
    (status, Json(body)).into_response()
}

/// One content block of the reply.
enum Block {
    Thinking { signature: String },
    Text { text: String, chunks: usize },
    ToolUse { id: String, name: String },
}

impl Block {
    /// Deltas (paced units) the block streams.
    fn units(&self) -> usize {
        match self {
            Block::Thinking { .. } => THINKING_PIECES.len(),
            Block::Text { chunks, .. } => *chunks,
            Block::ToolUse { .. } => TOOL_ARGUMENT_PIECES.len(),
        }
    }

    /// The block as `content_block_start` announces it, still empty.
    fn start(&self) -> ContentBlock<'_> {
        match self {
            Block::Thinking { .. } => ContentBlock::Thinking {
                thinking: String::new(),
                signature: None,
            },
            Block::Text { .. } => ContentBlock::Text {
                text: String::new(),
            },
            Block::ToolUse { id, name } => ContentBlock::ToolUse {
                id,
                name,
                input: Value::Object(serde_json::Map::new()),
            },
        }
    }

    fn delta(&self, index: usize) -> BlockDelta<'_> {
        let piece = |pieces: &[&'static str]| pieces.get(index).copied().unwrap_or_default();
        match self {
            Block::Thinking { .. } => BlockDelta::Thinking {
                thinking: piece(&THINKING_PIECES),
            },
            Block::Text { text, .. } => BlockDelta::Text { text },
            Block::ToolUse { .. } => BlockDelta::InputJson {
                partial_json: piece(&TOOL_ARGUMENT_PIECES),
            },
        }
    }

    /// The whole block, as a non-streamed message holds it.
    fn complete(&self) -> ContentBlock<'_> {
        match self {
            Block::Thinking { signature } => ContentBlock::Thinking {
                thinking: THINKING_PIECES.concat(),
                signature: Some(signature),
            },
            Block::Text { text, chunks } => ContentBlock::Text {
                text: text.repeat(*chunks),
            },
            Block::ToolUse { id, name } => ContentBlock::ToolUse {
                id,
                name,
                input: tool_arguments(),
            },
        }
    }
}

/// One Messages request and the reply the simulator will give to it.
struct MessageTurn {
    id: String,
    model: String,
    stream: bool,
    input_tokens: u64,
    blocks: Vec<Block>,
    /// `(block, delta)` of every paced unit, in stream order.
    units: Vec<(usize, usize)>,
}

impl MessageTurn {
    fn new(request: request::Request, chunk_text: &str, chunks: usize) -> Self {
        let mut blocks = Vec::new();
        if request.thinking {
            blocks.push(Block::Thinking {
                signature: new_id("EqMBCkYIBxgCKkA"),
            });
        }
        match request.tool {
            Some(name) => {
                blocks.push(Block::Text {
                    text: TOOL_PREAMBLE.to_owned(),
                    chunks: 1,
                });
                blocks.push(Block::ToolUse {
                    id: new_id("toolu_"),
                    name,
                });
            }
            None => blocks.push(Block::Text {
                text: chunk_text.to_owned(),
                chunks,
            }),
        }
        let units = blocks
            .iter()
            .enumerate()
            .flat_map(|(b, block)| (0..block.units()).map(move |d| (b, d)))
            .collect();
        Self {
            id: new_id("msg_"),
            model: request.model,
            stream: request.stream,
            input_tokens: request.input_tokens,
            blocks,
            units,
        }
    }

    fn stop_reason(&self) -> &'static str {
        if self
            .blocks
            .iter()
            .any(|b| matches!(b, Block::ToolUse { .. }))
        {
            "tool_use"
        } else {
            "end_turn"
        }
    }

    fn output_tokens(&self) -> u64 {
        self.units.len() as u64
    }

    fn start_block(&self, index: usize) -> Option<Bytes> {
        let block = self.blocks.get(index)?;
        Some(sse(&StreamEvent::ContentBlockStart {
            index,
            content_block: block.start(),
        }))
    }

    /// Events that close block `index`: the thinking signature, then `content_block_stop`.
    fn end_block(&self, index: usize) -> Vec<Bytes> {
        let mut events = Vec::new();
        if let Some(Block::Thinking { signature }) = self.blocks.get(index) {
            events.push(sse(&StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::Signature { signature },
            }));
        }
        events.push(sse(&StreamEvent::ContentBlockStop { index }));
        events
    }

    /// Events that close block `from` and every block up to `to`, and open the following ones.
    fn advance(&self, from: usize, to: usize) -> Vec<Bytes> {
        let mut events = Vec::new();
        for index in from..to {
            events.extend(self.end_block(index));
            events.extend(self.start_block(index + 1));
        }
        events
    }

    /// Block whose deltas the stream is in once `sent` units went out.
    fn open_block(&self, sent: usize) -> usize {
        sent.checked_sub(1)
            .and_then(|last| self.units.get(last))
            .map_or(0, |(block, _)| *block)
    }
}

impl Turn for MessageTurn {
    fn streaming(&self) -> bool {
        self.stream
    }

    fn units(&self) -> usize {
        self.units.len()
    }

    fn opening(&mut self) -> Vec<Bytes> {
        let start = StreamEvent::MessageStart {
            message: Message {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: Usage {
                    input_tokens: self.input_tokens,
                    output_tokens: 1,
                },
            },
        };
        let mut events = vec![sse(&start)];
        events.extend(self.start_block(0));
        events.push(sse(&StreamEvent::Ping));
        events
    }

    fn unit(&mut self, index: usize) -> Bytes {
        let Some(&(block, delta)) = self.units.get(index) else {
            return Bytes::new();
        };
        // A block's first delta carries the events that close the previous block and open it.
        let mut events = self.advance(self.open_block(index), block);
        if let Some(b) = self.blocks.get(block) {
            events.push(sse(&StreamEvent::ContentBlockDelta {
                index: block,
                delta: b.delta(delta),
            }));
        }
        Bytes::from(events.concat())
    }

    fn closing(&mut self) -> Vec<Bytes> {
        let last = self.blocks.len().saturating_sub(1);
        let mut events = self.advance(self.open_block(self.units.len()), last);
        events.extend(self.end_block(last));
        events.push(sse(&StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: self.stop_reason(),
                stop_sequence: None,
            },
            usage: OutputUsage {
                output_tokens: self.output_tokens(),
            },
        }));
        events.push(sse(&StreamEvent::MessageStop));
        events
    }

    fn malformed(&mut self) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"event: content_block_delta\ndata: {not json\n\n"),
            sse(&StreamEvent::MessageStop),
        ]
    }

    /// Anthropic reports a failure after the headers as an `error` event and ends the stream.
    fn error_event(&mut self) -> Vec<Bytes> {
        vec![sse(&StreamEvent::Error {
            error: ErrorDetail {
                kind: "overloaded_error",
                message: "Overloaded".to_owned(),
            },
        })]
    }

    fn complete(&self) -> Response {
        Json(self.message()).into_response()
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

impl MessageTurn {
    /// The whole reply as a `message` object (a non-streamed reply, a batch's answer).
    fn message(&self) -> Message<'_> {
        Message {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: self.blocks.iter().map(Block::complete).collect(),
            stop_reason: Some(self.stop_reason()),
            stop_sequence: None,
            usage: Usage {
                input_tokens: self.input_tokens,
                output_tokens: self.output_tokens(),
            },
        }
    }
}

/// Anthropic's error response for `failure` on a request for `model`.
fn failure_response(failure: Failure, model: &str) -> Response {
    match failure {
        Failure::Server => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "Internal server error".to_owned(),
        ),
        Failure::RateLimited { retry_after_secs } => {
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "This request would exceed the rate limit for your organization for {model} (simulated). Please retry after {retry_after_secs} seconds."
                ),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Failure::Overloaded => error_response(
            StatusCode::from_u16(OVERLOADED).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "overloaded_error",
            "Overloaded".to_owned(),
        ),
        Failure::Refused { status, message } => {
            let kind = match status {
                StatusCode::UNAUTHORIZED => "authentication_error",
                StatusCode::FORBIDDEN => "permission_error",
                StatusCode::NOT_FOUND => "not_found_error",
                _ => "invalid_request_error",
            };
            error_response(status, kind, message)
        }
    }
}
