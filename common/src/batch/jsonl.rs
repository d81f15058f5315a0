//! The lines of a batch: the rules an input line must meet (OpenAI's), and the lines of the
//! output and error files.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::models::ModelRegistry;

/// The longest `custom_id`, characters.
pub const MAX_CUSTOM_ID_CHARS: usize = 512;

/// Why one input line is refused; the job's `errors.data[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// A stable code (`invalid_json_line`, `duplicate_custom_id`, …).
    pub code: &'static str,
    /// The line's number in the file, from 1.
    pub line: usize,
    /// What is wrong, for a person.
    pub message: String,
    /// The field at fault, when one is.
    pub param: Option<&'static str>,
}

/// A line that passed the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The caller's id for it, unique in the file.
    pub custom_id: String,
    /// The request body (an OpenAI chat completion request).
    pub body: Value,
}

/// Checks lines one after another: each on its own, and together (unique `custom_id`s, one
/// model). Blank lines are skipped and not counted.
#[derive(Debug)]
pub struct Checker<'a> {
    endpoint: &'a str,
    registry: &'a ModelRegistry,
    seen: HashSet<String>,
    /// Whether `custom_id`s are remembered to refuse duplicates (the check before a run); a run
    /// over a file already checked reads it without, so its memory does not grow with the file.
    unique: bool,
    model: Option<String>,
}

fn refuse(
    code: &'static str,
    line: usize,
    param: Option<&'static str>,
    message: impl Into<String>,
) -> LineError {
    LineError {
        code,
        line,
        message: message.into(),
        param,
    }
}

impl<'a> Checker<'a> {
    /// A checker for a file whose lines call `endpoint`, models known to `registry`.
    pub fn new(endpoint: &'a str, registry: &'a ModelRegistry) -> Self {
        Self {
            endpoint,
            registry,
            seen: HashSet::new(),
            unique: true,
            model: None,
        }
    }

    /// A checker for a file checked before: every rule but the uniqueness of `custom_id`s,
    /// which would keep every id in memory.
    pub fn rereading(endpoint: &'a str, registry: &'a ModelRegistry) -> Self {
        Self {
            unique: false,
            ..Self::new(endpoint, registry)
        }
    }

    /// The model every line named (the first line's), once a line passed.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Checks line number `n` (from 1). `Ok(None)`: a blank line.
    pub fn check(&mut self, n: usize, raw: &str) -> Result<Option<Line>, LineError> {
        let raw = raw.trim_end_matches(['\r', '\n']);
        if raw.trim().is_empty() {
            return Ok(None);
        }
        let value: Value = serde_json::from_str(raw).map_err(|e| {
            refuse(
                "invalid_json_line",
                n,
                None,
                format!("line {n} is not valid JSON: {e}"),
            )
        })?;
        let Value::Object(mut map) = value else {
            return Err(refuse(
                "invalid_json_line",
                n,
                None,
                format!("line {n} must be a JSON object"),
            ));
        };
        let custom_id = match map.get("custom_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(refuse(
                    "missing_required_parameter",
                    n,
                    Some("custom_id"),
                    format!("line {n}: custom_id must be a non-empty string"),
                ));
            }
        };
        if let Err(m) = crate::text::check("custom_id", &custom_id, MAX_CUSTOM_ID_CHARS) {
            return Err(refuse(
                "invalid_request",
                n,
                Some("custom_id"),
                format!("line {n}: {m}"),
            ));
        }
        match map.get("method").and_then(Value::as_str) {
            Some("POST") => {}
            _ => {
                return Err(refuse(
                    "invalid_request",
                    n,
                    Some("method"),
                    format!("line {n}: method must be \"POST\""),
                ));
            }
        }
        match map.get("url").and_then(Value::as_str) {
            Some(url) if url == self.endpoint => {}
            _ => {
                return Err(refuse(
                    "invalid_url",
                    n,
                    Some("url"),
                    format!(
                        "line {n}: url must be {:?}, the batch's endpoint",
                        self.endpoint
                    ),
                ));
            }
        }
        let Some(Value::Object(body)) = map.remove("body") else {
            return Err(refuse(
                "missing_required_parameter",
                n,
                Some("body"),
                format!("line {n}: body must be a JSON object"),
            ));
        };
        let Some(model) = body.get("model").and_then(Value::as_str) else {
            return Err(refuse(
                "missing_required_parameter",
                n,
                Some("body.model"),
                format!("line {n}: body.model must be a string"),
            ));
        };
        if let Err(e) = self.registry.resolve(Some(model)) {
            return Err(refuse(
                "model_not_found",
                n,
                Some("body.model"),
                format!("line {n}: {e}"),
            ));
        }
        match &self.model {
            None => self.model = Some(model.to_owned()),
            Some(first) if first != model => {
                return Err(refuse(
                    "mismatched_model",
                    n,
                    Some("body.model"),
                    format!(
                        "line {n}: every line of a batch must use one model; the first line uses {first:?}, this one {model:?}"
                    ),
                ));
            }
            Some(_) => {}
        }
        match body.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => {}
            _ => {
                return Err(refuse(
                    "missing_required_parameter",
                    n,
                    Some("body.messages"),
                    format!("line {n}: body.messages must be a non-empty array"),
                ));
            }
        }
        if body.get("stream").and_then(Value::as_bool) == Some(true) {
            return Err(refuse(
                "invalid_request",
                n,
                Some("body.stream"),
                format!("line {n}: a batch line cannot stream"),
            ));
        }
        if self.unique && !self.seen.insert(custom_id.clone()) {
            return Err(refuse(
                "duplicate_custom_id",
                n,
                Some("custom_id"),
                format!("line {n}: custom_id {custom_id:?} is used by an earlier line"),
            ));
        }
        Ok(Some(Line {
            custom_id,
            body: Value::Object(body),
        }))
    }
}

