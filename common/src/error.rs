//! The one error type of the HTTP surfaces and its REST envelope `{code, success, message, data}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// The REST envelope of every non-OpenAI response body.
#[derive(Debug, Serialize)]
pub struct ApiEnvelope<T: Serialize> {
    /// The HTTP status code, repeated in the body.
    pub code: u16,
    /// Whether the request succeeded.
    pub success: bool,
    /// A human-readable sentence.
    pub message: String,
    /// The payload (`null` on errors).
    pub data: T,
}

/// A successful REST body.
pub fn ok<T: Serialize>(data: T) -> Json<ApiEnvelope<T>> {
    Json(ApiEnvelope {
        code: 200,
        success: true,
        message: "ok".into(),
        data,
    })
}

/// Errors the services return to clients. Internal causes are logged once here, never sent.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The thing does not exist (or belongs to another tenant).
    #[error("{0}")]
    NotFound(String),
    /// Over a rate limit; retry after the given seconds.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// The upstream provider failed; the message is the safe one from the `error` event.
    #[error("{0}")]
    Upstream(String),
    /// Waiting for a result took too long.
    #[error("{0}")]
    Timeout(String),
    /// A dependency (Redis, database) is unavailable right now.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// The HTTP status this error maps to.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code, as sent in WebSocket `error` events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::Upstream(_) => "upstream_error",
            Self::Timeout(_) => "timeout",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<redis::RedisError> for AppError {
    fn from(e: redis::RedisError) -> Self {
        Self::Unavailable(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        match &self {
            Self::Unavailable(cause) | Self::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), status = status.as_u16(), "request failed");
            }
            _ => tracing::debug!(error = %self, status = status.as_u16(), "request refused"),
        }
        let body = ApiEnvelope {
            code: status.as_u16(),
            success: false,
            message: self.to_string(),
            data: Value::Null,
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::RateLimited { retry_after_secs } = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_secs),
            );
        }
        response
    }
}
