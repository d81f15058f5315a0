//! The worker runtime against a real Redis: hand-written actions, dead letters, reclaim of a dead
//! consumer's entries, idempotency, cancel and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chat_worker::Settings;
use chat_worker::config::DummySettings;
use common::envelope::DomainAction;
use common::settings::CoreSettings;
use common::testing::{Received, isolated_settings, read_until, xrange_all};
use common::worker::WorkerSettings;
use common::{Bus, Names};
use redis::AsyncCommands;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

fn settings(core: CoreSettings) -> Settings {
    Settings {
        core,
        worker: WorkerSettings {
            min_idle_ms: 400,
            heartbeat_ms: 100,
            reclaim_interval_ms: 100,
            retry_base_ms: 20,
            retry_max_ms: 100,
            shutdown_grace_secs: 10,
            ..WorkerSettings::default()
        },
        dummy: DummySettings {
            tokens: 6,
            first_token_delay_ms: 0,
            token_interval_ms: 0,
        },
        provider_idle_timeout_secs: 10,
        ..Settings::default()
    }
}

struct Running {
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

fn spawn(settings: Settings) -> Running {
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(chat_worker::run(settings, shutdown.clone()));
    Running { shutdown, handle }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(WAIT, self.handle).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "worker did not stop cleanly: {stopped:?}"
        );
    }
}

fn chat_action(prompt: &str) -> DomainAction {
    DomainAction::new(
        "chat.completion.generate",
        "test",
        Uuid::now_v7(),
        Uuid::now_v7(),
        json!({"prompt": prompt}),
    )
}

async fn redis(core: &CoreSettings) -> (redis::Client, redis::aio::ConnectionManager) {
    let client = redis::Client::open(core.redis_url.as_str()).unwrap();
    let conn = client.get_connection_manager().await.unwrap();
    (client, conn)
}

fn kinds(events: &[Received]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn text(events: &[Received]) -> String {
    events
        .iter()
        .filter(|e| e.kind == "text_chunk")
        .map(|e| e.event["data"]["content"].as_str().unwrap().to_owned())
        .collect()
}

/// The completion rules, as a client checks them on the whole stream of one task.
fn assert_completed_once(events: &[Received]) {
    let completes = events.iter().filter(|e| e.kind == "complete").count();
    assert_eq!(completes, 1, "exactly one complete: {:?}", kinds(events));
    assert_eq!(
        events.last().unwrap().kind,
        "complete",
        "{:?}",
        kinds(events)
    );
    let k = kinds(events);
    assert!(
        k.contains(&"text_completed") || k.contains(&"text_not_requested"),
        "{k:?}"
    );
    assert!(
        k.contains(&"tts_completed") || k.contains(&"tts_not_requested"),
        "{k:?}"
    );
}

#[tokio::test]
async fn action_xadded_by_hand_is_processed() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = spawn(settings(core.clone()));
    let (session, task) = (Uuid::now_v7(), Uuid::now_v7());
    // Exactly what another service would send with a plain XADD.
    let payload = format!(
        r#"{{"v":1,"action_id":"{}","action_type":"chat.completion.generate",
        "timestamp":"2026-01-01T00:00:00Z","tenant_id":"{}","session_id":"{session}",
        "task_id":"{task}","origin_service":"billing-py","data":{{"prompt":"hand made"}},
        "some_future_field":true}}"#,
        Uuid::now_v7(),
        Uuid::now_v7()
    );
    let _: String = conn
        .xadd(
            names.action_stream("chat"),
            "*",
            &[
                ("action_type", "chat.completion.generate"),
                ("payload", &payload),
            ],
        )
        .await
        .unwrap();
    let key = names.response_stream(session);
    let events = read_until(&client, &key, "complete", Some(task), WAIT).await;
    assert_eq!(
        kinds(&events)[..2],
        ["working", "model_in_use"],
        "{:?}",
        kinds(&events)
    );
    assert!(
        text(&events).starts_with("Echo: hand made"),
        "{}",
        text(&events)
    );
    assert_completed_once(&xrange_all(&mut conn, &key).await);
    assert!(
        conn.ttl::<_, i64>(&key).await.unwrap() > 0,
        "response stream expires"
    );
    worker.stop().await;
}

