//! Gemini Batch Mode: `generateContent` requests sent inline to
//! `models/{model}:batchGenerateContent` and followed as a long-running operation named
//! `batches/{id}`.
//!
//! Checked against the Gemini API reference (`models.batchGenerateContent`, `batches.get`,
//! `batches.list`, `batches.cancel`; `GenerateContentBatch`, `BatchStats`, `BatchState`,
//! `InlinedResponses`), google-genai (python-genai `batches.py`: `_BatchJob_from_mldev` reads
//! `name` and `metadata.{displayName, state, createTime, endTime, updateTime, model, output}`,
//! `_ListBatchJobsResponse_from_mldev` reads `operations` and `nextPageToken`, the paths
//! `batches/{name}` and `batches/{name}:cancel`) and operations recorded from the real API (the
//! metadata's fields and order, `batchStats` counts as int64 strings, a finished batch's
//! responses both in `metadata.output` and in `response`).
//!
//! - `POST /v1beta/models/{model}:batchGenerateContent`: `{"batch": {"display_name",
//!   "input_config": {"requests": {"requests": [{"request": <GenerateContentRequest>,
//!   "metadata": {"key": …}}]}}}}` (camelCase or snake_case) → `{"name": "batches/{id}",
//!   "metadata": {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
//!   "model": "models/{model}", "displayName", "createTime", "updateTime", "batchStats":
//!   {"requestCount": "n", "pendingRequestCount": "n"}, "state": "BATCH_STATE_PENDING",
//!   "name": "batches/{id}"}}`. An input file (`input_config.file_name`) is refused: the
//!   simulator takes inline requests only.
//! - `GET /v1beta/batches/{id}`: a poll (see `batch`): `BATCH_STATE_RUNNING` for
//!   [`SimConfig::job_polls`] polls (`pendingRequestCount` falling, `successfulRequestCount` and
//!   `failedRequestCount` rising; zero counts are left out, as proto3 JSON does), then
//!   `BATCH_STATE_SUCCEEDED` with `done: true`, `endTime`, and the responses, in submission
//!   order, at `metadata.output.inlinedResponses.inlinedResponses[]` and at
//!   `response.inlinedResponses.inlinedResponses[]` (`response["@type"]` is
//!   `…v1main.GenerateContentBatchOutput`): each `{"response": <GenerateContentResponse>,
//!   "metadata"}` or `{"error": {"code", "message"}, "metadata"}`, `metadata` being the
//!   request's own (absent if it had none).
//! - `POST /v1beta/batches/{id}:cancel`: `{}`, and the batch is `BATCH_STATE_CANCELLED` at once:
//!   `done: true` and, as a cancelled long-running operation has, `error: {"code": 1,
//!   "message"}`, without output.
//! - `GET /v1beta/batches?pageSize=&pageToken=`: `{"operations": […], "nextPageToken"}` (the
//!   token only when more follow), newest first, each with its `displayName`, so a client finds
//!   its batch again.
//!
//! A request gets `{"error": {"code": 3, "message"}}` (`INVALID_ARGUMENT`) when
//! `generateContent` would refuse it (the same checks and messages) or when a user turn contains
//! `fail_line`; else the response `generateContent` gives it without streaming (text, function
//! call, thoughts, usage). `JobFailed` ends the batch `BATCH_STATE_FAILED`, `done: true` with
//! `error: {"code": 13, "message"}`. Every call needs the key (`x-goog-api-key` or `?key=`; else
//! 403 `PERMISSION_DENIED`).
//!
//! [`SimConfig::job_polls`]: crate::SimConfig::job_polls

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::request::{self, at, field, user_text};
use super::video::{api_key, no_key, not_found, query_of};
use super::{
    GenerateTurn, Reply, error_response, failure_response, invalid_argument, json_response,
};
use crate::batch::{self, Batch, CancelRefused, Lifecycle, Line, Stage};
use crate::config::{Behaviour, SimConfig};
use crate::content::LINE_FAILURE_TRIGGER;
use crate::engine;
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;

/// `@type` of a batch operation's metadata.
const METADATA_TYPE: &str =
    "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch";
/// `@type` of a finished batch operation's response.
const OUTPUT_TYPE: &str =
    "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput";
