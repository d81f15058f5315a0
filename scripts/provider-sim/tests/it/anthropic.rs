//! Anthropic Messages: `POST /v1/messages`, its event stream, errors and failure behaviours.

// The request and parsing helpers below run only inside tests, where a panic is how a failure is
// reported; clippy's test exemption does not reach them because they are not `#[test]` functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::support::{EventReader, SseEvent, client, config, parse_events, start};

const KEY: &str = "sk-ant-sim-test";

/// A Messages request with a 3-word system prompt and a 4-word user message (7 input tokens).
fn message_body(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Say hello to me"}]
    })
}

fn tool_body(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "tools": [
            {"name": "get_weather", "description": "Weather for a place",
             "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}},
            {"name": "other_tool", "description": "Unused", "input_schema": {"type": "object"}}
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "please call_tool for Paris"}]}
        ]
    })
}

async fn post(sim: &Simulator, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", sim.root_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .expect("send messages request")
}

/// The whole stream, checking that every event's `type` repeats its `event:` name.
async fn events(response: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    parse_events(&body)
        .into_iter()
        .map(|SseEvent { event, data }| {
            let name = event.unwrap_or_else(|| panic!("event without a name: {data}"));
            let data: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(data["type"], name.as_str(), "{data}");
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn text_stream_matches_anthropic_event_sequence() {
    let sim = start(SimConfig {
        chunk_text: "hi ".to_owned(),
        ..config(3, 0)
    })
    .await;
    let events = events(post(&sim, &message_body(true)).await).await;

    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let message = &events[0].1["message"];
    let id = message["id"].as_str().unwrap();
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(
        events[0].1,
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 7, "output_tokens": 1}
        }})
    );
    assert_eq!(
        events[1].1,
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(events[2].1, json!({"type": "ping"}));
    for (_, delta) in &events[3..6] {
        assert_eq!(
            *delta,
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": "hi "}})
        );
    }
    assert_eq!(text_of(&events), "hi hi hi ");
    assert_eq!(
        events[6].1,
        json!({"type": "content_block_stop", "index": 0})
    );
    assert_eq!(
        events[7].1,
        json!({"type": "message_delta",
               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 3}})
    );
    assert_eq!(events[8].1, json!({"type": "message_stop"}));

    let records = sim.requests();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.format, WireFormat::Anthropic);
    assert_eq!(record.path, "/v1/messages");
    assert_eq!(record.authorization.as_deref(), Some(KEY));
    assert_eq!(record.body["max_tokens"], 1024);
    assert_eq!(record.behaviour, Behaviour::Normal);
    assert_eq!(record.chunks_sent, 3);
    assert!(record.finished);
    assert!(!record.client_closed);
}

#[tokio::test]
async fn raw_framing_has_event_and_data_lines() {
    let sim = start(config(1, 0)).await;
    let body = post(&sim, &message_body(true)).await.text().await.unwrap();
    let blocks: Vec<&str> = body.strip_suffix("\n\n").unwrap().split("\n\n").collect();
    assert_eq!(blocks.len(), 7, "{body}");
    for block in blocks {
        let (event, data) = block.split_once('\n').unwrap();
        let name = event.strip_prefix("event: ").unwrap();
        let data = data.strip_prefix("data: ").unwrap();
        assert!(!data.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(data).unwrap()["type"], name);
    }
}

#[tokio::test]
async fn non_streaming_message_and_system_blocks() {
    let sim = start(config(4, 0)).await;
    let mut body = message_body(false);
    body["system"] = json!([
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Be kind."}
    ]);
    let response = post(&sim, &body).await;
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    let id = message["id"].as_str().unwrap();
    assert!(id.starts_with("msg_"));
    assert_eq!(
        message,
        json!({
            "id": id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "tok tok tok tok "}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 9, "output_tokens": 4}
        })
    );
    assert!(sim.requests()[0].finished);
}

