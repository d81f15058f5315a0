//! OpenAI embeddings, `POST /v1/embeddings`: the response shape the SDKs parse (floats and
//! base64 float32), `dimensions`, `usage`, the API's refusals and the failure behaviours.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::support::{API_KEY, client, start};

async fn post(sim: &Simulator, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/embeddings", sim.base_url()))
        .bearer_auth(API_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::String(b64) => STANDARD
            .decode(b64)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        other => serde_json::from_value(other.clone()).unwrap(),
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn floats_and_base64_carry_the_same_unit_vectors_in_input_order() {
    let sim = start(SimConfig::default()).await;
    let input = [
        "the cat sat on the mat",
        "a cat on a mat",
        "interest rates rose again",
    ];
    let body = |format: &str| json!({"model": "text-embedding-3-small", "input": input, "encoding_format": format});
    let float: Value = post(&sim, &body("float")).await.json().await.unwrap();
    let base64: Value = post(&sim, &body("base64")).await.json().await.unwrap();

    assert_eq!(float["object"], "list");
    assert_eq!(float["model"], "text-embedding-3-small");
    assert_eq!(
        float["usage"],
        json!({"prompt_tokens": 15, "total_tokens": 15})
    );
    let data = float["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let vectors: Vec<Vec<f32>> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(
                (d["object"].as_str(), d["index"].as_u64()),
                (Some("embedding"), Some(i as u64))
            );
            assert!(d["embedding"].is_array());
            floats(&d["embedding"])
        })
        .collect();
    for v in &vectors {
        assert_eq!(v.len(), 1536);
        assert!((dot(v, v) - 1.0).abs() < 1e-4);
    }
    assert!(dot(&vectors[0], &vectors[1]) > dot(&vectors[0], &vectors[2]) + 0.3);
    for (i, d) in base64["data"].as_array().unwrap().iter().enumerate() {
        assert!(d["embedding"].is_string());
        assert_eq!(floats(&d["embedding"]), vectors[i]);
    }

    let records = sim.requests();
    assert_eq!(records[0].format, WireFormat::OpenAiEmbeddings);
    assert_eq!(records[0].texts, input);
}

#[tokio::test]
async fn dimensions_shorten_the_models_that_allow_it() {
    let sim = start(SimConfig::default()).await;
    let short: Value = post(
        &sim,
        &json!({"model": "text-embedding-3-large", "input": "hello", "dimensions": 256}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(floats(&short["data"][0]["embedding"]).len(), 256);
    let large: Value = post(
        &sim,
        &json!({"model": "text-embedding-3-large", "input": [[15339, 1917]]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(floats(&large["data"][0]["embedding"]).len(), 3072);
    assert_eq!(large["usage"]["prompt_tokens"], 2);

    let ada = post(
        &sim,
        &json!({"model": "text-embedding-ada-002", "input": "hi", "dimensions": 256}),
    )
    .await;
    assert_eq!(ada.status(), 400);
    let body: Value = ada.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "This model does not support specifying dimensions."
    );
    let too_many = post(
        &sim,
        &json!({"model": "text-embedding-3-small", "input": "hi", "dimensions": 4096}),
    )
    .await;
    assert_eq!(too_many.status(), 400);
}

#[tokio::test]
async fn requests_the_api_refuses_are_refused_alike() {
    let sim = start(SimConfig::default()).await;
    let cases = [
        (json!({"model": "text-embedding-3-small", "input": ""}), 400),
        (json!({"model": "text-embedding-3-small", "input": []}), 400),
        (json!({"model": "text-embedding-3-small"}), 400),
        (
            json!({"model": "text-embedding-3-small", "input": vec!["a"; 2049]}),
            400,
        ),
        (
            json!({"model": "text-embedding-3-small", "input": "a", "encoding_format": "int8"}),
            400,
        ),
        (json!({"model": "no-such-model", "input": "a"}), 404),
    ];
    for (body, status) in cases {
        let response = post(&sim, &body).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    let no_key = client()
        .post(format!("{}/embeddings", sim.base_url()))
        .json(&json!({"model": "text-embedding-3-small", "input": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    assert!(
        sim.requests().is_empty(),
        "refused requests are not recorded"
    );
}

#[tokio::test]
async fn scripted_failures_answer_as_the_api_does() {
    let sim = start(SimConfig::default()).await;
    let body = json!({"model": "text-embedding-3-small", "input": "hello"});
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 7,
    });
    let limited = post(&sim, &body).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");

    sim.push_script(Behaviour::ServerError);
    assert_eq!(post(&sim, &body).await.status(), 500);
    sim.push_script(Behaviour::ErrorEvent { after_chunks: 0 });
    assert_eq!(post(&sim, &body).await.status(), 503);
    sim.push_script(Behaviour::MalformedLine { after_chunks: 0 });
    let malformed = post(&sim, &body).await;
    assert_eq!(malformed.status(), 200);
    assert!(malformed.json::<Value>().await.is_err());
    assert_eq!(post(&sim, &body).await.status(), 200);
}
