//! The multipart form of a transcription request: the body read up to the API's size limit,
//! the text fields under one spelling of their names, and the uploaded file.

use axum::body::Body;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{Map, Value};

use super::super::Invalid;

/// Largest request the API reads: 25 MiB.
pub(super) const MAX_REQUEST_BYTES: usize = 26_214_400;
/// How much of an oversized request the simulator still reads before answering 413, so that a
/// client still sending its body is not reset before it reads the answer.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Why a body was not read whole.
pub(super) enum BodyError {
    /// Past [`MAX_REQUEST_BYTES`]; `read` is the count at which the simulator noticed.
    TooLarge { read: usize },
    /// The client went away or sent a broken body.
    Broken,
}

/// The body, up to [`MAX_REQUEST_BYTES`]; past that it is read on (up to [`DRAIN_LIMIT`]) and
/// dropped.
pub(super) async fn read_body(body: Body) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut kept = BytesMut::new();
    let mut read = 0usize;
    let mut too_large = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        read = read.saturating_add(chunk.len());
        if too_large.is_none() && read > MAX_REQUEST_BYTES {
            too_large = Some(read);
            kept = BytesMut::new();
        }
        if too_large.is_none() {
            kept.extend_from_slice(&chunk);
        }
        if read > DRAIN_LIMIT {
            break;
        }
    }
    match too_large {
        Some(read) => Err(BodyError::TooLarge { read }),
        None => Ok(kept.freeze()),
    }
}

/// The uploaded file.
pub(super) struct Upload {
    pub(super) filename: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) bytes: Bytes,
}

/// A multipart form's text fields and its file.
pub(super) struct Form {
    /// Field names without a trailing `[]`, so `x[]` and `x` read alike; in arrival order.
    pub(super) fields: Vec<(String, String)>,
    /// Names that were sent with `[]` (array fields in the SDKs' spelling).
    pub(super) bracketed: Vec<String>,
    pub(super) file: Option<Upload>,
}

impl Form {
    pub(super) async fn read(request: Request) -> Result<Self, Invalid> {
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
        let malformed = |err: MultipartError| {
            Invalid::new(format!("Could not parse multipart form: {err}"), None)
        };
        let mut form = Form {
            fields: Vec::new(),
            bracketed: Vec::new(),
            file: None,
        };
        while let Some(field) = multipart.next_field().await.map_err(malformed)? {
            let raw_name = field.name().unwrap_or_default().to_owned();
            let name = match raw_name.strip_suffix("[]") {
                Some(name) => {
                    form.bracketed.push(name.to_owned());
                    name.to_owned()
                }
                None => raw_name,
            };
            if name == "file" {
                let filename = field.file_name().map(str::to_owned);
                let content_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(malformed)?;
                // A second file is ignored, as extra form fields are.
                form.file.get_or_insert(Upload {
                    filename,
                    content_type,
                    bytes,
                });
            } else {
                let value = field.text().await.map_err(malformed)?;
                form.fields.push((name, value));
            }
        }
        Ok(form)
    }

    /// The first value of `name` (either spelling).
    pub(super) fn one(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (either spelling), in order.
    pub(super) fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The form as the request log shows it: one string per field, an array for a field sent
    /// with `[]` or more than once, and the file's name, type and size instead of its bytes.
    pub(super) fn record(&self) -> Value {
        let mut record = Map::new();
        for (name, _) in &self.fields {
            if record.contains_key(name) {
                continue;
            }
            let values = self.all(name);
            let value = if values.len() > 1 || self.bracketed.contains(name) {
                Value::from(values)
            } else {
                Value::from(values.first().copied().unwrap_or_default())
            };
            record.insert(name.clone(), value);
        }
        if let Some(file) = &self.file {
            record.insert(
                "file".to_owned(),
                serde_json::json!({
                    "filename": file.filename,
                    "content_type": file.content_type,
                    "bytes": file.bytes.len(),
                }),
            );
        }
        Value::Object(record)
    }
}
