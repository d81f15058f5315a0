//! Serde shapes of OpenAI's chat completion objects, in the field order the real API uses.

use bytes::Bytes;
use serde::Serialize;

use crate::json::to_json;

/// Frames `value` as one server-sent event.
pub(super) fn sse(value: &impl Serialize) -> Bytes {
    let json = to_json(value);
    Bytes::from(format!("data: {json}\n\n"))
}

#[derive(Serialize)]
pub(super) struct Chunk<'a> {
    pub(super) id: &'a str,
    pub(super) object: &'static str,
    pub(super) created: u64,
    pub(super) model: &'a str,
    pub(super) system_fingerprint: Option<String>,
    pub(super) choices: Vec<ChunkChoice>,
    /// Absent unless usage was requested; then `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
pub(super) struct UsageChunk<'a> {
    pub(super) id: &'a str,
    pub(super) object: &'static str,
    pub(super) created: u64,
    pub(super) model: &'a str,
    pub(super) system_fingerprint: Option<String>,
    pub(super) choices: Vec<ChunkChoice>,
    pub(super) usage: Usage,
}

#[derive(Serialize)]
pub(super) struct ChunkChoice {
    pub(super) index: u32,
    pub(super) delta: Delta,
    pub(super) logprobs: Option<()>,
    pub(super) finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
pub(super) struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) role: Option<&'static str>,
    /// `Some(None)` serializes as `"content": null`, which tool-call openings carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) content: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Serialize)]
pub(super) struct ToolCallDelta {
    pub(super) index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(super) kind: Option<&'static str>,
    pub(super) function: FunctionDelta,
}

#[derive(Serialize)]
pub(super) struct FunctionDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    pub(super) arguments: String,
}

#[derive(Serialize)]
pub(super) struct Usage {
    pub(super) prompt_tokens: u64,
    pub(super) completion_tokens: u64,
    pub(super) total_tokens: u64,
}

#[derive(Serialize)]
pub(super) struct Completion<'a> {
    pub(super) id: &'a str,
    pub(super) object: &'static str,
    pub(super) created: u64,
    pub(super) model: &'a str,
    pub(super) choices: Vec<CompletionChoice>,
    pub(super) usage: Usage,
    pub(super) system_fingerprint: Option<String>,
}

#[derive(Serialize)]
pub(super) struct CompletionChoice {
    pub(super) index: u32,
    pub(super) message: Message,
    pub(super) logprobs: Option<()>,
    pub(super) finish_reason: &'static str,
}

#[derive(Serialize)]
pub(super) struct Message {
    pub(super) role: &'static str,
    pub(super) content: Option<String>,
    pub(super) refusal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Serialize)]
pub(super) struct ToolCall {
    pub(super) id: String,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) function: Function,
}

#[derive(Serialize)]
pub(super) struct Function {
    pub(super) name: String,
    pub(super) arguments: String,
}

#[derive(Serialize)]
pub(super) struct ErrorBody<'a> {
    pub(super) error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub(super) struct ErrorDetail<'a> {
    pub(super) message: String,
    #[serde(rename = "type")]
    pub(super) kind: &'a str,
    pub(super) param: Option<&'a str>,
    pub(super) code: Option<&'a str>,
}

/// An event of a `stream_format: "sse"` speech reply.
#[derive(Serialize)]
#[serde(tag = "type")]
pub(super) enum SpeechEvent<'a> {
    /// A chunk of the encoded audio, base64.
    #[serde(rename = "speech.audio.delta")]
    Delta { audio: &'a str },
    /// The last event, with the request's token counts.
    #[serde(rename = "speech.audio.done")]
    Done { usage: SpeechUsage },
}

#[derive(Serialize)]
pub(super) struct SpeechUsage {
    pub(super) input_tokens: u64,
    pub(super) output_tokens: u64,
    pub(super) total_tokens: u64,
}
