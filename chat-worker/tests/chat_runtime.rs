//! What the chat handler adds to the worker runtime's contract (which common/tests/runtime.rs
//! tests on its own): a chat payload that can never run is refused, and a cancelled chat ends with
//! its partial answer stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use common::envelope::DomainAction;
use common::llm::DummySettings;
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

#[tokio::test]
async fn a_chat_naming_a_callback_action_type_gets_its_answer_as_a_new_action() {
    let core = isolated_settings();
    let h = Harness::start(support::settings(&core)).await;
    let mut action = support::action_of(
        "chat.completion.generate",
        Uuid::now_v7(),
        Uuid::now_v7(),
        json!({"prompt": "call me back", "store": false}),
    );
    action.callback_action_type = Some("billing.chat.answered".into());
    h.bus.publish(&action).await.unwrap();
    let events = h.wait(&action, "complete").await;
    let answer = support::joined(&events, "text_chunk");
    assert!(!answer.is_empty(), "{:?}", kinds(&events));
    // The answer is an action of the same session, so in that session's partition.
    let stream = h.bus.names().action_stream_for(
        "billing",
        action.session_id,
        h.bus.settings().action_partitions,
    );
    let replies = xrange_all(&mut h.bus.conn(), &stream).await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let reply = DomainAction::parse(&replies[0].event.to_string()).unwrap();
    assert_eq!(reply.action_type, "billing.chat.answered");
    assert_eq!(reply.correlation_id, Some(action.action_id));
    assert_eq!(
        (reply.tenant_id, reply.user_id, reply.session_id),
        (action.tenant_id, action.user_id, action.session_id)
    );
    assert_eq!(
        reply.data["request_action_type"],
        "chat.completion.generate"
    );
    assert_eq!(reply.data["content"], json!(answer));
    assert_eq!(reply.data["finish_reason"], "stop");
}
