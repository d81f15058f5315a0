//! Anthropic Message Batches, `/v1/messages/batches`: Messages requests answered together,
//! their results read as JSONL.
//!
//! Checked against the Anthropic API reference (Create, Retrieve, List, Cancel a Message Batch,
//! Retrieve Message Batch results) and the TypeScript SDK's `resources/messages/batches.ts`
//! (`MessageBatch`, `MessageBatchIndividualResponse`, the `succeeded` / `errored` / `canceled` /
//! `expired` results, an errored result's `error` being the API's error response). The API
//! validates each request's `params` only while processing, so a bad request is an `errored`
//! result, not a refused batch.
//!
//! - `POST /v1/messages/batches`: `{"requests": [{"custom_id", "params": {<Messages request>}}]}`
//!   → `{"id": "msgbatch_…", "type": "message_batch", "processing_status": "in_progress",
//!   "request_counts": {"processing", "succeeded", "errored", "canceled", "expired"},
//!   "ended_at": null, "created_at", "expires_at" (a day later), "archived_at": null,
//!   "cancel_initiated_at": null, "results_url": null}` (RFC 3339 times). `custom_id` must match
//!   `^[a-zA-Z0-9_-]{1,64}$` and be unique; at most 100,000 requests.
//! - `GET /v1/messages/batches/{id}`: a poll (see `batch`): `in_progress` for
//!   [`SimConfig::job_polls`] polls, counts moving from `processing` to `succeeded` and
//!   `errored`, then `ended` with `ended_at` and `results_url`
//!   (`http://{host}/v1/messages/batches/{id}/results`).
//! - `GET /v1/messages/batches/{id}/results`: once ended, one JSON line per request, in
//!   submission order: `{"custom_id", "result": {"type": "succeeded", "message": <Message>}}`,
//!   `{"custom_id", "result": {"type": "errored", "error": {"type": "error", "error": {"type":
//!   "invalid_request_error", "message"}}}}` or `{"custom_id", "result": {"type": "canceled"}}`.
//! - `POST /v1/messages/batches/{id}/cancel`: `canceling` with `cancel_initiated_at`; the next
//!   poll finds it `ended`, the requests not done by then `canceled`.
//! - `GET /v1/messages/batches?limit=&after_id=&before_id=`: `{"data", "has_more", "first_id",
//!   "last_id"}`, newest first.
//!
//! A request is `errored` when the Messages endpoint would refuse its `params` (the same checks
//! and messages as `POST /v1/messages`) or when a user message contains `fail_line`; else its
//! message is the one `POST /v1/messages` gives without streaming (text, tool use, thinking,
//! usage). `JobFailed` ends the batch with every request `errored` (`api_error`). Every call
//! needs `x-api-key` (or `Authorization`; else 401 `authentication_error`) and
//! `anthropic-version` (else 400).
//!
//! [`SimConfig::job_polls`]: crate::SimConfig::job_polls

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::request::{self, text_of};
use super::{MessageTurn, error_response, failure_response};
use crate::batch::{self, Batch, CancelRefused, Lifecycle, Line, Stage};
use crate::config::{Behaviour, SimConfig};
use crate::content::{LINE_FAILURE_TRIGGER, new_id};
use crate::engine;
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;
use crate::video;

/// Requests one batch may hold.
const MAX_REQUESTS: usize = 100_000;
/// How long a batch may process before it expires.
const EXPIRY: Duration = Duration::from_secs(24 * 3600);
/// Message batches go from `in_progress` straight to `ended`; a cancel ends them at the next
/// poll.
const LIFECYCLE: Lifecycle = Lifecycle {
    finalizing: false,
    immediate_cancel: false,
};
/// The API's format for a batch (the submission's).
const API: WireFormat = WireFormat::AnthropicBatchCreate;
/// Message of a request that asked to fail.
const LINE_FAILURE: &str =
    "The simulator was asked to fail this request: a user message contains 'fail_line'.";

