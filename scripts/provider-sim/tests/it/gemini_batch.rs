//! Gemini Batch Mode: `batchGenerateContent` with inline requests, polled as a `batches/…`
//! operation until its inline responses are there; cancels, lists, keys and scripted failures.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::support::{client, start};
use crate::video_support::{count, formats};

const KEY: &str = "AIza-sim-test";
const MODEL: &str = "gemini-2.5-flash";

fn config(job_polls: usize) -> SimConfig {
    SimConfig {
        job_polls,
        chunks: 2,
        ..SimConfig::default()
    }
}

fn inline(key: &str, prompt: &str) -> Value {
    json!({
        "request": {"contents": [{"role": "user", "parts": [{"text": prompt}]}]},
        "metadata": {"key": key}
    })
}

fn batch_body(display_name: &str, requests: &[Value]) -> Value {
    json!({
        "batch": {
            "display_name": display_name,
            "input_config": {"requests": {"requests": requests}}
        }
    })
}

async fn create(sim: &Simulator, body: &Value) -> reqwest::Response {
    client()
        .post(format!(
            "{}/v1beta/models/{MODEL}:batchGenerateContent",
            sim.root_url()
        ))
        .header("x-goog-api-key", KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Submits `requests` and returns the operation's name, `batches/…`.
async fn submit(sim: &Simulator, display_name: &str, requests: &[Value]) -> String {
    let response = create(sim, &batch_body(display_name, requests)).await;
    assert_eq!(response.status(), 200);
    let operation: Value = response.json().await.unwrap();
    operation["name"].as_str().unwrap().to_owned()
}

async fn get(sim: &Simulator, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}/v1beta/{path}", sim.root_url()))
        .header("x-goog-api-key", KEY)
        .send()
        .await
        .unwrap()
}

async fn poll(sim: &Simulator, name: &str) -> Value {
    let response = get(sim, name).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn cancel(sim: &Simulator, name: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1beta/{name}:cancel", sim.root_url()))
        .header("x-goog-api-key", KEY)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_runs_to_its_inline_responses() {
    let sim = start(config(2)).await;
    let response = create(
        &sim,
        &batch_body(
            "nightly-42",
            &[
                inline("request-1", "Say hello to me"),
                inline("request-2", "please fail_line"),
                json!({"request": {"contents": [{"parts": [{"text": "no metadata"}]}]}}),
            ],
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    let created: Value = response.json().await.unwrap();
    let name = created["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("batches/"), "{name}");
    let metadata = &created["metadata"];
    assert_eq!(
        metadata["@type"],
        "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
    );
    assert_eq!(metadata["model"], format!("models/{MODEL}"));
    assert_eq!(metadata["displayName"], "nightly-42");
    assert_eq!(metadata["state"], "BATCH_STATE_PENDING");
    assert_eq!(metadata["name"], name.as_str());
    assert_eq!(
        metadata["batchStats"],
        json!({"requestCount": "3", "pendingRequestCount": "3"})
    );
    assert!(metadata["createTime"].as_str().unwrap().ends_with('Z'));
    assert!(created.get("done").is_none());

    let first = poll(&sim, &name).await;
    assert_eq!(first["metadata"]["state"], "BATCH_STATE_RUNNING");
    assert_eq!(
        first["metadata"]["batchStats"],
        json!({"requestCount": "3", "pendingRequestCount": "2", "successfulRequestCount": "1"})
    );
    let second = poll(&sim, &name).await;
    assert_eq!(second["metadata"]["batchStats"]["failedRequestCount"], "1");
    assert!(second.get("response").is_none());
    let done = poll(&sim, &name).await;
    assert_eq!(done["done"], true);
    assert_eq!(done["metadata"]["state"], "BATCH_STATE_SUCCEEDED");
    assert_eq!(
        done["metadata"]["batchStats"],
        json!({"requestCount": "3", "successfulRequestCount": "2", "failedRequestCount": "1"})
    );
    assert!(done["metadata"]["endTime"].is_string());
    assert_eq!(
        done["response"]["@type"],
        "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
    );
    let responses = done["response"]["inlinedResponses"]["inlinedResponses"]
        .as_array()
        .unwrap();
    assert_eq!(
        &done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"],
        &done["response"]["inlinedResponses"]["inlinedResponses"]
    );
    assert_eq!(responses.len(), 3);
    assert_eq!(responses[0]["metadata"], json!({"key": "request-1"}));
    let answer = &responses[0]["response"];
    assert_eq!(answer["candidates"][0]["content"]["role"], "model");
    assert_eq!(
        answer["candidates"][0]["content"]["parts"][0]["text"],
        "tok tok "
    );
    assert_eq!(answer["candidates"][0]["finishReason"], "STOP");
    assert_eq!(answer["usageMetadata"]["promptTokenCount"], 4);
    assert_eq!(answer["usageMetadata"]["candidatesTokenCount"], 2);
    assert_eq!(answer["modelVersion"], MODEL);
    assert_eq!(responses[1]["metadata"], json!({"key": "request-2"}));
    assert!(responses[1].get("response").is_none());
    assert_eq!(responses[1]["error"]["code"], 3);
    assert!(
        responses[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fail_line")
    );
    assert!(responses[2].get("metadata").is_none());
    assert!(responses[2]["response"]["candidates"].is_array());

    use WireFormat::{GeminiBatchCreate, GeminiBatchGet};
    assert_eq!(
        formats(&sim),
        [
            GeminiBatchCreate,
            GeminiBatchGet,
            GeminiBatchGet,
            GeminiBatchGet
        ]
    );
    let records = sim.requests();
    assert!(records.iter().all(|r| r.batch_requests == 3));
    assert_eq!(records[0].authorization.as_deref(), Some(KEY));
    assert_eq!(records[0].body["batch"]["display_name"], "nightly-42");
}

#[tokio::test]
async fn a_cancel_ends_the_batch_at_once() {
    let sim = start(config(3)).await;
    let name = submit(&sim, "to-cancel", &[inline("a", "hi"), inline("b", "hi")]).await;
    poll(&sim, &name).await;
    let response = cancel(&sim, &name).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    let cancelled = poll(&sim, &name).await;
    assert_eq!(cancelled["metadata"]["state"], "BATCH_STATE_CANCELLED");
    assert_eq!(cancelled["done"], true);
    assert_eq!(cancelled["error"]["code"], 1);
    assert!(cancelled.get("response").is_none());

    let again = cancel(&sim, &name).await;
    assert_eq!(again.status(), 400);
    let error: Value = again.json().await.unwrap();
    assert_eq!(error["error"]["status"], "FAILED_PRECONDITION");
    assert_eq!(cancel(&sim, "batches/nope").await.status(), 404);
    assert_eq!(count(&sim, WireFormat::GeminiBatchCancel), 3);
}

#[tokio::test]
async fn a_client_finds_its_batch_by_display_name_across_pages() {
    let sim = start(config(2)).await;
    let mut names = Vec::new();
    for job in ["job-a", "job-b", "job-c"] {
        names.push(submit(&sim, job, &[inline("k", "hi")]).await);
    }
    let page: Value = get(&sim, "batches?pageSize=2").await.json().await.unwrap();
    let operations = page["operations"].as_array().unwrap();
    let shown: Vec<&str> = operations
        .iter()
        .map(|o| o["metadata"]["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(shown, ["job-c", "job-b"]);
    let token = page["nextPageToken"].as_str().unwrap();
    let rest: Value = get(&sim, &format!("batches?pageSize=2&pageToken={token}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["operations"][0]["name"], names[0].as_str());
    assert!(rest.get("nextPageToken").is_none());
    assert_eq!(
        rest["operations"][0]["metadata"]["state"], "BATCH_STATE_PENDING",
        "a list is no poll"
    );
    assert_eq!(get(&sim, "batches?pageToken=nope").await.status(), 400);
    assert_eq!(count(&sim, WireFormat::GeminiBatchList), 3);
}

#[tokio::test]
async fn keys_script_and_job_failed() {
    let sim = start(config(0)).await;
    let body = batch_body("b", &[inline("k", "hi")]);
    let no_key = client()
        .post(format!(
            "{}/v1beta/models/{MODEL}:batchGenerateContent",
            sim.root_url()
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 403);
    // The key may come as a query parameter.
    let by_query = client()
        .get(format!("{}/v1beta/batches?key={KEY}", sim.root_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200);
    let empty = create(&sim, &batch_body("b", &[])).await;
    assert_eq!(empty.status(), 400);
    let error: Value = empty.json().await.unwrap();
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 5,
    });
    let limited = create(&sim, &body).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "5");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["status"], "RESOURCE_EXHAUSTED");

    sim.push_script(Behaviour::JobFailed);
    let name = submit(&sim, "doomed", &[inline("k", "hi")]).await;
    let failed = poll(&sim, &name).await;
    assert_eq!(failed["metadata"]["state"], "BATCH_STATE_FAILED");
    assert_eq!(failed["done"], true);
    assert_eq!(failed["error"]["code"], 13);
    assert!(failed.get("response").is_none());

    assert_eq!(get(&sim, "batches/nope").await.status(), 404);
    assert_eq!(count(&sim, WireFormat::GeminiBatchCreate), 2);
}
