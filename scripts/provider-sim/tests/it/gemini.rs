//! Google Gemini: `generateContent` and `streamGenerateContent` (SSE and JSON array), errors and
//! failure behaviours.

// The request and parsing helpers below run only inside tests, where a panic is how a failure is
// reported; clippy's test exemption does not reach them because they are not `#[test]` functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::support::{EventReader, client, config, parse_events, start};

const KEY: &str = "AIza-sim-test";
const MODEL: &str = "gemini-2.0-flash";
const STREAM_PATH: &str = "/v1beta/models/gemini-2.0-flash:streamGenerateContent";

/// A request with a 3-word system instruction and a 4-word user turn (7 prompt tokens).
fn content_body() -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [{"role": "user", "parts": [{"text": "Say hello to me"}]}],
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 256}
    })
}

fn tool_body() -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": "please call_tool for Paris"}]}],
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather for a place",
             "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}},
            {"name": "other_tool", "description": "Unused"}
        ]}]
    })
}

async fn post(sim: &Simulator, path_and_query: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path_and_query}", sim.root_url()))
        .header("x-goog-api-key", KEY)
        .json(body)
        .send()
        .await
        .expect("send gemini request")
}

async fn post_sse(sim: &Simulator, body: &Value) -> reqwest::Response {
    post(sim, &format!("{STREAM_PATH}?alt=sse"), body).await
}

/// Every chunk of an SSE stream, checking Google's framing: bare `data:` events ended by CRLF.
async fn sse_chunks(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    assert!(body.ends_with("\r\n\r\n"), "{body:?}");
    for block in body.strip_suffix("\r\n\r\n").unwrap().split("\r\n\r\n") {
        let data = block
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("{block:?}"));
        assert!(!data.contains('\n') && !data.contains('\r'), "{block:?}");
    }
    parse_events(&body)
        .into_iter()
        .map(|event| {
            assert_eq!(event.event, None, "Gemini events have no name");
            event.json()
        })
        .collect()
}

fn text_of(chunks: &[Value], thought: bool) -> String {
    chunks
        .iter()
        .flat_map(|c| c["candidates"][0]["content"]["parts"].as_array().unwrap())
        .filter(|p| (p["thought"] == true) == thought)
        .filter_map(|p| p["text"].as_str())
        .collect()
}

#[tokio::test]
async fn sse_stream_matches_gemini_chunks() {
    let sim = start(SimConfig {
        chunk_text: "hi ".to_owned(),
        ..config(3, 0)
    })
    .await;
    let chunks = sse_chunks(post_sse(&sim, &content_body()).await).await;
    assert_eq!(chunks.len(), 3, "{chunks:#?}");

    let response_id = chunks[0]["responseId"].as_str().unwrap();
    assert!(!response_id.is_empty());
    for (i, chunk) in chunks.iter().enumerate() {
        let count = i as u64 + 1;
        let mut candidate = json!({
            "content": {"parts": [{"text": "hi "}], "role": "model"},
            "index": 0
        });
        if i == 2 {
            candidate["finishReason"] = json!("STOP");
        }
        assert_eq!(
            *chunk,
            json!({
                "candidates": [candidate],
                "usageMetadata": {
                    "promptTokenCount": 7,
                    "candidatesTokenCount": count,
                    "totalTokenCount": 7 + count
                },
                "modelVersion": MODEL,
                "responseId": response_id
            })
        );
    }
    assert_eq!(text_of(&chunks, false), "hi hi hi ");

    let records = sim.requests();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.format, WireFormat::Gemini);
    assert_eq!(record.path, STREAM_PATH);
    assert_eq!(record.authorization.as_deref(), Some(KEY));
    assert_eq!(
        record.body["contents"][0]["parts"][0]["text"],
        "Say hello to me"
    );
    assert_eq!(record.chunks_sent, 3);
    assert!(record.finished);
    assert!(!record.client_closed);
}

