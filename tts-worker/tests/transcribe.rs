//! `stt.transcription.file` against real Redis, a real storage directory, and provider-sim
//! speaking OpenAI's, Deepgram's and Gemini's transcription APIs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::envelope::DomainAction;
use common::storage::Storage;
use common::testing::{Received, WAIT, read_until};
use provider_sim::{Behaviour, SimConfig, Simulator};
use serde_json::{Value, json};
use uuid::Uuid;

use support::{SAID, Worker, start};

/// Two seconds of 16 kHz silence as WAV.
fn wav() -> Vec<u8> {
    common::audio::wav(&[0; 64_000], 16_000)
}

fn action(tenant: Uuid, data: Value) -> DomainAction {
    let mut a = DomainAction::new(
        "stt.transcription.file",
        "test",
        tenant,
        Uuid::now_v7(),
        data,
    );
    a.user_id = Some(Uuid::now_v7());
    a
}

impl Worker {
    async fn run(&self, a: &DomainAction) -> Vec<Received> {
        self.bus.publish(a).await.unwrap();
        let key = self.bus.names().response_stream(a.session_id);
        read_until(&self.client, &key, "complete", Some(a.task_id), WAIT).await
    }

    async fn store(&self, tenant: Uuid, bytes: Vec<u8>) -> String {
        let storage = Storage::new(&self.settings.storage, &self.settings.core).unwrap();
        storage.prepare().await.unwrap();
        storage
            .put(tenant, "uploads", "wav", "audio/wav", Bytes::from(bytes))
            .await
            .unwrap()
            .key
    }
}

fn of<'a>(events: &'a [Received], kind: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e.kind == kind)
        .map(|e| &e.event["data"])
}

fn assert_transcribed(events: &[Received], provider: &str) -> Value {
    let t = of(events, "transcription").unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(t["text"], SAID, "{t}");
    assert_eq!(t["is_final"], true);
    assert_eq!(t["provider"], provider);
    let done = of(events, "text_completed").expect("text_completed");
    assert_eq!(done["content"], SAID);
    assert_eq!(events.last().unwrap().kind, "complete");
    t.clone()
}

#[tokio::test]
async fn each_provider_transcribes_a_stored_file() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let w = start(&[
        ("openai", sim.base_url()),
        ("deepgram", sim.root_url()),
        ("gemini", sim.root_url()),
    ])
    .await;
    let tenant = Uuid::now_v7();
    let key = w.store(tenant, wav()).await;
    let t = assert_transcribed(
        &w.run(&action(tenant, json!({"key": key, "provider": "openai"})))
            .await,
        "openai",
    );
    // whisper-1 answers with timed segments.
    assert!(
        (t["duration_s"].as_f64().unwrap() - 2.0).abs() < 0.01,
        "{t}"
    );
    assert!(
        t["segments"].as_array().is_some_and(|s| !s.is_empty()),
        "{t}"
    );
    let t = assert_transcribed(
        &w.run(&action(
            tenant,
            json!({"key": key, "provider": "deepgram", "language": "en"}),
        ))
        .await,
        "deepgram",
    );
    assert_eq!(t["model"], "nova-3");
    assert_transcribed(
        &w.run(&action(tenant, json!({"key": key, "provider": "gemini"})))
            .await,
        "gemini",
    );
    // The default is the first configured: Deepgram; audio may travel in the action itself.
    let inline = json!({"audio_base64": STANDARD.encode(wav())});
    assert_transcribed(&w.run(&action(tenant, inline)).await, "deepgram");
    let request = sim
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/audio/transcriptions")
        .unwrap();
    assert_eq!(request.authorization.as_deref(), Some("Bearer test-key"));
}

#[tokio::test]
async fn bad_requests_are_clear_errors() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let w = start(&[("openai", sim.base_url())]).await;
    let tenant = Uuid::now_v7();
    let key = w.store(tenant, wav()).await;
    let cases = [
        // Another tenant's file is nobody's.
        (action(Uuid::now_v7(), json!({"key": key})), "not_found"),
        (
            action(tenant, json!({"key": key, "provider": "deepgram"})),
            "provider_not_configured",
        ),
        (
            action(tenant, json!({"key": key, "provider": "acme"})),
            "unknown_provider",
        ),
        (
            action(
                tenant,
                json!({"audio_base64": STANDARD.encode(b"not audio at all")}),
            ),
            "unsupported_format",
        ),
        (
            action(
                tenant,
                json!({"audio_base64": STANDARD.encode(b"RIFF....WAVEjunk"), "format": "wav"}),
            ),
            "upstream_refused",
        ),
    ];
    for (a, code) in cases {
        let events = w.run(&a).await;
        let error = of(&events, "error").unwrap_or_else(|| panic!("{code}: {events:#?}"));
        assert_eq!(error["code"], code, "{error}");
        assert_eq!(events.last().unwrap().kind, "complete");
        assert!(of(&events, "transcription").is_none());
    }
    // Invalid data: a validation error before any provider.
    let events = w.run(&action(tenant, json!({}))).await;
    assert_eq!(of(&events, "error").unwrap()["stage"], "validation");
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 3,
    });
    let events = w.run(&action(tenant, json!({"key": key}))).await;
    let error = of(&events, "error").unwrap();
    assert_eq!(error["code"], "rate_limited");
    assert_eq!(error["retry_after_secs"], 3);
}