#[tokio::test]
async fn tool_use_stream_reassembles_input() {
    let sim = start(SimConfig::default()).await;
    let events = events(post(&sim, &tool_body(true)).await).await;

    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(text_of(&events), "Let me check.");
    let starts: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(starts.len(), 2);
    let tool = &starts[1];
    assert_eq!(tool["index"], 1);
    let id = tool["content_block"]["id"].as_str().unwrap();
    assert!(id.starts_with("toolu_"), "{id}");
    assert_eq!(
        tool["content_block"],
        json!({"type": "tool_use", "id": id, "name": "get_weather", "input": {}})
    );

    // Block 0 is closed before block 1 opens, and block 1's deltas come in between.
    let position = |pred: &dyn Fn(&Value) -> bool| events.iter().position(|(_, d)| pred(d));
    let stop0 = position(&|d| d["type"] == "content_block_stop" && d["index"] == 0).unwrap();
    let start1 = position(&|d| d["type"] == "content_block_start" && d["index"] == 1).unwrap();
    let stop1 = position(&|d| d["type"] == "content_block_stop" && d["index"] == 1).unwrap();
    assert!(stop0 < start1 && start1 < stop1);
    let pieces: Vec<&str> = events[start1 + 1..stop1]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["index"], 1);
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert!(pieces.len() > 1, "input should arrive in several pieces");
    let input = pieces.concat();
    assert_eq!(
        serde_json::from_str::<Value>(&input).unwrap(),
        json!({"location": "Paris"})
    );
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 1 + pieces.len());
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(sim.requests()[0].chunks_sent, 1 + pieces.len());
}

#[tokio::test]
async fn tool_use_non_streaming_and_answered_call_gets_text() {
    let sim = start(config(2, 0)).await;
    let message: Value = post(&sim, &tool_body(false)).await.json().await.unwrap();
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"][0],
        json!({"type": "text", "text": "Let me check."})
    );
    let call = &message["content"][1];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"location": "Paris"}));

    // With the tool result in the conversation, the model answers in text.
    let mut followup = tool_body(true);
    let messages = followup["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": message["content"].clone()}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "sunny"}
    ]}));
    let events = events(post(&sim, &followup).await).await;
    assert_eq!(text_of(&events), "tok tok ");
    assert!(
        events
            .iter()
            .all(|(_, d)| d["content_block"]["type"] != "tool_use")
    );
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "end_turn"
    );
}

#[tokio::test]
async fn thinking_block_precedes_the_text() {
    let sim = start(config(2, 0)).await;
    let mut body = message_body(true);
    body["max_tokens"] = json!(4096);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    let events = events(post(&sim, &body).await).await;

    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        events[1].1,
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "thinking", "thinking": ""}})
    );
    let thinking: String = events[3..5]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["index"], 0);
            assert_eq!(d["delta"]["type"], "thinking_delta");
            d["delta"]["thinking"].as_str().unwrap()
        })
        .collect();
    assert!(!thinking.is_empty());
    let signature = &events[5].1;
    assert_eq!(signature["index"], 0);
    assert_eq!(signature["delta"]["type"], "signature_delta");
    assert!(!signature["delta"]["signature"].as_str().unwrap().is_empty());
    assert_eq!(
        events[6].1,
        json!({"type": "content_block_stop", "index": 0})
    );
    assert_eq!(
        events[7].1,
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "text", "text": ""}})
    );
    assert!(events[8..10].iter().all(|(_, d)| d["index"] == 1));
    assert_eq!(text_of(&events), "tok tok ");
    assert_eq!(
        events[10].1,
        json!({"type": "content_block_stop", "index": 1})
    );
    assert_eq!(events[11].1["usage"]["output_tokens"], 4);
    assert_eq!(sim.requests()[0].chunks_sent, 4);

    // Not streamed, the thinking block comes whole with its signature.
    body["stream"] = json!(false);
    let message: Value = post(&sim, &body).await.json().await.unwrap();
    assert_eq!(message["content"][0]["type"], "thinking");
    assert_eq!(message["content"][0]["thinking"], thinking);
    assert!(message["content"][0]["signature"].is_string());
    assert_eq!(
        message["content"][1],
        json!({"type": "text", "text": "tok tok "})
    );
}

#[tokio::test]
async fn rate_limit_then_success() {
    let sim = start(config(2, 0)).await;
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 9,
    });
    let limited = post(&sim, &message_body(true)).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "9");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "rate_limit_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit")
    );
    assert!(error["request_id"].as_str().unwrap().starts_with("req_"));

    let events = events(post(&sim, &message_body(true)).await).await;
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(text_of(&events), "tok tok ");
    let records = sim.requests();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].chunks_sent, 0);
    assert!(records[1].finished);
}

