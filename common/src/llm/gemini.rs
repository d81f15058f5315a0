//! Google Gemini `streamGenerateContent` over SSE, including function calls and thoughts.

use std::collections::HashMap;

use async_trait::async_trait;
use eventsource_stream::Event;
use serde_json::{Value, json};

use crate::settings::Secret;

use super::http::{self, SseParser};
use super::{
    ChatRequest, Delta, DeltaStream, ProviderError, TextProvider, Usage, content_text, data_url,
    image_url,
};

/// A client of `{base_url}/v1beta/models/{model}:streamGenerateContent`.
#[derive(Debug, Clone)]
pub struct GeminiProvider {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<Secret>,
}

impl GeminiProvider {
    /// A client for the given base URL (e.g. `https://generativelanguage.googleapis.com`).
    pub fn new(base_url: &str, api_key: Option<Secret>) -> anyhow::Result<Self> {
        Ok(Self {
            http: http::client()?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
        })
    }
}

fn parts(content: &Value) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(items) => items
            .iter()
            .filter_map(|part| {
                if let Some(url) = image_url(part) {
                    return Some(match data_url(url) {
                        Some((mime, data)) => {
                            Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
                        }
                        None => Err(ProviderError::Unsupported(
                            "gemini takes images inline only: send a data: URL".into(),
                        )),
                    });
                }
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => Some(Ok(json!({"text": part["text"]}))),
                    Some("input_audio") => Some(audio(&part["input_audio"])),
                    Some(other) => Some(Err(ProviderError::Unsupported(format!(
                        "gemini does not take {other} parts"
                    )))),
                    None => None,
                }
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![json!({"text": other.to_string()})]),
    }
}

/// OpenAI's `input_audio` (`{data, format}`) as an `inlineData` part of the MIME type Gemini
/// documents for the format (WAV, MP3, AIFF, AAC, OGG, FLAC; Opus files are Ogg).
fn audio(input: &Value) -> Result<Value, ProviderError> {
    let format = input["format"].as_str().unwrap_or_default();
    let mime = match format.to_ascii_lowercase().as_str() {
        "wav" => "audio/wav",
        "mp3" => "audio/mp3",
        "aiff" => "audio/aiff",
        "aac" => "audio/aac",
        "ogg" | "opus" => "audio/ogg",
        "flac" => "audio/flac",
        _ => {
            return Err(ProviderError::Unsupported(format!(
                "gemini does not take {format} audio (wav, mp3, aiff, aac, ogg, flac)"
            )));
        }
    };
    Ok(json!({"inlineData": {"mimeType": mime, "data": input["data"]}}))
}

/// Converts OpenAI-format messages to `contents` and a system instruction.
fn convert(messages: &[Value]) -> Result<(Vec<String>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    // Tool results name their call by id; Gemini wants the function's name.
    let mut call_names: HashMap<String, String> = HashMap::new();
    for m in messages {
        let (role, p) = match m["role"].as_str().unwrap_or("user") {
            "system" | "developer" => {
                system.push(content_text(&m["content"]));
                continue;
            }
            "assistant" => {
                let mut p = parts(&m["content"])?;
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let name = call["function"]["name"].as_str().unwrap_or_default();
                    if let Some(id) = call["id"].as_str() {
                        call_names.insert(id.to_owned(), name.to_owned());
                    }
                    let args = call["function"]["arguments"].as_str().unwrap_or("{}");
                    let args: Value = serde_json::from_str(args).unwrap_or(json!({}));
                    p.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                ("model", p)
            }
            "tool" => {
                let id = m["tool_call_id"].as_str().unwrap_or_default();
                let name = call_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
                let text = content_text(&m["content"]);
                let response = serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({"content": text}));
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
            _ => ("user", parts(&m["content"])?),
        };
        match contents.last_mut() {
            Some((r, c)) if r == role => c.extend(p),
            _ => contents.push((role.to_owned(), p)),
        }
    }
    let contents = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
}

/// The `generateContent` request body for `request`: OpenAI-format messages converted to
/// `contents` (`model` turns, `functionCall`/`functionResponse` parts, inline images and audio)
/// and a `systemInstruction`, tools with their calling mode, and the `generationConfig`. The model
/// is not in the body: it is part of the URL.
pub fn request_body(request: &ChatRequest) -> Result<Value, ProviderError> {
    let (system, contents) = convert(&request.messages)?;
    let mut body = json!({"contents": contents});
    if !system.is_empty() {
        body["systemInstruction"] = json!({"parts": [{"text": system.join("\n\n")}]});
    }
    if !request.tools.is_empty() {
        let decls: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
            .collect();
        body["tools"] = json!([{"functionDeclarations": decls}]);
        let mode = match request.tool_choice.as_ref().and_then(Value::as_str) {
            Some("required") => Some("ANY"),
            Some("none") => Some("NONE"),
            Some("auto") => Some("AUTO"),
            _ => None,
        };
        if let Some(mode) = mode {
            body["toolConfig"] = json!({"functionCallingConfig": {"mode": mode}});
        }
    }
    let mut config = json!({});
    if let Some(t) = request.temperature {
        config["temperature"] = json!(t);
    }
    if let Some(m) = request.max_tokens {
        config["maxOutputTokens"] = json!(m);
    }
    if request.reasoning {
        config["thinkingConfig"] = json!({"includeThoughts": true});
    }
    if config.as_object().is_some_and(|c| !c.is_empty()) {
        body["generationConfig"] = config;
    }
    Ok(body)
}

