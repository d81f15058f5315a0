//! Black Forest Labs (Flux): a task submitted, polled until ready, and its sample downloaded;
//! the other ends of a task, BFL's errors and the failure behaviours.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::image_support::{assert_jpeg, assert_png, count, download, read_cut};
use crate::support::{client, start};

const KEY: &str = "bfl-sim-key";
const PROMPT: &str = "A lighthouse at dusk";

fn flux_config(job_polls: usize) -> SimConfig {
    SimConfig {
        job_polls,
        ..SimConfig::default()
    }
}

async fn submit(sim: &Simulator, model: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/{model}", sim.root_url()))
        .header("x-key", KEY)
        .json(body)
        .send()
        .await
        .expect("submit flux task")
}

async fn poll(url: &str) -> Value {
    let response = client()
        .get(url)
        .header("x-key", KEY)
        .send()
        .await
        .expect("poll flux task");
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Submits and returns the task's polling URL.
async fn polling_url(sim: &Simulator, model: &str, body: &Value) -> String {
    let response = submit(sim, model, body).await;
    assert_eq!(response.status(), 200);
    let task: Value = response.json().await.unwrap();
    task["polling_url"].as_str().unwrap().to_owned()
}

/// Polls until the task leaves `Pending` (at most `limit` polls); the last answer and how many
/// polls were pending.
async fn settle(url: &str, limit: usize) -> (Value, usize) {
    for pending in 0..limit {
        let answer = poll(url).await;
        if answer["status"] != "Pending" {
            return (answer, pending);
        }
    }
    panic!("still pending after {limit} polls");
}

#[tokio::test]
async fn a_task_is_pending_then_ready_with_a_sample_to_download() {
    let sim = start(flux_config(2)).await;
    let body =
        json!({"prompt": PROMPT, "width": 1024, "height": 768, "output_format": "png", "seed": 42});
    let response = submit(&sim, "flux-2-pro", &body).await;
    assert_eq!(response.status(), 200);
    let task: Value = response.json().await.unwrap();
    let id = task["id"].as_str().unwrap();
    let url = task["polling_url"].as_str().unwrap();
    assert_eq!(url, format!("{}/v1/get_result?id={id}", sim.root_url()));
    assert!(task["cost"].as_f64().unwrap() > 0.0);
    assert_eq!(task["output_mp"], 0.79);

    let first = poll(url).await;
    assert_eq!(first["id"], id);
    assert_eq!(first["status"], "Pending");
    assert!(first["result"].is_null());
    let second = poll(url).await;
    assert_eq!(second["status"], "Pending");
    assert!(second["progress"].as_f64().unwrap() > first["progress"].as_f64().unwrap());
    let ready = poll(url).await;
    assert_eq!(ready["status"], "Ready", "{ready}");
    let result = &ready["result"];
    assert_eq!(result["prompt"], PROMPT);
    assert_eq!(result["seed"], 42);
    let sample = result["sample"].as_str().unwrap();
    assert!(sample.starts_with(&sim.root_url()));
    // A poll after the end finds the same sample.
    assert_eq!(poll(url).await["result"]["sample"], sample);

    let image = download(sample).await;
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_png(&image.bytes().await.unwrap(), 1024, 768);

    assert_eq!(count(&sim, WireFormat::Bfl), 1, "exactly one submission");
    assert_eq!(count(&sim, WireFormat::BflResult), 4);
    assert_eq!(count(&sim, WireFormat::FileDownload), 1);
    let submission = &sim.requests()[0];
    assert_eq!(submission.path, "/v1/flux-2-pro");
    assert_eq!(submission.authorization.as_deref(), Some(KEY));
    assert_eq!(submission.texts, [PROMPT]);
    let polls: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.format == WireFormat::BflResult)
        .collect();
    assert!(polls.iter().all(|p| p.path == "/v1/get_result"));
    assert_eq!(polls[0].query.as_deref(), Some(format!("id={id}").as_str()));
}

