//! Every provider format streams through the gateway, over the WebSocket and over
//! `/v1/chat/completions`, against the simulator speaking that format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chat_worker::config::ProviderAccess;
use common::settings::Secret;
use provider_sim::{SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};
use support::{Opts, System, text};
use uuid::Uuid;

/// Registry models (the shipped `config/models.toml`) and the format each one's provider speaks.
const MODELS: [(&str, &str, WireFormat); 4] = [
    ("gpt-4o-mini", "openai", WireFormat::OpenAi),
    ("claude-haiku-4-5", "anthropic", WireFormat::Anthropic),
    ("gemini-2-5-flash", "gemini", WireFormat::Gemini),
    ("llama-3-3-70b", "groq", WireFormat::OpenAi),
];

async fn start() -> (Simulator, System) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut opts = Opts::new();
    let worker = opts.worker.as_mut().unwrap();
    for (provider, base) in [
        ("openai", sim.base_url()),
        ("anthropic", sim.root_url()),
        ("gemini", sim.root_url()),
        ("groq", sim.base_url()),
    ] {
        let access = ProviderAccess {
            api_key: Some(Secret::new("k")),
            base_url: Some(base),
        };
        worker.providers.insert(provider.into(), access);
    }
    let system = System::start(opts).await;
    (sim, system)
}

#[tokio::test]
async fn every_format_streams_over_the_websocket() {
    let (sim, system) = start().await;
    let (mut ws, _) = system.connect(&system.token(Uuid::now_v7())).await;
    for (model, provider, format) in MODELS {
        ws.send(json!({"type": "chat", "prompt": "hello", "model": model}))
            .await;
        let events = ws.until_complete().await;
        let in_use = events.iter().find(|e| e["type"] == "model_in_use").unwrap();
        assert_eq!(
            in_use["data"],
            json!({"provider": provider, "model": model})
        );
        assert_eq!(text(&events), "tok tok tok tok tok ", "{model}");
        assert_eq!(sim.requests().last().unwrap().format, format, "{model}");
    }
}

#[tokio::test]
async fn every_format_streams_over_the_openai_compatible_api() {
    let (sim, system) = start().await;
    let http = reqwest::Client::new();
    let token = system.token(Uuid::now_v7());
    for (model, _, format) in MODELS {
        let body = http
            .post(format!("{}/v1/chat/completions", system.http))
            .bearer_auth(&token)
            .json(&json!({"model": model, "stream": true,
                "messages": [{"role": "user", "content": "hello"}]}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let chunks: Vec<Value> = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, "tok tok tok tok tok ", "{model}");
        assert!(body.trim_end().ends_with("data: [DONE]"), "{model}");
        assert_eq!(sim.requests().last().unwrap().format, format, "{model}");
    }
}
