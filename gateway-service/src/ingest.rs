//! Document ingestion as the gateway runs it: the upload form read within its limits, the file
//! stored in the tenant's `uploads` folder, a `semantic.documents.ingest` task published in a
//! session (the caller's, or one of its own), and the job's id remembered with that session so
//! that its events can be followed by the id alone (`GET /api/v1/ingest/{job_id}`,
//! `GET /api/v1/ingest/{job_id}/events`, `WS /ws/ingest/{job_id}`; see `crate::jobs`). No HTTP
//! types here beyond the multipart form.

use axum::extract::Multipart;
use common::auth::Claims;
use common::digest::{derived_uuid, sha256_hex};
use common::error::AppError;
use common::payloads::Payload;
use common::payloads::semantic::{DOCUMENT_FORMATS, INGEST, IngestPayload, MAX_DOCUMENT_BYTES};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::files::{self, FormRules, UploadForm};
use crate::session::traced_action;
use crate::state::AppState;

/// The text fields of the form.
const FIELDS: [&str; 6] = [
    "metadata",
    "document_id",
    "session_id",
    "tags",
    "tenant_id",
    "agent_id",
];

/// The largest document of this deployment: [`MAX_DOCUMENT_BYTES`], or less when uploads are
/// limited further (`STORAGE__MAX_UPLOAD_BYTES`).
pub fn max_document_bytes(state: &AppState) -> usize {
    MAX_DOCUMENT_BYTES.min(state.settings().storage.max_upload_bytes)
}

/// What `POST /api/v1/ingest` answers (202).
#[derive(Debug, Serialize)]
pub struct Job {
    /// The job: the task id of its events.
    pub job_id: Uuid,
    /// `processing`.
    pub status: &'static str,
    /// The document the job (re)writes.
    pub document_id: Uuid,
    /// The session whose response stream carries the job's events.
    pub session_id: Uuid,
    /// The file's name.
    pub name: String,
    /// Where its progress streams.
    pub websocket_url: String,
    /// Where its state can be polled.
    pub status_url: String,
}

/// The form, read and checked: the document to store and the payload that will name it.
#[derive(Debug)]
pub struct IngestForm {
    upload: UploadForm,
    payload: IngestPayload,
    session_id: Option<Uuid>,
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::BadRequest(message.into())
}

/// Reads the ingestion form: `file` (text, Markdown, HTML or PDF, within
/// [`max_document_bytes`]), `metadata` (a JSON object), `document_id` (to replace a document;
/// by default the id the file's content gives, so the same file ingested twice is one document),
/// `tags` (a JSON array or a comma-separated list; `metadata.tags` too), `session_id` (a session
/// of the caller's that also receives the progress), `agent_id` (kept in the metadata) and
/// `tenant_id` (the seed's: must be the token's when given).
pub async fn read_form(
    state: &AppState,
    claims: &Claims,
    multipart: Multipart,
) -> Result<IngestForm, AppError> {
    let formats: Vec<String> = DOCUMENT_FORMATS.iter().map(|f| (*f).to_owned()).collect();
    let form = files::read_multipart(
        multipart,
        FormRules {
            max_file_bytes: max_document_bytes(state),
            allowed_extensions: &formats,
            fields: &FIELDS,
        },
    )
    .await?;
    if let Some(tenant) = form.text("tenant_id")?
        && tenant.trim() != claims.tenant_id.to_string()
    {
        return Err(AppError::Forbidden(
            "tenant_id is not the tenant of the token".into(),
        ));
    }
    let mut metadata = match form.text("metadata")? {
        None => Map::new(),
        Some(raw) if raw.trim().is_empty() => Map::new(),
        Some(raw) => match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(map)) => map,
            _ => return Err(bad("metadata must be a JSON object")),
        },
    };
    let mut tags = match metadata.remove("tags") {
        None => Vec::new(),
        Some(Value::Array(values)) => values
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(bad("metadata.tags must hold strings")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("metadata.tags must be an array of strings")),
    };
    if let Some(raw) = form.text("tags")? {
        tags.extend(parse_tags(&raw)?);
    }
    tags.sort();
    tags.dedup();
    if let Some(agent) = form.text("agent_id")? {
        metadata.insert("agent_id".into(), Value::String(agent));
    }
    let uuid_field = |name: &str| -> Result<Option<Uuid>, AppError> {
        form.text(name)?
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                v.trim()
                    .parse::<Uuid>()
                    .map_err(|_| bad(format!("{name} is not a UUID")))
            })
            .transpose()
    };
    let given_document = match uuid_field("document_id")? {
        Some(id) => Some(id),
        None => match metadata.remove("document_id") {
            None => None,
            Some(Value::String(s)) => Some(
                s.parse::<Uuid>()
                    .map_err(|_| bad("metadata.document_id is not a UUID"))?,
            ),
            Some(_) => return Err(bad("metadata.document_id is not a UUID")),
        },
    };
    let session_id = uuid_field("session_id")?;
    let (file, filename, ext) = form.file.ok_or_else(|| bad("the form has no file part"))?;
    if file.is_empty() {
        return Err(bad("the file is empty"));
    }
    let document_id = given_document.unwrap_or_else(|| content_document_id(claims, &file));
    let name: String = filename.chars().take(255).collect();
    let payload = IngestPayload {
        // A stand-in until the file is stored; checked with it.
        key: format!("{}/uploads/pending.{ext}", claims.tenant_id),
        document_id,
        name,
        format: ext.clone(),
        tags,
        metadata: (!metadata.is_empty()).then_some(metadata),
    };
    payload.validate().map_err(|e| bad(e.0))?;
    Ok(IngestForm {
        upload: UploadForm {
            file,
            filename,
            ext,
            user_input: Map::new(),
            user_settings: Map::new(),
        },
        payload,
        session_id,
    })
}

