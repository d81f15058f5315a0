//! Voice turns: a chat whose `audio`, recorded or live, is transcribed by a real stt service
//! running in-process (the tts-worker's `stt`, on provider-sim's Deepgram) and then answered, and
//! audio given to Gemini (provider-sim) as part of the prompt (`audio.direct`), recorded or live.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::envelope::DomainAction;
use common::live_audio;
use common::settings::{CoreSettings, Secret};
use common::storage::Storage;
use common::testing::{Received, fast_worker_settings, isolated_settings};
use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};
use sqlx::Row;
use support::{Harness, WAIT, first, joined, kinds, point, registry_file};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What provider-sim's recogniser hears in any audio.
const SAID: &str = "The quick brown fox jumps over the lazy dog.";

const REGISTRY: &str = r#"
default = "oa"
[providers.openai]
kind = "openai"
base_url = "http://unused"
api_key_env = "OPENAI_API_KEY"
[providers.gemini]
kind = "gemini"
base_url = "http://unused"
api_key_env = "GEMINI_API_KEY"
[models.oa]
provider = "openai"
vision = true
[models.gem]
provider = "gemini"
upstream = "gemini-test"
audio_input = true
"#;

/// A chat-worker, a provider simulator, and, when asked, an stt service on the same bus.
struct Voice {
    sim: Simulator,
    h: Harness,
    core: CoreSettings,
    storage_dir: String,
    stt: Option<CancellationToken>,
}

impl Drop for Voice {
    fn drop(&mut self) {
        if let Some(stop) = &self.stt {
            stop.cancel();
        }
    }
}

/// How a test sets its system up.
struct Options {
    sim: SimConfig,
    stt: bool,
    /// The chat-worker answers with Gemini and OpenAI on the simulator (else the offline dummy,
    /// which echoes the prompt).
    providers: bool,
    stt_start_timeout_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sim: SimConfig::default(),
            stt: true,
            providers: false,
            stt_start_timeout_secs: 10,
        }
    }
}

async fn voice(options: Options) -> Voice {
    let sim = Simulator::start(options.sim).await.unwrap();
    let core = isolated_settings();
    let storage_dir = std::env::temp_dir()
        .join(format!("voice-{}", Uuid::now_v7().simple()))
        .to_string_lossy()
        .into_owned();
    let mut settings = support::settings(&core);
    settings.storage.dir.clone_from(&storage_dir);
    settings.stt_start_timeout_secs = options.stt_start_timeout_secs;
    settings.live_audio_idle_timeout_secs = 5;
    if options.providers {
        settings.models_file = Some(registry_file(REGISTRY));
        point(&mut settings, "openai", sim.base_url(), "key-openai");
        point(&mut settings, "gemini", sim.root_url(), "key-gemini");
    }
    let stt = options.stt.then(|| start_stt(&core, &sim, &storage_dir));
    Voice {
        h: Harness::start(settings).await,
        sim,
        core,
        storage_dir,
        stt,
    }
}

/// The speech worker (services `tts` and `stt`) with Deepgram on the simulator; it speaks with
/// the offline espeak-ng.
fn start_stt(core: &CoreSettings, sim: &Simulator, storage_dir: &str) -> CancellationToken {
    let mut settings = tts_worker::Settings {
        core: core.clone(),
        worker: fast_worker_settings(),
        ..tts_worker::Settings::default()
    };
    settings.storage.dir = storage_dir.to_owned();
    settings.providers.insert(
        "deepgram".into(),
        tts_worker::config::ProviderAccess {
            api_key: Secret::new("dg-test"),
            base_url: Some(sim.root_url()),
        },
    );
    let stop = CancellationToken::new();
    tokio::spawn(tts_worker::run(settings, stop.clone()));
    stop
}

/// `millis` of 16 kHz 16-bit mono PCM (a quiet ramp, not silence: it is audio all the same).
fn pcm(millis: usize) -> Vec<u8> {
    (0..millis * 16)
        .flat_map(|i| ((i % 64) as i16 * 8).to_le_bytes())
        .collect()
}

