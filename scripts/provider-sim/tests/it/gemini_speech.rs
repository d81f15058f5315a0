//! Gemini text to speech on `generateContent` / `streamGenerateContent`, beside Gemini chat on the
//! same routes.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provider_sim::{Behaviour, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::support::{
    assert_audible, base64_decode, client, parse_events, pcm_samples, speech_config,
    speech_samples, start,
};

const MODEL: &str = "gemini-2.5-flash-preview-tts";
const TEXT: &str = "Say cheerfully: Have a wonderful day!";
const MIME: &str = "audio/L16;codec=pcm;rate=24000";

fn speech_body(voice: &str) -> Value {
    json!({
        "contents": [{"parts": [{"text": TEXT}]}],
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": voice}}}
        }
    })
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

#[tokio::test]
async fn generate_content_answers_with_24khz_pcm_inline_data() {
    let sim = start(speech_config(0)).await;
    let response = post(&sim, "generateContent", &speech_body("Kore")).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    let candidate = &reply["candidates"][0];
    assert_eq!(candidate["finishReason"], "STOP");
    let inline = &candidate["content"]["parts"][0]["inlineData"];
    assert_eq!(inline["mimeType"], MIME);
    let samples = pcm_samples(&base64_decode(inline["data"].as_str().unwrap()));
    assert_eq!(samples.len(), speech_samples(TEXT.len(), 24_000, 1.0));
    assert_audible(&samples);
    assert_eq!(reply["usageMetadata"]["promptTokenCount"], 6);

    let record = &sim.requests()[0];
    assert_eq!(record.format, WireFormat::GeminiSpeech);
    assert_eq!(record.texts, [TEXT]);
    assert_eq!(record.chunks_sent, 23);
}

#[tokio::test]
async fn streamed_speech_is_one_chunk_per_response() {
    let sim = start(speech_config(0)).await;
    let response = post(&sim, "streamGenerateContent?alt=sse", &speech_body("Puck")).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = parse_events(&response.text().await.unwrap());
    // 37 characters: 2.22 s of audio in 100 ms chunks.
    assert_eq!(events.len(), 23);
    let mut audio = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let chunk = event.json();
        let finish = &chunk["candidates"][0]["finishReason"];
        assert_eq!(*finish == "STOP", i + 1 == events.len(), "{chunk}");
        let inline = &chunk["candidates"][0]["content"]["parts"][0]["inlineData"];
        assert_eq!(inline["mimeType"], MIME);
        audio.extend(base64_decode(inline["data"].as_str().unwrap()));
    }
    assert_eq!(
        pcm_samples(&audio).len(),
        speech_samples(TEXT.len(), 24_000, 1.0)
    );
}

#[tokio::test]
async fn the_same_route_still_serves_chat_without_audio() {
    let sim = start(speech_config(0)).await;
    let chat = json!({"contents": [{"parts": [{"text": TEXT}]}],
                      "generationConfig": {"responseModalities": ["TEXT"]}});
    let reply: Value = post(&sim, "generateContent", &chat)
        .await
        .json()
        .await
        .unwrap();
    assert!(reply["candidates"][0]["content"]["parts"][0]["text"].is_string());
    assert_eq!(sim.requests()[0].format, WireFormat::Gemini);
    assert!(sim.requests()[0].texts.is_empty());
}

#[tokio::test]
async fn unknown_voices_and_bad_audio() {
    let sim = start(speech_config(0)).await;
    let response = post(&sim, "generateContent", &speech_body("Bob")).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
    assert!(sim.requests().is_empty());

    sim.push_script(Behaviour::BadAudio { after_chunks: 0 });
    let reply: Value = post(&sim, "generateContent", &speech_body("Kore"))
        .await
        .json()
        .await
        .unwrap();
    let data = reply["candidates"][0]["content"]["parts"][0]["inlineData"]["data"]
        .as_str()
        .unwrap();
    assert!(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).is_err());

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 5,
    });
    let limited = post(&sim, "generateContent", &speech_body("Kore")).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "5");
}
