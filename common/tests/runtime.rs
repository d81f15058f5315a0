//! The worker runtime's contract against a real Redis, on the test handler of `common::testing`
//! (no PostgreSQL): hand-written and malformed actions, dead letters, reclaim of a dead consumer's
//! entries, retries, idempotency, cancel, graceful shutdown, callbacks, oversized actions,
//! rejections and session owners.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::envelope::DomainAction;
use common::settings::CoreSettings;
use common::testing::{
    Received, WAIT, WorkerHarness, fast_worker_settings, isolated_settings, read_until,
    test_action, xrange_all,
};
use common::worker::WorkerSettings;
use common::{Bus, Names};
use redis::AsyncCommands;
use redis::streams::StreamRangeReply;
use serde_json::{Value, json};
use uuid::Uuid;

/// The service the workers of these tests consume for.
const SERVICE: &str = "echo";

async fn start(core: &CoreSettings) -> WorkerHarness {
    start_with(core, fast_worker_settings()).await
}

async fn start_with(core: &CoreSettings, settings: WorkerSettings) -> WorkerHarness {
    WorkerHarness::start(core, settings, SERVICE).await
}

/// A test-handler action in a new session (also before a worker runs).
fn action(data: Value) -> DomainAction {
    test_action(SERVICE, data)
}

fn say(text: &str) -> DomainAction {
    action(json!({"text": text}))
}

/// The bus of the test (a single Redis or a cluster) and its shared connection.
async fn redis(core: &CoreSettings) -> (common::Bus, common::bus::Conn) {
    let bus = common::testing::test_bus(core).await;
    let conn = bus.conn();
    (bus, conn)
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

fn count(events: &[Received], kind: &str) -> usize {
    events.iter().filter(|e| e.kind == kind).count()
}

/// The completion rules, as a client checks them on the whole stream of one task.
fn assert_completed_once(events: &[Received]) {
    let completes = count(events, "complete");
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

async fn dead_letters(conn: &mut common::bus::Conn, names: &Names) -> StreamRangeReply {
    conn.xrange_all(names.dead_letter_stream(SERVICE))
        .await
        .unwrap()
}

#[tokio::test]
async fn action_xadded_by_hand_is_processed() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = start(&core).await;
    let (session, task) = (Uuid::now_v7(), Uuid::now_v7());
    // Exactly what another service would send with a plain XADD.
    let payload = format!(
        r#"{{"v":1,"action_id":"{}","action_type":"echo.test.run",
        "timestamp":"2026-01-01T00:00:00Z","tenant_id":"{}","session_id":"{session}",
        "task_id":"{task}","origin_service":"billing-py","data":{{"text":"hand made","chunks":3}},
        "some_future_field":true}}"#,
        Uuid::now_v7(),
        Uuid::now_v7()
    );
    let _: String = conn
        .xadd(
            names.action_stream(SERVICE),
            "*",
            &[("action_type", "echo.test.run"), ("payload", &payload)],
        )
        .await
        .unwrap();
    let key = names.response_stream(session);
    let events = read_until(&client, &key, "complete", Some(task), WAIT).await;
    assert_eq!(kinds(&events)[0], "working", "{:?}", kinds(&events));
    assert_eq!(count(&events, "text_chunk"), 3);
    assert_eq!(text(&events), "hand made");
    assert_completed_once(&xrange_all(&mut conn, &key).await);
    assert!(
        conn.ttl::<_, i64>(&key).await.unwrap() > 0,
        "response stream expires"
    );
    worker.stop().await;
}

