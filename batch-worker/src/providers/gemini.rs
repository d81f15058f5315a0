//! Gemini Batch Mode: the converted requests streamed from a spool file as inline requests of
//! `POST /v1beta/models/{model}:batchGenerateContent` (each with `metadata.key` = its
//! `custom_id`, the batch's `display_name` = the job's id), followed as the long-running
//! operation `batches/{id}` (`GET /v1beta/batches/{id}`: `metadata.state`, `batchStats`),
//! cancelled (`POST /v1beta/batches/{id}:cancel`), found again by listing (`GET /v1beta/batches`)
//! and read once done: each inlined `GenerateContentResponse` becomes an OpenAI chat completion,
//! each inlined error an error-file line.
//!
//! Inline requests are limited in size (20 MB); a larger job runs line by line.

use std::collections::HashSet;
use std::path::Path;

use async_trait::async_trait;
use chrono::DateTime;
use common::batch::Job;
use common::batch::jsonl;
use common::llm::{Candidate, ChatRequest};
use common::provider::{self, ProviderError};
use common::settings::Secret;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{Value, json};
use uuid::Uuid;

use super::wire::{self, Answer, BATCH_FAILED, BodyFile, CANCELLED, EXPIRED, Held, Requests, Sent};
use super::{BatchApi, Polled, Submitted};
use crate::output::Output;

/// Batches per page when looking for a job's.
const PAGE: usize = 100;
/// Pages looked through at most.
const MAX_PAGES: usize = 20;
/// Clock skew allowed between this service and Google when judging that a batch is older than
/// the job (and so not its).
const SKEW_SECS: i64 = 3600;

/// A client of the Gemini API's Batch Mode.
pub struct GeminiBatches {
    http: reqwest::Client,
    base: String,
    key: Secret,
    inline_max_bytes: usize,
    held: Held,
}