#[tokio::test]
async fn malformed_envelopes_are_dead_lettered_and_the_worker_keeps_going() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = spawn(settings(core.clone()));
    let stream = names.action_stream("chat");
    let _: String = conn
        .xadd(&stream, "*", &[("payload", "{not json")])
        .await
        .unwrap();
    // Names its tenant, session and task but lacks origin_service: the client can still be told
    // (the session is new, so it is the tenant's).
    let (session, task) = (Uuid::now_v7(), Uuid::now_v7());
    let missing = json!({"v": 1, "action_id": Uuid::now_v7(), "action_type": "chat.completion.generate",
        "timestamp": "2026-01-01T00:00:00Z", "session_id": session, "task_id": task,
        "tenant_id": Uuid::now_v7(), "data": {"prompt": "p"}});
    let _: String = conn
        .xadd(&stream, "*", &[("payload", missing.to_string())])
        .await
        .unwrap();
    let unknown = DomainAction::new(
        "chat.image.paint",
        "x",
        Uuid::now_v7(),
        Uuid::now_v7(),
        json!({}),
    );
    let bus = Bus::connect(&core).await.unwrap();
    bus.publish(&unknown).await.unwrap();

    let events = read_until(
        &client,
        &names.response_stream(session),
        "complete",
        Some(task),
        WAIT,
    )
    .await;
    let error = events
        .iter()
        .find(|e| e.kind == "error")
        .expect("error event");
    assert_eq!(error.event["data"]["code"], "invalid_envelope");
    assert!(
        error.event["data"]["message"]
            .as_str()
            .unwrap()
            .contains("origin_service")
    );
    assert_completed_once(&events);

    let good = chat_action("still alive");
    bus.publish(&good).await.unwrap();
    let key = names.response_stream(good.session_id);
    let events = read_until(&client, &key, "complete", Some(good.task_id), WAIT).await;
    assert!(text(&events).contains("still alive"));

    let dead = xrange_all(&mut conn, &names.dead_letter_stream("chat")).await;
    assert_eq!(dead.len(), 3, "{dead:#?}");
    let raw: redis::streams::StreamRangeReply = conn
        .xrange_all(names.dead_letter_stream("chat"))
        .await
        .unwrap();
    let reasons: Vec<String> = raw
        .ids
        .iter()
        .map(|e| e.get::<String>("error").unwrap())
        .collect();
    assert!(reasons[0].contains("malformed"), "{reasons:?}");
    assert!(
        reasons[2].contains("does not handle chat.image.paint"),
        "{reasons:?}"
    );
    for e in &raw.ids {
        assert!(e.get::<String>("original_id").is_some());
        assert_eq!(e.get::<String>("delivery_count").as_deref(), Some("1"));
    }
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(&stream, names.consumer_group("chat"))
        .await
        .unwrap();
    assert_eq!(pending.count(), 0, "everything acknowledged");
    worker.stop().await;
}

/// Leaves an action pending on a consumer that then "dies" (reads and never acks).
async fn strand_on_ghost(
    core: &CoreSettings,
    conn: &mut redis::aio::ConnectionManager,
) -> DomainAction {
    let names: Names = core.names();
    let stream = names.action_stream("chat");
    let group = names.consumer_group("chat");
    let _: () = conn
        .xgroup_create_mkstream(&stream, &group, "0")
        .await
        .unwrap();
    let action = chat_action("survive a crash");
    Bus::connect(core)
        .await
        .unwrap()
        .publish(&action)
        .await
        .unwrap();
    let opts = redis::streams::StreamReadOptions::default()
        .group(&group, "ghost-consumer")
        .count(1);
    let read: redis::streams::StreamReadReply =
        conn.xread_options(&[&stream], &[">"], &opts).await.unwrap();
    assert_eq!(read.keys[0].ids.len(), 1);
    action
}

#[tokio::test]
async fn a_dead_consumers_action_is_reclaimed_and_completed() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let action = strand_on_ghost(&core, &mut conn).await;
    let worker = spawn(settings(core.clone()));
    let key = names.response_stream(action.session_id);
    let events = read_until(&client, &key, "complete", Some(action.task_id), WAIT).await;
    assert!(
        text(&events).starts_with("Echo: survive a crash"),
        "{}",
        text(&events)
    );
    assert_completed_once(&events);
    worker.stop().await;
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(names.action_stream("chat"), names.consumer_group("chat"))
        .await
        .unwrap();
    assert_eq!(pending.count(), 0);
}

