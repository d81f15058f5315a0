//! OpenAI Batches: the converted requests uploaded as a JSONL file (`POST /files`, purpose
//! `batch`), a batch made of it (`POST /batches`, the job's id in its `metadata`), polled
//! (`GET /batches/{id}`), cancelled (`POST /batches/{id}/cancel`), found again by listing
//! (`GET /batches`), and its output and error files read (`GET /files/{id}/content`): their
//! lines are already OpenAI's `BatchRequestOutput` and are written as they come.
//!
//! The base URL is the text provider's (`https://api.openai.com/v1`).

use std::collections::HashSet;
use std::path::Path;

use async_trait::async_trait;
use common::batch::Job;
use common::batch::jsonl;
use common::llm::{Candidate, ChatRequest};
use common::provider::{self, ProviderError};
use common::settings::Secret;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use super::wire::{
    self, BATCH_FAILED, BodyFile, CANCELLED, EXPIRED, Held, JsonLines, Requests, Sent,
};
use super::{BatchApi, Polled, Submitted};
use crate::output::Output;

/// The endpoint every line calls.
const ENDPOINT: &str = "/v1/chat/completions";
/// The `metadata` key holding the job's id.
pub const JOB_KEY: &str = "batch_job_id";
/// Batches per page when looking for a job's.
const PAGE: usize = 100;
/// Pages looked through at most.
const MAX_PAGES: usize = 20;
/// Clock skew allowed between this service and OpenAI when judging that a batch is older than
/// the job (and so not its).
const SKEW_SECS: i64 = 3600;

/// A client of OpenAI's Batch API.
pub struct OpenAiBatches {
    http: reqwest::Client,
    base: String,
    key: Secret,
    held: Held,
}

