//! What the simulated model says, shared by every wire format so replies agree across APIs.

/// Text in the last user prompt that makes the simulator answer with a tool call.
pub(crate) const TOOL_TRIGGER: &str = "call_tool";

/// Text in a user message of a batched request that makes that request, alone, fail with the
/// provider's per-request error (the rest of the batch goes on).
pub(crate) const LINE_FAILURE_TRIGGER: &str = "fail_line";

/// Tool-call arguments, split the way a real model streams them: mid-token, across keys and values.
pub(crate) const TOOL_ARGUMENT_PIECES: [&str; 4] = ["{\"loc", "ation\":\"", "Par", "is\"}"];

/// The tool-call arguments as one JSON value, for formats that send whole calls.
pub(crate) fn tool_arguments() -> serde_json::Value {
    serde_json::json!({ "location": "Paris" })
}

/// Text some models say before calling a tool (Anthropic's optional leading text block).
pub(crate) const TOOL_PREAMBLE: &str = "Let me check.";

/// Reasoning streamed before the answer when a request asks for thinking, one piece per unit.
pub(crate) const THINKING_PIECES: [&str; 2] = ["Let me think about ", "how to answer this."];

/// Prompt "tokens" of a text: the simulator counts whitespace-separated words.
pub(crate) fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A random id with `prefix`, e.g. `msg_…`.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_pieces_concatenate_to_the_arguments() {
        let joined = TOOL_ARGUMENT_PIECES.concat();
        let parsed: serde_json::Value = serde_json::from_str(&joined).unwrap_or_default();
        assert_eq!(parsed, tool_arguments());
    }
}
