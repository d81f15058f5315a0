//! Validation of a Messages request, and what it asks for: thinking, a tool call, prompt size.

use serde_json::Value;

use crate::content::{TOOL_TRIGGER, word_count};

/// Smallest thinking budget the API accepts.
const MIN_THINKING_BUDGET: u64 = 1024;

/// A request the simulator accepted.
pub(super) struct Request {
    pub(super) model: String,
    pub(super) stream: bool,
    pub(super) thinking: bool,
    /// Name of the tool to call, when the conversation asks for a tool call.
    pub(super) tool: Option<String>,
    pub(super) input_tokens: u64,
}

/// Checks the fields the real API checks first, with its messages for them.
pub(super) fn parse(body: &Value) -> Result<Request, String> {
    let Some(object) = body.as_object() else {
        return Err("Input should be a valid dictionary or object".to_owned());
    };
    let model = match object.get("model") {
        None => return Err("model: Field required".to_owned()),
        Some(Value::String(model)) => model.clone(),
        Some(_) => return Err("model: Input should be a valid string".to_owned()),
    };
    let max_tokens = match object.get("max_tokens") {
        None => return Err("max_tokens: Field required".to_owned()),
        Some(value) => match value.as_u64() {
            Some(0) => {
                return Err("max_tokens: Input should be greater than or equal to 1".to_owned());
            }
            Some(n) => n,
            None => return Err("max_tokens: Input should be a valid integer".to_owned()),
        },
    };
    let messages = match object.get("messages") {
        None => return Err("messages: Field required".to_owned()),
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err("messages: Input should be a valid list".to_owned()),
    };
    if messages.is_empty() {
        return Err("messages: at least one message is required".to_owned());
    }
    for (i, message) in messages.iter().enumerate() {
        match message.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            _ => {
                return Err(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                ));
            }
        }
    }
    let stream = match object.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err("stream: Input should be a valid boolean".to_owned()),
    };
    let temperature = match object.get("temperature") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => Some(t),
            Some(_) => {
                return Err("temperature: Input should be between 0 and 1".to_owned());
            }
            None => return Err("temperature: Input should be a valid number".to_owned()),
        },
    };
    let thinking = thinking(object.get("thinking"), max_tokens, temperature)?;
    let tools = match object.get("tools") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err("tools: Input should be a valid list".to_owned()),
    };
    if let Some(i) = tools
        .iter()
        .position(|t| !t.get("name").is_some_and(Value::is_string))
    {
        return Err(format!("tools.{i}.name: Field required"));
    }
    let input_tokens = system_words(object.get("system"))
        + messages
            .iter()
            .map(|m| word_count(&text_of(m.get("content"))))
            .sum::<u64>();
    Ok(Request {
        model,
        stream,
        thinking,
        tool: requested_tool(tools, messages),
        input_tokens,
    })
}

/// Whether thinking is on, after the API's checks of budget, `max_tokens` and temperature.
fn thinking(
    config: Option<&Value>,
    max_tokens: u64,
    temperature: Option<f64>,
) -> Result<bool, String> {
    let Some(config) = config.filter(|c| !c.is_null()) else {
        return Ok(false);
    };
    let enabled = match config.get("type").and_then(Value::as_str) {
        Some("disabled") => return Ok(false),
        Some("adaptive") => true,
        Some("enabled") => {
            let Some(budget) = config.get("budget_tokens") else {
                return Err("thinking.enabled.budget_tokens: Field required".to_owned());
            };
            let Some(budget) = budget.as_u64() else {
                return Err(
                    "thinking.enabled.budget_tokens: Input should be a valid integer".to_owned(),
                );
            };
            if budget < MIN_THINKING_BUDGET {
                return Err(format!(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}"
                ));
            }
            if max_tokens <= budget {
                return Err("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size".to_owned());
            }
            true
        }
        _ => {
            return Err(
                "thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'"
                    .to_owned(),
            );
        }
    };
    if temperature.is_some_and(|t| t != 1.0) {
        return Err("`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility".to_owned());
    }
    Ok(enabled)
}

/// Words of a system prompt given as a string or as an array of text blocks.
fn system_words(system: Option<&Value>) -> u64 {
    word_count(&text_of(system))
}

/// Text of message content (a string or blocks), including tool results' text.
pub(super) fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b.get("text").and_then(Value::as_str).map(str::to_owned),
                Some("tool_result") => Some(text_of(b.get("content"))),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Text the user typed in a message, leaving tool results out.
fn prompt_of(message: &Value) -> Option<String> {
    match message.get("content") {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Array(blocks)) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join(" "))
        }
        _ => None,
    }
}

fn has_tool_result(message: &Value) -> bool {
    message
        .get("content")
        .and_then(Value::as_array)
        .is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        })
}

/// Name of the first declared tool, if the last user prompt asks for a tool call.
///
/// Tool results travel in user messages; a `tool_result` after the triggering prompt means the
/// call was already answered, so the model replies with text and a client's tool loop ends.
fn requested_tool(tools: &[Value], messages: &[Value]) -> Option<String> {
    let name = tools.first()?.get("name")?.as_str()?;
    let (last_prompt, prompt) = messages
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, m)| m.get("role").and_then(Value::as_str) == Some("user"))
        .find_map(|(i, m)| prompt_of(m).map(|p| (i, p)))?;
    let answered = messages
        .get(last_prompt + 1..)
        .unwrap_or_default()
        .iter()
        .any(has_tool_result);
    (prompt.contains(TOOL_TRIGGER) && !answered).then(|| name.to_owned())
}
