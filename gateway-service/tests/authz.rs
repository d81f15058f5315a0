//! Who may use a session, on every path: users of one tenant cannot chat into, replay, resume or
//! cancel each other's sessions; a bus action cannot write into another tenant's session; a
//! `callback_stream` names only a callback stream or the session's own response stream, and never
//! changes the TTL of another key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use common::Bus;
use common::envelope::DomainAction;
use common::testing::{read_until, xrange_all};
use redis::AsyncCommands;
use serde_json::{Value, json};
use support::{Opts, System, kinds, text};
use uuid::Uuid;

async fn bus(system: &System) -> Bus {
    Bus::connect(&system.core).await.unwrap()
}

/// A chat action as another internal service would publish it with a plain `XADD`.
fn chat_action(tenant: Uuid, session: Uuid, store: bool) -> DomainAction {
    DomainAction::new(
        "chat.completion.generate",
        "another-service",
        tenant,
        session,
        json!({"prompt": "intrude", "store": store}),
    )
}

#[tokio::test]
async fn another_user_of_the_tenant_cannot_use_a_session() {
    let system = System::start(Opts::new().dummy(8, 50)).await;
    let tenant = Uuid::now_v7();
    let (alice, mallory) = (system.token(tenant), system.token(tenant));

    let (status, body) = system
        .post(&alice, "/chat", json!({"prompt": "my secret plan"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let session = body["data"]["session_id"].as_str().unwrap().to_owned();

    // POST /chat into it: not found, and nothing of Alice's reaches Mallory's prompt.
    let (status, body) = system
        .post(
            &mallory,
            "/chat",
            json!({"prompt": "what was said?", "session_id": session}),
        )
        .await;
    assert_eq!(status, 404, "{body}");

    // Replay with SSE from the start: not found.
    let r = reqwest::Client::new()
        .post(format!("{}/chat/stream", system.http))
        .bearer_auth(&mallory)
        .header("Last-Event-ID", "0-0")
        .json(&json!({"session_id": session}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // WebSocket: neither opened on the session nor resumed from 0.
    let (mut ws, _) = system.connect(&mallory).await;
    ws.send(json!({"type": "resume", "session_id": session, "last_event_id": "0-0"}))
        .await;
    let refused = ws.next().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["data"]["code"], "not_found", "{refused}");
    ws.send(json!({"type": "chat", "prompt": "hi", "session_id": session}))
        .await;
    let refused = ws.next().await;
    assert_eq!(refused["data"]["code"], "not_found", "{refused}");
    let mut other = support::Ws::connect(&format!(
        "{}?token={mallory}&session_id={session}",
        system.ws
    ))
    .await;
    let (events, _) = other.until_closed().await;
    assert_eq!(events[0]["data"]["code"], "not_found", "{events:?}");

    // Mallory cannot cancel Alice's running task: Alice's answer completes in full.
    let (mut alice_ws, _) = system.connect(&alice).await;
    alice_ws
        .send(json!({"type": "chat", "prompt": "a long answer", "session_id": session}))
        .await;
    alice_ws.until("text_chunk").await;
    ws.send(json!({"type": "resume", "session_id": session}))
        .await;
    ws.next().await;
    ws.send(json!({"type": "cancel"})).await;
    let events = alice_ws.until_complete().await;
    assert!(
        !kinds(&events).contains(&"cancelled".to_owned()),
        "{events:?}"
    );

    // Alice still has her session, with both turns and nothing of Mallory's.
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/chat/sessions/{session}", system.http))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let contents: Vec<&str> = body["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert!(contents.contains(&"my secret plan"), "{contents:?}");
    assert!(
        !contents.iter().any(|c| c.contains("what was said")),
        "{contents:?}"
    );
    system.stop().await;
}

#[tokio::test]
async fn the_nil_session_id_is_refused() {
    let system = System::start(Opts::new()).await;
    let token = system.token(Uuid::now_v7());
    let (status, body) = system
        .post(
            &token,
            "/chat",
            json!({"prompt": "hi", "session_id": Uuid::nil()}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    system.stop().await;
}

/// Runs one WebSocket turn for a fresh tenant; returns its token, session and response stream.
async fn victim(system: &System, store: bool) -> (String, Uuid, String) {
    let token = system.token(Uuid::now_v7());
    let (mut ws, session) = system.connect(&token).await;
    ws.send(json!({"type": "chat", "prompt": "mine", "store": store}))
        .await;
    ws.until_complete().await;
    ws.close().await;
    let session: Uuid = session.parse().unwrap();
    let stream = bus(system).await.names().response_stream(session);
    (token, session, stream)
}

#[tokio::test]
async fn bus_actions_cannot_write_into_another_tenants_session() {
    let system = System::start(Opts::new()).await;
    let bus = bus(&system).await;
    let mut conn = bus.conn();
    let dead = bus.names().dead_letter_stream("chat");

    for store in [true, false] {
        // B used the session only with `store: false`, or with history: either way it is B's.
        let (b_token, session, stream) = victim(&system, store).await;
        let before = xrange_all(&mut conn, &stream).await.len();
        let callback = bus.names().callback_stream(&format!("intruder-{store}"));
        let mut action = chat_action(Uuid::now_v7(), session, true);
        action.callback_stream = Some(callback.clone());
        bus.publish(&action).await.unwrap();
        // Told on the action's own callback stream...
        let told = read_until(
            &bus,
            &callback,
            "complete",
            Some(action.task_id),
            Duration::from_secs(20),
        )
        .await;
        let error = told.iter().find(|r| r.kind == "error").expect("an error");
        assert_eq!(error.event["data"]["code"], "session_not_owned");
        // ...dead-lettered with the reason...
        let letters = xrange_all(&mut conn, &dead).await;
        assert!(
            letters
                .iter()
                .any(|l| l.event["action_id"] == action.action_id.to_string()),
            "{letters:?}"
        );
        // ...and nothing reached B's stream; B still reads its own session.
        let after = xrange_all(&mut conn, &stream).await;
        assert_eq!(after.len(), before, "{after:?}");
        let r = reqwest::Client::new()
            .post(format!("{}/chat", system.http))
            .bearer_auth(&b_token)
            .json(&json!({"prompt": "still mine?", "session_id": session}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    // Without a callback stream the intruder's store:false answer goes nowhere.
    let (_, session, stream) = victim(&system, false).await;
    let before = xrange_all(&mut conn, &stream).await.len();
    let action = chat_action(Uuid::now_v7(), session, false);
    bus.publish(&action).await.unwrap();
    for _ in 0..100 {
        let letters = xrange_all(&mut conn, &dead).await;
        if letters
            .iter()
            .any(|l| l.event["action_id"] == action.action_id.to_string())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(xrange_all(&mut conn, &stream).await.len(), before);
    system.stop().await;
}

#[tokio::test]
async fn callback_streams_are_only_callback_streams_and_keep_other_keys_ttls() {
    let system = System::start(Opts::new()).await;
    let bus = bus(&system).await;
    let mut conn = bus.conn();
    let names = bus.names().clone();
    let tenant = Uuid::now_v7();

    // A key of the namespace with a TTL, such as a session's owner key.
    let (_, victim_session, victim_stream) = victim(&system, false).await;
    let owner_key = names.session_owner(victim_session);
    let owner_ttl: i64 = conn.ttl(&owner_key).await.unwrap();
    assert!(owner_ttl > 0);

    let action_stream = names.action_stream("chat");
    for target in [
        action_stream.clone(),
        names.dead_letter_stream("chat"),
        victim_stream.clone(),
        owner_key.clone(),
    ] {
        let session = Uuid::now_v7();
        let mut action = chat_action(tenant, session, false);
        action.callback_stream = Some(target.clone());
        bus.publish(&action).await.unwrap();
        // Refused: told on the action's own session stream, not written to the target.
        let own = names.response_stream(session);
        let told = read_until(
            &bus,
            &own,
            "complete",
            Some(action.task_id),
            Duration::from_secs(20),
        )
        .await;
        let error = told.iter().find(|r| r.kind == "error").expect("an error");
        assert_eq!(
            error.event["data"]["code"], "invalid_callback_stream",
            "{target}"
        );
    }
    // Nothing was appended to the action stream but actions, and it keeps no TTL.
    let entries = xrange_all(&mut conn, &action_stream).await;
    assert!(entries.iter().all(|e| e.kind.is_empty()), "{entries:?}");
    let ttl: i64 = conn.ttl(&action_stream).await.unwrap();
    assert_eq!(ttl, -1, "the action stream must never expire");
    let ttl: i64 = conn.ttl(&owner_key).await.unwrap();
    assert!(ttl > 0 && ttl <= owner_ttl, "owner key TTL changed: {ttl}");

    // A callback stream of the namespace gets the task's events; so does the session's own.
    let session = Uuid::now_v7();
    let callback = names.callback_stream("billing");
    let mut action = chat_action(tenant, session, false);
    action.callback_stream = Some(callback.clone());
    bus.publish(&action).await.unwrap();
    let events = read_until(
        &bus,
        &callback,
        "complete",
        Some(action.task_id),
        Duration::from_secs(20),
    )
    .await;
    let events: Vec<Value> = events.into_iter().map(|r| r.event).collect();
    assert!(!text(&events).is_empty(), "{events:?}");
    system.stop().await;
}
