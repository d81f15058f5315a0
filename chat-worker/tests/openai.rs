//! The OpenAI provider against the simulator: streaming, usage, and every failure mode becoming an
//! `error` event (stage `provider`) followed by the completion events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use common::testing::{Received, isolated_settings};
use provider_sim::{Behaviour, SimConfig, Simulator};
use serde_json::json;
use support::{Harness, first, kinds, point};

const KEY: &str = "sk-test-do-not-leak";

async fn setup() -> (Simulator, Harness) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut settings = support::settings(&isolated_settings());
    point(&mut settings, "openai", sim.base_url(), KEY);
    (sim, Harness::start(settings).await)
}

/// Asks with a system prompt and checks the key never reaches the client.
async fn ask(h: &Harness, prompt: &str) -> Vec<Received> {
    let events = h
        .ask(json!({"prompt": prompt, "settings": {"system_prompt": "be brief"}}))
        .await;
    let all = serde_json::to_string(&events.iter().map(|e| &e.event).collect::<Vec<_>>()).unwrap();
    assert!(!all.contains(KEY), "the API key never reaches a client");
    events
}

fn find<'a>(events: &'a [Received], kind: &str) -> &'a serde_json::Value {
    first(events, kind).unwrap_or_else(|| panic!("no {kind}"))
}

#[tokio::test]
async fn streams_text_with_usage_from_the_provider() {
    let (sim, h) = setup().await;
    let events = ask(&h, "one two three").await;
    assert_eq!(
        find(&events, "model_in_use"),
        &json!({"provider": "openai", "model": "gpt-4o-mini"})
    );
    let chunks: Vec<_> = events.iter().filter(|e| e.kind == "text_chunk").collect();
    assert_eq!(chunks.len(), 5);
    let done = find(&events, "text_completed");
    assert_eq!(done["content"], "tok tok tok tok tok ");
    assert_eq!(done["finish_reason"], "stop");
    assert_eq!(done["usage"]["output_tokens"], 5);
    assert!(done["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let request = &sim.requests()[0];
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(request.body["stream"], true);
    assert_eq!(request.body["stream_options"]["include_usage"], true);
    assert_eq!(
        request.body["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(
        request.body["messages"][1],
        json!({"role": "user", "content": "one two three"})
    );
}

#[tokio::test]
async fn provider_failures_become_error_events_then_completion() {
    let (sim, h) = setup().await;
    let cases = [
        (Behaviour::ServerError, "upstream_error", ""),
        (
            Behaviour::RateLimited {
                retry_after_secs: 1,
            },
            "rate_limited",
            "",
        ),
        (
            Behaviour::DropMidStream { after_chunks: 2 },
            "upstream_connection",
            "tok tok ",
        ),
        (
            Behaviour::MalformedLine { after_chunks: 2 },
            "upstream_protocol",
            "tok tok ",
        ),
    ];
    for (behaviour, code, partial) in cases {
        sim.push_script(behaviour.clone());
        let events = ask(&h, "fail please").await;
        let k = kinds(&events);
        let at = k
            .iter()
            .position(|k| *k == "error")
            .unwrap_or_else(|| panic!("{behaviour:?}: {k:?}"));
        assert_eq!(
            k[at + 1..],
            [
                "text_completed",
                "db_operation_executed",
                "tts_not_requested",
                "complete"
            ],
            "{behaviour:?}"
        );
        let error = &events[at].event["data"];
        assert_eq!(
            (error["stage"].as_str(), error["code"].as_str()),
            (Some("provider"), Some(code))
        );
        let done = &events[at + 1].event["data"];
        assert_eq!(
            done["content"], partial,
            "{behaviour:?}: what was streamed is kept"
        );
        assert_eq!(done["finish_reason"], "error");
    }
}

#[tokio::test]
async fn a_provider_refusing_the_deployment_shows_the_user_a_generic_error() {
    let (sim, h) = setup().await;
    for status in [401, 403, 404] {
        sim.push_script(Behaviour::Refused {
            status,
            message: "Incorrect API key provided: sk-test. You can find your API key at \
                https://platform.openai.com/account/api-keys."
                .to_owned(),
        });
        let events = ask(&h, "hello").await;
        let error = find(&events, "error");
        let message = error["message"].as_str().unwrap();
        assert!(!message.contains("sk-"), "{status}: {message}");
        assert!(
            !message.contains("Incorrect API key"),
            "{status}: {message}"
        );
        assert!(message.contains(&format!("HTTP {status}")), "{message}");
        assert_eq!(error["stage"], "provider");
        assert_eq!(error["code"], "upstream_misconfigured");
        assert_eq!(error["retryable"], false);
        assert_eq!(find(&events, "text_completed")["finish_reason"], "error");
    }
    // Another 4xx is the request's problem: its explanation reaches the user, without the key.
    sim.push_script(Behaviour::Refused {
        status: 400,
        message: format!("Invalid 'max_tokens' for key {KEY}"),
    });
    let events = ask(&h, "hello").await;
    let error = find(&events, "error");
    assert_eq!(error["code"], "upstream_refused");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Invalid 'max_tokens' for key [api key]"),
        "{error}"
    );
}
