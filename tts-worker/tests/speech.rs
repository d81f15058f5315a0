//! The tts-worker against real Redis, a real local storage directory, the real espeak-ng, and
//! provider-sim speaking OpenAI's, ElevenLabs' and Gemini's wire formats.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::Bus;
use common::envelope::DomainAction;
use common::settings::Secret;
use common::storage::Storage;
use common::testing::{Received, WAIT, fast_worker_settings, isolated_settings, read_until};
use provider_sim::{Behaviour, SimConfig, Simulator};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tts_worker::Settings;
use tts_worker::config::ProviderAccess;
use uuid::Uuid;

struct Worker {
    settings: Settings,
    bus: Bus,
    client: redis::Client,
    shutdown: CancellationToken,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn settings() -> Settings {
    let core = isolated_settings();
    let mut s = Settings {
        core,
        worker: fast_worker_settings(),
        ..Settings::default()
    };
    s.storage.dir = std::env::temp_dir()
        .join(format!("tts-test-{}", Uuid::now_v7().simple()))
        .to_string_lossy()
        .into_owned();
    s
}

fn with(mut s: Settings, provider: &str, base_url: String) -> Settings {
    s.providers.insert(
        provider.into(),
        ProviderAccess {
            api_key: Secret::new("sk-test-key"),
            base_url: Some(base_url),
        },
    );
    s
}

async fn start(settings: Settings) -> Worker {
    let shutdown = CancellationToken::new();
    tokio::spawn(tts_worker::run(settings.clone(), shutdown.clone()));
    Worker {
        bus: Bus::connect(&settings.core).await.unwrap(),
        client: redis::Client::open(settings.core.redis_url.expose()).unwrap(),
        settings,
        shutdown,
    }
}

fn action(action_type: &str, data: Value) -> DomainAction {
    let mut a = DomainAction::new(action_type, "test", Uuid::now_v7(), Uuid::now_v7(), data);
    a.user_id = Some(Uuid::now_v7());
    a
}

impl Worker {
    async fn run(&self, action: &DomainAction) -> Vec<Received> {
        self.bus.publish(action).await.unwrap();
        self.events(action, "complete").await
    }

    async fn events(&self, action: &DomainAction, until: &str) -> Vec<Received> {
        let key = self.bus.names().response_stream(action.session_id);
        read_until(&self.client, &key, until, Some(action.task_id), WAIT).await
    }

    async fn stored(&self, action: &DomainAction, key: &str) -> Vec<u8> {
        let storage = Storage::new(&self.settings.storage, &self.settings.core).unwrap();
        storage
            .get(action.tenant_id, key)
            .await
            .unwrap()
            .bytes
            .to_vec()
    }
}

fn kinds(events: &[Received]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn of<'a>(events: &'a [Received], kind: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e.kind == kind)
        .map(|e| &e.event["data"])
}

/// The audio of the `audio_chunk`s, in order, checking their numbering.
fn audio(events: &[Received]) -> Vec<u8> {
    let chunks: Vec<&Value> = events
        .iter()
        .filter(|e| e.kind == "audio_chunk")
        .map(|e| &e.event["data"])
        .collect();
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["sequence"], json!(i), "{c}");
    }
    chunks
        .iter()
        .flat_map(|c| STANDARD.decode(c["data"].as_str().unwrap()).unwrap())
        .collect()
}

fn assert_ends_once(events: &[Received]) {
    let k = kinds(events);
    assert_eq!(k.iter().filter(|k| **k == "complete").count(), 1, "{k:?}");
    assert_eq!(k.last(), Some(&"complete"), "{k:?}");
}

fn espeak_missing() -> bool {
    let missing = std::process::Command::new("espeak-ng")
        .arg("--version")
        .output()
        .is_err();
    assert!(
        !(missing && std::env::var_os("CI").is_some()),
        "espeak-ng is not installed (scripts/test installs it)"
    );
    missing
}