/// `POST /v1/messages/batches`.
pub(crate) async fn create_batch(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = match credentials(&headers) {
        Ok(key) => key,
        Err(missing) => return missing.response(),
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return invalid_request(format!(
                "There was an error parsing the body of your request as JSON: {err}"
            ));
        }
    };
    let requests = match requests_of(&body) {
        Ok(requests) => requests,
        Err(message) => return invalid_request(message),
    };
    let config = shared.config();
    let model = requests
        .iter()
        .find_map(|(_, params)| params.get("model").and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    let lines: Vec<Line> = requests
        .into_iter()
        .map(|(custom_id, params)| answer(custom_id, &params, config))
        .collect();
    let (behaviour, mut guard) = shared.begin(
        Incoming::new(WireFormat::AnthropicBatchCreate, &uri, Some(key), body)
            .with_batch_requests(lines.len()),
    );
    tracing::debug!(
        ?behaviour,
        requests = lines.len(),
        "anthropic message batch"
    );
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, &model);
    }
    let batch = Batch::new(
        new_id("msgbatch_"),
        API,
        &model,
        behaviour,
        lines,
        Value::Null,
    );
    let object = batch_object(&batch, &video::origin(&headers));
    shared.batches().insert(batch);
    guard.finish();
    Json(object).into_response()
}

