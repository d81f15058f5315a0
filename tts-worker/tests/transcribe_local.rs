//! The offline transcription provider `local` (Whisper tiny.en in the worker) end to end:
//! `stt.transcription.file` with no provider key, against real Redis, a real storage directory,
//! the real model and real speech (a recording, and espeak-ng's voice).
//!
//! The model and the recording are installed by `scripts/test` (`ensure_whisper_model`,
//! `ensure_test_audio` in `scripts/lib.sh`). Without them these tests fail under CI and say how
//! to install them elsewhere.
#![cfg(feature = "local-stt")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::Bus;
use common::envelope::DomainAction;
use common::storage::Storage;
use common::testing::{Received, fast_worker_settings, isolated_settings, read_until};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tts_worker::Settings;
use tts_worker::audio::wav_header;
use tts_worker::stt::decode::decode_to_16k_mono;
use tts_worker::stt::providers::Audio;
use tts_worker::stt::score::word_error_rate as wer;
use uuid::Uuid;

const BECKETT: &str = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.";
const REMINDER: &str = "please remind me to water the tomatoes on tuesday morning";
/// Transcribing takes about a second per 30 s window, more while other tests run beside.
const WAIT: Duration = Duration::from_secs(90);

/// A file these tests need, from `$var` or the directory `scripts/lib.sh` installs to.
fn installed(var: &str, default: &str, file: &str, how: &str) -> Option<PathBuf> {
    let dir = std::env::var(var)
        .unwrap_or_else(|_| format!("{}/{default}", std::env::var("HOME").unwrap_or_default()));
    let path = PathBuf::from(dir).join(file);
    if path.is_file() {
        return Some(path);
    }
    let message = format!(
        "{} is missing: install it with `. scripts/lib.sh && {how}` (scripts/test does)",
        path.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("skipped: {message}");
    None
}

fn model_dir() -> Option<PathBuf> {
    installed(
        "STT__MODEL_DIR",
        ".cache/aibackend/models/whisper-tiny.en",
        "model.bin",
        "ensure_whisper_model",
    )
    .and_then(|p| p.parent().map(PathBuf::from))
}

fn beckett() -> Option<Vec<u8>> {
    let path = installed(
        "TEST_AUDIO_DIR",
        ".cache/aibackend/test-audio",
        "beckett.wav",
        "ensure_test_audio",
    )?;
    Some(std::fs::read(path).unwrap())
}

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

/// A worker with no provider key: transcription is the local model's (in `model_dir`).
async fn start(model_dir: PathBuf) -> Worker {
    let mut settings = Settings {
        core: isolated_settings(),
        worker: fast_worker_settings(),
        ..Settings::default()
    };
    settings.storage.dir = std::env::temp_dir()
        .join(format!("stt-local-test-{}", Uuid::now_v7().simple()))
        .to_string_lossy()
        .into_owned();
    settings.stt.model_dir = model_dir.to_string_lossy().into_owned();
    let shutdown = CancellationToken::new();
    tokio::spawn(tts_worker::run(settings.clone(), shutdown.clone()));
    Worker {
        bus: Bus::connect(&settings.core).await.unwrap(),
        client: redis::Client::open(settings.core.redis_url.expose()).unwrap(),
        settings,
        shutdown,
    }
}

impl Worker {
    async fn run(&self, tenant: Uuid, data: Value) -> Vec<Received> {
        let mut a = DomainAction::new(
            "stt.transcription.file",
            "test",
            tenant,
            Uuid::now_v7(),
            data,
        );
        a.user_id = Some(Uuid::now_v7());
        self.bus.publish(&a).await.unwrap();
        let key = self.bus.names().response_stream(a.session_id);
        read_until(&self.client, &key, "complete", Some(a.task_id), WAIT).await
    }

    /// Transcribes `bytes` uploaded as a file of `tenant`; the `transcription` event's data.
    async fn transcribe_file(&self, bytes: Vec<u8>) -> Value {
        let tenant = Uuid::now_v7();
        let storage = Storage::new(&self.settings.storage, &self.settings.core).unwrap();
        storage.prepare().await.unwrap();
        let key = storage
            .put(tenant, "uploads", "wav", "audio/wav", Bytes::from(bytes))
            .await
            .unwrap()
            .key;
        transcription(&self.run(tenant, json!({"key": key})).await)
    }
}

fn of<'a>(events: &'a [Received], kind: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e.kind == kind)
        .map(|e| &e.event["data"])
}

