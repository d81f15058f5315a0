//! OpenAI Batches, `/v1/batches`: a JSONL file of chat completion requests, uploaded through
//! `files`, answered together and read back as output and error files.
//!
//! Checked against openai-python's `resources/batches.py` and `types/batch*.py` (the `Batch`
//! object, its status values, `request_counts`, `errors`, `usage`), the `BatchRequestOutput`
//! schema of OpenAI's OpenAPI spec (one line of an output or error file) and reports of real
//! batches: input problems surface as a created batch whose first poll finds it `failed`, with
//! `errors.data[] = {code, line, message, param}` (codes `invalid_json_line`,
//! `duplicate_custom_id`, `url_mismatch`, `model_mismatch`, `empty_file`, `too_many_tasks`); a
//! request the API refuses is a line of the error file holding its 4xx as `response`; a batch
//! whose every request failed completes with `output_file_id: null`.
//!
//! - `POST /v1/batches`: `{"input_file_id", "endpoint", "completion_window": "24h",
//!   "metadata"?}` → the batch, `status: "validating"`. The file must exist and have purpose
//!   `batch`; the simulator answers `/v1/chat/completions` batches only (other endpoints the API
//!   takes get a 400 `unsupported_in_simulator`).
//! - `GET /v1/batches/{batch_id}`: a poll (see `batch`): `failed` at once if the input is bad,
//!   else `in_progress` for [`SimConfig::job_polls`] polls with `request_counts` rising, then
//!   `finalizing`, then `completed` with `output_file_id` (the answered lines; `null` if none)
//!   and `error_file_id` (the failed lines; `null` if none).
//! - `GET /v1/batches?after=&limit=`: `{"object": "list", "data", "first_id", "last_id",
//!   "has_more"}`, newest first, so a client finds its batch again by its `metadata`.
//! - `POST /v1/batches/{batch_id}/cancel`: `cancelling`; the next poll finds it `cancelled`,
//!   with the lines finished before the cancel in its files (the others in neither).
//!
//! A line of the output file is `{"id": "batch_req_…", "custom_id", "response": {"status_code":
//! 200, "request_id": "req_…", "body": <chat.completion>}, "error": null}`, the completion the
//! simulator gives that request's body (text, tool call, usage) as `POST /v1/chat/completions`
//! would. A line of the error file is the same with `status_code: 400` and `body: {"error":
//! {"message", "type": "invalid_request_error", "param", "code"}}`: a body the chat endpoint
//! would refuse (no `model`, no `messages`, …) or a user message containing `fail_line`
//! (`code: "simulated_failure"`). `JobFailed` fails the batch where it would have finalized
//! (`errors.data[0].code: "server_error"`).
//!
//! [`SimConfig::job_polls`]: crate::SimConfig::job_polls

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use super::files::{Files, StoredFile};
use super::request::text_of;
use super::{
    ChatTurn, Invalid, bearer_key, error_with_param, failure_response, invalid_request,
    invalid_value, missing, no_api_key,
};
use crate::batch::{self, Batch, CancelRefused, Lifecycle, Line, Stage};
use crate::config::{Behaviour, SimConfig};
use crate::content::{LINE_FAILURE_TRIGGER, new_id};
use crate::engine;
use crate::jobs::Job;
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;

/// Endpoints the API batches.
const ENDPOINTS: [&str; 8] = [
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
];
/// The one endpoint the simulator answers in a batch.
const CHAT: &str = "/v1/chat/completions";
/// Requests one input file may hold.
const MAX_REQUESTS: usize = 50_000;
/// The completion window, the only one the API offers.
const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Pairs of `metadata` at most, and the longest key and value.
const METADATA_PAIRS: usize = 16;
const METADATA_KEY: usize = 64;
const METADATA_VALUE: usize = 512;
/// OpenAI batches pass through `finalizing`; a cancel ends them at the next poll.
const LIFECYCLE: Lifecycle = Lifecycle {
    finalizing: true,
    immediate_cancel: false,
};
/// The API's format for a batch (the submission's).
const API: WireFormat = WireFormat::OpenAiBatchCreate;
/// Message of a line that asked to fail.
const LINE_FAILURE: &str =
    "The simulator was asked to fail this request: a user message contains 'fail_line'.";

