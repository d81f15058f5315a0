//! The speech surface end to end: `POST /tts/generate`, `POST /tts/stream` and
//! `POST /v1/audio/speech` on a gateway on port 0, with a tts-worker in-process that speaks with
//! the real espeak-ng (the offline default) or with provider-sim in OpenAI's wire format, and
//! stores its clips in a local directory the gateway serves signed URLs from.
//!
//! The cases that need espeak-ng are reported as *ignored* without it, with the reason, never as
//! passed; under `CI` they fail (`scripts/lib.sh ensure_tools` installs it). Like
//! `python_sdk.rs`, this file has its own harness (`harness = false`) on `libtest-mimic`, so that
//! a case can decide at run time that it is ignored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::testing::in_ci;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use provider_sim::{Behaviour, SimConfig, Simulator};
use serde_json::{Value, json};
use support::{Opts, System, WAIT};
use uuid::Uuid;

type Case = fn() -> Pin<Box<dyn Future<Output = ()>>>;

/// Cases where espeak-ng speaks.
const ESPEAK: &[(&str, Case)] = &[
    ("generate_stores_a_clip_that_plays", || {
        Box::pin(generate_stores_a_clip_that_plays())
    }),
    ("stream_sends_the_audio_bytes", || {
        Box::pin(stream_sends_the_audio_bytes())
    }),
    ("the_openai_route_falls_back_to_espeak", || {
        Box::pin(the_openai_route_falls_back_to_espeak())
    }),
    ("a_chat_that_speaks_over_the_websocket", || {
        Box::pin(a_chat_that_speaks_over_the_websocket())
    }),
];

/// Cases that never reach espeak-ng (refused before it runs) or speak through provider-sim.
const OTHERS: &[(&str, Case)] = &[
    ("refusals_and_worker_errors_have_statuses", || {
        Box::pin(refusals_and_worker_errors_have_statuses())
    }),
    ("the_openai_route_refuses_in_openais_format", || {
        Box::pin(the_openai_route_refuses_in_openais_format())
    }),
    ("audio_is_sent_while_it_is_spoken", || {
        Box::pin(audio_is_sent_while_it_is_spoken())
    }),
    ("a_failure_after_the_first_byte_cuts_the_response", || {
        Box::pin(a_failure_after_the_first_byte_cuts_the_response())
    }),
    ("a_client_that_leaves_cancels_the_speech", || {
        Box::pin(a_client_that_leaves_cancels_the_speech())
    }),
    ("provider_failures_map_like_chat", || {
        Box::pin(provider_failures_map_like_chat())
    }),
    ("the_openai_route_uses_openai_when_configured", || {
        Box::pin(the_openai_route_uses_openai_when_configured())
    }),
];

/// Why espeak-ng cannot run here, if it cannot.
fn espeak_missing() -> Option<String> {
    let runs = std::process::Command::new("espeak-ng")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    (!runs).then(|| {
        "espeak-ng is not installed; install it (apt-get install espeak-ng, or \
         scripts/lib.sh ensure_tools) to run this case"
            .to_owned()
    })
}

fn run(case: Case) -> Result<Completion, Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("no Tokio runtime: {e}")))?;
    runtime.block_on(case());
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    let missing = espeak_missing();
    let mut trials = Vec::new();
    for &(name, case) in ESPEAK {
        let missing = missing.clone();
        trials.push(Trial::ignorable_test(name, move || match missing {
            None => run(case),
            Some(reason) if in_ci() => Err(format!("under CI: {reason}").into()),
            Some(reason) => Ok(Completion::ignored_with(reason)),
        }));
    }
    for &(name, case) in OTHERS {
        trials.push(Trial::test(name, move || run(case).map(|_| ())));
    }
    libtest_mimic::run(&args, trials).exit();
}

/// A system with a tts-worker (no chat-worker), and a token of a new tenant.
async fn system(opts: Opts) -> (System, String) {
    let system = System::start(opts.no_chat()).await;
    let token = system.token(Uuid::now_v7());
    (system, token)
}

async fn post(system: &System, token: &str, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", system.http))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The body, piece by piece as it arrives, with when each piece came; `Err` when the transfer
/// broke off.
async fn pieces(mut r: reqwest::Response) -> Result<Vec<(Instant, bytes::Bytes)>, String> {
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, r.chunk()).await {
            Err(_) => panic!("the body stalled"),
            Ok(Ok(Some(piece))) => out.push((Instant::now(), piece)),
            Ok(Ok(None)) => return Ok(out),
            Ok(Err(e)) => return Err(e.to_string()),
        }
    }
}

