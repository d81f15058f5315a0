//! `GET /api/v1/batch/{id}/results`: an ended job's output and error files read back as one list
//! of results, a page at a time. The files are streamed from storage and only the page's lines
//! are parsed; the lines before it are skipped unread, the lines after it are not fetched.

use common::batch::store;
use common::batch::{Job, Owner};
use common::error::AppError;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::state::AppState;

/// One page of a job's results.
#[derive(Debug, Serialize)]
pub struct ResultsPage {
    /// `{custom_id, status: "succeeded", response}` (the chat completion) or
    /// `{custom_id, status: "failed", error: {code, message, status_code?}}`: the output file's
    /// lines first, then the error file's.
    pub results: Vec<Value>,
    /// Results in all: counted when the page reached the end of the files, else the job's
    /// answered plus failed requests.
    pub total: u64,
    /// Whether results follow this page.
    pub has_more: bool,
}

/// One line of an output or error file (`BatchRequestOutput`) as a result.
pub fn result_of(line: &Value) -> Value {
    let custom_id = line["custom_id"].clone();
    let response = &line["response"];
    let status_code = response["status_code"].as_u64();
    if line["error"].is_null() && status_code.is_some_and(|s| (200..300).contains(&s)) {
        return json!({
            "custom_id": custom_id,
            "status": "succeeded",
            "response": response["body"],
        });
    }
    let error = if line["error"].is_object() {
        json!({"code": line["error"]["code"], "message": line["error"]["message"]})
    } else {
        let refused = &response["body"]["error"];
        json!({
            "code": refused["code"],
            "message": refused["message"],
            "status_code": status_code,
        })
    };
    json!({"custom_id": custom_id, "status": "failed", "error": error})
}

/// Results `offset..offset + limit` of the ended `job` of `owner`. A file the sweeper already
/// removed reads as empty.
pub async fn page(
    state: &AppState,
    owner: Owner,
    job: &Job,
    offset: u64,
    limit: usize,
) -> Result<ResultsPage, AppError> {
    let mut results = Vec::with_capacity(limit.min(1000));
    let mut seen = 0u64;
    let mut has_more = false;
    let mut buf = Vec::new();
    'files: for id in [&job.output_file_id, &job.error_file_id]
        .into_iter()
        .flatten()
    {
        let Some(file) = store::file(state.db(), owner, id).await? else {
            continue;
        };
        let mut reader = match state
            .storage()
            .get_stream(owner.tenant_id, &file.storage_key)
            .await
        {
            Ok(r) => r,
            Err(common::storage::StorageError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        loop {
            buf.clear();
            let read = reader.read_until(b'\n', &mut buf).await.map_err(|e| {
                AppError::Unavailable(anyhow::Error::new(e).context("reading a batch result file"))
            })?;
            if read == 0 {
                break;
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if seen < offset {
                seen += 1;
                continue;
            }
            if results.len() == limit {
                has_more = true;
                break 'files;
            }
            seen += 1;
            let line: Value = serde_json::from_slice(&buf).map_err(|e| {
                AppError::Internal(anyhow::Error::new(e).context("a batch result line is not JSON"))
            })?;
            results.push(result_of(&line));
        }
    }
    let counted =
        u64::try_from(job.completed).unwrap_or(0) + u64::try_from(job.failed).unwrap_or(0);
    let total = if has_more {
        counted.max(seen + 1)
    } else {
        seen
    };
    Ok(ResultsPage {
        results,
        total,
        has_more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::batch::jsonl::{failed_line, refused_line, success_line};

    fn parsed(line: &str) -> Value {
        serde_json::from_str(line).unwrap_or_default()
    }

    #[test]
    fn lines_become_results() {
        let ok = result_of(&parsed(&success_line(
            "a",
            "req_1",
            &json!({"object": "chat.completion"}),
        )));
        assert_eq!(
            ok,
            json!({"custom_id": "a", "status": "succeeded",
                "response": {"object": "chat.completion"}})
        );
        let refused = result_of(&parsed(&refused_line("b", "req_2", 400, "bad", "no")));
        assert_eq!(
            refused,
            json!({"custom_id": "b", "status": "failed",
                "error": {"code": "bad", "message": "no", "status_code": 400}})
        );
        let failed = result_of(&parsed(&failed_line("c", "batch_cancelled", "cancelled")));
        assert_eq!(
            failed,
            json!({"custom_id": "c", "status": "failed",
                "error": {"code": "batch_cancelled", "message": "cancelled"}})
        );
    }
}
