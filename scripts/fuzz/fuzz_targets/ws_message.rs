//! The gateway's parsing of WebSocket client messages (`gateway_service::protocol::parse`, what
//! `routes/ws.rs` runs on every text frame, the first-message `auth` included), then the checks of
//! `chat` and `resume`.
#![no_main]

use gateway_service::hub::StreamId;
use gateway_service::protocol::{self, ClientMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // Every frame, the first (`auth`) message of a connection without `?token=` included.
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