/// `GET /v1/messages/batches/{id}`.
pub(crate) async fn retrieve_batch(
    State(shared): State<Arc<Shared>>,
    Path(batch_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let key = match credentials(&headers) {
        Ok(key) => key,
        Err(missing) => return missing.response(),
    };
    let incoming = Incoming::new(WireFormat::AnthropicBatchGet, &uri, Some(key), Value::Null);
    let (_, mut guard) = batch::follow_up(&shared, API, &batch_id, incoming);
    guard.finish();
    let polled =
        shared
            .batches()
            .poll(API, &batch_id, shared.config().job_polls, LIFECYCLE, |_| {});
    match polled {
        Some(batch) => Json(batch_object(&batch, &video::origin(&headers))).into_response(),
        None => not_found(&batch_id),
    }
}

/// `GET /v1/messages/batches/{id}/results`.
pub(crate) async fn batch_results(
    State(shared): State<Arc<Shared>>,
    Path(batch_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let key = match credentials(&headers) {
        Ok(key) => key,
        Err(missing) => return missing.response(),
    };
    let incoming = Incoming::new(
        WireFormat::AnthropicBatchResults,
        &uri,
        Some(key),
        Value::Null,
    );
    let (known, mut guard) = batch::follow_up(&shared, API, &batch_id, incoming);
    let Some(batch) = known else {
        guard.finish();
        return not_found(&batch_id);
    };
    if !batch.stage.is_terminal() {
        guard.finish();
        return invalid_request(format!(
            "Message Batch {batch_id} has not ended yet; its results are available once its processing_status is 'ended'."
        ));
    }
    video::download_as(
        Bytes::from(results(&batch)),
        "application/x-jsonl",
        &batch.behaviour,
        guard,
    )
}

/// `POST /v1/messages/batches/{id}/cancel`.
pub(crate) async fn cancel_batch(
    State(shared): State<Arc<Shared>>,
    Path(batch_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let key = match credentials(&headers) {
        Ok(key) => key,
        Err(missing) => return missing.response(),
    };
    let incoming = Incoming::new(
        WireFormat::AnthropicBatchCancel,
        &uri,
        Some(key),
        Value::Null,
    );
    let (_, mut guard) = batch::follow_up(&shared, API, &batch_id, incoming);
    guard.finish();
    match shared.batches().cancel(API, &batch_id, LIFECYCLE, |_| {}) {
        Ok(batch) => Json(batch_object(&batch, &video::origin(&headers))).into_response(),
        Err(CancelRefused::Unknown) => not_found(&batch_id),
        Err(CancelRefused::Ended(_)) => invalid_request(format!(
            "Message Batch {batch_id} has already ended and can no longer be canceled."
        )),
    }
}

/// `GET /v1/messages/batches?limit=&after_id=&before_id=`.
pub(crate) async fn list_batches(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let key = match credentials(&headers) {
        Ok(key) => key,
        Err(missing) => return missing.response(),
    };
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(limit)) if (1..=1000).contains(&limit) => limit,
        Some(_) => {
            return invalid_request(
                "limit: Input should be greater than or equal to 1 and less than or equal to 1000"
                    .to_owned(),
            );
        }
    };
    let mut guard = shared.follow_up(
        Incoming::new(WireFormat::AnthropicBatchList, &uri, Some(key), Value::Null),
        Behaviour::Normal,
    );
    guard.finish();
    let page = shared.batches().page(
        API,
        query.get("after_id").map(String::as_str),
        query.get("before_id").map(String::as_str),
        limit,
    );
    let origin = video::origin(&headers);
    let (data, has_more): (Vec<Value>, bool) = match page {
        Some(page) => (
            page.batches
                .iter()
                .map(|b| batch_object(b, &origin))
                .collect(),
            page.has_more,
        ),
        None => (Vec::new(), false),
    };
    let id_of = |object: Option<&Value>| object.and_then(|o| o.get("id")).cloned();
    Json(json!({
        "first_id": id_of(data.first()),
        "last_id": id_of(data.last()),
        "has_more": has_more,
        "data": data,
    }))
    .into_response()
}

/// A header the API needs on every request, missing.
enum MissingHeader {
    Key,
    Version,
}

impl MissingHeader {
    fn response(self) -> Response {
        match self {
            MissingHeader::Key => error_response(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "x-api-key header is required".to_owned(),
            ),
            MissingHeader::Version => {
                invalid_request("anthropic-version: header is required".to_owned())
            }
        }
    }
}

/// The key (`x-api-key`, or `Authorization` for OAuth-style clients) once the API's required
/// headers are there.
fn credentials(headers: &HeaderMap) -> Result<String, MissingHeader> {
    let key = headers
        .get("x-api-key")
        .or_else(|| headers.get(AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or(MissingHeader::Key)?;
    if headers.get("anthropic-version").is_none() {
        return Err(MissingHeader::Version);
    }
    Ok(key)
}

fn invalid_request(message: String) -> Response {
    error_response(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

fn not_found(batch_id: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found_error",
        format!("Message Batch {batch_id} not found."),
    )
}

/// The batch's requests as `(custom_id, params)`, after the checks the API makes at once.
fn requests_of(body: &Value) -> Result<Vec<(String, Value)>, String> {
    let Some(object) = body.as_object() else {
        return Err("Input should be a valid dictionary or object".to_owned());
    };
    let requests = match object.get("requests") {
        None => return Err("requests: Field required".to_owned()),
        Some(Value::Array(requests)) => requests,
        Some(_) => return Err("requests: Input should be a valid list".to_owned()),
    };
    if requests.is_empty() {
        return Err(
            "requests: List should have at least 1 item after validation, not 0".to_owned(),
        );
    }
    if requests.len() > MAX_REQUESTS {
        return Err(format!(
            "requests: List should have at most {MAX_REQUESTS} items after validation, not {}",
            requests.len()
        ));
    }
    let mut seen = HashSet::new();
    let mut checked = Vec::with_capacity(requests.len());
    for (i, request) in requests.iter().enumerate() {
        let custom_id = match request.get("custom_id") {
            None => return Err(format!("requests.{i}.custom_id: Field required")),
            Some(Value::String(id)) => id,
            Some(_) => {
                return Err(format!(
                    "requests.{i}.custom_id: Input should be a valid string"
                ));
            }
        };
        let valid = (1..=64).contains(&custom_id.len())
            && custom_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(format!(
                "requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            ));
        }
        if !seen.insert(custom_id.as_str()) {
            return Err(format!(
                "Duplicate custom_id: '{custom_id}'. Each request in a Message Batch needs its own custom_id."
            ));
        }
        let params = match request.get("params") {
            None => return Err(format!("requests.{i}.params: Field required")),
            Some(params @ Value::Object(_)) => params,
            Some(_) => {
                return Err(format!(
                    "requests.{i}.params: Input should be a valid dictionary or object"
                ));
            }
        };
        checked.push((custom_id.clone(), params.clone()));
    }
    Ok(checked)
}

/// The result the Messages endpoint gives `params`.
fn answer(custom_id: String, params: &Value, config: &SimConfig) -> Line {
    let refused = |message: String| Line {
        custom_id: custom_id.clone(),
        result: Err(errored("invalid_request_error", message)),
        input_tokens: 0,
        output_tokens: 0,
    };
    let request = match request::parse(params) {
        Ok(request) => request,
        Err(message) => return refused(message),
    };
    if asks_to_fail(params) {
        return refused(LINE_FAILURE.to_owned());
    }
    let turn = MessageTurn::new(request, &config.chunk_text, config.chunks);
    let message = serde_json::to_value(turn.message()).unwrap_or(Value::Null);
    Line {
        result: Ok(json!({ "type": "succeeded", "message": message })),
        custom_id,
        input_tokens: turn.input_tokens,
        output_tokens: turn.output_tokens(),
    }
}

/// An `errored` result holding the API's error response.
fn errored(kind: &str, message: String) -> Value {
    json!({
        "type": "errored",
        "error": { "type": "error", "error": { "type": kind, "message": message } },
    })
}

/// A user message of the request holds the line-failure trigger.
fn asks_to_fail(params: &Value) -> bool {
    params
        .get("messages")
        .and_then(Value::as_array)
        .is_some_and(|messages| {
            messages.iter().any(|m| {
                m.get("role").and_then(Value::as_str) == Some("user")
                    && text_of(m.get("content")).contains(LINE_FAILURE_TRIGGER)
            })
        })
}

/// The results file of an ended batch: one line per request, in submission order.
fn results(batch: &Batch) -> String {
    let finished = batch.stage.finished(batch.lines.len());
    let mut jsonl = String::new();
    for (i, line) in batch.lines.iter().enumerate() {
        let result = match (&line.result, batch.stage) {
            (_, Stage::Failed { .. }) => errored("api_error", "Internal server error".to_owned()),
            (Ok(result) | Err(result), _) if i < finished => result.clone(),
            _ => json!({ "type": "canceled" }),
        };
        jsonl.push_str(&json!({ "custom_id": line.custom_id, "result": result }).to_string());
        jsonl.push('\n');
    }
    jsonl
}

/// An RFC 3339 time, as the API writes them.
fn rfc3339(at: SystemTime) -> String {
    DateTime::<Utc>::from(at).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The API's `message_batch` object; `origin` is where the client reached the simulator.
fn batch_object(batch: &Batch, origin: &str) -> Value {
    let total = batch.lines.len();
    let counts = batch.counts();
    let unfinished = total - counts.finished;
    let (status, processing, canceled) = match batch.stage {
        Stage::Queued | Stage::Running { .. } | Stage::Finalizing => ("in_progress", unfinished, 0),
        Stage::Cancelling { .. } => ("canceling", unfinished, 0),
        Stage::Succeeded | Stage::Failed { .. } => ("ended", 0, 0),
        Stage::Cancelled { .. } => ("ended", 0, unfinished),
    };
    let (succeeded, errored) = match batch.stage {
        Stage::Failed { .. } => (0, total),
        _ => (counts.succeeded, counts.failed),
    };
    let ended = batch.stage.is_terminal();
    json!({
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {
            "processing": processing,
            "succeeded": succeeded,
            "errored": errored,
            "canceled": canceled,
            "expired": 0,
        },
        "ended_at": batch.ended.map(rfc3339),
        "created_at": rfc3339(batch.created),
        "expires_at": rfc3339(batch.created + EXPIRY),
        "archived_at": null,
        "cancel_initiated_at": batch.cancel_requested.map(rfc3339),
        "results_url": ended.then(|| format!("{origin}/v1/messages/batches/{}/results", batch.id)),
    })
}
