//! `POST /api/v1/batch`'s body: a model and its requests, checked at once (the model known,
//! 1 to 50,000 requests, each a prompt or messages, `custom_id`s unique) and written as an OpenAI
//! batch input file, line by line, into a spool. Each line also passes the batch-worker's own
//! line rules (`common::batch::jsonl::Checker`), so what is accepted here runs there.

use std::collections::HashMap;

use common::batch::jsonl::Checker;
use common::batch::{CHAT_ENDPOINT, MAX_LINES};
use common::error::AppError;
use common::models::ModelRegistry;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Spool;

/// The body of `POST /api/v1/batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The model every request runs on (a name of the registry).
    pub model: String,
    /// The requests, 1 to 50,000.
    pub requests: Vec<RequestItem>,
    /// The job's metadata (OpenAI's rules: 16 pairs, string values).
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// One request of a batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestItem {
    /// The caller's id for it; `request-{n}` (from 1) when absent.
    #[serde(default)]
    pub custom_id: Option<String>,
    /// The user's message, or ...
    #[serde(default)]
    pub prompt: Option<String>,
    /// ... the whole conversation, OpenAI chat messages.
    #[serde(default)]
    pub messages: Option<Vec<Value>>,
    /// A system message put first.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// The longest answer, tokens.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    #[serde(default)]
    pub temperature: Option<f64>,
}

impl BatchRequest {
    /// Parses the body; a field of the wrong type is named (`requests[3].max_tokens: …`).
    pub fn parse(body: &[u8]) -> Result<Self, AppError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                AppError::BadRequest(format!("invalid JSON body: {inner}"))
            } else {
                AppError::BadRequest(format!("{path}: {inner}"))
            }
        })
    }

    /// Checks the model, the count and the metadata; the requests are checked as they are
    /// written ([`write_lines`]).
    pub fn check(&self, registry: &ModelRegistry) -> Result<(), AppError> {
        registry
            .resolve(Some(&self.model))
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        if self.requests.is_empty() || self.requests.len() > MAX_LINES {
            return Err(AppError::BadRequest(format!(
                "requests must hold 1 to {MAX_LINES} requests; it holds {}",
                self.requests.len()
            )));
        }
        if let Some(metadata) = &self.metadata {
            super::check_metadata(metadata).map_err(AppError::BadRequest)?;
        }
        Ok(())
    }
}

/// The chat completion body of request `i`; `Err` names the field at fault.
fn body(model: &str, i: usize, item: &RequestItem) -> Result<Value, String> {
    let mut messages = Vec::new();
    if let Some(system) = &item.system_prompt {
        messages.push(json!({"role": "system", "content": system}));
    }
    match (&item.prompt, &item.messages) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "requests[{i}] has both prompt and messages; give one"
            ));
        }
        (None, None) => return Err(format!("requests[{i}] needs a prompt or messages")),
        (Some(prompt), None) => {
            if prompt.trim().is_empty() {
                return Err(format!("requests[{i}].prompt is empty"));
            }
            messages.push(json!({"role": "user", "content": prompt}));
        }
        (None, Some(list)) => {
            if list.is_empty() {
                return Err(format!("requests[{i}].messages is empty"));
            }
            messages.extend(list.iter().cloned());
        }
    }
    let mut body = json!({"model": model, "messages": messages});
    if let Some(max) = item.max_tokens {
        if max == 0 {
            return Err(format!("requests[{i}].max_tokens must be at least 1"));
        }
        body["max_tokens"] = json!(max);
    }
    if let Some(t) = item.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(format!("requests[{i}].temperature must be between 0 and 2"));
        }
        body["temperature"] = json!(t);
    }
    Ok(body)
}

