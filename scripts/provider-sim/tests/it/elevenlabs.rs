//! ElevenLabs text to speech: the HTTP endpoints, and the `stream-input` WebSocket's buffering by
//! `chunk_length_schedule`, alignment, end of stream and failures.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use provider_sim::{Behaviour, Simulator, WireFormat};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{
    assert_audible, assert_paced, base64_decode, client, mp3_frames, pcm_samples, speech_config,
    speech_samples, start,
};

const KEY: &str = "xi-sim-test";
const VOICE: &str = "JBFqnCBsd6RMkjVDRZzb";
const TEXT: &str = "The first move is what sets everything in motion.";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn post_tts(sim: &Simulator, suffix: &str, query: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!(
            "{}/v1/text-to-speech/{VOICE}{suffix}?{query}",
            sim.root_url()
        ))
        .header("xi-api-key", KEY)
        .json(body)
        .send()
        .await
        .expect("send text-to-speech request")
}

fn tts_body() -> Value {
    json!({"text": TEXT, "model_id": "eleven_flash_v2_5",
           "voice_settings": {"stability": 0.5, "similarity_boost": 0.75}})
}

#[tokio::test]
async fn convert_returns_the_whole_clip_in_the_asked_format() {
    let sim = start(speech_config(0)).await;
    let response = post_tts(&sim, "", "output_format=pcm_16000", &tts_body()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/pcm");
    let samples = pcm_samples(&response.bytes().await.unwrap());
    assert_eq!(samples.len(), speech_samples(TEXT.len(), 16_000, 1.0));
    assert_audible(&samples);

    let ulaw = post_tts(&sim, "", "output_format=ulaw_8000", &tts_body())
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(ulaw.len(), speech_samples(TEXT.len(), 8_000, 1.0));

    // The default format is mp3_44100_128: MPEG-1 frames of 417 bytes and 1152 samples.
    let mp3 = post_tts(&sim, "", "", &tts_body()).await;
    assert_eq!(mp3.headers()["content-type"], "audio/mpeg");
    let (frames, per_frame) = mp3_frames(&mp3.bytes().await.unwrap(), 417, 1152);
    assert_eq!(
        frames,
        speech_samples(TEXT.len(), 44_100, 1.0).div_ceil(per_frame)
    );

    let record = &sim.requests()[0];
    assert_eq!(record.format, WireFormat::ElevenLabs);
    assert_eq!(record.authorization.as_deref(), Some(KEY));
    assert_eq!(record.query.as_deref(), Some("output_format=pcm_16000"));
    assert_eq!(record.texts, [TEXT]);
}

#[tokio::test]
async fn stream_sends_paced_chunks_and_voice_speed_applies() {
    let sim = start(speech_config(5)).await;
    let mut body = tts_body();
    body["voice_settings"]["speed"] = json!(1.2);
    let response = post_tts(&sim, "/stream", "output_format=pcm_24000", &body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-length").is_none());
    let samples = pcm_samples(&response.bytes().await.unwrap());
    assert_eq!(samples.len(), speech_samples(TEXT.len(), 24_000, 1.2));
    let record = &sim.requests()[0];
    // 49 characters at 50 ms each: 2.45 s in 100 ms chunks.
    assert_eq!(record.chunks_sent, 25);
    assert_paced(&record.unit_sent_at, Duration::from_millis(5));
}

#[tokio::test]
async fn http_refusals_use_the_detail_shape() {
    let sim = start(speech_config(0)).await;
    let unauthenticated = client()
        .post(format!("{}/v1/text-to-speech/{VOICE}", sim.root_url()))
        .json(&tts_body())
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let error: Value = unauthenticated.json().await.unwrap();
    assert_eq!(error["detail"]["status"], "invalid_api_key");

    let opus = post_tts(&sim, "", "output_format=opus_48000_64", &tts_body()).await;
    assert_eq!(opus.status(), 400);
    let error: Value = opus.json().await.unwrap();
    assert_eq!(error["detail"]["status"], "unsupported_in_simulator");

    let unknown = post_tts(&sim, "", "output_format=pcm_12345", &tts_body()).await;
    assert_eq!(unknown.status(), 422);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["detail"][0]["loc"], json!(["query", "output_format"]));

    let no_text = post_tts(&sim, "", "", &json!({"model_id": "eleven_flash_v2_5"})).await;
    assert_eq!(no_text.status(), 422);

    let too_long = json!({"text": "x".repeat(10_001), "model_id": "eleven_multilingual_v2"});
    let response = post_tts(&sim, "", "", &too_long).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["detail"]["status"], "max_character_limit_exceeded");
    assert!(sim.requests().is_empty());

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 2,
    });
    let limited = post_tts(&sim, "/stream", "", &tts_body()).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["detail"]["status"], "too_many_concurrent_requests");
}