/// Gemini sends whole chunks and no end marker: the answer is complete once a finish reason came.
#[derive(Default)]
struct Parser {
    calls: usize,
    finished: bool,
}

impl SseParser for Parser {
    fn event(&mut self, event: &Event) -> Result<Vec<Delta>, ProviderError> {
        let chunk = http::json(event)?;
        if let Some(message) = chunk["error"]["message"].as_str() {
            let message: String = message.chars().take(200).collect();
            return Err(ProviderError::Protocol(format!(
                "error in stream: {message}"
            )));
        }
        let mut out = Vec::new();
        let candidate = &chunk["candidates"][0];
        for part in candidate["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(text) = part["text"].as_str().filter(|t| !t.is_empty()) {
                out.push(if part["thought"] == true {
                    Delta::Reasoning(text.to_owned())
                } else {
                    Delta::Text(text.to_owned())
                });
            }
            if let Some(call) = part.get("functionCall") {
                out.push(Delta::ToolCall {
                    index: self.calls,
                    id: Some(format!("call_{}", self.calls)),
                    name: call["name"].as_str().map(str::to_owned),
                    arguments: call["args"].to_string(),
                });
                self.calls += 1;
            }
        }
        if let Some(reason) = candidate["finishReason"].as_str() {
            self.finished = true;
            out.push(Delta::Finish(
                match reason {
                    "MAX_TOKENS" => "length",
                    "STOP" if self.calls > 0 => "tool_calls",
                    "STOP" => "stop",
                    _ => "content_filter",
                }
                .to_owned(),
            ));
        }
        if let Some(u) = chunk.get("usageMetadata").filter(|u| u.is_object()) {
            let thoughts = u["thoughtsTokenCount"].as_u64().unwrap_or(0);
            out.push(Delta::Usage(Usage {
                input_tokens: u["promptTokenCount"].as_u64().unwrap_or(0),
                output_tokens: u["candidatesTokenCount"].as_u64().unwrap_or(0) + thoughts,
            }));
        }
        Ok(out)
    }

    fn done(&self) -> bool {
        false
    }

    fn complete(&self) -> bool {
        self.finished
    }
}

#[async_trait]
impl TextProvider for GeminiProvider {
    fn kind(&self) -> &'static str {
        "gemini"
    }

    async fn stream(&self, request: ChatRequest) -> Result<DeltaStream, ProviderError> {
        let url = format!(
            "{}/v1beta/models/{}:streamGenerateContent?alt=sse",
            self.base_url, request.model
        );
        let mut builder = self.http.post(url).json(&request_body(&request)?);
        if let Some(key) = &self.api_key {
            builder = builder.header("x-goog-api-key", key.expose());
        }
        let response = http::send(builder, self.api_key.as_ref()).await?;
        Ok(http::sse_stream(response, Parser::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_roles_and_function_results() {
        let messages = vec![
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "user", "content": "weather?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"location\":\"Paris\"}"}}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "{\"sky\":\"sunny\"}"}),
        ];
        let (system, contents) = convert(&messages).unwrap();
        assert_eq!(system, ["be brief"]);
        assert_eq!(contents[1]["role"], "model");
        assert_eq!(
            contents[1]["parts"][0]["functionCall"]["args"],
            json!({"location": "Paris"})
        );
        assert_eq!(
            contents[2]["parts"][0]["functionResponse"],
            json!({"name": "weather", "response": {"sky": "sunny"}})
        );
        let audio = json!([{"type": "text", "text": "what is this?"},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]);
        assert_eq!(
            parts(&audio).unwrap()[1],
            json!({"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}})
        );
        let webm =
            json!([{"type": "input_audio", "input_audio": {"data": "AA==", "format": "webm"}}]);
        assert!(matches!(parts(&webm), Err(ProviderError::Unsupported(_))));
        let http_image = json!([{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]);
        assert!(matches!(
            parts(&http_image),
            Err(ProviderError::Unsupported(_))
        ));
    }
}
