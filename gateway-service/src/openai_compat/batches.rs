//! OpenAI's Batch API: `POST /v1/batches` (an uploaded `batch` file run against
//! `/v1/chat/completions` within `24h`), one batch, the list and the cancel, as OpenAI's `Batch`
//! objects. The jobs are `crate::batch`'s, shared with `/api/v1/batch`.

use common::auth::Claims;
use common::batch::{CHAT_ENDPOINT, COMPLETION_WINDOW};
use common::http::PageRule;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::OpenAiError;
use super::files::list_object;
use crate::batch::{self, INPUT_PURPOSE};
use crate::state::AppState;

/// `GET /v1/batches`'s page sizes (OpenAI's).
pub const BATCHES_PAGE: PageRule = PageRule::new(20, 100);

/// The body of `POST /v1/batches`.
#[derive(Debug, Deserialize)]
pub struct CreateBatchRequest {
    /// An uploaded file of purpose `batch`.
    pub input_file_id: String,
    /// `/v1/chat/completions`.
    pub endpoint: String,
    /// `24h`.
    pub completion_window: String,
    /// Up to 16 string pairs.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Accepted and not used: output files are kept `BATCH__RETENTION_DAYS`.
    #[serde(default)]
    pub output_expires_after: Option<Value>,
}

const REQUIRED: [&str; 3] = ["input_file_id", "endpoint", "completion_window"];

impl CreateBatchRequest {
    /// Parses and checks the body; errors name the parameter, as OpenAI's do.
    pub fn parse(body: &[u8]) -> Result<Self, OpenAiError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            OpenAiError::invalid_request(format!("The request body is not valid JSON: {e}"), None)
        })?;
        let Some(object) = value.as_object() else {
            return Err(OpenAiError::invalid_request(
                "The request body must be a JSON object.",
                None,
            ));
        };
        if let Some(param) = REQUIRED
            .iter()
            .find(|p| object.get(**p).is_none_or(Value::is_null))
        {
            return Err(OpenAiError::invalid_request(
                format!("Missing required parameter: '{param}'."),
                Some(param),
            ));
        }
        let request: Self = serde_path_to_error::deserialize(&value).map_err(|e| {
            let param = e.path().to_string();
            OpenAiError::invalid_request(
                format!("Invalid value for '{param}': {}.", e.into_inner()),
                Some(&param),
            )
        })?;
        request.check()?;
        Ok(request)
    }

    fn check(&self) -> Result<(), OpenAiError> {
        if self.endpoint != CHAT_ENDPOINT {
            return Err(OpenAiError::invalid_request(
                format!(
                    "Invalid value for 'endpoint': '{}' is not supported; this server runs \
                     batches against '{CHAT_ENDPOINT}' only.",
                    self.endpoint
                ),
                Some("endpoint"),
            ));
        }
        if self.completion_window != COMPLETION_WINDOW {
            return Err(OpenAiError::invalid_request(
                format!(
                    "Invalid value for 'completion_window': '{}'; the only supported value is \
                     '{COMPLETION_WINDOW}'.",
                    self.completion_window
                ),
                Some("completion_window"),
            ));
        }
        if let Some(metadata) = &self.metadata {
            batch::check_metadata(metadata)
                .map_err(|m| OpenAiError::invalid_request(m, Some("metadata")))?;
        }
        Ok(())
    }
}

/// Creates a batch over the caller's input file and answers its `Batch` (`validating`).
pub async fn create(
    state: &AppState,
    claims: &Claims,
    request: CreateBatchRequest,
) -> Result<Value, OpenAiError> {
    let input = batch::file(state, claims, &request.input_file_id)
        .await
        .map_err(|e| OpenAiError::from(e).param("input_file_id"))?;
    if input.purpose != INPUT_PURPOSE {
        return Err(OpenAiError::invalid_request(
            format!(
                "The file {} has purpose '{}'; a batch's input file must have purpose \
                 '{INPUT_PURPOSE}'.",
                input.id, input.purpose
            ),
            Some("input_file_id"),
        ));
    }
    let job = batch::start(state, claims, &input, request.metadata).await?;
    Ok(job.to_openai())
}

/// `GET /v1/batches` parameters.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    after: Option<String>,
    limit: Option<i64>,
}

/// The caller's batches, newest first.
pub async fn list(state: &AppState, claims: &Claims, p: &ListParams) -> Result<Value, OpenAiError> {
    let limit = BATCHES_PAGE
        .limit(p.limit)
        .map_err(|e| OpenAiError::from(e).param("limit"))?;
    let page = batch::list_jobs(state, claims, p.after.as_deref(), limit).await?;
    let data = page.items.iter().map(|j| j.to_openai()).collect();
    Ok(list_object(data, page.has_more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(body: Value) -> (String, Value) {
        let e = CreateBatchRequest::parse(body.to_string().as_bytes()).unwrap_err();
        let b = e.body();
        (
            b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            b["error"]["param"].clone(),
        )
    }

    #[test]
    fn each_refusal_names_its_parameter() {
        let good = json!({"input_file_id": "file-1", "endpoint": "/v1/chat/completions",
            "completion_window": "24h", "metadata": {"k": "v"}});
        assert!(CreateBatchRequest::parse(good.to_string().as_bytes()).is_ok());
        let with = |k: &str, v: Value| {
            let mut b = good.clone();
            b[k] = v;
            b
        };
        let (m, p) = refused(with("endpoint", json!("/v1/embeddings")));
        assert_eq!(p, "endpoint");
        assert!(m.contains("/v1/chat/completions"), "{m}");
        let (_, p) = refused(with("completion_window", json!("48h")));
        assert_eq!(p, "completion_window");
        let many: Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        let (_, p) = refused(with("metadata", Value::Object(many)));
        assert_eq!(p, "metadata");
        let (m, p) =
            refused(json!({"endpoint": "/v1/chat/completions", "completion_window": "24h"}));
        assert_eq!(
            (m.as_str(), p),
            (
                "Missing required parameter: 'input_file_id'.",
                json!("input_file_id")
            )
        );
        let (_, p) = refused(with("input_file_id", json!(5)));
        assert_eq!(p, "input_file_id");
    }
}