/// `POST /v1/batches`.
pub(crate) async fn create_batch(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return invalid_request(
                format!("We could not parse the JSON body of your request: {err}"),
                None,
            );
        }
    };
    let params = match Params::parse(&body) {
        Ok(params) => params,
        Err(invalid) => return invalid.into_response(),
    };
    let Some(file) = shared.openai_files().get(&params.input_file_id) else {
        return error_with_param(
            StatusCode::NOT_FOUND,
            format!("No such File object: {}", params.input_file_id),
            "invalid_request_error",
            Some("input_file_id"),
            None,
        );
    };
    if file.purpose != "batch" {
        return Invalid::new(
            format!(
                "Invalid 'input_file_id': file {} has purpose '{}'; a batch's input file must be uploaded with purpose 'batch'.",
                file.id, file.purpose
            ),
            Some("input_file_id"),
        )
        .with_code("invalid_value")
        .into_response();
    }
    if params.endpoint != CHAT {
        return Invalid::new(
            format!(
                "The simulator batches only '{CHAT}' requests, not '{}'.",
                params.endpoint
            ),
            Some("endpoint"),
        )
        .with_code("unsupported_in_simulator")
        .into_response();
    }
    let input = Input::read(&file.bytes, &params.endpoint, shared.config());
    let (behaviour, mut guard) = shared.begin(
        Incoming::new(
            WireFormat::OpenAiBatchCreate,
            &uri,
            Some(authorization),
            body,
        )
        .with_batch_requests(input.requests),
    );
    tracing::debug!(?behaviour, requests = input.requests, "openai batch");
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, input.model.as_deref().unwrap_or("batch"));
    }
    let batch = Batch::new(
        new_id("batch_"),
        API,
        input.model.as_deref().unwrap_or_default(),
        behaviour,
        input.lines,
        json!({
            "endpoint": params.endpoint,
            "input_file_id": params.input_file_id,
            "metadata": params.metadata,
        }),
    )
    .with_invalid(input.invalid, input.requests);
    let object = batch_object(&batch);
    shared.batches().insert(batch);
    guard.finish();
    Json(object).into_response()
}

/// `GET /v1/batches/{batch_id}`.
pub(crate) async fn retrieve_batch(
    State(shared): State<Arc<Shared>>,
    Path(batch_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let incoming = Incoming::new(
        WireFormat::OpenAiBatchGet,
        &uri,
        Some(authorization),
        Value::Null,
    );
    let (_, mut guard) = batch::follow_up(&shared, API, &batch_id, incoming);
    guard.finish();
    let files = shared.openai_files();
    let polled = shared.batches().poll(
        API,
        &batch_id,
        shared.config().job_polls,
        LIFECYCLE,
        |batch| write_files(files, batch),
    );
    match polled {
        Some(batch) => Json(batch_object(&batch)).into_response(),
        None => not_found(&batch_id),
    }
}

/// `POST /v1/batches/{batch_id}/cancel`.
pub(crate) async fn cancel_batch(
    State(shared): State<Arc<Shared>>,
    Path(batch_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let incoming = Incoming::new(
        WireFormat::OpenAiBatchCancel,
        &uri,
        Some(authorization),
        Value::Null,
    );
    let (_, mut guard) = batch::follow_up(&shared, API, &batch_id, incoming);
    guard.finish();
    let files = shared.openai_files();
    match shared
        .batches()
        .cancel(API, &batch_id, LIFECYCLE, |batch| write_files(files, batch))
    {
        Ok(batch) => Json(batch_object(&batch)).into_response(),
        Err(CancelRefused::Unknown) => not_found(&batch_id),
        Err(CancelRefused::Ended(batch)) => invalid_request(
            format!(
                "Cannot cancel a batch with status '{}'.",
                status(batch.stage)
            ),
            None,
        ),
    }
}

/// `GET /v1/batches?after=&limit=`.
pub(crate) async fn list_batches(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
        Some(_) => {
            return Invalid::new(
                "Invalid 'limit': expected an integer between 1 and 100.".to_owned(),
                Some("limit"),
            )
            .with_code("invalid_value")
            .into_response();
        }
    };
    let mut guard = shared.follow_up(
        Incoming::new(
            WireFormat::OpenAiBatchList,
            &uri,
            Some(authorization),
            Value::Null,
        ),
        Behaviour::Normal,
    );
    guard.finish();
    let page = shared
        .batches()
        .page(API, query.get("after").map(String::as_str), None, limit);
    let (data, has_more): (Vec<Value>, bool) = match page {
        Some(page) => (
            page.batches.iter().map(batch_object).collect(),
            page.has_more,
        ),
        // An `after` the API does not know starts nowhere.
        None => (Vec::new(), false),
    };
    let id_of = |object: Option<&Value>| object.and_then(|o| o.get("id")).cloned();
    Json(json!({
        "object": "list",
        "first_id": id_of(data.first()),
        "last_id": id_of(data.last()),
        "has_more": has_more,
        "data": data,
    }))
    .into_response()
}

/// The API's 404 for a batch id it does not know.
fn not_found(batch_id: &str) -> Response {
    error_with_param(
        StatusCode::NOT_FOUND,
        format!("No batch found with id '{batch_id}'."),
        "invalid_request_error",
        None,
        None,
    )
}

/// Writes the output and error files of a batch that just ended with results.
fn write_files(files: &Files, batch: &mut Batch) {
    if !matches!(batch.stage, Stage::Succeeded | Stage::Cancelled { .. }) {
        return;
    }
    let (mut output, mut errors) = (String::new(), String::new());
    for line in batch.finished_lines() {
        let (file, value) = match &line.result {
            Ok(value) => (&mut output, value),
            Err(value) => (&mut errors, value),
        };
        file.push_str(&value.to_string());
        file.push('\n');
    }
    let write = |contents: String, kind: &str| {
        (!contents.is_empty()).then(|| {
            files.put(StoredFile::new(
                &format!("batch_{}_{kind}.jsonl", batch.id),
                "batch_output",
                Bytes::from(contents),
                batch.behaviour.clone(),
            ))
        })
    };
    let output_file_id = write(output, "output");
    let error_file_id = write(errors, "error");
    batch.output_file_id = output_file_id;
    batch.error_file_id = error_file_id;
}

/// The API's name of a stage.
fn status(stage: Stage) -> &'static str {
    match stage {
        Stage::Queued => "validating",
        Stage::Running { .. } => "in_progress",
        Stage::Finalizing => "finalizing",
        Stage::Succeeded => "completed",
        Stage::Failed { .. } => "failed",
        Stage::Cancelling { .. } => "cancelling",
        Stage::Cancelled { .. } => "cancelled",
    }
}

