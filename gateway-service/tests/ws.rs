//! The WebSocket protocol end to end: gateway → Redis Streams → chat-worker → back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use common::testing::{read_until, xrange_all};
use provider_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use support::{Ended, Opts, System, Ws, kinds, text};
use uuid::Uuid;

fn assert_well_formed(events: &[Value], session: &str) {
    let mut last = (0u64, 0u64);
    for e in events {
        assert_eq!(e["session_id"], session, "{e}");
        let id = e["event_id"].as_str().expect("event_id");
        let (ms, seq) = id.split_once('-').unwrap();
        let id = (ms.parse().unwrap(), seq.parse().unwrap());
        assert!(id > last, "event ids increase: {e}");
        last = id;
    }
}

#[tokio::test]
async fn chat_round_trip_streams_every_event_and_completes_once() {
    let system = System::start(Opts::new()).await;
    let (mut ws, session) = system.connect(&system.token(Uuid::now_v7())).await;
    for prompt in ["first question", "second question"] {
        ws.send(json!({"type": "chat", "prompt": prompt})).await;
        let events = ws.until_complete().await;
        let k = kinds(&events);
        assert_eq!(k[..3], ["working", "model_in_use", "text_chunk"], "{k:?}");
        assert_eq!(
            k[k.len() - 4..],
            [
                "text_completed",
                "db_operation_executed",
                "tts_not_requested",
                "complete"
            ],
            "{k:?}"
        );
        assert_eq!(k.iter().filter(|k| *k == "text_chunk").count(), 8);
        assert_eq!(events[1]["data"]["provider"], "dummy");
        assert!(
            events[1]["data"]["note"]
                .as_str()
                .unwrap()
                .contains("no provider key")
        );
        let task = events[0]["task_id"].as_str().unwrap();
        assert!(events.iter().all(|e| e["task_id"] == task));
        assert_well_formed(&events, &session);
        let full = text(&events);
        assert!(full.starts_with(&format!("Echo: {prompt}")), "{full}");
        assert_eq!(events[events.len() - 4]["data"]["content"], full);
        // Nothing after complete: the next event is the answer to a ping.
        ws.send(json!({"type": "ping"})).await;
        assert_eq!(ws.next().await["type"], "pong");
    }
}

