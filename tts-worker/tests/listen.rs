//! `stt.transcription.stream` against real Redis and provider-sim: live audio written to the
//! task's audio stream (as the gateway writes a WebSocket's frames), transcribed by Deepgram's
//! live WebSocket or per utterance by a recordings API; cancel, a client that goes away, silence
//! and provider failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use common::envelope::DomainAction;
use common::live_audio;
use common::testing::{Received, WAIT, read_until};
use provider_sim::{Behaviour, SimConfig, Simulator};
use serde_json::{Value, json};
use uuid::Uuid;

use support::{SAID, Worker, start};

const RATE: u32 = 16_000;

fn action(data: Value) -> DomainAction {
    let mut a = DomainAction::new(
        "stt.transcription.stream",
        "test",
        Uuid::now_v7(),
        Uuid::now_v7(),
        data,
    );
    a.user_id = Some(Uuid::now_v7());
    a
}

/// `ms` of 16 kHz audio: a 220 Hz tone at `amplitude` of full scale (0: silence).
fn pcm(ms: u32, amplitude: f64) -> Vec<u8> {
    let n = (RATE * ms / 1000) as usize;
    (0..n)
        .flat_map(|i| {
            let t = i as f64 / RATE as f64;
            ((amplitude * 32767.0 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()) as i16)
                .to_le_bytes()
        })
        .collect()
}

impl Worker {
    fn audio_key(&self, a: &DomainAction) -> String {
        self.bus.names().audio_input_stream(a.session_id, a.task_id)
    }

    /// Publishes `a`, streams `audio` in 100 ms frames, then ends it with `reason`.
    async fn stream(&self, a: &DomainAction, audio: &[u8], reason: Option<&str>) {
        self.bus.publish(a).await.unwrap();
        let key = self.audio_key(a);
        let mut conn = self.bus.conn();
        for frame in audio.chunks((RATE / 10 * 2) as usize) {
            live_audio::write(&mut conn, &key, frame).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(reason) = reason {
            live_audio::end(&mut conn, &key, reason).await.unwrap();
        }
    }

    async fn events(&self, a: &DomainAction) -> Vec<Received> {
        let key = self.bus.names().response_stream(a.session_id);
        read_until(&self.client, &key, "complete", Some(a.task_id), WAIT).await
    }
}

fn all<'a>(events: &'a [Received], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| &e.event["data"])
        .collect()
}

fn completed(events: &[Received]) -> Value {
    all(events, "text_completed")
        .first()
        .map(|v| (*v).clone())
        .unwrap_or_else(|| panic!("no text_completed: {events:#?}"))
}

