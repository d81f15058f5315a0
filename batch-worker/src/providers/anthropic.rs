//! Anthropic Message Batches: the converted requests streamed from a spool file as
//! `POST /v1/messages/batches` `{"requests": [{"custom_id", "params"}]}`, polled
//! (`GET /v1/messages/batches/{id}`: `processing_status`, `request_counts`), cancelled
//! (`POST …/{id}/cancel`), and their results read as JSONL once ended: `succeeded` messages
//! become OpenAI chat completions, `errored` requests error-file lines, `canceled` and `expired`
//! ones `batch_cancelled` / `batch_expired`. Batches carry no metadata, so an earlier run's
//! submission cannot be found again.
//!
//! Anthropic takes `custom_id`s of 1–64 characters of `[a-zA-Z0-9_-]` only; another id (OpenAI
//! takes any string up to 512 characters) travels base64url-encoded behind `b64-`, or, if even
//! that is too long, as `idx-{n}` with its real id kept in this process until the results are
//! read.

use std::collections::HashSet;
use std::path::Path;

use async_trait::async_trait;
use common::batch::Job;
use common::batch::jsonl;
use common::llm::{Candidate, ChatRequest};
use common::provider::{self, ProviderError};
use common::settings::Secret;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{Value, json};
use uuid::Uuid;

use super::wire::{
    self, Answer, BATCH_FAILED, BodyFile, CANCELLED, EXPIRED, Held, JsonLines, Requests, Sent,
};
use super::{BatchApi, Polled, Submitted};
use crate::output::Output;

/// The API version this client speaks (the text provider's).
const VERSION: &str = "2023-06-01";
/// Prefix of a `custom_id` sent base64url-encoded.
const ENCODED: &str = "b64-";
/// Prefix of a `custom_id` sent as its position.
const ALIAS: &str = "idx-";
/// The longest `custom_id` Anthropic takes.
const MAX_ID: usize = 64;

/// A client of Anthropic's Message Batches API.
pub struct AnthropicBatches {
    http: reqwest::Client,
    base: String,
    key: Secret,
    held: Held,
}

impl AnthropicBatches {
    /// A client for `base_url` (e.g. `https://api.anthropic.com`).
    pub fn new(base_url: &str, key: Secret) -> anyhow::Result<Self> {
        Ok(Self {
            http: provider::client()?,
            base: base_url.trim_end_matches('/').to_owned(),
            key,
            held: Held::default(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/messages/batches{path}", self.base)
    }

    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let builder = builder
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", VERSION);
        provider::send(builder, Some(&self.key)).await
    }

    async fn batch(&self, batch_id: &str) -> Result<Value, ProviderError> {
        let response = self
            .send(self.http.get(self.url(&format!("/{batch_id}"))))
            .await?;
        wire::json_body(response).await
    }
}

/// The Messages body of a line, as the text provider builds it, unstreamed.
fn request_body(request: &ChatRequest) -> Result<Value, ProviderError> {
    common::llm::anthropic::request_body(request).map(wire::unstreamed)
}

fn valid_id(id: &str) -> bool {
    (1..=MAX_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The `custom_id` sent for ours (the `index`th request sent), and whether it must be kept to be
/// read back.
fn provider_id(ours: &str, index: usize) -> (String, bool) {
    if valid_id(ours) && !ours.starts_with(ENCODED) && !ours.starts_with(ALIAS) {
        return (ours.to_owned(), false);
    }
    let encoded = format!("{ENCODED}{}", base64url::encode(ours.as_bytes()));
    if encoded.len() <= MAX_ID {
        (encoded, false)
    } else {
        (format!("{ALIAS}{index}"), true)
    }
}

/// Our `custom_id` for the one sent.
fn our_id(theirs: &str, sent: Option<&Sent>) -> String {
    if let Some(ours) = sent.and_then(|s| s.aliases.get(theirs)) {
        return ours.clone();
    }
    theirs
        .strip_prefix(ENCODED)
        .and_then(base64url::decode)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| theirs.to_owned())
}

/// OpenAI's `finish_reason` for a `stop_reason`.
fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// A `succeeded` result's Message as an answer.
fn answer(message: &Value, candidate: &Candidate) -> Answer {
    let mut a = Answer {
        model: message["model"]
            .as_str()
            .unwrap_or(&candidate.upstream)
            .to_owned(),
        ..Answer::default()
    };
    for block in message["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => a.text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => a.tool_calls.push((
                block["id"].as_str().unwrap_or_default().to_owned(),
                block["name"].as_str().unwrap_or_default().to_owned(),
                block["input"].to_string(),
            )),
            _ => {}
        }
    }
    a.finish = match message["stop_reason"].as_str() {
        Some(r) => finish_reason(r),
        None if a.tool_calls.is_empty() => "stop",
        None => "tool_calls",
    }
    .to_owned();
    let usage = &message["usage"];
    let tokens = |k: &str| usage[k].as_u64().unwrap_or(0);
    // OpenAI's prompt tokens include the cached ones; Anthropic counts them apart.
    a.prompt_tokens = tokens("input_tokens")
        + tokens("cache_creation_input_tokens")
        + tokens("cache_read_input_tokens");
    a.completion_tokens = tokens("output_tokens");
    a
}

