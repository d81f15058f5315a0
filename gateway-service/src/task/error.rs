//! The one mapping from a worker's `error` event to an HTTP answer, for every surface (REST and
//! `/v1`): what the error means ([`fault`]), its REST status and sentence ([`task_error`]), and
//! the REST answer that carries its code too ([`RestError`]).

use axum::Json;
use axum::http::HeaderValue;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use common::error::{ApiEnvelope, AppError};
use common::events::{ErrorCode, Fault};
use serde_json::{Value, json};

use crate::speech::Failure;

/// What a worker's `error` (its `data`) means for the caller, on every surface (REST, `/v1`):
/// [`ErrorCode::fault`] of its code and stage.
pub fn fault(error: &Value) -> Fault {
    let code = error["code"].as_str().unwrap_or_default();
    ErrorCode::parse(code).fault(error["stage"].as_str().unwrap_or_default())
}

/// The client-facing error for a task that failed before any answer, from its `error` event's
/// `data` (its message is safe to show: workers never put internals there).
pub fn task_error(error: &Value) -> AppError {
    let message = error["message"]
        .as_str()
        .unwrap_or("the task failed")
        .to_owned();
    match fault(error) {
        Fault::NotFound => AppError::NotFound(message),
        Fault::Client => AppError::BadRequest(message),
        Fault::TooLarge => AppError::PayloadTooLarge(message),
        Fault::RateLimited => AppError::RateLimited {
            retry_after_secs: error["retry_after_secs"].as_u64().unwrap_or(1),
        },
        Fault::Unavailable => AppError::Unavailable(anyhow::anyhow!(message)),
        Fault::Upstream => AppError::Upstream(message),
    }
}

/// A REST answer that failed: the gateway's own error, or the task's (a worker's `error`), which
/// is answered with the status of [`task_error`] and, as the envelope's `data`, the event's
/// `code`, `stage` and `retryable` (and `retry_after_secs`), so a client can tell
/// `unknown_model` from `unsupported_option` without reading the sentence.
#[derive(Debug)]
pub enum RestError {
    /// The gateway's own failure (a bad body, no bus, a timeout).
    Gateway(AppError),
    /// The worker's `error` event's `data`.
    Task(Value),
}

impl From<AppError> for RestError {
    fn from(e: AppError) -> Self {
        Self::Gateway(e)
    }
}