/// The `transcription` event, checked against `text_completed` and the end of the task.
fn transcription(events: &[Received]) -> Value {
    let t = of(events, "transcription")
        .unwrap_or_else(|| panic!("no transcription: {events:#?}"))
        .clone();
    assert_eq!(t["provider"], "local", "{t}");
    assert_eq!(t["model"], "whisper-tiny.en", "{t}");
    assert_eq!(t["language"], "en", "{t}");
    assert_eq!(of(events, "text_completed").unwrap()["content"], t["text"]);
    assert_eq!(events.last().unwrap().kind, "complete");
    t
}

/// A 16-bit mono WAV of samples in [-1, 1].
fn wav(samples: &[f32], rate: u32) -> Vec<u8> {
    let body = pcm16(samples);
    let mut v = wav_header(rate, Some(body.len() as u32)).to_vec();
    v.extend_from_slice(&body);
    v
}

fn pcm16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32_767.0) as i16).to_le_bytes())
        .collect()
}

fn samples_of(wav: &[u8]) -> Vec<f32> {
    decode_to_16k_mono(&Audio {
        bytes: Bytes::copy_from_slice(wav),
        format: "wav".into(),
        sample_rate: None,
    })
    .unwrap()
}

#[tokio::test]
async fn a_recording_is_transcribed_offline_with_no_key() {
    let (Some(model), Some(recording)) = (model_dir(), beckett()) else {
        return;
    };
    let w = start(model).await;
    let t = w.transcribe_file(recording).await;
    let text = t["text"].as_str().unwrap();
    assert!(wer(BECKETT, text) <= 0.2, "heard {text:?}");
    assert!(
        (t["duration_s"].as_f64().unwrap() - 9.963).abs() < 0.01,
        "{t}"
    );
    let segments = t["segments"].as_array().unwrap();
    assert!(!segments.is_empty(), "{t}");
    let mut last_end = 0.0;
    for s in segments {
        let (start, end) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
        assert!(
            last_end <= start + 0.5 && start <= end && end <= 9.97,
            "{t}"
        );
        last_end = end;
    }
}

#[tokio::test]
async fn espeak_speech_at_22_khz_is_resampled_and_transcribed() {
    let Some(model) = model_dir() else { return };
    let dir = tempdir();
    let path = dir.join("reminder.wav");
    let spoke = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&path)
        .arg(REMINDER)
        .status();
    if !spoke.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "espeak-ng is not installed (scripts/test installs it)"
        );
        eprintln!("skipped: espeak-ng is not installed");
        return;
    }
    let clip = std::fs::read(&path).unwrap();
    assert_eq!(u32::from_le_bytes(clip[24..28].try_into().unwrap()), 22_050);
    let w = start(model).await;
    let events = w
        .run(
            Uuid::now_v7(),
            json!({"audio_base64": STANDARD.encode(&clip), "format": "wav"}),
        )
        .await;
    let text = transcription(&events)["text"].as_str().unwrap().to_owned();
    // espeak-ng's robotic voice costs a word or two ("tomato" for "tomatoes").
    assert!(wer(REMINDER, &text) <= 0.2, "heard {text:?}");
}

#[tokio::test]
async fn pcm_at_8_khz_is_transcribed() {
    let (Some(model), Some(recording)) = (model_dir(), beckett()) else {
        return;
    };
    // The recording at telephone quality: each pair of 16 kHz samples averaged.
    let narrow: Vec<f32> = samples_of(&recording)
        .chunks(2)
        .map(|p| p.iter().sum::<f32>() / p.len() as f32)
        .collect();
    let w = start(model).await;
    let events = w
        .run(
            Uuid::now_v7(),
            json!({"audio_base64": STANDARD.encode(pcm16(&narrow)), "format": "pcm", "sample_rate": 8000}),
        )
        .await;
    let t = transcription(&events);
    let text = t["text"].as_str().unwrap();
    assert!(wer(BECKETT, text) <= 0.2, "heard {text:?}");
    assert!(
        (t["duration_s"].as_f64().unwrap() - 9.963).abs() < 0.01,
        "{t}"
    );
}

#[tokio::test]
async fn a_clip_longer_than_30_s_keeps_every_sentence() {
    let (Some(model), Some(recording)) = (model_dir(), beckett()) else {
        return;
    };
    // Four times the recording, 40 s: past one 30 s window, so it is cut in a pause.
    let once = samples_of(&recording);
    let long: Vec<f32> = once.iter().copied().cycle().take(once.len() * 4).collect();
    let w = start(model).await;
    let t = w.transcribe_file(wav(&long, 16_000)).await;
    let text = t["text"].as_str().unwrap();
    let expected = [BECKETT; 4].join(" ");
    assert!(wer(&expected, text) <= 0.2, "heard {text:?}");
    let segments = t["segments"].as_array().unwrap();
    let last_end = segments.last().unwrap()["end"].as_f64().unwrap();
    assert!(last_end > 35.0 && last_end <= 39.86, "{t}");
}