#[tokio::test]
async fn deepgram_live_gives_interim_then_final_results_and_the_whole_text() {
    let sim = Simulator::start(SimConfig {
        live_word: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let w = start(&[("deepgram", sim.root_url())]).await;
    let a = action(json!({"sample_rate": RATE, "language": "en"}));
    // Nine words of 100 ms: the sentence once.
    w.stream(&a, &pcm(900, 0.3), Some("ended")).await;
    let events = w.events(&a).await;
    let results = all(&events, "transcription");
    assert!(
        results.iter().any(|r| r["is_final"] == false),
        "no interim result: {results:#?}"
    );
    let finals: Vec<&str> = results
        .iter()
        .filter(|r| r["is_final"] == true)
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(finals.join(" "), SAID, "{results:#?}");
    for r in &results {
        assert_eq!(r["provider"], "deepgram");
        assert_eq!(r["model"], "nova-3");
        assert!(r["end"].as_f64().unwrap() >= r["start"].as_f64().unwrap());
    }
    let done = completed(&events);
    assert_eq!(done["content"], SAID);
    assert!((done["data"]["duration_s"].as_f64().unwrap() - 0.9).abs() < 0.01);
    assert_eq!(events.last().unwrap().kind, "complete");
    let request = sim
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/listen")
        .unwrap();
    let query = request.query.unwrap_or_default();
    assert!(query.contains("encoding=linear16") && query.contains("sample_rate=16000"));
    assert_eq!(request.audio_bytes, 900 * 32);
}

#[tokio::test]
async fn cancel_mid_stream_stops_the_task_and_closes_the_upstream() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let w = start(&[("deepgram", sim.root_url())]).await;
    let a = action(json!({"sample_rate": RATE}));
    w.stream(&a, &pcm(500, 0.3), None).await;
    // The provider's session is open once it has received audio.
    for _ in 0..100 {
        if sim.requests().iter().any(|r| r.audio_bytes > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.bus.request_cancel(a.task_id).await.unwrap();
    let events = w.events(&a).await;
    assert!(events.iter().any(|e| e.kind == "cancelled"), "{events:#?}");
    assert!(all(&events, "text_completed").is_empty());
    assert!(
        sim.wait_for_client_close(Duration::from_secs(5))
            .await
            .is_some(),
        "the provider's socket stayed open"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_ends_the_transcription_and_the_upstream() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let w = start(&[("deepgram", sim.root_url())]).await;
    let a = action(json!({"sample_rate": RATE}));
    w.stream(&a, &pcm(500, 0.3), Some("disconnected")).await;
    let events = w.events(&a).await;
    assert!(all(&events, "text_completed").is_empty(), "{events:#?}");
    assert!(all(&events, "error").is_empty(), "{events:#?}");
    assert!(
        sim.wait_for_client_close(Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_recordings_api_transcribes_each_utterance_and_never_hears_silence() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let w = start(&[("openai", sim.base_url())]).await;
    let a = action(json!({"sample_rate": RATE, "provider": "openai"}));
    let mut audio = pcm(1000, 0.0);
    audio.extend(pcm(1200, 0.3));
    audio.extend(pcm(1000, 0.0));
    audio.extend(pcm(800, 0.3));
    w.stream(&a, &audio, Some("ended")).await;
    let events = w.events(&a).await;
    let results = all(&events, "transcription");
    // Two utterances, two finals; a paid provider gives no interim results.
    assert_eq!(results.len(), 2, "{results:#?}");
    assert!(results.iter().all(|r| r["is_final"] == true));
    assert_eq!(results[0]["speech_final"], true);
    let (s0, e0) = (
        results[0]["start"].as_f64().unwrap(),
        results[0]["end"].as_f64().unwrap(),
    );
    assert!(
        (s0 - 0.8).abs() < 0.05 && (e0 - 2.9).abs() < 0.05,
        "{s0} {e0}"
    );
    assert!((results[1]["start"].as_f64().unwrap() - 3.0).abs() < 0.05);
    let done = completed(&events);
    assert_eq!(done["content"], format!("{SAID} {SAID}"));
    let requests: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/audio/transcriptions")
        .collect();
    assert_eq!(requests.len(), 2);
    // Only speech, with a little before and after it, was sent, as WAV: 3.1 s of the 4 s.
    let sent: u64 = requests.iter().map(|r| r.audio_bytes).sum();
    assert!(sent < 3200 * 32, "{sent}");
    assert_eq!(requests[0].body["file"]["content_type"], "audio/wav");

    // Silence only: an empty text, and no request at all.
    let before = sim.requests().len();
    let quiet = action(json!({"sample_rate": RATE, "provider": "openai"}));
    w.stream(&quiet, &pcm(2000, 0.0), Some("ended")).await;
    let events = w.events(&quiet).await;
    assert!(all(&events, "transcription").is_empty());
    assert_eq!(completed(&events)["content"], "");
    assert_eq!(sim.requests().len(), before);
}

#[tokio::test]
async fn provider_failures_and_unknown_providers_are_clear_errors() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let w = start(&[("deepgram", sim.root_url())]).await;
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 7,
    });
    let a = action(json!({"sample_rate": RATE}));
    w.stream(&a, &pcm(300, 0.3), Some("ended")).await;
    let events = w.events(&a).await;
    let error = all(&events, "error")[0].clone();
    assert_eq!(error["stage"], "stt");
    assert_eq!(error["code"], "rate_limited");
    assert_eq!(error["retryable"], true);

    for (provider, code) in [
        ("openai", "provider_not_configured"),
        ("acme", "unknown_provider"),
    ] {
        let a = action(json!({"sample_rate": RATE, "provider": provider}));
        w.stream(&a, &pcm(100, 0.3), Some("ended")).await;
        let events = w.events(&a).await;
        assert_eq!(all(&events, "error")[0]["code"], code, "{events:#?}");
    }
    // Bad data is refused before anything runs.
    let a = action(json!({"sample_rate": 100}));
    w.bus.publish(&a).await.unwrap();
    let events = w.events(&a).await;
    assert_eq!(all(&events, "error")[0]["stage"], "validation");
}
