//! Deepgram live speech to text, the WebSocket `GET /v1/listen`: results paced by the audio
//! received, interim and final results, `UtteranceEnd`, `SpeechStarted`, `Finalize`,
//! `CloseStream` and `Metadata`, `KeepAlive` and the idle timeout, client closes and failures.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{client, start, stt_config, wav};

const KEY: &str = "dg-sim-test";
/// Linear16 at 16 kHz: 100 ms of audio is 3200 bytes.
const FRAME: usize = 3_200;
const LINEAR16: &str = "model=nova-3&encoding=linear16&sample_rate=16000&channels=1";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn url(sim: &Simulator, query: &str) -> String {
    let root = sim.root_url().replacen("http://", "ws://", 1);
    format!("{root}/v1/listen?{query}")
}

async fn try_connect(
    sim: &Simulator,
    query: &str,
    auth: Option<(&'static str, String)>,
) -> Result<(Socket, tungstenite::handshake::client::Response), tungstenite::Error> {
    let mut request = url(sim, query).into_client_request().unwrap();
    if let Some((name, value)) = auth {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await
}

async fn connect(sim: &Simulator, query: &str) -> Socket {
    let auth = ("authorization", format!("Token {KEY}"));
    try_connect(sim, query, Some(auth))
        .await
        .expect("websocket upgrade")
        .0
}

/// `count` frames of 100 ms of linear16, each byte telling its frame apart for the digest.
fn frames(count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|i| vec![(i % 251) as u8; FRAME]).collect()
}

async fn send_audio(socket: &mut Socket, frames: &[Vec<u8>]) {
    for frame in frames {
        socket
            .send(Message::binary(frame.clone()))
            .await
            .expect("send audio");
    }
}

async fn send_json(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("send control message");
}

/// The next message, which must be a text frame holding JSON.
async fn receive(socket: &mut Socket) -> Value {
    let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a message within 5 s")
        .expect("the socket is open")
        .expect("a good frame");
    match message {
        Message::Text(text) => {
            serde_json::from_str(text.as_str()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        }
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The close frame's code and reason, which must be the next frame.
async fn close_frame(socket: &mut Socket) -> (u16, String) {
    let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a frame within 5 s");
    match message {
        Some(Ok(Message::Close(Some(frame)))) => {
            (u16::from(frame.code), frame.reason.as_str().to_owned())
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

fn transcript(results: &Value) -> &str {
    results["channel"]["alternatives"][0]["transcript"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn interim_results_a_final_per_utterance_then_metadata_on_close_stream() {
    let sim = start(stt_config(0)).await;
    let query = format!(
        "{LINEAR16}&interim_results=true&punctuate=true&utterance_end_ms=1000&vad_events=true"
    );
    let mut socket = connect(&sim, &query).await;
    let audio = frames(36);
    // Speech starts with the first audio.
    send_audio(&mut socket, &audio[..1]).await;
    let started = receive(&mut socket).await;
    assert_eq!(
        started,
        json!({"type": "SpeechStarted", "channel": [0], "timestamp": 0.0})
    );
    // Each word lasts 400 ms: four frames hear one more word and bring an interim result.
    send_audio(&mut socket, &audio[1..4]).await;
    let first = receive(&mut socket).await;
    assert_eq!(first["type"], "Results");
    assert_eq!(first["is_final"], false);
    assert_eq!(first["speech_final"], false);
    assert_eq!(first["from_finalize"], false);
    assert_eq!(first["channel_index"], json!([0, 1]));
    assert_eq!(first["start"], 0.0);
    assert_eq!(first["duration"], 0.4);
    assert_eq!(transcript(&first), "The");
    assert_eq!(first["metadata"]["model_info"]["arch"], "nova-3");
    let word = &first["channel"]["alternatives"][0]["words"][0];
    assert_eq!(
        *word,
        json!({"word": "the", "start": 0.0, "end": 0.4, "confidence": 0.99,
               "punctuated_word": "The"})
    );
    send_audio(&mut socket, &audio[4..32]).await;
    for words in 2..=8 {
        let interim = receive(&mut socket).await;
        assert_eq!(interim["is_final"], false);
        assert_eq!(
            interim["channel"]["alternatives"][0]["words"]
                .as_array()
                .unwrap()
                .len(),
            words
        );
    }
    // The ninth word ends the sentence: a final result, then the utterance's end.
    send_audio(&mut socket, &audio[32..]).await;
    let last = receive(&mut socket).await;
    assert_eq!(last["is_final"], true);
    assert_eq!(last["speech_final"], true);
    assert_eq!(last["start"], 0.0);
    assert_eq!(last["duration"], 3.6);
    assert_eq!(
        transcript(&last),
        "The quick brown fox jumps over the lazy dog."
    );
    let end = receive(&mut socket).await;
    assert_eq!(
        end,
        json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 3.6})
    );

    send_json(&mut socket, json!({"type": "CloseStream"})).await;
    let metadata = receive(&mut socket).await;
    assert_eq!(metadata["type"], "Metadata");
    assert_eq!(metadata["duration"], 3.6);
    assert_eq!(metadata["channels"], 1);
    assert_eq!(metadata["request_id"], last["metadata"]["request_id"]);
    assert_eq!(
        metadata["sha256"],
        format!("{:x}", Sha256::digest(audio.concat()))
    );
    assert_eq!(close_frame(&mut socket).await.0, 1000);

    let record = &sim.requests()[0];
    assert_eq!(record.format, WireFormat::Deepgram);
    assert_eq!(record.authorization.as_deref(), Some("Token dg-sim-test"));
    assert_eq!(record.audio_bytes, 36 * FRAME as u64);
    assert_eq!(record.audio_duration, Duration::from_millis(3_600));
    assert_eq!(record.audio_frames_at.len(), 36);
    // Eight interim results and one final.
    assert_eq!(record.chunks_sent, 9);
    assert!(record.finished);
    assert!(!record.client_closed);
}

#[tokio::test]
async fn finalize_makes_what_was_heard_final_and_close_stream_flushes_the_rest() {
    let sim = start(stt_config(0)).await;
    let mut socket = connect(&sim, LINEAR16).await;
    // 1 s: two words and half of the third.
    send_audio(&mut socket, &frames(10)).await;
    send_json(&mut socket, json!({"type": "Finalize"})).await;
    let finalized = receive(&mut socket).await;
    assert_eq!(finalized["is_final"], true);
    assert_eq!(finalized["from_finalize"], true);
    assert_eq!(finalized["speech_final"], false);
    assert_eq!(finalized["start"], 0.0);
    assert_eq!(finalized["duration"], 1.0);
    // Without punctuate, words are bare.
    assert_eq!(transcript(&finalized), "the quick");

    // 600 ms more: the third and fourth words, flushed by CloseStream; no interim results asked.
    send_audio(&mut socket, &frames(6)).await;
    send_json(&mut socket, json!({"type": "CloseStream"})).await;
    let flushed = receive(&mut socket).await;
    assert_eq!(flushed["is_final"], true);
    assert_eq!(flushed["from_finalize"], false);
    assert_eq!(flushed["start"], 1.0);
    assert_eq!(flushed["duration"], 0.6);
    assert_eq!(transcript(&flushed), "brown fox");
    let metadata = receive(&mut socket).await;
    assert_eq!(metadata["type"], "Metadata");
    assert_eq!(metadata["duration"], 1.6);
    assert_eq!(close_frame(&mut socket).await.0, 1000);
    assert!(sim.requests()[0].finished);
}

#[tokio::test]
async fn a_wav_stream_is_timed_by_its_header_and_an_empty_frame_closes_it() {
    let sim = start(stt_config(0)).await;
    // No encoding: the first frame's WAV header says 8 kHz, 16 000 bytes a second.
    let mut socket = connect(&sim, "model=nova-3").await;
    let clip = wav(8_000, 800);
    let (header_and_some, rest) = clip.split_at(44 + 1_000);
    send_audio(&mut socket, &[header_and_some.to_vec(), rest.to_vec()]).await;
    socket.send(Message::binary(Vec::new())).await.unwrap();
    let flushed = receive(&mut socket).await;
    assert_eq!(flushed["is_final"], true);
    assert_eq!(flushed["duration"], 0.8);
    assert_eq!(transcript(&flushed), "the quick");
    assert_eq!(receive(&mut socket).await["type"], "Metadata");
    assert_eq!(close_frame(&mut socket).await.0, 1000);
    assert_eq!(sim.requests()[0].audio_bytes, clip.len() as u64);
}

#[tokio::test]
async fn keep_alive_holds_an_idle_stream_open_until_the_timeout_closes_it() {
    let sim = start(SimConfig {
        live_idle_timeout: Duration::from_millis(500),
        ..stt_config(0)
    })
    .await;
    let mut socket = connect(&sim, LINEAR16).await;
    send_audio(&mut socket, &frames(1)).await;
    // 800 ms of KeepAlive every 100 ms: longer than the timeout, and still open.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send_json(&mut socket, json!({"type": "KeepAlive"})).await;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(100), socket.next())
            .await
            .is_err(),
        "nothing is sent to a KeepAlive"
    );
    // Then silence: NET-0001.
    let (code, reason) = close_frame(&mut socket).await;
    assert_eq!(code, 1011);
    assert!(reason.contains("net0001"), "{reason}");
    let record = &sim.requests()[0];
    assert!(!record.client_closed);
    assert!(!record.finished);
    assert!(
        sim.wait_for_client_close(Duration::from_millis(100))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_client_closing_mid_stream_is_recorded_with_its_audio() {
    let sim = start(stt_config(0)).await;
    let mut socket = connect(&sim, LINEAR16).await;
    send_audio(&mut socket, &frames(5)).await;
    socket.close(None).await.unwrap();
    let closed = sim
        .wait_for_client_close(Duration::from_secs(5))
        .await
        .expect("client close recorded");
    assert_eq!(closed.format, WireFormat::Deepgram);
    assert_eq!(closed.audio_bytes, 5 * FRAME as u64);
    assert_eq!(closed.audio_duration, Duration::from_millis(500));
    assert_eq!(closed.audio_frames_at.len(), 5);
    assert!(closed.audio_frames_at.windows(2).all(|w| w[0] <= w[1]));
    assert!(closed.closed_at.is_some());
    assert!(!closed.finished);

    // Other processes (benchmarks) read the same over HTTP, with wall-clock arrival times.
    let log: Value = client()
        .get(format!("http://{}/_sim/requests", sim.addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let record = &log[0];
    assert_eq!(record["format"], "deepgram");
    assert_eq!(record["audio_bytes"], 5 * FRAME);
    assert_eq!(record["audio_duration_ms"], 500);
    assert_eq!(record["audio_frames_at_ms"].as_array().unwrap().len(), 5);
    let arrivals = record["audio_frames_at_unix_us"].as_array().unwrap();
    assert_eq!(arrivals.len(), 5);
    assert!(arrivals[0].as_u64().unwrap() >= record["received_at_unix_us"].as_u64().unwrap());
    assert_eq!(record["client_closed"], true);
}

#[tokio::test]
async fn the_key_as_a_subprotocol_or_none_at_all() {
    let sim = start(stt_config(0)).await;
    let (mut socket, response) = try_connect(
        &sim,
        LINEAR16,
        Some(("sec-websocket-protocol", format!("token, {KEY}"))),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "token");
    assert!(response.headers().contains_key("dg-request-id"));
    send_json(&mut socket, json!({"type": "CloseStream"})).await;
    assert_eq!(receive(&mut socket).await["type"], "Metadata");
    assert_eq!(
        sim.requests()[0].authorization.as_deref(),
        Some("token, dg-sim-test")
    );

    match try_connect(&sim, LINEAR16, None).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["err_code"], "INVALID_AUTH");
        }
        other => panic!("expected an HTTP 401, got {other:?}"),
    }
    let no_rate = ("authorization", format!("Token {KEY}"));
    match try_connect(&sim, "encoding=linear16", Some(no_rate)).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected an HTTP 400, got {other:?}"),
    }
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn rate_limits_refuse_the_upgrade_and_mid_stream_failures_play_out() {
    let sim = start(stt_config(0)).await;
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 4,
    });
    let auth = ("authorization", format!("Token {KEY}"));
    match try_connect(&sim, LINEAR16, Some(auth)).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers()["retry-after"], "4");
        }
        other => panic!("expected an HTTP 429, got {other:?}"),
    }

    // Malformed: after one result a frame that is not JSON, and the stream goes on.
    sim.push_script(Behaviour::MalformedLine { after_chunks: 1 });
    let mut socket = connect(&sim, &format!("{LINEAR16}&interim_results=true")).await;
    send_audio(&mut socket, &frames(8)).await;
    assert_eq!(transcript(&receive(&mut socket).await), "the");
    match socket.next().await {
        Some(Ok(Message::Text(text))) => assert_eq!(text.as_str(), "{not json"),
        other => panic!("expected the malformed frame, got {other:?}"),
    }
    assert_eq!(transcript(&receive(&mut socket).await), "the quick");
    // CloseStream makes the interim segment final.
    send_json(&mut socket, json!({"type": "CloseStream"})).await;
    let last = receive(&mut socket).await;
    assert_eq!(
        (transcript(&last), &last["is_final"]),
        ("the quick", &json!(true))
    );
    assert_eq!(receive(&mut socket).await["type"], "Metadata");

    // Error event: after one result, an internal-error close.
    sim.push_script(Behaviour::ErrorEvent { after_chunks: 1 });
    let mut socket = connect(&sim, &format!("{LINEAR16}&interim_results=true")).await;
    send_audio(&mut socket, &frames(8)).await;
    receive(&mut socket).await;
    assert_eq!(close_frame(&mut socket).await.0, 1011);

    // Drop: after one result, the connection is reset without a close frame.
    sim.push_script(Behaviour::DropMidStream { after_chunks: 1 });
    let mut socket = connect(&sim, &format!("{LINEAR16}&interim_results=true")).await;
    send_audio(&mut socket, &frames(8)).await;
    receive(&mut socket).await;
    match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
        Ok(Some(Err(_)) | None) => {}
        other => panic!("expected a reset, got {other:?}"),
    }
    let records = sim.requests();
    let dropped = records.last().unwrap();
    assert_eq!(dropped.chunks_sent, 1);
    assert!(!dropped.finished && !dropped.client_closed);
}