#[tokio::test]
async fn server_error_is_api_error() {
    let sim = start(SimConfig {
        behaviour: Behaviour::ServerError,
        ..config(3, 0)
    })
    .await;
    for stream in [true, false] {
        let response = post(&sim, &message_body(stream)).await;
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()["content-type"], "application/json");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "api_error");
    }
    assert!(sim.requests().iter().all(|r| r.chunks_sent == 0));
}

#[tokio::test]
async fn error_event_mid_stream() {
    let sim = start(config(5, 0)).await;
    sim.push_script(Behaviour::ErrorEvent { after_chunks: 2 });
    let events = events(post(&sim, &message_body(true)).await).await;
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(text_of(&events), "tok tok ");
    assert_eq!(
        events[5].1,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    let record = &sim.requests()[0];
    assert_eq!(record.chunks_sent, 2);
    assert!(record.finished);

    // Not streamed, the same behaviour is an HTTP 529.
    sim.push_script(Behaviour::ErrorEvent { after_chunks: 2 });
    let response = post(&sim, &message_body(false)).await;
    assert_eq!(response.status().as_u16(), 529);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn drop_mid_stream_cuts_the_connection() {
    let sim = start(config(10, 5)).await;
    sim.push_script(Behaviour::DropMidStream { after_chunks: 3 });
    let response = post(&sim, &message_body(true)).await;
    assert_eq!(response.status(), 200);
    let (events, failure) = EventReader::new(response).until_failure().await;
    assert!(failure.is_body() || failure.is_decode(), "{failure:?}");
    let names: Vec<_> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta"
        ]
    );
    let record = &sim.requests()[0];
    assert_eq!(record.chunks_sent, 3);
    assert!(!record.finished);
    assert!(!record.client_closed);
}

#[tokio::test]
async fn malformed_line_then_message_stop() {
    let sim = start(config(5, 0)).await;
    sim.push_script(Behaviour::MalformedLine { after_chunks: 1 });
    let body = post(&sim, &message_body(true)).await.text().await.unwrap();
    let events = parse_events(&body);
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(events[3].json()["delta"]["text"], "tok ");
    assert_eq!(events[4].event.as_deref(), Some("content_block_delta"));
    assert_eq!(events[4].data, "{not json");
    assert_eq!(events[5].event.as_deref(), Some("message_stop"));
    assert!(sim.requests()[0].finished);
}

#[tokio::test]
async fn client_close_is_recorded() {
    let sim = start(config(50, 20)).await;
    let mut reader = EventReader::new(post(&sim, &message_body(true)).await);
    for expected in ["message_start", "content_block_start", "ping"] {
        let event = reader.next().await.unwrap().unwrap();
        assert_eq!(event.event.as_deref(), Some(expected));
    }
    let delta = reader.next().await.unwrap().unwrap();
    assert_eq!(delta.json()["delta"]["text"], "tok ");
    drop(reader);

    let record = sim
        .wait_for_client_close(Duration::from_secs(5))
        .await
        .expect("the simulator should notice the dropped stream");
    assert_eq!(record.format, WireFormat::Anthropic);
    assert!(record.client_closed);
    assert!(!record.finished);
    assert!((1..50).contains(&record.chunks_sent), "{record:?}");
}

#[tokio::test]
async fn invalid_requests_get_anthropic_style_400() {
    let sim = start(SimConfig::default()).await;
    let url = format!("{}/v1/messages", sim.root_url());
    let expect_400 = |body: Value, message: &'static str| {
        let url = url.clone();
        async move {
            let response = client().post(&url).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 400, "{body}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["type"], "error");
            assert_eq!(error["error"]["type"], "invalid_request_error");
            let got = error["error"]["message"].as_str().unwrap();
            assert!(got.contains(message), "{got:?} lacks {message:?}");
        }
    };

    let mut body = message_body(true);
    body.as_object_mut().unwrap().remove("max_tokens");
    expect_400(body, "max_tokens: Field required").await;

    let mut body = message_body(true);
    body.as_object_mut().unwrap().remove("model");
    expect_400(body, "model: Field required").await;

    let mut body = message_body(true);
    body["messages"] = json!([]);
    expect_400(body, "messages").await;

    let mut body = message_body(true);
    body["messages"] = json!([{"role": "system", "content": "no"}]);
    expect_400(body, "messages.0.role").await;

    let mut body = message_body(true);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    expect_400(
        body,
        "`max_tokens` must be greater than `thinking.budget_tokens`",
    )
    .await;

    let response = client()
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");

    assert!(
        sim.requests().is_empty(),
        "rejected requests are not served"
    );
}
