//! OpenAI Files, `/v1/files`: where a batch's JSONL input is uploaded, and where its output and
//! error files are read.
//!
//! Checked against openai-python's `resources/files.py` and `types/file_object.py`,
//! `file_deleted.py` (the `FileObject` fields, `purpose` values, the deleted object) and the
//! Batch guide (a `batch` file must be `.jsonl`; batch files expire after 30 days).
//!
//! - `POST /v1/files`: multipart form with `file` and `purpose` (`assistants`, `batch`,
//!   `fine-tune`, `vision`, `user_data`, `evals`), optionally `expires_after[anchor]` and
//!   `expires_after[seconds]` (accepted, not applied) → `{"id": "file-…", "object": "file",
//!   "bytes", "created_at", "filename", "purpose", "status": "processed", "expires_at",
//!   "status_details": null}`. A `batch` file whose name does not end in `.jsonl` is refused
//!   (`Invalid file format for Batch API. Must be .jsonl`).
//! - `GET /v1/files/{file_id}`: the file object; a batch's output and error files have
//!   `purpose: "batch_output"` and are named `batch_{id}_output.jsonl` and
//!   `batch_{id}_error.jsonl`.
//! - `GET /v1/files/{file_id}/content`: the bytes (`application/octet-stream`); the files of a
//!   batch with `Behaviour::DownloadDrop` are cut after `after_bytes`.
//! - `DELETE /v1/files/{file_id}`: `{"id", "object": "file", "deleted": true}`.
//!
//! An unknown id gets the API's 404, `No such File object: {id}`. Every call needs a Bearer key,
//! is recorded (`openai_file_upload`, `openai_file_get`, `openai_file_content`,
//! `openai_file_delete`) and never takes a behaviour from the script: a batch takes its one at
//! `POST /v1/batches`. The store keeps the newest [`MAX_FILES`] files and at most
//! [`MAX_STORED_BYTES`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Invalid, bearer_key, error_with_param, invalid_value, missing, no_api_key};
use crate::config::Behaviour;
use crate::content::new_id;
use crate::jobs::Job;
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;
use crate::video;

/// Files kept at most; uploading more forgets the oldest.
pub(crate) const MAX_FILES: usize = 1_000;
/// Bytes kept at most over every file.
pub(crate) const MAX_STORED_BYTES: usize = 512 * 1024 * 1024;
/// Purposes the API takes for an upload.
const PURPOSES: [&str; 6] = [
    "assistants",
    "batch",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];
/// How long batch input and output files are kept by default.
const BATCH_FILE_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);

/// One file the API holds.
#[derive(Clone, Debug)]
pub(crate) struct StoredFile {
    pub(crate) id: String,
    pub(crate) filename: String,
    pub(crate) purpose: String,
    created: SystemTime,
    pub(crate) bytes: Bytes,
    /// What downloads of the file do: the behaviour of the batch that wrote it, else `Normal`.
    behaviour: Behaviour,
}

impl StoredFile {
    pub(crate) fn new(filename: &str, purpose: &str, bytes: Bytes, behaviour: Behaviour) -> Self {
        Self {
            id: new_id("file-"),
            filename: filename.to_owned(),
            purpose: purpose.to_owned(),
            created: SystemTime::now(),
            bytes,
            behaviour,
        }
    }

    /// The non-empty lines of the file (a batch's requests or results).
    pub(crate) fn lines(&self) -> usize {
        self.bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.trim_ascii().is_empty())
            .count()
    }

    /// The API's `file` object.
    pub(crate) fn object(&self) -> Value {
        let created_at = Job::unix_secs(self.created);
        let expires_at = matches!(self.purpose.as_str(), "batch" | "batch_output")
            .then(|| created_at + BATCH_FILE_EXPIRY.as_secs());
        json!({
            "id": self.id,
            "object": "file",
            "bytes": self.bytes.len(),
            "created_at": created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": expires_at,
            "status_details": null,
        })
    }
}

/// Every file uploaded or written by a batch, oldest first.
#[derive(Default)]
pub(crate) struct Files {
    files: Mutex<VecDeque<StoredFile>>,
}

impl Files {
    fn lock(&self) -> MutexGuard<'_, VecDeque<StoredFile>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `file`, forgetting the oldest files past the bounds, and returns its id.
    pub(crate) fn put(&self, file: StoredFile) -> String {
        let id = file.id.clone();
        let mut files = self.lock();
        files.push_back(file);
        let mut stored: usize = files.iter().map(|f| f.bytes.len()).sum();
        while files.len() > MAX_FILES || (stored > MAX_STORED_BYTES && files.len() > 1) {
            if let Some(old) = files.pop_front() {
                stored -= old.bytes.len();
            }
        }
        id
    }

    pub(crate) fn get(&self, id: &str) -> Option<StoredFile> {
        self.lock().iter().find(|f| f.id == id).cloned()
    }

    fn remove(&self, id: &str) -> Option<StoredFile> {
        let mut files = self.lock();
        let at = files.iter().position(|f| f.id == id)?;
        files.remove(at)
    }
}

