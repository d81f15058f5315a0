//! Deepgram prerecorded speech to text, `POST /v1/listen`: the response shape, the options the
//! simulator acts on, the API's refusals and the failure behaviours.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provider_sim::{Behaviour, Simulator, WireFormat};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{TRANSCRIPT, client, pcm_silence, start, stt_config, wav};

const KEY: &str = "dg-sim-test";

async fn listen(
    sim: &Simulator,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    client()
        .post(format!("{}/v1/listen?{query}", sim.root_url()))
        .header("authorization", format!("Token {KEY}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("send listen request")
}

async fn ok_json(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_wav_recording_gets_the_transcript_with_timed_words() {
    let sim = start(stt_config(0)).await;
    let audio = wav(16_000, 3_600);
    let response = listen(
        &sim,
        "model=nova-3&language=en&punctuate=true&smart_format=true",
        "audio/wav",
        audio.clone(),
    )
    .await;
    let request_id = response.headers()["dg-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let reply = ok_json(response).await;

    let metadata = &reply["metadata"];
    assert_eq!(metadata["transaction_key"], "deprecated");
    assert_eq!(metadata["request_id"], request_id);
    assert_eq!(metadata["sha256"], format!("{:x}", Sha256::digest(&audio)));
    let created = metadata["created"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    assert_eq!(metadata["duration"], 3.6);
    assert_eq!(metadata["channels"], 1);
    let model = metadata["models"][0].as_str().unwrap();
    assert_eq!(metadata["model_info"][model]["arch"], "nova-3");

    let alternative = &reply["results"]["channels"][0]["alternatives"][0];
    assert_eq!(alternative["transcript"], TRANSCRIPT);
    assert_eq!(alternative["confidence"], 0.99);
    let words = alternative["words"].as_array().unwrap();
    assert_eq!(words.len(), 9);
    assert_eq!(
        words[0],
        json!({"word": "the", "start": 0.0, "end": 0.4, "confidence": 0.99,
               "punctuated_word": "The"})
    );
    assert_eq!(words[8]["word"], "dog");
    assert_eq!(words[8]["punctuated_word"], "dog.");
    assert_eq!(words[8]["end"], 3.6);

    let record = &sim.requests()[0];
    assert_eq!(record.format, WireFormat::Deepgram);
    assert_eq!(record.path, "/v1/listen");
    assert_eq!(record.authorization.as_deref(), Some("Token dg-sim-test"));
    assert_eq!(
        record.query.as_deref(),
        Some("model=nova-3&language=en&punctuate=true&smart_format=true")
    );
    assert_eq!(record.body, json!({"content_type": "audio/wav"}));
    assert_eq!(record.audio_bytes, audio.len() as u64);
    assert_eq!(record.chunks_sent, 9);
    assert!(record.finished);
}

#[tokio::test]
async fn without_formatting_words_are_bare_and_raw_audio_follows_its_encoding() {
    let sim = start(stt_config(0)).await;
    // 1.8 s of linear16 at 8 kHz, stated by the query rather than a header.
    let reply = ok_json(
        listen(
            &sim,
            "encoding=linear16&sample_rate=8000&diarize=true",
            "application/octet-stream",
            pcm_silence(8_000, 1_800),
        )
        .await,
    )
    .await;
    assert_eq!(reply["metadata"]["duration"], 1.8);
    let alternative = &reply["results"]["channels"][0]["alternatives"][0];
    assert_eq!(
        alternative["transcript"],
        "the quick brown fox jumps over the lazy dog"
    );
    let word = &alternative["words"][1];
    assert_eq!(word["word"], "quick");
    assert_eq!(word["start"], 0.2);
    assert_eq!(word["speaker"], 0);
    assert!(word.get("punctuated_word").is_none());

    // A WAV without samples holds no words.
    let silent = ok_json(listen(&sim, "", "audio/wav", wav(16_000, 0)).await).await;
    let alternative = &silent["results"]["channels"][0]["alternatives"][0];
    assert_eq!(alternative["transcript"], "");
    assert_eq!(alternative["words"], json!([]));
}

#[tokio::test]
async fn the_api_refusals() {
    let sim = start(stt_config(0)).await;
    let anonymous = client()
        .post(format!("{}/v1/listen", sim.root_url()))
        .header("content-type", "audio/wav")
        .body(wav(16_000, 500))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let error: Value = anonymous.json().await.unwrap();
    assert_eq!(error["err_code"], "INVALID_AUTH");
    assert_eq!(error["err_msg"], "Invalid credentials.");
    assert!(error["request_id"].is_string());

    let by_url = listen(
        &sim,
        "model=nova-3",
        "application/json",
        br#"{"url": "https://example.com/a.wav"}"#.to_vec(),
    )
    .await;
    assert_eq!(by_url.status(), 400);
    let error: Value = by_url.json().await.unwrap();
    assert_eq!(error["err_code"], "Bad Request");
    let message = error["err_msg"].as_str().unwrap();
    assert!(
        message.contains("offline") && message.contains("https://example.com/a.wav"),
        "{message}"
    );

    let cases = [
        ("", "audio/wav", Vec::new()),
        ("", "text/plain", b"hello".to_vec()),
        ("", "audio/wav", b"RIFF\x04\x00\x00\x00WAVE".to_vec()),
        ("encoding=linear16", "audio/l16", pcm_silence(16_000, 100)),
        ("encoding=mp9", "audio/wav", wav(16_000, 100)),
    ];
    for (query, content_type, body) in cases {
        let response = listen(&sim, query, content_type, body).await;
        assert_eq!(response.status(), 400, "{query} {content_type}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["err_code"], "Bad Request");
    }
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn scripted_failures_in_deepgram_shape() {
    let sim = start(stt_config(0)).await;
    let audio = || wav(16_000, 400);
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 2,
    });
    sim.push_script(Behaviour::Refused {
        status: 402,
        message: "Project does not have enough credits for an API request.".to_owned(),
    });
    sim.push_script(Behaviour::ServerError);
    sim.push_script(Behaviour::MalformedLine { after_chunks: 0 });
    sim.push_script(Behaviour::DropMidStream { after_chunks: 0 });

    let limited = listen(&sim, "", "audio/wav", audio()).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["err_code"], "TOO_MANY_REQUESTS");
    let refused = listen(&sim, "", "audio/wav", audio()).await;
    assert_eq!(refused.status(), 402);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["err_code"], "ASR_PAYMENT_REQUIRED");
    assert_eq!(listen(&sim, "", "audio/wav", audio()).await.status(), 500);
    let malformed = listen(&sim, "", "audio/wav", audio()).await;
    assert!(malformed.json::<Value>().await.is_err());
    let dropped = async { listen(&sim, "", "audio/wav", audio()).await.bytes().await };
    assert!(dropped.await.is_err());
    assert_eq!(listen(&sim, "", "audio/wav", audio()).await.status(), 200);
}