#[tokio::test]
async fn generate_content_with_key_in_query() {
    let sim = start(config(4, 0)).await;
    let response = client()
        .post(format!(
            "{}/v1beta/models/{MODEL}:generateContent?key=query-key",
            sim.root_url()
        ))
        .json(&content_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    let response_id = body["responseId"].as_str().unwrap();
    assert_eq!(
        body,
        json!({
            "candidates": [{
                "content": {"parts": [{"text": "tok tok tok tok "}], "role": "model"},
                "finishReason": "STOP",
                "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 4, "totalTokenCount": 11},
            "modelVersion": MODEL,
            "responseId": response_id
        })
    );
    let record = &sim.requests()[0];
    assert_eq!(record.authorization.as_deref(), Some("query-key"));
    assert_eq!(
        record.path,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert!(record.finished);
}

#[tokio::test]
async fn stream_without_alt_sse_is_a_json_array() {
    let sim = start(config(3, 0)).await;
    let response = post(&sim, STREAM_PATH, &content_body()).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let chunks: Vec<Value> = response.json().await.unwrap();
    assert_eq!(chunks.len(), 3);
    assert_eq!(text_of(&chunks, false), "tok tok tok ");
    assert!(
        chunks[..2]
            .iter()
            .all(|c| c["candidates"][0].get("finishReason").is_none())
    );
    assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(chunks[2]["usageMetadata"]["candidatesTokenCount"], 3);
}

#[tokio::test]
async fn function_call_comes_whole() {
    let sim = start(SimConfig::default()).await;
    let chunks = sse_chunks(post_sse(&sim, &tool_body()).await).await;
    assert_eq!(chunks.len(), 1, "{chunks:#?}");
    let candidate = &chunks[0]["candidates"][0];
    assert_eq!(
        candidate["content"],
        json!({"parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}],
               "role": "model"})
    );
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(sim.requests()[0].chunks_sent, 1);

    // With the function's response in the conversation, the model answers in text.
    let mut followup = tool_body();
    let contents = followup["contents"].as_array_mut().unwrap();
    contents.push(json!({"role": "model", "parts": [candidate["content"]["parts"][0].clone()]}));
    contents.push(json!({"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}}
    ]}));
    let chunks = sse_chunks(post_sse(&sim, &followup).await).await;
    assert_eq!(text_of(&chunks, false), "tok tok tok tok tok ");
    assert!(chunks.iter().all(|c| {
        c["candidates"][0]["content"]["parts"][0]
            .get("functionCall")
            .is_none()
    }));

    // Not streamed, the call is the same.
    let body: Value = post(
        &sim,
        &format!("/v1beta/models/{MODEL}:generateContent"),
        &tool_body(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
        json!({"location": "Paris"})
    );
}

#[tokio::test]
async fn thoughts_come_first_when_included() {
    let sim = start(config(2, 0)).await;
    let mut body = content_body();
    body["generationConfig"]["thinkingConfig"] = json!({"includeThoughts": true});
    let chunks = sse_chunks(post_sse(&sim, &body).await).await;
    assert_eq!(chunks.len(), 4, "{chunks:#?}");
    for chunk in &chunks[..2] {
        let part = &chunk["candidates"][0]["content"]["parts"][0];
        assert_eq!(part["thought"], true);
        assert!(!part["text"].as_str().unwrap().is_empty());
    }
    for chunk in &chunks[2..] {
        let part = &chunk["candidates"][0]["content"]["parts"][0];
        assert!(part.get("thought").is_none(), "{part}");
    }
    assert!(!text_of(&chunks, true).is_empty());
    assert_eq!(text_of(&chunks, false), "tok tok ");
    assert_eq!(
        chunks[3]["usageMetadata"],
        json!({"promptTokenCount": 7, "candidatesTokenCount": 2, "totalTokenCount": 11,
               "thoughtsTokenCount": 2})
    );
    assert_eq!(chunks[3]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(sim.requests()[0].chunks_sent, 4);

    // Without includeThoughts no thought parts are sent.
    let chunks = sse_chunks(post_sse(&sim, &content_body()).await).await;
    assert!(text_of(&chunks, true).is_empty());
    assert!(
        chunks[1]["usageMetadata"]
            .get("thoughtsTokenCount")
            .is_none()
    );
}

#[tokio::test]
async fn rate_limit_then_success() {
    let sim = start(config(2, 0)).await;
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 4,
    });
    let limited = post_sse(&sim, &content_body()).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "4");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["code"], 429);
    assert_eq!(error["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(error["error"]["message"].is_string());
    assert_eq!(
        error["error"]["details"],
        json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "4s"}])
    );

    let chunks = sse_chunks(post_sse(&sim, &content_body()).await).await;
    assert_eq!(text_of(&chunks, false), "tok tok ");
    assert_eq!(chunks[1]["candidates"][0]["finishReason"], "STOP");
    let records = sim.requests();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].chunks_sent, 0);
    assert!(records[1].finished);
}

