//! KlingAI video tasks: JWT authentication, text/image to video, video extension, polls and the
//! video URL.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::support::{client, start};
use crate::video_support::{VIDEO_BYTES, assert_mp4, count, formats, read_cut, video_config};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token as Kling's docs make it: HS256, `iss` the access key, valid 30 minutes from 5 s ago.
fn token_with(access: &str, secret: &str, exp: i64, nbf: i64) -> String {
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": access, "exp": exp, "nbf": nbf}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn token() -> String {
    let config = SimConfig::default();
    token_with(
        &config.kling_access_key,
        &config.kling_secret_key,
        now() + 1800,
        now() - 5,
    )
}

async fn post(sim: &Simulator, kind: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/videos/{kind}", sim.root_url()))
        .bearer_auth(token())
        .json(body)
        .send()
        .await
        .unwrap()
}

fn text_body() -> Value {
    json!({
        "model_name": "kling-v2-master",
        "prompt": "A golden retriever running through autumn leaves",
        "negative_prompt": "blur",
        "mode": "std",
        "aspect_ratio": "16:9",
        "duration": "5"
    })
}

/// Submits a task and returns its id.
async fn submit(sim: &Simulator, kind: &str, body: &Value) -> String {
    let response = post(sim, kind, body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["code"], 0, "{reply}");
    reply["data"]["task_id"].as_str().unwrap().to_owned()
}

async fn query(sim: &Simulator, kind: &str, id: &str) -> Value {
    let response = client()
        .get(format!("{}/v1/videos/{kind}/{id}", sim.root_url()))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["code"], 0);
    reply["data"].clone()
}

async fn until_done(sim: &Simulator, kind: &str, id: &str) -> Value {
    for _ in 0..10 {
        let data = query(sim, kind, id).await;
        if data["task_status"] == "succeed" || data["task_status"] == "failed" {
            return data;
        }
    }
    panic!("task {id} never finished");
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_task_is_submitted_polled_and_its_video_fetched_without_auth() {
    let sim = start(video_config(2)).await;
    let mut body = text_body();
    body["external_task_id"] = json!("order-42");
    let response = post(&sim, "text2video", &body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["code"], 0);
    assert_eq!(reply["message"], "SUCCEED");
    assert!(reply["request_id"].is_string());
    let data = &reply["data"];
    assert_eq!(data["task_status"], "submitted");
    assert_eq!(data["task_info"]["external_task_id"], "order-42");
    assert!(
        data["created_at"].as_u64().unwrap() > 1_700_000_000_000,
        "milliseconds"
    );
    let id = data["task_id"].as_str().unwrap().to_owned();

    let mut statuses = Vec::new();
    let done = loop {
        let data = query(&sim, "text2video", &id).await;
        statuses.push(data["task_status"].as_str().unwrap().to_owned());
        if data["task_status"] == "succeed" {
            break data;
        }
        assert!(statuses.len() < 10);
    };
    assert_eq!(statuses, ["processing", "processing", "succeed"]);
    let video = &done["task_result"]["videos"][0];
    assert_eq!(video["duration"], "5.1");
    assert!(video["id"].is_string());
    let url = video["url"].as_str().unwrap();
    assert!(url.starts_with(&sim.root_url()), "{url}");

    // The client's own id finds the task too (a worker that lost the task id).
    let by_external = query(&sim, "text2video", "order-42").await;
    assert_eq!(by_external["task_id"], id);
    // A task is polled on the endpoint that made it.
    let elsewhere = client()
        .get(format!("{}/v1/videos/image2video/{id}", sim.root_url()))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(elsewhere).await;
    assert_eq!((status, error["code"].clone()), (404, json!(1203)));

    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "video/mp4");
    assert_mp4(&response.bytes().await.unwrap(), VIDEO_BYTES);

    use WireFormat::{Kling, KlingDownload, KlingPoll};
    assert_eq!(
        formats(&sim),
        [
            Kling,
            KlingPoll,
            KlingPoll,
            KlingPoll,
            KlingPoll,
            KlingPoll,
            KlingDownload
        ]
    );
    assert!(
        sim.requests()[0]
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Bearer ey")
    );
}

