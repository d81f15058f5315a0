//! Image generation on the Gemini API: Gemini's image models through `generateContent` and
//! `streamGenerateContent`, and Imagen through `:predict`; sizes, refusals and failures.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::image_support::{assert_jpeg, assert_png};
use crate::support::{base64_decode, client, start};

const KEY: &str = "AIza-sim-test";
const PROMPT: &str = "Create a picture of a nano banana dish";

fn image_body(config: Value) -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
        "generationConfig": config,
    })
}

async fn post(sim: &Simulator, path_and_query: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1beta/models/{path_and_query}", sim.root_url()))
        .header("x-goog-api-key", KEY)
        .json(body)
        .send()
        .await
        .expect("send gemini request")
}

fn inline_image(part: &Value) -> Vec<u8> {
    assert_eq!(part["inlineData"]["mimeType"], "image/png");
    base64_decode(part["inlineData"]["data"].as_str().unwrap())
}

#[tokio::test]
async fn flash_image_answers_a_caption_and_an_image_of_the_aspect_ratio() {
    let sim = start(SimConfig::default()).await;
    let body = image_body(json!({
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "16:9"},
    }));
    let response = post(&sim, "gemini-2.5-flash-image:generateContent", &body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    let candidate = &reply["candidates"][0];
    assert_eq!(candidate["finishReason"], "STOP");
    let parts = candidate["content"]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert!(parts[0]["text"].is_string());
    assert_png(&inline_image(&parts[1]), 1344, 768);
    let usage = &reply["usageMetadata"];
    assert_eq!(usage["promptTokenCount"], 8);
    assert_eq!(usage["candidatesTokensDetails"][0]["modality"], "IMAGE");
    assert_eq!(usage["candidatesTokensDetails"][0]["tokenCount"], 1290);
    assert_eq!(reply["modelVersion"], "gemini-2.5-flash-image");

    let record = &sim.requests()[0];
    assert_eq!(record.format, WireFormat::GeminiImage);
    assert_eq!(record.authorization.as_deref(), Some(KEY));
    assert_eq!(record.texts, [PROMPT]);
}