#[tokio::test]
async fn past_max_deliveries_the_action_is_dead_lettered_and_the_client_told() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let action = strand_on_ghost(&core, &mut conn).await;
    let mut s = settings(core.clone());
    s.worker.max_deliveries = 1;
    let worker = spawn(s);
    let key = names.response_stream(action.session_id);
    let events = read_until(&client, &key, "complete", Some(action.task_id), WAIT).await;
    assert_eq!(
        kinds(&events),
        [
            "error",
            "text_not_requested",
            "tts_not_requested",
            "complete"
        ]
    );
    assert_eq!(events[0].event["data"]["code"], "max_deliveries_exceeded");
    let raw: redis::streams::StreamRangeReply = conn
        .xrange_all(names.dead_letter_stream("chat"))
        .await
        .unwrap();
    assert_eq!(raw.ids.len(), 1);
    let dead = &raw.ids[0];
    assert_eq!(dead.get::<String>("delivery_count").as_deref(), Some("2"));
    assert_eq!(
        dead.get::<String>("action_id"),
        Some(action.action_id.to_string())
    );
    assert!(
        dead.get::<String>("error")
            .unwrap()
            .contains("delivered 2 times")
    );
    assert!(dead.get::<String>("original_id").is_some());
    worker.stop().await;
}

#[tokio::test]
async fn a_redelivered_action_runs_once() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let mut s = settings(core.clone());
    s.worker.concurrency = 1;
    let worker = spawn(s);
    let bus = Bus::connect(&core).await.unwrap();
    let action = chat_action("once");
    bus.publish(&action).await.unwrap();
    let key = names.response_stream(action.session_id);
    read_until(&client, &key, "complete", Some(action.task_id), WAIT).await;
    bus.publish(&action).await.unwrap();
    // Same session, a later task: processed after the duplicate (one handler at a time).
    let mut later = chat_action("after");
    later.session_id = action.session_id;
    later.tenant_id = action.tenant_id;
    bus.publish(&later).await.unwrap();
    read_until(&client, &key, "complete", Some(later.task_id), WAIT).await;
    let all = xrange_all(&mut conn, &key).await;
    let first_task: Vec<_> = all
        .iter()
        .filter(|e| e.event["task_id"] == action.task_id.to_string())
        .cloned()
        .collect();
    assert_completed_once(&first_task);
    assert_eq!(first_task.iter().filter(|e| e.kind == "working").count(), 1);
    worker.stop().await;
}

#[tokio::test]
async fn cancel_stops_the_task_with_completion_events() {
    let core = isolated_settings();
    let names = core.names();
    let (client, _conn) = redis(&core).await;
    let mut s = settings(core.clone());
    s.dummy = DummySettings {
        tokens: 500,
        first_token_delay_ms: 0,
        token_interval_ms: 20,
    };
    let worker = spawn(s);
    let bus = Bus::connect(&core).await.unwrap();
    let action = chat_action("long answer");
    bus.publish(&action).await.unwrap();
    let key = names.response_stream(action.session_id);
    read_until(&client, &key, "text_chunk", Some(action.task_id), WAIT).await;
    bus.request_cancel(action.task_id).await.unwrap();
    let events = read_until(&client, &key, "complete", Some(action.task_id), WAIT).await;
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
    let done = &events[cancelled + 1].event["data"];
    assert_eq!(done["finish_reason"], "cancelled");
    assert!(k.iter().filter(|k| **k == "text_chunk").count() < 500);
    worker.stop().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_work_finish() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let mut s = settings(core.clone());
    s.dummy = DummySettings {
        tokens: 30,
        first_token_delay_ms: 0,
        token_interval_ms: 10,
    };
    let worker = spawn(s);
    let action = chat_action("finish me");
    Bus::connect(&core)
        .await
        .unwrap()
        .publish(&action)
        .await
        .unwrap();
    let key = names.response_stream(action.session_id);
    read_until(&client, &key, "text_chunk", Some(action.task_id), WAIT).await;
    worker.stop().await;
    let events = xrange_all(&mut conn, &key).await;
    assert_completed_once(&events);
    assert_eq!(events.iter().filter(|e| e.kind == "text_chunk").count(), 30);
}

