//! Redis restarts (without its data): while idle, gateway and worker serve the next request
//! without being restarted; with a chat in flight, its client still hears how it ended.
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
    let mut ready = false;
    for _ in 0..200 {
        let r = http
            .get(format!("{}/ready", system.http))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "gateway ready again");
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
async fn a_chat_in_flight_when_redis_restarts_still_ends() {
    let mut redis = RedisServer::start().await;
    // 40 tokens, 50 ms apart: a 2-second answer.
    let system = System::start(Opts::new().redis_url(&redis.url()).dummy(40, 50)).await;
    let token = system.token(Uuid::now_v7());
    let (mut ws, _) = system.connect(&token).await;
    ws.send(json!({"type": "chat", "prompt": "through the outage"}))
        .await;
    ws.until("text_chunk").await;

    // Everything in Redis is lost: the action, the consumer group, the response stream.
    redis.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart().await;

    // The worker's writes wait for Redis to come back, so the client is told how it ended.
    let events = ws.until_complete().await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.last(), Some(&"complete"), "{kinds:?}");
    let answered = events
        .iter()
        .find(|e| e["type"] == "text_completed")
        .is_some_and(|e| e["data"]["finish_reason"] == "stop");
    let told = kinds.contains(&"error");
    assert!(
        answered || told,
        "neither an answer nor an error: {kinds:?}"
    );
}