/// Tags as a JSON array of strings or a comma-separated list.
fn parse_tags(raw: &str) -> Result<Vec<String>, AppError> {
    let raw = raw.trim();
    if raw.starts_with('[') {
        return serde_json::from_str::<Vec<String>>(raw)
            .map_err(|_| bad("tags must be a JSON array of strings or a comma-separated list"));
    }
    Ok(raw
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The id a document gets from its content: the same file of the same user is one document.
fn content_document_id(claims: &Claims, file: &[u8]) -> Uuid {
    derived_uuid(&[
        &claims.tenant_id.to_string(),
        &claims.sub.to_string(),
        "document",
        &sha256_hex(file),
    ])
}

/// Stores the file, publishes the job in the caller's session (or a new one) and remembers
/// which session it runs in. `base` is where the links of the answer point (`http://host`).
pub async fn start(
    state: &AppState,
    claims: &Claims,
    form: IngestForm,
    base: &str,
) -> Result<Job, AppError> {
    let IngestForm {
        upload,
        mut payload,
        session_id,
    } = form;
    let session_id = state.claim_session(claims, session_id).await?;
    let stored = files::store(state.storage(), claims.tenant_id, upload).await?;
    payload.key = stored.key;
    let data = serde_json::to_value(&payload)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("ingest payload: {e}")))?;
    let (action, span) = traced_action(INGEST, claims, session_id, data);
    crate::jobs::publish(state, &action).await?;
    span.in_scope(|| tracing::info!(document_id = %payload.document_id, "ingestion published"));
    let ws_base = crate::links::websocket_base(base);
    Ok(Job {
        job_id: action.task_id,
        status: "processing",
        document_id: payload.document_id,
        session_id,
        name: payload.name,
        websocket_url: format!("{ws_base}/ws/ingest/{}", action.task_id),
        status_url: format!("{base}/api/v1/ingest/{}", action.task_id),
    })
}

/// The session a job of the caller runs in: `NotFound` for an unknown or expired job and for
/// another caller's (the session's owner is checked).
pub async fn job_session(
    state: &AppState,
    claims: &Claims,
    job_id: Uuid,
) -> Result<Uuid, AppError> {
    crate::jobs::session(state, claims, job_id, "ingestion job").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_as_json_or_a_list() {
        assert_eq!(parse_tags(r#"["a", "b c"]"#).unwrap(), ["a", "b c"]);
        assert_eq!(parse_tags(" a, b ,,c ").unwrap(), ["a", "b", "c"]);
        assert!(parse_tags("[1]").is_err());
    }
}