/// `redis-cli` as another language's producer uses it: `-c` follows a cluster's redirects; the
/// partition is picked from the session id's last four hex digits, as `docs/streams.md` says.
#[tokio::test]
async fn an_action_xadded_with_redis_cli_to_its_partition_is_processed() {
    let core = isolated_settings();
    let names = core.names();
    let (bus, _conn) = redis(&core).await;
    let worker = start(&core).await;
    let (session, task) = (Uuid::now_v7(), Uuid::now_v7());
    let id = session.to_string();
    let last4 = usize::from_str_radix(&id[id.len() - 4..], 16).unwrap();
    let partitions = core.bus.action_partitions;
    let stream = names.action_partition_stream(SERVICE, last4 % partitions);
    let payload = format!(
        r#"{{"v":1,"action_id":"{}","action_type":"echo.test.run","timestamp":"2026-01-01T00:00:00Z","tenant_id":"{}","session_id":"{session}","task_id":"{task}","origin_service":"shell","data":{{"text":"from the shell","chunks":2}}}}"#,
        Uuid::now_v7(),
        Uuid::now_v7()
    );
    let url = core
        .cluster_urls()
        .into_iter()
        .next()
        .unwrap_or_else(|| core.redis_url.expose().to_owned());
    let mut cli = std::process::Command::new("redis-cli");
    if !core.cluster_urls().is_empty() {
        cli.arg("-c");
    }
    let out = cli
        .args([
            "-u",
            &url,
            "XADD",
            &stream,
            "*",
            "action_type",
            "echo.test.run",
        ])
        .args(["payload", &payload])
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "{out:?}");
    let entry = String::from_utf8_lossy(&out.stdout);
    assert!(
        entry.trim().contains('-'),
        "an entry id, not an error: {entry}"
    );
    let events = read_until(
        &bus,
        &names.response_stream(session),
        "complete",
        Some(task),
        WAIT,
    )
    .await;
    assert_eq!(text(&events), "from the shell");
    assert_completed_once(&events);
    worker.stop().await;
}

#[tokio::test]
async fn malformed_envelopes_are_dead_lettered_and_the_worker_keeps_going() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = start(&core).await;
    let stream = names.action_stream(SERVICE);
    let _: String = conn
        .xadd(&stream, "*", &[("payload", "{not json")])
        .await
        .unwrap();
    // Names its tenant, session and task but lacks origin_service: the client can still be told
    // (the session is new, so it is the tenant's).
    let (session, task) = (Uuid::now_v7(), Uuid::now_v7());
    let missing = json!({"v": 1, "action_id": Uuid::now_v7(), "action_type": "echo.test.run",
        "timestamp": "2026-01-01T00:00:00Z", "session_id": session, "task_id": task,
        "tenant_id": Uuid::now_v7(), "data": {"text": "p"}});
    let _: String = conn
        .xadd(&stream, "*", &[("payload", missing.to_string())])
        .await
        .unwrap();
    // An action type this service's handler does not know.
    let unknown = DomainAction::new(
        "echo.image.paint",
        "x",
        Uuid::now_v7(),
        Uuid::now_v7(),
        json!({}),
    );
    worker.publish(&unknown).await;

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

    let events = worker.wait(&unknown, "complete").await;
    let error = events.iter().find(|e| e.kind == "error").expect("an error");
    assert_eq!(error.event["data"]["code"], "unknown_action_type");
    assert_completed_once(&events);

    let good = say("still alive");
    let events = worker.run(&good).await;
    assert_eq!(text(&events), "still alive");

    let raw = dead_letters(&mut conn, &names).await;
    assert_eq!(raw.ids.len(), 3, "{raw:#?}");
    let reasons: Vec<String> = raw
        .ids
        .iter()
        .map(|e| e.get::<String>("error").unwrap())
        .collect();
    // In any order: with partitioned streams the unknown action may be in another partition.
    assert_eq!(
        reasons.iter().filter(|r| r.contains("malformed")).count(),
        2,
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("does not handle echo.image.paint")),
        "{reasons:?}"
    );
    for e in &raw.ids {
        assert!(e.get::<String>("original_id").is_some());
        assert_eq!(e.get::<String>("delivery_count").as_deref(), Some("1"));
    }
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(&stream, names.consumer_group(SERVICE))
        .await
        .unwrap();
    assert_eq!(pending.count(), 0, "everything acknowledged");
    worker.stop().await;
}

/// The stream (partition) an action is published to.
fn stream_of(core: &CoreSettings, action: &DomainAction) -> String {
    core.names()
        .action_stream_for(SERVICE, action.session_id, core.bus.action_partitions)
}

