//! OpenAI Sora video jobs: `POST /v1/videos`, polls, the content download and deletes.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provider_sim::{Behaviour, Simulator, WireFormat};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::support::{API_KEY, client, start};
use crate::video_support::{VIDEO_BYTES, assert_mp4, count, formats, read_cut, video_config};

fn form(seconds: &str) -> Form {
    Form::new()
        .text("prompt", "A calico cat playing a piano on stage")
        .text("model", "sora-2")
        .text("seconds", seconds.to_owned())
        .text("size", "1280x720")
}

async fn create(sim: &Simulator, form: Form) -> reqwest::Response {
    client()
        .post(format!("{}/videos", sim.base_url()))
        .bearer_auth(API_KEY)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Submits a default job and returns its id.
async fn submit(sim: &Simulator) -> String {
    let response = create(sim, form("8")).await;
    assert_eq!(response.status(), 200);
    let video: Value = response.json().await.unwrap();
    video["id"].as_str().unwrap().to_owned()
}

async fn retrieve(sim: &Simulator, id: &str) -> reqwest::Response {
    client()
        .get(format!("{}/videos/{id}", sim.base_url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
}

async fn poll(sim: &Simulator, id: &str) -> Value {
    let response = retrieve(sim, id).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn content(sim: &Simulator, id: &str) -> reqwest::Response {
    client()
        .get(format!(
            "{}/videos/{id}/content?variant=video",
            sim.base_url()
        ))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_job_is_queued_polled_with_rising_progress_and_downloaded() {
    let sim = start(video_config(2)).await;
    let response = create(&sim, form("8")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["openai-poll-after-ms"], "250");
    let video: Value = response.json().await.unwrap();
    let id = video["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("video_"), "{id}");
    assert_eq!(video["object"], "video");
    assert_eq!(video["status"], "queued");
    assert_eq!(video["progress"], 0);
    assert_eq!(video["model"], "sora-2");
    assert_eq!(video["seconds"], "8");
    assert_eq!(video["size"], "1280x720");
    assert_eq!(video["prompt"], "A calico cat playing a piano on stage");
    assert!(video["created_at"].as_u64().unwrap() > 1_700_000_000);
    for key in [
        "completed_at",
        "expires_at",
        "error",
        "remixed_from_video_id",
    ] {
        assert!(video[key].is_null(), "{key}: {video}");
    }

    // Too early: nothing to download yet.
    let early = content(&sim, &id).await;
    assert_eq!(early.status(), 400);
    let error: Value = early.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");

    let mut progress = Vec::new();
    let done = loop {
        let response = retrieve(&sim, &id).await;
        assert_eq!(response.headers()["openai-poll-after-ms"], "250");
        let video: Value = response.json().await.unwrap();
        progress.push(video["progress"].as_u64().unwrap());
        if video["status"] == "completed" {
            break video;
        }
        assert_eq!(video["status"], "in_progress");
        assert!(progress.len() < 10, "never completed");
    };
    assert_eq!(progress, [33, 66, 100]);
    let completed_at = done["completed_at"].as_u64().unwrap();
    assert_eq!(done["expires_at"].as_u64().unwrap(), completed_at + 3600);
    assert!(done["error"].is_null());
    // The job stays completed, with the same completion time.
    assert_eq!(poll(&sim, &id).await["completed_at"], completed_at);

    let response = content(&sim, &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "video/mp4");
    assert_eq!(response.content_length(), Some(VIDEO_BYTES as u64));
    assert_mp4(&response.bytes().await.unwrap(), VIDEO_BYTES);

    use WireFormat::{Sora, SoraContent, SoraPoll};
    assert_eq!(
        formats(&sim),
        [
            Sora,
            SoraContent,
            SoraPoll,
            SoraPoll,
            SoraPoll,
            SoraPoll,
            SoraContent
        ]
    );
    let records = sim.requests();
    assert_eq!(
        records[0].body["prompt"],
        "A calico cat playing a piano on stage"
    );
    assert_eq!(records[0].body["seconds"], "8");
    assert!(records.iter().all(|r| r.behaviour == Behaviour::Normal));
    assert!(records.iter().all(|r| r.finished));
}

#[tokio::test]
async fn a_json_body_and_an_image_reference_are_taken_too() {
    let sim = start(video_config(0)).await;
    let response = client()
        .post(format!("{}/videos", sim.base_url()))
        .bearer_auth(API_KEY)
        .json(
            &json!({"prompt": "A lighthouse", "model": "sora-2-pro", "size": "1792x1024",
                      "input_reference": {"image_url": "https://example.com/a.png"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let video: Value = response.json().await.unwrap();
    assert_eq!(video["model"], "sora-2-pro");
    assert_eq!(video["seconds"], "4", "the default length");
    assert_eq!(video["size"], "1792x1024");

    let image = Part::bytes(vec![0x89, b'P', b'N', b'G'])
        .file_name("first.png")
        .mime_str("image/png")
        .unwrap();
    let response = create(&sim, form("4").part("input_reference", image)).await;
    assert_eq!(response.status(), 200);
    let record = &sim.requests()[1];
    assert_eq!(record.body["input_reference"]["filename"], "first.png");
    assert_eq!(record.body["input_reference"]["bytes"], 4);
}

#[tokio::test]
async fn parameters_the_api_refuses_get_its_400_and_are_not_recorded() {
    let sim = start(video_config(2)).await;
    let response = create(&sim, form("5")).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], "seconds");
    assert_eq!(error["error"]["code"], "invalid_value");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'4', '8', '12'")
    );

    // sora-2 makes only 720x1280 and 1280x720.
    let wide = Form::new()
        .text("prompt", "A lighthouse")
        .text("model", "sora-2")
        .text("size", "1792x1024");
    let response = create(&sim, wide).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "size");

    let response = create(&sim, Form::new().text("model", "sora-2")).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "prompt");

    let response = create(
        &sim,
        Form::new()
            .text("prompt", "A lighthouse")
            .text("model", "sora-3"),
    )
    .await;
    assert_eq!(response.status(), 400);

    let response = client()
        .post(format!("{}/videos", sim.base_url()))
        .multipart(form("4"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn submission_failures_answer_the_submission() {
    let sim = start(video_config(0)).await;
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 7,
    });
    sim.push_script(Behaviour::ServerError);
    sim.push_script(Behaviour::Refused {
        status: 401,
        message: "Incorrect API key provided: sk-sim-test.".to_owned(),
    });

    let limited = create(&sim, form("4")).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_exceeded");

    let failed = create(&sim, form("4")).await;
    assert_eq!(failed.status(), 500);
    let error: Value = failed.json().await.unwrap();
    assert_eq!(error["error"]["type"], "server_error");

    let refused = create(&sim, form("4")).await;
    assert_eq!(refused.status(), 401);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(
        error["error"]["message"],
        "Incorrect API key provided: sk-sim-test."
    );

    // The script is spent: the next submission makes a job.
    let id = submit(&sim).await;
    assert_eq!(poll(&sim, &id).await["status"], "completed");
    assert_eq!(count(&sim, WireFormat::Sora), 4);
}

#[tokio::test]
async fn a_filtered_job_fails_with_moderation_blocked() {
    let sim = start(video_config(1)).await;
    sim.push_script(Behaviour::ContentFiltered);
    let id = submit(&sim).await;
    assert_eq!(poll(&sim, &id).await["status"], "in_progress");
    let video = poll(&sim, &id).await;
    assert_eq!(video["status"], "failed");
    assert_eq!(video["error"]["code"], "moderation_blocked");
    assert!(
        video["error"]["message"]
            .as_str()
            .unwrap()
            .contains("moderation")
    );
    assert!(video["completed_at"].is_null());

    let response = content(&sim, &id).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_failed_job_fails_with_an_internal_error() {
    let sim = start(video_config(0)).await;
    sim.push_script(Behaviour::JobFailed);
    let id = submit(&sim).await;
    let video = poll(&sim, &id).await;
    assert_eq!(video["status"], "failed");
    assert_eq!(video["error"]["code"], "internal_error");
}

#[tokio::test]
async fn a_stuck_job_is_still_in_progress_after_many_polls() {
    let sim = start(video_config(2)).await;
    sim.push_script(Behaviour::JobStuck);
    let id = submit(&sim).await;
    for _ in 0..25 {
        let video = poll(&sim, &id).await;
        assert_eq!(video["status"], "in_progress");
        assert!(video["progress"].as_u64().unwrap() < 100);
    }
    assert_eq!(count(&sim, WireFormat::SoraPoll), 25);
    assert_eq!(content(&sim, &id).await.status(), 400);
}

#[tokio::test]
async fn a_dropped_download_is_shorter_than_its_content_length() {
    let sim = start(video_config(0)).await;
    sim.push_script(Behaviour::DownloadDrop { after_bytes: 5000 });
    let id = submit(&sim).await;
    assert_eq!(poll(&sim, &id).await["status"], "completed");
    let response = content(&sim, &id).await;
    assert_eq!(response.status(), 200);
    let (announced, received, failed) = read_cut(response).await;
    assert_eq!(announced, Some(VIDEO_BYTES as u64));
    assert!(failed, "the body must fail, not end");
    assert!(received <= 5000, "{received}");

    // Every download of that job is cut; the record shows the job's behaviour.
    let again = content(&sim, &id).await;
    assert!(again.bytes().await.is_err());
    let downloads: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.format == WireFormat::SoraContent)
        .collect();
    assert_eq!(downloads.len(), 2);
    assert!(
        downloads
            .iter()
            .all(|r| r.behaviour == Behaviour::DownloadDrop { after_bytes: 5000 })
    );
}

#[tokio::test]
async fn polls_do_not_consume_the_script() {
    let sim = start(video_config(2)).await;
    sim.push_script(Behaviour::JobFailed);
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 1,
    });
    let id = submit(&sim).await;
    let mut last = Value::Null;
    for _ in 0..3 {
        last = poll(&sim, &id).await;
    }
    assert_eq!(last["status"], "failed");
    assert_eq!(content(&sim, &id).await.status(), 400);
    // The rate limit still waits for the next submission.
    assert_eq!(create(&sim, form("4")).await.status(), 429);
    assert_eq!(count(&sim, WireFormat::Sora), 2);
    assert_eq!(count(&sim, WireFormat::SoraPoll), 3);
}

#[tokio::test]
async fn a_delete_is_recorded_and_ends_the_job() {
    let sim = start(video_config(5)).await;
    let id = submit(&sim).await;
    poll(&sim, &id).await;
    let before = std::time::Instant::now();
    let response = client()
        .delete(format!("{}/videos/{id}", sim.base_url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deleted: Value = response.json().await.unwrap();
    assert_eq!(
        deleted,
        json!({"id": id, "object": "video.deleted", "deleted": true})
    );

    let records = sim.requests();
    let delete = records
        .iter()
        .find(|r| r.format == WireFormat::SoraDelete)
        .unwrap();
    assert_eq!(delete.path, format!("/v1/videos/{id}"));
    assert!(delete.received_at >= before, "arrival time of the cancel");

    // The job is gone.
    let gone = retrieve(&sim, &id).await;
    assert_eq!(gone.status(), 404);
    let error: Value = gone.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let again = client()
        .delete(format!("{}/videos/{id}", sim.base_url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(content(&sim, &id).await.status(), 404);
}

#[tokio::test]
async fn an_unknown_video_is_404() {
    let sim = start(video_config(2)).await;
    let response = retrieve(&sim, "video_nope").await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("video_nope")
    );
}

#[tokio::test]
async fn job_behaviours_are_scripted_over_http_by_snake_case_names() {
    let sim = start(video_config(0)).await;
    let response = client()
        .post(format!("{}/_sim/script", sim.root_url()))
        .json(&json!([
            {"kind": "content_filtered"},
            {"kind": "job_failed"},
            {"kind": "job_stuck"},
            {"kind": "download_drop", "after_bytes": 10}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let id = submit(&sim).await;
        let video = poll(&sim, &id).await;
        statuses.push((video["status"].clone(), video["error"]["code"].clone()));
    }
    assert_eq!(
        statuses,
        [
            (json!("failed"), json!("moderation_blocked")),
            (json!("failed"), json!("internal_error")),
            (json!("in_progress"), Value::Null),
            (json!("completed"), Value::Null),
        ]
    );
    let behaviours: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.format == WireFormat::Sora)
        .map(|r| r.behaviour)
        .collect();
    assert_eq!(behaviours[3], Behaviour::DownloadDrop { after_bytes: 10 });
}
