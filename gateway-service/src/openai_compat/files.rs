//! OpenAI's Files API over the batch files: `POST /v1/files` (multipart `file` + `purpose`; only
//! `batch` inputs, streamed to a spool, at most `BATCH__MAX_FILE_BYTES`), the list, one file,
//! its deletion and its content, streamed from storage. Objects in OpenAI's shapes.

use axum::body::Body;
use axum::extract::multipart::{Field, Multipart};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::auth::Claims;
use common::error::AppError;
use common::http::PageRule;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::OpenAiError;
use crate::batch::{self, INPUT_PURPOSE, Spool};
use crate::files::{FORM_OVERHEAD_BYTES, multipart_error, read_part};
use crate::state::AppState;

/// `GET /v1/files`'s page sizes (OpenAI's).
pub const FILES_PAGE: PageRule = PageRule::new(10_000, 10_000);
/// The largest text field of the upload form, bytes.
const MAX_FIELD_BYTES: usize = 1024;
/// `expires_after[seconds]`'s range (OpenAI's: an hour to 30 days).
const EXPIRES_AFTER_SECS: std::ops::RangeInclusive<i64> = 3600..=2_592_000;

/// An uploaded file, spooled, with its form fields.
#[derive(Debug)]
pub struct Upload {
    /// The content, on local disk.
    pub spool: Spool,
    /// The name the client sent.
    pub filename: String,
    /// `expires_after[seconds]`, when sent.
    pub expires_in: Option<chrono::Duration>,
}

/// A list in OpenAI's cursor-page shape: `{object: "list", data, first_id, last_id, has_more}`.
pub fn list_object(data: Vec<Value>, has_more: bool) -> Value {
    let id = |v: Option<&Value>| v.map_or(Value::Null, |v| v["id"].clone());
    json!({
        "object": "list",
        "first_id": id(data.first()),
        "last_id": id(data.last()),
        "has_more": has_more,
        "data": data,
    })
}

fn missing(param: &str) -> OpenAiError {
    OpenAiError::invalid_request(
        format!("Missing required parameter: '{param}'."),
        Some(param),
    )
}

async fn text_field(
    field: &mut Field<'_>,
    name: &str,
    limit: usize,
) -> Result<String, OpenAiError> {
    let raw = read_part(field, MAX_FIELD_BYTES, limit)
        .await?
        .ok_or_else(|| {
            OpenAiError::invalid_request(format!("'{name}' is too long."), Some(name))
        })?;
    String::from_utf8(raw.to_vec()).map_err(|_| {
        OpenAiError::invalid_request(format!("'{name}' is not UTF-8 text."), Some(name))
    })
}

fn check_purpose(purpose: &str) -> Result<(), OpenAiError> {
    if purpose == INPUT_PURPOSE {
        return Ok(());
    }
    Err(OpenAiError::invalid_request(
        format!(
            "Invalid value for 'purpose': '{purpose}'. This server's Files API holds batch \
             input files only: use purpose 'batch'."
        ),
        Some("purpose"),
    ))
}

/// Reads `POST /v1/files`'s form: `purpose` (only `batch`), the `file` part streamed into a
/// spool (413 past `BATCH__MAX_FILE_BYTES`), `expires_after[anchor]` (`created_at`) and
/// `expires_after[seconds]` (3600 to 2592000). Other parts are skipped.
pub async fn read_upload(
    state: &AppState,
    mut multipart: Multipart,
) -> Result<Upload, OpenAiError> {
    let settings = &state.settings().batch;
    let max = settings.file_limit();
    let limit = usize::try_from(max)
        .unwrap_or(usize::MAX)
        .saturating_add(FORM_OVERHEAD_BYTES);
    let mut file: Option<(Spool, String)> = None;
    let mut purpose = None;
    let mut expires_in = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        match field.name() {
            Some("purpose") => {
                let p = text_field(&mut field, "purpose", limit).await?;
                // Refused before a file that follows is read.
                check_purpose(&p)?;
                purpose = Some(p);
            }
            Some("expires_after[anchor]") => {
                let anchor = text_field(&mut field, "expires_after[anchor]", limit).await?;
                if anchor != "created_at" {
                    return Err(OpenAiError::invalid_request(
                        format!(
                            "Invalid value for 'expires_after.anchor': '{anchor}'; only 'created_at' is supported."
                        ),
                        Some("expires_after.anchor"),
                    ));
                }
            }
            Some("expires_after[seconds]") => {
                let raw = text_field(&mut field, "expires_after[seconds]", limit).await?;
                let secs = raw
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|s| EXPIRES_AFTER_SECS.contains(s))
                    .ok_or_else(|| {
                        OpenAiError::invalid_request(
                            "Invalid value for 'expires_after.seconds': it must be between 3600 and 2592000.",
                            Some("expires_after.seconds"),
                        )
                    })?;
                expires_in = Some(chrono::Duration::seconds(secs));
            }
            Some("file") => {
                if file.is_some() {
                    return Err(OpenAiError::invalid_request(
                        "Send exactly one file.",
                        Some("file"),
                    ));
                }
                let filename = field
                    .file_name()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .unwrap_or("upload.jsonl")
                    .to_owned();
                common::text::check("the file name", &filename, batch::MAX_FILENAME_CHARS)
                    .map_err(|m| OpenAiError::invalid_request(m, Some("file")))?;
                let mut spool = Spool::create(&settings.spool(), max).await?;
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| OpenAiError::from(multipart_error(e, limit)).param("file"))?
                {
                    spool
                        .write(&chunk)
                        .await
                        .map_err(|e| OpenAiError::from(e).param("file"))?;
                }
                spool.finish().await?;
                file = Some((spool, filename));
            }
            _ => {}
        }
    }
    if purpose.is_none() {
        return Err(missing("purpose"));
    }
    let (spool, filename) = file.ok_or_else(|| missing("file"))?;
    if spool.bytes() == 0 {
        return Err(OpenAiError::invalid_request(
            "The file is empty.",
            Some("file"),
        ));
    }
    Ok(Upload {
        spool,
        filename,
        expires_in,
    })
}

