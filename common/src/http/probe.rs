//! Liveness and readiness as every service answers them: `/health` says the process answers;
//! `/ready` names each dependency, whether it is required, and whether it answered now.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::error::{ApiEnvelope, ok};

/// One dependency's check, as `/ready` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependency {
    /// Its name in the answer (`redis`, `postgres`).
    pub name: &'static str,
    /// Whether the service is not ready without it.
    pub required: bool,
    /// Whether it answered the check.
    pub ok: bool,
}

impl Dependency {
    /// A dependency the service cannot serve without.
    pub fn required(name: &'static str, ok: bool) -> Self {
        Self {
            name,
            required: true,
            ok,
        }
    }

    /// A dependency the service can serve without (reported, not decisive).
    pub fn optional(name: &'static str, ok: bool) -> Self {
        Self {
            name,
            required: false,
            ok,
        }
    }
}

/// `GET /health`: the process answers.
pub fn health() -> Json<ApiEnvelope<Value>> {
    ok(json!({"status": "ok"}))
}

/// `GET /ready`: 200 `ready` when every required dependency answered, 503 `not ready` otherwise;
/// `data.dependencies` maps each name to `{required, ok}`.
pub fn readiness(dependencies: &[Dependency]) -> Response {
    let ready = dependencies.iter().all(|d| d.ok || !d.required);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let named: Map<String, Value> = dependencies
        .iter()
        .map(|d| {
            let check = json!({"required": d.required, "ok": d.ok});
            (d.name.to_owned(), check)
        })
        .collect();
    let body = ApiEnvelope {
        code: status.as_u16(),
        success: ready,
        message: if ready { "ready" } else { "not ready" }.into(),
        data: json!({ "dependencies": named }),
    };
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn body(response: Response) -> (u16, String) {
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn only_required_dependencies_decide_readiness() {
        let (status, text) = body(readiness(&[
            Dependency::required("redis", false),
            Dependency::required("postgres", true),
        ]))
        .await;
        assert_eq!(status, 503);
        // Compared as JSON: the key order depends on serde_json's `preserve_order`, which a
        // workspace build turns on (qdrant-edge).
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let expected: serde_json::Value = serde_json::from_str(
            r#"{"code":503,"success":false,"message":"not ready","data":{"dependencies":{"postgres":{"ok":true,"required":true},"redis":{"ok":false,"required":true}}}}"#,
        )
        .unwrap();
        assert_eq!(parsed, expected);
        let (status, _) = body(readiness(&[
            Dependency::required("redis", true),
            Dependency::optional("search", false),
        ]))
        .await;
        assert_eq!(status, 200);
    }
}