impl GeminiBatches {
    /// A client for `base_url` (e.g. `https://generativelanguage.googleapis.com`) taking jobs of
    /// up to `inline_max_bytes` (the inline requests' limit).
    pub fn new(base_url: &str, key: Secret, inline_max_bytes: usize) -> anyhow::Result<Self> {
        Ok(Self {
            http: provider::client()?,
            base: base_url.trim_end_matches('/').to_owned(),
            key,
            inline_max_bytes,
            held: Held::default(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1beta/{path}", self.base)
    }

    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        provider::send(
            builder.header("x-goog-api-key", self.key.expose()),
            Some(&self.key),
        )
        .await
    }

    async fn get_json(&self, path: &str) -> Result<Value, ProviderError> {
        wire::json_body(self.send(self.http.get(self.url(path))).await?).await
    }
}

/// The `generateContent` body of a line, as the text provider builds it.
fn request_body(request: &ChatRequest) -> Result<Value, ProviderError> {
    common::llm::gemini::request_body(request)
}

/// A batch state without its prefix (`BATCH_STATE_` in REST, `JOB_STATE_` in the SDKs).
fn state(operation: &Value) -> &str {
    let state = operation["metadata"]["state"].as_str().unwrap_or_default();
    state
        .strip_prefix("BATCH_STATE_")
        .or_else(|| state.strip_prefix("JOB_STATE_"))
        .unwrap_or(state)
}

fn ended(operation: &Value) -> bool {
    operation["done"].as_bool() == Some(true)
        || matches!(
            state(operation),
            "SUCCEEDED" | "FAILED" | "CANCELLED" | "EXPIRED"
        )
}

/// The HTTP status of a `google.rpc.Status` code (an HTTP status is kept as it is).
fn http_status(code: u64) -> u16 {
    match code {
        100..=599 => u16::try_from(code).unwrap_or(500),
        3 | 9 | 11 => 400,
        16 => 401,
        7 => 403,
        5 => 404,
        6 | 10 => 409,
        8 => 429,
        4 => 504,
        14 => 503,
        _ => 500,
    }
}

/// An inlined `GenerateContentResponse` as an answer.
fn answer(response: &Value, candidate: &Candidate) -> Answer {
    let mut a = Answer {
        model: response["modelVersion"]
            .as_str()
            .unwrap_or(&candidate.upstream)
            .to_owned(),
        ..Answer::default()
    };
    let first = &response["candidates"][0];
    for part in first["content"]["parts"].as_array().into_iter().flatten() {
        if let Some(text) = part["text"].as_str()
            && part["thought"] != true
        {
            a.text.push_str(text);
        }
        if let Some(call) = part.get("functionCall") {
            a.tool_calls.push((
                format!("call_{}", a.tool_calls.len()),
                call["name"].as_str().unwrap_or_default().to_owned(),
                call["args"].to_string(),
            ));
        }
    }
    a.finish = match first["finishReason"].as_str() {
        None if first.is_null() => "content_filter",
        Some("STOP") | None if !a.tool_calls.is_empty() => "tool_calls",
        Some("STOP") | None => "stop",
        Some("MAX_TOKENS") => "length",
        Some(_) => "content_filter",
    }
    .to_owned();
    let usage = &response["usageMetadata"];
    let tokens = |k: &str| usage[k].as_u64().unwrap_or(0);
    a.prompt_tokens = tokens("promptTokenCount");
    a.completion_tokens = tokens("candidatesTokenCount") + tokens("thoughtsTokenCount");
    a
}

#[async_trait]
impl BatchApi for GeminiBatches {
    async fn submit(
        &self,
        job: &Job,
        candidate: &Candidate,
        requests: &Path,
    ) -> Result<Submitted, ProviderError> {
        let mut lines = Requests::open(requests).await?;
        let mut file = BodyFile::create(requests, "gemini.json").await?;
        let mut sent = Sent::default();
        // `{"batch":{"display_name":…,"input_config":{"requests":{"requests":[…]}}}}`
        let head = format!(
            r#"{{"batch":{{"display_name":{},"input_config":{{"requests":{{"requests":["#,
            Value::String(job.id.clone())
        );
        file.write(head.as_bytes()).await?;
        while let Some((custom_id, body)) = lines.next().await? {
            match wire::convert(&custom_id, &body, candidate, request_body) {
                Ok(request) => {
                    if !sent.ids.is_empty() {
                        file.write(b",").await?;
                    }
                    let item = json!({"request": request, "metadata": {"key": custom_id}});
                    file.json(&item).await?;
                    sent.ids.push(custom_id);
                }
                Err(line) => sent.refused.push(line),
            }
        }
        file.write(b"]}}}}").await?;
        let file = file.finish().await?;
        if sent.ids.is_empty() {
            return Ok(Submitted {
                batch_id: self.held.local(sent),
                file_id: None,
            });
        }
        let url = self.url(&format!(
            "models/{}:batchGenerateContent",
            candidate.upstream
        ));
        let request = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, file.len())
            .body(file.body().await?);
        let operation = wire::json_body(self.send(request).await?).await?;
        let batch_id = wire::required(&operation, "name")?.to_owned();
        self.held.keep(&batch_id, sent);
        Ok(Submitted {
            batch_id,
            file_id: None,
        })
    }

    fn max_input_bytes(&self) -> Option<u64> {
        Some(self.inline_max_bytes as u64)
    }

    async fn find(&self, job: &Job) -> Result<Option<Submitted>, ProviderError> {
        let oldest = job.created_at.timestamp() - SKEW_SECS;
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!("batches?pageSize={PAGE}");
            if let Some(t) = &token {
                path.push_str(&format!("&pageToken={t}"));
            }
            let page = self.get_json(&path).await?;
            for operation in page["operations"].as_array().into_iter().flatten() {
                let metadata = &operation["metadata"];
                if metadata["displayName"].as_str() == Some(job.id.as_str())
                    && let Some(name) = operation["name"].as_str()
                {
                    return Ok(Some(Submitted {
                        batch_id: name.to_owned(),
                        file_id: None,
                    }));
                }
                // Newest first: past the job's creation there is nothing of it.
                let created = metadata["createTime"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                if created.is_some_and(|t| t.timestamp() < oldest) {
                    return Ok(None);
                }
            }
            match page["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t.to_owned()),
                None => return Ok(None),
            }
        }
        tracing::warn!(batch_id = %job.id, "gave up looking for an earlier submission after {MAX_PAGES} pages");
        Ok(None)
    }

    async fn poll(&self, batch_id: &str) -> Result<Polled, ProviderError> {
        if Held::is_local(batch_id) {
            return Ok(self.held.local_poll(batch_id));
        }
        let operation = self.get_json(batch_id).await?;
        let stats = &operation["metadata"]["batchStats"];
        Ok(Polled {
            ended: ended(&operation),
            status: operation["metadata"]["state"]
                .as_str()
                .unwrap_or("BATCH_STATE_UNSPECIFIED")
                .to_owned(),
            completed: wire::count(&stats["successfulRequestCount"]),
            failed: wire::count(&stats["failedRequestCount"]),
        })
    }

    async fn cancel(&self, batch_id: &str) -> Result<(), ProviderError> {
        if Held::is_local(batch_id) {
            return Ok(());
        }
        let url = self.url(&format!("{batch_id}:cancel"));
        self.send(self.http.post(url).json(&json!({})))
            .await
            .map(drop)
    }

    async fn results(
        &self,
        batch_id: &str,
        candidate: &Candidate,
        output: &mut Output,
    ) -> Result<(), ProviderError> {
        if Held::is_local(batch_id) {
            return self.held.local_results(batch_id, output).await;
        }
        let sent = self.held.get(batch_id);
        let operation = self.get_json(batch_id).await?;
        let inlined = |v: &Value| {
            v["inlinedResponses"]["inlinedResponses"]
                .as_array()
                .cloned()
        };
        let responses = inlined(&operation["response"])
            .or_else(|| inlined(&operation["metadata"]["output"]))
            .unwrap_or_default();
        let mut seen = HashSet::new();
        for (i, item) in responses.iter().enumerate() {
            // Responses come in request order; the key says whose each is.
            let id = match &item["metadata"]["key"] {
                Value::String(key) => key.clone(),
                _ => match sent.as_ref().and_then(|s| s.ids.get(i)) {
                    Some(id) => id.clone(),
                    None => {
                        tracing::warn!(
                            batch_id,
                            index = i,
                            "a batch response without its key; left out"
                        );
                        continue;
                    }
                },
            };
            let request_id = item["response"]["responseId"]
                .as_str()
                .map_or_else(|| format!("req_{}", Uuid::now_v7().simple()), str::to_owned);
            let (ok, line) = if let Some(response) = item.get("response").filter(|r| r.is_object())
            {
                let body = answer(response, candidate).completion();
                (true, jsonl::success_line(&id, &request_id, &body))
            } else {
                let error = &item["error"];
                let message = error["message"].as_str().unwrap_or("the request failed");
                let status = http_status(error["code"].as_u64().unwrap_or(13));
                let e = wire::request_error(status, message, &self.key);
                (false, wire::error_line(&id, &request_id, &e))
            };
            output.push(ok, &line).await.map_err(wire::output_error)?;
            seen.insert(id);
        }
        let failure = operation["error"]["message"]
            .as_str()
            .map(|m| format!("the provider's batch failed: {m}"));
        let missing = match (state(&operation), &failure) {
            ("EXPIRED", _) => EXPIRED,
            ("FAILED", Some(m)) => (BATCH_FAILED, m.as_str()),
            ("FAILED", None) => (BATCH_FAILED, "the provider's batch failed"),
            ("SUCCEEDED", _) => (
                BATCH_FAILED,
                "the provider returned no result for this request",
            ),
            // Cancelled, or read after a cancel the provider did not finish in time.
            _ => CANCELLED,
        };
        wire::finish(output, sent.as_ref(), &seen, missing).await?;
        self.held.forget(batch_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate() -> Candidate {
        let registry = common::models::ModelRegistry::load(None).unwrap();
        let providers = common::llm::Providers::new(
            registry,
            &Default::default(),
            common::llm::DummySettings::default(),
        )
        .unwrap();
        providers.plan(Some("dummy")).unwrap().candidates.remove(0)
    }

    #[test]
    fn a_response_becomes_a_chat_completion_answer() {
        let response = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking…", "thought": true},
                {"text": "Sunny "},
                {"functionCall": {"name": "weather", "args": {"location": "Paris"}}},
            ]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 3, "thoughtsTokenCount": 2},
            "modelVersion": "gemini-2.5-flash",
        });
        let a = answer(&response, &candidate());
        assert_eq!(a.text, "Sunny ");
        assert_eq!(a.finish, "tool_calls");
        assert_eq!(
            a.tool_calls,
            [(
                "call_0".to_owned(),
                "weather".to_owned(),
                r#"{"location":"Paris"}"#.to_owned()
            )]
        );
        assert_eq!((a.prompt_tokens, a.completion_tokens), (4, 5));
        let cut = json!({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS"}]});
        assert_eq!(answer(&cut, &candidate()).finish, "length");
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
        assert_eq!(answer(&blocked, &candidate()).finish, "content_filter");
    }

    #[test]
    fn states_and_codes() {
        let op = |s: &str| json!({"metadata": {"state": s}});
        assert!(ended(&op("BATCH_STATE_SUCCEEDED")) && ended(&op("JOB_STATE_CANCELLED")));
        assert!(!ended(&op("BATCH_STATE_RUNNING")) && !ended(&op("BATCH_STATE_PENDING")));
        assert_eq!(state(&op("BATCH_STATE_EXPIRED")), "EXPIRED");
        assert_eq!(
            (
                http_status(3),
                http_status(8),
                http_status(13),
                http_status(404)
            ),
            (400, 429, 500, 404)
        );
    }
}
