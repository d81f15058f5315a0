//! What the three batch clients share: reading the job's spool file of OpenAI batch lines,
//! converting each line with the text provider layer's request builders, writing the converted
//! requests to a spool file that is then streamed as the submission's body, reading a provider's
//! JSONL answer line by line, the OpenAI chat completion made of a provider's answer, and what a
//! submission keeps in memory until its results are read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use common::batch::jsonl;
use common::llm::{Candidate, ChatRequest};
use common::provider::ProviderError;
use common::settings::Secret;
use futures::{Stream, TryStreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio_util::io::{ReaderStream, StreamReader};
use uuid::Uuid;

use crate::output::Output;
use crate::providers::Polled;

/// The code and message of a request the provider never ran because the batch was cancelled
/// (those of a sequential run's unfinished lines).
pub(super) const CANCELLED: (&str, &str) = (
    "batch_cancelled",
    "the batch was cancelled before this request ran",
);
/// The same, for a batch whose completion window ended.
pub(super) const EXPIRED: (&str, &str) = (
    "batch_expired",
    "the batch's completion window ended before this request ran",
);
/// The code of a request a failed batch never answered.
pub(super) const BATCH_FAILED: &str = "batch_failed";
/// Submissions whose state this process keeps until their results are read; past it the oldest
/// is forgotten (a job whose results were never read is long gone).
const HELD_BATCHES: usize = 1024;
/// Batch ids of submissions that sent nothing: every request failed its conversion.
const LOCAL_PREFIX: &str = "unsent-";

/// A failure of the spool directory, not of the provider: retried like a connection failure.
pub(super) fn spool_error(e: std::io::Error) -> ProviderError {
    ProviderError::Connection(format!("the batch spool file failed: {e}"))
}

/// Writing an output line failed (the spool directory again).
pub(super) fn output_error(e: std::io::Error) -> ProviderError {
    ProviderError::Connection(format!("writing the batch output failed: {e}"))
}

/// The lines of the job's spool file: `(custom_id, body)` of each validated OpenAI batch line.
pub(super) struct Requests {
    reader: BufReader<tokio::fs::File>,
    buf: Vec<u8>,
}

impl Requests {
    pub(super) async fn open(path: &Path) -> Result<Self, ProviderError> {
        let file = tokio::fs::File::open(path).await.map_err(spool_error)?;
        Ok(Self {
            reader: BufReader::new(file),
            buf: Vec::with_capacity(8 * 1024),
        })
    }

    /// The next request; blank lines are skipped, and so (with a warning) is a line that is no
    /// batch line, which validation lets through only if the file changed under it.
    pub(super) async fn next(&mut self) -> Result<Option<(String, Value)>, ProviderError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .await
                .map_err(spool_error)?;
            if n == 0 {
                return Ok(None);
            }
            if self.buf.trim_ascii().is_empty() {
                continue;
            }
            let line = serde_json::from_slice::<Value>(&self.buf).ok();
            let custom_id = line
                .as_ref()
                .and_then(|l| l["custom_id"].as_str())
                .map(str::to_owned);
            match (custom_id, line) {
                (Some(custom_id), Some(mut line)) => {
                    return Ok(Some((custom_id, line["body"].take())));
                }
                _ => tracing::warn!("a line of the batch spool file is no batch line; skipped"),
            }
        }
    }
}

/// A line's request for the provider: its body as a [`ChatRequest`] for `candidate`, converted
/// by `build` (the provider's request builder), or the error-file line of a line that cannot be
/// converted, as a sequential run writes it.
pub(super) fn convert(
    custom_id: &str,
    body: &Value,
    candidate: &Candidate,
    build: fn(&ChatRequest) -> Result<Value, ProviderError>,
) -> Result<Value, String> {
    let request_id = || format!("req_{}", Uuid::now_v7().simple());
    let request = crate::line::request(body, candidate)
        .map_err(|m| jsonl::refused_line(custom_id, &request_id(), 400, "invalid_request", &m))?;
    build(&request).map_err(|e| error_line(custom_id, &request_id(), &e))
}

/// A builder's body without its streaming fields: batch requests are answered whole.
pub(super) fn unstreamed(mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        map.remove("stream");
        map.remove("stream_options");
    }
    body
}

/// The error-file line of a request that failed with `error`, as a sequential run writes it.
pub(super) fn error_line(custom_id: &str, request_id: &str, error: &ProviderError) -> String {
    match error {
        ProviderError::Refused { status, message } => {
            jsonl::refused_line(custom_id, request_id, *status, error.code(), message)
        }
        _ => jsonl::failed_line(custom_id, error.code(), &error.to_string()),
    }
}