#[tokio::test]
async fn cancel_mid_stream_closes_the_provider_connection() {
    let sim = Simulator::start(SimConfig {
        chunks: 500,
        chunk_interval: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut opts = Opts::new();
    opts.worker.as_mut().unwrap().providers.insert(
        "openai".into(),
        chat_worker::config::ProviderAccess {
            api_key: Some(common::settings::Secret::new("sk-test")),
            base_url: Some(sim.base_url()),
        },
    );
    let system = System::start(opts).await;
    let (mut ws, _) = system.connect(&system.token(Uuid::now_v7())).await;
    ws.send(json!({"type": "chat", "prompt": "tell me everything", "model": "gpt-4o-mini"}))
        .await;
    let before = ws.until("text_chunk").await;
    assert_eq!(
        before[1]["data"],
        json!({"provider": "openai", "model": "gpt-4o-mini"})
    );
    ws.send(json!({"type": "cancel"})).await;
    let events = ws.until_complete().await;
    let k = kinds(&events);
    let at = k
        .iter()
        .position(|k| k == "cancelled")
        .expect("cancelled event");
    assert_eq!(
        k[at + 1..],
        [
            "text_completed",
            "db_operation_executed",
            "tts_not_requested",
            "complete"
        ]
    );
    assert_eq!(events[at + 1]["data"]["finish_reason"], "cancelled");
    let closed = sim.wait_for_client_close(Duration::from_secs(5)).await;
    let record = closed.expect("the simulator saw the client close the stream");
    assert!(record.chunks_sent < 500);
    assert_eq!(record.body["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn resume_replays_missed_events_once_then_continues_live() {
    let system = System::start(Opts::new().dummy(60, 15)).await;
    let token = system.token(Uuid::now_v7());
    let (mut ws, session) = system.connect(&token).await;
    ws.send(json!({"type": "chat", "prompt": "a long story"}))
        .await;
    let mut first = Vec::new();
    while first
        .iter()
        .filter(|e: &&Value| e["type"] == "text_chunk")
        .count()
        < 5
    {
        first.push(ws.next().await);
    }
    let last_seen = first.last().unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ws.close().await;

    let (mut ws, _) = system.connect(&token).await;
    ws.send(json!({"type": "resume", "session_id": session, "last_event_id": last_seen}))
        .await;
    let rest = ws.until_complete().await;
    let all: Vec<Value> = first.iter().chain(&rest).cloned().collect();
    assert_well_formed(&all, &session);
    let stored = xrange_all(
        &mut common::testing::test_bus(&system.core).await.conn(),
        &system
            .core
            .names()
            .response_stream(session.parse().unwrap()),
    )
    .await;
    let stored_ids: Vec<&str> = stored.iter().map(|e| e.id.as_str()).collect();
    let got_ids: Vec<&str> = all
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(got_ids, stored_ids, "every event exactly once, in order");
    let completed = rest.iter().find(|e| e["type"] == "text_completed").unwrap();
    assert_eq!(text(&all), completed["data"]["content"].as_str().unwrap());
}

#[tokio::test]
async fn a_task_whose_client_never_returns_is_cancelled_after_the_grace() {
    let mut opts = Opts::new().dummy(2000, 10);
    opts.gateway.ws.resume_grace_secs = 1;
    let system = System::start(opts).await;
    let (mut ws, session) = system.connect(&system.token(Uuid::now_v7())).await;
    ws.send(json!({"type": "chat", "prompt": "nobody reads this"}))
        .await;
    let task: Uuid = ws.until("text_chunk").await[0]["task_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    ws.close().await;
    let key = system
        .core
        .names()
        .response_stream(session.parse().unwrap());
    let events = read_until(
        &system.core,
        &key,
        "complete",
        Some(task),
        Duration::from_secs(20),
    )
    .await;
    assert!(events.iter().any(|e| e.kind == "cancelled"));
    let chunks = events.iter().filter(|e| e.kind == "text_chunk").count();
    assert!(chunks < 2000, "stopped early: {chunks} chunks");
}

#[tokio::test]
async fn bad_input_gets_errors_or_close_codes_and_others_are_still_served() {
    let mut opts = Opts::new();
    opts.gateway.ws.max_frame_bytes = 1024;
    let system = System::start(opts).await;
    let token = system.token(Uuid::now_v7());

    let (mut ws, _) = system.connect(&token).await;
    ws.send_raw("this is not json".into()).await;
    let e = ws.next().await;
    assert_eq!(
        (e["type"].as_str(), e["data"]["code"].as_str()),
        (Some("error"), Some("invalid_json"))
    );
    ws.send(json!({"type": "teleport"})).await;
    assert_eq!(ws.next().await["data"]["code"], "unknown_type");
    ws.send(json!({"type": "chat", "prompt": ""})).await;
    assert_eq!(ws.next().await["data"]["code"], "bad_request");
    ws.send(json!({"type": "resume", "session_id": Uuid::now_v7(), "last_event_id": "nope"}))
        .await;
    assert_eq!(ws.next().await["data"]["code"], "bad_request");
    ws.send_raw("x".repeat(4096)).await;
    let (_, ended) = ws.until_closed().await;
    assert_eq!(ended, Ended::Closed(1009));

    let secret = common::testing::TEST_SECRET.as_bytes();
    let expired = common::auth::JwtAuth::hs256(secret)
        .sign(&common::auth::Claims {
            sub: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            role: common::auth::Role::User,
            exp: 1_000_000,
            nbf: None,
        })
        .unwrap();
    let alg_none = {
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claims = json!({"sub": Uuid::now_v7(), "tenant_id": Uuid::now_v7(), "role": "admin",
            "exp": 4_000_000_000u64});
        format!(
            "{}.{}.",
            b(r#"{"alg":"none","typ":"JWT"}"#),
            b(&claims.to_string())
        )
    };
    for bad in ["garbage", expired.as_str(), alg_none.as_str()] {
        let mut ws = Ws::connect(&format!("{}?token={bad}", system.ws)).await;
        let (events, ended) = ws.until_closed().await;
        assert_eq!(ended, Ended::Closed(1008), "token {bad}");
        assert_eq!(events[0]["data"]["code"], "unauthorized");
    }
    // No token and a first message that is not `auth`.
    let mut ws = Ws::connect(&system.ws).await;
    ws.send(json!({"type": "chat", "prompt": "hi"})).await;
    assert_eq!(ws.until_closed().await.1, Ended::Closed(1008));
    // A first `auth` message works.
    let mut ws = Ws::connect(&system.ws).await;
    ws.send(json!({"type": "auth", "token": token})).await;
    assert_eq!(ws.next().await["type"], "websocket_ready");
    ws.send(json!({"type": "chat", "prompt": "still served"}))
        .await;
    let events = ws.until_complete().await;
    assert!(text(&events).contains("still served"));
}

#[tokio::test]
async fn another_tenant_cannot_resume_or_join_a_session() {
    let system = System::start(Opts::new()).await;
    let (mut a, session) = system.connect(&system.token(Uuid::now_v7())).await;
    a.send(json!({"type": "chat", "prompt": "private"})).await;
    let events = a.until_complete().await;
    let first = events[0]["event_id"].as_str().unwrap();

    let other = system.token(Uuid::now_v7());
    let (mut b, _) = system.connect(&other).await;
    b.send(json!({"type": "resume", "session_id": session, "last_event_id": "0-0"}))
        .await;
    let e = b.next().await;
    assert_eq!(
        (e["type"].as_str(), e["data"]["code"].as_str()),
        (Some("error"), Some("not_found"))
    );
    b.send(json!({"type": "chat", "prompt": "mine now?", "session_id": session}))
        .await;
    assert_eq!(b.next().await["data"]["code"], "not_found");
    let mut c = Ws::connect(&format!("{}?token={other}&session_id={session}", system.ws)).await;
    let (events, ended) = c.until_closed().await;
    assert_eq!(ended, Ended::Closed(1008));
    assert_eq!(events[0]["data"]["code"], "not_found");
    assert!(!first.is_empty());
}
