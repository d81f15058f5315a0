//! Files: the upload form of `POST /api/v1/storage/upload` (one `file` part, the JSON-encoded
//! fields `userInput` and `userSettings`) read within its limits, checked against the extension
//! allow-list and stored in the tenant's `uploads` folder; and the response of a signed download,
//! with `Range` for seeking in audio and video.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::multipart::{Field, Multipart, MultipartError};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use common::error::AppError;
use common::storage::{Object, Storage, StorageSettings, content_type_of, key};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The folder uploads are stored in.
pub const UPLOAD_FOLDER: &str = "uploads";

/// The largest `userInput` or `userSettings` field, bytes.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// Room for the form fields and the multipart framing on top of the file itself.
pub const FORM_OVERHEAD_BYTES: usize = 1 << 20;

/// The upload form, read and checked.
#[derive(Debug)]
pub struct UploadForm {
    /// The file's content.
    pub file: Bytes,
    /// The file name the client sent.
    pub filename: String,
    /// Its extension, lowercase and on the allow-list.
    pub ext: String,
    /// `userInput`, a JSON object (empty when absent).
    pub user_input: Map<String, Value>,
    /// `userSettings`, a JSON object (empty when absent).
    pub user_settings: Map<String, Value>,
}

impl UploadForm {
    /// `userInput.force_filename`: `true` (or `"true"`) keeps the client's file name.
    pub fn force_filename(&self) -> bool {
        match self.user_input.get("force_filename") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        }
    }
}

/// What the upload route answers in the envelope's `data`.
#[derive(Debug, Serialize)]
pub struct Uploaded {
    /// The storage key: `{tenant}/uploads/{filename}`.
    pub key: String,
    /// A URL that opens the file without a token, until `url_expires_at`.
    pub url: String,
    /// When `url` stops working.
    pub url_expires_at: DateTime<Utc>,
    /// The stored file's name (the key's last segment).
    pub filename: String,
    /// The name the client sent.
    pub original_filename: String,
    /// Bytes.
    pub size: u64,
    /// The MIME type it is served with (from the extension, never from the client).
    pub content_type: String,
}

/// A multipart read error as the client's error: 413 past the body limit (`limit` bytes), 400
/// for a malformed body.
pub fn multipart_error(e: MultipartError, limit: usize) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge(format!("the request is larger than {limit} bytes"))
    } else {
        AppError::BadRequest(format!("invalid multipart body: {}", e.body_text()))
    }
}

/// A part's content, or `None` once it passes `max` bytes (the rest is not read).
pub async fn read_part(
    field: &mut Field<'_>,
    max: usize,
    limit: usize,
) -> Result<Option<Bytes>, AppError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        if buf.len() + chunk.len() > max {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

/// A JSON-encoded form field: absent or blank is `{}`; anything but a JSON object is 400
/// naming the field.
fn json_field(name: &str, raw: &[u8]) -> Result<Map<String, Value>, AppError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AppError::BadRequest(format!(
            "{name} must be a JSON object"
        ))),
        Err(e) => Err(AppError::BadRequest(format!(
            "{name} is not valid JSON: {e}"
        ))),
    }
}

/// The lowercase extension of `filename` when the allow-list has it; 400 otherwise.
pub fn allowed_extension(filename: &str, allowed: &[String]) -> Result<String, AppError> {
    let refused = || {
        AppError::BadRequest(format!(
            "this file type is not allowed; allowed extensions: {}",
            allowed.join(", ")
        ))
    };
    let (_, ext) = filename.rsplit_once('.').ok_or_else(refused)?;
    let ext = key::extension(ext).map_err(|_| refused())?;
    if allowed.contains(&ext) {
        Ok(ext)
    } else {
        Err(refused())
    }
}

/// What a multipart form may hold: its one `file` part (an extension of `allowed_extensions`, at
/// most `max_file_bytes`) and the text fields read (`fields`, at most [`MAX_FIELD_BYTES`] each);
/// other parts are skipped.
#[derive(Debug, Clone, Copy)]
pub struct FormRules<'a> {
    /// The largest file, bytes (413 above).
    pub max_file_bytes: usize,
    /// The extensions a file may have, lowercase.
    pub allowed_extensions: &'a [String],
    /// The names of the text fields read.
    pub fields: &'a [&'a str],
}

/// A multipart form as read by [`read_multipart`].
#[derive(Debug)]
pub struct Form {
    /// The `file` part: its content, the name the client sent, its checked extension.
    pub file: Option<(Bytes, String, String)>,
    /// The text fields named in the rules, in the order sent (a name may come more than once).
    pub fields: Vec<(String, Bytes)>,
}

