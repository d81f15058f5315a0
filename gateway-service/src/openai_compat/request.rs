//! A Chat Completions request body: parsed, checked the way OpenAI checks it (each refusal names the
//! parameter at fault), and turned into the `data` of a `chat.completion.generate` action.

use serde_json::{Map, Value, json};

use super::error::OpenAiError;

/// Roles a message may have.
const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

/// What the gateway uses of a Chat Completions request; other fields are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// The model, a registry name or alias.
    pub model: String,
    /// The conversation in OpenAI's format, passed through to the worker.
    pub messages: Vec<Value>,
    /// Answer as Server-Sent Events.
    pub stream: bool,
    /// With `stream`: end with a chunk carrying the token usage.
    pub include_usage: bool,
    /// Tool definitions in OpenAI's format.
    pub tools: Vec<Value>,
    /// OpenAI's `tool_choice`.
    pub tool_choice: Option<Value>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Output token limit (`max_completion_tokens`, else `max_tokens`).
    pub max_tokens: Option<u32>,
    /// `store: false` keeps the turn out of the chat history.
    pub store: Option<bool>,
}

/// A 400 naming `param`.
pub(super) fn invalid(message: impl Into<String>, param: &str) -> OpenAiError {
    OpenAiError::invalid_request(message, Some(param))
}

/// A 400 for `param` of the wrong type.
pub(super) fn wrong_type(param: &str, expected: &str) -> OpenAiError {
    invalid(
        format!("Invalid type for '{param}': expected {expected}."),
        param,
    )
}

/// A field that may be absent or `null`.
pub(super) fn present<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

fn optional_bool(body: &Map<String, Value>, key: &str) -> Result<bool, OpenAiError> {
    match present(body, key) {
        None => Ok(false),
        Some(v) => v.as_bool().ok_or_else(|| wrong_type(key, "a boolean")),
    }
}

fn token_limit(body: &Map<String, Value>, key: &str) -> Result<Option<u32>, OpenAiError> {
    let Some(v) = present(body, key) else {
        return Ok(None);
    };
    match v.as_u64() {
        Some(n) if n >= 1 => Ok(Some(u32::try_from(n).unwrap_or(u32::MAX))),
        _ => Err(invalid(
            format!("Invalid '{key}': expected an integer of at least 1."),
            key,
        )),
    }
}

fn check_message(i: usize, message: &Value) -> Result<(), OpenAiError> {
    let at = format!("messages[{i}]");
    let m = message
        .as_object()
        .ok_or_else(|| wrong_type(&at, "an object"))?;
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("Missing required parameter: '{at}.role'."), &at))?;
    if !ROLES.contains(&role) {
        return Err(invalid(
            format!(
                "Invalid value for '{at}.role': '{role}'. Supported values are: {}.",
                ROLES.join(", ")
            ),
            &format!("{at}.role"),
        ));
    }
    let content = m.get("content").unwrap_or(&Value::Null);
    let content_ok = match content {
        Value::String(_) => true,
        Value::Array(parts) => parts.iter().all(Value::is_object),
        // An assistant turn that only called tools has no content.
        Value::Null => role == "assistant",
        _ => false,
    };
    if !content_ok {
        return Err(wrong_type(
            &format!("{at}.content"),
            "a string or an array of content parts",
        ));
    }
    if role == "tool" && !m.get("tool_call_id").is_some_and(Value::is_string) {
        return Err(invalid(
            format!("Missing required parameter: '{at}.tool_call_id'."),
            &format!("{at}.tool_call_id"),
        ));
    }
    Ok(())
}

