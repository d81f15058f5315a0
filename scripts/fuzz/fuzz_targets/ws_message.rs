//! The gateway's parsing of WebSocket client messages (`gateway_service::protocol::parse`, what
//! `routes/ws.rs` runs on every text frame), then the checks of `chat` and `resume`, and the
//! first-message `auth` lookup.
#![no_main]

use gateway_service::hub::StreamId;
use gateway_service::protocol::{self, ClientMessage};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|text: &str| {
    // `await_auth_message`: the first message of a connection without `?token=`.
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        let _ = (value["type"].as_str(), value["token"].as_str());
    }
    match protocol::parse(text) {
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
        Err(refusal) => assert!(!refusal.message.is_empty()),
    }
});