/// One entry of a batch's `errors.data`.
#[derive(Serialize)]
struct BatchError {
    code: &'static str,
    line: Option<usize>,
    message: String,
    param: Option<&'static str>,
}

/// The API's `batch` object.
fn batch_object(batch: &Batch) -> Value {
    let counts = batch.counts();
    let at = |time: Option<SystemTime>| time.map(Job::unix_secs);
    let ended_as = |ended: bool| at(batch.ended).filter(|_| ended);
    let failed = matches!(batch.stage, Stage::Failed { .. });
    let errors = match batch.stage {
        Stage::Failed { .. } if !batch.invalid.is_empty() => {
            json!({ "object": "list", "data": batch.invalid })
        }
        Stage::Failed { .. } => json!({
            "object": "list",
            "data": [BatchError {
                code: "server_error",
                line: None,
                message: "The batch failed because of an error on the provider's side (simulated).".to_owned(),
                param: None,
            }],
        }),
        _ => Value::Null,
    };
    let answered = batch.finished_lines().iter().filter(|l| l.result.is_ok());
    let (input_tokens, output_tokens) = answered.fold((0, 0), |(i, o), line| {
        (i + line.input_tokens, o + line.output_tokens)
    });
    let total = if batch.invalid.is_empty() {
        batch.lines.len()
    } else {
        0
    };
    let param = |name: &str| batch.params.get(name).cloned().unwrap_or(Value::Null);
    json!({
        "id": batch.id,
        "object": "batch",
        "endpoint": param("endpoint"),
        "model": Some(&batch.model).filter(|m| !m.is_empty()),
        "errors": errors,
        "input_file_id": param("input_file_id"),
        "completion_window": "24h",
        "status": status(batch.stage),
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": Job::unix_secs(batch.created),
        "in_progress_at": at(batch.started),
        "expires_at": Job::unix_secs(batch.created) + WINDOW.as_secs(),
        "finalizing_at": at(batch.finalizing),
        "completed_at": ended_as(batch.stage == Stage::Succeeded),
        "failed_at": ended_as(failed),
        "expired_at": null,
        "cancelling_at": at(batch.cancel_requested),
        "cancelled_at": ended_as(matches!(batch.stage, Stage::Cancelled { .. })),
        "request_counts": {
            "total": total,
            "completed": counts.succeeded,
            "failed": counts.failed,
        },
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": { "cached_tokens": 0 },
            "output_tokens": output_tokens,
            "output_tokens_details": { "reasoning_tokens": 0 },
            "total_tokens": input_tokens + output_tokens,
        },
        "metadata": param("metadata"),
    })
}

