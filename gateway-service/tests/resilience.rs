//! Redis restarts (without its data): while idle, gateway and worker serve the next request
//! without being restarted; with a chat in flight, its client still gets the whole answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use common::testing::RedisServer;
use serde_json::{Value, json};
use support::{Opts, System, text};
use uuid::Uuid;

#[tokio::test]
async fn services_recover_after_redis_restarts() {
    let mut redis = RedisServer::start().await;
    let system = System::start(Opts::new().redis_url(&redis.url())).await;
    let token = system.token(Uuid::now_v7());
    let (mut ws, _) = system.connect(&token).await;
    ws.send(json!({"type": "chat", "prompt": "before"})).await;
    assert!(text(&ws.until_complete().await).contains("before"));

    redis.restart().await;

    let http = reqwest::Client::new();
    wait_ready(&http, &system, true).await;
    let (mut ws, _) = system.connect(&token).await;
    ws.send(json!({"type": "chat", "prompt": "after"})).await;
    let events = ws.until_complete().await;
    assert!(text(&events).contains("after"), "{events:?}");
    let r: Value = http
        .post(format!("{}/chat", system.http))
        .bearer_auth(&token)
        .json(&json!({"prompt": "rest after"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        r["data"]["content"]
            .as_str()
            .unwrap()
            .contains("rest after")
    );
}

#[tokio::test]
async fn a_chat_in_flight_when_redis_restarts_still_answers() {
    let mut redis = RedisServer::start().await;
    // 40 tokens, 50 ms apart: a 2-second answer.
    let system = System::start(Opts::new().redis_url(&redis.url()).dummy(40, 50)).await;
    let http = reqwest::Client::new();
    let token = system.token(Uuid::now_v7());
    let prompt = "through the outage";
    // The answer without a fault, to compare with (the dummy's answer depends only on the prompt).
    let (mut reference, _) = system.connect(&token).await;
    reference
        .send(json!({"type": "chat", "prompt": prompt}))
        .await;
    let expected = answer(&reference.until_complete().await);
    assert!(
        expected.starts_with("Echo: through the outage"),
        "{expected}"
    );

    let (mut ws, _) = system.connect(&token).await;
    ws.send(json!({"type": "chat", "prompt": prompt})).await;
    ws.until("text_chunk").await;

    // Everything in Redis is lost: the action, the consumer group, the response stream. The
    // outage lasts until the gateway has seen it, so the chat is in flight through it.
    redis.stop();
    wait_ready(&http, &system, false).await;
    redis.restart().await;

    // The worker's writes wait for Redis to come back, so the client gets the whole answer.
    let events = ws.until_complete().await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(!kinds.contains(&"error"), "{kinds:?}");
    assert_eq!(answer(&events), expected, "{kinds:?}");
}

/// The `content` of the `text_completed` event, which must say the answer ended normally.
fn answer(events: &[Value]) -> String {
    let done = events
        .iter()
        .find(|e| e["type"] == "text_completed")
        .unwrap_or_else(|| panic!("no text_completed: {events:?}"));
    assert_eq!(done["data"]["finish_reason"], "stop", "{done}");
    done["data"]["content"].as_str().unwrap().to_owned()
}

/// Waits until the gateway's `/ready` says it is ready (`true`) or not (`false`).
async fn wait_ready(http: &reqwest::Client, system: &System, ready: bool) {
    let url = format!("{}/ready", system.http);
    let reached = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let status = http.get(&url).send().await.unwrap().status();
            if (status == 200) == ready {
                return;
            }
            // /ready answers now, with no way to be told of a change: poll it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(reached.is_ok(), "the gateway never became ready={ready}");
}