/// The output-file line of a request the provider answered (`status_code` 200).
pub fn success_line(custom_id: &str, request_id: &str, body: &Value) -> String {
    json!({
        "id": format!("batch_req_{}", Uuid::now_v7().simple()),
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": request_id, "body": body},
        "error": null,
    })
    .to_string()
}

/// The error-file line of a request the provider refused with an HTTP status.
pub fn refused_line(
    custom_id: &str,
    request_id: &str,
    status_code: u16,
    code: &str,
    message: &str,
) -> String {
    json!({
        "id": format!("batch_req_{}", Uuid::now_v7().simple()),
        "custom_id": custom_id,
        "response": {
            "status_code": status_code,
            "request_id": request_id,
            "body": {"error": {"message": message, "type": "invalid_request_error", "code": code}},
        },
        "error": null,
    })
    .to_string()
}

/// The error-file line of a request that got no answer (`batch_cancelled`, `batch_expired`, a
/// provider that could not be reached).
pub fn failed_line(custom_id: &str, code: &str, message: &str) -> String {
    json!({
        "id": format!("batch_req_{}", Uuid::now_v7().simple()),
        "custom_id": custom_id,
        "response": null,
        "error": {"code": code, "message": message},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ModelRegistry {
        ModelRegistry::load(None).expect("embedded registry")
    }

    fn line(id: &str, model: &str) -> String {
        json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions",
               "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]}})
        .to_string()
    }

    #[test]
    fn a_good_file_passes_and_blank_lines_are_skipped() {
        let r = registry();
        let mut c = Checker::new("/v1/chat/completions", &r);
        let a = c.check(1, &line("a", "dummy")).unwrap().unwrap();
        assert_eq!(a.custom_id, "a");
        assert_eq!(c.check(2, "  \r\n").unwrap(), None);
        assert!(c.check(3, &line("b", "dummy")).unwrap().is_some());
        assert_eq!(c.model(), Some("dummy"));
    }

    #[test]
    fn each_rule_names_the_line_and_the_field() {
        let r = registry();
        let mut c = Checker::new("/v1/chat/completions", &r);
        c.check(1, &line("a", "dummy")).unwrap();
        let cases = [
            ("{not json", "invalid_json_line"),
            ("[1]", "invalid_json_line"),
            (&line("a", "dummy"), "duplicate_custom_id"),
            (&line("z", "no-such-model"), "model_not_found"),
            (&line("y", "gpt-4o-mini"), "mismatched_model"),
            (
                &line("x", "dummy").replace("POST", "GET"),
                "invalid_request",
            ),
            (
                &line("w", "dummy").replace("/v1/chat/completions", "/v1/embeddings"),
                "invalid_url",
            ),
            (
                r#"{"custom_id":"v","method":"POST","url":"/v1/chat/completions","body":{"model":"dummy"}}"#,
                "missing_required_parameter",
            ),
            (
                r#"{"method":"POST","url":"/v1/chat/completions","body":{}}"#,
                "missing_required_parameter",
            ),
        ];
        for (i, (raw, code)) in cases.iter().enumerate() {
            let e = c.check(i + 2, raw).unwrap_err();
            assert_eq!(e.code, *code, "{raw}");
            assert_eq!(e.line, i + 2);
            assert!(
                e.message.starts_with(&format!("line {}", i + 2)),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn output_lines_have_openais_shape() {
        let ok: Value =
            serde_json::from_str(&success_line("a", "req_1", &json!({"x": 1}))).unwrap();
        assert_eq!(ok["response"]["status_code"], 200);
        assert_eq!(ok["response"]["body"]["x"], 1);
        assert!(ok["error"].is_null());
        let failed: Value =
            serde_json::from_str(&failed_line("b", "batch_cancelled", "cancelled")).unwrap();
        assert!(failed["response"].is_null());
        assert_eq!(failed["error"]["code"], "batch_cancelled");
    }
}