/// `google.rpc.Code` values.
const CANCELLED: u16 = 1;
const INVALID_ARGUMENT: u16 = 3;
const INTERNAL: u16 = 13;
/// Batches per page unless the client asks otherwise, and at most.
const PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;
/// Gemini batches go from running straight to their end; a cancel ends them at once.
const LIFECYCLE: Lifecycle = Lifecycle {
    finalizing: false,
    immediate_cancel: true,
};
/// The API's format for a batch (the submission's).
const API: WireFormat = WireFormat::GeminiBatchCreate;
/// Message of a request that asked to fail.
const LINE_FAILURE: &str =
    "The simulator was asked to fail this request: a user turn contains 'fail_line'.";

/// `POST /v1beta/models/{model}:batchGenerateContent`.
pub(super) fn create(
    shared: &Shared,
    model: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(key) = api_key(headers, &query_of(uri)) else {
        return no_key();
    };
    let body: Value = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(err) => return invalid_argument(format!("Invalid JSON payload received. {err}")),
    };
    let Submission {
        display_name,
        requests,
    } = match Submission::parse(&body) {
        Ok(parsed) => parsed,
        Err(message) => return invalid_argument(message),
    };
    let config = shared.config();
    let lines: Vec<Line> = requests
        .iter()
        .enumerate()
        .map(|(i, inline)| answer(i, &inline.request, inline.metadata.as_ref(), model, config))
        .collect();
    let (behaviour, mut guard) = shared.begin(
        Incoming::new(WireFormat::GeminiBatchCreate, uri, Some(key), body)
            .with_batch_requests(lines.len()),
    );
    tracing::debug!(?behaviour, model, requests = lines.len(), "gemini batch");
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, model);
    }
    // Lower-case alphanumerics, as Google's batch ids are.
    let id = uuid::Uuid::new_v4().simple().to_string();
    let batch = Batch::new(
        id,
        API,
        model,
        behaviour,
        lines,
        json!({ "displayName": display_name }),
    );
    let operation = operation(&batch);
    shared.batches().insert(batch);
    guard.finish();
    json_response(StatusCode::OK, &operation)
}

/// `GET /v1beta/batches/{id}`.
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Path(batch_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(key) = api_key(&headers, &query_of(&uri)) else {
        return no_key();
    };
    let incoming = Incoming::new(WireFormat::GeminiBatchGet, &uri, Some(key), Value::Null);
    let (_, mut guard) = batch::follow_up(&shared, API, &batch_id, incoming);
    guard.finish();
    let polled =
        shared
            .batches()
            .poll(API, &batch_id, shared.config().job_polls, LIFECYCLE, |_| {});
    match polled {
        Some(batch) => json_response(StatusCode::OK, &operation(&batch)),
        None => unknown(&batch_id),
    }
}

/// `POST /v1beta/batches/{id}:{action}`: `:cancel`.
pub(crate) async fn action(
    State(shared): State<Arc<Shared>>,
    Path(batch_action): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(key) = api_key(&headers, &query_of(&uri)) else {
        return no_key();
    };
    let Some(batch_id) = batch_action.strip_suffix(":cancel") else {
        return not_found(format!(
            "Method not found: POST /v1beta/batches/{batch_action}. Batches take ':cancel'."
        ));
    };
    let incoming = Incoming::new(WireFormat::GeminiBatchCancel, &uri, Some(key), Value::Null);
    let (_, mut guard) = batch::follow_up(&shared, API, batch_id, incoming);
    guard.finish();
    match shared.batches().cancel(API, batch_id, LIFECYCLE, |_| {}) {
        Ok(_) => json_response(StatusCode::OK, &json!({})),
        Err(CancelRefused::Unknown) => unknown(batch_id),
        Err(CancelRefused::Ended(batch)) => error_response(
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            format!(
                "Batch batches/{batch_id} has already ended ({}); only a pending or running batch can be cancelled.",
                state(batch.stage)
            ),
            Vec::new(),
        ),
    }
}

