//! Per-tenant rate limits: shared by two gateway replicas, answered with 429 + `Retry-After` on
//! REST and `/v1`, with a `rate_limited` event on the WebSocket, off when configured so, and
//! failing open when Redis is gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use common::testing::RedisServer;
use futures::future::join_all;
use serde_json::{Value, json};
use support::{Opts, System};
use uuid::Uuid;

/// 30 requests per minute (one every 2 s) with bursts of 5.
fn limited(rpm: u32, burst: u32) -> Opts {
    let mut opts = Opts::new();
    opts.gateway.rate_limit.requests_per_minute = rpm;
    opts.gateway.rate_limit.burst = burst;
    opts
}

async fn get(http: &reqwest::Client, url: String, token: &str) -> reqwest::Response {
    http.get(url).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn the_limit_holds_across_two_gateways() {
    let opts = limited(30, 5);
    let second = opts.gateway.clone();
    let system = System::start(opts).await;
    let other = system.another_gateway(second).await;
    let http = reqwest::Client::new();
    let token = system.token(Uuid::now_v7());

    // 20 requests at once to each replica.
    let requests = (0..40).map(|i| {
        let base = if i % 2 == 0 { &system.http } else { &other };
        get(&http, format!("{base}/api/v1/models"), &token)
    });
    let responses = join_all(requests).await;
    let allowed = responses.iter().filter(|r| r.status() == 200).count();
    let limited: Vec<_> = responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(allowed + limited.len(), 40);
    // The burst, plus at most a refill or two while the requests were in flight (one per 2 s).
    assert!(
        (5..=7).contains(&allowed),
        "{allowed} allowed across both replicas"
    );
    let retry_after: u64 = limited[0].headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");

    // The envelope on REST, OpenAI's format on /v1; another tenant is not affected.
    let r = get(&http, format!("{other}/api/v1/models"), &token).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (&body["code"], &body["success"], &body["message"]),
        (&json!(429), &json!(false), &json!("rate limited"))
    );
    let r = get(&http, format!("{}/v1/models", system.http), &token).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let r = get(
        &http,
        format!("{other}/api/v1/models"),
        &system.token(Uuid::now_v7()),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_chat_over_the_limit_gets_an_event_and_the_socket_stays_open() {
    let system = System::start(limited(30, 2)).await;
    let http = reqwest::Client::new();
    let token = system.token(Uuid::now_v7());
    let (mut ws, _) = system.connect(&token).await;
    // REST and the WebSocket share the tenant's budget: spend it over REST.
    for _ in 0..2 {
        let r = get(&http, format!("{}/api/v1/models", system.http), &token).await;
        assert_eq!(r.status(), 200);
    }
    ws.send(json!({"type": "chat", "prompt": "hello"})).await;
    let error = ws.next().await;
    assert_eq!(error["type"], "error", "{error}");
    let data = &error["data"];
    assert_eq!(data["code"], "rate_limited", "{error}");
    assert_eq!(data["retryable"], true);
    assert!(data["retry_after_secs"].as_u64().unwrap() >= 1, "{error}");
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await["type"], "pong");
}

#[tokio::test]
async fn zero_requests_per_minute_disables_the_limiter() {
    let system = System::start(limited(0, 1)).await;
    let http = reqwest::Client::new();
    let token = system.token(Uuid::now_v7());
    let requests = (0..30).map(|_| get(&http, format!("{}/api/v1/models", system.http), &token));
    let responses = join_all(requests).await;
    assert!(responses.iter().all(|r| r.status() == 200));
}

#[tokio::test]
async fn requests_are_allowed_while_redis_is_down() {
    let mut redis = RedisServer::start().await;
    let mut opts = limited(30, 1).redis_url(&redis.url());
    opts.worker = None;
    let system = System::start(opts).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let token = system.token(Uuid::now_v7());
    let url = format!("{}/api/v1/models", system.http);
    assert_eq!(get(&http, url.clone(), &token).await.status(), 200);
    assert_eq!(get(&http, url.clone(), &token).await.status(), 429);
    // Redis is gone: the limiter cannot count, so it lets requests through.
    redis.stop();
    for _ in 0..3 {
        assert_eq!(get(&http, url.clone(), &token).await.status(), 200);
    }
}