/// The API's 404 for a file id it does not hold.
pub(super) fn not_found(file_id: &str) -> Response {
    error_with_param(
        StatusCode::NOT_FOUND,
        format!("No such File object: {file_id}"),
        "invalid_request_error",
        Some("id"),
        None,
    )
}

/// `POST /v1/files`.
pub(crate) async fn upload_file(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let uri = request.uri().clone();
    let Some(authorization) = bearer_key(request.headers()) else {
        return no_api_key();
    };
    let upload = match Upload::read(request).await {
        Ok(upload) => upload,
        Err(invalid) => return invalid.into_response(),
    };
    let file = StoredFile::new(
        &upload.filename,
        &upload.purpose,
        upload.bytes,
        Behaviour::Normal,
    );
    let lines = if file.purpose == "batch" {
        file.lines()
    } else {
        0
    };
    let mut guard = shared.follow_up(
        Incoming::new(
            WireFormat::OpenAiFileUpload,
            &uri,
            Some(authorization),
            upload.record,
        )
        .with_batch_requests(lines),
        Behaviour::Normal,
    );
    tracing::debug!(
        purpose = file.purpose,
        bytes = file.bytes.len(),
        "openai file upload"
    );
    let object = file.object();
    shared.openai_files().put(file);
    guard.finish();
    Json(object).into_response()
}

/// `GET /v1/files/{file_id}`.
pub(crate) async fn retrieve_file(
    State(shared): State<Arc<Shared>>,
    Path(file_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let mut guard = shared.follow_up(
        Incoming::new(
            WireFormat::OpenAiFileGet,
            &uri,
            Some(authorization),
            Value::Null,
        ),
        Behaviour::Normal,
    );
    guard.finish();
    match shared.openai_files().get(&file_id) {
        Some(file) => Json(file.object()).into_response(),
        None => not_found(&file_id),
    }
}

/// `GET /v1/files/{file_id}/content`.
pub(crate) async fn file_content(
    State(shared): State<Arc<Shared>>,
    Path(file_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let file = shared.openai_files().get(&file_id);
    let incoming = Incoming::new(
        WireFormat::OpenAiFileContent,
        &uri,
        Some(authorization),
        Value::Null,
    )
    .with_batch_requests(file.as_ref().map_or(0, StoredFile::lines));
    let behaviour = file
        .as_ref()
        .map_or(Behaviour::Normal, |f| f.behaviour.clone());
    let mut guard = shared.follow_up(incoming, behaviour);
    let Some(file) = file else {
        guard.finish();
        return not_found(&file_id);
    };
    video::download_as(
        file.bytes,
        "application/octet-stream",
        &file.behaviour,
        guard,
    )
}

/// `DELETE /v1/files/{file_id}`.
pub(crate) async fn delete_file(
    State(shared): State<Arc<Shared>>,
    Path(file_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let mut guard = shared.follow_up(
        Incoming::new(
            WireFormat::OpenAiFileDelete,
            &uri,
            Some(authorization),
            Value::Null,
        ),
        Behaviour::Normal,
    );
    guard.finish();
    match shared.openai_files().remove(&file_id) {
        Some(file) => {
            Json(json!({ "id": file.id, "object": "file", "deleted": true })).into_response()
        }
        None => not_found(&file_id),
    }
}

/// An upload the API accepts.
struct Upload {
    filename: String,
    purpose: String,
    bytes: Bytes,
    /// The form as the request log shows it (the file as its name, type and size).
    record: Value,
}

impl Upload {
    async fn read(request: Request) -> Result<Self, Invalid> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        let mut multipart = Multipart::from_request(request, &()).await.map_err(|_| {
            Invalid::new(
                format!(
                    "Invalid Content-Type header ({content_type}), expected multipart/form-data."
                ),
                None,
            )
        })?;
        let malformed = |err: axum::extract::multipart::MultipartError| {
            Invalid::new(format!("Could not parse multipart form: {err}"), None)
        };
        let mut purpose = None;
        let mut file = None;
        let mut record = serde_json::Map::new();
        while let Some(field) = multipart.next_field().await.map_err(malformed)? {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                let filename = field.file_name().unwrap_or("file").to_owned();
                let content_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(malformed)?;
                record.insert(
                    name,
                    json!({
                        "filename": filename,
                        "content_type": content_type,
                        "bytes": bytes.len(),
                    }),
                );
                file = Some((filename, bytes));
            } else {
                let text = field.text().await.map_err(malformed)?;
                if name == "purpose" {
                    purpose = Some(text.clone());
                }
                record.insert(name, Value::String(text));
            }
        }
        let purpose = purpose.ok_or_else(|| missing("purpose"))?;
        if !PURPOSES.contains(&purpose.as_str()) {
            return Err(invalid_value("purpose", &purpose, &PURPOSES));
        }
        let (filename, bytes) = file.ok_or_else(|| missing("file"))?;
        if purpose == "batch" && !filename.ends_with(".jsonl") {
            return Err(Invalid::new(
                "Invalid file format for Batch API. Must be .jsonl".to_owned(),
                None,
            ));
        }
        Ok(Self {
            filename,
            purpose,
            bytes,
            record: Value::Object(record),
        })
    }
}
