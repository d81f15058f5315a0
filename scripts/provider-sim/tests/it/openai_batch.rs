//! OpenAI Files and Batches: upload a JSONL input, submit a batch, poll it to its end, read the
//! output and error files; cancels, bad input lines and scripted failures.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::support::{API_KEY, client, start};
use crate::video_support::{count, formats, read_cut};

const ENDPOINT: &str = "/v1/chat/completions";

fn config(job_polls: usize) -> SimConfig {
    SimConfig {
        job_polls,
        chunks: 3,
        ..SimConfig::default()
    }
}

/// One request line of an input file asking `prompt` (4 words of system prompt and prompt
/// make the prompt tokens).
fn request_line(custom_id: &str, prompt: &str) -> Value {
    json!({
        "custom_id": custom_id,
        "method": "POST",
        "url": ENDPOINT,
        "body": {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": prompt}
            ],
            "max_tokens": 100
        }
    })
}

fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

async fn upload(sim: &Simulator, name: &str, contents: String) -> Value {
    let file = Part::bytes(contents.into_bytes())
        .file_name(name.to_owned())
        .mime_str("application/jsonl")
        .unwrap();
    let response = client()
        .post(format!("{}/files", sim.base_url()))
        .bearer_auth(API_KEY)
        .multipart(Form::new().text("purpose", "batch").part("file", file))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn create(sim: &Simulator, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/batches", sim.base_url()))
        .bearer_auth(API_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Uploads `lines` and submits them as a batch; returns the batch as created.
async fn submit(sim: &Simulator, contents: String) -> Value {
    let file = upload(sim, "requests.jsonl", contents).await;
    let response = create(
        sim,
        &json!({"input_file_id": file["id"], "endpoint": ENDPOINT, "completion_window": "24h",
                "metadata": {"job": "job-1"}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn get(sim: &Simulator, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
}

async fn poll(sim: &Simulator, id: &str) -> Value {
    let response = get(sim, &format!("/batches/{id}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn cancel(sim: &Simulator, id: &str) -> reqwest::Response {
    client()
        .post(format!("{}/batches/{id}/cancel", sim.base_url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
}

/// The lines of a file, parsed.
async fn file_lines(sim: &Simulator, file_id: &str) -> Vec<Value> {
    let response = get(sim, &format!("/files/{file_id}/content")).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_batch_runs_from_its_upload_to_its_output_and_error_files() {
    let sim = start(config(2)).await;
    let contents = jsonl(&[
        request_line("req-1", "Say hello"),
        request_line("req-2", "please fail_line now"),
        request_line("req-3", "Say goodbye"),
    ]);
    let file = upload(&sim, "requests.jsonl", contents.clone()).await;
    assert!(file["id"].as_str().unwrap().starts_with("file-"), "{file}");
    assert_eq!(file["object"], "file");
    assert_eq!(file["purpose"], "batch");
    assert_eq!(file["filename"], "requests.jsonl");
    assert_eq!(file["status"], "processed");
    assert_eq!(file["bytes"], contents.len());

    let response = create(
        &sim,
        &json!({"input_file_id": file["id"], "endpoint": ENDPOINT, "completion_window": "24h",
                "metadata": {"job": "job-1"}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let batch: Value = response.json().await.unwrap();
    let id = batch["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("batch_"), "{id}");
    assert_eq!(batch["object"], "batch");
    assert_eq!(batch["status"], "validating");
    assert_eq!(batch["endpoint"], ENDPOINT);
    assert_eq!(batch["input_file_id"], file["id"]);
    assert_eq!(batch["completion_window"], "24h");
    assert_eq!(batch["metadata"], json!({"job": "job-1"}));
    assert_eq!(
        batch["request_counts"],
        json!({"total": 3, "completed": 0, "failed": 0})
    );
    let created_at = batch["created_at"].as_u64().unwrap();
    assert_eq!(
        batch["expires_at"].as_u64().unwrap(),
        created_at + 24 * 3600
    );
    for key in [
        "output_file_id",
        "error_file_id",
        "errors",
        "in_progress_at",
        "completed_at",
    ] {
        assert!(batch[key].is_null(), "{key}: {batch}");
    }

    // Two polls in progress, one finalizing, then completed; the lines finish in order.
    let mut seen = Vec::new();
    let done = loop {
        let batch = poll(&sim, &id).await;
        let counts = &batch["request_counts"];
        seen.push((
            batch["status"].as_str().unwrap().to_owned(),
            counts["completed"].as_u64().unwrap() + counts["failed"].as_u64().unwrap(),
        ));
        if batch["status"] == "completed" {
            break batch;
        }
        assert!(seen.len() < 10, "never completed: {seen:?}");
    };
    let seen: Vec<(&str, u64)> = seen.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    assert_eq!(
        seen,
        [
            ("in_progress", 1),
            ("in_progress", 2),
            ("finalizing", 3),
            ("completed", 3)
        ]
    );
    assert_eq!(
        done["request_counts"],
        json!({"total": 3, "completed": 2, "failed": 1})
    );
    for key in ["in_progress_at", "finalizing_at", "completed_at"] {
        assert!(done[key].as_u64().unwrap() >= created_at, "{key}: {done}");
    }
    assert!(done["failed_at"].is_null() && done["cancelled_at"].is_null());
    assert_eq!(done["model"], "gpt-4o-mini");
    // Usage of the two answers: 4 prompt words and 3 reply chunks each.
    assert_eq!(done["usage"]["input_tokens"], 2 + 2 + 2 + 2);
    assert_eq!(done["usage"]["output_tokens"], 6);
    assert_eq!(done["usage"]["total_tokens"], 14);

    let output_id = done["output_file_id"].as_str().unwrap();
    let output = file_lines(&sim, output_id).await;
    let ids: Vec<&str> = output
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["req-1", "req-3"]);
    let line = &output[0];
    assert!(line["id"].as_str().unwrap().starts_with("batch_req_"));
    assert!(line["error"].is_null());
    assert_eq!(line["response"]["status_code"], 200);
    assert!(line["response"]["request_id"].is_string());
    let completion = &line["response"]["body"];
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "gpt-4o-mini");
    assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "tok tok tok "
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        completion["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})
    );

    let errors = file_lines(&sim, done["error_file_id"].as_str().unwrap()).await;
    assert_eq!(errors.len(), 1);
    let failed = &errors[0];
    assert_eq!(failed["custom_id"], "req-2");
    assert!(failed["error"].is_null());
    assert_eq!(failed["response"]["status_code"], 400);
    let error = &failed["response"]["body"]["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "simulated_failure");
    assert!(error["message"].as_str().unwrap().contains("fail_line"));

    // The output file is a file like any other, and can be deleted.
    let object: Value = get(&sim, &format!("/files/{output_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(object["purpose"], "batch_output");
    assert_eq!(object["filename"], format!("batch_{id}_output.jsonl"));
    let deleted: Value = client()
        .delete(format!("{}/files/{output_id}", sim.base_url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        deleted,
        json!({"id": output_id, "object": "file", "deleted": true})
    );
    let gone = get(&sim, &format!("/files/{output_id}/content")).await;
    assert_eq!(gone.status(), 404);
    let error: Value = gone.json().await.unwrap();
    assert_eq!(
        error["error"]["message"],
        format!("No such File object: {output_id}")
    );

    use WireFormat::{
        OpenAiBatchCreate, OpenAiBatchGet, OpenAiFileContent, OpenAiFileDelete, OpenAiFileGet,
        OpenAiFileUpload,
    };
    assert_eq!(
        formats(&sim),
        [
            OpenAiFileUpload,
            OpenAiBatchCreate,
            OpenAiBatchGet,
            OpenAiBatchGet,
            OpenAiBatchGet,
            OpenAiBatchGet,
            OpenAiFileContent,
            OpenAiFileContent,
            OpenAiFileGet,
            OpenAiFileDelete,
            OpenAiFileContent,
        ]
    );
    let records = sim.requests();
    let requests: Vec<usize> = records.iter().map(|r| r.batch_requests).collect();
    assert_eq!(requests, [3, 3, 3, 3, 3, 3, 2, 1, 0, 0, 0]);
    assert_eq!(records[1].body["input_file_id"], file["id"]);
    assert_eq!(records[0].body["file"]["filename"], "requests.jsonl");
    assert!(records.iter().all(|r| r.finished));
}

#[tokio::test]
async fn a_client_finds_its_batch_by_its_metadata_in_the_list() {
    let sim = start(config(2)).await;
    let mut ids = Vec::new();
    for job in ["job-a", "job-b", "job-c"] {
        let file = upload(&sim, "in.jsonl", jsonl(&[request_line("r", "hi")])).await;
        let batch: Value = create(
            &sim,
            &json!({"input_file_id": file["id"], "endpoint": ENDPOINT,
                    "completion_window": "24h", "metadata": {"job": job}}),
        )
        .await
        .json()
        .await
        .unwrap();
        ids.push(batch["id"].as_str().unwrap().to_owned());
    }
    let page: Value = get(&sim, "/batches?limit=2").await.json().await.unwrap();
    assert_eq!(page["object"], "list");
    assert_eq!(page["has_more"], true);
    assert_eq!(page["data"][0]["metadata"]["job"], "job-c", "newest first");
    assert_eq!(page["first_id"], ids[2].as_str());
    assert_eq!(page["last_id"], ids[1].as_str());
    let last = page["last_id"].as_str().unwrap();
    let rest: Value = get(&sim, &format!("/batches?limit=2&after={last}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["has_more"], false);
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["metadata"]["job"], "job-a");
    assert_eq!(rest["data"][0]["status"], "validating", "a list is no poll");
    assert_eq!(count(&sim, WireFormat::OpenAiBatchList), 2);
    assert_eq!(count(&sim, WireFormat::OpenAiBatchCreate), 3);
}

#[tokio::test]
async fn a_cancel_keeps_the_lines_finished_before_it() {
    let sim = start(config(3)).await;
    let lines: Vec<Value> = (1..=4)
        .map(|i| request_line(&format!("req-{i}"), "Say hello"))
        .collect();
    let batch = submit(&sim, jsonl(&lines)).await;
    let id = batch["id"].as_str().unwrap();

    let running = poll(&sim, id).await;
    assert_eq!(running["status"], "in_progress");
    assert_eq!(running["request_counts"]["completed"], 1);

    let response = cancel(&sim, id).await;
    assert_eq!(response.status(), 200);
    let cancelling: Value = response.json().await.unwrap();
    assert_eq!(cancelling["status"], "cancelling");
    assert!(cancelling["cancelling_at"].is_u64());
    assert!(cancelling["cancelled_at"].is_null());

    let cancelled = poll(&sim, id).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["cancelled_at"].is_u64());
    assert!(cancelled["completed_at"].is_null());
    assert_eq!(
        cancelled["request_counts"],
        json!({"total": 4, "completed": 1, "failed": 0})
    );
    assert!(cancelled["error_file_id"].is_null());
    let output = file_lines(&sim, cancelled["output_file_id"].as_str().unwrap()).await;
    assert_eq!(output.len(), 1);
    assert_eq!(output[0]["custom_id"], "req-1");

    // An ended batch cannot be cancelled.
    let again = cancel(&sim, id).await;
    assert_eq!(again.status(), 400);
    let error: Value = again.json().await.unwrap();
    assert_eq!(
        error["error"]["message"],
        "Cannot cancel a batch with status 'cancelled'."
    );
    let unknown = cancel(&sim, "batch_nope").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(count(&sim, WireFormat::OpenAiBatchCancel), 3);
}

#[tokio::test]
async fn bad_input_lines_fail_the_batch_at_its_first_poll() {
    let sim = start(config(2)).await;
    let mut wrong_url = request_line("req-3", "hi");
    wrong_url["url"] = json!("/v1/embeddings");
    let contents = format!(
        "{}\n{{not json\n{}\n{}\n",
        request_line("req-1", "hi"),
        wrong_url,
        request_line("req-1", "hi again"),
    );
    let batch = submit(&sim, contents).await;
    assert_eq!(batch["status"], "validating");
    assert!(batch["errors"].is_null());
    let id = batch["id"].as_str().unwrap();

    let failed = poll(&sim, id).await;
    assert_eq!(failed["status"], "failed");
    assert!(failed["failed_at"].is_u64());
    assert!(failed["output_file_id"].is_null() && failed["error_file_id"].is_null());
    assert_eq!(failed["request_counts"]["total"], 0);
    assert_eq!(failed["errors"]["object"], "list");
    let errors = failed["errors"]["data"].as_array().unwrap();
    let found: Vec<(&str, u64)> = errors
        .iter()
        .map(|e| (e["code"].as_str().unwrap(), e["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            ("invalid_json_line", 2),
            ("url_mismatch", 3),
            ("duplicate_custom_id", 4)
        ]
    );
    assert_eq!(
        errors[0]["message"],
        "This line is not parseable as valid JSON."
    );
    assert_eq!(errors[1]["param"], "url");
    // It stays failed.
    assert_eq!(poll(&sim, id).await["status"], "failed");
    assert_eq!(sim.requests()[1].batch_requests, 4);
}

#[tokio::test]
async fn a_line_the_chat_endpoint_refuses_goes_to_the_error_file() {
    let sim = start(config(0)).await;
    let mut no_messages = request_line("bad", "hi");
    no_messages["body"]
        .as_object_mut()
        .unwrap()
        .remove("messages");
    let batch = submit(&sim, jsonl(&[no_messages])).await;
    let id = batch["id"].as_str().unwrap();
    assert_eq!(poll(&sim, id).await["status"], "finalizing");
    let done = poll(&sim, id).await;
    assert_eq!(done["status"], "completed");
    // Every line failed: completed, without an output file.
    assert!(done["output_file_id"].is_null());
    let errors = file_lines(&sim, done["error_file_id"].as_str().unwrap()).await;
    assert_eq!(errors[0]["response"]["status_code"], 400);
    assert_eq!(errors[0]["response"]["body"]["error"]["param"], "messages");
}

#[tokio::test]
async fn submissions_take_the_script_and_a_job_failed_batch_ends_failed() {
    let sim = start(config(1)).await;
    let file = upload(&sim, "in.jsonl", jsonl(&[request_line("r", "hi")])).await;
    let body = json!({"input_file_id": file["id"], "endpoint": ENDPOINT,
                      "completion_window": "24h"});

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 7,
    });
    let limited = create(&sim, &body).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_exceeded");

    sim.push_script(Behaviour::ServerError);
    assert_eq!(create(&sim, &body).await.status(), 500);

    sim.push_script(Behaviour::JobFailed);
    let batch: Value = create(&sim, &body).await.json().await.unwrap();
    let id = batch["id"].as_str().unwrap();
    assert_eq!(poll(&sim, id).await["status"], "in_progress");
    let failed = poll(&sim, id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["errors"]["data"][0]["code"], "server_error");
    assert!(failed["output_file_id"].is_null());
    let records = sim.requests();
    assert!(
        records
            .iter()
            .filter(|r| r.format == WireFormat::OpenAiBatchGet)
            .all(|r| r.behaviour == Behaviour::JobFailed)
    );
    assert_eq!(count(&sim, WireFormat::OpenAiBatchCreate), 3);
}

#[tokio::test]
async fn a_download_drop_cuts_the_output_file() {
    let sim = start(config(0)).await;
    let file = upload(&sim, "in.jsonl", jsonl(&[request_line("r", "hi")])).await;
    sim.push_script(Behaviour::DownloadDrop { after_bytes: 10 });
    let batch: Value = create(
        &sim,
        &json!({"input_file_id": file["id"], "endpoint": ENDPOINT, "completion_window": "24h"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = batch["id"].as_str().unwrap();
    poll(&sim, id).await;
    let done = poll(&sim, id).await;
    let output = done["output_file_id"].as_str().unwrap();
    let (announced, received, failed) =
        read_cut(get(&sim, &format!("/files/{output}/content")).await).await;
    assert!(announced.unwrap() > 10);
    assert_eq!(received, 10);
    assert!(failed);
}

#[tokio::test]
async fn requests_the_api_refuses() {
    let sim = start(config(2)).await;
    // No key.
    let response = client()
        .post(format!("{}/batches", sim.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // A batch file must be .jsonl.
    let part = Part::bytes(b"{}".to_vec()).file_name("in.json");
    let response = client()
        .post(format!("{}/files", sim.base_url()))
        .bearer_auth(API_KEY)
        .multipart(Form::new().text("purpose", "batch").part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error["error"]["message"],
        "Invalid file format for Batch API. Must be .jsonl"
    );

    let file = upload(&sim, "in.jsonl", jsonl(&[request_line("r", "hi")])).await;
    let cases = [
        (
            json!({"input_file_id": "file-nope", "endpoint": ENDPOINT, "completion_window": "24h"}),
            404,
            "input_file_id",
        ),
        (
            json!({"input_file_id": file["id"], "endpoint": "/v1/nope", "completion_window": "24h"}),
            400,
            "endpoint",
        ),
        (
            json!({"input_file_id": file["id"], "endpoint": "/v1/embeddings", "completion_window": "24h"}),
            400,
            "endpoint",
        ),
        (
            json!({"input_file_id": file["id"], "endpoint": ENDPOINT, "completion_window": "48h"}),
            400,
            "completion_window",
        ),
        (
            json!({"input_file_id": file["id"], "endpoint": ENDPOINT}),
            400,
            "completion_window",
        ),
    ];
    for (body, status, param) in cases {
        let response = create(&sim, &body).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], param, "{body}");
    }
    let unknown = get(&sim, "/batches/batch_nope").await;
    assert_eq!(unknown.status(), 404);
    // Refused submissions are not recorded; the poll of an unknown batch is.
    assert_eq!(
        formats(&sim),
        [WireFormat::OpenAiFileUpload, WireFormat::OpenAiBatchGet]
    );
}
