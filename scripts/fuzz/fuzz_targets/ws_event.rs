//! `session::client_event`: the gateway appends `event_id` to a stored event's JSON text without
//! re-serializing it. Whatever a publisher stored, the client must get valid JSON whenever the
//! stored payload was a JSON object, with the entry id as `event_id`.
#![no_main]

use gateway_service::hub::{Entry, StreamId};
use gateway_service::session::client_event;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|payload: &str| {
    let entry = Entry {
        id: StreamId { ms: 1_700_000_000_000, seq: 7 },
        kind: "text_chunk".into(),
        task_id: String::new(),
        payload: payload.to_owned(),
    };
    let out = client_event(&entry);
    let stored_object = matches!(serde_json::from_str::<Value>(payload), Ok(Value::Object(_)));
    if stored_object {
        let sent: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("invalid JSON sent for payload {payload:?}: {e}: {out}"));
        assert_eq!(sent["event_id"], "1700000000000-7", "{out}");
    }
});