impl Form {
    /// The last value of the text field `name`, as UTF-8 (400 when it is not).
    pub fn text(&self, name: &str) -> Result<Option<String>, AppError> {
        match self.fields.iter().rev().find(|(n, _)| n == name) {
            None => Ok(None),
            Some((_, raw)) => String::from_utf8(raw.to_vec())
                .map(Some)
                .map_err(|_| AppError::BadRequest(format!("{name} is not UTF-8 text"))),
        }
    }
}

/// Reads a multipart form within `rules`: the `file` part's name is checked before its content
/// is read; a file over the limit is 413, a second `file` part 400.
pub async fn read_multipart(
    mut multipart: Multipart,
    rules: FormRules<'_>,
) -> Result<Form, AppError> {
    let limit = rules.max_file_bytes.saturating_add(FORM_OVERHEAD_BYTES);
    let mut form = Form {
        file: None,
        fields: Vec::new(),
    };
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        match field.name() {
            Some("file") => {
                if form.file.is_some() {
                    return Err(AppError::BadRequest(
                        "send exactly one part named file".into(),
                    ));
                }
                let filename = field
                    .file_name()
                    .filter(|n| !n.trim().is_empty())
                    .ok_or_else(|| AppError::BadRequest("the file part has no filename".into()))?
                    .to_owned();
                let ext = allowed_extension(&filename, rules.allowed_extensions)?;
                let bytes = read_part(&mut field, rules.max_file_bytes, limit)
                    .await?
                    .ok_or_else(|| {
                        AppError::PayloadTooLarge(format!(
                            "the file is larger than {} bytes",
                            rules.max_file_bytes
                        ))
                    })?;
                form.file = Some((bytes, filename, ext));
            }
            Some(name) if rules.fields.contains(&name) => {
                let name = name.to_owned();
                let raw = read_part(&mut field, MAX_FIELD_BYTES, limit)
                    .await?
                    .ok_or_else(|| {
                        AppError::PayloadTooLarge(format!(
                            "{name} is larger than {MAX_FIELD_BYTES} bytes"
                        ))
                    })?;
                form.fields.push((name, raw));
            }
            _ => {}
        }
    }
    Ok(form)
}

/// Reads the upload form: the `file` part (at most `STORAGE__MAX_UPLOAD_BYTES`, else 413; an
/// extension of the allow-list), `userInput` and `userSettings`; other parts are skipped.
pub async fn read_form(
    multipart: Multipart,
    settings: &StorageSettings,
) -> Result<UploadForm, AppError> {
    let form = read_multipart(
        multipart,
        FormRules {
            max_file_bytes: settings.max_upload_bytes,
            allowed_extensions: &settings.allowed_extensions,
            fields: &["userInput", "userSettings"],
        },
    )
    .await?;
    let mut user_input = Map::new();
    let mut user_settings = Map::new();
    for (name, raw) in &form.fields {
        let map = json_field(name, raw)?;
        if name == "userInput" {
            user_input = map;
        } else {
            user_settings = map;
        }
    }
    let (file, filename, ext) = form
        .file
        .ok_or_else(|| AppError::BadRequest("the form has no file part".into()))?;
    Ok(UploadForm {
        file,
        filename,
        ext,
        user_input,
        user_settings,
    })
}

/// Stores an upload of `tenant` in its `uploads` folder: under a generated name, or with
/// `force_filename` under the client's name, sanitized (replacing a file of the same name).
pub async fn store(
    storage: &Storage,
    tenant: Uuid,
    form: UploadForm,
) -> Result<Uploaded, AppError> {
    let content_type = content_type_of(Some(&form.ext));
    let stored = if form.force_filename() {
        storage
            .put_named(
                tenant,
                UPLOAD_FOLDER,
                &form.filename,
                &content_type,
                form.file,
            )
            .await?
    } else {
        storage
            .put(tenant, UPLOAD_FOLDER, &form.ext, &content_type, form.file)
            .await?
    };
    Ok(Uploaded {
        key: stored.key,
        url: stored.url,
        url_expires_at: stored.url_expires_at,
        filename: stored.filename,
        original_filename: form.filename,
        size: stored.size,
        content_type: stored.content_type,
    })
}

/// The policy of a served file: nothing in it runs (a sandbox, no scripts, no requests), so an
/// uploaded document can never act as a page of the gateway's origin.
const FILE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