#[tokio::test]
async fn tokens_that_do_not_verify_get_401_with_klings_codes() {
    let sim = start(video_config(0)).await;
    let config = SimConfig::default();
    let (access, secret) = (
        config.kling_access_key.as_str(),
        config.kling_secret_key.as_str(),
    );
    let url = format!("{}/v1/videos/text2video", sim.root_url());

    let response = client().post(&url).json(&text_body()).send().await.unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!((status, error["code"].clone()), (401, json!(1001)));
    assert!(error["request_id"].is_string());
    assert!(error["message"].is_string());

    for (token, code) in [
        (
            token_with(access, "wrong-secret", now() + 1800, now() - 5),
            1002,
        ),
        ("not.a.jwt".to_owned(), 1002),
        (token_with(access, secret, now() - 10, now() - 1900), 1004),
        (token_with(access, secret, now() + 1800, now() + 600), 1003),
        (
            token_with("someone-else", secret, now() + 1800, now() - 5),
            1000,
        ),
    ] {
        let response = client()
            .post(&url)
            .bearer_auth(token)
            .json(&text_body())
            .send()
            .await
            .unwrap();
        let (status, error) = error_of(response).await;
        assert_eq!(
            (status, error["code"].clone()),
            (401, json!(code)),
            "{error}"
        );
    }
    // A poll needs the token too.
    let response = client().get(format!("{url}/123")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn submission_failures_carry_klings_codes() {
    let sim = start(video_config(0)).await;
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 2,
    });
    sim.push_script(Behaviour::ServerError);
    let response = post(&sim, "text2video", &text_body()).await;
    assert_eq!(response.headers()["retry-after"], "2");
    let (status, error) = error_of(response).await;
    assert_eq!((status, error["code"].clone()), (429, json!(1302)));
    let (status, error) = error_of(post(&sim, "text2video", &text_body()).await).await;
    assert_eq!((status, error["code"].clone()), (500, json!(5000)));
    assert_eq!(count(&sim, WireFormat::Kling), 2);
}

