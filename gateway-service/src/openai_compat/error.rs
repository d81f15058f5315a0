//! Errors in OpenAI's format, `{"error": {"message", "type", "param", "code"}}`, with the status
//! OpenAI would answer, so OpenAI SDKs raise their usual exception classes.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use common::auth::AuthError;
use common::error::AppError;
use common::events::{ErrorCode, Fault};
use common::models::UnknownModel;
use serde_json::{Value, json};

/// `type` of errors the caller can fix.
const INVALID_REQUEST: &str = "invalid_request_error";
/// `type` of errors on our side or upstream.
const API_ERROR: &str = "api_error";

/// Wait suggested after a provider's rate limit when the worker did not say how long.
const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

/// An error answered in OpenAI's format.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<String>,
    retry_after_secs: Option<u64>,
}

impl OpenAiError {
    /// An error with a status, an OpenAI `type` and a message for people.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after_secs: None,
        }
    }

    /// Names the request parameter at fault.
    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets the machine-readable `code`.
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Answers with another status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// A 400 the caller can fix, naming the parameter when known.
    pub fn invalid_request(message: impl Into<String>, param: Option<&str>) -> Self {
        let e = Self::new(StatusCode::BAD_REQUEST, INVALID_REQUEST, message);
        match param {
            Some(p) => e.param(p),
            None => e,
        }
    }

    /// A 401 for a missing, invalid or expired token.
    pub fn unauthorized(e: &AuthError) -> Self {
        let message = match e {
            AuthError::Missing => {
                "You didn't provide an API key. Send your token in an Authorization header using \
                 Bearer auth (Authorization: Bearer YOUR_TOKEN)."
            }
            AuthError::Expired => "The API key (token) provided has expired.",
            AuthError::NotYetValid => "The API key (token) provided is not valid yet.",
            AuthError::Invalid | AuthError::CannotSign => "Incorrect API key (token) provided.",
        };
        Self::new(StatusCode::UNAUTHORIZED, INVALID_REQUEST, message).code("invalid_api_key")
    }

    /// A 404 for a model the registry does not know.
    pub fn model_not_found(e: &UnknownModel) -> Self {
        let message = format!(
            "The model `{}` does not exist; available models: {}",
            e.name,
            e.available.join(", ")
        );
        Self::new(StatusCode::NOT_FOUND, INVALID_REQUEST, message)
            .param("model")
            .code("model_not_found")
    }

    /// A 504 after waiting `secs` for an answer.
    pub fn timeout(secs: u64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            API_ERROR,
            format!("No answer within {secs} s; the request was cancelled."),
        )
        .code("timeout")
    }

    /// The error a task's `error` event (`{stage, code, message, retryable}`) stands for: the
    /// codes OpenAI has its own answer for, then the shared `Fault` of the code (the mapping the
    /// REST surface uses, `task::task_error`) in OpenAI's shape.
    pub fn from_event(data: &Value) -> Self {
        let code = data["code"].as_str().unwrap_or("upstream_error");
        let message = data["message"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or("The model provider failed to answer.");
        let parsed = ErrorCode::parse(code);
        match parsed {
            ErrorCode::RateLimited => {
                let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
                    .code("rate_limit_exceeded");
                e.retry_after_secs = Some(
                    data["retry_after_secs"]
                        .as_u64()
                        .unwrap_or(DEFAULT_RETRY_AFTER_SECS),
                );
                return e;
            }
            ErrorCode::UnknownModel => {
                return Self::new(StatusCode::NOT_FOUND, INVALID_REQUEST, message)
                    .param("model")
                    .code("model_not_found");
            }
            // The model exists but this deployment has no provider for it: not the upstream's
            // fault (502) but ours, and possibly temporary.
            ErrorCode::ProviderUnavailable => {
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    API_ERROR,
                    "No provider serving this model is configured on this server.",
                )
                .code("model_unavailable");
            }
            ErrorCode::Timeout | ErrorCode::DeadlineExceeded => {
                return Self::new(StatusCode::GATEWAY_TIMEOUT, API_ERROR, message).code(code);
            }
            // The provider's safety system refused the prompt or the result (images, videos):
            // OpenAI's own code for it, so SDK users recognise it.
            _ if code == "content_filtered" => {
                return Self::new(StatusCode::BAD_REQUEST, INVALID_REQUEST, message)
                    .code("content_policy_violation");
            }
            _ => {}
        }
        match crate::task::fault(data) {
            Fault::Client => Self::new(StatusCode::BAD_REQUEST, INVALID_REQUEST, message),
            Fault::TooLarge => Self::new(StatusCode::PAYLOAD_TOO_LARGE, INVALID_REQUEST, message),
            Fault::NotFound => Self::new(StatusCode::NOT_FOUND, INVALID_REQUEST, message),
            Fault::RateLimited => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
            }
            Fault::Unavailable => Self::new(StatusCode::SERVICE_UNAVAILABLE, API_ERROR, message),
            Fault::Upstream => Self::new(StatusCode::BAD_GATEWAY, API_ERROR, message),
        }
        .code(code)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The seconds sent in `Retry-After`, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// The body: `{"error": {"message", "type", "param", "code"}}`.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<AppError> for OpenAiError {
    fn from(e: AppError) -> Self {
        let status = e.status_code();
        match e {
            AppError::BadRequest(m) | AppError::Conflict(m) | AppError::PayloadTooLarge(m) => {
                Self::new(status, INVALID_REQUEST, m)
            }
            AppError::Unprocessable { message, .. } => Self::new(status, INVALID_REQUEST, message),
            AppError::Unauthorized(m) => {
                Self::new(status, INVALID_REQUEST, m).code("invalid_api_key")
            }
            AppError::Forbidden(m) => Self::new(status, "permission_error", m),
            AppError::NotFound(m) => Self::new(status, INVALID_REQUEST, m).code("not_found"),
            AppError::RateLimited { retry_after_secs } => {
                let mut e = Self::new(status, "rate_limit_error", "Rate limit reached.")
                    .code("rate_limit_exceeded");
                e.retry_after_secs = Some(retry_after_secs);
                e
            }
            AppError::Upstream(m) => Self::new(status, API_ERROR, m),
            AppError::Timeout(m) => Self::new(status, API_ERROR, m).code("timeout"),
            AppError::Unavailable(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "OpenAI-compatible request failed");
                Self::new(status, API_ERROR, "The server is temporarily unavailable.")
            }
            AppError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "OpenAI-compatible request failed");
                Self::new(
                    status,
                    API_ERROR,
                    "The server had an error processing the request.",
                )
            }
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        tracing::debug!(status = self.status.as_u16(), message = %self.message, "request refused");
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_errors_map_to_openai_statuses() {
        let status = |code: &str| {
            OpenAiError::from_event(&json!({"code": code, "message": "m"}))
                .status()
                .as_u16()
        };
        assert_eq!(status("rate_limited"), 429);
        assert_eq!(status("unknown_model"), 404);
        assert_eq!(status("invalid_payload"), 400);
        assert_eq!(status("provider_unavailable"), 503);
        assert_eq!(status("upstream_error"), 502);
        assert_eq!(status("upstream_connection"), 502);
        assert_eq!(status("not_found"), 404);
        assert_eq!(status("bus_unavailable"), 503);
        for speech in [
            "unknown_provider",
            "provider_not_configured",
            "unsupported_option",
            "text_too_long",
            "audio_too_long",
            "empty_text",
        ] {
            assert_eq!(status(speech), 400, "{speech}");
        }
        assert_eq!(status("storage_unavailable"), 503);
        assert_eq!(status("upstream_timeout"), 502);
        // Images and videos.
        for media in ["invalid_image", "inline_too_large", "content_filtered"] {
            assert_eq!(status(media), 400, "{media}");
        }
        assert_eq!(status("job_failed"), 502);
        let filtered = OpenAiError::from_event(&json!({"stage": "provider",
            "code": "content_filtered", "message": "refused"}));
        assert_eq!(filtered.body()["error"]["code"], "content_policy_violation");
        let option = OpenAiError::from_event(
            &json!({"stage": "tts", "code": "unsupported_option", "message": "no mp3"}),
        );
        assert_eq!(
            option.body(),
            json!({"error": {"message": "no mp3", "type": "invalid_request_error",
                "param": null, "code": "unsupported_option"}})
        );
        let limited = OpenAiError::from_event(&json!({"code": "rate_limited", "message": "slow"}));
        assert_eq!(limited.retry_after_secs(), Some(DEFAULT_RETRY_AFTER_SECS));
        assert_eq!(
            limited.body(),
            json!({"error": {"message": "slow", "type": "rate_limit_error", "param": null,
                "code": "rate_limit_exceeded"}})
        );
    }

    #[test]
    fn unknown_model_names_the_model_and_the_alternatives() {
        let e = OpenAiError::model_not_found(&UnknownModel {
            name: "x".into(),
            available: vec!["a".into(), "b".into()],
        });
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            e.body(),
            json!({"error": {"message": "The model `x` does not exist; available models: a, b",
                "type": "invalid_request_error", "param": "model", "code": "model_not_found"}})
        );
    }
}
