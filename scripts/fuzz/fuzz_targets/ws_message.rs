//! The gateway's parsing of WebSocket client messages, as `routes/ws.rs` does it: JSON text to a
//! `Value`, then the `type`-tagged `ClientMessage`, then the checks of `chat` and `resume`, and
//! the first-message `auth` lookup. `ClientMessage` is private to `routes/ws.rs`, so it is
//! mirrored here (same serde attributes, same field types); keep the two in step.
#![no_main]

use gateway_service::hub::StreamId;
use gateway_service::session::ChatInput;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// Mirror of `gateway_service::routes::ws::ClientMessage`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)]
enum ClientMessage {
    Auth {
        token: String,
    },
    Chat(ChatInput),
    Cancel,
    Resume {
        session_id: Uuid,
        #[serde(default)]
        last_event_id: Option<String>,
    },
    Ping,
}

fuzz_target!(|text: &str| {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    // `await_auth_message`: the first message of a connection without `?token=`.
    let _ = (value["type"].as_str(), value["token"].as_str());
    // `on_text`.
    match serde_json::from_value::<ClientMessage>(value.clone()) {
        Ok(ClientMessage::Chat(input)) => {
            let _ = input.validate();
        }
        Ok(ClientMessage::Resume {
            last_event_id: Some(id),
            ..
        }) => {
            if let Ok(parsed) = id.parse::<StreamId>() {
                // What the hub reads from and what clients get back must agree.
                assert_eq!(parsed.to_string().parse::<StreamId>(), Ok(parsed));
            }
        }
        Ok(_) => {}
        Err(e) => {
            let _ = (value["type"].as_str(), e.to_string());
        }
    }
});