/// `millis` of a loud 16 kHz square wave: speech as far as a recogniser cares.
fn tone(millis: usize) -> Vec<u8> {
    (0..millis * 16)
        .flat_map(|i| (if i % 64 < 32 { 10_000i16 } else { -10_000 }).to_le_bytes())
        .collect()
}

/// `millis` of audio as a 16 kHz WAV file.
fn wav(millis: usize) -> Vec<u8> {
    common::audio::wav(&pcm(millis), 16_000)
}

impl Voice {
    /// Stores a recording for `tenant` where both workers read files; returns its key.
    async fn store(&self, tenant: Uuid, bytes: Vec<u8>) -> String {
        let mut settings = common::storage::StorageSettings::default();
        settings.dir.clone_from(&self.storage_dir);
        let storage = Storage::new(&settings, &self.core).unwrap();
        storage.prepare().await.unwrap();
        storage
            .put(tenant, "uploads", "wav", "audio/wav", Bytes::from(bytes))
            .await
            .unwrap()
            .key
    }

    async fn publish(&self, tenant: Uuid, session: Uuid, data: Value) -> DomainAction {
        self.h
            .publish("chat.completion.generate", tenant, session, data)
            .await
    }

    /// The user's and the assistant's stored messages of a session: (role, content, parts).
    async fn history(&self, session: Uuid) -> Vec<(String, String, Option<Value>)> {
        sqlx::query(
            "SELECT role, content, parts FROM chat_messages WHERE session_id = $1
             ORDER BY created_at, role DESC",
        )
        .bind(session)
        .fetch_all(&self.h.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get("role"), r.get("content"), r.get("parts")))
        .collect()
    }
}