fn check_tool(i: usize, tool: &Value) -> Result<(), OpenAiError> {
    let at = format!("tools[{i}]");
    if tool["type"] != "function" {
        return Err(invalid(
            format!("Invalid value for '{at}.type': only 'function' is supported."),
            &format!("{at}.type"),
        ));
    }
    let name_ok = tool["function"]["name"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    if !name_ok {
        return Err(invalid(
            format!("Missing required parameter: '{at}.function.name'."),
            &format!("{at}.function.name"),
        ));
    }
    Ok(())
}

fn check_tool_choice(choice: &Value, has_tools: bool) -> Result<(), OpenAiError> {
    let named = choice["type"] == "function" && choice["function"]["name"].is_string();
    let ok = matches!(choice.as_str(), Some("none" | "auto" | "required")) || named;
    if !ok {
        return Err(invalid(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or \
             {\"type\": \"function\", \"function\": {\"name\": ...}}.",
            "tool_choice",
        ));
    }
    if !has_tools && choice.as_str() != Some("none") {
        return Err(invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are \
             specified.",
            "tool_choice",
        ));
    }
    Ok(())
}

impl CompletionRequest {
    /// Parses and checks a request body.
    pub fn parse(body: &[u8]) -> Result<Self, OpenAiError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            OpenAiError::invalid_request(
                format!("We could not parse the JSON body of your request: {e}"),
                None,
            )
        })?;
        let body = value.as_object().ok_or_else(|| {
            OpenAiError::invalid_request("The request body must be a JSON object.", None)
        })?;
        let model = match present(body, "model") {
            None => return Err(invalid("You must provide a model parameter.", "model")),
            Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
            Some(_) => return Err(wrong_type("model", "a non-empty string")),
        };
        let messages = match present(body, "messages") {
            None => {
                return Err(invalid(
                    "Missing required parameter: 'messages'.",
                    "messages",
                ));
            }
            Some(Value::Array(m)) if m.is_empty() => {
                return Err(invalid(
                    "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                    "messages",
                ));
            }
            Some(Value::Array(m)) => m.clone(),
            Some(_) => return Err(wrong_type("messages", "an array")),
        };
        for (i, m) in messages.iter().enumerate() {
            check_message(i, m)?;
        }
        let stream = optional_bool(body, "stream")?;
        let include_usage = match present(body, "stream_options") {
            None => false,
            Some(Value::Object(o)) => optional_bool(o, "include_usage")?,
            Some(_) => return Err(wrong_type("stream_options", "an object")),
        };
        let tools = match present(body, "tools") {
            None => Vec::new(),
            Some(Value::Array(t)) => t.clone(),
            Some(_) => return Err(wrong_type("tools", "an array")),
        };
        for (i, t) in tools.iter().enumerate() {
            check_tool(i, t)?;
        }
        let tool_choice = present(body, "tool_choice").cloned();
        if let Some(choice) = &tool_choice {
            check_tool_choice(choice, !tools.is_empty())?;
        }
        let temperature = match present(body, "temperature") {
            None => None,
            Some(v) => match v.as_f64() {
                Some(t) if (0.0..=2.0).contains(&t) => Some(t),
                _ => {
                    return Err(invalid(
                        "Invalid 'temperature': expected a number from 0 to 2.",
                        "temperature",
                    ));
                }
            },
        };
        let max_tokens = match token_limit(body, "max_completion_tokens")? {
            Some(n) => Some(n),
            None => token_limit(body, "max_tokens")?,
        };
        let store = present(body, "store")
            .map(|v| v.as_bool().ok_or_else(|| wrong_type("store", "a boolean")))
            .transpose()?;
        if present(body, "n").is_some_and(|n| n.as_u64() != Some(1)) {
            return Err(invalid("Only n=1 is supported.", "n"));
        }
        Ok(Self {
            model,
            messages,
            stream,
            include_usage: stream && include_usage,
            tools,
            tool_choice,
            temperature,
            max_tokens,
            store,
        })
    }

    /// The `data` of the `chat.completion.generate` action: the conversation without a separate
    /// `prompt` (its last message is the turn to answer).
    pub fn action_data(&self) -> Value {
        // `developer` is OpenAI's newer name for `system`; every provider knows `system`.
        let messages: Vec<Value> = self
            .messages
            .iter()
            .map(|m| {
                let mut m = m.clone();
                if m["role"] == "developer" {
                    m["role"] = json!("system");
                }
                m
            })
            .collect();
        let mut data = json!({"messages": messages, "model": self.model});
        if !self.tools.is_empty() {
            data["tools"] = json!(self.tools);
        }
        if let Some(choice) = &self.tool_choice {
            data["tool_choice"] = choice.clone();
        }
        if let Some(store) = self.store {
            data["store"] = json!(store);
        }
        let mut settings = Map::new();
        if let Some(t) = self.temperature {
            settings.insert("temperature".into(), json!(t));
        }
        if let Some(m) = self.max_tokens {
            settings.insert("max_tokens".into(), json!(m));
        }
        if !settings.is_empty() {
            data["settings"] = Value::Object(settings);
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<CompletionRequest, OpenAiError> {
        CompletionRequest::parse(v.to_string().as_bytes())
    }

    fn param_of(v: Value) -> Value {
        parse(v).unwrap_err().body()["error"]["param"].clone()
    }

    #[test]
    fn a_full_request_becomes_action_data() {
        let r = parse(json!({
            "model": "mini", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "developer", "content": "be brief"},
                         {"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
            "tool_choice": "auto", "temperature": 0.5, "max_tokens": 10,
            "max_completion_tokens": 20, "user": "ignored", "n": 1, "store": false,
        }))
        .unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(
            r.action_data(),
            json!({
                "messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": "hi"}],
                "model": "mini",
                "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
                "tool_choice": "auto",
                "store": false,
                "settings": {"temperature": 0.5, "max_tokens": 20},
            })
        );
    }

    #[test]
    fn refusals_name_the_parameter() {
        let user = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(param_of(json!({"messages": user})), "model");
        assert_eq!(param_of(json!({"model": "m"})), "messages");
        assert_eq!(
            param_of(json!({"model": "m", "messages": user, "store": "no"})),
            "store"
        );
        assert_eq!(param_of(json!({"model": "m", "messages": []})), "messages");
        assert_eq!(
            param_of(json!({"model": "m", "messages": "hi"})),
            "messages"
        );
        assert_eq!(
            param_of(json!({"model": "m", "messages": [{"role": "bot", "content": "x"}]})),
            "messages[0].role"
        );
        assert_eq!(
            param_of(json!({"model": "m", "messages": [{"role": "user", "content": 1}]})),
            "messages[0].content"
        );
        assert_eq!(
            param_of(json!({"model": "m", "messages": [{"role": "tool", "content": "r"}]})),
            "messages[0].tool_call_id"
        );
        assert_eq!(
            param_of(json!({"model": "m", "messages": user, "stream": "yes"})),
            "stream"
        );
        assert_eq!(
            param_of(json!({"model": "m", "messages": user, "temperature": 3})),
            "temperature"
        );
        assert_eq!(
            param_of(json!({"model": "m", "messages": user, "max_tokens": 0})),
            "max_tokens"
        );
        assert_eq!(
            param_of(json!({"model": "m", "messages": user, "tool_choice": "auto"})),
            "tool_choice"
        );
        assert_eq!(
            param_of(json!({"model": "m", "messages": user, "tools": [{"type": "x"}]})),
            "tools[0].type"
        );
        assert_eq!(
            param_of(json!({"model": "m", "messages": user, "n": 2})),
            "n"
        );
        let bad_json = CompletionRequest::parse(b"{oops").unwrap_err();
        assert_eq!(bad_json.status().as_u16(), 400);
        assert_eq!(bad_json.body()["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn nulls_count_as_absent_and_an_assistant_may_only_call_tools() {
        let r = parse(json!({
            "model": "m", "stream": null, "temperature": null, "tools": null,
            "messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": null, "tool_calls": []},
                         {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
        }))
        .unwrap();
        assert!(!r.stream && !r.include_usage && r.tools.is_empty());
        assert_eq!(r.action_data()["messages"].as_array().unwrap().len(), 3);
        assert!(r.action_data().get("settings").is_none());
    }
}