/// The start of a WAV clip's samples and the size its `data` chunk declares.
fn wav_data(clip: &[u8]) -> (usize, u32) {
    assert_eq!(&clip[..4], b"RIFF");
    assert_eq!(&clip[8..12], b"WAVE");
    let mut at = 12;
    while at + 8 <= clip.len() {
        let size = u32::from_le_bytes(clip[at + 4..at + 8].try_into().unwrap());
        if &clip[at..at + 4] == b"data" {
            return (at + 8, size);
        }
        at += 8 + size as usize + (size as usize & 1);
    }
    panic!("no data chunk");
}

/// The `data:` payloads of an SSE body.
fn sse_events(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// With no provider key: a chat with `settings.tts.enabled` over the WebSocket gets its text
/// and espeak-ng's audio, then a URL that plays, with one `complete`; `POST /chat` answers the
/// same with the clip's data.
async fn a_chat_that_speaks_over_the_websocket() {
    let system = System::start(Opts::new().tts()).await;
    let token = system.token(Uuid::now_v7());
    let (mut ws, _) = system.connect(&token).await;
    ws.send(
        json!({"type": "chat", "prompt": "Say something", "settings": {"tts": {"enabled": true}}}),
    )
    .await;
    let events = ws.until_complete().await;
    let kinds = support::kinds(&events);
    assert_eq!(
        kinds.iter().filter(|k| *k == "complete").count(),
        1,
        "{kinds:?}"
    );
    assert!(!support::text(&events).is_empty());
    let text_done = kinds
        .iter()
        .position(|k| k == "text_completed")
        .expect("text");
    let tts_done = kinds
        .iter()
        .position(|k| k == "tts_completed")
        .expect("speech");
    assert!(text_done < kinds.len() - 1 && tts_done < kinds.len() - 1);
    assert!(!kinds.iter().any(|k| k == "tts_not_requested"), "{kinds:?}");
    let audio: Vec<u8> = events
        .iter()
        .filter(|e| e["type"] == "audio_chunk")
        .flat_map(|e| {
            STANDARD
                .decode(e["data"]["data"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(&audio[..4], b"RIFF");
    let done = &events[tts_done]["data"];
    assert_eq!(done["provider"], "espeak");
    let url = done["audio_url"].as_str().unwrap();
    let r = reqwest::get(format!("{}{url}", system.http)).await.unwrap();
    assert_eq!(r.status(), 200);
    let clip = r.bytes().await.unwrap();
    assert_eq!(clip.len(), audio.len());
    let (start, declared) = wav_data(&clip);
    assert_eq!(declared as usize, clip.len() - start);

    let (status, body) = system
        .post(
            &token,
            "/chat",
            json!({"prompt": "And again", "settings": {"tts": {"enabled": true, "format": "pcm"}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["tts"]["format"], "pcm", "{body}");
    assert!(body["data"]["tts"]["audio_url"].is_string());
}

async fn generate_stores_a_clip_that_plays() {
    let (system, token) = system(Opts::new().tts()).await;
    let text = "Please water the tomatoes on Tuesday morning.";
    let (status, body) = system
        .post(&token, "/tts/generate", json!({"text": text}))
        .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["provider"], "espeak", "{data}");
    assert_eq!(data["format"], "wav");
    assert_eq!(data["characters"], json!(text.chars().count()));
    assert!(data["duration_s"].as_f64().unwrap() > 1.0, "{data}");
    let session_id: Uuid = data["session_id"].as_str().unwrap().parse().unwrap();
    assert!(data["task_id"].as_str().unwrap().parse::<Uuid>().is_ok());
    // The URL opens through the gateway, without a token, and is a whole WAV file.
    let url = data["audio_url"].as_str().unwrap();
    assert!(url.contains(data["key"].as_str().unwrap()), "{url}");
    let r = reqwest::get(format!("{}{url}", system.http)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "audio/wav");
    let clip = r.bytes().await.unwrap();
    assert_eq!(clip.len() as u64, data["bytes"].as_u64().unwrap());
    let (start, declared) = wav_data(&clip);
    assert_eq!(declared as usize, clip.len() - start);
    let riff = u32::from_le_bytes(clip[4..8].try_into().unwrap());
    assert_eq!(riff as usize, clip.len() - 8);
    // 22,050 Hz, 16-bit mono: the declared duration is the samples'.
    let seconds = declared as f64 / 44_100.0;
    assert!((seconds - data["duration_s"].as_f64().unwrap()).abs() < 0.01);

    // `save: false`: spoken, not stored.
    let (status, body) = system
        .post(
            &token,
            "/tts/generate",
            json!({"text": "Not kept.", "save": false, "session_id": session_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["audio_url"], Value::Null);
    assert_eq!(body["data"]["key"], Value::Null);
    assert!(body["data"]["bytes"].as_u64().unwrap() > 44);
    assert_eq!(body["data"]["session_id"], json!(session_id));

    // The session is the caller's: another user of the same tenant does not find it.
    let claims = common::auth::JwtAuth::hs256(common::testing::TEST_SECRET.as_bytes())
        .verify(&token)
        .unwrap();
    let other = system.token(claims.tenant_id);
    let (status, body) = system
        .post(
            &other,
            "/tts/generate",
            json!({"text": "Hello", "session_id": session_id}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
}

async fn stream_sends_the_audio_bytes() {
    let (system, token) = system(Opts::new().tts()).await;
    let r = post(
        &system,
        &token,
        "/tts/stream",
        json!({"text": "Streaming speech, straight to the speaker.", "format": "wav"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "audio/wav");
    assert_eq!(header(&r, "transfer-encoding"), "chunked");
    assert!(r.headers().get("content-length").is_none());
    assert!(header(&r, "x-task-id").parse::<Uuid>().is_ok());
    assert!(header(&r, "x-session-id").parse::<Uuid>().is_ok());
    let body: Vec<u8> = pieces(r)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|(_, p)| p)
        .collect();
    // A streamed WAV: the header as espeak-ng wrote it (its sizes are placeholders: the length is
    // not known when it goes out), then the samples.
    let (start, _) = wav_data(&body);
    assert!(body.len() - start > 22_050, "{} bytes", body.len());

    let r = post(
        &system,
        &token,
        "/tts/stream",
        json!({"text": "Raw samples.", "format": "pcm", "save": false}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "audio/pcm");
    let body = r.bytes().await.unwrap();
    assert_ne!(&body[..4], b"RIFF");
    assert!(body.len() > 1000 && body.len() % 2 == 0, "{}", body.len());
}

async fn refusals_and_worker_errors_have_statuses() {
    // No espeak-ng needed: every request here is refused before it would speak.
    let (system, token) = system(Opts::new().tts()).await;
    for path in ["/tts/generate", "/tts/stream"] {
        for (body, status, message) in [
            (json!({}), 400, "missing field `text`"),
            (json!({"text": " "}), 400, "text is empty"),
            (
                json!({"text": "hi", "speed": 9}),
                400,
                "speed must be between 0.25 and 4",
            ),
            (json!({"text": "hi", "speed": "fast"}), 400, "speed: "),
            (
                json!({"text": "hi", "voice": ""}),
                400,
                "voice must not be empty",
            ),
            (
                json!({"text": "hi", "session_id": "nope"}),
                400,
                "session_id is not a UUID",
            ),
            // Refused by the worker, mapped by the gateway.
            (
                json!({"text": "hi", "provider": "acme"}),
                400,
                "unknown speech provider",
            ),
            (
                json!({"text": "hi", "provider": "elevenlabs"}),
                400,
                "not configured",
            ),
            (
                json!({"text": "hi", "format": "mp3"}),
                400,
                "espeak speaks wav or pcm, not mp3",
            ),
            (
                json!({"text": "hi", "format": "ogg"}),
                400,
                "unknown audio format",
            ),
        ] {
            let (got, answer) = system.post(&token, path, body.clone()).await;
            assert_eq!(got, status, "{path} {body}: {answer}");
            assert_eq!(answer["success"], false, "{answer}");
            assert_eq!(answer["code"], status);
            let said = answer["message"].as_str().unwrap();
            assert!(said.contains(message), "{path} {body}: {said}");
        }
        let (status, answer) = system
            .post("not-a-token", path, json!({"text": "hi"}))
            .await;
        assert_eq!(status, 401, "{answer}");
    }
}

async fn the_openai_route_falls_back_to_espeak() {
    let (system, token) = system(Opts::new().tts()).await;
    // OpenAI's model and voice without an OpenAI key: espeak-ng speaks, with its own voice.
    let r = post(
        &system,
        &token,
        "/v1/audio/speech",
        json!({"model": "tts-1", "input": "Hello there", "voice": "alloy",
            "response_format": "wav"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "audio/wav");
    let clip = r.bytes().await.unwrap();
    assert!(clip.len() > wav_data(&clip).0 + 1000);

    let r = post(
        &system,
        &token,
        "/v1/audio/speech",
        json!({"model": "gpt-4o-mini-tts", "input": "Hello there", "voice": "coral",
            "response_format": "pcm", "stream_format": "sse"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("text/event-stream"));
    let events = sse_events(&r.text().await.unwrap());
    let (done, deltas) = events.split_last().unwrap();
    assert!(!deltas.is_empty());
    let audio: Vec<u8> = deltas
        .iter()
        .flat_map(|d| {
            assert_eq!(d["type"], "speech.audio.delta", "{d}");
            STANDARD.decode(d["audio"].as_str().unwrap()).unwrap()
        })
        .collect();
    assert!(audio.len() > 1000 && &audio[..4] != b"RIFF");
    assert_eq!(
        done,
        &json!({"type": "speech.audio.done",
            "usage": {"input_tokens": 3, "output_tokens": 0, "total_tokens": 3}})
    );

    // `<provider>/<model>` names espeak and its voice directly.
    let r = post(
        &system,
        &token,
        "/v1/audio/speech",
        json!({"model": "espeak/espeak-ng", "input": "Guten Tag", "voice": "de",
            "response_format": "wav"}),
    )
    .await;
    assert_eq!(r.status(), 200);
}

async fn the_openai_route_refuses_in_openais_format() {
    let (system, token) = system(Opts::new().tts()).await;
    for (body, status, param, code) in [
        // The SDK's default format, which espeak-ng cannot make.
        (
            json!({"model": "tts-1", "input": "hi", "voice": "alloy"}),
            400,
            Value::Null,
            json!("unsupported_option"),
        ),
        (
            json!({"model": "acme/x", "input": "hi", "response_format": "wav"}),
            404,
            json!("model"),
            json!("model_not_found"),
        ),
        (
            json!({"model": "elevenlabs", "input": "hi", "response_format": "wav"}),
            400,
            json!("model"),
            json!("provider_not_configured"),
        ),
        (
            json!({"model": "tts-1", "voice": "alloy"}),
            400,
            json!("input"),
            Value::Null,
        ),
        (
            json!({"model": "tts-1", "input": "hi", "response_format": "ogg"}),
            400,
            json!("response_format"),
            Value::Null,
        ),
        (
            json!({"model": "tts-1", "input": "hi", "speed": 0.1}),
            400,
            json!("speed"),
            Value::Null,
        ),
    ] {
        let r = post(&system, &token, "/v1/audio/speech", body.clone()).await;
        assert_eq!(r.status().as_u16(), status, "{body}");
        let answer: Value = r.json().await.unwrap();
        let error = &answer["error"];
        assert_eq!(error["type"], "invalid_request_error", "{body}: {answer}");
        assert_eq!(error["param"], param, "{body}: {answer}");
        assert_eq!(error["code"], code, "{body}: {answer}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let r = post(
        &system,
        "bad",
        "/v1/audio/speech",
        json!({"model": "tts-1"}),
    )
    .await;
    assert_eq!(r.status(), 401);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "invalid_api_key");
}

/// A system whose tts-worker speaks through provider-sim's OpenAI speech route, paced.
async fn with_sim(chunk_interval: Duration) -> (Simulator, System, String) {
    let sim = Simulator::start(SimConfig {
        chunk_interval,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (system, token) = system(Opts::new().tts().tts_openai_at(&sim.base_url())).await;
    (sim, system, token)
}

async fn audio_is_sent_while_it_is_spoken() {
    let (sim, system, token) = with_sim(Duration::from_millis(100)).await;
    // 20 characters × 60 ms: 1.2 s of audio, made in 12 paced pieces of 100 ms.
    let r = post(
        &system,
        &token,
        "/tts/stream",
        json!({"text": "Twenty characters ok", "format": "mp3"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "audio/mpeg");
    let pieces = pieces(r).await.unwrap();
    let made = sim.requests().pop().unwrap();
    assert!(made.finished);
    assert_eq!(made.body["model"], "gpt-4o-mini-tts");
    // The first bytes reached the client before the provider had made the last piece.
    let last_made = *made.unit_sent_at.last().unwrap();
    assert!(
        pieces[0].0 < last_made,
        "the audio came only once it was whole"
    );
    assert!(pieces.len() >= 3, "{} pieces", pieces.len());
    // Nothing lost or added on the way: the bytes are the stored clip's.
    let body: Vec<u8> = pieces.into_iter().flat_map(|(_, p)| p).collect();
    let (status, clip) = system
        .post(
            &token,
            "/tts/generate",
            json!({"text": "Twenty characters ok", "format": "mp3"}),
        )
        .await;
    assert_eq!(status, 200, "{clip}");
    assert_eq!(clip["data"]["bytes"], json!(body.len()));
}

async fn a_failure_after_the_first_byte_cuts_the_response() {
    let (sim, system, token) = with_sim(Duration::from_millis(20)).await;
    sim.push_script(Behaviour::DropMidStream { after_chunks: 3 });
    let r = post(
        &system,
        &token,
        "/tts/stream",
        json!({"text": "This text is cut off after a few pieces.", "format": "pcm"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let broken = pieces(r).await;
    assert!(broken.is_err(), "the body ended as if it were whole");

    // The same on the OpenAI route's events: an `error` event ends them.
    sim.push_script(Behaviour::DropMidStream { after_chunks: 3 });
    let r = post(
        &system,
        &token,
        "/v1/audio/speech",
        json!({"model": "tts-1", "input": "This text is cut off after a few pieces.",
            "voice": "nova", "stream_format": "sse"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let events = sse_events(&r.text().await.unwrap());
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error", "{events:?}");
    assert_eq!(last["error"]["code"], "upstream_connection");
    assert_eq!(events[0]["type"], "speech.audio.delta");
}

async fn a_client_that_leaves_cancels_the_speech() {
    let (sim, system, token) = with_sim(Duration::from_millis(100)).await;
    let r = post(
        &system,
        &token,
        "/tts/stream",
        json!({"text": "A long text that takes many seconds to speak at this pace.",
            "format": "mp3"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut r = r;
    let first = r.chunk().await.unwrap();
    assert!(first.is_some());
    drop(r);
    // The task is cancelled, which closes the provider's request.
    let closed = sim.wait_for_client_close(WAIT).await;
    let closed = closed.expect("the provider's request stayed open");
    assert!(!closed.finished);
}

async fn provider_failures_map_like_chat() {
    let (sim, system, token) = with_sim(Duration::ZERO).await;
    sim.push_script(Behaviour::Refused {
        status: 401,
        message: "Incorrect API key provided: sk-test".into(),
    });
    let (status, body) = system
        .post(&token, "/tts/generate", json!({"text": "hi"}))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.to_string().contains("sk-test"), "{body}");

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 3,
    });
    let r = post(&system, &token, "/tts/stream", json!({"text": "hi"})).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], false);

    sim.push_script(Behaviour::ServerError);
    let r = post(
        &system,
        &token,
        "/v1/audio/speech",
        json!({"model": "tts-1", "input": "hi", "voice": "nova"}),
    )
    .await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "api_error", "{body}");
}

async fn the_openai_route_uses_openai_when_configured() {
    let (sim, system, token) = with_sim(Duration::ZERO).await;
    let r = post(
        &system,
        &token,
        "/v1/audio/speech",
        json!({"model": "tts-1-hd", "input": "Hello from the SDK.", "voice": "nova",
            "speed": 1.25}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "audio/mpeg");
    assert!(!r.bytes().await.unwrap().is_empty());
    let made = sim.requests().pop().unwrap();
    assert_eq!(made.body["model"], "tts-1-hd");
    assert_eq!(made.body["voice"], "nova");
    assert_eq!(made.body["response_format"], "mp3");
    assert_eq!(made.body["speed"], 1.25);
    assert_eq!(made.texts, ["Hello from the SDK."]);
}
