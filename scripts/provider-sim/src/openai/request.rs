//! What a chat request asks for, read from its messages and tool declarations.

use serde_json::Value;

use crate::content::TOOL_TRIGGER;

/// Name of the first declared tool, if the conversation asks for a tool call.
///
/// A tool message after the triggering user message means the call was already answered, so the
/// model replies with text and a client's tool loop can terminate.
pub(super) fn requested_tool(tools: Option<&Value>, messages: &[Value]) -> Option<String> {
    let tools = tools?.as_array().filter(|t| !t.is_empty())?;
    let last_user = messages
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    let answered = messages
        .get(last_user + 1..)
        .unwrap_or_default()
        .iter()
        .any(|m| m.get("role").and_then(Value::as_str) == Some("tool"));
    let asks = messages
        .get(last_user)
        .is_some_and(|m| text_of(m).contains(TOOL_TRIGGER));
    if answered || !asks {
        return None;
    }
    let name = tools
        .first()
        .and_then(|t| t.pointer("/function/name"))
        .and_then(Value::as_str)
        .unwrap_or("tool");
    Some(name.to_owned())
}

/// Text of a message whose content is a string or an array of content parts.
pub(super) fn text_of(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}