/// `GET /v1beta/batches?pageSize=&pageToken=`.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let query = query_of(&uri);
    let Some(key) = api_key(&headers, &query) else {
        return no_key();
    };
    let size = match query.get("pageSize").map(|s| s.parse::<usize>()) {
        None | Some(Ok(0)) => PAGE_SIZE,
        Some(Ok(size)) => size.min(MAX_PAGE_SIZE),
        Some(Err(_)) => {
            return invalid_argument(
                "Invalid value at 'page_size' (TYPE_INT32): expected an integer.".to_owned(),
            );
        }
    };
    let mut guard = shared.follow_up(
        Incoming::new(WireFormat::GeminiBatchList, &uri, Some(key), Value::Null),
        Behaviour::Normal,
    );
    guard.finish();
    let token = query.get("pageToken").filter(|t| !t.is_empty());
    let Some(page) = shared
        .batches()
        .page(API, token.map(String::as_str), None, size)
    else {
        return invalid_argument("Invalid page token.".to_owned());
    };
    let mut list = Map::new();
    let next = page.batches.last().map(|b| b.id.clone());
    list.insert(
        "operations".to_owned(),
        page.batches.iter().map(operation).collect(),
    );
    if page.has_more
        && let Some(next) = next
    {
        list.insert("nextPageToken".to_owned(), Value::String(next));
    }
    json_response(StatusCode::OK, &Value::Object(list))
}

fn unknown(batch_id: &str) -> Response {
    not_found(format!("Batch batches/{batch_id} not found."))
}

/// A batch submission the API accepts: its display name and inline requests.
struct Submission {
    display_name: String,
    requests: Vec<Inline>,
}

/// One inline request and the `metadata` it carried.
struct Inline {
    request: Value,
    metadata: Option<Value>,
}

impl Submission {
    fn parse(body: &Value) -> Result<Self, String> {
        let Some(batch) = body.as_object().and_then(|b| field(b, "batch", "batch")) else {
            return Err("* BatchGenerateContentRequest.batch: batch is required\n".to_owned());
        };
        let display_name = match at(batch, "displayName", "display_name") {
            None => String::new(),
            Some(Value::String(name)) => name.clone(),
            Some(_) => {
                return Err(
                    "Invalid value at 'batch.display_name' (TYPE_STRING): expected a string."
                        .to_owned(),
                );
            }
        };
        let Some(input) = at(batch, "inputConfig", "input_config") else {
            return Err(
                "* GenerateContentBatch.input_config: input_config is required\n".to_owned(),
            );
        };
        if at(input, "fileName", "file_name").is_some() {
            return Err(
                "The simulator takes inline requests only (input_config.requests), not an input file."
                    .to_owned(),
            );
        }
        let Some(requests) = at(input, "requests", "requests")
            .and_then(|r| at(r, "requests", "requests"))
            .and_then(Value::as_array)
        else {
            return Err("* InputConfig.requests: requests is required\n".to_owned());
        };
        if requests.is_empty() {
            return Err(
                "* InlinedRequests.requests: at least one request is required\n".to_owned(),
            );
        }
        let mut parsed = Vec::with_capacity(requests.len());
        for (i, item) in requests.iter().enumerate() {
            let Some(request) = at(item, "request", "request") else {
                return Err(format!(
                    "* InlinedRequests.requests[{i}].request: request is required\n"
                ));
            };
            parsed.push(Inline {
                request: request.clone(),
                metadata: at(item, "metadata", "metadata").cloned(),
            });
        }
        Ok(Self {
            display_name,
            requests: parsed,
        })
    }
}

/// What `generateContent` gives request `index` of the batch, as an inlined response.
fn answer(
    index: usize,
    request: &Value,
    metadata: Option<&Value>,
    model: &str,
    config: &SimConfig,
) -> Line {
    let custom_id = metadata.and_then(|m| m.get("key")).map_or_else(
        || index.to_string(),
        |key| match key {
            Value::String(key) => key.clone(),
            other => other.to_string(),
        },
    );
    let inlined = |name: &str, value: Value| {
        let mut item = Map::new();
        item.insert(name.to_owned(), value);
        if let Some(metadata) = metadata {
            item.insert("metadata".to_owned(), metadata.clone());
        }
        Value::Object(item)
    };
    let refused = |message: String| Line {
        custom_id: custom_id.clone(),
        result: Err(inlined(
            "error",
            json!({ "code": INVALID_ARGUMENT, "message": message }),
        )),
        input_tokens: 0,
        output_tokens: 0,
    };
    let parsed = match request::parse(request) {
        Ok(parsed) => parsed,
        Err(message) => return refused(message),
    };
    if user_text(request).contains(LINE_FAILURE_TRIGGER) {
        return refused(LINE_FAILURE.to_owned());
    }
    let reply = Reply {
        pieces: vec![config.chunk_text.clone(); config.chunks],
        audio_tokens: 0,
    };
    let turn = GenerateTurn::new(parsed, model, None, reply);
    let usage = turn.usage(turn.units.len());
    let response = serde_json::from_str(&turn.complete_json()).unwrap_or(Value::Null);
    Line {
        result: Ok(inlined("response", response)),
        custom_id,
        input_tokens: usage.prompt_token_count,
        output_tokens: usage.candidates_token_count + usage.thoughts_token_count,
    }
}

