//! Inputs that used to be accepted and then lost: a NUL character, settings out of range, a long
//! prompt of distinct words. Each is refused at the edge with a clear error, or stored whole;
//! nothing of it reaches the dead-letter stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use common::testing::xrange_all;
use serde_json::{Value, json};
use support::{Opts, System};
use uuid::Uuid;

async fn dead_letters(system: &System) -> usize {
    let names = system.core.names();
    let client = system.redis();
    let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    xrange_all(&mut conn, &names.dead_letter_stream("chat"))
        .await
        .len()
}

#[tokio::test]
async fn unstorable_and_out_of_range_inputs_are_refused_at_the_edge() {
    let system = System::start(Opts::new()).await;
    let token = system.token(Uuid::now_v7());
    let bad = [
        json!({"prompt": "a\u{0}b"}),
        json!({"prompt": [{"type": "text", "text": "x\u{0}"}]}),
        json!({"prompt": "hi", "settings": {"max_tokens": -1}}),
        json!({"prompt": "hi", "settings": {"max_tokens": 1e18}}),
        json!({"prompt": "hi", "settings": {"temperature": "hot"}}),
        json!({"prompt": "hi", "settings": {"temperature": 7}}),
        json!({"prompt": "hi", "settings": {"system_prompt": "\u{0}"}}),
    ];
    for body in &bad {
        let (status, answer) = system.post(&token, "/chat", body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["success"], false);
    }
    // The same over the WebSocket: an `error` event of stage `validation`, the connection open.
    let (mut ws, _) = system.connect(&token).await;
    for body in &bad {
        let mut message = body.clone();
        message["type"] = json!("chat");
        ws.send(message).await;
        let e = ws.next().await;
        assert_eq!(e["type"], "error", "{body} → {e}");
        assert_eq!(e["data"]["stage"], "validation", "{e}");
        assert_eq!(e["data"]["retryable"], false, "{e}");
    }
    ws.send(json!({"type": "chat", "prompt": "still here"}))
        .await;
    let events = ws.until_complete().await;
    assert!(support::text(&events).contains("still here"));
    // And /v1, in OpenAI's format.
    let (status, answer) = system
        .post(
            &token,
            "/v1/chat/completions",
            json!({"model": "dummy", "messages": [{"role": "user", "content": "\u{0}"}]}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["type"], "invalid_request_error");
    // A search for a NUL is a bad request, not a database failure.
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/chat/search?q=%00", system.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Every query parameter passes the same text rule (common::http::Params), a cursor too.
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/chat/sessions?cursor=a%01b", system.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("cursor"),
        "{body}"
    );
    assert_eq!(dead_letters(&system).await, 0);
    system.stop().await;
}

#[tokio::test]
async fn a_long_prompt_of_distinct_words_is_answered_stored_and_found() {
    let system = System::start(Opts::new()).await;
    let token = system.token(Uuid::now_v7());
    // ~960 KB of distinct words: its tsvector would pass PostgreSQL's 1 MB limit.
    let mut words = Vec::new();
    let mut size = 0;
    let mut n: u64 = 0;
    while size < 960_000 {
        let word = format!("w{n:x}q");
        size += word.len() + 1;
        words.push(word);
        n += 7919;
    }
    let prompt = words.join(" ");
    let (status, answer) = system
        .post(&token, "/chat", json!({"prompt": prompt}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["data"]["errors"].as_array().unwrap().is_empty(),
        "{answer}"
    );
    let session = answer["data"]["session_id"].as_str().unwrap();
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/chat/sessions/{session}", system.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let stored = body["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .expect("the user message is stored");
    assert_eq!(stored["content"].as_str().unwrap().len(), prompt.len());
    // Words near the start are searchable.
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/chat/search?q={}",
            system.http, words[10]
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let found: Value = r.json().await.unwrap();
    assert!(
        !found["data"]["results"].as_array().unwrap().is_empty(),
        "{found}"
    );
    system.stop().await;
}
