//! OpenAI speech to text, `POST /v1/audio/transcriptions` (and `/translations`): multipart forms
//! as the official SDK sends them, every response format, the SSE stream, the API's refusals and
//! the failure behaviours.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::support::{
    API_KEY, EventReader, TRANSCRIPT, assert_paced, client, parse_events, start, stt_config, wav,
};

/// 3.6 s of 16 kHz audio: 400 ms for each of the transcript's nine words.
fn clip() -> Vec<u8> {
    wav(16_000, 3_600)
}

fn file(bytes: Vec<u8>, name: &str) -> Part {
    Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str("audio/wav")
        .unwrap()
}

/// A form like the SDK's: the file, then the fields.
fn form(model: &str, fields: &[(&str, &str)]) -> Form {
    let mut form = Form::new()
        .part("file", file(clip(), "speech.wav"))
        .text("model", model.to_owned());
    for (name, value) in fields {
        form = form.text((*name).to_owned(), (*value).to_owned());
    }
    form
}

async fn post(sim: &Simulator, path: &str, form: Form) -> reqwest::Response {
    client()
        .post(format!("{}/audio/{path}", sim.base_url()))
        .bearer_auth(API_KEY)
        .multipart(form)
        .send()
        .await
        .expect("send transcription request")
}

async fn transcribe(sim: &Simulator, form: Form) -> reqwest::Response {
    post(sim, "transcriptions", form).await
}

async fn json_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

async fn text_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn json_is_the_default_and_the_request_is_recorded() {
    let sim = start(stt_config(0)).await;
    let reply = json_of(transcribe(&sim, form("whisper-1", &[("language", "en")])).await).await;
    assert_eq!(
        reply,
        json!({"text": TRANSCRIPT, "usage": {"type": "duration", "seconds": 4}})
    );

    let record = &sim.requests()[0];
    assert_eq!(record.format, WireFormat::OpenAiTranscription);
    assert_eq!(record.path, "/v1/audio/transcriptions");
    assert_eq!(record.authorization.as_deref(), Some("Bearer sk-sim-test"));
    assert_eq!(record.body["model"], "whisper-1");
    assert_eq!(record.body["language"], "en");
    assert_eq!(
        record.body["file"],
        json!({"filename": "speech.wav", "content_type": "audio/wav", "bytes": 44 + 115_200})
    );
    assert_eq!(record.audio_bytes, 44 + 115_200);
    assert_eq!(record.audio_duration, Duration::from_millis(3_600));
    // One unit per word.
    assert_eq!(record.chunks_sent, 9);
    assert!(record.finished);
}

#[tokio::test]
async fn text_srt_and_vtt_are_plain_text_with_a_cue_per_sentence() {
    let sim = start(SimConfig {
        transcript: "Hello there. General Kenobi!".to_owned(),
        ..stt_config(0)
    })
    .await;
    // Four words over 2 s: half a second each.
    let two_seconds = |format: &str| {
        Form::new()
            .part("file", file(wav(16_000, 2_000), "a.wav"))
            .text("model", "whisper-1")
            .text("response_format", format.to_owned())
    };
    let text = text_of(transcribe(&sim, two_seconds("text")).await).await;
    assert_eq!(text, "Hello there. General Kenobi!\n");
    let srt = text_of(transcribe(&sim, two_seconds("srt")).await).await;
    assert_eq!(
        srt,
        "1\n00:00:00,000 --> 00:00:01,000\nHello there.\n\n\
         2\n00:00:01,000 --> 00:00:02,000\nGeneral Kenobi!\n\n"
    );
    let vtt = text_of(transcribe(&sim, two_seconds("vtt")).await).await;
    assert_eq!(
        vtt,
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello there.\n\n\
         00:00:01.000 --> 00:00:02.000\nGeneral Kenobi!\n\n"
    );
}