/// The response of a signed download valid until `expires` (Unix seconds): the object with its
/// type, shown in the browser for audio, video and images and downloaded otherwise; one byte
/// range for a `Range` request (206, or 416 when outside the file; several ranges get the whole
/// file).
pub fn object_response(
    object: Object,
    filename: &str,
    expires: u64,
    request: &HeaderMap,
) -> Response {
    let len = object.size();
    let media = ["audio/", "video/", "image/"]
        .iter()
        .any(|p| object.content_type.starts_with(p));
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if media { "inline" } else { "attachment" },
        utf8_percent_encode(filename, NON_ALPHANUMERIC)
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let max_age = expires.saturating_sub(now).min(3600);
    let mut headers = HeaderMap::new();
    let mut set = |name, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, object.content_type.clone());
    set(header::CONTENT_DISPOSITION, disposition);
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::CACHE_CONTROL, format!("private, max-age={max_age}"));
    set(header::CONTENT_SECURITY_POLICY, FILE_CSP.into());
    let range = request
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| http_range_header::parse_range_header(v).ok())
        .map(|ranges| ranges.validate(len));
    match range {
        Some(Ok(ranges)) if ranges.len() == 1 => {
            let (start, end) = (*ranges[0].start(), *ranges[0].end());
            set(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            let body = object
                .bytes
                .slice(usize::try_from(start).unwrap_or(0)..=usize::try_from(end).unwrap_or(0));
            (StatusCode::PARTIAL_CONTENT, headers, Body::from(body)).into_response()
        }
        Some(Err(_)) => {
            set(header::CONTENT_RANGE, format!("bytes */{len}"));
            (StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response()
        }
        _ => (StatusCode::OK, headers, Body::from(object.bytes)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["mp3".into(), "png".into()]
    }

    #[test]
    fn extensions_come_from_the_allow_list() {
        assert_eq!(allowed_extension("a.MP3", &allowed()).unwrap(), "mp3");
        for bad in ["a.exe", "a", "a.", "a.m/p3", "mp3"] {
            let e = allowed_extension(bad, &allowed()).unwrap_err();
            assert!(e.to_string().contains("mp3, png"), "{bad}: {e}");
        }
    }

    #[test]
    fn json_fields_name_themselves() {
        assert!(json_field("userInput", b"  ").unwrap().is_empty());
        let e = json_field("userInput", b"{nope").unwrap_err().to_string();
        assert!(e.starts_with("userInput is not valid JSON"), "{e}");
        let e = json_field("userSettings", b"[1]").unwrap_err().to_string();
        assert_eq!(e, "userSettings must be a JSON object");
    }

    async fn body(r: Response) -> (StatusCode, HeaderMap, Bytes) {
        let (parts, body) = r.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, bytes)
    }

    #[tokio::test]
    async fn ranges_for_seeking() {
        let object = || Object {
            bytes: Bytes::from_static(b"0123456789"),
            content_type: "audio/mpeg".into(),
        };
        let mut req = HeaderMap::new();
        let (status, headers, bytes) = body(object_response(object(), "a.mp3", 0, &req)).await;
        assert_eq!((status, &bytes[..]), (StatusCode::OK, &b"0123456789"[..]));
        assert_eq!(
            headers[header::CONTENT_DISPOSITION],
            "inline; filename*=UTF-8''a%2Emp3"
        );
        for (range, status, want, content_range) in [
            (
                "bytes=2-4",
                StatusCode::PARTIAL_CONTENT,
                &b"234"[..],
                "bytes 2-4/10",
            ),
            (
                "bytes=7-",
                StatusCode::PARTIAL_CONTENT,
                b"789",
                "bytes 7-9/10",
            ),
            (
                "bytes=-2",
                StatusCode::PARTIAL_CONTENT,
                b"89",
                "bytes 8-9/10",
            ),
            (
                "bytes=20-30",
                StatusCode::RANGE_NOT_SATISFIABLE,
                b"",
                "bytes */10",
            ),
        ] {
            req.insert(header::RANGE, HeaderValue::from_static(range));
            let (s, h, b) = body(object_response(object(), "a.mp3", 0, &req)).await;
            assert_eq!((s, &b[..]), (status, want), "{range}");
            assert_eq!(h[header::CONTENT_RANGE], content_range);
        }
        req.insert(header::RANGE, HeaderValue::from_static("bytes=0-1,4-5"));
        let (s, _, b) = body(object_response(object(), "a.mp3", 0, &req)).await;
        assert_eq!((s, b.len()), (StatusCode::OK, 10));
    }
}
