//! Gemini audio understanding: `generateContent` and `streamGenerateContent` with an audio
//! `inlineData` part answer with the transcript as text when asked to transcribe, else with what
//! the model heard; chat and speech keep their routes.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use provider_sim::{Behaviour, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::support::{TRANSCRIPT, client, parse_events, pcm_silence, start, stt_config, wav};

const MODEL: &str = "gemini-2.5-flash";

/// "Transcribe this audio" and 3.6 s of 16 kHz WAV.
fn transcribe_body() -> Value {
    json!({"contents": [{"role": "user", "parts": [
        {"text": "Transcribe this audio"},
        {"inlineData": {"mimeType": "audio/wav", "data": BASE64.encode(wav(16_000, 3_600))}}
    ]}]})
}

async fn post(sim: &Simulator, action: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1beta/models/{MODEL}:{action}", sim.root_url()))
        .header("x-goog-api-key", "AIza-sim-test")
        .json(body)
        .send()
        .await
        .expect("send gemini request")
}

fn text_of(chunk: &Value) -> String {
    chunk["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect()
}

#[tokio::test]
async fn generate_content_answers_with_the_transcript_and_counts_audio_tokens() {
    let sim = start(stt_config(0)).await;
    let response = post(&sim, "generateContent", &transcribe_body()).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(text_of(&reply), TRANSCRIPT);
    assert_eq!(reply["candidates"][0]["finishReason"], "STOP");
    assert_eq!(reply["candidates"][0]["content"]["role"], "model");
    // Three prompt words and 3.6 s of audio at 32 tokens a second.
    let usage = &reply["usageMetadata"];
    assert_eq!(usage["promptTokenCount"], 3 + 116);
    assert_eq!(
        usage["promptTokensDetails"],
        json!([{"modality": "TEXT", "tokenCount": 3}, {"modality": "AUDIO", "tokenCount": 116}])
    );
    assert_eq!(usage["candidatesTokenCount"], 9);
    assert_eq!(usage["totalTokenCount"], 3 + 116 + 9);

    let record = &sim.requests()[0];
    assert_eq!(record.format, WireFormat::GeminiTranscription);
    assert_eq!(record.audio_bytes, 44 + 115_200);
    assert_eq!(
        record.audio_duration,
        std::time::Duration::from_millis(3_600)
    );
    assert_eq!(record.chunks_sent, 9);
    assert_eq!(record.authorization.as_deref(), Some("AIza-sim-test"));
}

#[tokio::test]
async fn streamed_transcripts_come_a_word_per_chunk() {
    let sim = start(stt_config(0)).await;
    let response = post(&sim, "streamGenerateContent?alt=sse", &transcribe_body()).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let chunks: Vec<Value> = parse_events(&response.text().await.unwrap())
        .iter()
        .map(|e| e.json())
        .collect();
    assert_eq!(chunks.len(), 9);
    let text: String = chunks.iter().map(text_of).collect();
    assert_eq!(text, TRANSCRIPT);
    assert_eq!(text_of(&chunks[1]), " quick");
    assert!(
        chunks[..8]
            .iter()
            .all(|c| c["candidates"][0]["finishReason"].is_null())
    );
    assert_eq!(chunks[8]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn raw_pcm_in_snake_case_and_chat_without_audio() {
    let sim = start(stt_config(0)).await;
    // 0.5 s of 24 kHz PCM, the format of Gemini's own speech, in the snake_case spelling.
    let pcm = json!({"contents": [{"parts": [
        {"inline_data": {"mime_type": "audio/L16;codec=pcm;rate=24000",
                         "data": BASE64.encode(pcm_silence(24_000, 500))}},
        {"text": "Transcribe what is said."}
    ]}]});
    let reply: Value = post(&sim, "generateContent", &pcm)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(text_of(&reply), TRANSCRIPT);
    assert_eq!(
        reply["usageMetadata"]["promptTokensDetails"][1]["tokenCount"],
        16
    );
    assert_eq!(
        sim.requests()[0].audio_duration,
        std::time::Duration::from_millis(500)
    );

    let chat = json!({"contents": [{"parts": [{"text": "Say hello to me"}]}]});
    let reply: Value = post(&sim, "generateContent", &chat)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(text_of(&reply), "tok tok tok tok tok ");
    assert!(reply["usageMetadata"].get("promptTokensDetails").is_none());
    assert_eq!(sim.requests()[1].format, WireFormat::Gemini);
    assert_eq!(sim.requests()[1].audio_bytes, 0);
}

#[tokio::test]
async fn a_chat_about_audio_says_what_it_heard() {
    let sim = start(stt_config(0)).await;
    let body = json!({"contents": [{"role": "user", "parts": [
        {"text": "What do you make of this?"},
        {"inlineData": {"mimeType": "audio/wav", "data": BASE64.encode(wav(16_000, 3_600))}}
    ]}]});
    let response = post(&sim, "streamGenerateContent?alt=sse", &body).await;
    let chunks: Vec<Value> = parse_events(&response.text().await.unwrap())
        .iter()
        .map(|e| e.json())
        .collect();
    let text: String = chunks.iter().map(text_of).collect();
    assert_eq!(text, "I heard 115244 bytes of audio/wav (3.6 s).");
    assert_eq!(text_of(&chunks[1]), " heard");
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"]["promptTokensDetails"][1],
        json!({"modality": "AUDIO", "tokenCount": 116})
    );
    let record = &sim.requests()[0];
    assert_eq!(record.format, WireFormat::Gemini);
    assert_eq!(record.audio_bytes, 115_244);

    // Malformed audio is refused in a chat as in a transcription, in Google's 400 shape.
    let bad = json!({"contents": [{"parts": [
        {"text": "Listen"}, {"inlineData": {"mimeType": "audio/wav", "data": "!!not base64!!"}}
    ]}]});
    let response = post(&sim, "generateContent", &bad).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], 400);
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Base64 decoding failed"),
        "{error}"
    );
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn unreadable_audio_is_an_invalid_argument() {
    let sim = start(stt_config(0)).await;
    let cases = [
        ("audio/x-ms-wma", BASE64.encode([1, 2, 3])),
        ("audio/wav", "!!not base64!!".to_owned()),
        ("audio/wav", BASE64.encode(b"no header")),
        ("audio/mp3", String::new()),
    ];
    for (mime, data) in cases {
        let body = json!({"contents": [{"parts": [
            {"text": "Transcribe"}, {"inlineData": {"mimeType": mime, "data": data}}
        ]}]});
        let response = post(&sim, "generateContent", &body).await;
        assert_eq!(response.status(), 400, "{mime}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
    }
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn failures_in_google_shape() {
    let sim = start(stt_config(0)).await;
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 5,
    });
    let limited = post(&sim, "generateContent", &transcribe_body()).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "5");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["status"], "RESOURCE_EXHAUSTED");

    sim.push_script(Behaviour::ErrorEvent { after_chunks: 2 });
    let response = post(&sim, "streamGenerateContent?alt=sse", &transcribe_body()).await;
    let chunks: Vec<Value> = parse_events(&response.text().await.unwrap())
        .iter()
        .map(|e| e.json())
        .collect();
    assert_eq!(chunks.len(), 3);
    assert_eq!(text_of(&chunks[0]) + &text_of(&chunks[1]), "The quick");
    assert_eq!(chunks[2]["error"]["status"], "UNAVAILABLE");
}
