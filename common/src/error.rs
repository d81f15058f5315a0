//! The one error type of the HTTP surfaces and its REST envelope `{code, success, message, data}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;

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
    /// The request collides with what exists (a taken email).
    #[error("{0}")]
    Conflict(String),
    /// The request, or a file in it, is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Well-formed but refused as a whole; `data` says why in detail (an import's bad rows).
    #[error("{message}")]
    Unprocessable {
        /// The sentence of the envelope.
        message: String,
        /// The envelope's `data`, serialized once so its fields keep their declared order.
        data: Box<RawValue>,
    },
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
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
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
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Unprocessable { .. } => "unprocessable",
            Self::RateLimited { .. } => "rate_limited",
            Self::Upstream(_) => "upstream_error",
            Self::Timeout(_) => "timeout",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl AppError {
    /// 422 with `data` (any serializable detail, such as `{errors: [...]}`) in the envelope.
    pub fn unprocessable(message: impl Into<String>, data: &impl Serialize) -> Self {
        match serde_json::value::to_raw_value(data) {
            Ok(data) => Self::Unprocessable {
                message: message.into(),
                data,
            },
            Err(e) => {
                Self::Internal(anyhow::Error::new(e).context("cannot serialize an error's data"))
            }
        }
    }
}

/// A database failure as the client sees it: 503 when PostgreSQL cannot be reached now (the
/// connection or TLS failed, the pool is exhausted or closed), 500 for anything else.
impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Self::Unavailable(e.into()),
            other => Self::Internal(other.into()),
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
        let retry_after = match self {
            Self::RateLimited { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        let (message, data) = match self {
            Self::Unprocessable { message, data } => (message, Some(data)),
            other => (other.to_string(), None),
        };
        let body = ApiEnvelope {
            code: status.as_u16(),
            success: false,
            message,
            data,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn answer(e: AppError) -> (u16, String) {
        let response = e.into_response();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[derive(Serialize)]
    struct Row {
        line: u64,
        column: Option<&'static str>,
    }

    #[derive(Serialize)]
    struct Rows {
        errors: Vec<Row>,
    }

    #[tokio::test]
    async fn conflict_and_unprocessable_use_the_envelope() {
        let (status, body) = answer(AppError::Conflict("taken".into())).await;
        assert_eq!(status, 409);
        assert_eq!(
            body,
            r#"{"code":409,"success":false,"message":"taken","data":null}"#
        );
        let rows = Rows {
            errors: vec![Row {
                line: 2,
                column: None,
            }],
        };
        let (status, body) = answer(AppError::unprocessable("bad rows", &rows)).await;
        assert_eq!(status, 422);
        // `data` keeps the fields in the order the type declares them.
        assert_eq!(
            body,
            r#"{"code":422,"success":false,"message":"bad rows","data":{"errors":[{"line":2,"column":null}]}}"#
        );
    }

    #[test]
    fn database_failures_are_unavailable_only_when_unreachable() {
        assert_eq!(
            AppError::from(sqlx::Error::PoolTimedOut).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            AppError::from(sqlx::Error::RowNotFound).status_code(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