#[tokio::test]
async fn pro_image_sizes_follow_image_size_and_image_only_has_no_caption() {
    let sim = start(SimConfig::default()).await;
    let body = image_body(json!({
        "responseModalities": ["IMAGE"],
        "imageConfig": {"aspectRatio": "1:1", "imageSize": "2K"},
    }));
    let reply: Value = post(&sim, "gemini-3-pro-image-preview:generateContent", &body)
        .await
        .json()
        .await
        .unwrap();
    let parts = reply["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap();
    assert_eq!(parts.len(), 1);
    assert_png(&inline_image(&parts[0]), 2048, 2048);

    // An image model with no modalities named answers text and image.
    let plain = image_body(json!({}));
    let reply: Value = post(&sim, "gemini-3-pro-image-preview:generateContent", &plain)
        .await
        .json()
        .await
        .unwrap();
    let parts = reply["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap();
    assert_eq!(parts.len(), 2);
    assert_png(&inline_image(&parts[1]), 1024, 1024);
}

#[tokio::test]
async fn streamed_image_comes_in_its_own_chunk() {
    let sim = start(SimConfig::default()).await;
    let body = image_body(
        json!({"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "3:4"}}),
    );
    let response = post(
        &sim,
        "gemini-2.5-flash-image:streamGenerateContent?alt=sse",
        &body,
    )
    .await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let chunks: Vec<Value> = text
        .split("\r\n\r\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert_eq!(chunks.len(), 2);
    assert!(chunks[0]["candidates"][0]["content"]["parts"][0]["text"].is_string());
    assert!(chunks[0]["candidates"][0].get("finishReason").is_none());
    let last = &chunks[1]["candidates"][0];
    assert_eq!(last["finishReason"], "STOP");
    assert_png(&inline_image(&last["content"]["parts"][0]), 864, 1184);
    assert_eq!(sim.requests()[0].chunks_sent, 2);
}

#[tokio::test]
async fn content_filtered_is_image_safety_without_an_image() {
    let sim = start(SimConfig::default()).await;
    sim.push_script(Behaviour::ContentFiltered);
    let body = image_body(json!({"responseModalities": ["IMAGE"]}));
    let response = post(&sim, "gemini-2.5-flash-image:generateContent", &body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    let candidate = &reply["candidates"][0];
    assert_eq!(candidate["finishReason"], "IMAGE_SAFETY");
    assert!(candidate.get("content").is_none());
    assert!(candidate["finishMessage"].is_string());
}

#[tokio::test]
async fn gemini_image_refusals_and_failures() {
    let sim = start(SimConfig::default()).await;
    let body = image_body(json!({"responseModalities": ["IMAGE"]}));
    let no_key = client()
        .post(format!(
            "{}/v1beta/models/gemini-2.5-flash-image:generateContent",
            sim.root_url()
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 403);
    assert_eq!(
        no_key.json::<Value>().await.unwrap()["error"]["status"],
        "PERMISSION_DENIED"
    );

    for (model, config) in [
        (
            "gemini-2.5-flash-image",
            json!({"imageConfig": {"aspectRatio": "7:5"}}),
        ),
        (
            "gemini-3-pro-image-preview",
            json!({"imageConfig": {"imageSize": "4k"}}),
        ),
        (
            "gemini-2.5-flash",
            json!({"responseModalities": ["TEXT", "IMAGE"]}),
        ),
    ] {
        let response = post(
            &sim,
            &format!("{model}:generateContent"),
            &image_body(config),
        )
        .await;
        assert_eq!(response.status(), 400, "{model}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"]["status"],
            "INVALID_ARGUMENT"
        );
    }
    assert!(sim.requests().is_empty());

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 4,
    });
    let limited = post(&sim, "gemini-2.5-flash-image:generateContent", &body).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "4");
    assert_eq!(
        limited.json::<Value>().await.unwrap()["error"]["status"],
        "RESOURCE_EXHAUSTED"
    );

    sim.push_script(Behaviour::BadAudio { after_chunks: 0 });
    let bad: Value = post(&sim, "gemini-2.5-flash-image:generateContent", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        bad["candidates"][0]["content"]["parts"][0]["inlineData"]["data"],
        "!!not base64!!"
    );
}

async fn predict(sim: &Simulator, model: &str, body: &Value) -> reqwest::Response {
    post(sim, &format!("{model}:predict"), body).await
}

#[tokio::test]
async fn imagen_predicts_images_of_the_aspect_ratio() {
    let sim = start(SimConfig::default()).await;
    let body = json!({
        "instances": [{"prompt": PROMPT}],
        "parameters": {"sampleCount": 2, "aspectRatio": "16:9", "personGeneration": "allow_adult"},
    });
    let response = predict(&sim, "imagen-4.0-generate-001", &body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    let predictions = reply["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2);
    let images: Vec<Vec<u8>> = predictions
        .iter()
        .map(|p| {
            assert_eq!(p["mimeType"], "image/png");
            base64_decode(p["bytesBase64Encoded"].as_str().unwrap())
        })
        .collect();
    assert_png(&images[0], 1408, 768);
    assert_png(&images[1], 1408, 768);
    assert_ne!(images[0], images[1]);

    let jpeg = json!({
        "instances": [{"prompt": PROMPT}],
        "parameters": {"sampleCount": 1, "imageSize": "2K", "outputOptions": {"mimeType": "image/jpeg"}},
    });
    let reply: Value = predict(&sim, "imagen-4.0-ultra-generate-001", &jpeg)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reply["predictions"][0]["mimeType"], "image/jpeg");
    assert_jpeg(
        &base64_decode(
            reply["predictions"][0]["bytesBase64Encoded"]
                .as_str()
                .unwrap(),
        ),
        2048,
        2048,
    );

    // sampleCount defaults to 4.
    let four: Value = predict(
        &sim,
        "imagen-4.0-fast-generate-001",
        &json!({"instances": [{"prompt": PROMPT}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(four["predictions"].as_array().unwrap().len(), 4);

    let records = sim.requests();
    assert!(records.iter().all(|r| r.format == WireFormat::Imagen));
    assert_eq!(
        records[0].path,
        "/v1beta/models/imagen-4.0-generate-001:predict"
    );
}

#[tokio::test]
async fn imagen_filters_and_refusals() {
    let sim = start(SimConfig::default()).await;
    let body = |rai: bool| json!({"instances": [{"prompt": PROMPT}], "parameters": {"sampleCount": 1, "includeRaiReason": rai}});
    sim.push_script(Behaviour::ContentFiltered);
    let silent: Value = predict(&sim, "imagen-4.0-generate-001", &body(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(silent, json!({}));
    sim.push_script(Behaviour::ContentFiltered);
    let reasoned: Value = predict(&sim, "imagen-4.0-generate-001", &body(true))
        .await
        .json()
        .await
        .unwrap();
    let prediction = &reasoned["predictions"][0];
    assert!(prediction["raiFilteredReason"].is_string());
    assert!(prediction.get("bytesBase64Encoded").is_none());

    sim.push_script(Behaviour::ServerError);
    let server = predict(&sim, "imagen-4.0-generate-001", &body(false)).await;
    assert_eq!(server.status(), 500);
    assert_eq!(
        server.json::<Value>().await.unwrap()["error"]["status"],
        "INTERNAL"
    );

    let too_many = json!({"instances": [{"prompt": PROMPT}], "parameters": {"sampleCount": 5}});
    assert_eq!(
        predict(&sim, "imagen-4.0-generate-001", &too_many)
            .await
            .status(),
        400
    );
    let no_prompt = json!({"instances": [{}]});
    assert_eq!(
        predict(&sim, "imagen-4.0-generate-001", &no_prompt)
            .await
            .status(),
        400
    );
    assert_eq!(
        predict(&sim, "gemini-2.5-flash", &body(false))
            .await
            .status(),
        404
    );
    let no_key = client()
        .post(format!(
            "{}/v1beta/models/imagen-4.0-generate-001:predict",
            sim.root_url()
        ))
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 403);
    assert_eq!(
        sim.requests().len(),
        3,
        "only the accepted requests are recorded"
    );
}
