//! Live audio over `/chat/ws`: `audio_start`, binary frames, `audio_end`, against a gateway on
//! port 0 and an in-process tts-worker whose `deepgram` provider is the simulator's live
//! WebSocket (one word per 100 ms of audio, the sentence "The quick brown fox jumps over the
//! lazy dog."). Interim and final `transcription` events, cancel mid-stream, a client that goes
//! away mid-stream, and frames or messages out of place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use provider_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use support::{Opts, System, kinds};
use uuid::Uuid;

const SAID: &str = "The quick brown fox jumps over the lazy dog.";

async fn system(sim: &Simulator) -> (System, String) {
    let opts = Opts::new()
        .no_chat()
        .tts()
        .tts_provider_at("deepgram", &sim.root_url());
    let system = System::start(opts).await;
    let token = system.token(Uuid::now_v7());
    (system, token)
}

async fn sim() -> Simulator {
    Simulator::start(SimConfig {
        live_word: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// `ms` of 16 kHz 16-bit audio (a quiet tone; the simulator only counts it).
fn pcm(ms: usize) -> Vec<u8> {
    (0..ms * 16)
        .flat_map(|i| (((i % 40) as i16 - 20) * 300).to_le_bytes())
        .collect()
}

fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test]
async fn a_client_speaks_and_sees_interim_and_final_transcriptions() {
    let sim = sim().await;
    let (system, token) = system(&sim).await;
    let (mut ws, session) = system.connect(&token).await;

    // Frames and an end with no stream open are refused; the connection stays.
    ws.send_binary(pcm(20)).await;
    let e = ws.next().await;
    assert_eq!(
        (e["type"].as_str(), e["data"]["code"].as_str()),
        (Some("error"), Some("unsupported")),
        "{e}"
    );
    ws.send(json!({"type": "audio_end"})).await;
    assert_eq!(ws.next().await["data"]["code"], "bad_request");
    ws.send(json!({"type": "audio_start", "sample_rate": 100}))
        .await;
    let e = ws.next().await;
    assert_eq!(e["data"]["code"], "bad_request");
    assert!(
        e["data"]["message"]
            .as_str()
            .unwrap()
            .contains("sample_rate"),
        "{e}"
    );

    ws.send(json!({"type": "audio_start", "sample_rate": 16000, "language": "en"}))
        .await;
    let audio = pcm(900);
    for frame in audio.chunks(3200) {
        ws.send_binary(frame.to_vec()).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ws.send(json!({"type": "audio_end"})).await;
    let events = ws.until_complete().await;
    let results = of(&events, "transcription");
    assert!(
        results.iter().any(|r| r["data"]["is_final"] == false),
        "{events:#?}"
    );
    let finals: Vec<&str> = results
        .iter()
        .filter(|r| r["data"]["is_final"] == true)
        .map(|r| r["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(finals.join(" "), SAID);
    let done = of(&events, "text_completed")[0];
    assert_eq!(done["data"]["content"], SAID);
    assert!(events.iter().all(|e| e["session_id"] == session.as_str()));
    let task = events[0]["task_id"].clone();
    assert!(events.iter().all(|e| e["task_id"] == task), "one task");
    assert_eq!(
        kinds(&events).iter().filter(|k| *k == "complete").count(),
        1
    );

    // After the task, frames are refused again.
    ws.send_binary(pcm(20)).await;
    assert_eq!(ws.next().await["data"]["code"], "unsupported");
    system.stop().await;
}

#[tokio::test]
async fn cancel_mid_stream_ends_the_task_and_later_frames_are_refused() {
    let sim = sim().await;
    let (system, token) = system(&sim).await;
    let (mut ws, _) = system.connect(&token).await;
    ws.send(json!({"type": "audio_start", "sample_rate": 16000}))
        .await;
    for frame in pcm(300).chunks(3200) {
        ws.send_binary(frame.to_vec()).await;
    }
    // A chat while the audio streams waits its turn.
    ws.send(json!({"type": "chat", "prompt": "hi"})).await;
    let e = ws.until("error").await;
    assert_eq!(e.last().unwrap()["data"]["code"], "bad_request");
    // Mid-stream: the worker is transcribing (its provider socket is open) when the cancel comes.
    let opened = tokio::time::timeout(Duration::from_secs(10), async {
        while !sim.requests().iter().any(|r| r.path == "/v1/listen") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(opened.is_ok(), "the worker never opened Deepgram's socket");
    ws.send(json!({"type": "cancel"})).await;
    let events = ws.until_complete().await;
    assert!(
        kinds(&events).contains(&"cancelled".to_owned()),
        "{events:#?}"
    );
    ws.send_binary(pcm(20)).await;
    assert_eq!(ws.next().await["data"]["code"], "unsupported");
    assert!(
        sim.wait_for_client_close(Duration::from_secs(10))
            .await
            .is_some()
    );
    system.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_stops_the_worker_and_the_upstream_at_once() {
    let sim = sim().await;
    let (system, token) = system(&sim).await;
    let (mut ws, _) = system.connect(&token).await;
    ws.send(json!({"type": "audio_start", "sample_rate": 16000}))
        .await;
    for frame in pcm(300).chunks(3200) {
        ws.send_binary(frame.to_vec()).await;
    }
    // The provider's session is open.
    for _ in 0..100 {
        if sim.requests().iter().any(|r| r.audio_bytes > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ws.close().await;
    // Well before the 30 s resume grace.
    let closed = sim.wait_for_client_close(Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the provider's socket stayed open");
    system.stop().await;
}

/// A system with the chat-worker (its offline `dummy` model answers "Echo: " and the words it
/// was asked) and the tts-worker transcribing with the simulator's Deepgram.
async fn voice_system(sim: &Simulator) -> (System, String) {
    let opts = Opts::new()
        .dummy(12, 0)
        .tts()
        .tts_provider_at("deepgram", &sim.root_url());
    let system = System::start(opts).await;
    let token = system.token(Uuid::now_v7());
    (system, token)
}

/// The words of the dummy's answer after "Echo:".
fn echoed(events: &[Value]) -> String {
    let done = of(events, "text_completed");
    let answer = done.last().unwrap()["data"]["content"].as_str().unwrap();
    answer.trim_start_matches("Echo:").trim().to_owned()
}

#[tokio::test]
async fn a_live_voice_turn_is_transcribed_then_answered_in_one_task() {
    let sim = sim().await;
    let (system, token) = voice_system(&sim).await;
    let (mut ws, _) = system.connect(&token).await;
    ws.send(
        json!({"type": "audio_start", "sample_rate": 16000, "language": "en",
        "reply": {"model": "dummy"}}),
    )
    .await;
    for frame in pcm(900).chunks(3200) {
        ws.send_binary(frame.to_vec()).await;
    }
    ws.send(json!({"type": "audio_end"})).await;
    let events = ws.until_complete().await;
    let kinds = kinds(&events);
    let first_chat = kinds.iter().position(|k| k == "model_in_use").unwrap();
    let last_transcription = kinds.iter().rposition(|k| k == "transcription").unwrap();
    assert!(last_transcription < first_chat, "{kinds:?}");
    assert!(kinds.contains(&"text_chunk".to_owned()));
    assert_eq!(kinds.iter().filter(|k| *k == "complete").count(), 1);
    let task = &events[0]["task_id"];
    assert!(events.iter().all(|e| &e["task_id"] == task), "one task");
    // The answer is about what was said.
    assert!(
        echoed(&events).starts_with("The quick brown fox"),
        "{events:#?}"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_chat_message_with_recorded_audio_is_a_voice_turn() {
    use base64::Engine;
    let sim = sim().await;
    let (system, token) = voice_system(&sim).await;
    let (mut ws, _) = system.connect(&token).await;
    let wav = common::audio::wav(&pcm(2000), 16_000);
    let audio = base64::engine::general_purpose::STANDARD.encode(&wav);
    ws.send(json!({"type": "chat", "model": "dummy",
        "audio": {"audio_base64": audio, "format": "wav"}}))
        .await;
    let events = ws.until_complete().await;
    let t = of(&events, "transcription");
    assert_eq!(t[0]["data"]["text"], SAID, "{events:#?}");
    assert!(echoed(&events).starts_with("The quick brown fox"));
    // Live audio comes only with audio_start.
    ws.send(json!({"type": "chat", "audio": {"live": true, "sample_rate": 16000}}))
        .await;
    let e = ws.next().await;
    assert_eq!(e["data"]["code"], "bad_request", "{e}");
    system.stop().await;
}
