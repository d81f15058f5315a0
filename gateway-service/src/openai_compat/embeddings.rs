//! `POST /v1/embeddings`: OpenAI's Embeddings request as a `semantic.embeddings.create` task. The worker
//! answers every vector as base64 of little-endian float32; the response gives them so for
//! `encoding_format: "base64"` (what the official Python SDK asks for when the caller names no
//! format, and decodes itself) and as numbers for `float`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::auth::Claims;
use common::payloads::Payload;
use common::payloads::semantic::{EMBED, EmbedPayload};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::OpenAiError;
use crate::speech::Failure;
use crate::state::AppState;

/// The request, as OpenAI defines it.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    /// A text, or a list of texts (token arrays are refused: the tokenizer is the model's).
    pub input: Value,
    /// The embedding model (`default` for the worker's).
    pub model: String,
    /// `float` or `base64` (default `float`).
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// Fewer dimensions (`text-embedding-3-*` only).
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// The end user, accepted and not used.
    #[serde(default)]
    pub user: Option<String>,
}

impl EmbeddingsRequest {
    /// Parses and checks the body; errors name the field, as OpenAI's do.
    pub fn parse(body: &[u8]) -> Result<Self, OpenAiError> {
        let request: Self = serde_json::from_slice(body).map_err(|e| {
            OpenAiError::invalid_request(format!("The request body is not valid: {e}"), None)
        })?;
        if let Some(f) = request.encoding_format.as_deref()
            && f != "float"
            && f != "base64"
        {
            return Err(OpenAiError::invalid_request(
                format!("'{f}' is not one of ['float', 'base64'] - 'encoding_format'"),
                Some("encoding_format"),
            ));
        }
        Ok(request)
    }

    /// The texts: `input` as a string or a list of strings.
    fn texts(&self) -> Result<Vec<String>, OpenAiError> {
        let refused = |why: &str| OpenAiError::invalid_request(why, Some("input"));
        match &self.input {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(items) if items.iter().all(Value::is_string) => Ok(items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()),
            Value::Array(_) => Err(refused(
                "input must be a string or a list of strings; token arrays are not supported here",
            )),
            _ => Err(refused("input must be a string or a list of strings")),
        }
    }
}

/// Answers a parsed request.
pub async fn create(
    state: &AppState,
    claims: &Claims,
    request: &EmbeddingsRequest,
) -> Result<Response, OpenAiError> {
    let payload = EmbedPayload {
        input: request.texts()?,
        model: Some(request.model.clone()).filter(|m| !m.is_empty()),
        dimensions: request.dimensions,
    };
    payload.validate().map_err(|e| {
        let param = if e.0.contains("dimensions") {
            "dimensions"
        } else {
            "input"
        };
        OpenAiError::invalid_request(e.0, Some(param))
    })?;
    let data = serde_json::to_value(&payload)
        .map_err(|e| OpenAiError::from(common::error::AppError::Internal(e.into())))?;
    let answered = crate::semantic::run(state, claims, EMBED, data)
        .await?
        .map_err(|f| match f {
            Failure::Task(error) => OpenAiError::from_event(&error),
            other => other.app_error().into(),
        })?;
    let base64 = request.encoding_format.as_deref() == Some("base64");
    let vectors = answered.data["embeddings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut data = Vec::with_capacity(vectors.len());
    for (index, vector) in vectors.into_iter().enumerate() {
        let encoded = vector.as_str().unwrap_or_default();
        let embedding = if base64 {
            json!(encoded)
        } else {
            json!(floats(encoded)?)
        };
        data.push(json!({"object": "embedding", "index": index, "embedding": embedding}));
    }
    let tokens = answered.usage["prompt_tokens"].as_u64().unwrap_or(0);
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": answered.data["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}

/// The numbers of a base64 vector of little-endian float32.
fn floats(encoded: &str) -> Result<Vec<f32>, OpenAiError> {
    let bytes = STANDARD.decode(encoded).map_err(|_| {
        OpenAiError::from(common::error::AppError::Internal(anyhow::anyhow!(
            "the worker's vector is not base64"
        )))
    })?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