/// Stores an upload and answers its `FileObject`.
pub async fn create(
    state: &AppState,
    claims: &Claims,
    upload: Upload,
) -> Result<Value, OpenAiError> {
    let file = batch::store_input(
        state,
        claims,
        &upload.spool,
        &upload.filename,
        upload.expires_in,
    )
    .await?;
    Ok(file.to_openai())
}

/// `GET /v1/files` parameters.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    after: Option<String>,
    limit: Option<i64>,
    order: Option<String>,
    purpose: Option<String>,
}

/// The caller's files, newest first (`order=desc`, the only order kept by the index).
pub async fn list(state: &AppState, claims: &Claims, p: &ListParams) -> Result<Value, OpenAiError> {
    let limit = FILES_PAGE
        .limit(p.limit)
        .map_err(|e| OpenAiError::from(e).param("limit"))?;
    if p.order.as_deref().is_some_and(|o| o != "desc") {
        return Err(OpenAiError::invalid_request(
            "Invalid value for 'order': only 'desc' (newest first) is supported.",
            Some("order"),
        ));
    }
    let page = batch::list_files(
        state,
        claims,
        p.after.as_deref(),
        p.purpose.as_deref(),
        limit,
    )
    .await?;
    let data = page.items.iter().map(|f| f.to_openai()).collect();
    Ok(list_object(data, page.has_more))
}

/// `{id, object: "file", deleted: true}` once the caller's file is gone.
pub async fn delete(state: &AppState, claims: &Claims, id: &str) -> Result<Value, OpenAiError> {
    batch::delete_file(state, claims, id).await?;
    Ok(json!({"id": id, "object": "file", "deleted": true}))
}

/// The caller's file's bytes, streamed from storage.
pub async fn content(state: &AppState, claims: &Claims, id: &str) -> Result<Response, OpenAiError> {
    let file = batch::file(state, claims, id).await?;
    let reader = state
        .storage()
        .get_stream(file.tenant_id, &file.storage_key)
        .await
        .map_err(|e| match e {
            // The row outlived its object (a sweep in progress): the file is gone.
            common::storage::StorageError::NotFound => batch::no_such_file(id),
            e => AppError::from(e),
        })?;
    let mut response = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(reader)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let disposition = format!(
        "attachment; filename*=UTF-8''{}",
        utf8_percent_encode(&file.filename, NON_ALPHANUMERIC)
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_have_openais_cursor_shape() {
        let page = list_object(vec![json!({"id": "a"}), json!({"id": "b"})], true);
        assert_eq!(page["object"], "list");
        assert_eq!(page["first_id"], "a");
        assert_eq!(page["last_id"], "b");
        assert_eq!(page["has_more"], true);
        let empty = list_object(Vec::new(), false);
        assert!(empty["first_id"].is_null() && empty["data"] == json!([]));
    }

    #[test]
    fn only_batch_files_are_taken() {
        assert!(check_purpose("batch").is_ok());
        let e = check_purpose("fine-tune").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.body()["error"]["param"], "purpose");
    }
}