#[tokio::test]
async fn a_sessions_stream_does_not_expire_under_its_next_task() {
    let mut core = isolated_settings();
    core.bus.response_ttl_secs = 1;
    let names = core.names();
    let (client, _conn) = redis(&core).await;
    let mut s = settings(core.clone());
    s.dummy = DummySettings {
        tokens: 150,
        first_token_delay_ms: 0,
        token_interval_ms: 10,
    };
    let worker = spawn(s);
    let bus = Bus::connect(&core).await.unwrap();
    let first = chat_action("first");
    bus.publish(&first).await.unwrap();
    let key = names.response_stream(first.session_id);
    read_until(&client, &key, "complete", Some(first.task_id), WAIT).await;
    // The next turn starts within the first one's 1 s TTL and outlasts it.
    let mut second = chat_action("second");
    second.session_id = first.session_id;
    second.tenant_id = first.tenant_id;
    bus.publish(&second).await.unwrap();
    let events: Vec<Received> = read_until(&client, &key, "complete", Some(second.task_id), WAIT)
        .await
        .into_iter()
        .filter(|e| e.event["task_id"] == second.task_id.to_string())
        .collect();
    assert_eq!(
        events.iter().filter(|e| e.kind == "text_chunk").count(),
        150
    );
    assert_completed_once(&events);
    worker.stop().await;
}

#[tokio::test]
async fn a_cancel_reaches_a_task_finishing_during_shutdown() {
    let core = isolated_settings();
    let names = core.names();
    let (client, _conn) = redis(&core).await;
    let mut s = settings(core.clone());
    s.dummy = DummySettings {
        tokens: 2000,
        first_token_delay_ms: 0,
        token_interval_ms: 10,
    };
    let worker = spawn(s);
    let bus = Bus::connect(&core).await.unwrap();
    let action = chat_action("long");
    bus.publish(&action).await.unwrap();
    let key = names.response_stream(action.session_id);
    read_until(&client, &key, "text_chunk", Some(action.task_id), WAIT).await;
    worker.shutdown.cancel();
    bus.request_cancel(action.task_id).await.unwrap();
    let events = read_until(&client, &key, "complete", Some(action.task_id), WAIT).await;
    assert!(events.iter().any(|e| e.kind == "cancelled"));
    assert!(events.iter().filter(|e| e.kind == "text_chunk").count() < 2000);
    worker.stop().await;
}

#[tokio::test]
async fn callback_streams_must_stay_in_the_namespace() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = spawn(settings(core.clone()));
    let bus = Bus::connect(&core).await.unwrap();
    let mut inside = chat_action("reply elsewhere");
    let callback = names.callback_stream("billing-replies");
    inside.callback_stream = Some(callback.clone());
    bus.publish(&inside).await.unwrap();
    let events = read_until(&client, &callback, "complete", Some(inside.task_id), WAIT).await;
    assert!(text(&events).contains("reply elsewhere"));

    let mut outside = chat_action("escape");
    let foreign = format!("elsewhere{}:replies", Uuid::now_v7().simple());
    outside.callback_stream = Some(foreign.clone());
    bus.publish(&outside).await.unwrap();
    let dead = names.dead_letter_stream("chat");
    let found = read_until(&client, &dead, "", None, WAIT).await;
    let raw: redis::streams::StreamRangeReply = conn.xrange_all(&dead).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        raw.ids[0]
            .get::<String>("error")
            .unwrap()
            .contains("callback_stream")
    );
    assert_eq!(
        raw.ids[0].get::<String>("action_id"),
        Some(outside.action_id.to_string())
    );
    assert!(!conn.exists::<_, bool>(&foreign).await.unwrap());
    worker.stop().await;
}

