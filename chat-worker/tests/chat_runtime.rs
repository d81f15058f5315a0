//! What the chat handler adds to the worker runtime's contract (which common/tests/runtime.rs
//! tests on its own): a chat payload that can never run is refused, and a cancelled chat ends with
//! its partial answer stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chat_worker::config::DummySettings;
use common::testing::{isolated_settings, xrange_all};
use serde_json::json;
use support::{Harness, kinds};
use uuid::Uuid;

#[tokio::test]
async fn a_chat_payload_that_can_never_run_is_refused_not_dead_lettered() {
    let core = isolated_settings();
    let h = Harness::start(support::settings(&core)).await;
    for data in [
        json!({"prompt": "hi", "settings": {"max_tokens": -1}}),
        json!({"prompt": "hi", "settings": {"temperature": "hot"}}),
        json!({"prompt": "a\u{0}b"}),
    ] {
        let events = h.ask(data.clone()).await;
        let error = events.iter().find(|e| e.kind == "error").expect("an error");
        assert_eq!(error.event["data"]["code"], "invalid_payload", "{data}");
        assert_eq!(error.event["data"]["retryable"], false);
        assert!(events.iter().all(|e| e.kind != "text_chunk"), "{data}");
        assert_eq!(events.last().unwrap().kind, "complete");
    }
    let dead = xrange_all(&mut h.bus.conn(), &h.bus.names().dead_letter_stream("chat")).await;
    assert!(dead.is_empty(), "{dead:#?}");
}

#[tokio::test]
async fn a_cancelled_chat_ends_with_its_partial_answer_stored() {
    let core = isolated_settings();
    let mut settings = support::settings(&core);
    settings.dummy = DummySettings {
        tokens: 500,
        first_token_delay_ms: 0,
        token_interval_ms: 20,
    };
    let h = Harness::start(settings).await;
    let action = h
        .publish(
            "chat.completion.generate",
            Uuid::now_v7(),
            Uuid::now_v7(),
            json!({"prompt": "long answer"}),
        )
        .await;
    h.wait(&action, "text_chunk").await;
    h.bus.request_cancel(action.task_id).await.unwrap();
    let events = h.wait(&action, "complete").await;
    let k = kinds(&events);
    let cancelled = k.iter().position(|k| *k == "cancelled").expect("cancelled");
    assert_eq!(
        k[cancelled + 1..],
        [
            "text_completed",
            "db_operation_executed",
            "tts_not_requested",
            "complete"
        ]
    );
    assert_eq!(
        events[cancelled + 1].event["data"]["finish_reason"],
        "cancelled"
    );
    assert!(k.iter().filter(|k| **k == "text_chunk").count() < 500);
}
