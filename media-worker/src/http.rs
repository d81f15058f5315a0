//! HTTP with the providers: one send that tells a safety refusal from other errors, JSON
//! answers read as the provider's protocol, and bodies read within a size limit.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use common::provider::{ProviderError, classify, error_message, transmit};
use common::settings::Secret;

use crate::error::MediaError;

/// Whether an error answer (its status and JSON body) is the provider's safety system refusing.
pub type FilteredBy = fn(StatusCode, &Value) -> bool;

/// No error answer is a safety refusal.
pub fn never(_: StatusCode, _: &Value) -> bool {
    false
}

/// Sends a request: a success answer, or the error (`filtered` says which error answers are a
/// safety refusal). `api_key` is cut out of any message the provider echoes.
pub async fn send(
    builder: reqwest::RequestBuilder,
    api_key: Option<&Secret>,
    filtered: FilteredBy,
) -> Result<reqwest::Response, MediaError> {
    let response = transmit(builder).await?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let url = response.url().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
    if status.is_client_error() && filtered(status, &body) {
        return Err(MediaError::Filtered(error_message(&text, api_key)));
    }
    Err(classify(status, &headers, &url, &text, api_key).into())
}

/// A JSON answer as `T`.
pub async fn json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, MediaError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|_| ProviderError::Connection("the answer broke off".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| MediaError::Provider(ProviderError::Protocol(format!("not its JSON: {e}"))))
}

/// The whole body, refused beyond `max` bytes; a body shorter than its `Content-Length` (a
/// download that dropped) is a connection error, never a truncated file.
pub async fn body_limited(response: reqwest::Response, max: usize) -> Result<Bytes, MediaError> {
    let announced = response.content_length();
    if announced.is_some_and(|n| n > max as u64) {
        return Err(MediaError::TooLarge(format!(
            "the provider's file is larger than {max} bytes"
        )));
    }
    let mut out = BytesMut::with_capacity(announced.map_or(0, |n| n as usize).min(max));
    let mut stream = response.bytes_stream();
    while let Some(piece) = stream.next().await {
        let piece =
            piece.map_err(|_| ProviderError::Connection("the download broke off".into()))?;
        if out.len() + piece.len() > max {
            return Err(MediaError::TooLarge(format!(
                "the provider's file is larger than {max} bytes"
            )));
        }
        out.extend_from_slice(&piece);
    }
    if let Some(n) = announced
        && out.len() as u64 != n
    {
        return Err(ProviderError::Connection(format!(
            "the download broke off after {} of {n} bytes",
            out.len()
        ))
        .into());
    }
    Ok(out.freeze())
}