fn socket_url(sim: &Simulator, query: &str) -> String {
    let root = sim.root_url().replacen("http://", "ws://", 1);
    format!("{root}/v1/text-to-speech/{VOICE}/stream-input?model_id=eleven_flash_v2_5&{query}")
}

async fn connect(sim: &Simulator, query: &str, key: Option<&str>) -> Socket {
    try_connect(sim, query, key)
        .await
        .expect("websocket upgrade")
}

async fn try_connect(
    sim: &Simulator,
    query: &str,
    key: Option<&str>,
) -> Result<Socket, tungstenite::Error> {
    let mut request = socket_url(sim, query).into_client_request().unwrap();
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("xi-api-key", key.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("send websocket message");
}

/// The next message, which must be a text frame holding JSON.
async fn receive(socket: &mut Socket) -> Value {
    let text = receive_text(socket).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn receive_text(socket: &mut Socket) -> String {
    let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a message within 5 s")
        .expect("the socket is open")
        .expect("a good frame");
    match message {
        Message::Text(text) => text.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The text an audio message speaks, checking its audio and alignment agree with it.
fn spoken(message: &Value, rate: u32) -> String {
    assert_eq!(message["isFinal"], false);
    let alignment = &message["alignment"];
    assert_eq!(alignment, &message["normalizedAlignment"]);
    let chars: String = alignment["chars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let count = chars.chars().count();
    let starts = alignment["charStartTimesMs"].as_array().unwrap();
    let durations = alignment["charsDurationsMs"].as_array().unwrap();
    assert_eq!(starts.len(), count);
    assert_eq!(durations.len(), count);
    assert_eq!(starts[1], 60);
    assert!(durations.iter().all(|d| d == 60));
    let samples = pcm_samples(&base64_decode(message["audio"].as_str().unwrap()));
    assert_eq!(samples.len(), speech_samples(count, rate, 1.0));
    chars
}

fn init(schedule: &[u64]) -> Value {
    json!({"text": " ", "voice_settings": {"stability": 0.5, "similarity_boost": 0.8},
           "generation_config": {"chunk_length_schedule": schedule}})
}

#[tokio::test]
async fn audio_follows_the_chunk_length_schedule_flushes_and_the_end() {
    let sim = start(speech_config(0)).await;
    let mut socket = connect(&sim, "output_format=pcm_24000", Some(KEY)).await;
    send(&mut socket, init(&[50, 60])).await;

    // 30 + 25 characters: the first threshold (50) is crossed by the second piece only.
    let first = format!("{} ", "a".repeat(29));
    let second = format!("{} ", "b".repeat(24));
    send(&mut socket, json!({"text": first})).await;
    send(&mut socket, json!({"text": second})).await;
    assert_eq!(
        spoken(&receive(&mut socket).await, 24_000),
        format!("{first}{second}")
    );

    // 40 characters stay under the next threshold (60) until a flush.
    let third = format!("{} ", "c".repeat(39));
    send(&mut socket, json!({"text": third})).await;
    send(&mut socket, json!({"text": "", "flush": true})).await;
    assert_eq!(spoken(&receive(&mut socket).await, 24_000), third);

    // Past the schedule's end its last value applies; the end of input generates the rest.
    let fourth = format!("{} ", "d".repeat(69));
    let fifth = "the end ";
    send(&mut socket, json!({"text": fourth})).await;
    send(&mut socket, json!({"text": fifth})).await;
    send(&mut socket, json!({"text": ""})).await;
    assert_eq!(spoken(&receive(&mut socket).await, 24_000), fourth);
    assert_eq!(spoken(&receive(&mut socket).await, 24_000), fifth);
    let last = receive(&mut socket).await;
    assert_eq!(last, json!({"audio": null, "isFinal": true}));
    match socket.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected a normal close, got {other:?}"),
    }

    let record = &sim.requests()[0];
    assert_eq!(record.format, WireFormat::ElevenLabs);
    assert!(record.path.ends_with("/stream-input"));
    assert_eq!(record.authorization.as_deref(), Some(KEY));
    assert_eq!(
        record.body["generation_config"]["chunk_length_schedule"],
        json!([50, 60])
    );
    assert_eq!(
        record.texts,
        [first, second, third, fourth, fifth.to_owned()]
    );
    assert_eq!(record.chunks_sent, 4);
    assert!(record.finished);
    assert!(!record.client_closed);
}

#[tokio::test]
async fn the_key_may_come_in_the_first_message_and_audio_messages_are_paced() {
    let sim = start(speech_config(20)).await;
    let mut socket = connect(&sim, "output_format=pcm_16000", None).await;
    let mut first = init(&[50]);
    first["xi_api_key"] = json!(KEY);
    send(&mut socket, first).await;
    for _ in 0..3 {
        send(&mut socket, json!({"text": format!("{} ", "x".repeat(59))})).await;
    }
    send(&mut socket, json!({"text": ""})).await;
    for _ in 0..3 {
        assert_eq!(spoken(&receive(&mut socket).await, 16_000).len(), 60);
    }
    assert_eq!(receive(&mut socket).await["isFinal"], true);
    let record = &sim.requests()[0];
    assert_eq!(record.authorization.as_deref(), Some(KEY));
    assert_paced(&record.unit_sent_at, Duration::from_millis(20));
}

#[tokio::test]
async fn no_key_is_an_error_and_a_policy_close() {
    let sim = start(speech_config(0)).await;
    let mut socket = connect(&sim, "", None).await;
    send(&mut socket, init(&[120])).await;
    let error = receive(&mut socket).await;
    assert_eq!(error["error"], "invalid_api_key");
    assert_eq!(error["code"], 1008);
    match socket.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1008),
        other => panic!("expected a policy close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_closing_before_is_final_is_recorded_with_its_text() {
    let sim = start(speech_config(0)).await;
    let mut socket = connect(&sim, "output_format=pcm_24000", Some(KEY)).await;
    send(&mut socket, init(&[50])).await;
    send(&mut socket, json!({"text": "Hello there, ", "flush": true})).await;
    spoken(&receive(&mut socket).await, 24_000);
    send(&mut socket, json!({"text": "and goodbye "})).await;
    socket.close(None).await.unwrap();

    let closed = sim
        .wait_for_client_close(Duration::from_secs(5))
        .await
        .expect("client close recorded");
    assert!(closed.path.ends_with("/stream-input"));
    assert_eq!(closed.texts, ["Hello there, ", "and goodbye "]);
    assert_eq!(closed.chunks_sent, 1);
    assert!(!closed.finished);
}

#[tokio::test]
async fn rate_limit_refuses_the_upgrade_with_retry_after() {
    let sim = start(speech_config(0)).await;
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 4,
    });
    match try_connect(&sim, "", Some(KEY)).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers()["retry-after"], "4");
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["detail"]["status"], "too_many_concurrent_requests");
        }
        other => panic!("expected an HTTP 429, got {other:?}"),
    }
    // The next session is served normally.
    let mut socket = connect(&sim, "output_format=pcm_8000", Some(KEY)).await;
    send(&mut socket, init(&[50])).await;
    send(&mut socket, json!({"text": ""})).await;
    assert_eq!(receive(&mut socket).await["isFinal"], true);
}

