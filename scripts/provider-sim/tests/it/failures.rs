//! Scripted failures, and the simulator noticing a client that hangs up mid-stream.

use std::time::Duration;

use provider_sim::{Behaviour, SimConfig};
use serde_json::Value;

use crate::support::{SseReader, chat_body, config, content_of, json_of, post_chat, start};

#[tokio::test]
async fn rate_limit_carries_retry_after_then_next_request_succeeds() {
    let sim = start(config(2, 0)).await;
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 7,
    });

    let limited = post_chat(&sim, &chat_body(true)).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_exceeded");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Rate limit")
    );
    assert!(error["error"]["param"].is_null());
    assert!(error["error"]["code"].is_null());

    let retried = post_chat(&sim, &chat_body(true)).await;
    assert_eq!(retried.status(), 200);
    let events = SseReader::new(retried).all().await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let records = sim.requests();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0].behaviour,
        Behaviour::RateLimited {
            retry_after_secs: 7
        }
    );
    assert_eq!(records[0].chunks_sent, 0);
    assert_eq!(records[1].behaviour, Behaviour::Normal);
    assert!(records[1].finished);
}

#[tokio::test]
async fn server_error_comes_before_any_token() {
    let sim = start(SimConfig {
        behaviour: Behaviour::ServerError,
        ..config(3, 0)
    })
    .await;
    for stream in [true, false] {
        let response = post_chat(&sim, &chat_body(stream)).await;
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()["content-type"], "application/json");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "server_error");
        assert!(error["error"]["code"].is_null());
    }
    assert!(sim.requests().iter().all(|r| r.chunks_sent == 0));
}

#[tokio::test]
async fn malformed_line_then_done() {
    let sim = start(config(5, 0)).await;
    sim.push_script(Behaviour::MalformedLine { after_chunks: 2 });
    let events = SseReader::new(post_chat(&sim, &chat_body(true)).await)
        .all()
        .await;

    assert_eq!(
        events.len(),
        5,
        "role + 2 content + malformed + [DONE]: {events:?}"
    );
    let good: Vec<Value> = events[..3].iter().map(|e| json_of(e)).collect();
    assert_eq!(content_of(&good), "tok tok ");
    assert_eq!(events[3], "{not json");
    assert!(serde_json::from_str::<Value>(&events[3]).is_err());
    assert_eq!(events[4], "[DONE]");

    let record = &sim.requests()[0];
    assert_eq!(record.chunks_sent, 2);
    assert!(record.finished);
}

#[tokio::test]
async fn error_event_is_an_error_object_without_done() {
    let sim = start(config(5, 0)).await;
    sim.push_script(Behaviour::ErrorEvent { after_chunks: 2 });
    let events = SseReader::new(post_chat(&sim, &chat_body(true)).await)
        .all()
        .await;
    assert_eq!(
        events.len(),
        4,
        "role + 2 content + error, no [DONE]: {events:?}"
    );
    let good: Vec<Value> = events[..3].iter().map(|e| json_of(e)).collect();
    assert_eq!(content_of(&good), "tok tok ");
    let error = json_of(&events[3]);
    assert_eq!(error["error"]["type"], "server_error");
    assert!(error["error"]["message"].is_string());
    assert!(error.get("choices").is_none());
    let record = &sim.requests()[0];
    assert_eq!(record.chunks_sent, 2);
    assert!(record.finished);

    sim.push_script(Behaviour::ErrorEvent { after_chunks: 2 });
    let response = post_chat(&sim, &chat_body(false)).await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "server_error");
}