#[tokio::test]
async fn filtered_and_failed_tasks_end_failed_with_a_message() {
    let sim = start(video_config(1)).await;
    sim.push_script(Behaviour::ContentFiltered);
    sim.push_script(Behaviour::JobFailed);
    let filtered = submit(&sim, "text2video", &text_body()).await;
    let failed = submit(&sim, "text2video", &text_body()).await;
    let data = until_done(&sim, "text2video", &filtered).await;
    assert_eq!(data["task_status"], "failed");
    assert!(
        data["task_status_msg"]
            .as_str()
            .unwrap()
            .contains("risk control")
    );
    assert!(data.get("task_result").is_none());
    let data = until_done(&sim, "text2video", &failed).await;
    assert_eq!(data["task_status"], "failed");
    assert!(!data["task_status_msg"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn a_stuck_task_keeps_processing() {
    let sim = start(video_config(1)).await;
    sim.push_script(Behaviour::JobStuck);
    let id = submit(&sim, "text2video", &text_body()).await;
    for _ in 0..20 {
        assert_eq!(
            query(&sim, "text2video", &id).await["task_status"],
            "processing"
        );
    }
}

#[tokio::test]
async fn a_dropped_download_is_shorter_than_its_content_length() {
    let sim = start(video_config(0)).await;
    sim.push_script(Behaviour::DownloadDrop { after_bytes: 100 });
    let id = submit(&sim, "text2video", &text_body()).await;
    let data = until_done(&sim, "text2video", &id).await;
    let url = data["task_result"]["videos"][0]["url"].as_str().unwrap();
    let (announced, received, failed) = read_cut(client().get(url).send().await.unwrap()).await;
    assert_eq!(announced, Some(VIDEO_BYTES as u64));
    assert!(failed);
    assert!(received <= 100, "{received}");
}

#[tokio::test]
async fn polls_do_not_consume_the_script() {
    let sim = start(video_config(3)).await;
    sim.push_script(Behaviour::ContentFiltered);
    sim.push_script(Behaviour::ServerError);
    let id = submit(&sim, "text2video", &text_body()).await;
    let data = until_done(&sim, "text2video", &id).await;
    assert_eq!(data["task_status"], "failed");
    let (status, _) = error_of(post(&sim, "text2video", &text_body()).await).await;
    assert_eq!(status, 500);
    assert_eq!(count(&sim, WireFormat::Kling), 2);
    assert_eq!(count(&sim, WireFormat::KlingPoll), 4);
}

fn trajectory(points: usize) -> Value {
    (0..points)
        .map(|i| json!({"x": 100 + i, "y": 200 + i}))
        .collect()
}

fn image2video_body(points: usize) -> Value {
    json!({
        "model_name": "kling-v1",
        "image": "https://example.com/astronaut.jpg",
        "prompt": "The astronaut stood up and walked away",
        "mode": "pro",
        "duration": "5",
        "static_mask": "https://example.com/static_mask.png",
        "dynamic_masks": [{"mask": "https://example.com/dynamic_mask.png",
                           "trajectories": trajectory(points)}]
    })
}

#[tokio::test]
async fn image_to_video_checks_the_motion_brush() {
    let sim = start(video_config(0)).await;
    let (status, error) = error_of(post(&sim, "image2video", &image2video_body(78)).await).await;
    assert_eq!(
        (status, error["code"].clone()),
        (400, json!(1201)),
        "{error}"
    );
    assert!(error["message"].as_str().unwrap().contains("77"));
    let (status, _) = error_of(post(&sim, "image2video", &image2video_body(1)).await).await;
    assert_eq!(status, 400);

    let mut both = image2video_body(10);
    both["camera_control"] = json!({"type": "simple", "config": {"zoom": 5}});
    let (status, error) = error_of(post(&sim, "image2video", &both).await).await;
    assert_eq!((status, error["code"].clone()), (400, json!(1201)));

    let mut prefixed = image2video_body(10);
    prefixed["image"] = json!("data:image/png;base64,iVBORw0KGgo=");
    assert_eq!(post(&sim, "image2video", &prefixed).await.status(), 400);
    assert_eq!(
        post(&sim, "image2video", &json!({"prompt": "no image"}))
            .await
            .status(),
        400
    );
    assert!(sim.requests().is_empty());

    let id = submit(&sim, "image2video", &image2video_body(77)).await;
    let mut plain = json!({"image": "iVBORw0KGgo=", "image_tail": "iVBORw0KGgo="});
    let tail = submit(&sim, "image2video", &plain).await;
    plain["duration"] = json!("10");
    let ten = submit(&sim, "image2video", &plain).await;
    assert_eq!(
        until_done(&sim, "image2video", &id).await["task_status"],
        "succeed"
    );
    assert_eq!(
        until_done(&sim, "image2video", &tail).await["task_status"],
        "succeed"
    );
    let data = until_done(&sim, "image2video", &ten).await;
    assert_eq!(data["task_result"]["videos"][0]["duration"], "10.1");
}

#[tokio::test]
async fn text_to_video_checks_its_parameters() {
    let sim = start(video_config(0)).await;
    let mut cases = Vec::new();
    for (key, value) in [
        ("prompt", json!("")),
        ("duration", json!("7")),
        ("mode", json!("turbo")),
        ("aspect_ratio", json!("4:3")),
        ("cfg_scale", json!(2)),
        (
            "camera_control",
            json!({"type": "simple", "config": {"zoom": 5, "pan": 1}}),
        ),
        ("camera_control", json!({"type": "orbit"})),
        ("prompt", json!("x".repeat(2501))),
    ] {
        let mut body = text_body();
        body[key] = value;
        cases.push(body);
    }
    for case in cases {
        let (status, error) = error_of(post(&sim, "text2video", &case).await).await;
        assert_eq!(
            (status, error["code"].clone()),
            (400, json!(1201)),
            "{case}"
        );
    }
    let mut unknown = text_body();
    unknown["model_name"] = json!("kling-v9");
    let (status, error) = error_of(post(&sim, "text2video", &unknown).await).await;
    assert_eq!((status, error["code"].clone()), (404, json!(1203)));
    let response = client()
        .post(format!("{}/v1/videos/text2video", sim.root_url()))
        .bearer_auth(token())
        .body("not json")
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!((status, error["code"].clone()), (400, json!(1200)));
    assert!(sim.requests().is_empty());

    // An external_task_id must be unique.
    let mut first = text_body();
    first["external_task_id"] = json!("same");
    first["camera_control"] = json!({"type": "forward_up"});
    submit(&sim, "text2video", &first).await;
    let (status, error) = error_of(post(&sim, "text2video", &first).await).await;
    assert_eq!((status, error["code"].clone()), (400, json!(1201)));
}

#[tokio::test]
async fn a_video_is_extended_until_it_would_pass_three_minutes() {
    let sim = start(video_config(0)).await;
    let (status, error) =
        error_of(post(&sim, "video-extend", &json!({"video_id": "no-such-video"})).await).await;
    assert_eq!((status, error["code"].clone()), (404, json!(1203)));

    let id = submit(&sim, "text2video", &text_body()).await;
    let mut video = until_done(&sim, "text2video", &id).await["task_result"]["videos"][0].clone();
    let mut extensions = 0;
    loop {
        let response = post(
            &sim,
            "video-extend",
            &json!({"video_id": video["id"], "prompt": "The dog keeps running"}),
        )
        .await;
        if response.status() != 200 {
            let (status, error) = error_of(response).await;
            assert_eq!((status, error["code"].clone()), (400, json!(1201)));
            break;
        }
        let reply: Value = response.json().await.unwrap();
        let task = reply["data"]["task_id"].as_str().unwrap().to_owned();
        let data = until_done(&sim, "video-extend", &task).await;
        video = data["task_result"]["videos"][0].clone();
        extensions += 1;
        assert!(extensions < 60, "never refused");
    }
    // 5.1 s + 39 × 4.5 s = 180.6 s: past 3 minutes, so no further extension.
    assert_eq!(extensions, 39);
    assert_eq!(video["duration"], "180.6");
    // The refused extension, like every refused request, is not in the log.
    assert_eq!(count(&sim, WireFormat::Kling), 1 + 39);
}
