//! `POST /chat`, `POST /chat/stream` (SSE with `Last-Event-ID`), health and readiness, and the
//! REST error envelope.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Opts, System};
use uuid::Uuid;

fn parse_sse(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let id = block.lines().find_map(|l| l.strip_prefix("id: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((id.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

#[tokio::test]
async fn post_chat_waits_for_the_whole_answer() {
    let system = System::start(Opts::new()).await;
    let http = reqwest::Client::new();
    let token = system.token(Uuid::now_v7());
    let r = http
        .post(format!("{}/chat", system.http))
        .bearer_auth(&token)
        .json(&json!({"prompt": "what is up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["code"].as_i64(), body["success"].as_bool()),
        (Some(200), Some(true))
    );
    let data = &body["data"];
    assert!(
        data["content"]
            .as_str()
            .unwrap()
            .starts_with("Echo: what is up")
    );
    assert_eq!(data["finish_reason"], "stop");
    assert_eq!(data["usage"]["output_tokens"], 8);
    assert_eq!(data["model"]["provider"], "dummy");

    // The same session continues with its id.
    let session = data["session_id"].as_str().unwrap();
    let r = http
        .post(format!("{}/chat", system.http))
        .bearer_auth(&token)
        .json(&json!({"prompt": "again", "session_id": session}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["session_id"], session);
    assert!(
        body["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Echo: again")
    );
}

#[tokio::test]
async fn rest_errors_use_the_envelope() {
    let system = System::start(Opts::new()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/chat", system.http);
    let r = http
        .post(&url)
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 401, "success": false, "message": "missing token", "data": null})
    );
    let r = http
        .post(&url)
        .bearer_auth("not-a-jwt")
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let token = system.token(Uuid::now_v7());
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert!(body["message"].as_str().unwrap().contains("invalid JSON"));
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"prompt": 42}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn post_chat_times_out_with_504_when_no_worker_answers() {
    let mut opts = Opts::new();
    opts.worker = None;
    opts.gateway.chat_timeout_secs = 1;
    let system = System::start(opts).await;
    let r = reqwest::Client::new()
        .post(format!("{}/chat", system.http))
        .bearer_auth(system.token(Uuid::now_v7()))
        .json(&json!({"prompt": "anyone?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["code"].as_i64(), body["success"].as_bool()),
        (Some(504), Some(false))
    );
}

#[tokio::test]
async fn sse_streams_events_with_ids_and_resumes_from_last_event_id() {
    let system = System::start(Opts::new().dummy(12, 0)).await;
    let http = reqwest::Client::new();
    let token = system.token(Uuid::now_v7());
    let body = http
        .post(format!("{}/chat/stream", system.http))
        .bearer_auth(&token)
        .json(&json!({"prompt": "stream it"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = parse_sse(&body);
    let kinds: Vec<&str> = events
        .iter()
        .map(|(_, e)| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"working"));
    assert_eq!(kinds.last(), Some(&"complete"));
    assert_eq!(kinds.iter().filter(|k| **k == "text_chunk").count(), 12);
    for (id, e) in &events {
        assert_eq!(e["event_id"], id.as_str());
    }
    // A client that lost the connection after the fifth event resumes from it.
    let session = events[0].1["session_id"].as_str().unwrap();
    let resumed = http
        .post(format!("{}/chat/stream", system.http))
        .bearer_auth(&token)
        .header("Last-Event-ID", &events[4].0)
        .json(&json!({"session_id": session}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rest = parse_sse(&resumed);
    let want: Vec<&String> = events[5..].iter().map(|(id, _)| id).collect();
    let got: Vec<&String> = rest.iter().map(|(id, _)| id).collect();
    assert_eq!(got, want);
    // Another tenant cannot resume it.
    let r = http
        .post(format!("{}/chat/stream", system.http))
        .bearer_auth(system.token(Uuid::now_v7()))
        .header("Last-Event-ID", &events[4].0)
        .json(&json!({"session_id": session}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn health_and_ready_name_their_dependencies() {
    let system = System::start(Opts::new()).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/health", system.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = http
        .get(format!("{}/ready", system.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["data"]["dependencies"]["redis"],
        json!({"required": true, "ok": true})
    );
}

/// Events of a session's response stream until a `complete` whose task had a `cancelled`.
async fn wait_for_cancelled_task(system: &System, session: Uuid) -> Vec<common::testing::Received> {
    let key = system.core.names().response_stream(session);
    common::testing::read_until(
        &system.redis(),
        &key,
        "cancelled",
        None,
        std::time::Duration::from_secs(20),
    )
    .await
}

#[tokio::test]
async fn a_post_chat_client_that_leaves_cancels_its_task() {
    let system = System::start(Opts::new().dummy(2000, 10)).await;
    let session = Uuid::now_v7();
    let gone = reqwest::Client::new()
        .post(format!("{}/chat", system.http))
        .bearer_auth(system.token(Uuid::now_v7()))
        .timeout(std::time::Duration::from_millis(500))
        .json(&json!({"prompt": "long", "session_id": session}))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    let events = wait_for_cancelled_task(&system, session).await;
    let chunks = events.iter().filter(|e| e.kind == "text_chunk").count();
    assert!(chunks < 2000, "stopped early: {chunks}");
}

#[tokio::test]
async fn an_sse_client_that_never_resumes_has_its_task_cancelled_after_the_grace() {
    let mut opts = Opts::new().dummy(2000, 10);
    opts.gateway.ws.resume_grace_secs = 1;
    let system = System::start(opts).await;
    let session = Uuid::now_v7();
    let mut response = reqwest::Client::new()
        .post(format!("{}/chat/stream", system.http))
        .bearer_auth(system.token(Uuid::now_v7()))
        .json(&json!({"prompt": "long", "session_id": session}))
        .send()
        .await
        .unwrap();
    response.chunk().await.unwrap();
    drop(response);
    let events = wait_for_cancelled_task(&system, session).await;
    assert!(events.iter().filter(|e| e.kind == "text_chunk").count() < 2000);
}

#[tokio::test]
async fn post_chat_maps_task_errors_to_statuses() {
    let system = System::start(Opts::new()).await;
    let r = reqwest::Client::new()
        .post(format!("{}/chat", system.http))
        .bearer_auth(system.token(Uuid::now_v7()))
        .json(&json!({"prompt": "hi", "model": "gpt-17"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("unknown model"),
        "{body}"
    );
}
