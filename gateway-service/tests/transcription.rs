//! The transcription surface end to end: `POST /api/v1/audio/transcriptions` and
//! `POST /v1/audio/transcriptions` on a gateway on port 0, with a tts-worker in-process whose
//! `openai` and `deepgram` transcription providers are the provider simulator (it answers every
//! recording with "The quick brown fox jumps over the lazy dog."), and the official `openai`
//! Python SDK through the gateway.
//!
//! Like `python_sdk.rs`, this file has its own harness (`harness = false`) on `libtest-mimic`, so
//! that the SDK case counts as *ignored* without the SDK, with the reason, never as passed; under
//! `CI` a missing SDK is a failure (`scripts/test` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use common::testing::in_ci;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use provider_sim::{SimConfig, Simulator};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use support::{Opts, System};
use uuid::Uuid;

/// What the simulator hears in every recording.
const SAID: &str = "The quick brown fox jumps over the lazy dog.";

type Case = fn() -> Pin<Box<dyn Future<Output = ()>>>;

const CASES: &[(&str, Case)] = &[
    ("the_rest_route_transcribes_an_upload", || {
        Box::pin(the_rest_route_transcribes_an_upload())
    }),
    ("the_rest_route_refuses_with_statuses", || {
        Box::pin(the_rest_route_refuses_with_statuses())
    }),
    ("the_openai_route_answers_every_format", || {
        Box::pin(the_openai_route_answers_every_format())
    }),
    ("the_openai_route_routes_models_and_refuses", || {
        Box::pin(the_openai_route_routes_models_and_refuses())
    }),
];

fn run(case: Case) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("no Tokio runtime: {e}")))?;
    runtime.block_on(case());
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = CASES
        .iter()
        .map(|&(name, case)| Trial::test(name, move || run(case)))
        .collect();
    trials.push(Trial::ignorable_test(
        "the_openai_python_sdk_transcribes",
        || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failed::from(format!("no Tokio runtime: {e}")))?;
            runtime.block_on(the_openai_python_sdk_transcribes())
        },
    ));
    libtest_mimic::run(&args, trials).exit();
}

/// Two seconds of 16 kHz silence as WAV.
fn wav() -> Vec<u8> {
    common::audio::wav(&[0; 64_000], 16_000)
}

/// A system with a tts-worker (no chat-worker) transcribing with the simulator through the
/// `providers` named (`openai` and/or `deepgram`), and a token of a new tenant.
async fn system(sim: &Simulator, providers: &[&str]) -> (System, String) {
    let mut opts = Opts::new().no_chat().tts();
    for provider in providers {
        let url = if *provider == "openai" {
            sim.base_url()
        } else {
            sim.root_url()
        };
        opts = opts.tts_provider_at(provider, &url);
    }
    let system = System::start(opts).await;
    let token = system.token(Uuid::now_v7());
    (system, token)
}

/// A form with `file` (named `filename`) and text fields.
fn form(file: Vec<u8>, filename: &str, fields: &[(&str, &str)]) -> Form {
    let mut form = Form::new().part(
        "file",
        Part::bytes(file)
            .file_name(filename.to_owned())
            .mime_str("audio/wav")
            .unwrap(),
    );
    for (name, value) in fields {
        form = form.text((*name).to_owned(), (*value).to_owned());
    }
    form
}

/// `POST {path}` with a multipart form as `token`: status, content type, body.
async fn post_form(system: &System, token: &str, path: &str, form: Form) -> (u16, String, String) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", system.http))
        .bearer_auth(token)
        .multipart(form)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, r.text().await.unwrap())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

const REST: &str = "/api/v1/audio/transcriptions";
const V1: &str = "/v1/audio/transcriptions";