#[tokio::test]
async fn models_size_their_images_and_input_images_are_recorded() {
    let sim = start(flux_config(0)).await;
    // FLUX.2 defaults to a 1024×1024 JPEG.
    let url = polling_url(&sim, "flux-2-max", &json!({"prompt": PROMPT})).await;
    let ready = poll(&url).await;
    let image = download(ready["result"]["sample"].as_str().unwrap()).await;
    assert_eq!(image.headers()["content-type"], "image/jpeg");
    assert_jpeg(&image.bytes().await.unwrap(), 1024, 1024);

    // Kontext edits an input image at an aspect ratio.
    let edit =
        json!({"prompt": "make it night", "input_image": "aGVsbG8=", "aspect_ratio": "16:9"});
    let url = polling_url(&sim, "flux-kontext-pro", &edit).await;
    let sample = poll(&url).await["result"]["sample"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes = download(&sample).await.bytes().await.unwrap();
    let size = imagesize::blob_size(&bytes).unwrap();
    assert!(size.width > size.height, "{size:?}");
    assert_eq!((size.width % 16, size.height % 16), (0, 0));

    // FLUX1.1 [pro] defaults to 1024×768.
    let url = polling_url(&sim, "flux-pro-1.1", &json!({"prompt": PROMPT})).await;
    let sample = poll(&url).await["result"]["sample"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_jpeg(&download(&sample).await.bytes().await.unwrap(), 1024, 768);

    let submissions: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.format == WireFormat::Bfl)
        .collect();
    assert_eq!(submissions.len(), 3);
    assert!(submissions[0].body.get("input_image").is_none());
    assert_eq!(submissions[1].body["input_image"], "aGVsbG8=");
    assert_eq!(submissions[1].path, "/v1/flux-kontext-pro");
}

#[tokio::test]
async fn a_task_ends_as_its_submission_was_scripted() {
    let sim = start(flux_config(1)).await;
    let body = json!({"prompt": PROMPT});

    sim.push_script(Behaviour::ContentFiltered);
    let url = polling_url(&sim, "flux-2-pro", &body).await;
    let (moderated, pending) = settle(&url, 5).await;
    assert_eq!(pending, 1);
    assert_eq!(moderated["status"], "Content Moderated");
    assert!(moderated["result"].is_null());
    assert!(moderated["details"].is_object());

    sim.push_script(Behaviour::JobFailed);
    let url = polling_url(&sim, "flux-dev", &body).await;
    let (failed, _) = settle(&url, 5).await;
    assert_eq!(failed["status"], "Error");
    assert!(failed["result"].is_null());

    sim.push_script(Behaviour::JobStuck);
    let url = polling_url(&sim, "flux-pro-1.1-ultra", &body).await;
    for _ in 0..6 {
        let answer = poll(&url).await;
        assert_eq!(answer["status"], "Pending");
        assert!(answer["progress"].as_f64().unwrap() < 1.0);
    }

    let unknown = poll(&format!("{}/v1/get_result?id=no-such-task", sim.root_url())).await;
    assert_eq!(unknown["status"], "Task not found");
    assert_eq!(unknown["id"], "no-such-task");
    assert!(unknown["result"].is_null());
}

#[tokio::test]
async fn polls_and_downloads_take_nothing_from_the_script() {
    let sim = start(flux_config(2)).await;
    let url = polling_url(&sim, "flux-2-pro", &json!({"prompt": PROMPT})).await;
    // Scripted for the next submission, not for the polls in between.
    sim.push_script(Behaviour::ServerError);
    let (ready, pending) = settle(&url, 5).await;
    assert_eq!((ready["status"].as_str(), pending), (Some("Ready"), 2));
    let sample = ready["result"]["sample"].as_str().unwrap();
    assert_eq!(download(sample).await.status(), 200);
    let server = submit(&sim, "flux-2-pro", &json!({"prompt": PROMPT})).await;
    assert_eq!(server.status(), 500);
    assert_eq!(
        server.json::<Value>().await.unwrap(),
        json!({"detail": "Internal Server Error"})
    );
}

#[tokio::test]
async fn submission_failures_are_bfl_errors() {
    let sim = start(flux_config(0)).await;
    let body = json!({"prompt": PROMPT});

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 3,
    });
    let limited = submit(&sim, "flux-2-pro", &body).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "3");
    assert!(limited.json::<Value>().await.unwrap()["detail"].is_string());

    sim.push_script(Behaviour::Refused {
        status: 402,
        message: "Insufficient credits".to_owned(),
    });
    let refused = submit(&sim, "flux-2-pro", &body).await;
    assert_eq!(refused.status(), 402);
    assert_eq!(
        refused.json::<Value>().await.unwrap(),
        json!({"detail": "Insufficient credits"})
    );

    // No task is made for a failed submission.
    assert_eq!(count(&sim, WireFormat::Bfl), 2);
    assert_eq!(count(&sim, WireFormat::BflResult), 0);

    sim.push_script(Behaviour::DownloadDrop { after_bytes: 50 });
    let url = polling_url(&sim, "flux-2-pro", &body).await;
    let sample = poll(&url).await["result"]["sample"]
        .as_str()
        .unwrap()
        .to_owned();
    let (announced, received, cut) = read_cut(download(&sample).await).await;
    assert!(cut);
    assert_eq!(received, 50);
    assert!(announced.unwrap() > 50);
}

#[tokio::test]
async fn requests_bfl_refuses() {
    let sim = start(flux_config(0)).await;
    let no_key = client()
        .post(format!("{}/v1/flux-2-pro", sim.root_url()))
        .json(&json!({"prompt": PROMPT}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 403);
    assert_eq!(
        no_key.json::<Value>().await.unwrap(),
        json!({"detail": "Not authenticated"})
    );
    let no_key_poll = client()
        .get(format!("{}/v1/get_result?id=x", sim.root_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key_poll.status(), 403);

    let missing = submit(&sim, "flux-2-pro", &json!({"width": 1024})).await;
    assert_eq!(missing.status(), 422);
    let detail = missing.json::<Value>().await.unwrap()["detail"][0].clone();
    assert_eq!(detail["loc"], json!(["body", "prompt"]));
    assert_eq!(detail["type"], "missing");

    for (model, body) in [
        ("flux-2-pro", json!({"prompt": PROMPT, "width": 1000})),
        (
            "flux-2-pro",
            json!({"prompt": PROMPT, "output_format": "webp"}),
        ),
        ("flux-pro-1.1", json!({"prompt": PROMPT, "width": 2048})),
        (
            "flux-kontext-pro",
            json!({"prompt": PROMPT, "aspect_ratio": "5:1"}),
        ),
        (
            "flux-2-pro",
            json!({"prompt": PROMPT, "safety_tolerance": 9}),
        ),
    ] {
        let response = submit(&sim, model, &body).await;
        assert_eq!(response.status(), 422, "{model} {body}");
    }
    let unknown_model = submit(&sim, "flux-9", &json!({"prompt": PROMPT})).await;
    assert_eq!(unknown_model.status(), 404);
    assert!(
        sim.requests().is_empty(),
        "refused requests are not recorded"
    );
}