/// Writes the requests as an input file's lines into `spool`, checking each: a request that
/// would be refused (no prompt, a `custom_id` used twice, …) is 400 naming it, before anything
/// is stored. Answers how many lines were written.
pub async fn write_lines(
    request: &BatchRequest,
    registry: &ModelRegistry,
    spool: &mut Spool,
) -> Result<usize, AppError> {
    let mut checker = Checker::new(CHAT_ENDPOINT, registry);
    let mut ids: HashMap<String, usize> = HashMap::with_capacity(request.requests.len());
    for (i, item) in request.requests.iter().enumerate() {
        let custom_id = item
            .custom_id
            .clone()
            .unwrap_or_else(|| format!("request-{}", i + 1));
        if let Some(first) = ids.insert(custom_id.clone(), i) {
            return Err(AppError::BadRequest(format!(
                "requests[{i}].custom_id {custom_id:?} is already used by requests[{first}]; \
                 custom_ids must be unique"
            )));
        }
        let body = body(&request.model, i, item).map_err(AppError::BadRequest)?;
        let mut line = json!({
            "custom_id": custom_id,
            "method": "POST",
            "url": CHAT_ENDPOINT,
            "body": body,
        })
        .to_string();
        // The worker's rules, so that an accepted request is not refused when the job runs.
        if let Err(e) = checker.check(i + 1, &line) {
            let reason = e
                .message
                .strip_prefix(&format!("line {}: ", i + 1))
                .unwrap_or(&e.message);
            return Err(AppError::BadRequest(format!("requests[{i}]: {reason}")));
        }
        line.push('\n');
        spool.write(line.as_bytes()).await?;
    }
    spool.finish().await?;
    Ok(request.requests.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn registry() -> ModelRegistry {
        ModelRegistry::load(None).unwrap()
    }

    async fn written(body: Value) -> Result<Vec<Value>, String> {
        let request =
            BatchRequest::parse(body.to_string().as_bytes()).map_err(|e| e.to_string())?;
        let r = registry();
        request.check(&r).map_err(|e| e.to_string())?;
        let mut spool = Spool::create(&std::env::temp_dir(), 1 << 20).await.unwrap();
        write_lines(&request, &r, &mut spool)
            .await
            .map_err(|e| e.to_string())?;
        let text = std::fs::read_to_string(spool.path()).unwrap();
        Ok(text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect())
    }

    #[tokio::test]
    async fn requests_become_openai_batch_lines() {
        let lines = written(json!({"model": "dummy", "requests": [
            {"prompt": "hi", "system_prompt": "be brief", "max_tokens": 5, "temperature": 0.5},
            {"custom_id": "mine", "messages": [{"role": "user", "content": "yo"}]},
        ]}))
        .await
        .unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["custom_id"], "request-1");
        assert_eq!(lines[0]["method"], "POST");
        assert_eq!(lines[0]["url"], CHAT_ENDPOINT);
        assert_eq!(lines[0]["body"]["model"], "dummy");
        assert_eq!(lines[0]["body"]["messages"][0]["role"], "system");
        assert_eq!(lines[0]["body"]["messages"][1]["content"], "hi");
        assert_eq!(lines[0]["body"]["max_tokens"], 5);
        assert_eq!(lines[1]["custom_id"], "mine");
        assert_eq!(lines[1]["body"]["messages"][0]["content"], "yo");
    }

    #[tokio::test]
    async fn refusals_say_which_request_and_why() {
        let cases = [
            (
                json!({"model": "nope", "requests": [{"prompt": "x"}]}),
                "unknown model",
            ),
            (json!({"model": "dummy", "requests": []}), "1 to 50000"),
            (
                json!({"model": "dummy", "requests": [{}]}),
                "requests[0] needs a prompt",
            ),
            (
                json!({"model": "dummy", "requests": [{"prompt": "a", "messages": [1]}]}),
                "both",
            ),
            (
                json!({"model": "dummy", "requests": [{"custom_id": "a", "prompt": "x"},
                    {"custom_id": "a", "prompt": "y"}]}),
                "requests[1].custom_id \"a\" is already used by requests[0]",
            ),
            (
                json!({"model": "dummy", "requests": [{"prompt": "x"}, {"prompt": "y", "custom_id": "request-1"}]}),
                "already used",
            ),
            (
                json!({"model": "dummy", "requests": [{"prompt": "x", "max_tokens": "5"}]}),
                "requests[0].max_tokens",
            ),
            (
                json!({"model": "dummy", "requests": [{"prompt": "x", "temperature": 3}]}),
                "temperature",
            ),
            (
                json!({"model": "dummy", "requests": [{"prompt": "x", "custom_id": "a\u{0}"}]}),
                "requests[0]: custom_id must not contain a NUL",
            ),
            (
                json!({"model": "dummy", "requests": [{"prompt": "x", "promt": "y"}]}),
                "unknown field `promt`",
            ),
            (
                json!({"model": "dummy", "requests": [{"prompt": "x"}], "metadata": {"k": 1}}),
                "must be a string",
            ),
        ];
        for (body, want) in cases {
            let e = written(body.clone()).await.unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
    }
}
