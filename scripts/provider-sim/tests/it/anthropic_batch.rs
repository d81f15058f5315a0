//! Anthropic Message Batches: submit, poll to `ended`, read the results; cancels, errored
//! requests, headers and scripted failures.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::support::{client, start};
use crate::video_support::{count, formats};

const KEY: &str = "sk-ant-sim-test";
const MODEL: &str = "claude-sonnet-4-5";

fn config(job_polls: usize) -> SimConfig {
    SimConfig {
        job_polls,
        chunks: 2,
        ..SimConfig::default()
    }
}

fn request(custom_id: &str, prompt: &str) -> Value {
    json!({
        "custom_id": custom_id,
        "params": {
            "model": MODEL,
            "max_tokens": 1024,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": prompt}]
        }
    })
}

fn post(sim: &Simulator, path: &str) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}{path}", sim.root_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
}

fn get(sim: &Simulator, path: &str) -> reqwest::RequestBuilder {
    client()
        .get(format!("{}{path}", sim.root_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
}

async fn create(sim: &Simulator, requests: &[Value]) -> reqwest::Response {
    post(sim, "/v1/messages/batches")
        .json(&json!({ "requests": requests }))
        .send()
        .await
        .unwrap()
}

async fn submit(sim: &Simulator, requests: &[Value]) -> String {
    let response = create(sim, requests).await;
    assert_eq!(response.status(), 200);
    let batch: Value = response.json().await.unwrap();
    batch["id"].as_str().unwrap().to_owned()
}

async fn poll(sim: &Simulator, id: &str) -> Value {
    let response = get(sim, &format!("/v1/messages/batches/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The results at `url`, one parsed line per request.
async fn results(url: &str) -> Vec<Value> {
    let response = client()
        .get(url)
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_batch_is_processed_then_its_results_are_read() {
    let sim = start(config(2)).await;
    let mut no_max_tokens = request("req-3", "hi");
    no_max_tokens["params"]
        .as_object_mut()
        .unwrap()
        .remove("max_tokens");
    let response = create(
        &sim,
        &[
            request("req-1", "Say hello to me"),
            request("req-2", "please fail_line"),
            no_max_tokens,
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let batch: Value = response.json().await.unwrap();
    let id = batch["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("msgbatch_"), "{id}");
    assert_eq!(batch["type"], "message_batch");
    assert_eq!(batch["processing_status"], "in_progress");
    assert_eq!(
        batch["request_counts"],
        json!({"processing": 3, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
    );
    for key in [
        "ended_at",
        "cancel_initiated_at",
        "archived_at",
        "results_url",
    ] {
        assert!(batch[key].is_null(), "{key}: {batch}");
    }
    let created = batch["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.contains('T'), "{created}");
    assert!(batch["expires_at"].as_str().unwrap() > created);

    // Results are there only once the batch has ended.
    let early = get(&sim, &format!("/v1/messages/batches/{id}/results"))
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 400);

    let first = poll(&sim, &id).await;
    assert_eq!(first["processing_status"], "in_progress");
    assert_eq!(first["request_counts"]["processing"], 2);
    assert_eq!(first["request_counts"]["succeeded"], 1);
    let second = poll(&sim, &id).await;
    assert_eq!(second["request_counts"]["processing"], 1);
    assert_eq!(second["request_counts"]["errored"], 1);
    let ended = poll(&sim, &id).await;
    assert_eq!(ended["processing_status"], "ended");
    assert_eq!(
        ended["request_counts"],
        json!({"processing": 0, "succeeded": 1, "errored": 2, "canceled": 0, "expired": 0})
    );
    assert!(ended["ended_at"].is_string());
    let url = ended["results_url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("{}/v1/messages/batches/{id}/results", sim.root_url())
    );

    let lines = results(url).await;
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["custom_id"], "req-1");
    assert_eq!(lines[0]["result"]["type"], "succeeded");
    let message = &lines[0]["result"]["message"];
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], MODEL);
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "tok tok "}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 6, "output_tokens": 2})
    );
    assert_eq!(lines[1]["custom_id"], "req-2");
    assert_eq!(lines[1]["result"]["type"], "errored");
    assert_eq!(lines[1]["result"]["error"]["type"], "error");
    assert_eq!(
        lines[1]["result"]["error"]["error"]["type"],
        "invalid_request_error"
    );
    assert!(
        lines[1]["result"]["error"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fail_line")
    );
    assert_eq!(
        lines[2]["result"]["error"]["error"]["message"],
        "max_tokens: Field required"
    );

    use WireFormat::{AnthropicBatchCreate, AnthropicBatchGet, AnthropicBatchResults};
    assert_eq!(
        formats(&sim),
        [
            AnthropicBatchCreate,
            AnthropicBatchResults,
            AnthropicBatchGet,
            AnthropicBatchGet,
            AnthropicBatchGet,
            AnthropicBatchResults
        ]
    );
    let records = sim.requests();
    assert!(records.iter().all(|r| r.batch_requests == 3));
    assert_eq!(records[0].authorization.as_deref(), Some(KEY));
    assert_eq!(records[0].body["requests"][0]["custom_id"], "req-1");
}

#[tokio::test]
async fn a_cancel_ends_the_batch_with_the_rest_canceled() {
    let sim = start(config(3)).await;
    sim.push_script(Behaviour::JobStuck);
    let requests: Vec<Value> = (1..=4)
        .map(|i| request(&format!("req-{i}"), "hi"))
        .collect();
    let id = submit(&sim, &requests).await;
    for _ in 0..5 {
        assert_eq!(poll(&sim, &id).await["processing_status"], "in_progress");
    }
    let response = post(&sim, &format!("/v1/messages/batches/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let canceling: Value = response.json().await.unwrap();
    assert_eq!(canceling["processing_status"], "canceling");
    assert!(canceling["cancel_initiated_at"].is_string());

    let ended = poll(&sim, &id).await;
    assert_eq!(ended["processing_status"], "ended");
    // The stuck batch had finished 3 of 4 requests.
    assert_eq!(
        ended["request_counts"],
        json!({"processing": 0, "succeeded": 3, "errored": 0, "canceled": 1, "expired": 0})
    );
    let lines = results(ended["results_url"].as_str().unwrap()).await;
    let types: Vec<&str> = lines
        .iter()
        .map(|l| l["result"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["succeeded", "succeeded", "succeeded", "canceled"]);
    assert_eq!(lines[3]["result"], json!({"type": "canceled"}));

    let again = post(&sim, &format!("/v1/messages/batches/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    assert_eq!(count(&sim, WireFormat::AnthropicBatchCancel), 2);
}

#[tokio::test]
async fn headers_script_and_job_failed() {
    let sim = start(config(0)).await;
    let body = json!({ "requests": [request("r", "hi")] });
    let no_key = client()
        .post(format!("{}/v1/messages/batches", sim.root_url()))
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let error: Value = no_key.json().await.unwrap();
    assert_eq!(error["error"]["type"], "authentication_error");
    let no_version = client()
        .post(format!("{}/v1/messages/batches", sim.root_url()))
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    let bad_id = create(&sim, &[request("no spaces allowed", "hi")]).await;
    assert_eq!(bad_id.status(), 400);
    let duplicate = create(&sim, &[request("a", "hi"), request("a", "hi")]).await;
    assert_eq!(duplicate.status(), 400);

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 3,
    });
    let limited = create(&sim, &[request("r", "hi")]).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "3");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error");

    sim.push_script(Behaviour::JobFailed);
    let id = submit(&sim, &[request("a", "hi"), request("b", "hi")]).await;
    let ended = poll(&sim, &id).await;
    assert_eq!(ended["processing_status"], "ended");
    assert_eq!(ended["request_counts"]["errored"], 2);
    let lines = results(ended["results_url"].as_str().unwrap()).await;
    assert!(lines.iter().all(|l| l["result"]["type"] == "errored"
        && l["result"]["error"]["error"]["type"] == "api_error"));

    let unknown = get(&sim, "/v1/messages/batches/msgbatch_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // The 429 and the accepted submission are recorded; the refused requests are not.
    assert_eq!(count(&sim, WireFormat::AnthropicBatchCreate), 2);
}

#[tokio::test]
async fn batches_are_listed_newest_first() {
    let sim = start(config(2)).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(submit(&sim, &[request(&format!("r{i}"), "hi")]).await);
    }
    let page: Value = get(&sim, "/v1/messages/batches?limit=2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["has_more"], true);
    assert_eq!(page["first_id"], ids[2].as_str());
    assert_eq!(page["last_id"], ids[1].as_str());
    let rest: Value = get(
        &sim,
        &format!("/v1/messages/batches?limit=2&after_id={}", ids[1]),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(rest["has_more"], false);
    assert_eq!(rest["data"][0]["id"], ids[0].as_str());
    assert_eq!(count(&sim, WireFormat::AnthropicBatchList), 2);
}