#[tokio::test]
async fn espeak_speaks_offline_and_the_clip_is_stored() {
    if espeak_missing() {
        return;
    }
    let w = start(settings()).await;
    let a = action(
        "tts.speech.synthesize",
        json!({"text": "Please remind me to water the tomatoes on Tuesday morning."}),
    );
    let events = w.run(&a).await;
    assert_ends_once(&events);
    let started = of(&events, "tts_started").expect("tts_started");
    assert_eq!(started["provider"], "espeak");
    assert_eq!(started["format"], "wav");
    let done = of(&events, "tts_completed").expect("tts_completed");
    let streamed = audio(&events);
    assert_eq!(&streamed[..4], b"RIFF");
    let duration = done["duration_s"].as_f64().unwrap();
    assert!((1.5..10.0).contains(&duration), "{done}");
    assert_eq!(done["bytes"], json!(streamed.len()));
    assert_eq!(done["characters"], 58);
    // The stored clip is the streamed one with its real sizes in the header.
    let key = done["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("{}/tts/", a.tenant_id)), "{key}");
    assert!(key.ends_with(".wav"));
    let stored = w.stored(&a, key).await;
    assert_eq!(stored.len(), streamed.len());
    assert_eq!(&stored[44..], &streamed[44..]);
    let data_len = u32::from_le_bytes(stored[40..44].try_into().unwrap()) as usize;
    assert_eq!(data_len, stored.len() - 44);
    assert!(done["audio_url"].as_str().unwrap().contains(key));
    // Another tenant cannot read it.
    let storage = Storage::new(&w.settings.storage, &w.settings.core).unwrap();
    assert!(storage.get(Uuid::now_v7(), key).await.is_err());

    // `save: false`: audio, no URL.
    let a = action(
        "tts.speech.synthesize",
        json!({"text": "Not kept.", "save": false, "format": "pcm"}),
    );
    let events = w.run(&a).await;
    let done = of(&events, "tts_completed").expect("tts_completed");
    assert_eq!(done["audio_url"], Value::Null);
    assert_ne!(&audio(&events)[..4], b"RIFF");
}

#[tokio::test]
async fn openai_audio_is_streamed_and_its_duration_known() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let w = start(with(settings(), "openai", sim.base_url())).await;
    let a = action(
        "tts.speech.synthesize",
        json!({"text": "Hello from the simulator.", "voice": "nova"}),
    );
    let events = w.run(&a).await;
    assert_ends_once(&events);
    // A configured key makes it the default provider.
    assert_eq!(of(&events, "tts_started").unwrap()["provider"], "openai");
    let done = of(&events, "tts_completed").expect("tts_completed");
    assert_eq!(done["format"], "mp3");
    // 25 characters × 60 ms in the simulator.
    let d = done["duration_s"].as_f64().unwrap();
    assert!((1.3..1.7).contains(&d), "{d}");
    let stored = w.stored(&a, done["key"].as_str().unwrap()).await;
    assert_eq!(stored, audio(&events));
    let request = &sim.requests()[0];
    assert_eq!(request.body["voice"], "nova");
    assert_eq!(request.texts, ["Hello from the simulator."]);
    assert!(
        events.iter().filter(|e| e.kind == "audio_chunk").count() > 1,
        "{:?}",
        kinds(&events)
    );
}

#[tokio::test]
async fn a_text_longer_than_the_provider_takes_is_spoken_in_pieces() {
    let sim = Simulator::start(SimConfig {
        speech_per_char: Duration::from_millis(1),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let w = start(with(settings(), "openai", sim.base_url())).await;
    let sentence = "This sentence is spoken again and again. ";
    let text = sentence.repeat(200); // 8,200 characters: three requests of at most 4,096
    let a = action(
        "tts.speech.synthesize",
        json!({"text": text, "format": "wav"}),
    );
    let events = w.run(&a).await;
    let done = of(&events, "tts_completed").expect("tts_completed");
    let requests = sim.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.texts[0].chars().count() <= 4096));
    assert_eq!(
        requests
            .iter()
            .map(|r| r.texts[0].clone())
            .collect::<Vec<_>>()
            .join(" "),
        text.trim()
    );
    // One WAV: one header, the pieces' samples after it.
    let stored = w.stored(&a, done["key"].as_str().unwrap()).await;
    assert_eq!(&stored[..4], b"RIFF");
    assert_eq!(stored.windows(4).filter(|w| *w == b"RIFF").count(), 1);
    let d = done["duration_s"].as_f64().unwrap();
    assert!((8.0..8.4).contains(&d), "{d}");
}

#[tokio::test]
async fn gemini_pcm_comes_back_as_wav() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let w = start(with(settings(), "gemini", sim.root_url())).await;
    let a = action(
        "tts.speech.synthesize",
        json!({"text": "Gemini speaks.", "provider": "gemini", "voice": "Puck"}),
    );
    let events = w.run(&a).await;
    let done = of(&events, "tts_completed").expect("tts_completed");
    let clip = audio(&events);
    assert_eq!(&clip[..4], b"RIFF");
    let d = done["duration_s"].as_f64().unwrap();
    assert!((0.8..0.9).contains(&d), "{d}"); // 14 characters × 60 ms
}