#[tokio::test]
async fn drop_mid_stream_fails_the_client_read_after_n_chunks() {
    let sim = start(config(10, 5)).await;
    sim.push_script(Behaviour::DropMidStream { after_chunks: 3 });
    let response = post_chat(&sim, &chat_body(true)).await;
    assert_eq!(response.status(), 200);
    let mut reader = SseReader::new(response);

    let mut events = Vec::new();
    let failure = loop {
        match reader.next().await {
            Ok(Some(data)) => events.push(json_of(&data)),
            Ok(None) => panic!("body ended cleanly after {events:?}"),
            Err(err) => break err,
        }
    };
    assert!(failure.is_body() || failure.is_decode(), "{failure:?}");
    assert_eq!(events.len(), 4, "role + 3 content chunks: {events:#?}");
    assert_eq!(content_of(&events), "tok tok tok ");
    assert!(
        events
            .iter()
            .all(|e| e["choices"][0]["finish_reason"].is_null())
    );

    let record = &sim.requests()[0];
    assert_eq!(record.chunks_sent, 3);
    assert!(!record.finished);
    assert!(
        !record.client_closed,
        "the simulator's own cut is not a client close"
    );
    assert!(
        sim.wait_for_client_close(Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn drop_on_non_streaming_request_fails_the_client() {
    let sim = start(config(3, 0)).await;
    sim.push_script(Behaviour::DropMidStream { after_chunks: 1 });
    let result = async {
        crate::support::client()
            .post(format!("{}/chat/completions", sim.base_url()))
            .json(&chat_body(false))
            .send()
            .await?
            .bytes()
            .await
    }
    .await;
    assert!(
        result.is_err(),
        "expected the exchange to fail, got {result:?}"
    );
    assert!(!sim.requests()[0].finished);
}

#[tokio::test]
async fn client_dropping_the_stream_is_recorded() {
    let sim = start(config(50, 20)).await;
    let mut reader = SseReader::new(post_chat(&sim, &chat_body(true)).await);
    let role = json_of(&reader.next().await.unwrap().unwrap());
    assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
    for _ in 0..2 {
        let chunk = json_of(&reader.next().await.unwrap().unwrap());
        assert_eq!(chunk["choices"][0]["delta"]["content"], "tok ");
    }
    drop(reader);

    let record = sim
        .wait_for_client_close(Duration::from_secs(5))
        .await
        .expect("the simulator should notice the dropped stream");
    assert_eq!(record.id, 0);
    assert!(record.client_closed);
    assert!(!record.finished);
    assert!((2..50).contains(&record.chunks_sent), "{record:?}");
    let closed_at = record.closed_at.expect("closed_at set");
    assert!(closed_at >= record.received_at);
    assert!(sim.requests()[0].client_closed);

    // Each close is reported once.
    assert!(
        sim.wait_for_client_close(Duration::from_millis(100))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn close_reported_even_when_it_happened_before_waiting() {
    let sim = start(SimConfig {
        first_token_delay: Duration::from_secs(30),
        ..config(1, 0)
    })
    .await;
    let mut reader = SseReader::new(post_chat(&sim, &chat_body(true)).await);
    reader.next().await.unwrap().unwrap();
    drop(reader);
    // Let the close land before anyone waits for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim.requests()[0].client_closed);
    let record = sim.wait_for_client_close(Duration::from_millis(10)).await;
    assert_eq!(record.map(|r| r.chunks_sent), Some(0));
}

#[tokio::test]
async fn client_giving_up_on_a_slow_completion_is_recorded() {
    let sim = start(SimConfig {
        first_token_delay: Duration::from_secs(30),
        ..config(1, 0)
    })
    .await;
    let body = chat_body(false);
    let request = post_chat(&sim, &body);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), request)
            .await
            .is_err()
    );
    let record = sim.wait_for_client_close(Duration::from_secs(5)).await;
    assert!(record.is_some_and(|r| r.client_closed && !r.finished));
}

#[tokio::test]
async fn invalid_requests_get_openai_style_400() {
    let sim = start(SimConfig::default()).await;
    let client = crate::support::client();
    let url = format!("{}/chat/completions", sim.base_url());

    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(error["error"]["param"].is_null());

    let response = client
        .post(&url)
        .json(&serde_json::json!({"messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "model");

    assert!(
        sim.requests().is_empty(),
        "rejected requests are not served"
    );
}

#[tokio::test]
async fn refused_answers_its_status_and_message_before_any_token() {
    let sim = start(config(3, 0)).await;
    let message = "Incorrect API key provided: sk-test. You can find your API key at https://platform.openai.com/account/api-keys.";
    sim.push_script(Behaviour::Refused {
        status: 401,
        message: message.to_owned(),
    });
    let refused = post_chat(&sim, &chat_body(true)).await;
    assert_eq!(refused.status(), 401);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["message"], message);
    assert_eq!(error["error"]["type"], "invalid_request_error");

    let records = sim.requests();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].chunks_sent, 0);
    assert!(records[0].finished);
}