#[tokio::test]
async fn silence_is_an_empty_transcript() {
    let Some(model) = model_dir() else { return };
    let w = start(model).await;
    let events = w
        .run(
            Uuid::now_v7(),
            json!({"audio_base64": STANDARD.encode(wav(&[0.0; 16_000], 16_000))}),
        )
        .await;
    assert!(of(&events, "error").is_none(), "{events:#?}");
    let t = transcription(&events);
    assert_eq!(t["text"], "");
    assert_eq!(t["segments"], json!([]));
    assert_eq!(t["duration_s"], 1.0);
}

#[tokio::test]
async fn audio_it_cannot_read_is_a_clear_error() {
    let Some(model) = model_dir() else { return };
    let w = start(model).await;
    let tenant = Uuid::now_v7();
    let speech = STANDARD.encode(wav(&[0.0; 1_600], 16_000));
    let cases = [
        (
            json!({"audio_base64": STANDARD.encode(b"RIFF....WAVEjunk"), "format": "wav"}),
            "invalid_audio",
            "could not be decoded as wav",
        ),
        (
            json!({"audio_base64": STANDARD.encode([0xffu8; 64]), "format": "mp3"}),
            "invalid_audio",
            "could not be decoded as mp3",
        ),
        (
            json!({"audio_base64": STANDARD.encode(b"OggS not really"), "format": "opus"}),
            "invalid_audio",
            "opus audio cannot be decoded here",
        ),
        (
            json!({"audio_base64": speech, "language": "fr"}),
            "unsupported_input",
            "English only",
        ),
    ];
    for (data, code, says) in cases {
        let events = w.run(tenant, data).await;
        let error = of(&events, "error").unwrap_or_else(|| panic!("{code}: {events:#?}"));
        assert_eq!(error["code"], code, "{error}");
        assert_eq!(error["stage"], "stt", "{error}");
        assert!(error["message"].as_str().unwrap().contains(says), "{error}");
        assert_eq!(events.last().unwrap().kind, "complete");
        assert!(of(&events, "transcription").is_none());
    }
}

#[tokio::test]
async fn without_its_model_local_says_how_to_install_it() {
    let w = start(PathBuf::from("/nonexistent/whisper-tiny.en")).await;
    let events = w
        .run(
            Uuid::now_v7(),
            json!({"audio_base64": STANDARD.encode(wav(&[0.0; 1_600], 16_000))}),
        )
        .await;
    let error = of(&events, "error").unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(error["code"], "provider_not_configured", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("local") && message.contains("ensure_whisper_model"),
        "{message}"
    );
    assert_eq!(events.last().unwrap().kind, "complete");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stt-local-{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Live audio with no key: the local model hears it per utterance, with interim results while a
/// sentence is spoken and finals at its pauses.
#[tokio::test]
async fn live_audio_is_transcribed_offline_with_interim_and_final_results() {
    let (Some(model), Some(recording)) = (model_dir(), beckett()) else {
        return;
    };
    let w = start(model).await;
    let pcm = pcm16(&samples_of(&recording));
    let mut a = DomainAction::new(
        "stt.transcription.stream",
        "test",
        Uuid::now_v7(),
        Uuid::now_v7(),
        json!({"sample_rate": 16000}),
    );
    a.user_id = Some(Uuid::now_v7());
    w.bus.publish(&a).await.unwrap();
    let key = w.bus.names().audio_input_stream(a.session_id, a.task_id);
    let mut conn = w.bus.conn();
    // 100 ms frames, a little faster than real time.
    for frame in pcm.chunks(3200) {
        common::live_audio::write(&mut conn, &key, frame)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    common::live_audio::end(&mut conn, &key, "ended")
        .await
        .unwrap();
    let stream = w.bus.names().response_stream(a.session_id);
    let events = read_until(&w.client, &stream, "complete", Some(a.task_id), WAIT).await;
    let results: Vec<&Value> = events
        .iter()
        .filter(|e| e.kind == "transcription")
        .map(|e| &e.event["data"])
        .collect();
    assert!(
        results.iter().any(|r| r["is_final"] == false),
        "no interim result: {results:#?}"
    );
    assert!(results.iter().all(|r| r["provider"] == "local"));
    let done = of(&events, "text_completed").expect("text_completed");
    let text = done["content"].as_str().unwrap();
    assert!(wer(BECKETT, text) <= 0.3, "heard {text:?}");
}