impl OpenAiBatches {
    /// A client for `base_url` (e.g. `https://api.openai.com/v1`).
    pub fn new(base_url: &str, key: Secret) -> anyhow::Result<Self> {
        Ok(Self {
            http: provider::client()?,
            base: base_url.trim_end_matches('/').to_owned(),
            key,
            held: Held::default(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        provider::send(builder.bearer_auth(self.key.expose()), Some(&self.key)).await
    }

    async fn get_json(&self, path: &str) -> Result<Value, ProviderError> {
        wire::json_body(self.send(self.http.get(self.url(path))).await?).await
    }

    /// A file's content, line by line.
    async fn file_lines(&self, file_id: &str) -> Result<JsonLines, ProviderError> {
        let response = self
            .send(
                self.http
                    .get(self.url(&format!("/files/{file_id}/content"))),
            )
            .await?;
        Ok(JsonLines::new(response))
    }

    async fn upload(&self, job: &Job, file: &wire::TempFile) -> Result<String, ProviderError> {
        let part = Part::stream_with_length(file.body().await?, file.len())
            .file_name(format!("{}.jsonl", job.id))
            .mime_str("application/jsonl")
            .map_err(|e| ProviderError::Protocol(e.to_string()))?;
        let form = Form::new().text("purpose", "batch").part("file", part);
        let response = self
            .send(self.http.post(self.url("/files")).multipart(form))
            .await?;
        let uploaded = wire::json_body(response).await?;
        Ok(wire::required(&uploaded, "id")?.to_owned())
    }
}

/// The Chat Completions body of a line, as the text provider builds it, unstreamed.
fn request_body(request: &ChatRequest) -> Result<Value, ProviderError> {
    common::llm::openai::request_body(request).map(wire::unstreamed)
}

fn submitted(batch: &Value) -> Option<Submitted> {
    Some(Submitted {
        batch_id: batch["id"].as_str()?.to_owned(),
        file_id: batch["input_file_id"].as_str().map(str::to_owned),
    })
}

#[async_trait]
impl BatchApi for OpenAiBatches {
    async fn submit(
        &self,
        job: &Job,
        candidate: &Candidate,
        requests: &Path,
    ) -> Result<Submitted, ProviderError> {
        let mut lines = Requests::open(requests).await?;
        let mut file = BodyFile::create(requests, "openai.jsonl").await?;
        let mut sent = Sent::default();
        let mut any = false;
        while let Some((custom_id, body)) = lines.next().await? {
            match wire::convert(&custom_id, &body, candidate, request_body) {
                Ok(body) => {
                    let line = json!({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body});
                    file.json(&line).await?;
                    file.write(b"\n").await?;
                    any = true;
                }
                Err(line) => sent.refused.push(line),
            }
        }
        let file = file.finish().await?;
        if !any {
            return Ok(Submitted {
                batch_id: self.held.local(sent),
                file_id: None,
            });
        }
        let file_id = self.upload(job, &file).await?;
        drop(file);
        let create = json!({
            "input_file_id": file_id,
            "endpoint": ENDPOINT,
            "completion_window": common::batch::COMPLETION_WINDOW,
            "metadata": {JOB_KEY: job.id},
        });
        let created = match self
            .send(self.http.post(self.url("/batches")).json(&create))
            .await
        {
            Ok(response) => wire::json_body(response).await?,
            Err(e) => {
                // The upload would stay at OpenAI unused; a retried submission uploads again.
                let delete = self.http.delete(self.url(&format!("/files/{file_id}")));
                if let Err(d) = self.send(delete).await {
                    tracing::warn!(error = %d, "the unused batch input file was not deleted");
                }
                return Err(e);
            }
        };
        let batch_id = wire::required(&created, "id")?.to_owned();
        if !sent.refused.is_empty() {
            self.held.keep(&batch_id, sent);
        }
        Ok(Submitted {
            batch_id,
            file_id: Some(file_id),
        })
    }

    async fn find(&self, job: &Job) -> Result<Option<Submitted>, ProviderError> {
        let oldest = job.created_at.timestamp() - SKEW_SECS;
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!("/batches?limit={PAGE}");
            if let Some(a) = &after {
                path.push_str(&format!("&after={a}"));
            }
            let page = self.get_json(&path).await?;
            let data = page["data"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            for batch in data {
                if batch["metadata"][JOB_KEY].as_str() == Some(job.id.as_str()) {
                    return Ok(submitted(batch));
                }
                // Newest first: past the job's creation there is nothing of it.
                if batch["created_at"].as_i64().is_some_and(|t| t < oldest) {
                    return Ok(None);
                }
            }
            match (
                page["has_more"].as_bool(),
                data.last().and_then(|b| b["id"].as_str()),
            ) {
                (Some(true), Some(last)) => after = Some(last.to_owned()),
                _ => return Ok(None),
            }
        }
        tracing::warn!(batch_id = %job.id, "gave up looking for an earlier submission after {MAX_PAGES} pages");
        Ok(None)
    }

    async fn poll(&self, batch_id: &str) -> Result<Polled, ProviderError> {
        if Held::is_local(batch_id) {
            return Ok(self.held.local_poll(batch_id));
        }
        let batch = self.get_json(&format!("/batches/{batch_id}")).await?;
        let status = wire::required(&batch, "status")?.to_owned();
        Ok(Polled {
            ended: matches!(
                status.as_str(),
                "completed" | "failed" | "expired" | "cancelled"
            ),
            completed: wire::count(&batch["request_counts"]["completed"]),
            failed: wire::count(&batch["request_counts"]["failed"]),
            status,
        })
    }

    async fn cancel(&self, batch_id: &str) -> Result<(), ProviderError> {
        if Held::is_local(batch_id) {
            return Ok(());
        }
        let url = self.url(&format!("/batches/{batch_id}/cancel"));
        self.send(self.http.post(url)).await.map(drop)
    }

    async fn results(
        &self,
        batch_id: &str,
        _candidate: &Candidate,
        output: &mut Output,
    ) -> Result<(), ProviderError> {
        if Held::is_local(batch_id) {
            return self.held.local_results(batch_id, output).await;
        }
        let batch = self.get_json(&format!("/batches/{batch_id}")).await?;
        let status = batch["status"].as_str().unwrap_or_default();
        // A batch that did not complete may leave requests out of both files.
        let complete = status == "completed";
        let mut seen = HashSet::new();
        for file_id in [&batch["output_file_id"], &batch["error_file_id"]]
            .into_iter()
            .filter_map(Value::as_str)
        {
            let mut lines = self.file_lines(file_id).await?;
            while let Some(line) = lines.next().await? {
                let Some(custom_id) = line["custom_id"].as_str() else {
                    return Err(ProviderError::Protocol(
                        "a results line has no custom_id".into(),
                    ));
                };
                let ok = line["response"]["status_code"].as_u64() == Some(200)
                    && line["error"].is_null();
                if !complete {
                    seen.insert(custom_id.to_owned());
                }
                output
                    .push(ok, &line.to_string())
                    .await
                    .map_err(wire::output_error)?;
            }
        }
        if !complete && let Some(input) = batch["input_file_id"].as_str() {
            let reason = batch["errors"]["data"][0]["message"]
                .as_str()
                .map(|m| format!("the provider's batch failed: {m}"));
            let (code, message) = match (status, &reason) {
                ("expired", _) => EXPIRED,
                ("failed", Some(m)) => (BATCH_FAILED, m.as_str()),
                ("failed", None) => (BATCH_FAILED, "the provider's batch failed"),
                _ => CANCELLED,
            };
            let mut lines = self.file_lines(input).await?;
            while let Some(line) = lines.next().await? {
                if let Some(id) = line["custom_id"].as_str()
                    && !seen.contains(id)
                {
                    let line = jsonl::failed_line(id, code, message);
                    output
                        .push(false, &line)
                        .await
                        .map_err(wire::output_error)?;
                }
            }
        }
        wire::finish(
            output,
            self.held.get(batch_id).as_ref(),
            &HashSet::new(),
            CANCELLED,
        )
        .await?;
        self.held.forget(batch_id);
        Ok(())
    }
}