/// The [`ProviderError`] of one request's error inside a batch's results: its HTTP status and
/// the provider's message (with the key cut out, should the provider quote it).
pub(super) fn request_error(status: u16, message: &str, key: &Secret) -> ProviderError {
    let mut message = message.to_owned();
    if !key.expose().is_empty() {
        message = message.replace(key.expose(), "[api key]");
    }
    match status {
        429 => ProviderError::RateLimited { retry_after: None },
        500.. => ProviderError::Upstream { status },
        401 | 403 | 404 => {
            tracing::error!(status, provider_message = %message,
                "the provider refused a batch request as the deployment's fault: check its key, permissions and model names");
            ProviderError::Misconfigured { status }
        }
        _ => ProviderError::Refused {
            status,
            message: message.chars().take(300).collect(),
        },
    }
}

/// A count the provider wrote as a number or (proto3 JSON's int64) a string; 0 when absent.
pub(super) fn count(v: &Value) -> u32 {
    let n = match v {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A spool file removed when dropped.
pub(super) struct TempFile {
    path: PathBuf,
    len: u64,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "spool file not removed");
        }
    }
}

impl TempFile {
    /// Its size.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Its bytes as a streamed request body (never whole in memory).
    pub(super) async fn body(&self) -> Result<reqwest::Body, ProviderError> {
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(spool_error)?;
        Ok(reqwest::Body::wrap_stream(ReaderStream::with_capacity(
            file,
            64 * 1024,
        )))
    }
}

/// The converted requests being written to a spool file next to the job's.
pub(super) struct BodyFile {
    file: BufWriter<tokio::fs::File>,
    temp: TempFile,
}

impl BodyFile {
    /// A new file beside `next_to`, named after it with `suffix`.
    pub(super) async fn create(next_to: &Path, suffix: &str) -> Result<Self, ProviderError> {
        let mut name = next_to.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{}.{suffix}", Uuid::now_v7().simple()));
        let path = next_to.with_file_name(name);
        let file = tokio::fs::File::create(&path).await.map_err(spool_error)?;
        Ok(Self {
            file: BufWriter::with_capacity(64 * 1024, file),
            temp: TempFile { path, len: 0 },
        })
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), ProviderError> {
        self.file.write_all(bytes).await.map_err(spool_error)?;
        self.temp.len += bytes.len() as u64;
        Ok(())
    }

    /// `value` as JSON.
    pub(super) async fn json(&mut self, value: &Value) -> Result<(), ProviderError> {
        let text = serde_json::to_vec(value)
            .map_err(|e| ProviderError::Protocol(format!("a request could not be written: {e}")))?;
        self.write(&text).await
    }

    /// The written file, flushed.
    pub(super) async fn finish(mut self) -> Result<TempFile, ProviderError> {
        self.file.flush().await.map_err(spool_error)?;
        Ok(self.temp)
    }
}

/// The JSON body of a provider's answer.
pub(super) async fn json_body(response: reqwest::Response) -> Result<Value, ProviderError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|_| ProviderError::Connection("reading the answer failed".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ProviderError::Protocol(format!("the answer is not JSON: {e}")))
}

/// A string field the provider must send.
pub(super) fn required<'a>(v: &'a Value, field: &str) -> Result<&'a str, ProviderError> {
    v[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ProviderError::Protocol(format!("the answer has no {field}")))
}

type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A JSONL answer (a results file), read line by line as it arrives.
pub(super) struct JsonLines {
    reader: StreamReader<ByteStream, Bytes>,
    buf: Vec<u8>,
}

impl JsonLines {
    pub(super) fn new(response: reqwest::Response) -> Self {
        let stream: ByteStream = Box::pin(response.bytes_stream().map_err(std::io::Error::other));
        Self {
            reader: StreamReader::new(stream),
            buf: Vec::with_capacity(8 * 1024),
        }
    }

    /// The next line's JSON; blank lines are skipped.
    pub(super) async fn next(&mut self) -> Result<Option<Value>, ProviderError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .await
                .map_err(|_| ProviderError::Connection("the results download broke off".into()))?;
            if n == 0 {
                return Ok(None);
            }
            if self.buf.trim_ascii().is_empty() {
                continue;
            }
            return serde_json::from_slice(&self.buf)
                .map(Some)
                .map_err(|e| ProviderError::Protocol(format!("a results line is not JSON: {e}")));
        }
    }
}

