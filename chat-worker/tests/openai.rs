//! The OpenAI provider against the simulator: streaming, usage, and every failure mode becoming an
//! `error` event (stage `provider`) followed by the completion events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chat_worker::Settings;
use chat_worker::config::ProviderAccess;
use common::envelope::DomainAction;
use common::settings::Secret;
use common::testing::{Received, isolated_settings, read_until};
use common::{Bus, worker::WorkerSettings};
use provider_sim::{Behaviour, SimConfig, Simulator};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const KEY: &str = "sk-test-do-not-leak";

struct Setup {
    sim: Simulator,
    bus: Bus,
    client: redis::Client,
    shutdown: CancellationToken,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn setup() -> Setup {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let core = isolated_settings();
    let settings = Settings {
        core: core.clone(),
        worker: WorkerSettings::default(),
        provider_idle_timeout_secs: 10,
        provider_retries: 0,
        ..Settings::default()
    };
    let mut settings = settings;
    settings.providers.insert(
        "openai".into(),
        ProviderAccess {
            api_key: Some(Secret::new(KEY)),
            base_url: Some(sim.base_url()),
        },
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(chat_worker::run(settings, shutdown.clone()));
    Setup {
        sim,
        bus: Bus::connect(&core).await.unwrap(),
        client: redis::Client::open(core.redis_url.as_str()).unwrap(),
        shutdown,
    }
}

impl Setup {
    async fn ask(&self, prompt: &str) -> Vec<Received> {
        let action = DomainAction::new(
            "chat.completion.generate",
            "test",
            Uuid::now_v7(),
            Uuid::now_v7(),
            json!({"prompt": prompt, "settings": {"system_prompt": "be brief"}}),
        );
        self.bus.publish(&action).await.unwrap();
        let key = self.bus.names().response_stream(action.session_id);
        let events = read_until(
            &self.client,
            &key,
            "complete",
            Some(action.task_id),
            Duration::from_secs(20),
        )
        .await;
        let all =
            serde_json::to_string(&events.iter().map(|e| &e.event).collect::<Vec<_>>()).unwrap();
        assert!(!all.contains(KEY), "the API key never reaches a client");
        events
    }
}

fn kinds(events: &[Received]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn find<'a>(events: &'a [Received], kind: &str) -> &'a serde_json::Value {
    &events
        .iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
        .event["data"]
}

#[tokio::test]
async fn streams_text_with_usage_from_the_provider() {
    let s = setup().await;
    let events = s.ask("one two three").await;
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
    let request = &s.sim.requests()[0];
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
    let s = setup().await;
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
        s.sim.push_script(behaviour.clone());
        let events = s.ask("fail please").await;
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