/// The HTTP status of an Anthropic error type.
fn error_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

#[async_trait]
impl BatchApi for AnthropicBatches {
    async fn submit(
        &self,
        _job: &Job,
        candidate: &Candidate,
        requests: &Path,
    ) -> Result<Submitted, ProviderError> {
        let mut lines = Requests::open(requests).await?;
        let mut file = BodyFile::create(requests, "anthropic.json").await?;
        let mut sent = Sent::default();
        file.write(br#"{"requests":["#).await?;
        while let Some((custom_id, body)) = lines.next().await? {
            match wire::convert(&custom_id, &body, candidate, request_body) {
                Ok(params) => {
                    let (theirs, keep) = provider_id(&custom_id, sent.ids.len());
                    if !sent.ids.is_empty() {
                        file.write(b",").await?;
                    }
                    file.json(&json!({"custom_id": theirs, "params": params}))
                        .await?;
                    if keep {
                        sent.aliases.insert(theirs, custom_id.clone());
                    }
                    sent.ids.push(custom_id);
                }
                Err(line) => sent.refused.push(line),
            }
        }
        file.write(b"]}").await?;
        let file = file.finish().await?;
        if sent.ids.is_empty() {
            return Ok(Submitted {
                batch_id: self.held.local(sent),
                file_id: None,
            });
        }
        let request = self
            .http
            .post(self.url(""))
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, file.len())
            .body(file.body().await?);
        let created = wire::json_body(self.send(request).await?).await?;
        let batch_id = wire::required(&created, "id")?.to_owned();
        self.held.keep(&batch_id, sent);
        Ok(Submitted {
            batch_id,
            file_id: None,
        })
    }

    async fn find(&self, _job: &Job) -> Result<Option<Submitted>, ProviderError> {
        // Message batches carry nothing of the job to recognise them by.
        Ok(None)
    }

    async fn poll(&self, batch_id: &str) -> Result<Polled, ProviderError> {
        if Held::is_local(batch_id) {
            return Ok(self.held.local_poll(batch_id));
        }
        let batch = self.batch(batch_id).await?;
        let status = wire::required(&batch, "processing_status")?.to_owned();
        let counts = &batch["request_counts"];
        let failed = wire::count(&counts["errored"])
            .saturating_add(wire::count(&counts["canceled"]))
            .saturating_add(wire::count(&counts["expired"]));
        Ok(Polled {
            ended: status == "ended",
            completed: wire::count(&counts["succeeded"]),
            failed,
            status,
        })
    }