/// Opens a session scripted with `behaviour` and sends three 60-character generations.
async fn scripted_session(sim: &Simulator, behaviour: Behaviour) -> Socket {
    sim.push_script(behaviour);
    let mut socket = connect(sim, "output_format=pcm_16000", Some(KEY)).await;
    send(&mut socket, init(&[50])).await;
    for _ in 0..3 {
        send(&mut socket, json!({"text": format!("{} ", "y".repeat(59))})).await;
    }
    send(&mut socket, json!({"text": ""})).await;
    socket
}

#[tokio::test]
async fn drop_mid_stream_resets_the_connection_without_a_close_frame() {
    let sim = start(speech_config(0)).await;
    let mut socket = scripted_session(&sim, Behaviour::DropMidStream { after_chunks: 1 }).await;
    spoken(&receive(&mut socket).await, 16_000);
    match socket.next().await {
        Some(Err(_)) | None => {}
        other => panic!("expected a reset, got {other:?}"),
    }
    let record = &sim.requests()[0];
    assert_eq!(record.chunks_sent, 1);
    assert!(!record.finished);
    assert!(!record.client_closed);
}

#[tokio::test]
async fn bad_audio_and_malformed_frames_then_is_final() {
    let sim = start(speech_config(0)).await;
    let mut socket = scripted_session(&sim, Behaviour::BadAudio { after_chunks: 1 }).await;
    spoken(&receive(&mut socket).await, 16_000);
    let bad = receive(&mut socket).await;
    let audio = bad["audio"].as_str().unwrap();
    assert!(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, audio).is_err(),
        "{audio}"
    );
    assert_eq!(receive(&mut socket).await["isFinal"], true);

    let mut socket = scripted_session(&sim, Behaviour::MalformedLine { after_chunks: 0 }).await;
    let text = receive_text(&mut socket).await;
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert_eq!(receive(&mut socket).await["isFinal"], true);
    assert!(sim.requests().iter().all(|r| r.finished));
}

#[tokio::test]
async fn error_event_is_an_error_message_and_an_internal_error_close() {
    let sim = start(speech_config(0)).await;
    let mut socket = scripted_session(&sim, Behaviour::ErrorEvent { after_chunks: 2 }).await;
    spoken(&receive(&mut socket).await, 16_000);
    spoken(&receive(&mut socket).await, 16_000);
    let error = receive(&mut socket).await;
    assert_eq!(error["code"], 1011);
    assert!(error["message"].is_string());
    match socket.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1011),
        other => panic!("expected an internal-error close, got {other:?}"),
    }
}