#[tokio::test]
async fn server_error_is_internal() {
    let sim = start(SimConfig {
        behaviour: Behaviour::ServerError,
        ..config(3, 0)
    })
    .await;
    for path in [
        format!("{STREAM_PATH}?alt=sse"),
        format!("/v1beta/models/{MODEL}:generateContent"),
    ] {
        let response = post(&sim, &path, &content_body()).await;
        assert_eq!(response.status(), 500);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], 500);
        assert_eq!(error["error"]["status"], "INTERNAL");
    }
    assert!(sim.requests().iter().all(|r| r.chunks_sent == 0));
}

#[tokio::test]
async fn error_event_mid_stream() {
    let sim = start(config(5, 0)).await;
    sim.push_script(Behaviour::ErrorEvent { after_chunks: 2 });
    let chunks = sse_chunks(post_sse(&sim, &content_body()).await).await;
    assert_eq!(chunks.len(), 3, "{chunks:#?}");
    assert_eq!(text_of(&chunks[..2], false), "tok tok ");
    assert!(
        chunks[..2]
            .iter()
            .all(|c| c["candidates"][0].get("finishReason").is_none())
    );
    assert_eq!(
        chunks[2],
        json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                         "status": "UNAVAILABLE"}})
    );
    let record = &sim.requests()[0];
    assert_eq!(record.chunks_sent, 2);
    assert!(record.finished);

    // In the JSON-array form the error is the array's last element.
    sim.push_script(Behaviour::ErrorEvent { after_chunks: 1 });
    let chunks: Vec<Value> = post(&sim, STREAM_PATH, &content_body())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[1]["error"]["status"], "UNAVAILABLE");

    // Not streamed, it is an HTTP 503.
    sim.push_script(Behaviour::ErrorEvent { after_chunks: 1 });
    let response = post(
        &sim,
        &format!("/v1beta/models/{MODEL}:generateContent"),
        &content_body(),
    )
    .await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "UNAVAILABLE");
}

#[tokio::test]
async fn drop_mid_stream_cuts_the_connection() {
    let sim = start(config(10, 5)).await;
    sim.push_script(Behaviour::DropMidStream { after_chunks: 3 });
    let response = post_sse(&sim, &content_body()).await;
    assert_eq!(response.status(), 200);
    let (events, failure) = EventReader::new(response).until_failure().await;
    assert!(failure.is_body() || failure.is_decode(), "{failure:?}");
    let chunks: Vec<Value> = events.iter().map(|e| e.json()).collect();
    assert_eq!(chunks.len(), 3);
    assert_eq!(text_of(&chunks, false), "tok tok tok ");
    assert!(
        chunks
            .iter()
            .all(|c| c["candidates"][0].get("finishReason").is_none())
    );
    let record = &sim.requests()[0];
    assert_eq!(record.chunks_sent, 3);
    assert!(!record.finished);
    assert!(!record.client_closed);
}

