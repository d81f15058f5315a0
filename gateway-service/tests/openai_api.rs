//! The OpenAI-compatible surface end to end: `/v1/chat/completions` (whole and streamed, text and
//! tool calls, provider failures, timeouts, client disconnects), `/v1/models`, `/api/v1/models`,
//! and OpenAI's error bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use common::auth::{Claims, JwtAuth, Role, unix_now};
use common::testing::TEST_SECRET;
use futures::StreamExt;
use provider_sim::{Behaviour, SimConfig, Simulator};
use serde_json::{Value, json};
use support::{Opts, System, WAIT};
use uuid::Uuid;

const WEATHER_TOOL: &str = r#"{"type": "function", "function": {"name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}"#;

fn weather_tool() -> Value {
    serde_json::from_str(WEATHER_TOOL).unwrap()
}

/// The `data:` payloads of an SSE body, `[DONE]` kept as a string.
fn sse_payloads(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| json!(d)))
        .collect()
}

async fn post(system: &System, token: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", system.http))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn user(content: &str) -> Value {
    json!([{"role": "user", "content": content}])
}

#[tokio::test]
async fn a_completion_answers_in_openai_format() {
    let system = System::start(Opts::new()).await;
    let token = system.token(Uuid::now_v7());
    let r = post(
        &system,
        &token,
        json!({"model": "dummy", "messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
            "temperature": 0.2, "unknown_field": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "dummy");
    assert_eq!(body["system_fingerprint"], Value::Null);
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["refusal"], Value::Null);
    assert!(choice["message"].get("tool_calls").is_none());
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("Echo: hello there"), "{content}");
    let usage = &body["usage"];
    assert_eq!(usage["completion_tokens"], 8);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + 8
    );
    // An alias selects the same model; `max_completion_tokens` limits the answer.
    let r = post(
        &system,
        &token,
        json!({"model": "offline", "messages": user("short one"), "max_completion_tokens": 3}),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 3, "{body}");
}

#[tokio::test]
async fn a_streamed_completion_sends_chunks_usage_and_done() {
    let system = System::start(Opts::new().dummy(10, 0)).await;
    let token = system.token(Uuid::now_v7());
    let r = post(
        &system,
        &token,
        json!({"model": "dummy", "messages": user("stream this please"), "stream": true,
            "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let payloads = sse_payloads(&r.text().await.unwrap());
    assert_eq!(payloads.last().unwrap(), &json!("[DONE]"));
    let chunks = &payloads[..payloads.len() - 1];
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for c in chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(
            (c["id"].as_str(), c["model"].as_str()),
            (Some(id), Some("dummy"))
        );
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.starts_with("Echo: stream this please"), "{text}");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 10);
    // Only the last chunk carries usage.
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["usage"].is_null())
    );

    // Without include_usage there is no usage chunk.
    let r = post(
        &system,
        &token,
        json!({"model": "dummy", "messages": user("again"), "stream": true}),
    )
    .await;
    let payloads = sse_payloads(&r.text().await.unwrap());
    let n = payloads.len();
    assert_eq!(payloads[n - 1], json!("[DONE]"));
    assert_eq!(payloads[n - 2]["choices"][0]["finish_reason"], "stop");
    assert!(payloads.iter().all(|c| c.get("usage").is_none()));
}