/// The API's name of a stage.
fn state(stage: Stage) -> &'static str {
    match stage {
        Stage::Queued => "BATCH_STATE_PENDING",
        Stage::Running { .. } | Stage::Finalizing | Stage::Cancelling { .. } => {
            "BATCH_STATE_RUNNING"
        }
        Stage::Succeeded => "BATCH_STATE_SUCCEEDED",
        Stage::Failed { .. } => "BATCH_STATE_FAILED",
        Stage::Cancelled { .. } => "BATCH_STATE_CANCELLED",
    }
}

/// An RFC 3339 time, as Google writes them (nanoseconds, `Z`).
fn rfc3339(at: SystemTime) -> String {
    DateTime::<Utc>::from(at).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// The batch as the long-running operation the API answers with.
fn operation(batch: &Batch) -> Value {
    let name = format!("batches/{}", batch.id);
    let total = batch.lines.len();
    let counts = batch.counts();
    let terminal = batch.stage.is_terminal();
    let mut stats = Map::new();
    // int64 counts are strings in proto3 JSON, and zero counts are left out.
    stats.insert("requestCount".to_owned(), total.to_string().into());
    let pending = total - counts.finished;
    for (key, count) in [
        ("pendingRequestCount", if terminal { 0 } else { pending }),
        ("successfulRequestCount", counts.succeeded),
        ("failedRequestCount", counts.failed),
    ] {
        if count > 0 {
            stats.insert(key.to_owned(), count.to_string().into());
        }
    }
    let output = (batch.stage == Stage::Succeeded).then(|| {
        let responses: Vec<Value> = batch
            .lines
            .iter()
            .map(|line| match &line.result {
                Ok(item) | Err(item) => item.clone(),
            })
            .collect();
        json!({ "inlinedResponses": { "inlinedResponses": responses } })
    });
    let mut metadata = Map::new();
    metadata.insert("@type".to_owned(), METADATA_TYPE.into());
    metadata.insert("model".to_owned(), format!("models/{}", batch.model).into());
    metadata.insert(
        "displayName".to_owned(),
        batch.params.get("displayName").cloned().unwrap_or_default(),
    );
    if let Some(output) = &output {
        metadata.insert("output".to_owned(), output.clone());
    }
    metadata.insert("createTime".to_owned(), rfc3339(batch.created).into());
    if let Some(ended) = batch.ended {
        metadata.insert("endTime".to_owned(), rfc3339(ended).into());
    }
    metadata.insert("updateTime".to_owned(), rfc3339(batch.updated).into());
    metadata.insert("batchStats".to_owned(), Value::Object(stats));
    metadata.insert("state".to_owned(), state(batch.stage).into());
    metadata.insert("name".to_owned(), name.clone().into());
    let mut operation = Map::new();
    operation.insert("name".to_owned(), name.into());
    operation.insert("metadata".to_owned(), Value::Object(metadata));
    if terminal {
        operation.insert("done".to_owned(), true.into());
    }
    match batch.stage {
        Stage::Succeeded => {
            if let Some(Value::Object(mut output)) = output {
                output.insert("@type".to_owned(), OUTPUT_TYPE.into());
                operation.insert("response".to_owned(), Value::Object(output));
            }
        }
        Stage::Failed { .. } => {
            operation.insert(
                "error".to_owned(),
                json!({
                    "code": INTERNAL,
                    "message": "The batch failed because of an internal error (simulated).",
                }),
            );
        }
        Stage::Cancelled { .. } => {
            operation.insert(
                "error".to_owned(),
                json!({ "code": CANCELLED, "message": "The batch was cancelled." }),
            );
        }
        Stage::Queued | Stage::Running { .. } | Stage::Finalizing | Stage::Cancelling { .. } => {}
    }
    Value::Object(operation)
}