#[tokio::test]
async fn malformed_line_then_finishing_chunk() {
    let sim = start(config(5, 0)).await;
    sim.push_script(Behaviour::MalformedLine { after_chunks: 1 });
    let response = post_sse(&sim, &content_body()).await;
    let body = response.text().await.unwrap();
    let events = parse_events(&body);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        events[0].json()["candidates"][0]["content"]["parts"][0]["text"],
        "tok "
    );
    assert_eq!(events[1].data, "{not json");
    let last = events[2].json();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["candidates"][0]["content"]["parts"],
        json!([{"text": ""}])
    );
    assert!(sim.requests()[0].finished);
}

#[tokio::test]
async fn client_close_is_recorded() {
    let sim = start(config(50, 20)).await;
    let mut reader = EventReader::new(post_sse(&sim, &content_body()).await);
    for _ in 0..2 {
        let chunk = reader.next().await.unwrap().unwrap().json();
        assert_eq!(
            chunk["candidates"][0]["content"]["parts"][0]["text"],
            "tok "
        );
    }
    drop(reader);

    let record = sim
        .wait_for_client_close(Duration::from_secs(5))
        .await
        .expect("the simulator should notice the dropped stream");
    assert_eq!(record.format, WireFormat::Gemini);
    assert!(record.client_closed);
    assert!(!record.finished);
    assert!((2..50).contains(&record.chunks_sent), "{record:?}");
}

#[tokio::test]
async fn client_stopping_at_the_finish_reason_is_no_close() {
    let sim = start(config(3, 0)).await;
    let mut reader = EventReader::new(post_sse(&sim, &content_body()).await);
    loop {
        let chunk = reader.next().await.unwrap().unwrap().json();
        if chunk["candidates"][0]["finishReason"] == "STOP" {
            break;
        }
    }
    drop(reader);
    assert!(
        sim.wait_for_client_close(Duration::from_millis(200))
            .await
            .is_none()
    );
    assert!(sim.requests()[0].finished);
}

#[tokio::test]
async fn invalid_requests_get_google_style_errors() {
    let sim = start(SimConfig::default()).await;
    let expect =
        |path: String, body: Value, status: u16, google: &'static str, message: &'static str| {
            let sim = &sim;
            async move {
                let response = post(sim, &path, &body).await;
                assert_eq!(response.status(), status, "{path} {body}");
                let error: Value = response.json().await.unwrap();
                assert_eq!(error["error"]["code"], status);
                assert_eq!(error["error"]["status"], google);
                let got = error["error"]["message"].as_str().unwrap();
                assert!(got.contains(message), "{got:?} lacks {message:?}");
            }
        };
    let sse = format!("{STREAM_PATH}?alt=sse");

    expect(
        sse.clone(),
        json!({"generationConfig": {}}),
        400,
        "INVALID_ARGUMENT",
        "contents is not specified",
    )
    .await;
    expect(
        sse.clone(),
        json!({"contents": []}),
        400,
        "INVALID_ARGUMENT",
        "contents is not specified",
    )
    .await;
    expect(
        sse.clone(),
        json!({"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}),
        400,
        "INVALID_ARGUMENT",
        "valid role",
    )
    .await;
    expect(
        sse.clone(),
        json!({"contents": [{"role": "user", "parts": []}]}),
        400,
        "INVALID_ARGUMENT",
        "contents[0].parts",
    )
    .await;
    expect(
        format!("/v1beta/models/{MODEL}:countTokens"),
        content_body(),
        404,
        "NOT_FOUND",
        "countTokens",
    )
    .await;

    let response = client()
        .post(format!("{}{sse}", sim.root_url()))
        .header("content-type", "application/json")
        .body("{\"contents\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");

    assert!(
        sim.requests().is_empty(),
        "rejected requests are not served"
    );
}
