//! The DomainAction envelope: the one message shape on every action stream.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The envelope version this code writes and accepts.
pub const ENVELOPE_VERSION: u32 = 1;

/// One action on an action stream (DESIGN §2). Unknown fields are kept in `extra` and written back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainAction {
    /// Envelope version.
    pub v: u32,
    /// Unique per action; the idempotency key.
    pub action_id: Uuid,
    /// `{service}.{entity}.{verb}`; the first segment routes it.
    pub action_type: String,
    /// Creation time.
    pub timestamp: DateTime<Utc>,
    /// Owner of the data.
    pub tenant_id: Uuid,
    /// The conversation; names the response stream.
    pub session_id: Uuid,
    /// One user-visible task; every event carries it.
    pub task_id: Uuid,
    /// The person who asked, when known.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// Who published it.
    pub origin_service: String,
    /// Links a request to its reply.
    #[serde(default)]
    pub correlation_id: Option<Uuid>,
    /// W3C trace id (informational; `traceparent` is authoritative).
    #[serde(default)]
    pub trace_id: Option<String>,
    /// W3C `traceparent` header value.
    #[serde(default)]
    pub traceparent: Option<String>,
    /// Where events go; default the session's response stream.
    #[serde(default)]
    pub callback_stream: Option<String>,
    /// Reply as a new action of this type (async continuation).
    #[serde(default)]
    pub callback_action_type: Option<String>,
    /// After this instant the action is not executed.
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
    /// The action's payload.
    #[serde(default = "empty_object")]
    pub data: Value,
    /// Free-form, carried through.
    #[serde(default = "empty_object")]
    pub metadata: Value,
    /// Fields this version does not know, kept for forward compatibility.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Why an entry is not a valid envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The payload is not JSON or a field has the wrong type or is missing.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The envelope version is not one this code reads.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u32),
    /// `action_type` is not `{service}.{entity}.{verb}`.
    #[error("invalid action_type {0:?}: expected service.entity.verb in lowercase snake_case")]
    InvalidActionType(String),
    /// `data` or `metadata` is not a JSON object.
    #[error("field {0} must be a JSON object")]
    NotAnObject(&'static str),
}

impl DomainAction {
    /// A new action with fresh ids and the current time; `data` is the payload.
    pub fn new(
        action_type: impl Into<String>,
        origin_service: impl Into<String>,
        tenant_id: Uuid,
        session_id: Uuid,
        data: Value,
    ) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            action_id: Uuid::now_v7(),
            action_type: action_type.into(),
            timestamp: Utc::now(),
            tenant_id,
            session_id,
            task_id: Uuid::now_v7(),
            user_id: None,
            origin_service: origin_service.into(),
            correlation_id: None,
            trace_id: None,
            traceparent: None,
            callback_stream: None,
            callback_action_type: None,
            deadline: None,
            data,
            metadata: empty_object(),
            extra: Map::new(),
        }
    }

    /// Parses and validates an envelope from its JSON text.
    pub fn parse(json: &str) -> Result<Self, EnvelopeError> {
        let action: Self =
            serde_json::from_str(json).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        action.validate()?;
        Ok(action)
    }

    /// Checks what serde's types cannot: version, action type shape, object payloads.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if self.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(self.v));
        }
        if !is_valid_action_type(&self.action_type) {
            return Err(EnvelopeError::InvalidActionType(self.action_type.clone()));
        }
        if !self.data.is_object() {
            return Err(EnvelopeError::NotAnObject("data"));
        }
        if !self.metadata.is_object() {
            return Err(EnvelopeError::NotAnObject("metadata"));
        }
        Ok(())
    }

    /// The service that handles this action: the first segment of `action_type`.
    pub fn service(&self) -> &str {
        self.action_type.split('.').next().unwrap_or_default()
    }

    /// The envelope as JSON text (the `payload` field of a stream entry).
    pub fn to_json(&self) -> String {
        // Serializing a struct of strings, ids and JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether the deadline, if any, has passed.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.deadline.is_some_and(|d| d < now)
    }
}

/// `{service}.{entity}.{verb}`: three or more lowercase snake_case segments.
pub fn is_valid_action_type(action_type: &str) -> bool {
    let segments: Vec<&str> = action_type.split('.').collect();
    segments.len() >= 3
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> DomainAction {
        DomainAction::new(
            "chat.completion.generate",
            "gateway-service",
            Uuid::now_v7(),
            Uuid::now_v7(),
            json!({"prompt": "hi"}),
        )
    }

    #[test]
    fn round_trip_keeps_unknown_fields() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["future_field"] = json!({"x": 1});
        let parsed = DomainAction::parse(&value.to_string()).unwrap();
        assert_eq!(parsed.extra["future_field"], json!({"x": 1}));
        let back: Value = serde_json::from_str(&parsed.to_json()).unwrap();
        assert_eq!(back["future_field"], json!({"x": 1}));
        assert_eq!(parsed.service(), "chat");
    }

    #[test]
    fn numbers_carried_through_keep_every_bit() {
        // Found by the `envelope` fuzz target: without exact float parsing, a number read and
        // written again came back one unit in the last place off.
        let text = sample().to_json().replacen(
            "\"data\":{",
            &format!("\"data\":{{\"x\":{},", "1".repeat(127)),
            1,
        );
        let parsed = DomainAction::parse(&text).unwrap();
        let again = DomainAction::parse(&parsed.to_json()).unwrap();
        assert_eq!(again, parsed);
    }

    #[test]
    fn missing_required_field_is_malformed() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value.as_object_mut().unwrap().remove("tenant_id");
        let err = DomainAction::parse(&value.to_string()).unwrap_err();
        assert!(err.to_string().contains("tenant_id"), "{err}");
    }

    #[test]
    fn bad_version_type_and_payload_are_refused() {
        let mut a = sample();
        a.v = 2;
        assert_eq!(a.validate(), Err(EnvelopeError::UnsupportedVersion(2)));
        let mut a = sample();
        a.action_type = "chat".into();
        assert!(matches!(
            a.validate(),
            Err(EnvelopeError::InvalidActionType(_))
        ));
        let mut a = sample();
        a.data = json!([1]);
        assert_eq!(a.validate(), Err(EnvelopeError::NotAnObject("data")));
        assert!(DomainAction::parse("not json").is_err());
    }

    #[test]
    fn minimal_hand_written_envelope_parses() {
        let text = r#"{"v":1,"action_id":"0190a0a0-0000-7000-8000-000000000001",
            "action_type":"chat.completion.generate","timestamp":"2026-01-01T00:00:00Z",
            "tenant_id":"0190a0a0-0000-7000-8000-000000000002",
            "session_id":"0190a0a0-0000-7000-8000-000000000003",
            "task_id":"0190a0a0-0000-7000-8000-000000000004","origin_service":"billing",
            "data":{"prompt":"hello"}}"#;
        let a = DomainAction::parse(text).unwrap();
        assert_eq!(a.user_id, None);
        assert_eq!(a.metadata, json!({}));
    }
}