#[tokio::test]
async fn a_payload_that_can_never_run_is_refused_not_dead_lettered() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = spawn(settings(core.clone()));
    let bus = Bus::connect(&core).await.unwrap();
    for data in [
        json!({"prompt": "hi", "settings": {"max_tokens": -1}}),
        json!({"prompt": "hi", "settings": {"temperature": "hot"}}),
        json!({"prompt": "a\u{0}b"}),
    ] {
        let mut action = chat_action("x");
        action.data = data.clone();
        bus.publish(&action).await.unwrap();
        let key = names.response_stream(action.session_id);
        let events = read_until(&client, &key, "complete", Some(action.task_id), WAIT).await;
        let error = events.iter().find(|e| e.kind == "error").expect("an error");
        assert_eq!(error.event["data"]["code"], "invalid_payload", "{data}");
        assert_eq!(error.event["data"]["retryable"], false);
        assert_completed_once(&events);
    }
    let dead = xrange_all(&mut conn, &names.dead_letter_stream("chat")).await;
    assert!(dead.is_empty(), "{dead:#?}");
    worker.stop().await;
}

#[tokio::test]
async fn an_oversized_action_is_dead_lettered_unread() {
    let mut core = isolated_settings();
    core.bus.max_action_bytes = 16 * 1024;
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = spawn(settings(core.clone()));
    let bus = Bus::connect(&core).await.unwrap();
    let big = chat_action(&"word ".repeat(10_000));
    bus.publish(&big).await.unwrap();
    let dead = names.dead_letter_stream("chat");
    read_until(&client, &dead, "", None, WAIT).await;
    let raw: redis::streams::StreamRangeReply = conn.xrange_all(&dead).await.unwrap();
    let error: String = raw.ids[0].get("error").unwrap();
    assert!(error.contains("BUS__MAX_ACTION_BYTES"), "{error}");
    let kept: String = raw.ids[0].get("payload").unwrap();
    assert!(kept.len() <= 4096, "the dead letter keeps only the start");
    // Nothing was written to its session, and the worker goes on.
    let stream = names.response_stream(big.session_id);
    assert!(xrange_all(&mut conn, &stream).await.is_empty());
    let good = chat_action("small");
    bus.publish(&good).await.unwrap();
    let key = names.response_stream(good.session_id);
    let events = read_until(&client, &key, "complete", Some(good.task_id), WAIT).await;
    assert!(text(&events).contains("small"));
    worker.stop().await;
}

#[tokio::test]
async fn a_callback_action_type_gets_the_answer_as_a_new_action() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = spawn(settings(core.clone()));
    let bus = Bus::connect(&core).await.unwrap();
    let mut action = chat_action("call me back");
    action.user_id = Some(Uuid::now_v7());
    action.callback_action_type = Some("billing.chat.answered".into());
    bus.publish(&action).await.unwrap();
    let key = names.response_stream(action.session_id);
    let events = read_until(&client, &key, "complete", Some(action.task_id), WAIT).await;
    assert_completed_once(&events);
    let replies = xrange_all(&mut conn, &names.action_stream("billing")).await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let reply = DomainAction::parse(&replies[0].event.to_string()).unwrap();
    assert_eq!(reply.action_type, "billing.chat.answered");
    assert_eq!(
        (reply.tenant_id, reply.user_id, reply.session_id),
        (action.tenant_id, action.user_id, action.session_id)
    );
    assert_eq!(reply.correlation_id, Some(action.action_id));
    assert_eq!(reply.data["request_action_id"], json!(action.action_id));
    assert!(
        reply.data["content"]
            .as_str()
            .unwrap()
            .contains("call me back")
    );
    assert_eq!(reply.data["finish_reason"], "stop");

    // Not service.entity.verb: refused before anything runs, not dead-lettered.
    let mut bad = chat_action("never");
    bad.callback_action_type = Some("nope".into());
    bus.publish(&bad).await.unwrap();
    let key = names.response_stream(bad.session_id);
    let events = read_until(&client, &key, "complete", Some(bad.task_id), WAIT).await;
    let error = events.iter().find(|e| e.kind == "error").expect("an error");
    assert_eq!(error.event["data"]["code"], "invalid_callback_action_type");
    assert!(events.iter().all(|e| e.kind != "text_chunk"));
    let dead = xrange_all(&mut conn, &names.dead_letter_stream("chat")).await;
    assert!(dead.is_empty());
    worker.stop().await;
}