/// The fields of a batch submission the API accepts.
struct Params {
    input_file_id: String,
    endpoint: String,
    metadata: Value,
}

impl Params {
    fn parse(body: &Value) -> Result<Self, Invalid> {
        let Some(object) = body.as_object() else {
            return Err(Invalid::new(
                "The request body must be a JSON object.".to_owned(),
                None,
            ));
        };
        let text = |name: &'static str| -> Result<String, Invalid> {
            match object.get(name) {
                None | Some(Value::Null) => Err(missing(name)),
                Some(Value::String(value)) => Ok(value.clone()),
                Some(_) => Err(Invalid::new(
                    format!("Invalid type for '{name}': expected a string."),
                    Some(name),
                )
                .with_code("invalid_type")),
            }
        };
        let input_file_id = text("input_file_id")?;
        let endpoint = text("endpoint")?;
        if !ENDPOINTS.contains(&endpoint.as_str()) {
            return Err(invalid_value("endpoint", &endpoint, &ENDPOINTS));
        }
        let window = text("completion_window")?;
        if window != "24h" {
            return Err(invalid_value("completion_window", &window, &["24h"]));
        }
        let metadata = object.get("metadata").cloned().unwrap_or(Value::Null);
        check_metadata(&metadata)?;
        Ok(Self {
            input_file_id,
            endpoint,
            metadata,
        })
    }
}

/// At most 16 pairs of strings, keys up to 64 characters, values up to 512.
fn check_metadata(metadata: &Value) -> Result<(), Invalid> {
    let invalid =
        |message: String| Err(Invalid::new(message, Some("metadata")).with_code("invalid_value"));
    let pairs = match metadata {
        Value::Null => return Ok(()),
        Value::Object(pairs) => pairs,
        _ => return invalid("Invalid 'metadata': expected an object.".to_owned()),
    };
    if pairs.len() > METADATA_PAIRS {
        return invalid(format!(
            "Invalid 'metadata': too many properties. Expected at most {METADATA_PAIRS}, got {}.",
            pairs.len()
        ));
    }
    for (key, value) in pairs {
        if key.chars().count() > METADATA_KEY {
            return invalid(format!(
                "Invalid 'metadata': keys may be at most {METADATA_KEY} characters long."
            ));
        }
        match value.as_str() {
            Some(value) if value.chars().count() <= METADATA_VALUE => {}
            Some(_) => {
                return invalid(format!(
                    "Invalid 'metadata.{key}': values may be at most {METADATA_VALUE} characters long."
                ));
            }
            None => return invalid(format!("Invalid 'metadata.{key}': expected a string.")),
        }
    }
    Ok(())
}

/// A batch's input file, read line by line as the API validates it.
struct Input {
    /// Non-empty lines.
    requests: usize,
    /// The requests that passed validation, with their results.
    lines: Vec<Line>,
    /// What fails the batch, one entry per bad line (empty when the file is good).
    invalid: Vec<Value>,
    /// The model every request names.
    model: Option<String>,
}

impl Input {
    fn read(bytes: &[u8], endpoint: &str, config: &SimConfig) -> Self {
        let mut input = Input {
            requests: 0,
            lines: Vec::new(),
            invalid: Vec::new(),
            model: None,
        };
        let mut custom_ids = HashSet::new();
        for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            if raw.trim_ascii().is_empty() {
                continue;
            }
            input.requests += 1;
            let number = index + 1;
            let checked = serde_json::from_slice::<Value>(raw)
                .map_err(|_| LineError {
                    code: "invalid_json_line",
                    message: "This line is not parseable as valid JSON.".to_owned(),
                    param: None,
                })
                .and_then(|value| check_line(value, endpoint, &mut custom_ids, &mut input.model));
            match checked {
                Ok((custom_id, body)) => input.lines.push(answer(custom_id, &body, config)),
                Err(error) => input.invalid.push(json!(BatchError {
                    code: error.code,
                    line: Some(number),
                    message: error.message,
                    param: error.param,
                })),
            }
        }
        if input.requests == 0 {
            input.invalid.push(json!(BatchError {
                code: "empty_file",
                line: None,
                message: "The batch input file is empty.".to_owned(),
                param: None,
            }));
        }
        if input.requests > MAX_REQUESTS {
            input.invalid.push(json!(BatchError {
                code: "too_many_tasks",
                line: None,
                message: format!(
                    "The batch input file holds {} requests; a batch takes at most {MAX_REQUESTS}.",
                    input.requests
                ),
                param: None,
            }));
        }
        input
    }
}

