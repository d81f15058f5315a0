//! Well-formed replies: streamed text, usage, pacing, non-streamed completions and tool calls.

use std::time::Duration;

use provider_sim::{Behaviour, SimConfig};
use serde_json::{Value, json};

use crate::support::{
    API_KEY, SseReader, chat_body, config, content_of, json_of, post_chat, start,
};

#[tokio::test]
async fn stream_matches_openai_chunk_sequence() {
    let sim = start(SimConfig {
        chunk_text: "hi ".to_owned(),
        ..config(3, 0)
    })
    .await;
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});

    let response = post_chat(&sim, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = SseReader::new(response).all().await;

    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| json_of(e))
        .collect();
    assert_eq!(
        chunks.len(),
        6,
        "role + 3 content + finish + usage: {chunks:#?}"
    );

    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"), "{id}");
    for chunk in &chunks {
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-4o-mini");
        assert!(chunk["created"].as_u64().unwrap() > 1_700_000_000);
        assert!(chunk["system_fingerprint"].is_null());
    }

    let role = &chunks[0]["choices"][0];
    assert_eq!(role["delta"], json!({"role": "assistant", "content": ""}));
    assert!(role["finish_reason"].is_null());
    assert!(role["logprobs"].is_null());

    for chunk in &chunks[1..4] {
        assert_eq!(chunk["choices"][0]["delta"], json!({"content": "hi "}));
        assert!(chunk["choices"][0]["finish_reason"].is_null());
    }
    assert_eq!(content_of(&chunks), "hi hi hi ");

    let finish = &chunks[4]["choices"][0];
    assert_eq!(finish["delta"], json!({}));
    assert_eq!(finish["finish_reason"], "stop");

    // With include_usage every chunk but the last carries an explicit null.
    for chunk in &chunks[..5] {
        assert!(chunk.as_object().unwrap().contains_key("usage"), "{chunk}");
        assert!(chunk["usage"].is_null());
    }
    let usage = &chunks[5];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
    );

    let records = sim.requests();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.id, 0);
    assert_eq!(record.format, provider_sim::WireFormat::OpenAi);
    assert_eq!(record.path, "/v1/chat/completions");
    assert_eq!(
        record.authorization.as_deref(),
        Some(&*format!("Bearer {API_KEY}"))
    );
    assert_eq!(record.body["messages"][1]["content"], "Say hello to me");
    assert_eq!(record.behaviour, Behaviour::Normal);
    assert_eq!(record.chunks_sent, 3);
    assert!(record.finished);
    assert!(!record.client_closed);
    assert!(record.closed_at.is_none());
}

#[tokio::test]
async fn stream_without_usage_option_has_no_usage_field_and_bare_path_works() {
    let sim = start(config(2, 0)).await;
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("http://{}/chat/completions", sim.addr()))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = SseReader::new(response).all().await;
    assert_eq!(
        events.len(),
        5,
        "role + 2 content + finish + [DONE]: {events:?}"
    );
    assert_eq!(events[4], "[DONE]");
    for event in &events[..4] {
        assert!(json_of(event).get("usage").is_none(), "{event}");
    }
    assert_eq!(sim.requests()[0].path, "/chat/completions");
    assert_eq!(sim.requests()[0].authorization, None);
}

#[tokio::test]
async fn role_chunk_precedes_first_token_delay() {
    let sim = start(SimConfig {
        first_token_delay: Duration::from_millis(400),
        ..config(2, 0)
    })
    .await;
    let mut reader = SseReader::new(post_chat(&sim, &chat_body(true)).await);
    let role = json_of(&reader.next().await.unwrap().unwrap());
    let first = json_of(&reader.next().await.unwrap().unwrap());

    assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(first["choices"][0]["delta"]["content"], "tok ");
    // The simulator's own send times: the test's clock would measure the network and scheduler.
    let record = &sim.requests()[0];
    let opened = record.first_event_at.expect("the role chunk went out");
    let first_unit = record.unit_sent_at[0];
    assert!(
        first_unit.duration_since(opened) >= Duration::from_millis(400),
        "the role chunk goes out before the first-token delay: {:?} between them",
        first_unit.duration_since(opened)
    );
}

#[tokio::test]
async fn chunk_interval_paces_the_stream() {
    let sim = start(config(5, 60)).await;
    let events = SseReader::new(post_chat(&sim, &chat_body(true)).await)
        .all()
        .await;
    assert_eq!(events.len(), 8);
    let sent = &sim.requests()[0].unit_sent_at;
    assert_eq!(sent.len(), 5);
    for (i, pair) in sent.windows(2).enumerate() {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(60),
            "chunk {} went out {gap:?} after chunk {i}",
            i + 1
        );
    }
}

#[tokio::test]
async fn non_streaming_completion() {
    let sim = start(config(4, 0)).await;
    let response = post_chat(&sim, &chat_body(false)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(
        body["choices"],
        json!([{
            "index": 0,
            "message": {"role": "assistant", "content": "tok tok tok tok ", "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }])
    );
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11})
    );
    let record = &sim.requests()[0];
    assert!(record.finished);
    assert_eq!(record.body["stream"], false);
}

fn tool_request(stream: bool) -> Value {
    json!({
        "model": "gpt-4o",
        "stream": stream,
        "tools": [
            {"type": "function", "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}
            }},
            {"type": "function", "function": {"name": "other_tool", "parameters": {}}}
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "please call_tool for Paris"}]}
        ]
    })
}

#[tokio::test]
async fn tool_call_stream_reassembles_arguments() {
    let sim = start(SimConfig::default()).await;
    let events = SseReader::new(post_chat(&sim, &tool_request(true)).await)
        .all()
        .await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| json_of(e))
        .collect();

    let opening = &chunks[0]["choices"][0]["delta"];
    assert_eq!(opening["role"], "assistant");
    assert!(opening.as_object().unwrap().contains_key("content"));
    assert!(opening["content"].is_null());
    let call = &opening["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "");

    let pieces = &chunks[1..chunks.len() - 1];
    assert!(
        pieces.len() > 1,
        "arguments should arrive in several pieces"
    );
    let arguments: String = pieces
        .iter()
        .map(|c| {
            let delta = &c["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(delta["index"], 0);
            assert!(delta.get("id").is_none());
            delta["function"]["arguments"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(arguments, r#"{"location":"Paris"}"#);
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"location": "Paris"})
    );
    let last = &chunks[chunks.len() - 1]["choices"][0];
    assert_eq!(last["delta"], json!({}));
    assert_eq!(last["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn tool_call_non_streaming_and_answered_call_gets_text() {
    let sim = start(config(2, 0)).await;
    let body: Value = post_chat(&sim, &tool_request(false))
        .await
        .json()
        .await
        .unwrap();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"location":"Paris"}"#);

    // Once the tool result is in the conversation the model answers in text, ending the loop.
    let mut followup = tool_request(false);
    let messages = followup["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call.clone()]}));
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "sunny"}));
    let body: Value = post_chat(&sim, &followup).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["choices"][0]["message"]["content"], "tok tok ");
}