#[tokio::test]
async fn verbose_json_has_segments_and_words_as_the_granularities_ask() {
    let sim = start(stt_config(0)).await;
    // The SDK's spelling of arrays: `timestamp_granularities[]`, once per value.
    let both = form(
        "whisper-1",
        &[
            ("response_format", "verbose_json"),
            ("language", "fr"),
            ("temperature", "0.3"),
            ("timestamp_granularities[]", "word"),
            ("timestamp_granularities[]", "segment"),
        ],
    );
    let reply = json_of(transcribe(&sim, both).await).await;
    assert_eq!(reply["task"], "transcribe");
    assert_eq!(reply["language"], "french");
    assert_eq!(reply["duration"], 3.6);
    assert_eq!(reply["text"], TRANSCRIPT);
    assert_eq!(reply["usage"], json!({"type": "duration", "seconds": 4}));
    let words = reply["words"].as_array().unwrap();
    assert_eq!(words.len(), 9);
    assert_eq!(words[0], json!({"word": "The", "start": 0.0, "end": 0.4}));
    assert_eq!(words[8], json!({"word": "dog", "start": 3.2, "end": 3.6}));
    let segments = reply["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 1);
    let segment = &segments[0];
    assert_eq!(segment["id"], 0);
    assert_eq!(segment["seek"], 0);
    assert_eq!(segment["start"], 0.0);
    assert_eq!(segment["end"], 3.6);
    assert_eq!(segment["text"], format!(" {TRANSCRIPT}"));
    assert_eq!(segment["temperature"], 0.3);
    assert!(segment["tokens"].is_array());
    assert!(segment["avg_logprob"].is_number());
    assert!(segment["compression_ratio"].is_number());
    assert!(segment["no_speech_prob"].is_number());
    assert_eq!(
        sim.requests()[0].body["timestamp_granularities"],
        json!(["word", "segment"])
    );

    // Segments are the default; the bare spelling of the array works too.
    let plain = json_of(
        transcribe(
            &sim,
            form("whisper-1", &[("response_format", "verbose_json")]),
        )
        .await,
    )
    .await;
    assert!(plain["segments"].is_array());
    assert!(plain.get("words").is_none());
    assert_eq!(plain["language"], "english");
    let words_only = form(
        "whisper-1",
        &[
            ("response_format", "verbose_json"),
            ("timestamp_granularities", "word"),
        ],
    );
    let reply = json_of(transcribe(&sim, words_only).await).await;
    assert!(reply.get("segments").is_none());
    assert_eq!(reply["words"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn gpt_models_stream_deltas_then_done_with_token_usage() {
    let sim = start(stt_config(5)).await;
    let streamed = form(
        "gpt-4o-transcribe",
        &[("stream", "true"), ("prompt", "Two words")],
    );
    let response = transcribe(&sim, streamed).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = parse_events(&response.text().await.unwrap());
    let (done, deltas) = events.split_last().unwrap();
    assert_eq!(deltas.len(), 9);
    let mut text = String::new();
    for delta in deltas {
        assert_eq!(delta.event, None);
        let delta = delta.json();
        assert_eq!(delta["type"], "transcript.text.delta");
        assert!(delta.get("logprobs").is_none());
        text.push_str(delta["delta"].as_str().unwrap());
    }
    assert_eq!(text, TRANSCRIPT);
    let done = done.json();
    assert_eq!(done["type"], "transcript.text.done");
    assert_eq!(done["text"], TRANSCRIPT);
    // 3.6 s at 10 audio tokens a second, two prompt words, one output token per word.
    assert_eq!(
        done["usage"],
        json!({"type": "tokens", "input_tokens": 38,
               "input_token_details": {"text_tokens": 2, "audio_tokens": 36},
               "output_tokens": 9, "total_tokens": 47})
    );
    let record = &sim.requests()[0];
    assert_eq!(record.unit_sent_at.len(), 9);
    assert_paced(&record.unit_sent_at, Duration::from_millis(5));

    // Without `stream`, the same usage in a JSON body; `include[]=logprobs` adds log probabilities.
    let reply = json_of(
        transcribe(
            &sim,
            form("gpt-4o-mini-transcribe", &[("include[]", "logprobs")]),
        )
        .await,
    )
    .await;
    assert_eq!(reply["text"], TRANSCRIPT);
    assert_eq!(reply["usage"]["type"], "tokens");
    let logprobs = reply["logprobs"].as_array().unwrap();
    assert_eq!(logprobs.len(), 9);
    assert_eq!(logprobs[1]["token"], " quick");
    assert_eq!(logprobs[1]["bytes"], json!(b" quick".to_vec()));
    assert!(logprobs[1]["logprob"].as_f64().unwrap() < 0.0);
}

#[tokio::test]
async fn whisper_ignores_stream_as_the_api_does() {
    let sim = start(stt_config(0)).await;
    let reply = json_of(transcribe(&sim, form("whisper-1", &[("stream", "true")])).await).await;
    assert_eq!(reply["text"], TRANSCRIPT);
}

#[tokio::test]
async fn translations_are_whisper_only_and_english() {
    let sim = start(stt_config(0)).await;
    let reply = json_of(
        post(
            &sim,
            "translations",
            form("whisper-1", &[("response_format", "verbose_json")]),
        )
        .await,
    )
    .await;
    assert_eq!(reply["task"], "translate");
    assert_eq!(reply["language"], "english");
    assert_eq!(reply["text"], TRANSCRIPT);
    assert_eq!(sim.requests()[0].path, "/v1/audio/translations");

    let refused = post(&sim, "translations", form("gpt-4o-transcribe", &[])).await;
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["param"], "model");
}

#[tokio::test]
async fn speech_made_by_the_simulator_lasts_as_long_when_heard() {
    let sim = start(stt_config(0)).await;
    // 11 characters at 60 ms: 660 ms of MP3, 28 frames of 576 samples at 24 kHz.
    let mp3 = client()
        .post(format!("{}/audio/speech", sim.base_url()))
        .bearer_auth(API_KEY)
        .json(&json!({"model": "tts-1", "input": "Hello world", "voice": "alloy"}))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let form = Form::new()
        .part(
            "file",
            Part::bytes(mp3.to_vec())
                .file_name("hello.mp3")
                .mime_str("audio/mpeg")
                .unwrap(),
        )
        .text("model", "whisper-1")
        .text("response_format", "verbose_json");
    let reply = json_of(transcribe(&sim, form).await).await;
    assert_eq!(reply["duration"], 0.672);
}

/// Every refusal is in OpenAI's error shape, and nothing refused is recorded.
#[tokio::test]
async fn the_api_refusals() {
    let sim = start(stt_config(0)).await;
    let url = format!("{}/audio/transcriptions", sim.base_url());

    let anonymous = client()
        .post(&url)
        .multipart(form("whisper-1", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let error: Value = anonymous.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");

    let as_json = client()
        .post(&url)
        .bearer_auth(API_KEY)
        .json(&json!({"model": "whisper-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(as_json.status(), 400);

    let cases: Vec<(Form, u16, Value, Value)> = vec![
        (
            form("whisper-2", &[]),
            404,
            Value::Null,
            json!("model_not_found"),
        ),
        (
            form("gpt-4o-transcribe", &[("response_format", "verbose_json")]),
            400,
            json!("response_format"),
            json!("unsupported_value"),
        ),
        (
            form("whisper-1", &[("response_format", "xml")]),
            400,
            json!("response_format"),
            json!("invalid_value"),
        ),
        (
            form("whisper-1", &[("timestamp_granularities[]", "char")]),
            400,
            json!("timestamp_granularities"),
            json!("invalid_value"),
        ),
        (
            Form::new()
                .part("file", file(clip(), "speech.aiff"))
                .text("model", "whisper-1"),
            400,
            Value::Null,
            Value::Null,
        ),
        (
            Form::new()
                .part("file", file(Vec::new(), "empty.wav"))
                .text("model", "whisper-1"),
            400,
            json!("file"),
            json!("audio_too_short"),
        ),
        (
            Form::new()
                .part("file", file(b"no header here".to_vec(), "broken.wav"))
                .text("model", "whisper-1"),
            400,
            json!("file"),
            json!("invalid_value"),
        ),
        (
            Form::new().text("model", "whisper-1"),
            400,
            json!("file"),
            json!("missing_required_parameter"),
        ),
    ];
    for (form, status, param, code) in cases {
        let response = transcribe(&sim, form).await;
        assert_eq!(response.status(), status);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], param, "{error}");
        assert_eq!(error["error"]["code"], code, "{error}");
    }
    let format = transcribe(
        &sim,
        Form::new()
            .part("file", file(clip(), "speech.aiff"))
            .text("model", "whisper-1"),
    )
    .await;
    let error: Value = format.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid file format. Supported formats: ['flac', "),
        "{error}"
    );
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn uploads_over_25_mb_get_413() {
    let sim = start(stt_config(0)).await;
    let big = Form::new()
        .part("file", file(wav(48_000, 275_000), "long.wav"))
        .text("model", "whisper-1");
    let response = transcribe(&sim, big).await;
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "server_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("413: Maximum content size limit (26214400) exceeded ("),
        "{message}"
    );
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn scripted_refusals_and_rate_limits() {
    let sim = start(stt_config(0)).await;
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 3,
    });
    sim.push_script(Behaviour::Refused {
        status: 401,
        message: "Incorrect API key provided: sk-sim-***".to_owned(),
    });
    sim.push_script(Behaviour::ServerError);
    let limited = transcribe(&sim, form("whisper-1", &[])).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "3");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_exceeded");
    let refused = transcribe(&sim, form("whisper-1", &[])).await;
    assert_eq!(refused.status(), 401);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(
        error["error"]["message"],
        "Incorrect API key provided: sk-sim-***"
    );
    assert_eq!(transcribe(&sim, form("whisper-1", &[])).await.status(), 500);
    assert_eq!(transcribe(&sim, form("whisper-1", &[])).await.status(), 200);
    assert!(sim.requests().iter().take(3).all(|r| r.chunks_sent == 0));
}

#[tokio::test]
async fn stream_failures_malformed_error_event_and_drop() {
    let sim = start(stt_config(0)).await;
    let streamed = || form("gpt-4o-transcribe", &[("stream", "true")]);

    sim.push_script(Behaviour::MalformedLine { after_chunks: 2 });
    let events = parse_events(&transcribe(&sim, streamed()).await.text().await.unwrap());
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[2].data, "{not json");
    assert_eq!(events[3].json()["type"], "transcript.text.done");

    sim.push_script(Behaviour::ErrorEvent { after_chunks: 1 });
    let events = parse_events(&transcribe(&sim, streamed()).await.text().await.unwrap());
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].json()["error"]["type"], "server_error");

    sim.push_script(Behaviour::DropMidStream { after_chunks: 3 });
    let (events, _) = EventReader::new(transcribe(&sim, streamed()).await)
        .until_failure()
        .await;
    assert_eq!(events.len(), 3);
    let record = &sim.requests()[2];
    assert_eq!(record.chunks_sent, 3);
    assert!(!record.finished && !record.client_closed);

    // Not streamed: a body that is not JSON, and a 503 for the error event.
    sim.push_script(Behaviour::MalformedLine { after_chunks: 0 });
    let response = transcribe(&sim, form("whisper-1", &[])).await;
    assert!(response.json::<Value>().await.is_err());
    sim.push_script(Behaviour::ErrorEvent { after_chunks: 0 });
    assert_eq!(transcribe(&sim, form("whisper-1", &[])).await.status(), 503);
}

#[tokio::test]
async fn a_client_hanging_up_mid_stream_is_recorded() {
    let sim = start(stt_config(50)).await;
    let response = transcribe(&sim, form("gpt-4o-transcribe", &[("stream", "true")])).await;
    let mut reader = EventReader::new(response);
    let first = reader.next().await.unwrap().unwrap();
    assert_eq!(first.json()["delta"], "The");
    drop(reader);
    let closed = sim
        .wait_for_client_close(Duration::from_secs(5))
        .await
        .expect("client close recorded");
    assert_eq!(closed.format, WireFormat::OpenAiTranscription);
    assert!(closed.chunks_sent < 9);
    assert!(!closed.finished);
}
