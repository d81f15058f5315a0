//! The messages a WebSocket client sends (DESIGN §5), and how a text frame becomes one.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use common::payloads::media::ImagePayload;

use crate::session::{AudioStart, ChatInput};

/// A message a client sends on `/chat/ws`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The token, as the first message of a connection opened without `?token=`.
    Auth {
        /// The JWT.
        token: String,
    },
    /// Start a task.
    Chat(Box<ChatInput>),
    /// Make images (`media.image.generate`) in the session; its events come like a chat's.
    Image(Box<ImageInput>),
    /// Start streaming audio (binary frames follow): a live transcription, or a voice turn.
    AudioStart(Box<AudioStart>),
    /// The audio stream is over.
    AudioEnd,
    /// Stop the running task.
    Cancel,
    /// Follow a session again after a reconnect.
    Resume {
        /// The session.
        session_id: Uuid,
        /// The last event the client saw; everything after it is replayed.
        #[serde(default)]
        last_event_id: Option<String>,
    },
    /// Heartbeat.
    Ping,
}

/// An `image` message: the `media.image.generate` data, and the session to make it in.
#[derive(Debug, Deserialize)]
pub struct ImageInput {
    /// A session of the caller's; the connection's when absent.
    #[serde(default)]
    pub session_id: Option<Uuid>,
    /// What to draw.
    #[serde(flatten)]
    pub payload: ImagePayload,
}

/// Why a text frame is not a client message: the `error` event's `code` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `invalid_json`, `bad_request` or `unknown_type`.
    pub code: &'static str,
    /// A sentence for the client.
    pub message: String,
}

/// Parses one text frame: decoded once into its message; only a refused frame is read again to
/// say why.
pub fn parse(text: &str) -> Result<ClientMessage, Refusal> {
    serde_json::from_str(text).map_err(|e| {
        const KNOWN: [&str; 8] = [
            "auth",
            "chat",
            "image",
            "audio_start",
            "audio_end",
            "cancel",
            "resume",
            "ping",
        ];
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return Refusal {
                code: "invalid_json",
                message: "message is not valid JSON".into(),
            };
        };
        match value["type"].as_str() {
            Some(t) if KNOWN.contains(&t) => Refusal {
                code: "bad_request",
                message: format!("invalid {t} message: {e}"),
            },
            _ => Refusal {
                code: "unknown_type",
                message: "unknown message type".into(),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_messages_or_refusals() {
        assert!(matches!(
            parse(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping)
        ));
        assert!(matches!(
            parse(r#"{"type":"chat","prompt":"hi","store":false}"#),
            Ok(ClientMessage::Chat(input)) if input.store == Some(false)
        ));
        assert!(matches!(
            parse(r#"{"type":"audio_start","sample_rate":16000,"reply":{"model":"dummy"}}"#),
            Ok(ClientMessage::AudioStart(start)) if start.reply.is_some()
        ));
        assert!(matches!(
            parse(r#"{"type":"audio_end"}"#),
            Ok(ClientMessage::AudioEnd)
        ));
        assert_eq!(
            parse(r#"{"type":"audio_start"}"#).unwrap_err().code,
            "bad_request"
        );
        assert_eq!(parse("not json").unwrap_err().code, "invalid_json");
        assert_eq!(
            parse(r#"{"type":"dance"}"#).unwrap_err().code,
            "unknown_type"
        );
        assert_eq!(parse("[1]").unwrap_err().code, "unknown_type");
        let bad = parse(r#"{"type":"resume","session_id":"nope"}"#).unwrap_err();
        assert_eq!(bad.code, "bad_request");
        assert!(bad.message.starts_with("invalid resume message"));
    }
}