/// Why a line fails the batch.
struct LineError {
    code: &'static str,
    message: String,
    param: Option<&'static str>,
}

/// Checks one request line; returns its `custom_id` and `body`.
fn check_line(
    line: Value,
    endpoint: &str,
    custom_ids: &mut HashSet<String>,
    model: &mut Option<String>,
) -> Result<(String, Value), LineError> {
    let error = |code, message: String, param| LineError {
        code,
        message,
        param,
    };
    let Value::Object(mut line) = line else {
        return Err(error(
            "invalid_json_line",
            "This line is not a JSON object.".to_owned(),
            None,
        ));
    };
    let missing = |name: &'static str| {
        error(
            "missing_required_parameter",
            format!("Missing required parameter: '{name}'."),
            Some(name),
        )
    };
    let custom_id = match line.get("custom_id") {
        Some(Value::String(id)) => id.clone(),
        _ => return Err(missing("custom_id")),
    };
    match line.get("method").and_then(Value::as_str) {
        Some("POST") => {}
        Some(other) => {
            return Err(error(
                "invalid_value",
                format!("Invalid value: '{other}'. Supported values are: 'POST'."),
                Some("method"),
            ));
        }
        None => return Err(missing("method")),
    }
    match line.get("url").and_then(Value::as_str) {
        Some(url) if url == endpoint => {}
        Some(_) => {
            return Err(error(
                "url_mismatch",
                "The URL provided for this request does not match the batch endpoint.".to_owned(),
                Some("url"),
            ));
        }
        None => return Err(missing("url")),
    }
    let body = match line.remove("body") {
        Some(body @ Value::Object(_)) => body,
        _ => return Err(missing("body")),
    };
    if !custom_ids.insert(custom_id.clone()) {
        return Err(error(
            "duplicate_custom_id",
            "The custom_id for this request is a duplicate of another request. The custom_id parameter must be unique for each request in a batch.".to_owned(),
            Some("custom_id"),
        ));
    }
    if let Some(name) = body.get("model").and_then(Value::as_str) {
        match model {
            Some(first) if first != name => {
                return Err(error(
                    "model_mismatch",
                    "The model provided for this request does not match the model of the other requests in the batch; a batch uses one model.".to_owned(),
                    Some("body.model"),
                ));
            }
            Some(_) => {}
            None => *model = Some(name.to_owned()),
        }
    }
    Ok((custom_id, body))
}

/// What the chat endpoint answers `body`, as a line of the output or error file.
fn answer(custom_id: String, body: &Value, config: &SimConfig) -> Line {
    let id = new_id("batch_req_");
    let request_id = new_id("req_");
    let refused = |status: u16, message: String, param: Option<&str>, code: Option<&str>| Line {
        result: Err(json!({
            "id": id,
            "custom_id": custom_id,
            "response": {
                "status_code": status,
                "request_id": request_id,
                "body": { "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": param,
                    "code": code,
                }},
            },
            "error": null,
        })),
        custom_id: custom_id.clone(),
        input_tokens: 0,
        output_tokens: 0,
    };
    let turn = match ChatTurn::parse(body, &config.chunk_text, config.chunks) {
        Ok(turn) => turn,
        Err(invalid) => {
            return refused(
                invalid.status.as_u16(),
                invalid.message,
                invalid.param,
                invalid.code,
            );
        }
    };
    if asks_to_fail(body) {
        return refused(
            400,
            LINE_FAILURE.to_owned(),
            Some("messages"),
            Some("simulated_failure"),
        );
    }
    let usage = turn.usage();
    let completion = serde_json::to_value(turn.completion()).unwrap_or(Value::Null);
    Line {
        result: Ok(json!({
            "id": id,
            "custom_id": custom_id,
            "response": {
                "status_code": 200,
                "request_id": request_id,
                "body": completion,
            },
            "error": null,
        })),
        custom_id,
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
    }
}

/// A user message of the request holds the line-failure trigger.
fn asks_to_fail(body: &Value) -> bool {
    body.get("messages")
        .and_then(Value::as_array)
        .is_some_and(|messages| {
            messages.iter().any(|m| {
                m.get("role").and_then(Value::as_str) == Some("user")
                    && text_of(m).contains(LINE_FAILURE_TRIGGER)
            })
        })
}