    async fn cancel(&self, batch_id: &str) -> Result<(), ProviderError> {
        if Held::is_local(batch_id) {
            return Ok(());
        }
        let url = self.url(&format!("/{batch_id}/cancel"));
        self.send(self.http.post(url)).await.map(drop)
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
        let batch = self.batch(batch_id).await?;
        let ended = batch["processing_status"].as_str() == Some("ended");
        let mut seen = HashSet::new();
        if ended {
            // The results URL is the API's own; the key goes nowhere else.
            let own = self.url(&format!("/{batch_id}/results"));
            let url = batch["results_url"]
                .as_str()
                .filter(|u| u.starts_with(&format!("{}/", self.base)))
                .unwrap_or(&own);
            let mut lines = JsonLines::new(self.send(self.http.get(url)).await?);
            while let Some(line) = lines.next().await? {
                let Some(theirs) = line["custom_id"].as_str() else {
                    return Err(ProviderError::Protocol(
                        "a results line has no custom_id".into(),
                    ));
                };
                let id = our_id(theirs, sent.as_ref());
                let result = &line["result"];
                let (ok, text) = match result["type"].as_str() {
                    Some("succeeded") => {
                        let message = &result["message"];
                        let request_id = message["id"].as_str().map_or_else(
                            || format!("req_{}", Uuid::now_v7().simple()),
                            str::to_owned,
                        );
                        let body = answer(message, candidate).completion();
                        (true, jsonl::success_line(&id, &request_id, &body))
                    }
                    Some("errored") => {
                        let error = &result["error"]["error"];
                        let kind = error["type"].as_str().unwrap_or("api_error");
                        let message = error["message"].as_str().unwrap_or(kind);
                        let e = wire::request_error(error_status(kind), message, &self.key);
                        let request_id = format!("req_{}", Uuid::now_v7().simple());
                        (false, wire::error_line(&id, &request_id, &e))
                    }
                    Some("canceled") => (false, jsonl::failed_line(&id, CANCELLED.0, CANCELLED.1)),
                    Some("expired") => (false, jsonl::failed_line(&id, EXPIRED.0, EXPIRED.1)),
                    other => {
                        let message = format!(
                            "the provider gave an unknown result ({})",
                            other.unwrap_or("none")
                        );
                        (false, jsonl::failed_line(&id, BATCH_FAILED, &message))
                    }
                };
                output.push(ok, &text).await.map_err(wire::output_error)?;
                seen.insert(id);
            }
        }
        // Unended: read after a cancel the provider did not finish in time.
        let missing = if ended {
            (
                BATCH_FAILED,
                "the provider returned no result for this request",
            )
        } else {
            CANCELLED
        };
        wire::finish(output, sent.as_ref(), &seen, missing).await?;
        self.held.forget(batch_id);
        Ok(())
    }
}

/// Base64url without padding: the alphabet of Anthropic's `custom_id`s.
mod base64url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        if text.len() % 4 == 1 {
            return None;
        }
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        for chunk in text.as_bytes().chunks(4) {
            let mut n = 0u32;
            for (i, c) in chunk.iter().enumerate() {
                let v = ALPHABET.iter().position(|a| a == c)?;
                n |= (v as u32) << (18 - 6 * i);
            }
            for i in 0..chunk.len() - 1 {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_anthropic_refuses_travel_encoded_or_aliased() {
        assert_eq!(provider_id("req-1_a", 0), ("req-1_a".to_owned(), false));
        for ours in ["doc.1", "a b/c:d", "b64-x", "idx-3", "é", "x"] {
            let (theirs, keep) = provider_id(ours, 7);
            assert!(valid_id(&theirs), "{theirs}");
            assert!(!keep);
            assert_eq!(our_id(&theirs, None), ours);
        }
        let long = "a.".repeat(100);
        let (theirs, keep) = provider_id(&long, 7);
        assert_eq!((theirs.as_str(), keep), ("idx-7", true));
        let mut sent = Sent::default();
        sent.aliases.insert(theirs.clone(), long.clone());
        assert_eq!(our_id(&theirs, Some(&sent)), long);
        // An id that merely looks encoded is read as it is.
        assert_eq!(our_id("b64-!!", None), "b64-!!");
    }

    #[test]
    fn base64url_round_trips() {
        for text in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "\u{ff}\u{fe}?>",
        ] {
            let encoded = base64url::encode(text.as_bytes());
            assert!(!encoded.contains('='));
            assert_eq!(base64url::decode(&encoded).unwrap(), text.as_bytes());
        }
        assert_eq!(base64url::encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url::encode(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn a_message_becomes_a_chat_completion_answer() {
        let message = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"location": "Paris"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7},
        });
        let registry = common::models::ModelRegistry::load(None).unwrap();
        let providers = common::llm::Providers::new(
            registry,
            &Default::default(),
            common::llm::DummySettings::default(),
        )
        .unwrap();
        let candidate = providers.plan(Some("dummy")).unwrap().candidates.remove(0);
        let body = answer(&message, &candidate).completion();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "claude-x");
        let choice = &body["choices"][0];
        assert_eq!(choice["message"]["content"], "Let me check.");
        assert_eq!(choice["finish_reason"], "tool_calls");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["id"], "toolu_1");
        assert_eq!(call["function"]["name"], "weather");
        assert_eq!(call["function"]["arguments"], r#"{"location":"Paris"}"#);
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 15, "completion_tokens": 7, "total_tokens": 22})
        );
        for (reason, finish) in [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("stop_sequence", "stop"),
        ] {
            let m = json!({"content": [], "stop_reason": reason});
            assert_eq!(answer(&m, &candidate).finish, finish);
        }
    }
}