#[tokio::test]
async fn errors_use_openai_format() {
    let system = System::start(Opts::new()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", system.http);
    let ok_body = json!({"model": "dummy", "messages": user("hi")});

    let r = http.post(&url).json(&ok_body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["param"], Value::Null);
    assert!(body.get("success").is_none());
    let r = post(&system, "not-a-jwt", ok_body.clone()).await;
    assert_eq!(r.status(), 401);
    let expired = JwtAuth::hs256(TEST_SECRET.as_bytes())
        .sign(&Claims {
            sub: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            role: Role::User,
            exp: unix_now() - 3600,
            nbf: None,
        })
        .unwrap();
    let r = post(&system, &expired, ok_body).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

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
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("JSON"));
    for (request, param) in [
        (json!({"model": "dummy"}), "messages"),
        (json!({"model": "dummy", "messages": []}), "messages"),
        (json!({"messages": user("hi")}), "model"),
        (
            json!({"model": "dummy", "messages": user("hi"), "stream": "yes"}),
            "stream",
        ),
        (
            json!({"model": "dummy", "messages": [{"content": "x"}]}),
            "messages[0]",
        ),
    ] {
        let r = post(&system, &token, request.clone()).await;
        assert_eq!(r.status(), 400, "{request}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["param"], param, "{body}");
    }

    let r = post(
        &system,
        &token,
        json!({"model": "gpt-17", "messages": user("hi"), "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(
        (&error["type"], &error["param"], &error["code"]),
        (
            &json!("invalid_request_error"),
            &json!("model"),
            &json!("model_not_found")
        )
    );
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("The model `gpt-17` does not exist; available models: ")
            && message.contains("dummy"),
        "{message}"
    );

    let r = http
        .get(format!("{}/v1/nope", system.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_url");
    let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn models_are_listed_for_openai_clients_and_by_role_in_rest() {
    let system = System::start(Opts::new()).await;
    let http = reqwest::Client::new();
    let token = system.token(Uuid::now_v7());
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(format!("{}{path}", system.http));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };

    let r = get("/v1/models", None).await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let list: Value = get("/v1/models", Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    assert!(
        data.contains(&json!({"id": "dummy", "object": "model", "created": 0,
        "owned_by": "dummy"}))
    );
    assert!(data.contains(
        &json!({"id": "gpt-4o-mini", "object": "model", "created": 0,
        "owned_by": "openai"})
    ));
    let one: Value = get("/v1/models/mini", Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "gpt-4o-mini");
    let r = get("/v1/models/gpt-17", Some(&token)).await.unwrap();
    assert_eq!(r.status(), 404);

    let r = get("/api/v1/models", None).await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], false);
    let body: Value = get("/api/v1/models", Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (body["code"].as_u64(), body["success"].as_bool()),
        (Some(200), Some(true))
    );
    assert_eq!(body["data"]["default"], "gpt-4o-mini");
    let models = body["data"]["models"].as_array().unwrap();
    assert!(models.contains(&json!({"name": "gpt-4o-mini", "aliases": ["mini"]})));
    assert!(models.iter().all(|m| m.as_object().unwrap().len() == 2));

    let admin = system.admin_token(Uuid::now_v7());
    let body: Value = get("/api/v1/models", Some(&admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mini = body["data"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "gpt-4o-mini")
        .unwrap()
        .clone();
    assert_eq!(mini["provider"], "openai");
    assert_eq!(mini["upstream"], "gpt-4o-mini");
    assert_eq!(
        mini["capabilities"],
        json!({"streaming": true, "tools": true, "reasoning": false, "vision": true,
            "temperature": [0.0, 2.0], "max_output_tokens": 16384, "batch": true})
    );
    assert_eq!(
        mini["fallbacks"],
        json!(["claude-haiku-4-5", "gemini-2-5-flash"])
    );
}

#[tokio::test]
async fn tool_calls_come_back_whole_and_streamed() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let system = System::start(Opts::new().openai_at(&sim.base_url())).await;
    let token = system.token(Uuid::now_v7());
    let ask = json!({"model": "gpt-4o-mini", "messages": user("call_tool for the weather in Paris"),
        "tools": [weather_tool()], "tool_choice": "auto"});

    let body: Value = post(&system, &token, ask.clone())
        .await
        .json()
        .await
        .unwrap();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{body}");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"location": "Paris"}));
    assert_eq!(body["model"], "gpt-4o-mini");
    // The simulator received the tools and the conversation in OpenAI's format.
    let request = &sim.requests()[0].body;
    assert_eq!(request["tools"][0]["function"]["name"], "get_weather");

    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let payloads = sse_payloads(&post(&system, &token, streamed).await.text().await.unwrap());
    let call = payloads
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .unwrap();
    assert_eq!(call["index"], 0);
    assert_eq!(call["function"]["name"], "get_weather");
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    let n = payloads.len();
    assert_eq!(payloads[n - 2]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(payloads[n - 1], json!("[DONE]"));

    // The tool's result sent back gets a text answer.
    let id = call["id"].as_str().unwrap();
    let mut follow_up = ask;
    follow_up["messages"] = json!([
        {"role": "user", "content": "call_tool for the weather in Paris"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": id, "content": "sunny, 24 C"},
    ]);
    let body: Value = post(&system, &token, follow_up).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    assert!(
        !body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn provider_failures_become_openai_http_errors() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut opts = Opts::new().openai_at(&sim.base_url());
    opts.worker.as_mut().unwrap().provider_retries = 0;
    let system = System::start(opts).await;
    let token = system.token(Uuid::now_v7());
    let ask = json!({"model": "gpt-4o-mini", "messages": user("hi")});

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 3,
    });
    let r = post(&system, &token, ask.clone()).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    // Before the first token a failure is an HTTP status even when streaming was asked for.
    sim.push_script(Behaviour::ServerError);
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let r = post(&system, &token, streamed.clone()).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "api_error");
    assert!(!body.to_string().contains("sk-test"));

    // After it, the stream carries an error object and ends with [DONE].
    sim.push_script(Behaviour::DropMidStream { after_chunks: 2 });
    let r = post(&system, &token, streamed).await;
    assert_eq!(r.status(), 200);
    let payloads = sse_payloads(&r.text().await.unwrap());
    let n = payloads.len();
    assert_eq!(payloads[n - 1], json!("[DONE]"));
    assert_eq!(
        payloads[n - 2]["error"]["type"],
        "api_error",
        "{payloads:?}"
    );
    assert!(
        payloads[..n - 2]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_request() {
    let sim = Simulator::start(SimConfig {
        chunks: 500,
        chunk_interval: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let system = System::start(Opts::new().openai_at(&sim.base_url())).await;
    let token = system.token(Uuid::now_v7());
    let r = post(
        &system,
        &token,
        json!({"model": "gpt-4o-mini", "messages": user("tell me everything"), "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"content\":\"tok") {
        let bytes = tokio::time::timeout(WAIT, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(std::str::from_utf8(&bytes).unwrap());
    }
    drop(body);
    let closed = sim.wait_for_client_close(Duration::from_secs(10)).await;
    let record = closed.expect("the simulator saw the worker close the upstream stream");
    assert!(record.chunks_sent < 500);

    // The same when a client waiting for a whole answer gives up.
    let gave_up = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", system.http))
        .bearer_auth(&token)
        .timeout(Duration::from_millis(500))
        .json(&json!({"model": "gpt-4o-mini", "messages": user("and again")}))
        .send()
        .await;
    assert!(gave_up.unwrap_err().is_timeout());
    let closed = sim.wait_for_client_close(Duration::from_secs(10)).await;
    assert!(closed.expect("upstream closed").chunks_sent < 500);
}

#[tokio::test]
async fn no_answer_in_time_is_a_504() {
    let mut opts = Opts::new();
    opts.worker = None;
    opts.gateway.chat_timeout_secs = 1;
    let system = System::start(opts).await;
    let token = system.token(Uuid::now_v7());
    for stream in [false, true] {
        let r = post(
            &system,
            &token,
            json!({"model": "dummy", "messages": user("anyone?"), "stream": stream}),
        )
        .await;
        assert_eq!(r.status(), 504);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "api_error");
        assert_eq!(body["error"]["code"], "timeout");
    }
}
