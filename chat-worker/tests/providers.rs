//! Every wire format against the simulator speaking it: a text stream, reasoning, a tool-call
//! stream, an error mid-stream, 429 then success, and a cancelled stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use common::testing::isolated_settings;
use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};
use support::{Harness, joined, of_kind, point, registry_file};
use uuid::Uuid;

const REGISTRY: &str = r#"
default = "oa"
[providers.openai]
kind = "openai"
base_url = "http://unused"
api_key_env = "OPENAI_API_KEY"
[providers.anthropic]
kind = "anthropic"
base_url = "http://unused"
api_key_env = "ANTHROPIC_API_KEY"
[providers.gemini]
kind = "gemini"
base_url = "http://unused"
api_key_env = "GEMINI_API_KEY"
[models.oa]
provider = "openai"
tools = true
vision = true
reasoning = true
[models.claude]
provider = "anthropic"
upstream = "claude-test"
tools = true
vision = true
reasoning = true
temperature = [0.0, 1.0]
[models.gem]
provider = "gemini"
upstream = "gemini-test"
tools = true
vision = true
reasoning = true
temperature = [0.0, 2.0]
"#;

struct Setup {
    sim: Simulator,
    h: Harness,
}

async fn setup(config: SimConfig) -> Setup {
    let sim = Simulator::start(config).await.unwrap();
    let mut settings = support::settings(&isolated_settings());
    settings.models_file = Some(registry_file(REGISTRY));
    settings.provider_retries = 1;
    settings.provider_retry_base_ms = 10;
    point(&mut settings, "openai", sim.base_url(), "key-openai");
    point(&mut settings, "anthropic", sim.root_url(), "key-anthropic");
    point(&mut settings, "gemini", sim.root_url(), "key-gemini");
    Setup {
        sim,
        h: Harness::start(settings).await,
    }
}

const MODELS: [(&str, WireFormat); 3] = [
    ("oa", WireFormat::OpenAi),
    ("claude", WireFormat::Anthropic),
    ("gem", WireFormat::Gemini),
];

#[tokio::test]
async fn each_format_streams_text_reasoning_and_usage() {
    let s = setup(SimConfig::default()).await;
    for (model, format) in MODELS {
        let events =
            s.h.ask(json!({"prompt": "one two", "model": model,
                "settings": {"system_prompt": "be brief", "reasoning": true, "temperature": 0.3}}))
                .await;
        assert_eq!(
            joined(&events, "text_chunk"),
            "tok tok tok tok tok ",
            "{model}"
        );
        let done = of_kind(&events, "text_completed")[0];
        assert_eq!(done["finish_reason"], "stop", "{model}");
        assert!(
            done["usage"]["output_tokens"].as_u64().unwrap() >= 5,
            "{model}: {done}"
        );
        assert!(
            done["usage"]["input_tokens"].as_u64().unwrap() > 0,
            "{model}: {done}"
        );
        if format != WireFormat::OpenAi {
            assert!(
                !joined(&events, "reasoning_chunk").is_empty(),
                "{model} thinks"
            );
        }
        let request = s.sim.requests().into_iter().last().unwrap();
        assert_eq!(request.format, format);
        assert_eq!(
            request.authorization.as_deref().map(|a| a.contains("key-")),
            Some(true)
        );
    }
    let requests = s.sim.requests();
    assert_eq!(requests[1].body["system"], "be brief");
    assert_eq!(requests[1].body["model"], "claude-test");
    assert_eq!(
        requests[2].body["systemInstruction"]["parts"][0]["text"],
        "be brief"
    );
}

#[tokio::test]
async fn each_format_streams_a_tool_call() {
    let s = setup(SimConfig::default()).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]);
    for (model, _) in MODELS {
        let events =
            s.h.ask(json!({"prompt": "call_tool now", "model": model, "tools": tools}))
                .await;
        let starts = of_kind(&events, "tool_start");
        assert_eq!(starts.len(), 1, "{model}");
        assert_eq!(starts[0]["name"], "get_weather", "{model}");
        let args: Value = serde_json::from_str(starts[0]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"location": "Paris"}), "{model}");
        let done = of_kind(&events, "text_completed")[0];
        assert_eq!(done["finish_reason"], "tool_calls", "{model}");
        // The result goes back, and the model answers in text.
        let call = &done["tool_calls"][0];
        let messages = json!([
            {"role": "user", "content": "call_tool now"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "{\"sky\":\"sunny\"}"},
        ]);
        let events =
            s.h.ask(json!({"messages": messages, "model": model, "tools": tools}))
                .await;
        assert_eq!(
            of_kind(&events, "text_completed")[0]["finish_reason"],
            "stop",
            "{model}"
        );
        assert!(of_kind(&events, "tool_start").is_empty(), "{model}");
    }
}

#[tokio::test]
async fn each_format_reports_errors_mid_stream_and_retries_a_429() {
    let s = setup(SimConfig::default()).await;
    for (model, _) in MODELS {
        for behaviour in [
            Behaviour::ErrorEvent { after_chunks: 2 },
            Behaviour::DropMidStream { after_chunks: 2 },
        ] {
            s.sim.push_script(behaviour.clone());
            let events = s.h.ask(json!({"prompt": "hi", "model": model})).await;
            let errors = of_kind(&events, "error");
            assert_eq!(errors.len(), 1, "{model} {behaviour:?}: {events:?}");
            assert_eq!(errors[0]["stage"], "provider");
            let done = of_kind(&events, "text_completed")[0];
            assert_eq!(done["content"], "tok tok ", "{model} {behaviour:?}");
            assert_eq!(done["finish_reason"], "error");
        }
        s.sim.push_script(Behaviour::RateLimited {
            retry_after_secs: 0,
        });
        let before = s.sim.requests().len();
        let events = s.h.ask(json!({"prompt": "hi", "model": model})).await;
        assert!(of_kind(&events, "error").is_empty(), "{model}: {events:?}");
        assert_eq!(joined(&events, "text_chunk"), "tok tok tok tok tok ");
        assert_eq!(
            s.sim.requests().len() - before,
            2,
            "{model}: 429, then the answer"
        );
    }
}

#[tokio::test]
async fn each_format_closes_the_upstream_stream_on_cancel() {
    let s = setup(SimConfig {
        chunks: 300,
        chunk_interval: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    for (model, format) in MODELS {
        let action =
            s.h.publish(
                "chat.completion.generate",
                Uuid::now_v7(),
                Uuid::now_v7(),
                json!({"prompt": "long", "model": model}),
            )
            .await;
        s.h.wait(&action, "text_chunk").await;
        s.h.bus.request_cancel(action.task_id).await.unwrap();
        let events = s.h.wait(&action, "complete").await;
        assert_eq!(of_kind(&events, "cancelled").len(), 1, "{model}");
        let closed = s.sim.wait_for_client_close(Duration::from_secs(5)).await;
        let record = closed.unwrap_or_else(|| panic!("{model}: upstream not closed"));
        assert_eq!(record.format, format);
        assert!(record.chunks_sent < 300);
    }
}