impl From<Failure> for RestError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Task(error) => Self::Task(error),
            other => Self::Gateway(other.app_error()),
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let error = match self {
            Self::Gateway(e) => return e.into_response(),
            Self::Task(error) => error,
        };
        // The status and the sentence (hidden for this deployment's outages) of `task_error`.
        let app = task_error(&error);
        let status = app.status_code();
        if status.is_server_error() {
            tracing::warn!(code = %error["code"], stage = %error["stage"], status = status.as_u16(),
                "task failed");
        } else {
            tracing::debug!(code = %error["code"], status = status.as_u16(), "task refused");
        }
        let mut data = json!({
            "code": error["code"],
            "stage": error["stage"],
            "retryable": error["retryable"].as_bool().unwrap_or(false),
        });
        if let Some(secs) = error["retry_after_secs"].as_u64() {
            data["retry_after_secs"] = json!(secs);
        }
        let retry_after = match &app {
            AppError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let body = ApiEnvelope {
            code: status.as_u16(),
            success: false,
            message: app.to_string(),
            data,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
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

    async fn answered(error: Value) -> (u16, Option<String>, Value) {
        let response = RestError::Task(error).into_response();
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (
            status,
            retry,
            serde_json::from_slice(&body).unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn a_task_error_answers_its_code_beside_the_status() {
        let (status, _, body) = answered(json!({"stage": "validation", "code": "unknown_model",
            "message": "picasso is not a model", "retryable": false}))
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({"code": 400, "success": false, "message": "picasso is not a model",
                "data": {"code": "unknown_model", "stage": "validation", "retryable": false}})
        );
        // This deployment's outages keep their sentence to themselves, not their code.
        let (status, _, body) = answered(json!({"stage": "validation",
            "code": "provider_unavailable", "message": "set OPENAI_API_KEY", "retryable": false}))
        .await;
        assert_eq!(status, 503);
        assert_eq!(body["message"], "service unavailable");
        assert_eq!(body["data"]["code"], "provider_unavailable");
        let (status, retry, body) = answered(json!({"stage": "provider", "code": "rate_limited",
            "message": "slow down", "retryable": true, "retry_after_secs": 7}))
        .await;
        assert_eq!((status, retry.as_deref()), (429, Some("7")));
        assert_eq!(body["data"]["retry_after_secs"], 7);
    }

    #[test]
    fn worker_errors_map_to_statuses() {
        let status = |e: Value| task_error(&e).status_code().as_u16();
        assert_eq!(
            status(json!({"code": "not_found", "stage": "validation"})),
            404
        );
        assert_eq!(
            status(json!({"code": "unknown_model", "stage": "validation"})),
            400
        );
        assert_eq!(
            status(json!({"code": "invalid_payload", "stage": "validation"})),
            400
        );
        assert_eq!(
            status(json!({"code": "rate_limited", "stage": "provider"})),
            429
        );
        assert_eq!(
            status(json!({"code": "bus_unavailable", "stage": "worker"})),
            503
        );
        assert_eq!(status(json!({"code": "provider_unavailable"})), 503);
        assert_eq!(
            status(json!({"code": "whatever", "stage": "persistence"})),
            503
        );
        assert_eq!(
            status(json!({"code": "upstream_error", "stage": "provider"})),
            502
        );
        assert_eq!(status(json!({})), 502);
        // The speech half's codes (stage `tts`): what the request asked for is the client's to
        // change; storage is ours; the provider's failures are the upstream's, as for chat.
        for code in [
            "unknown_provider",
            "provider_not_configured",
            "unsupported_option",
            "text_too_long",
            "audio_too_long",
            "empty_text",
        ] {
            assert_eq!(status(json!({"code": code, "stage": "tts"})), 400, "{code}");
        }
        assert_eq!(
            status(json!({"code": "storage_unavailable", "stage": "tts"})),
            503
        );
        for code in ["upstream_timeout", "upstream_connection", "no_audio"] {
            assert_eq!(status(json!({"code": code, "stage": "tts"})), 502, "{code}");
        }
        // Media (images, videos): what the request can change is the client's; a provider's job
        // that failed or timed out is the upstream's; a model whose provider has no key here is
        // this deployment's, as for chats.
        for (code, stage, want) in [
            ("unknown_model", "validation", 400),
            ("unsupported_option", "validation", 400),
            ("invalid_payload", "validation", 400),
            ("invalid_image", "validation", 400),
            ("inline_too_large", "validation", 400),
            ("content_filtered", "provider", 400),
            ("provider_unavailable", "validation", 503),
            ("storage_unavailable", "storage", 503),
            ("job_failed", "provider", 502),
            ("job_timeout", "provider", 502),
            ("output_too_large", "provider", 502),
            ("upstream_misconfigured", "provider", 502),
            ("rate_limited", "provider", 429),
        ] {
            assert_eq!(
                status(json!({"code": code, "stage": stage})),
                want,
                "{code}"
            );
        }
        // Speech to text (stage `stt`).
        for (code, want) in [
            ("not_found", 404),
            ("file_too_large", 413),
            ("unsupported_format", 400),
            ("invalid_audio", 400),
            ("unknown_provider", 400),
            ("provider_not_configured", 400),
            ("storage_unavailable", 503),
            ("upstream_refused", 502),
            ("rate_limited", 429),
        ] {
            assert_eq!(
                status(json!({"code": code, "stage": "stt"})),
                want,
                "{code}"
            );
        }
    }
}
