//! OpenAI text to speech, `POST /v1/audio/speech`: real audio in every supported format, SSE
//! events, the API's refusals and the failure behaviours.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use provider_sim::{Behaviour, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::support::{
    API_KEY, assert_audible, assert_paced, base64_decode, client, mp3_frames, parse_events,
    parse_wav, pcm_samples, speech_config, speech_samples, start,
};

/// 11 characters: 660 ms of speech, 15 840 samples at 24 kHz.
const INPUT: &str = "Hello world";

fn speech_body(format: &str) -> Value {
    json!({"model": "gpt-4o-mini-tts", "input": INPUT, "voice": "coral", "response_format": format})
}

async fn post_speech(sim: &Simulator, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/audio/speech", sim.base_url()))
        .bearer_auth(API_KEY)
        .json(body)
        .send()
        .await
        .expect("send speech request")
}

#[tokio::test]
async fn wav_is_valid_and_as_long_as_the_text_says() {
    let sim = start(speech_config(5)).await;
    let response = post_speech(&sim, &speech_body("wav")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/wav");
    assert!(
        response.headers().get("content-length").is_none(),
        "streamed with chunked transfer encoding"
    );
    let (rate, samples) = parse_wav(&response.bytes().await.unwrap());
    assert_eq!(rate, 24_000);
    assert_eq!(samples.len(), speech_samples(INPUT.len(), 24_000, 1.0));
    assert_audible(&samples);

    let record = &sim.requests()[0];
    assert_eq!(record.format, WireFormat::OpenAiSpeech);
    assert_eq!(record.texts, [INPUT]);
    assert_eq!(record.authorization.as_deref(), Some("Bearer sk-sim-test"));
    // 660 ms in chunks of 100 ms.
    assert_eq!(record.chunks_sent, 7);
    assert_eq!(record.unit_sent_at.len(), 7);
    assert_paced(&record.unit_sent_at, Duration::from_millis(5));
    assert!(record.finished);
}

#[tokio::test]
async fn pcm_is_raw_24khz_samples_and_speed_shortens_it() {
    let sim = start(speech_config(0)).await;
    let mut body = speech_body("pcm");
    let response = post_speech(&sim, &body).await;
    assert_eq!(response.headers()["content-type"], "audio/pcm");
    let samples = pcm_samples(&response.bytes().await.unwrap());
    assert_eq!(samples.len(), speech_samples(INPUT.len(), 24_000, 1.0));
    assert_audible(&samples);

    body["speed"] = json!(2.0);
    let fast = pcm_samples(&post_speech(&sim, &body).await.bytes().await.unwrap());
    assert_eq!(fast.len(), speech_samples(INPUT.len(), 24_000, 2.0));
    assert_eq!(fast.len() * 2, samples.len());
}

#[tokio::test]
async fn mp3_is_whole_frames_covering_the_text() {
    let sim = start(speech_config(0)).await;
    // mp3 is the default format.
    let mut body = speech_body("mp3");
    body.as_object_mut().unwrap().remove("response_format");
    let response = post_speech(&sim, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    // MPEG-2 Layer III, 24 kHz, 64 kbit/s: 192-byte frames of 576 samples.
    let (frames, per_frame) = mp3_frames(&response.bytes().await.unwrap(), 192, 576);
    assert_eq!(
        frames,
        speech_samples(INPUT.len(), 24_000, 1.0).div_ceil(per_frame)
    );
}

#[tokio::test]
async fn sse_sends_base64_deltas_then_done_with_usage() {
    let sim = start(speech_config(0)).await;
    let mut body = speech_body("wav");
    body["stream_format"] = json!("sse");
    let response = post_speech(&sim, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = parse_events(&response.text().await.unwrap());
    let (done, deltas) = events.split_last().unwrap();
    assert_eq!(deltas.len(), 7);
    let mut audio = Vec::new();
    for delta in deltas {
        assert_eq!(delta.event, None);
        let delta = delta.json();
        assert_eq!(delta["type"], "speech.audio.delta");
        audio.extend(base64_decode(delta["audio"].as_str().unwrap()));
    }
    let (_, samples) = parse_wav(&audio);
    assert_eq!(samples.len(), speech_samples(INPUT.len(), 24_000, 1.0));
    let done = done.json();
    assert_eq!(done["type"], "speech.audio.done");
    // Two input words, one output token per chunk.
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 2, "output_tokens": 7, "total_tokens": 9})
    );
}

