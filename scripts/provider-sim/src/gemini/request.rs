//! Validation of a `generateContent` request, and what it asks for: thoughts, a function call.

use serde_json::{Map, Value};

use crate::content::{TOOL_TRIGGER, word_count};

/// A request the simulator accepted.
pub(super) struct Request {
    /// `generationConfig.thinkingConfig.includeThoughts`.
    pub(super) thoughts: bool,
    /// Name of the function to call, when the conversation asks for a call.
    pub(super) function: Option<String>,
    pub(super) prompt_tokens: u64,
}

/// A field in either of the spellings the API accepts: `lowerCamel` or `snake_case`.
pub(super) fn field<'a>(
    object: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Option<&'a Value> {
    object
        .get(camel)
        .or_else(|| object.get(snake))
        .filter(|v| !v.is_null())
}

pub(super) fn at<'a>(value: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    field(value.as_object()?, camel, snake)
}

/// Checks the fields the real API checks, with its messages for them.
pub(super) fn parse(body: &Value) -> Result<Request, String> {
    let Some(object) = body.as_object() else {
        return Err(
            "Invalid JSON payload received. Expected an object (GenerateContentRequest)."
                .to_owned(),
        );
    };
    let contents = match object.get("contents") {
        None | Some(Value::Null) => {
            return Err(
                "* GenerateContentRequest.contents: contents is not specified\n".to_owned(),
            );
        }
        Some(Value::Array(contents)) => contents,
        Some(_) => {
            return Err(
                "Invalid JSON payload received. Invalid value at 'contents': expected a list of Content."
                    .to_owned(),
            );
        }
    };
    if contents.is_empty() {
        return Err("* GenerateContentRequest.contents: contents is not specified\n".to_owned());
    }
    for (i, content) in contents.iter().enumerate() {
        match content.get("role") {
            None | Some(Value::Null) => {}
            Some(Value::String(role)) if role == "user" || role == "model" || role.is_empty() => {}
            Some(_) => return Err("Please use a valid role: user, model.".to_owned()),
        }
        let parts = content.get("parts").and_then(Value::as_array);
        if parts.is_none_or(Vec::is_empty) {
            return Err(format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            ));
        }
    }
    let thoughts = field(object, "generationConfig", "generation_config")
        .and_then(|c| at(c, "thinkingConfig", "thinking_config"))
        .and_then(|c| at(c, "includeThoughts", "include_thoughts"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let system = field(object, "systemInstruction", "system_instruction")
        .map(text_of)
        .unwrap_or_default();
    let prompt_tokens = word_count(&system)
        + contents
            .iter()
            .map(|c| word_count(&text_of(c)))
            .sum::<u64>();
    Ok(Request {
        thoughts,
        function: requested_function(field(object, "tools", "tools"), contents),
        prompt_tokens,
    })
}

fn parts(content: &Value) -> &[Value] {
    content
        .get("parts")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Text parts of a `Content`, joined.
fn text_of(content: &Value) -> String {
    parts(content)
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of every user turn of a request, joined.
pub(super) fn user_text(body: &Value) -> String {
    body.get("contents")
        .and_then(Value::as_array)
        .map(|contents| {
            contents
                .iter()
                .filter(|c| is_user(c))
                .map(text_of)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn is_user(content: &Value) -> bool {
    // A content without a role is the user's.
    matches!(
        content.get("role").and_then(Value::as_str),
        None | Some("user" | "")
    )
}

fn has_function_response(content: &Value) -> bool {
    parts(content)
        .iter()
        .any(|p| at(p, "functionResponse", "function_response").is_some())
}

/// Name of the first function declaration, if the last user prompt asks for a call.
///
/// Function results travel as `functionResponse` parts of user turns; one after the triggering
/// prompt means the call was answered, so the model replies with text and a tool loop ends.
fn requested_function(tools: Option<&Value>, contents: &[Value]) -> Option<String> {
    let name = tools?
        .as_array()?
        .iter()
        .filter_map(|t| at(t, "functionDeclarations", "function_declarations"))
        .filter_map(Value::as_array)
        .flatten()
        .find_map(|d| d.get("name").and_then(Value::as_str))?;
    let last_prompt = contents.iter().rposition(|c| {
        is_user(c)
            && parts(c)
                .iter()
                .any(|p| p.get("text").is_some_and(Value::is_string))
    })?;
    let asks = contents
        .get(last_prompt)
        .is_some_and(|c| text_of(c).contains(TOOL_TRIGGER));
    let answered = contents
        .get(last_prompt + 1..)
        .unwrap_or_default()
        .iter()
        .any(has_function_response);
    (asks && !answered).then(|| name.to_owned())
}