async fn the_rest_route_transcribes_an_upload() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (system, token) = system(&sim, &["openai", "deepgram"]).await;
    let (status, _, body) = post_form(
        &system,
        &token,
        REST,
        form(
            wav(),
            "memo.wav",
            &[("provider", "deepgram"), ("language", "en")],
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let envelope = json(&body);
    assert_eq!(envelope["success"], true, "{body}");
    let data = &envelope["data"];
    assert_eq!(data["text"], SAID, "{body}");
    assert_eq!(data["provider"], "deepgram");
    assert_eq!(data["model"], "nova-3");
    assert!(data["task_id"].as_str().is_some(), "{body}");
    assert!(data["session_id"].as_str().is_some(), "{body}");
    let key = data["key"].as_str().unwrap();
    assert!(key.contains("/uploads/") && key.ends_with(".wav"), "{key}");
    // OpenAI's whisper-1 gives timed segments and the duration.
    let (status, _, body) = post_form(
        &system,
        &token,
        REST,
        form(wav(), "memo.wav", &[("provider", "openai")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = &json(&body)["data"];
    assert_eq!(data["text"], SAID);
    assert_eq!(data["provider"], "openai");
    assert!(
        (data["duration_s"].as_f64().unwrap() - 2.0).abs() < 0.01,
        "{data}"
    );
    assert!(
        data["segments"].as_array().is_some_and(|s| !s.is_empty()),
        "{data}"
    );
    let sent = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/audio/transcriptions") || r.path.ends_with("/listen"))
        .count();
    assert_eq!(sent, 2);
}

async fn the_rest_route_refuses_with_statuses() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (system, token) = system(&sim, &["deepgram"]).await;
    let refused = |status: u16, body: &str, wants: &str| {
        let envelope = json(body);
        assert_eq!(envelope["success"], false, "{body}");
        assert!(
            envelope["message"]
                .as_str()
                .unwrap_or_default()
                .contains(wants),
            "{status}: {body}"
        );
    };
    // Over 25 MiB.
    let mut big = wav();
    big.resize((25 << 20) + 1, 0);
    let (status, _, body) = post_form(&system, &token, REST, form(big, "big.wav", &[])).await;
    assert_eq!(status, 413, "{body}");
    refused(status, &body, "larger than");
    // No file part.
    let only_fields = Form::new().text("language", "en");
    let (status, _, body) = post_form(&system, &token, REST, only_fields).await;
    assert_eq!(status, 400, "{body}");
    refused(status, &body, "no file part");
    // A provider that does not exist: the worker's unknown_provider.
    let (status, _, body) = post_form(
        &system,
        &token,
        REST,
        form(wav(), "a.wav", &[("provider", "nosuch")]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    refused(status, &body, "unknown transcription provider");
    // A known provider without a key.
    let (status, _, body) = post_form(
        &system,
        &token,
        REST,
        form(wav(), "a.wav", &[("provider", "gemini")]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Refused before anything is stored: the payload's own rules, a file that is no audio.
    for (fields, filename, wants) in [
        (&[("language", "en;x")][..], "a.wav", "language"),
        (&[("sample_rate", "fast")][..], "a.wav", "sample_rate"),
        (&[("format", "pcm")][..], "a.wav", "sample_rate"),
        (&[][..], "a.exe", "not allowed"),
    ] {
        let (status, _, body) =
            post_form(&system, &token, REST, form(wav(), filename, fields)).await;
        assert_eq!(status, 400, "{fields:?}: {body}");
        refused(status, &body, wants);
    }
    let (status, _, _) = post_form(&system, "nope", REST, form(wav(), "a.wav", &[])).await;
    assert_eq!(status, 401);
}

async fn the_openai_route_answers_every_format() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (system, token) = system(&sim, &["openai"]).await;
    let ask = |format: &str, stream: bool| {
        let mut fields = vec![("model", "whisper-1"), ("response_format", format)];
        if stream {
            fields.push(("stream", "true"));
        }
        fields.push(("temperature", "0.2"));
        fields.push(("timestamp_granularities[]", "segment"));
        form(
            wav(),
            "speech.wav",
            &fields.iter().map(|(a, b)| (*a, *b)).collect::<Vec<_>>(),
        )
    };
    let (status, content_type, body) = post_form(&system, &token, V1, ask("json", false)).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("application/json"));
    assert_eq!(json(&body), serde_json::json!({"text": SAID}));

    let (status, content_type, body) = post_form(&system, &token, V1, ask("text", false)).await;
    assert_eq!((status, body.as_str()), (200, SAID));
    assert!(content_type.starts_with("text/plain"), "{content_type}");

    let (status, _, body) = post_form(&system, &token, V1, ask("srt", false)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("1\n00:00:00,000 --> 00:00:0"), "{body}");
    assert!(body.contains("lazy dog"), "{body}");

    let (status, _, body) = post_form(&system, &token, V1, ask("vtt", false)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:0"),
        "{body}"
    );

    let (status, _, body) = post_form(&system, &token, V1, ask("verbose_json", false)).await;
    assert_eq!(status, 200, "{body}");
    let verbose = json(&body);
    assert_eq!(verbose["task"], "transcribe");
    assert_eq!(verbose["text"], SAID);
    assert!(
        (verbose["duration"].as_f64().unwrap() - 2.0).abs() < 0.01,
        "{body}"
    );
    let segments = verbose["segments"].as_array().unwrap();
    assert!(!segments.is_empty(), "{body}");
    assert_eq!(segments[0]["id"], 0);
    assert!(segments[0]["end"].as_f64().unwrap() > 0.0, "{body}");

    let (status, content_type, body) = post_form(&system, &token, V1, ask("json", true)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let events: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(json)
        .collect();
    let (done, deltas) = events.split_last().unwrap();
    assert_eq!(done["type"], "transcript.text.done", "{body}");
    assert_eq!(done["text"], SAID);
    assert!(deltas.len() > 1, "{body}");
    let text: String = deltas
        .iter()
        .map(|d| {
            assert_eq!(d["type"], "transcript.text.delta");
            d["delta"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, SAID);
}

async fn the_openai_route_routes_models_and_refuses() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    // Deepgram only: whisper-1 falls back to the default provider.
    let (system, token) = system(&sim, &["deepgram"]).await;
    for model in [
        "whisper-1",
        "gpt-4o-mini-transcribe",
        "default",
        "deepgram/nova-3",
        "deepgram",
    ] {
        let (status, _, body) = post_form(
            &system,
            &token,
            V1,
            form(wav(), "a.wav", &[("model", model)]),
        )
        .await;
        assert_eq!(
            (status, json(&body)["text"].as_str()),
            (200, Some(SAID)),
            "{model}: {body}"
        );
    }
    let error = |body: &str| json(body)["error"].clone();
    let (status, _, body) = post_form(
        &system,
        &token,
        V1,
        form(wav(), "a.wav", &[("model", "nosuch/model")]),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error(&body)["code"], "model_not_found");
    assert_eq!(error(&body)["param"], "model");
    // A provider without a key is the request's to change.
    let (status, _, body) = post_form(
        &system,
        &token,
        V1,
        form(wav(), "a.wav", &[("model", "gemini/gemini-2.5-flash")]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error(&body)["param"], "model");
    for (fields, param) in [
        (&[][..], "model"),
        (
            &[("model", "whisper-1"), ("response_format", "xml")][..],
            "response_format",
        ),
        (
            &[("model", "whisper-1"), ("language", "en;x")][..],
            "language",
        ),
    ] {
        let (status, _, body) = post_form(&system, &token, V1, form(wav(), "a.wav", fields)).await;
        assert_eq!(status, 400, "{fields:?}: {body}");
        assert_eq!(error(&body)["type"], "invalid_request_error");
        assert_eq!(error(&body)["param"], param, "{body}");
    }
    let (status, _, body) = post_form(
        &system,
        &token,
        V1,
        form(wav(), "a.txt", &[("model", "whisper-1")]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error(&body)["param"], "file");
    let (status, _, body) =
        post_form(&system, &token, V1, Form::new().text("model", "whisper-1")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error(&body)["param"], "file");
    let (status, _, body) = post_form(&system, "nope", V1, form(wav(), "a.wav", &[])).await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body)["message"].is_string());
}

/// Whether `python3` can import the SDK.
async fn sdk_available() -> bool {
    tokio::process::Command::new("python3")
        .args(["-c", "import openai"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

async fn the_openai_python_sdk_transcribes() -> Result<Completion, Failed> {
    if !sdk_available().await {
        if in_ci() {
            return Err(
                "the openai Python SDK is missing under CI; scripts/test installs it \
                 (python3 -m pip install 'openai>=1.40')"
                    .into(),
            );
        }
        return Ok(Completion::ignored_with(
            "`python3 -c 'import openai'` failed; install the SDK with \
             python3 -m pip install 'openai>=1.40' to run this test",
        ));
    }
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (system, token) = system(&sim, &["openai"]).await;
    let wav_path = std::env::temp_dir().join(format!("stt-sdk-{}.wav", Uuid::now_v7().simple()));
    std::fs::write(&wav_path, wav()).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_transcription_sdk.py");
    let child = tokio::process::Command::new("python3")
        .arg(&script)
        .env("GATEWAY_URL", &system.http)
        .env("TOKEN", token)
        .env("WAV", &wav_path)
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_ORG_ID")
        .env_remove("OPENAI_PROJECT_ID")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the SDK tests did not finish in time")
        .unwrap();
    let _ = std::fs::remove_file(&wav_path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary = stdout.lines().last().unwrap_or_default();
    if output.status.success() && summary.ends_with(" 0 failed") {
        Ok(Completion::Completed)
    } else {
        Err(format!("the SDK tests failed ({summary}):\n{stdout}\n{stderr}").into())
    }
}
