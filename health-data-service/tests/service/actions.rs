//! `health.*` actions over Redis: a DomainAction published with `Bus::publish`, the answer read
//! from the session's response stream; the user's own data only; callbacks.

use common::Bus;
use common::envelope::DomainAction;
use common::testing::{Received, read_until, xrange_all};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Caller, Service, WAIT, close, export_zip, f, fit_file, fixture};

/// Publishes an action and reads its task's events up to `complete`.
async fn ask(service: &Service, action: &DomainAction) -> Vec<Received> {
    let bus = Bus::connect(&service.core).await.unwrap();
    bus.publish(action).await.unwrap();
    let key = service.core.names().response_stream(action.session_id);
    read_until(&service.core, &key, "complete", Some(action.task_id), WAIT).await
}

fn action(kind: &str, tenant: Uuid, user: Option<Uuid>, data: Value) -> DomainAction {
    let mut a = DomainAction::new(kind, "test", tenant, Uuid::now_v7(), data);
    a.user_id = user;
    a
}

fn kinds(events: &[Received]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn completed(events: &[Received]) -> &Value {
    &events
        .iter()
        .find(|e| e.kind == "text_completed")
        .unwrap()
        .event["data"]
}

async fn with_data() -> (Service, Caller) {
    let service = Service::start().await;
    let me = Caller::new();
    let job = service.import(&me, vec![export_zip(), fit_file()]).await;
    assert_eq!(job["status"], "completed");
    let (status, _) = service
        .post_body(&me, "/blood/imports", fixture("blood/panels.csv"))
        .await;
    assert_eq!(status, 200);
    (service, me)
}

#[tokio::test]
async fn summary_and_trend_round_trip_over_the_bus() {
    let (service, me) = with_data().await;
    let ask_summary = action(
        "health.summary.get",
        me.tenant,
        Some(me.user),
        json!({"from": "2024-03-06", "to": "2024-03-12"}),
    );
    let events = ask(&service, &ask_summary).await;
    assert_eq!(
        kinds(&events),
        ["working", "text_completed", "tts_not_requested", "complete"]
    );
    let answer = completed(&events);
    let data = &answer["data"];
    assert_eq!(
        (
            data["daily"]["calendar_date"].clone(),
            data["daily"]["steps"].clone()
        ),
        (json!("2024-03-12"), json!(9000))
    );
    assert_eq!(
        (
            data["sleep"]["asleep_s"].clone(),
            data["sleep"]["score"].clone()
        ),
        (json!(24000), json!(75))
    );
    assert_eq!(data["hrv"]["last_night_avg"], json!(52.0));
    assert_eq!(data["body_composition"]["weight_kg"], json!(78.1));
    assert_eq!(data["activities"]["count"], 4);
    close(f(&data["activities"]["training_load"]), 352.0);
    assert_eq!(
        data["activities"]["types"],
        json!(["running", "road_biking", "strength_training"])
    );
    let flagged: Vec<&str> = data["out_of_range_markers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        flagged,
        ["LDL cholesterol", "Vitamin D"],
        "as of 2024-03-12"
    );
    let content = answer["content"].as_str().unwrap();
    assert!(
        content.contains("9000 steps") && content.contains("4 activities"),
        "{content}"
    );
    // The REST summary is the same.
    let rest = service
        .data(&me, "/summary?from=2024-03-06&to=2024-03-12")
        .await;
    assert_eq!(&rest, data);

    let ask_trend = action(
        "health.marker.trend",
        me.tenant,
        Some(me.user),
        json!({"marker": "ldl cholesterol"}),
    );
    let events = ask(&service, &ask_trend).await;
    let answer = completed(&events);
    let values: Vec<f64> = answer["data"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| f(&p["value"]))
        .collect();
    assert_eq!(values, [3.9, 3.1, 2.8]);
    assert!(
        answer["content"]
            .as_str()
            .unwrap()
            .starts_with("LDL cholesterol: 3 values"),
        "{answer}"
    );
    service.stop().await;
}

#[tokio::test]
async fn an_action_reaches_only_its_own_user_and_tenant() {
    let (service, me) = with_data().await;
    let colleague = me.colleague();
    for (tenant, user) in [(me.tenant, colleague.user), (Uuid::now_v7(), me.user)] {
        let events = ask(
            &service,
            &action(
                "health.summary.get",
                tenant,
                Some(user),
                json!({"to": "2024-03-12"}),
            ),
        )
        .await;
        let data = &completed(&events)["data"];
        assert_eq!(
            (data["daily"].clone(), data["sleep"].clone()),
            (Value::Null, Value::Null)
        );
        assert_eq!(data["activities"]["count"], 0);
        assert_eq!(data["out_of_range_markers"], json!([]));
        let events = ask(
            &service,
            &action(
                "health.marker.trend",
                tenant,
                Some(user),
                json!({"marker": "LDL cholesterol"}),
            ),
        )
        .await;
        assert_eq!(completed(&events)["data"]["points"], json!([]));
    }

    let events = ask(
        &service,
        &action("health.summary.get", me.tenant, None, json!({})),
    )
    .await;
    let error = events.iter().find(|e| e.kind == "error").unwrap();
    assert_eq!(
        (
            error.event["data"]["stage"].clone(),
            error.event["data"]["code"].clone()
        ),
        (json!("validation"), json!("user_required"))
    );
    assert_eq!(kinds(&events).last(), Some(&"complete"));
    assert!(!kinds(&events).contains(&"text_completed"));

    let events = ask(
        &service,
        &action(
            "health.marker.trend",
            me.tenant,
            Some(me.user),
            json!({"marker": 5}),
        ),
    )
    .await;
    let error = events.iter().find(|e| e.kind == "error").unwrap();
    assert_eq!(error.event["data"]["code"], "invalid_payload");
    let events = ask(
        &service,
        &action(
            "health.summary.get",
            me.tenant,
            Some(me.user),
            json!({"from": "2024-03-12", "to": "2024-03-01"}),
        ),
    )
    .await;
    assert!(kinds(&events).contains(&"error"));
    service.stop().await;
}

#[tokio::test]
async fn a_nul_or_an_oversized_marker_is_a_validation_error_not_a_retried_failure() {
    let service = Service::start().await;
    let me = Caller::new();
    for marker in ["LDL\u{0}cholesterol".to_owned(), "M".repeat(201)] {
        let events = ask(
            &service,
            &action(
                "health.marker.trend",
                me.tenant,
                Some(me.user),
                json!({ "marker": marker }),
            ),
        )
        .await;
        let error = events
            .iter()
            .find(|e| e.kind == "error")
            .unwrap_or_else(|| panic!("no error event: {:?}", kinds(&events)));
        let data = &error.event["data"];
        assert_eq!(
            (
                data["stage"].clone(),
                data["code"].clone(),
                data["retryable"].clone()
            ),
            (json!("validation"), json!("invalid_payload"), json!(false)),
            "{data}"
        );
        let message = data["message"].as_str().unwrap();
        assert!(
            message == "marker must not contain a NUL character"
                || message == "marker is longer than 200 characters",
            "{message}"
        );
        assert_eq!(kinds(&events).last(), Some(&"complete"));
    }
    let mut conn = common::testing::test_bus(&service.core).await.conn();
    let dead = xrange_all(
        &mut conn,
        &service.core.names().dead_letter_stream("health"),
    )
    .await;
    assert!(dead.is_empty(), "a client's mistake is not dead-lettered");
    service.stop().await;
}

#[tokio::test]
async fn a_callback_action_type_gets_the_result_as_a_new_action() {
    let (service, me) = with_data().await;
    let mut ask_trend = action(
        "health.marker.trend",
        me.tenant,
        Some(me.user),
        json!({"marker": "Vitamin D"}),
    );
    ask_trend.callback_action_type = Some("test.health.reply".into());
    let events = ask(&service, &ask_trend).await;
    assert!(kinds(&events).contains(&"text_completed"));
    let mut conn = common::testing::test_bus(&service.core).await.conn();
    // The answer is an action of the same session, so in that session's partition.
    let stream = service.core.names().action_stream_for(
        "test",
        ask_trend.session_id,
        service.core.bus.action_partitions,
    );
    let entries = xrange_all(&mut conn, &stream).await;
    assert_eq!(entries.len(), 1);
    let payload = DomainAction::parse(&entries[0].event.to_string()).unwrap();
    assert_eq!(payload.action_type, "test.health.reply");
    assert_eq!(
        (payload.tenant_id, payload.user_id),
        (me.tenant, Some(me.user))
    );
    assert_eq!(payload.correlation_id, Some(ask_trend.action_id));
    assert_eq!(
        payload.data["request_action_id"],
        json!(ask_trend.action_id)
    );
    let points = payload.data["result"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    service.stop().await;
}