#[tokio::test]
async fn bad_requests_and_provider_failures_are_clear_errors() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let w = start(with(settings(), "openai", sim.base_url())).await;
    let cases = [
        (
            json!({"text": "hi", "provider": "acme"}),
            "unknown_provider",
        ),
        (
            json!({"text": "hi", "provider": "elevenlabs"}),
            "provider_not_configured",
        ),
        (
            json!({"text": "hi", "voice": "robot"}),
            "unsupported_option",
        ),
        (json!({"text": "hi", "format": "ogg"}), "unsupported_option"),
        (
            json!({"text": "hi", "provider": "espeak", "format": "mp3"}),
            "unsupported_option",
        ),
        // A name espeak-ng does not have (it would crash on it, not refuse it).
        (
            json!({"text": "hi", "provider": "espeak", "voice": "alloy"}),
            "unsupported_option",
        ),
    ];
    for (data, code) in cases {
        let events = w.run(&action("tts.speech.synthesize", data.clone())).await;
        assert_ends_once(&events);
        let error = of(&events, "error").unwrap_or_else(|| panic!("{data}: {:?}", kinds(&events)));
        assert_eq!(error["stage"], "tts", "{data}");
        assert_eq!(error["code"], code, "{data}");
        // The speech half ended with its error: nothing says it was not asked for.
        assert!(!kinds(&events).contains(&"tts_not_requested"), "{data}");
    }
    // Invalid data never reaches a provider: a validation error.
    let events = w
        .run(&action("tts.speech.synthesize", json!({"text": ""})))
        .await;
    assert_eq!(of(&events, "error").unwrap()["stage"], "validation");

    sim.push_script(Behaviour::Refused {
        status: 401,
        message: "Incorrect API key provided: sk-test-key".into(),
    });
    let events = w
        .run(&action("tts.speech.synthesize", json!({"text": "hi"})))
        .await;
    let error = of(&events, "error").unwrap();
    assert_eq!(error["code"], "upstream_misconfigured");
    assert!(!error.to_string().contains("sk-test"), "{error}");

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 7,
    });
    let events = w
        .run(&action("tts.speech.synthesize", json!({"text": "hi"})))
        .await;
    let error = of(&events, "error").unwrap();
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert_eq!(error["retry_after_secs"], 7);

    sim.push_script(Behaviour::DropMidStream { after_chunks: 2 });
    let events = w
        .run(&action(
            "tts.speech.synthesize",
            json!({"text": "a longer text to cut"}),
        ))
        .await;
    assert_ends_once(&events);
    assert_eq!(of(&events, "error").unwrap()["code"], "upstream_connection");
    assert!(kinds(&events).contains(&"audio_chunk"));
}

/// Writes `text` to a task's speech input, as the chat-worker does.
async fn write_text(w: &Worker, a: &DomainAction, text: &str) {
    let key = w.bus.names().speech_input_stream(a.session_id, a.task_id);
    let _: String = w
        .bus
        .conn()
        .xadd(&key, "*", &[("text", text)])
        .await
        .unwrap();
}

async fn end_text(w: &Worker, a: &DomainAction) {
    let key = w.bus.names().speech_input_stream(a.session_id, a.task_id);
    let _: String = w.bus.conn().xadd(&key, "*", &[("end", "1")]).await.unwrap();
}

#[tokio::test]
async fn elevenlabs_speaks_a_text_while_it_is_written() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let w = start(with(settings(), "elevenlabs", sim.root_url())).await;
    let a = action(
        "tts.speech.stream",
        json!({"format": "pcm", "chunk_schedule": [50, 120]}),
    );
    w.bus.publish(&a).await.unwrap();
    write_text(
        &w,
        &a,
        "The first sentence is long enough to pass fifty characters. ",
    )
    .await;
    // Audio arrives while the text is still open.
    let early = w.events(&a, "audio_chunk").await;
    assert_eq!(of(&early, "tts_started").unwrap()["input_streaming"], true);
    assert!(!kinds(&early).contains(&"tts_completed"));
    write_text(&w, &a, "And a second one. ").await;
    end_text(&w, &a).await;
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    let done = of(&events, "tts_completed").expect("tts_completed");
    assert_eq!(done["characters"], 78);
    let record = sim
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/stream-input"))
        .expect("a websocket session");
    assert_eq!(
        record.texts.concat(),
        "The first sentence is long enough to pass fifty characters. And a second one. "
    );
    assert_eq!(
        record.body["generation_config"]["chunk_length_schedule"],
        json!([50, 120])
    );
}

#[tokio::test]
async fn a_cancel_closes_the_providers_stream() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let w = start(with(settings(), "elevenlabs", sim.root_url())).await;
    let a = action("tts.speech.stream", json!({"chunk_schedule": [50]}));
    w.bus.publish(&a).await.unwrap();
    write_text(&w, &a, &"word ".repeat(12)).await;
    w.events(&a, "audio_chunk").await;
    w.bus.request_cancel(a.task_id).await.unwrap();
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    assert!(kinds(&events).contains(&"cancelled"));
    let closed = sim.wait_for_client_close(WAIT).await;
    assert!(closed.is_some(), "the upstream websocket stayed open");
}
