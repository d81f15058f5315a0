//! What every provider client shares, whatever it generates (text, speech, images): one HTTP
//! client setup, the mapping of transport failures and error statuses to [`ProviderError`], and
//! error messages with the request's key cut out.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use crate::settings::Secret;

/// How a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// 429; retry after the given time when the provider said.
    #[error("the provider is rate limiting requests")]
    RateLimited {
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// 5xx (or an overloaded error event) from the provider.
    #[error("the provider failed (HTTP {status})")]
    Upstream {
        /// The HTTP status.
        status: u16,
    },
    /// The provider refused the deployment itself (401, 403, 404: a wrong or revoked key, a
    /// missing permission, a model or URL it does not know). The operator must fix it, and the
    /// provider's explanation (which may quote part of the key) is logged, never sent to users.
    #[error("the provider refused the request (HTTP {status}); the operator has been told")]
    Misconfigured {
        /// The HTTP status.
        status: u16,
    },
    /// The provider refused the request (another 4xx); the provider's message, without the key.
    #[error("the provider refused the request (HTTP {status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The provider's explanation.
        message: String,
    },
    /// Connecting or reading failed, or the stream broke off.
    #[error("connection to the provider failed: {0}")]
    Connection(String),
    /// The provider sent something that is not its protocol.
    #[error("the provider sent an invalid response: {0}")]
    Protocol(String),
    /// The request uses something this provider cannot take (e.g. an image URL it cannot fetch).
    #[error("{0}")]
    Unsupported(String),
    /// The audio to transcribe cannot be read: corrupt bytes, or a format the provider does not
    /// decode (a local model decodes the upload itself, so this is its answer to bad audio).
    #[error("{0}")]
    InvalidAudio(String),
}

impl ProviderError {
    /// A stable code for `error` events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Upstream { .. } => "upstream_error",
            Self::Misconfigured { .. } => "upstream_misconfigured",
            Self::Refused { .. } => "upstream_refused",
            Self::Connection(_) => "upstream_connection",
            Self::Protocol(_) => "upstream_protocol",
            Self::Unsupported(_) => "unsupported_input",
            Self::InvalidAudio(_) => "invalid_audio",
        }
    }

    /// Whether the same request may succeed if tried again.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Upstream { .. } | Self::Connection(_)
        )
    }

    /// The provider's requested wait, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// The HTTP client every provider uses.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()?)
}

/// Sends a request, mapping transport failures and error statuses to [`ProviderError`]. `api_key`
/// is the key the request carries, cut out of any error message the provider echoes it in.
pub async fn send(
    builder: reqwest::RequestBuilder,
    api_key: Option<&Secret>,
) -> Result<reqwest::Response, ProviderError> {
    let response = transmit(builder).await?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let headers = response.headers().clone();
    let url = response.url().clone();
    let text = response.text().await.unwrap_or_default();
    Err(classify(status, &headers, &url, &text, api_key))
}

/// Sends a request, mapping only transport failures; the caller looks at the status (or hands
/// an error answer to [`classify`]).
pub async fn transmit(
    builder: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ProviderError> {
    builder.send().await.map_err(|e| {
        ProviderError::Connection(
            if e.is_connect() {
                "cannot connect"
            } else if e.is_timeout() {
                "timed out"
            } else {
                "request failed"
            }
            .to_owned(),
        )
    })
}

/// The [`ProviderError`] of an error answer: its status, headers, URL and body `text`.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    url: &reqwest::Url,
    text: &str,
    api_key: Option<&Secret>,
) -> ProviderError {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ProviderError::RateLimited {
            retry_after: retry_after(headers),
        };
    }
    if status.is_server_error() {
        return ProviderError::Upstream {
            status: status.as_u16(),
        };
    }
    let message = error_message(text, api_key);
    if matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    ) {
        // The deployment's problem, not the user's: the operator reads why here, the user is
        // told only that the provider refused.
        tracing::error!(status = status.as_u16(), host = url.host_str().unwrap_or_default(),
            path = url.path(), provider_message = %message,
            "the provider refused the deployment: check its API key, permissions and model names");
        return ProviderError::Misconfigured {
            status: status.as_u16(),
        };
    }
    ProviderError::Refused {
        status: status.as_u16(),
        message,
    }
}

/// The `Retry-After` of a response, in seconds.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The provider's own error message (`error.message` for OpenAI, Anthropic and Gemini,
/// `detail.message` or `detail` for ElevenLabs, `message` for KlingAI, `errors[0]` for
/// Stability), cut short, with the request's key replaced should the provider quote it.
pub fn error_message(text: &str, api_key: Option<&Secret>) -> String {
    let mut message = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            [
                &v["error"]["message"],
                &v["detail"]["message"],
                &v["detail"],
                &v["message"],
                &v["errors"][0],
            ]
            .into_iter()
            .find_map(|m| m.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| text.to_owned());
    if let Some(key) = api_key.map(Secret::expose).filter(|k| !k.is_empty()) {
        message = message.replace(key, "[api key]");
    }
    message.chars().take(300).collect()
}
