//! OpenAI (and xAI) image generation, `POST /v1/images/generations`: real images of the size
//! asked for, as base64 or a URL the simulator serves, the API's refusals and the failure
//! behaviours.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::image_support::{assert_jpeg, assert_png, count, download, read_cut};
use crate::support::{API_KEY, base64_decode, client, start};

const PROMPT: &str = "A watercolour fox in the snow";

async fn post(sim: &Simulator, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/images/generations", sim.base_url()))
        .bearer_auth(API_KEY)
        .json(body)
        .send()
        .await
        .expect("send image request")
}

async fn error_of(response: reqwest::Response) -> Value {
    response.json::<Value>().await.unwrap()["error"].clone()
}

#[tokio::test]
async fn gpt_image_returns_base64_pngs_of_the_size_asked_for() {
    let sim = start(SimConfig::default()).await;
    let body = json!({"model": "gpt-image-1", "prompt": PROMPT, "n": 2, "size": "1536x1024", "quality": "low"});
    let response = post(&sim, &body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    let data = reply["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let first = base64_decode(data[0]["b64_json"].as_str().unwrap());
    let second = base64_decode(data[1]["b64_json"].as_str().unwrap());
    assert_png(&first, 1536, 1024);
    assert_png(&second, 1536, 1024);
    assert_ne!(first, second, "each image of a request differs");
    assert!(data[0].get("url").is_none());
    assert!(reply["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(reply["size"], "1536x1024");
    assert_eq!(reply["quality"], "low");
    assert_eq!(reply["output_format"], "png");
    assert_eq!(reply["background"], "opaque");
    let usage = &reply["usage"];
    assert_eq!(usage["input_tokens"], 6);
    assert_eq!(usage["input_tokens_details"]["text_tokens"], 6);
    assert_eq!(usage["output_tokens"], 800);
    assert_eq!(usage["total_tokens"], 806);

    let records = sim.requests();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].format, WireFormat::OpenAiImages);
    assert_eq!(records[0].texts, [PROMPT]);
    assert_eq!(
        records[0].authorization.as_deref(),
        Some("Bearer sk-sim-test")
    );
    assert_eq!(records[0].body["size"], "1536x1024");
    assert_eq!(records[0].chunks_sent, 2, "one unit per image");
    assert!(records[0].finished);
}

#[tokio::test]
async fn gpt_image_writes_jpeg_and_different_prompts_differ() {
    let sim = start(SimConfig::default()).await;
    let jpeg = json!({"model": "gpt-image-1.5", "prompt": PROMPT, "output_format": "jpeg"});
    let reply: Value = post(&sim, &jpeg).await.json().await.unwrap();
    assert_eq!(reply["output_format"], "jpeg");
    assert_eq!(reply["size"], "1024x1024", "auto is square");
    assert_jpeg(
        &base64_decode(reply["data"][0]["b64_json"].as_str().unwrap()),
        1024,
        1024,
    );

    let image = |reply: &Value| base64_decode(reply["data"][0]["b64_json"].as_str().unwrap());
    let fox = json!({"model": "gpt-image-1-mini", "prompt": "a fox"});
    let whale = json!({"model": "gpt-image-1-mini", "prompt": "a whale"});
    let fox_image = image(&post(&sim, &fox).await.json().await.unwrap());
    let whale_image = image(&post(&sim, &whale).await.json().await.unwrap());
    assert_png(&fox_image, 1024, 1024);
    assert_ne!(fox_image, whale_image);
}

#[tokio::test]
async fn dall_e_3_answers_with_a_url_the_simulator_serves() {
    let sim = start(SimConfig::default()).await;
    let body = json!({"model": "dall-e-3", "prompt": PROMPT, "size": "1792x1024", "quality": "hd", "style": "natural"});
    let reply: Value = post(&sim, &body).await.json().await.unwrap();
    let datum = &reply["data"][0];
    assert!(datum["revised_prompt"].as_str().unwrap().contains(PROMPT));
    assert!(datum.get("b64_json").is_none());
    assert!(reply.get("usage").is_none());
    let url = datum["url"].as_str().unwrap();
    assert!(url.starts_with(&sim.root_url()), "{url}");

    let image = download(url).await;
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_png(&image.bytes().await.unwrap(), 1792, 1024);
    // Downloads are recorded apart from the submission.
    assert_eq!(count(&sim, WireFormat::OpenAiImages), 1);
    assert_eq!(count(&sim, WireFormat::FileDownload), 1);

    let b64 = json!({"model": "dall-e-3", "prompt": PROMPT, "response_format": "b64_json"});
    let reply: Value = post(&sim, &b64).await.json().await.unwrap();
    assert_png(
        &base64_decode(reply["data"][0]["b64_json"].as_str().unwrap()),
        1024,
        1024,
    );

    let gone = download(&format!("{}/_sim/files/file_nope", sim.root_url())).await;
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn grok_answers_jpeg_urls_and_data_alone() {
    let sim = start(SimConfig::default()).await;
    let body = json!({"model": "grok-2-image-1212", "prompt": PROMPT, "n": 2});
    let response = post(&sim, &body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(
        reply.as_object().unwrap().len(),
        1,
        "xAI answers `data` alone: {reply}"
    );
    let data = reply["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for datum in data {
        assert!(datum["revised_prompt"].is_string());
        let image = download(datum["url"].as_str().unwrap()).await;
        assert_eq!(image.headers()["content-type"], "image/jpeg");
        assert_jpeg(&image.bytes().await.unwrap(), 1024, 768);
    }
    let b64 = json!({"model": "grok-2-image", "prompt": PROMPT, "response_format": "b64_json"});
    let reply: Value = post(&sim, &b64).await.json().await.unwrap();
    assert_jpeg(
        &base64_decode(reply["data"][0]["b64_json"].as_str().unwrap()),
        1024,
        768,
    );
}

#[tokio::test]
async fn requests_the_api_refuses_are_answered_in_its_error_shape_and_not_recorded() {
    let sim = start(SimConfig::default()).await;
    let no_key = client()
        .post(format!("{}/images/generations", sim.base_url()))
        .json(&json!({"prompt": PROMPT}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);

    let cases = [
        (
            json!({"model": "gpt-image-1", "prompt": PROMPT, "size": "1792x1024"}),
            400,
            "size",
            "invalid_value",
        ),
        (
            json!({"model": "dall-e-3", "prompt": PROMPT, "size": "1536x1024"}),
            400,
            "size",
            "invalid_value",
        ),
        (
            json!({"model": "dall-e-3", "prompt": PROMPT, "n": 2}),
            400,
            "n",
            "invalid_value",
        ),
        (
            json!({"model": "gpt-image-1", "prompt": PROMPT, "n": 11}),
            400,
            "n",
            "integer_above_max_value",
        ),
        (
            json!({"model": "gpt-image-1", "prompt": PROMPT, "response_format": "b64_json"}),
            400,
            "response_format",
            "unknown_parameter",
        ),
        (
            json!({"model": "gpt-image-1", "prompt": PROMPT, "output_format": "webp"}),
            400,
            "output_format",
            "unsupported_in_simulator",
        ),
        (
            json!({"model": "gpt-image-1"}),
            400,
            "prompt",
            "missing_required_parameter",
        ),
        (
            json!({"model": "dall-e-3", "prompt": "x".repeat(4001)}),
            400,
            "prompt",
            "string_above_max_length",
        ),
    ];
    for (body, status, param, code) in cases {
        let response = post(&sim, &body).await;
        assert_eq!(response.status(), status, "{body}");
        let error = error_of(response).await;
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], param, "{error}");
        assert_eq!(error["code"], code, "{error}");
    }
    let unknown = post(&sim, &json!({"model": "imagine-9", "prompt": PROMPT})).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(error_of(unknown).await["code"], "model_not_found");
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn failure_behaviours() {
    let sim = start(SimConfig::default()).await;
    let body = json!({"model": "gpt-image-1", "prompt": PROMPT});

    sim.push_script(Behaviour::ServerError);
    let server = post(&sim, &body).await;
    assert_eq!(server.status(), 500);
    assert_eq!(error_of(server).await["type"], "server_error");

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 7,
    });
    let limited = post(&sim, &body).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(error_of(limited).await["type"], "rate_limit_exceeded");

    sim.push_script(Behaviour::Refused {
        status: 401,
        message: "Incorrect API key provided: sk-sim-***".to_owned(),
    });
    let refused = post(&sim, &body).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        error_of(refused).await["message"],
        "Incorrect API key provided: sk-sim-***"
    );

    sim.push_script(Behaviour::ContentFiltered);
    let filtered = post(&sim, &body).await;
    assert_eq!(filtered.status(), 400);
    let error = error_of(filtered).await;
    assert_eq!(error["type"], "image_generation_user_error");
    assert_eq!(error["code"], "moderation_blocked");
    assert!(error["param"].is_null());
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("Your request was rejected by the safety system.")
    );

    // Scripted over HTTP by its snake_case name, as the binary's users do.
    let scripted = client()
        .post(format!("{}/_sim/script", sim.root_url()))
        .json(&json!({"kind": "content_filtered"}))
        .send()
        .await
        .unwrap();
    assert_eq!(scripted.status(), 200);
    let dalle = post(&sim, &json!({"model": "dall-e-3", "prompt": PROMPT})).await;
    assert_eq!(dalle.status(), 400);
    assert_eq!(error_of(dalle).await["code"], "content_policy_violation");

    sim.push_script(Behaviour::MalformedLine { after_chunks: 0 });
    let malformed = post(&sim, &body).await;
    assert_eq!(malformed.status(), 200);
    let text = malformed.text().await.unwrap();
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "cut in the middle of its JSON"
    );

    sim.push_script(Behaviour::BadAudio { after_chunks: 0 });
    let bad: Value = post(&sim, &body).await.json().await.unwrap();
    assert_eq!(bad["data"][0]["b64_json"], "!!not base64!!");

    sim.push_script(Behaviour::DropMidStream { after_chunks: 0 });
    let dropped = post(&sim, &body).await;
    assert!(dropped.bytes().await.is_err(), "the connection is cut");

    sim.push_script(Behaviour::ErrorEvent { after_chunks: 0 });
    assert_eq!(post(&sim, &body).await.status(), 503);

    let behaviours: Vec<_> = sim.requests().into_iter().map(|r| r.behaviour).collect();
    assert_eq!(behaviours.len(), 9);
    assert_eq!(behaviours[3], Behaviour::ContentFiltered);
}

#[tokio::test]
async fn a_download_drop_cuts_every_download_of_the_image() {
    let sim = start(SimConfig::default()).await;
    sim.push_script(Behaviour::DownloadDrop { after_bytes: 100 });
    let body = json!({"model": "dall-e-2", "prompt": PROMPT, "size": "512x512"});
    let reply: Value = post(&sim, &body).await.json().await.unwrap();
    let url = reply["data"][0]["url"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (announced, received, cut) = read_cut(download(&url).await).await;
        assert!(cut);
        assert_eq!(received, 100);
        assert!(announced.unwrap() > 100);
    }
    // The downloads took nothing from the script: the next request is served normally.
    let next: Value = post(&sim, &body).await.json().await.unwrap();
    let whole = download(next["data"][0]["url"].as_str().unwrap()).await;
    assert_png(&whole.bytes().await.unwrap(), 512, 512);
}
