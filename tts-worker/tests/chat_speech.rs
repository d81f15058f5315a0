//! A chat that speaks: the chat-worker duplicates its text into the speech half, the tts-worker
//! speaks it while it is written (ElevenLabs' simulator), and the task ends with one `complete`
//! whatever happens to either half.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chat_worker::config::DummySettings;
use common::Bus;
use common::envelope::DomainAction;
use common::settings::{CoreSettings, Secret};
use common::testing::{Received, WAIT, fast_worker_settings, isolated_settings, read_until};
use provider_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tts_worker::config::ProviderAccess;
use uuid::Uuid;

struct System {
    core: CoreSettings,
    bus: Bus,
    client: redis::Client,
    stops: Vec<CancellationToken>,
}

impl Drop for System {
    fn drop(&mut self) {
        self.stops.iter().for_each(CancellationToken::cancel);
    }
}

fn tts_settings(core: &CoreSettings, sim: &Simulator) -> tts_worker::Settings {
    let mut s = tts_worker::Settings {
        core: core.clone(),
        worker: fast_worker_settings(),
        ..tts_worker::Settings::default()
    };
    s.storage.dir = std::env::temp_dir()
        .join(format!("chat-speech-{}", Uuid::now_v7().simple()))
        .to_string_lossy()
        .into_owned();
    s.providers.insert(
        "elevenlabs".into(),
        ProviderAccess {
            api_key: Secret::new("xi-test"),
            base_url: Some(sim.root_url()),
        },
    );
    s
}

/// A chat-worker whose offline provider writes `tokens` words, 15 ms apart.
async fn system(tokens: usize, tts_start_timeout_secs: u64) -> System {
    let core = isolated_settings();
    let chat = chat_worker::Settings {
        core: core.clone(),
        worker: fast_worker_settings(),
        dummy: DummySettings {
            tokens,
            first_token_delay_ms: 0,
            token_interval_ms: 15,
        },
        tts_start_timeout_secs,
        tts_idle_timeout_secs: 10,
        ..chat_worker::Settings::default()
    };
    let stop = CancellationToken::new();
    tokio::spawn(chat_worker::run(chat, stop.clone()));
    System {
        bus: Bus::connect(&core).await.unwrap(),
        client: redis::Client::open(core.redis_url.expose()).unwrap(),
        core,
        stops: vec![stop],
    }
}

impl System {
    fn start_tts(&mut self, sim: &Simulator) {
        let stop = CancellationToken::new();
        tokio::spawn(tts_worker::run(tts_settings(&self.core, sim), stop.clone()));
        self.stops.push(stop);
    }

    async fn chat(&self, tts: Value) -> DomainAction {
        let mut a = DomainAction::new(
            "chat.completion.generate",
            "test",
            Uuid::now_v7(),
            Uuid::now_v7(),
            json!({"prompt": "speak to me", "store": false, "settings": {"tts": tts}}),
        );
        a.user_id = Some(Uuid::now_v7());
        self.bus.publish(&a).await.unwrap();
        a
    }

    async fn events(&self, a: &DomainAction, until: &str) -> Vec<Received> {
        let key = self.bus.names().response_stream(a.session_id);
        read_until(&self.client, &key, until, Some(a.task_id), WAIT).await
    }
}

fn kinds(events: &[Received]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn position(events: &[Received], kind: &str) -> Option<usize> {
    events.iter().position(|e| e.kind == kind)
}

fn text(events: &[Received]) -> String {
    events
        .iter()
        .filter(|e| e.kind == "text_chunk")
        .map(|e| e.event["data"]["content"].as_str().unwrap_or_default())
        .collect()
}

fn assert_one_complete(events: &[Received]) {
    let k = kinds(events);
    assert_eq!(k.iter().filter(|k| **k == "complete").count(), 1, "{k:?}");
    assert_eq!(k.last(), Some(&"complete"), "{k:?}");
}

const SPEECH: fn() -> Value =
    || json!({"enabled": true, "provider": "elevenlabs", "format": "pcm", "chunk_schedule": [50]});

#[tokio::test]
async fn the_answer_is_spoken_while_it_is_written() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut s = system(60, 15).await;
    s.start_tts(&sim);
    let a = s.chat(SPEECH()).await;
    let events = s.events(&a, "complete").await;
    assert_one_complete(&events);
    let first_audio = position(&events, "audio_chunk").expect("audio");
    let text_done = position(&events, "text_completed").expect("text_completed");
    let tts_done = position(&events, "tts_completed").expect("tts_completed");
    assert!(first_audio < text_done, "{:?}", kinds(&events));
    assert!(text_done < tts_done || tts_done < events.len() - 1);
    assert!(!kinds(&events).contains(&"tts_not_requested"));
    let started = events
        .iter()
        .find(|e| e.kind == "tts_started")
        .expect("tts_started");
    assert_eq!(started.event["task_id"], json!(a.task_id));
    // Every chunk of text went to the provider once, in order.
    let spoken = sim
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/stream-input"))
        .expect("a speech stream")
        .texts
        .concat();
    assert_eq!(spoken, text(&events));
    let done = &events[tts_done].event["data"];
    assert_eq!(done["characters"], json!(spoken.chars().count()));
    assert!(done["audio_url"].is_string(), "{done}");
}