/// A provider's answer to one request, to be written as an OpenAI chat completion.
#[derive(Debug, Default)]
pub(super) struct Answer {
    /// The model that answered.
    pub model: String,
    /// The text.
    pub text: String,
    /// Tool calls: id, function name, JSON arguments.
    pub tool_calls: Vec<(String, String, String)>,
    /// OpenAI's `finish_reason`.
    pub finish: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
}

impl Answer {
    /// The `chat.completion` object, shaped as a sequential run writes it.
    pub(super) fn completion(self) -> Value {
        let tool_calls: Vec<Value> = self
            .tool_calls
            .into_iter()
            .map(|(id, name, arguments)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
            })
            .collect();
        let mut message = json!({"role": "assistant", "content": self.text, "refusal": null});
        if !tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(tool_calls);
        }
        json!({
            "id": format!("chatcmpl-{}", Uuid::now_v7().simple()),
            "object": "chat.completion",
            "created": chrono::Utc::now().timestamp(),
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish, "logprobs": null}],
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
        })
    }
}

/// What a submission leaves in memory for its results: what the provider cannot carry.
#[derive(Debug, Default, Clone)]
pub(super) struct Sent {
    /// Error-file lines of the requests never sent (their body could not be converted).
    pub refused: Vec<String>,
    /// Our `custom_id`s of the requests sent, in order (where the provider may leave some
    /// unanswered without naming them: Anthropic, Gemini).
    pub ids: Vec<String>,
    /// The provider's ids that are not ours, to ours (Anthropic's aliases).
    pub aliases: HashMap<String, String>,
}

/// The [`Sent`] of each submission of this process whose results have not been read yet.
#[derive(Default)]
pub(super) struct Held {
    sent: Mutex<(HashMap<String, Sent>, VecDeque<String>)>,
}

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Sent>, VecDeque<String>)> {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `sent` for `batch_id`.
    pub(super) fn keep(&self, batch_id: &str, sent: Sent) {
        let mut held = self.lock();
        let (map, order) = &mut *held;
        if map.insert(batch_id.to_owned(), sent).is_none() {
            order.push_back(batch_id.to_owned());
        }
        while order.len() > HELD_BATCHES {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// A copy of what `batch_id` left, if this process submitted it (it is kept until
    /// [`Held::forget`], so results read again after a failure find it still).
    pub(super) fn get(&self, batch_id: &str) -> Option<Sent> {
        self.lock().0.get(batch_id).cloned()
    }

    /// Forgets `batch_id` once its results are written.
    pub(super) fn forget(&self, batch_id: &str) {
        let mut held = self.lock();
        let (map, order) = &mut *held;
        if map.remove(batch_id).is_some() {
            order.retain(|id| id != batch_id);
        }
    }

    /// A batch id for a submission that sent nothing, its `sent` kept for its results.
    pub(super) fn local(&self, sent: Sent) -> String {
        let id = format!("{LOCAL_PREFIX}{}", Uuid::now_v7().simple());
        self.keep(&id, sent);
        id
    }

    /// Whether `batch_id` is such a submission.
    pub(super) fn is_local(batch_id: &str) -> bool {
        batch_id.starts_with(LOCAL_PREFIX)
    }

    /// The poll of such a submission: ended, every request failed.
    pub(super) fn local_poll(&self, batch_id: &str) -> Polled {
        let failed = self
            .get(batch_id)
            .map_or(0, |s| u32::try_from(s.refused.len()).unwrap_or(u32::MAX));
        Polled {
            ended: true,
            status: "not_submitted".into(),
            completed: 0,
            failed,
        }
    }

    /// The results of such a submission: its refused lines.
    pub(super) async fn local_results(
        &self,
        batch_id: &str,
        output: &mut Output,
    ) -> Result<(), ProviderError> {
        finish(
            output,
            self.get(batch_id).as_ref(),
            &HashSet::new(),
            CANCELLED,
        )
        .await?;
        self.forget(batch_id);
        Ok(())
    }
}

/// Writes the lines a batch's results lack: the requests of `sent` sent but absent from `seen`
/// (as `missing`: code, message), then those never sent.
pub(super) async fn finish(
    output: &mut Output,
    sent: Option<&Sent>,
    seen: &HashSet<String>,
    missing: (&str, &str),
) -> Result<(), ProviderError> {
    let Some(sent) = sent else {
        return Ok(());
    };
    for id in sent.ids.iter().filter(|id| !seen.contains(*id)) {
        let line = jsonl::failed_line(id, missing.0, missing.1);
        output.push(false, &line).await.map_err(output_error)?;
    }
    for line in &sent.refused {
        output.push(false, line).await.map_err(output_error)?;
    }
    Ok(())
}