#[tokio::test]
async fn refusals_come_in_openai_error_shape_and_are_not_recorded() {
    let sim = start(speech_config(0)).await;
    let unauthenticated = client()
        .post(format!("{}/audio/speech", sim.base_url()))
        .json(&speech_body("wav"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let error: Value = unauthenticated.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");

    let cases = [
        (
            json!({"input": "x".repeat(4097)}),
            "input",
            "string_above_max_length",
        ),
        (json!({"voice": "bob"}), "voice", "invalid_value"),
        (
            json!({"response_format": "ogg"}),
            "response_format",
            "invalid_value",
        ),
        (
            json!({"response_format": "opus"}),
            "response_format",
            "unsupported_in_simulator",
        ),
        (json!({"speed": 5}), "speed", "decimal_above_max_value"),
        (
            json!({"model": "tts-1", "stream_format": "sse"}),
            "stream_format",
            "unsupported_value",
        ),
    ];
    for (patch, param, code) in cases {
        let mut body = speech_body("wav");
        for (key, value) in patch.as_object().unwrap() {
            body[key] = value.clone();
        }
        let response = post_speech(&sim, &body).await;
        assert_eq!(response.status(), 400, "{patch}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], param, "{patch}");
        assert_eq!(error["error"]["code"], code, "{patch}");
    }
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn scripted_refusals_and_rate_limits() {
    let sim = start(speech_config(0)).await;
    sim.push_script(Behaviour::Refused {
        status: 401,
        message: "Incorrect API key provided: sk-sim-***".to_owned(),
    });
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 3,
    });
    let refused = post_speech(&sim, &speech_body("pcm")).await;
    assert_eq!(refused.status(), 401);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(
        error["error"]["message"],
        "Incorrect API key provided: sk-sim-***"
    );
    let limited = post_speech(&sim, &speech_body("pcm")).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "3");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_exceeded");
    assert_eq!(post_speech(&sim, &speech_body("pcm")).await.status(), 200);
    assert!(sim.requests().iter().take(2).all(|r| r.chunks_sent == 0));
}

#[tokio::test]
async fn drop_and_error_event_cut_a_raw_audio_stream() {
    let sim = start(speech_config(0)).await;
    for behaviour in [
        Behaviour::DropMidStream { after_chunks: 2 },
        // Raw bytes cannot carry an error, so the connection is cut instead.
        Behaviour::ErrorEvent { after_chunks: 2 },
    ] {
        sim.push_script(behaviour.clone());
        let response = post_speech(&sim, &speech_body("pcm")).await;
        assert_eq!(response.status(), 200);
        let result = response.bytes().await;
        assert!(result.is_err(), "{behaviour:?}: body ended cleanly");
    }
    for record in sim.requests() {
        assert_eq!(record.chunks_sent, 2);
        assert!(!record.finished);
        assert!(!record.client_closed);
    }
}

#[tokio::test]
async fn malformed_raw_audio_ends_with_half_a_sample() {
    let sim = start(speech_config(0)).await;
    sim.push_script(Behaviour::MalformedLine { after_chunks: 2 });
    let bytes = post_speech(&sim, &speech_body("pcm"))
        .await
        .bytes()
        .await
        .unwrap();
    // Two chunks of 2400 samples, then one stray byte.
    assert_eq!(bytes.len(), 2 * 2400 * 2 + 1);
}

#[tokio::test]
async fn sse_failures_bad_base64_bad_json_and_error_event() {
    let sim = start(speech_config(0)).await;
    let mut body = speech_body("pcm");
    body["stream_format"] = json!("sse");

    sim.push_script(Behaviour::BadAudio { after_chunks: 1 });
    let events = parse_events(&post_speech(&sim, &body).await.text().await.unwrap());
    assert_eq!(events.len(), 3, "{events:?}");
    base64_decode(events[0].json()["audio"].as_str().unwrap());
    let bad = events[1].json();
    assert_eq!(bad["type"], "speech.audio.delta");
    assert!(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            bad["audio"].as_str().unwrap()
        )
        .is_err()
    );
    assert_eq!(events[2].json()["type"], "speech.audio.done");

    sim.push_script(Behaviour::MalformedLine { after_chunks: 1 });
    let events = parse_events(&post_speech(&sim, &body).await.text().await.unwrap());
    assert_eq!(events[1].data, "{not json");
    assert_eq!(events[2].json()["type"], "speech.audio.done");

    sim.push_script(Behaviour::ErrorEvent { after_chunks: 1 });
    let events = parse_events(&post_speech(&sim, &body).await.text().await.unwrap());
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].json()["error"]["type"], "server_error");
}

#[tokio::test]
async fn a_client_hanging_up_mid_clip_is_recorded() {
    let sim = start(speech_config(50)).await;
    let mut response = post_speech(&sim, &speech_body("pcm")).await;
    let first = response.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(response);
    let closed = sim
        .wait_for_client_close(Duration::from_secs(5))
        .await
        .expect("client close recorded");
    assert_eq!(closed.format, WireFormat::OpenAiSpeech);
    assert!(closed.chunks_sent < 7);
    assert!(!closed.finished);
}