#[tokio::test]
async fn a_chat_without_speech_says_so() {
    let mut s = system(3, 15).await;
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    s.start_tts(&sim);
    let a = s.chat(json!({"enabled": false})).await;
    let events = s.events(&a, "complete").await;
    assert!(kinds(&events).contains(&"tts_not_requested"));
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn cancel_stops_both_halves_and_closes_the_speech_stream() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut s = system(400, 15).await;
    s.start_tts(&sim);
    let a = s.chat(SPEECH()).await;
    s.events(&a, "audio_chunk").await;
    s.bus.request_cancel(a.task_id).await.unwrap();
    let events = s.events(&a, "complete").await;
    assert_one_complete(&events);
    assert!(kinds(&events).contains(&"cancelled"));
    assert!(
        sim.wait_for_client_close(WAIT).await.is_some(),
        "the provider's speech stream stayed open"
    );
}

#[tokio::test]
async fn with_no_speech_worker_the_text_still_completes_once() {
    let mut s = system(5, 1).await;
    // No tts-worker: the speech half is given up after the start timeout.
    let a = s.chat(SPEECH()).await;
    let events = s.events(&a, "complete").await;
    assert_one_complete(&events);
    assert!(kinds(&events).contains(&"text_completed"));
    let error = events.iter().find(|e| e.kind == "error").expect("an error");
    assert_eq!(error.event["data"]["stage"], "tts");
    assert_eq!(error.event["data"]["code"], "tts_unavailable");
    s.stops.clear();
}

/// A tts-worker as its own process, to be killed.
fn spawn_tts_process(core: &CoreSettings, sim: &Simulator) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tts-worker"))
        .env("REDIS_URL", core.redis_url.expose())
        .env("STREAM_PREFIX", &core.stream_prefix)
        .env("APP_ENV", &core.app_env)
        .env("JWT_SECRET", "test-secret")
        .env("ELEVENLABS_API_KEY", "xi-test")
        .env("ELEVENLABS_BASE_URL", sim.root_url())
        .env(
            "STORAGE__DIR",
            std::env::temp_dir().join(format!("tts-kill-{}", Uuid::now_v7().simple())),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the tts-worker binary")
}

#[tokio::test]
async fn a_killed_speech_worker_is_replaced_and_the_task_completes_once() {
    // Slow speech: every generation takes 300 ms, so the worker dies mid-speech.
    let sim = Simulator::start(SimConfig {
        first_token_delay: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut s = system(80, 15).await;
    let mut child = spawn_tts_process(&s.core, &sim);
    let a = s.chat(SPEECH()).await;
    s.events(&a, "audio_chunk").await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // A replacement reclaims the speech action once it has been idle long enough.
    s.start_tts(&sim);
    let events = s.events(&a, "complete").await;
    assert_one_complete(&events);
    assert!(
        kinds(&events).contains(&"tts_completed"),
        "{:?}",
        kinds(&events)
    );
    // The numbering the client sees goes on without repeats.
    let sequences: Vec<u64> = events
        .iter()
        .filter(|e| e.kind == "audio_chunk")
        .map(|e| e.event["data"]["sequence"].as_u64().unwrap())
        .collect();
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "{sequences:?}"
    );
    // It was spoken twice: by the killed worker, then again by its replacement.
    let streams = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/stream-input"))
        .count();
    assert_eq!(streams, 2);
}
