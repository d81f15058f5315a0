//! Model routing against simulators: retries before the first token, fallback to the next model,
//! no silent switch after the first token, tool calls, and clear errors for what cannot be served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use common::testing::{Received, isolated_settings};
use provider_sim::{Behaviour, SimConfig, Simulator};
use serde_json::{Value, json};
use support::{Harness, joined, of_kind, point, registry_file};

/// Two OpenAI-compatible providers; `primary` falls back to `backup`.
const REGISTRY: &str = r#"
default = "primary"
[providers.alpha]
kind = "openai"
base_url = "http://unused"
api_key_env = "ALPHA_KEY"
[providers.beta]
kind = "openai"
base_url = "http://unused"
api_key_env = "BETA_KEY"
[providers.gamma]
kind = "anthropic"
base_url = "http://unused"
api_key_env = "GAMMA_KEY"
[models.primary]
provider = "alpha"
upstream = "alpha-large"
tools = true
temperature = [0.0, 1.0]
fallback = ["backup"]
[models.backup]
provider = "beta"
upstream = "beta-small"
[models.elsewhere]
provider = "gamma"
"#;

struct Setup {
    alpha: Simulator,
    beta: Simulator,
    h: Harness,
}

async fn setup() -> Setup {
    let alpha = Simulator::start(SimConfig::default()).await.unwrap();
    let beta = Simulator::start(SimConfig {
        chunk_text: "beta ".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut settings = support::settings(&isolated_settings());
    settings.models_file = Some(registry_file(REGISTRY));
    settings.provider_retries = 2;
    settings.provider_retry_base_ms = 10;
    point(&mut settings, "alpha", alpha.base_url(), "k");
    point(&mut settings, "beta", beta.base_url(), "k");
    Setup {
        alpha,
        beta,
        h: Harness::start(settings).await,
    }
}

impl Setup {
    async fn ask(&self, data: Value) -> Vec<Received> {
        self.h.ask(data).await
    }
}

fn text(events: &[Received]) -> String {
    joined(events, "text_chunk")
}

#[tokio::test]
async fn rate_limited_then_success_retries_the_same_model() {
    let s = setup().await;
    s.alpha.push_script(Behaviour::RateLimited {
        retry_after_secs: 0,
    });
    s.alpha.push_script(Behaviour::ServerError);
    let events = s
        .ask(json!({"prompt": "hi", "settings": {"temperature": 1.7}}))
        .await;
    assert_eq!(
        of_kind(&events, "model_in_use"),
        [&json!({"provider": "alpha", "model": "primary"})]
    );
    assert_eq!(text(&events), "tok tok tok tok tok ");
    assert!(of_kind(&events, "error").is_empty());
    let requests = s.alpha.requests();
    assert_eq!(requests.len(), 3, "429, 500, then the answer");
    assert_eq!(requests[2].body["model"], "alpha-large");
    assert_eq!(
        requests[2].body["temperature"], 1.0,
        "clamped to the model's range"
    );
    assert!(s.beta.requests().is_empty());
}

#[tokio::test]
async fn failures_before_the_first_token_fall_back_and_say_so() {
    let s = setup().await;
    for _ in 0..3 {
        s.alpha.push_script(Behaviour::ServerError);
    }
    let events = s
        .ask(json!({"prompt": "hi", "settings": {"temperature": 0.5}}))
        .await;
    assert_eq!(
        of_kind(&events, "model_in_use"),
        [
            &json!({"provider": "alpha", "model": "primary"}),
            &json!({"provider": "beta", "model": "backup"})
        ]
    );
    assert_eq!(text(&events), "beta beta beta beta beta ");
    assert_eq!(s.alpha.requests().len(), 3);
    let backup = &s.beta.requests()[0].body;
    assert_eq!(backup["model"], "beta-small");
    assert!(
        backup.get("temperature").is_none(),
        "backup refuses a temperature"
    );
}

#[tokio::test]
async fn a_failure_after_the_first_token_is_an_error_not_a_switch() {
    let s = setup().await;
    s.alpha
        .push_script(Behaviour::DropMidStream { after_chunks: 2 });
    let events = s.ask(json!({"prompt": "hi"})).await;
    let errors = of_kind(&events, "error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["code"], "upstream_connection");
    assert_eq!(of_kind(&events, "text_completed")[0]["content"], "tok tok ");
    assert!(
        s.beta.requests().is_empty(),
        "no silent switch to another model"
    );
    assert_eq!(s.alpha.requests().len(), 1);
}

#[tokio::test]
async fn tool_calls_are_reassembled_and_completed_with_finish_reason() {
    let s = setup().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "weather", "parameters": {"type": "object",
        "properties": {"location": {"type": "string"}}}}}]);
    let events = s
        .ask(json!({"prompt": "please call_tool", "tools": tools, "tool_choice": "auto"}))
        .await;
    let starts = of_kind(&events, "tool_start");
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0]["name"], "get_weather");
    let args: Value = serde_json::from_str(starts[0]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"location": "Paris"}));
    let done = of_kind(&events, "text_completed")[0];
    assert_eq!(done["finish_reason"], "tool_calls");
    assert_eq!(done["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(done["tool_calls"][0]["id"], starts[0]["call_id"]);
    let sent = &s.alpha.requests()[0].body;
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tool_choice"], "auto");

    // The client runs the tool and continues the conversation with its result.
    let call = &done["tool_calls"][0];
    let messages = json!([
        {"role": "user", "content": "please call_tool"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "{\"sky\":\"sunny\"}"},
    ]);
    let events = s.ask(json!({"messages": messages, "tools": tools})).await;
    assert_eq!(
        of_kind(&events, "text_completed")[0]["finish_reason"],
        "stop"
    );
    assert_eq!(s.alpha.requests()[1].body["messages"][2]["role"], "tool");
}

#[tokio::test]
async fn what_cannot_be_served_gets_a_clear_error() {
    let s = setup().await;
    let events = s.ask(json!({"prompt": "hi", "model": "gpt-17"})).await;
    let e = of_kind(&events, "error")[0];
    assert_eq!(e["code"], "unknown_model");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("backup, elsewhere, primary"),
        "{e}"
    );

    let events = s.ask(json!({"prompt": "hi", "model": "elsewhere"})).await;
    let e = of_kind(&events, "error")[0];
    assert_eq!(e["code"], "provider_unavailable");
    assert!(e["message"].as_str().unwrap().contains("GAMMA_KEY"), "{e}");

    let image = json!([{"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]);
    let events = s.ask(json!({"prompt": image, "model": "primary"})).await;
    let e = of_kind(&events, "error")[0];
    assert_eq!(e["code"], "unsupported_input");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("does not accept images")
    );
    assert!(s.alpha.requests().is_empty());
    assert_eq!(events.last().unwrap().kind, "complete");
}