/// Leaves an action pending on a consumer that then "dies" (reads and never acks).
async fn strand_on_ghost(core: &CoreSettings, conn: &mut common::bus::Conn) -> DomainAction {
    let names: Names = core.names();
    let action = say("survive a crash");
    let stream = stream_of(core, &action);
    let group = names.consumer_group(SERVICE);
    let _: () = conn
        .xgroup_create_mkstream(&stream, &group, "0")
        .await
        .unwrap();
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
    let (_client, mut conn) = redis(&core).await;
    let action = strand_on_ghost(&core, &mut conn).await;
    let worker = start(&core).await;
    let events = worker.wait(&action, "complete").await;
    assert_eq!(text(&events), "survive a crash");
    assert_completed_once(&events);
    worker.stop().await;
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(stream_of(&core, &action), names.consumer_group(SERVICE))
        .await
        .unwrap();
    assert_eq!(pending.count(), 0);
}

#[tokio::test]
async fn past_max_deliveries_the_action_is_dead_lettered_and_the_client_told() {
    let core = isolated_settings();
    let names = core.names();
    let (_client, mut conn) = redis(&core).await;
    let action = strand_on_ghost(&core, &mut conn).await;
    let worker = start_with(
        &core,
        WorkerSettings {
            max_deliveries: 1,
            ..fast_worker_settings()
        },
    )
    .await;
    let events = worker.wait(&action, "complete").await;
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
    let raw = dead_letters(&mut conn, &names).await;
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
    assert_eq!(
        dead.get::<String>("stream"),
        Some(stream_of(&core, &action))
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_retryable_failure_is_retried_until_it_succeeds() {
    let core = isolated_settings();
    let names = core.names();
    let (_client, mut conn) = redis(&core).await;
    // Retries, not recovery, are under test: a claim held past a delayed heartbeat on a loaded
    // machine must not hand the entry to the reclaimer meanwhile.
    let worker = start_with(
        &core,
        WorkerSettings {
            min_idle_ms: 5000,
            ..fast_worker_settings()
        },
    )
    .await;
    for fail in ["retryable", "panic"] {
        let events = worker
            .run(&action(
                json!({"text": "third time lucky", "fail": fail, "fail_times": 2}),
            ))
            .await;
        assert_eq!(text(&events), "third time lucky", "{fail}");
        assert_eq!(count(&events, "working"), 1, "{fail}");
        assert_eq!(count(&events, "error"), 0, "{fail}: {:?}", kinds(&events));
        assert_completed_once(&events);
    }
    assert!(dead_letters(&mut conn, &names).await.ids.is_empty());
    worker.stop().await;
}

#[tokio::test]
async fn failures_that_retrying_cannot_fix_are_dead_lettered_and_the_client_told() {
    let core = isolated_settings();
    let names = core.names();
    let (_client, mut conn) = redis(&core).await;
    let worker = start_with(
        &core,
        WorkerSettings {
            max_deliveries: 3,
            ..fast_worker_settings()
        },
    )
    .await;
    // A fatal failure; a retryable one every time; a retryable one after output reached the
    // client (a retry would repeat it).
    let cases = [
        (json!({"fail": "fatal"}), "test_fatal", "1"),
        (json!({"fail": "retryable"}), "test_retryable", "3"),
        (
            json!({"text": "half", "chunks": 2, "fail": "retryable", "fail_after": 1}),
            "test_retryable",
            "1",
        ),
    ];
    for (i, (data, code, deliveries)) in cases.into_iter().enumerate() {
        let a = action(data.clone());
        let events = worker.run(&a).await;
        let error = events.iter().find(|e| e.kind == "error").expect("an error");
        assert_eq!(error.event["data"]["code"], code, "{data}");
        assert_completed_once(&events);
        let raw = dead_letters(&mut conn, &names).await;
        assert_eq!(raw.ids.len(), i + 1, "{data}");
        let dead = &raw.ids[i];
        assert_eq!(
            dead.get::<String>("action_id"),
            Some(a.action_id.to_string())
        );
        assert_eq!(
            dead.get::<String>("delivery_count").as_deref(),
            Some(deliveries),
            "{data}"
        );
    }
    worker.stop().await;
}

#[tokio::test]
async fn a_redelivered_action_runs_once() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = start_with(
        &core,
        WorkerSettings {
            concurrency: 1,
            ..fast_worker_settings()
        },
    )
    .await;
    let action = say("once");
    worker.run(&action).await;
    worker.publish(&action).await;
    // Same session, a later task: processed after the duplicate (one handler at a time).
    let mut later = say("after");
    later.session_id = action.session_id;
    later.tenant_id = action.tenant_id;
    later.user_id = action.user_id;
    worker.publish(&later).await;
    let key = names.response_stream(action.session_id);
    read_until(&client, &key, "complete", Some(later.task_id), WAIT).await;
    let all = xrange_all(&mut conn, &key).await;
    let first_task: Vec<_> = all
        .iter()
        .filter(|e| e.event["task_id"] == action.task_id.to_string())
        .cloned()
        .collect();
    assert_completed_once(&first_task);
    assert_eq!(count(&first_task, "working"), 1);
    assert_eq!(count(&first_task, "text_chunk"), 1);
    worker.stop().await;
}

#[tokio::test]
async fn cancel_stops_the_task_with_completion_events() {
    let core = isolated_settings();
    let worker = start(&core).await;
    let action = action(json!({"text": "x".repeat(500), "chunks": 500, "delay_ms": 20}));
    worker.publish(&action).await;
    worker.wait(&action, "text_chunk").await;
    worker.bus.request_cancel(action.task_id).await.unwrap();
    let events = worker.wait(&action, "complete").await;
    let k = kinds(&events);
    let cancelled = k.iter().position(|k| *k == "cancelled").expect("cancelled");
    assert_eq!(
        k[cancelled + 1..],
        ["text_completed", "tts_not_requested", "complete"]
    );
    let done = &events[cancelled + 1].event["data"];
    assert_eq!(done["finish_reason"], "cancelled");
    assert_eq!(done["content"], text(&events).as_str());
    assert!(count(&events, "text_chunk") < 500);
    worker.stop().await;
}

#[tokio::test]
async fn a_task_cancelled_before_it_runs_sends_no_output() {
    let core = isolated_settings();
    let worker = start(&core).await;
    let action = action(json!({"text": "never said", "chunks": 5}));
    worker.bus.request_cancel(action.task_id).await.unwrap();
    let events = worker.run(&action).await;
    assert_eq!(count(&events, "cancelled"), 1, "{:?}", kinds(&events));
    assert_eq!(count(&events, "text_chunk"), 0, "{:?}", kinds(&events));
    assert_completed_once(&events);
    // A cancelled task is no failure: nothing dead-lettered, no callback.
    let raw = dead_letters(&mut worker.bus.conn(), worker.bus.names()).await;
    assert!(raw.ids.is_empty());
    worker.stop().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_work_finish() {
    let core = isolated_settings();
    let names = core.names();
    let (_client, mut conn) = redis(&core).await;
    let worker = start(&core).await;
    let action = action(json!({"text": "y".repeat(30), "chunks": 30, "delay_ms": 10}));
    worker.publish(&action).await;
    worker.wait(&action, "text_chunk").await;
    worker.stop().await;
    let events = xrange_all(&mut conn, &names.response_stream(action.session_id)).await;
    assert_completed_once(&events);
    assert_eq!(count(&events, "text_chunk"), 30);
}

#[tokio::test]
async fn a_sessions_stream_does_not_expire_under_its_next_task() {
    let mut core = isolated_settings();
    core.bus.response_ttl_secs = 1;
    let worker = start(&core).await;
    let first = say("first");
    worker.run(&first).await;
    // The next turn starts within the first one's 1 s TTL and outlasts it.
    let mut second = action(json!({"text": "z".repeat(150), "chunks": 150, "delay_ms": 10}));
    second.session_id = first.session_id;
    second.tenant_id = first.tenant_id;
    second.user_id = first.user_id;
    let events = worker.run(&second).await;
    assert_eq!(count(&events, "text_chunk"), 150);
    assert_completed_once(&events);
    worker.stop().await;
}

#[tokio::test]
async fn a_cancel_reaches_a_task_finishing_during_shutdown() {
    let core = isolated_settings();
    let worker = start(&core).await;
    let action = action(json!({"text": "w".repeat(2000), "chunks": 2000, "delay_ms": 10}));
    worker.publish(&action).await;
    worker.wait(&action, "text_chunk").await;
    worker.begin_shutdown();
    worker.bus.request_cancel(action.task_id).await.unwrap();
    let events = worker.wait(&action, "complete").await;
    assert!(events.iter().any(|e| e.kind == "cancelled"));
    assert!(count(&events, "text_chunk") < 2000);
    worker.stop().await;
}

#[tokio::test]
async fn callback_streams_must_stay_in_the_namespace() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = start(&core).await;
    let mut inside = say("reply elsewhere");
    let callback = names.callback_stream("billing-replies");
    inside.callback_stream = Some(callback.clone());
    worker.publish(&inside).await;
    let events = read_until(&client, &callback, "complete", Some(inside.task_id), WAIT).await;
    assert!(text(&events).contains("reply elsewhere"));

    let mut outside = say("escape");
    let foreign = format!("elsewhere{}:replies", Uuid::now_v7().simple());
    outside.callback_stream = Some(foreign.clone());
    worker.publish(&outside).await;
    let dead = names.dead_letter_stream(SERVICE);
    let found = read_until(&client, &dead, "", None, WAIT).await;
    let raw: StreamRangeReply = conn.xrange_all(&dead).await.unwrap();
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
    // The client hears about it on its session's own stream.
    let events = worker.wait(&outside, "complete").await;
    let error = events.iter().find(|e| e.kind == "error").expect("an error");
    assert_eq!(error.event["data"]["code"], "invalid_callback_stream");
    worker.stop().await;
}

#[tokio::test]
async fn a_payload_that_can_never_run_is_refused_not_dead_lettered() {
    let core = isolated_settings();
    let names = core.names();
    let (_client, mut conn) = redis(&core).await;
    let worker = start(&core).await;
    for (data, code) in [
        (json!({"text": "hi", "chunks": -1}), "invalid_payload"),
        (json!({"text": "hi", "delay_ms": "slow"}), "invalid_payload"),
        (json!({"text": "a\u{0}b"}), "invalid_payload"),
        (json!({"text": "hi", "fail": "reject"}), "test_rejected"),
    ] {
        let events = worker.run(&action(data.clone())).await;
        let error = events.iter().find(|e| e.kind == "error").expect("an error");
        assert_eq!(error.event["data"]["code"], code, "{data}");
        assert_eq!(error.event["data"]["retryable"], false);
        assert_eq!(error.event["data"]["stage"], "validation");
        assert_completed_once(&events);
    }
    let dead = xrange_all(&mut conn, &names.dead_letter_stream(SERVICE)).await;
    assert!(dead.is_empty(), "{dead:#?}");
    worker.stop().await;
}

#[tokio::test]
async fn an_oversized_action_is_dead_lettered_unread() {
    let mut core = isolated_settings();
    core.bus.max_action_bytes = 16 * 1024;
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = start(&core).await;
    let big = say(&"word ".repeat(10_000));
    worker.publish(&big).await;
    let dead = names.dead_letter_stream(SERVICE);
    read_until(&client, &dead, "", None, WAIT).await;
    let raw: StreamRangeReply = conn.xrange_all(&dead).await.unwrap();
    let error: String = raw.ids[0].get("error").unwrap();
    assert!(error.contains("BUS__MAX_ACTION_BYTES"), "{error}");
    let kept: String = raw.ids[0].get("payload").unwrap();
    assert!(kept.len() <= 4096, "the dead letter keeps only the start");
    // Nothing was written to its session, and the worker goes on.
    let stream = names.response_stream(big.session_id);
    assert!(xrange_all(&mut conn, &stream).await.is_empty());
    let events = worker.run(&say("small")).await;
    assert!(text(&events).contains("small"));
    worker.stop().await;
}

#[tokio::test]
async fn a_callback_action_type_gets_the_answer_as_a_new_action() {
    let core = isolated_settings();
    let names = core.names();
    let (_client, mut conn) = redis(&core).await;
    let worker = start(&core).await;
    let mut action = say("call me back");
    action.callback_action_type = Some("billing.chat.answered".into());
    let events = worker.run(&action).await;
    assert_completed_once(&events);
    // The answer is an action of the same session, so in that session's partition.
    let stream = names.action_stream_for("billing", action.session_id, core.bus.action_partitions);
    let replies = xrange_all(&mut conn, &stream).await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let reply = DomainAction::parse(&replies[0].event.to_string()).unwrap();
    assert_eq!(reply.action_type, "billing.chat.answered");
    assert_eq!(
        (reply.tenant_id, reply.user_id, reply.session_id),
        (action.tenant_id, action.user_id, action.session_id)
    );
    assert_eq!(reply.correlation_id, Some(action.action_id));
    assert_eq!(reply.data["request_action_id"], json!(action.action_id));
    assert_eq!(reply.data["request_action_type"], "echo.test.run");
    assert!(
        reply.data["content"]
            .as_str()
            .unwrap()
            .contains("call me back")
    );
    assert_eq!(reply.data["finish_reason"], "stop");

    // Not service.entity.verb: refused before anything runs, not dead-lettered.
    let mut bad = say("never");
    bad.callback_action_type = Some("nope".into());
    let events = worker.run(&bad).await;
    let error = events.iter().find(|e| e.kind == "error").expect("an error");
    assert_eq!(error.event["data"]["code"], "invalid_callback_action_type");
    assert!(events.iter().all(|e| e.kind != "text_chunk"));
    let dead = xrange_all(&mut conn, &names.dead_letter_stream(SERVICE)).await;
    assert!(dead.is_empty());
    worker.stop().await;
}

#[tokio::test]
async fn a_session_of_another_owner_is_refused_on_the_callers_own_stream() {
    let core = isolated_settings();
    let names = core.names();
    let (client, mut conn) = redis(&core).await;
    let worker = start(&core).await;
    let mine = say("mine");
    worker.run(&mine).await;
    // Another tenant, then the same tenant's other user, names the session.
    for (tenant, user) in [
        (Uuid::now_v7(), mine.user_id),
        (mine.tenant_id, Some(Uuid::now_v7())),
    ] {
        let mut intruder = say("let me in");
        intruder.session_id = mine.session_id;
        intruder.tenant_id = tenant;
        intruder.user_id = user;
        let callback = names.callback_stream(&intruder.task_id.to_string());
        intruder.callback_stream = Some(callback.clone());
        worker.publish(&intruder).await;
        let events = read_until(&client, &callback, "complete", Some(intruder.task_id), WAIT).await;
        let error = events.iter().find(|e| e.kind == "error").expect("an error");
        assert_eq!(error.event["data"]["code"], "session_not_owned");
        assert!(events.iter().all(|e| e.kind != "text_chunk"));
        // Nothing of it reached the session's stream.
        let session = worker
            .entries(&names.response_stream(mine.session_id))
            .await;
        assert!(
            session
                .iter()
                .all(|e| e.event["task_id"] != intruder.task_id.to_string())
        );
    }
    let raw = dead_letters(&mut conn, &names).await;
    assert_eq!(raw.ids.len(), 2);
    assert!(raw.ids.iter().all(|e| {
        e.get::<String>("error")
            .unwrap()
            .contains("session not found")
    }));
    // The owner goes on as before.
    let mut again = say("still mine");
    again.session_id = mine.session_id;
    again.tenant_id = mine.tenant_id;
    again.user_id = mine.user_id;
    let events = worker.run(&again).await;
    assert_eq!(text(&events), "still mine");
    worker.stop().await;
}

/// The status of `GET path` on `addr`, by hand (HTTP/1.1, one request).
async fn get_status(addr: &str, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test]
async fn a_worker_answers_health_and_says_when_it_lost_redis() {
    let mut server = common::testing::RedisServer::start().await;
    let mut core = isolated_settings();
    core.redis_url = common::settings::Secret::new(server.url());
    core.redis_cluster_urls = None;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let settings = WorkerSettings {
        probe_addr: Some(addr.clone()),
        ..fast_worker_settings()
    };
    let worker = start_with(&core, settings).await;
    let status_until = |wanted: u16| {
        let addr = addr.clone();
        async move {
            for _ in 0..200 {
                if get_status(&addr, "/ready").await == Some(wanted) {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            false
        }
    };
    assert!(status_until(200).await, "ready while Redis answers");
    assert_eq!(get_status(&addr, "/health").await, Some(200));
    server.stop();
    assert!(status_until(503).await, "not ready without Redis");
    assert_eq!(get_status(&addr, "/health").await, Some(200), "still alive");
    server.restart().await;
    assert!(status_until(200).await, "ready again");
    worker.stop().await;
}