fn position(events: &[Received], kind: &str) -> usize {
    events
        .iter()
        .position(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", kinds(events)))
}

fn assert_one_complete_last(events: &[Received]) {
    assert_eq!(
        kinds(events).iter().filter(|k| **k == "complete").count(),
        1,
        "{:?}",
        kinds(events)
    );
    assert_eq!(events.last().unwrap().kind, "complete");
}

/// The task's `error` events' data.
fn errors(events: &[Received]) -> Vec<&Value> {
    support::of_kind(events, "error")
}

#[tokio::test]
async fn a_recorded_voice_turn_is_transcribed_then_answered_and_stored_as_its_transcript() {
    let v = voice(Options::default()).await;
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    let key = v.store(tenant, wav(2000)).await;
    let events =
        v.h.ask_in(
            tenant,
            session,
            json!({"audio": {"key": key, "language": "en"}}),
        )
        .await;
    let k = kinds(&events);
    // The transcription first, then the chat about it, and one complete.
    let transcribed = position(&events, "transcription");
    assert!(transcribed < position(&events, "model_in_use"), "{k:?}");
    assert!(position(&events, "text_completed") < position(&events, "db_operation_executed"));
    assert_one_complete_last(&events);
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    let heard = first(&events, "transcription").unwrap();
    assert_eq!(heard["text"], SAID);
    assert_eq!(heard["is_final"], true);
    assert_eq!(heard["provider"], "deepgram");
    // The offline model echoes its prompt: the transcript.
    let answer = joined(&events, "text_chunk");
    assert!(answer.starts_with(&format!("Echo: {SAID}")), "{answer}");
    // The stt service read the stored file and sent it to the provider.
    let request = v.sim.requests().into_iter().next().unwrap();
    assert_eq!(request.format, WireFormat::Deepgram);
    assert_eq!(request.audio_bytes, 44 + 64_000);
    // The history holds the transcript as the user's message.
    let history = v.history(session).await;
    assert_eq!(history[0].0, "user");
    assert_eq!(history[0].1, SAID);
    assert_eq!(history[1].0, "assistant");
    assert!(history[1].1.starts_with("Echo:"));
}

#[tokio::test]
async fn a_voice_turn_that_speaks_transcribes_answers_then_speaks() {
    let v = voice(Options::default()).await;
    let audio = STANDARD.encode(wav(1500));
    let events =
        v.h.ask(json!({"audio": {"audio_base64": audio}, "store": false,
            "settings": {"tts": {"enabled": true, "provider": "espeak", "format": "wav",
                "save": false}}}))
            .await;
    let k = kinds(&events);
    assert!(
        position(&events, "transcription") < position(&events, "model_in_use"),
        "{k:?}"
    );
    assert!(position(&events, "model_in_use") < position(&events, "text_chunk"));
    assert!(
        position(&events, "text_chunk") < position(&events, "audio_chunk"),
        "{k:?}"
    );
    assert!(position(&events, "tts_completed") < position(&events, "complete"));
    assert!(!k.contains(&"tts_not_requested"), "{k:?}");
    assert!(!k.contains(&"text_not_requested"), "{k:?}");
    assert_one_complete_last(&events);
    let spoken = first(&events, "tts_completed").unwrap();
    assert_eq!(spoken["provider"], "espeak");
    assert!(joined(&events, "text_chunk").contains("quick brown fox"));
}

#[tokio::test]
async fn a_live_voice_turn_is_transcribed_while_spoken_then_answered() {
    // Deepgram's live WebSocket hears a word per 100 ms: the sentence in 0.9 s.
    let v = voice(Options {
        sim: SimConfig {
            live_word: Duration::from_millis(100),
            ..SimConfig::default()
        },
        ..Options::default()
    })
    .await;
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    let action = v
        .publish(
            tenant,
            session,
            json!({"audio": {"live": true, "sample_rate": 16000, "language": "en"}}),
        )
        .await;
    // The client speaks, as the gateway writes a WebSocket's frames: 100 ms each, then the end.
    let key =
        v.h.bus
            .names()
            .audio_input_stream(action.session_id, action.task_id);
    let mut conn = v.h.bus.conn();
    for frame in tone(900).chunks(3200) {
        live_audio::write(&mut conn, &key, frame).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    live_audio::end(&mut conn, &key, "ended").await.unwrap();
    let events = v.h.wait(&action, "complete").await;
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    let heard = support::of_kind(&events, "transcription");
    let finals: Vec<&str> = heard
        .iter()
        .filter(|t| t["is_final"] == true)
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert_eq!(finals.join(" "), SAID, "{heard:#?}");
    // Every transcription before the answer, the answer about the transcript, one complete.
    let last_heard = events
        .iter()
        .rposition(|e| e.kind == "transcription")
        .unwrap();
    assert!(last_heard < position(&events, "model_in_use"));
    assert!(joined(&events, "text_chunk").starts_with(&format!("Echo: {SAID}")));
    assert_one_complete_last(&events);
    let request = v.sim.requests().into_iter().next().unwrap();
    assert_eq!(request.path, "/v1/listen");
    assert_eq!(request.audio_bytes, 900 * 32);
    assert_eq!(v.history(session).await[0].1, SAID);
}

#[tokio::test]
async fn silence_is_no_speech_and_no_chat() {
    let v = voice(Options {
        sim: SimConfig {
            transcript: String::new(),
            ..SimConfig::default()
        },
        ..Options::default()
    })
    .await;
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    let audio = STANDARD.encode(wav(1000));
    let events =
        v.h.ask_in(tenant, session, json!({"audio": {"audio_base64": audio}}))
            .await;
    let error = first(&events, "error").unwrap_or_else(|| panic!("{:?}", kinds(&events)));
    assert_eq!(error["stage"], "stt");
    assert_eq!(error["code"], "no_speech");
    assert_eq!(error["retryable"], false);
    let k = kinds(&events);
    assert!(!k.contains(&"model_in_use"), "{k:?}");
    assert!(k.contains(&"text_not_requested"), "{k:?}");
    assert_one_complete_last(&events);
    assert!(v.history(session).await.is_empty());
}

#[tokio::test]
async fn a_failed_transcription_is_relayed_and_ends_the_turn() {
    let v = voice(Options::default()).await;
    v.sim.push_script(Behaviour::Refused {
        status: 400,
        message: "corrupt or unsupported data".into(),
    });
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    let audio = STANDARD.encode(wav(1000));
    let events =
        v.h.ask_in(tenant, session, json!({"audio": {"audio_base64": audio}}))
            .await;
    let relayed = errors(&events);
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert_eq!(relayed[0]["stage"], "stt");
    assert_eq!(relayed[0]["code"], "upstream_refused");
    assert!(
        relayed[0]["message"]
            .as_str()
            .unwrap()
            .contains("corrupt or unsupported data")
    );
    let k = kinds(&events);
    assert!(
        !k.contains(&"transcription") && !k.contains(&"model_in_use"),
        "{k:?}"
    );
    assert!(k.contains(&"text_not_requested"), "{k:?}");
    assert_one_complete_last(&events);
    assert!(v.history(session).await.is_empty());
}

#[tokio::test]
async fn no_stt_service_is_a_clear_error_after_the_start_timeout() {
    let v = voice(Options {
        stt: false,
        stt_start_timeout_secs: 1,
        ..Options::default()
    })
    .await;
    let audio = STANDARD.encode(wav(500));
    let events = v.h.ask(json!({"audio": {"audio_base64": audio}})).await;
    let error = first(&events, "error").unwrap_or_else(|| panic!("{:?}", kinds(&events)));
    assert_eq!(error["stage"], "stt");
    assert_eq!(error["code"], "stt_unavailable");
    assert_eq!(error["retryable"], true);
    assert_one_complete_last(&events);
}

#[tokio::test]
async fn a_cancel_mid_transcription_cancels_both_and_completes_once() {
    // The provider takes its time: the transcription is under way when the cancel comes.
    let v = voice(Options {
        sim: SimConfig {
            first_token_delay: Duration::from_secs(60),
            ..SimConfig::default()
        },
        ..Options::default()
    })
    .await;
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    let audio = STANDARD.encode(wav(1000));
    let action = v
        .publish(tenant, session, json!({"audio": {"audio_base64": audio}}))
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while v.sim.requests().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no transcription");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    v.h.bus.request_cancel(action.task_id).await.unwrap();
    let events = v.h.wait(&action, "complete").await;
    assert_eq!(
        kinds(&events),
        [
            "working",
            "cancelled",
            "text_not_requested",
            "tts_not_requested",
            "complete"
        ]
    );
    // The stt worker had the same task id: it closed its provider request.
    let closed = v.sim.wait_for_client_close(WAIT).await;
    assert!(closed.is_some_and(|r| r.format == WireFormat::Deepgram));
    assert!(v.history(session).await.is_empty());
}

#[tokio::test]
async fn direct_recorded_audio_is_heard_by_gemini_and_the_history_keeps_a_marker() {
    let v = voice(Options {
        providers: true,
        stt: false,
        ..Options::default()
    })
    .await;
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    let clip = wav(3600);
    let events =
        v.h.ask_in(
            tenant,
            session,
            json!({"prompt": "What is this?", "model": "gem",
                "audio": {"audio_base64": STANDARD.encode(&clip), "direct": true}}),
        )
        .await;
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    assert!(!kinds(&events).contains(&"transcription"));
    assert_eq!(
        joined(&events, "text_chunk"),
        "I heard 115244 bytes of audio/wav (3.6 s)."
    );
    assert_one_complete_last(&events);
    let request = v.sim.requests().into_iter().next().unwrap();
    assert_eq!(request.format, WireFormat::Gemini);
    let parts = &request.body["contents"][0]["parts"];
    assert_eq!(parts[0], json!({"text": "What is this?"}));
    assert_eq!(parts[1]["inlineData"]["mimeType"], "audio/wav");
    assert_eq!(parts[1]["inlineData"]["data"], STANDARD.encode(&clip));
    // The history keeps the prompt and a marker, never the audio.
    let history = v.history(session).await;
    assert_eq!(history[0].1, "What is this? [audio: 3.6 s wav]");
    let stored = history[0].2.clone().unwrap();
    assert_eq!(stored[1]["input_audio"]["bytes"], 115_244);
    assert!(!stored.to_string().contains(&STANDARD.encode(&clip)[..100]));

    // The same audio as a stored file of the tenant; another tenant's key is nobody's.
    let key = v.store(tenant, clip).await;
    let events =
        v.h.ask_in(
            tenant,
            session,
            json!({"model": "gem", "audio": {"key": key, "direct": true}}),
        )
        .await;
    assert_eq!(
        joined(&events, "text_chunk"),
        "I heard 115244 bytes of audio/wav (3.6 s)."
    );
    let events =
        v.h.ask(json!({"model": "gem", "audio": {"key": key, "direct": true}}))
            .await;
    let error = first(&events, "error").unwrap();
    assert_eq!(
        (&error["stage"], &error["code"]),
        (&json!("audio"), &json!("not_found"))
    );
    assert_one_complete_last(&events);
}

#[tokio::test]
async fn direct_live_audio_is_read_to_its_end_and_heard_as_wav() {
    let v = voice(Options {
        providers: true,
        stt: false,
        ..Options::default()
    })
    .await;
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    let action = v
        .publish(
            tenant,
            session,
            json!({"model": "gem",
                "audio": {"live": true, "sample_rate": 16000, "direct": true}}),
        )
        .await;
    // The client speaks: 1.2 s in 20 ms frames, then ends.
    let key =
        v.h.bus
            .names()
            .audio_input_stream(action.session_id, action.task_id);
    let mut conn = v.h.bus.conn();
    for frame in pcm(1200).chunks(640) {
        live_audio::write(&mut conn, &key, frame).await.unwrap();
    }
    live_audio::end(&mut conn, &key, "ended").await.unwrap();
    let events = v.h.wait(&action, "complete").await;
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    assert_eq!(
        joined(&events, "text_chunk"),
        "I heard 38444 bytes of audio/wav (1.2 s)."
    );
    assert_one_complete_last(&events);
    let history = v.history(session).await;
    assert_eq!(history[0].1, "[audio: 1.2 s wav]");
}

#[tokio::test]
async fn a_model_that_cannot_take_the_turn_is_refused_before_any_audio_is_read() {
    let v = voice(Options {
        providers: true,
        stt: false,
        ..Options::default()
    })
    .await;
    let audio = STANDARD.encode(wav(500));
    let recorded =
        v.h.ask(json!({"model": "oa", "audio": {"audio_base64": audio, "direct": true}}))
            .await;
    // Live audio is refused at once, not after the client spoke.
    let live =
        v.h.ask(json!({"model": "oa",
            "audio": {"live": true, "sample_rate": 16000, "direct": true}}))
            .await;
    for events in [recorded, live] {
        let error = first(&events, "error").unwrap_or_else(|| panic!("{:?}", kinds(&events)));
        assert_eq!(error["stage"], "validation");
        assert_eq!(error["code"], "unsupported_input");
        assert!(error["message"].as_str().unwrap().contains("audio"));
        assert!(kinds(&events).contains(&"text_not_requested"));
        assert_one_complete_last(&events);
    }
    // A voice turn for a model the registry does not know is refused before it is transcribed
    // (there is no stt worker here: waiting for one would be stt_unavailable).
    let unknown =
        v.h.ask(json!({"model": "nope", "audio": {"audio_base64": STANDARD.encode(wav(500))}}))
            .await;
    let error = first(&unknown, "error").unwrap();
    assert_eq!(error["code"], "unknown_model");
    assert_eq!(errors(&unknown).len(), 1);
    assert!(v.sim.requests().is_empty());
}
