//! Serde shapes of Anthropic's Messages objects and stream events, in the field order the API uses.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::json::to_json;

/// Frames `event` as one server-sent event: an `event:` line naming its type, then its data.
pub(super) fn sse(event: &StreamEvent<'_>) -> Bytes {
    let json = to_json(event);
    Bytes::from(format!("event: {}\ndata: {json}\n\n", event.name()))
}

/// One event of a streamed message; the `type` field repeats the SSE event name.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum StreamEvent<'a> {
    MessageStart {
        message: Message<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: ContentBlock<'a>,
    },
    Ping,
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDelta,
        usage: OutputUsage,
    },
    MessageStop,
    Error {
        error: ErrorDetail<'a>,
    },
}

impl StreamEvent<'_> {
    fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::Ping => "ping",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// A message: the non-streamed reply, and the envelope `message_start` carries (empty content).
#[derive(Serialize)]
pub(super) struct Message<'a> {
    pub(super) id: &'a str,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) role: &'static str,
    pub(super) model: &'a str,
    pub(super) content: Vec<ContentBlock<'a>>,
    pub(super) stop_reason: Option<&'static str>,
    pub(super) stop_sequence: Option<String>,
    pub(super) usage: Usage,
}

#[derive(Serialize)]
pub(super) struct Usage {
    pub(super) input_tokens: u64,
    pub(super) output_tokens: u64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ContentBlock<'a> {
    Thinking {
        thinking: String,
        /// Absent from `content_block_start`; the signature arrives as a `signature_delta`.
        #[serde(skip_serializing_if = "Option::is_none")]
        signature: Option<&'a str>,
    },
    Text {
        text: String,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        /// `{}` in `content_block_start`; the arguments follow as `input_json_delta`s.
        input: Value,
    },
}

/// A `content_block_delta` payload; `type` is the variant name with a `_delta` suffix.
#[derive(Serialize)]
#[serde(tag = "type")]
pub(super) enum BlockDelta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
pub(super) struct MessageDelta {
    pub(super) stop_reason: &'static str,
    pub(super) stop_sequence: Option<String>,
}

#[derive(Serialize)]
pub(super) struct OutputUsage {
    pub(super) output_tokens: u64,
}

/// An HTTP error body: `{"type":"error","error":{…},"request_id":"req_…"}`.
#[derive(Serialize)]
pub(super) struct ErrorBody<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) error: ErrorDetail<'a>,
    pub(super) request_id: String,
}

#[derive(Serialize)]
pub(super) struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'a str,
    pub(super) message: String,
}
