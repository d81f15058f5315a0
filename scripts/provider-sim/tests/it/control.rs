//! The HTTP control surface used by the standalone binary, and the simulator's lifecycle.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use provider_sim::{Behaviour, SimConfig, Simulator};
use serde_json::{Value, json};

use crate::support::{SseReader, chat_body, client, config, post_chat, start};

#[tokio::test]
async fn script_endpoint_queues_behaviours_in_order() {
    let sim = start(config(2, 0)).await;
    let control = format!("http://{}/_sim", sim.addr());

    let health = client()
        .get(format!("http://{}/health", sim.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let queued: Value = client()
        .post(format!("{control}/script"))
        .json(&json!([{"kind": "server_error"}, {"kind": "rate_limited", "retry_after_secs": 3}]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queued["queued"], 2);
    let single = client()
        .post(format!("{control}/script"))
        .json(&json!({"kind": "malformed_line", "after_chunks": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(single.status(), 200);

    assert_eq!(post_chat(&sim, &chat_body(true)).await.status(), 500);
    assert_eq!(post_chat(&sim, &chat_body(true)).await.status(), 429);
    let events = SseReader::new(post_chat(&sim, &chat_body(true)).await)
        .all()
        .await;
    assert_eq!(events[1..], ["{not json".to_owned(), "[DONE]".to_owned()]);
    let events = SseReader::new(post_chat(&sim, &chat_body(true)).await)
        .all()
        .await;
    assert_eq!(events.len(), 5, "queue drained, default behaviour again");

    let log: Value = client()
        .get(format!("{control}/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 4);
    let kinds: Vec<&str> = log
        .iter()
        .map(|r| r["behaviour"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["server_error", "rate_limited", "malformed_line", "normal"]
    );
    assert_eq!(log[1]["behaviour"]["retry_after_secs"], 3);
    assert_eq!(log[3]["id"], 3);
    assert_eq!(log[3]["format"], "openai");
    assert_eq!(log[3]["path"], "/v1/chat/completions");
    assert_eq!(log[3]["authorization"], "Bearer sk-sim-test");
    assert_eq!(log[3]["body"]["model"], "gpt-4o-mini");
    assert_eq!(log[3]["chunks_sent"], 2);
    assert_eq!(log[3]["finished"], true);
    assert_eq!(log[3]["client_closed"], false);
    assert!(log[3]["closed_at_ms"].is_null());
    assert!(
        log[3]["received_at_ms"].as_u64().unwrap() >= log[0]["received_at_ms"].as_u64().unwrap()
    );
    // Wall-clock times line up with other processes' clocks (the benchmarks rely on it).
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let received = log[3]["received_at_unix_us"].as_u64().unwrap();
    assert!(
        received <= now_us && now_us - received < 60_000_000,
        "{received} vs {now_us}"
    );
    assert!(log[3]["closed_at_unix_us"].is_null());
}

#[tokio::test]
async fn bad_script_is_rejected() {
    let sim = start(SimConfig::default()).await;
    let response = client()
        .post(format!("http://{}/_sim/script", sim.addr()))
        .json(&json!({"kind": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn behaviour_json_shape() {
    assert_eq!(
        serde_json::to_value(Behaviour::DropMidStream { after_chunks: 4 }).unwrap(),
        json!({"kind": "drop_mid_stream", "after_chunks": 4})
    );
    assert_eq!(
        serde_json::to_value(Behaviour::Normal).unwrap(),
        json!({"kind": "normal"})
    );
    assert_eq!(
        serde_json::from_value::<Behaviour>(json!({"kind": "error_event", "after_chunks": 1}))
            .unwrap(),
        Behaviour::ErrorEvent { after_chunks: 1 }
    );
}

#[tokio::test]
async fn request_log_names_each_api_and_its_key() {
    let sim = start(config(1, 0)).await;
    post_chat(&sim, &chat_body(false)).await;
    let anthropic = client()
        .post(format!("{}/v1/messages", sim.root_url()))
        .header("x-api-key", "sk-ant")
        .json(&json!({"model": "claude", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(anthropic.status(), 200);
    let gemini = client()
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:generateContent",
            sim.root_url()
        ))
        .header("x-goog-api-key", "AIza")
        .json(&json!({"contents": [{"parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(gemini.status(), 200);

    let log: Value = client()
        .get(format!("http://{}/_sim/requests", sim.addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let summary: Vec<(&str, &str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["format"].as_str().unwrap(),
                r["path"].as_str().unwrap(),
                r["authorization"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("openai", "/v1/chat/completions", "Bearer sk-sim-test"),
            ("anthropic", "/v1/messages", "sk-ant"),
            (
                "gemini",
                "/v1beta/models/gemini-2.0-flash:generateContent",
                "AIza"
            ),
        ]
    );
    assert_eq!(sim.root_url(), format!("http://{}", sim.addr()));
}

#[tokio::test]
async fn base_url_and_wildcard_bind() {
    let sim = Simulator::start_on(
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SimConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        sim.base_url(),
        format!("http://127.0.0.1:{}/v1", sim.addr().port())
    );
    assert_eq!(post_chat(&sim, &chat_body(false)).await.status(), 200);
}

#[tokio::test]
async fn unknown_path_is_openai_style_404() {
    let sim = start(SimConfig::default()).await;
    let response = client()
        .get(format!("{}/models", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn shutdown_cuts_streams_and_stops_listening() {
    let sim = start(config(1000, 20)).await;
    let addr = sim.addr();
    let mut reader = SseReader::new(post_chat(&sim, &chat_body(true)).await);
    reader.next().await.unwrap().unwrap();

    tokio::time::timeout(Duration::from_secs(3), sim.shutdown())
        .await
        .expect("shutdown should not wait for the 20 s stream");
    let rest = loop {
        match reader.next().await {
            Ok(Some(_)) => {}
            other => break other,
        }
    };
    assert!(
        rest.is_err(),
        "an in-flight stream must not end as if complete"
    );
    assert!(
        client()
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .is_err(),
        "nothing should listen after shutdown"
    );
}

#[tokio::test]
async fn wait_for_client_close_times_out_without_closes() {
    let sim = start(SimConfig::default()).await;
    let events = SseReader::new(post_chat(&sim, &chat_body(true)).await)
        .all()
        .await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    // `None` comes only from the timeout: the wait returns nothing else without a close.
    assert!(
        sim.wait_for_client_close(Duration::from_millis(150))
            .await
            .is_none()
    );
}
