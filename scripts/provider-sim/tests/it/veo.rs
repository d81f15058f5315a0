//! Veo video jobs on the Gemini API: `predictLongRunning`, operation polls and the download.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provider_sim::{Behaviour, Simulator, WireFormat};
use serde_json::{Value, json};

use crate::support::{client, start};
use crate::video_support::{VIDEO_BYTES, assert_mp4, count, formats, read_cut, video_config};

const KEY: &str = "AIza-sim-test";
const MODEL: &str = "veo-3.1-generate-preview";

fn body() -> Value {
    json!({
        "instances": [{"prompt": "A close up of two people staring at a cryptic drawing on a wall"}],
        "parameters": {"aspectRatio": "16:9", "durationSeconds": 8, "resolution": "720p",
                       "negativePrompt": "cartoon", "personGeneration": "allow_all"}
    })
}

async fn predict(sim: &Simulator, model: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!(
            "{}/v1beta/models/{model}:predictLongRunning",
            sim.root_url()
        ))
        .header("x-goog-api-key", KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Submits a default job and returns its operation name.
async fn submit(sim: &Simulator) -> String {
    let response = predict(sim, MODEL, &body()).await;
    assert_eq!(response.status(), 200);
    let operation: Value = response.json().await.unwrap();
    operation["name"].as_str().unwrap().to_owned()
}

async fn poll(sim: &Simulator, name: &str) -> Value {
    let response = client()
        .get(format!("{}/v1beta/{name}", sim.root_url()))
        .header("x-goog-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls until the operation is done.
async fn until_done(sim: &Simulator, name: &str) -> Value {
    for _ in 0..10 {
        let operation = poll(sim, name).await;
        if operation["done"] == true {
            return operation;
        }
    }
    panic!("operation {name} never finished");
}

fn video_uri(operation: &Value) -> String {
    operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn download(uri: &str) -> reqwest::Response {
    // reqwest follows the redirect, as the SDKs' HTTP clients do.
    client()
        .get(uri)
        .header("x-goog-api-key", KEY)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_operation_is_polled_until_done_and_its_video_downloaded() {
    let sim = start(video_config(2)).await;
    let name = submit(&sim).await;
    let prefix = format!("models/{MODEL}/operations/");
    let id = name.strip_prefix(&prefix).unwrap();
    assert!(
        id.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{id}"
    );

    // While running the operation is its name alone: proto3 JSON leaves `done: false` out.
    for _ in 0..2 {
        assert_eq!(poll(&sim, &name).await, json!({ "name": name }));
    }
    let done = poll(&sim, &name).await;
    assert_eq!(done["name"], name);
    assert_eq!(done["done"], true);
    assert_eq!(
        done["response"]["@type"],
        "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
    );
    let uri = video_uri(&done);
    assert!(uri.starts_with(&sim.root_url()), "{uri}");
    assert!(uri.ends_with(":download?alt=media"), "{uri}");
    // google-genai takes the file id as the lower-case alphanumerics after `files/`.
    let file = uri.split("files/").nth(1).unwrap();
    assert!(
        file.split(':')
            .next()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
    );

    let response = download(&uri).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "video/mp4");
    assert_mp4(&response.bytes().await.unwrap(), VIDEO_BYTES);

    use WireFormat::{Veo, VeoDownload, VeoMedia, VeoPoll};
    assert_eq!(
        formats(&sim),
        [Veo, VeoPoll, VeoPoll, VeoPoll, VeoDownload, VeoMedia]
    );
    let records = sim.requests();
    assert_eq!(records[0].authorization.as_deref(), Some(KEY));
    assert_eq!(records[0].body["parameters"]["aspectRatio"], "16:9");
}

#[tokio::test]
async fn the_download_is_a_redirect_that_needs_the_key() {
    let sim = start(video_config(0)).await;
    let name = submit(&sim).await;
    let uri = video_uri(&until_done(&sim, &name).await);

    let response = client().get(&uri).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "PERMISSION_DENIED");

    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(format!("{uri}&key={KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with(".mp4"), "{location}");
    // The redirect target needs no key, like a signed storage URL.
    let bytes = no_redirects
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_mp4(&bytes, VIDEO_BYTES);
}

#[tokio::test]
async fn the_key_may_come_as_a_query_parameter_and_is_required() {
    let sim = start(video_config(0)).await;
    let response = client()
        .post(format!(
            "{}/v1beta/models/{MODEL}:predictLongRunning?key={KEY}",
            sim.root_url()
        ))
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(sim.requests()[0].authorization.as_deref(), Some(KEY));

    let response = client()
        .post(format!(
            "{}/v1beta/models/{MODEL}:predictLongRunning",
            sim.root_url()
        ))
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], 403);
    assert_eq!(count(&sim, WireFormat::Veo), 1);
}

#[tokio::test]
async fn parameters_the_api_refuses_get_invalid_argument() {
    let sim = start(video_config(0)).await;
    let mut cases = Vec::new();
    for (pointer, value) in [
        ("/parameters/aspectRatio", json!("1:1")),
        ("/parameters/durationSeconds", json!(5)),
        ("/parameters/resolution", json!("480p")),
        ("/parameters/personGeneration", json!("everyone")),
        ("/instances/0/prompt", json!("")),
    ] {
        let mut body = body();
        *body.pointer_mut(pointer).unwrap() = value;
        cases.push(body);
    }
    let mut full_hd_short = body();
    full_hd_short["parameters"]["resolution"] = json!("1080p");
    full_hd_short["parameters"]["durationSeconds"] = json!(4);
    cases.push(full_hd_short);
    cases.push(json!({"instances": []}));
    for case in cases {
        let response = predict(&sim, MODEL, &case).await;
        assert_eq!(response.status(), 400, "{case}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["status"], "INVALID_ARGUMENT", "{case}");
    }
    let response = predict(&sim, "gemini-2.5-flash", &body()).await;
    assert_eq!(response.status(), 404);
    assert!(sim.requests().is_empty());

    // The duration may be a string, and an image-to-video request needs no prompt.
    let mut as_string = body();
    as_string["parameters"]["durationSeconds"] = json!("6");
    assert_eq!(predict(&sim, MODEL, &as_string).await.status(), 200);
    let image = json!({
        "instances": [{"image": {"bytesBase64Encoded": "iVBORw0KGgo=", "mimeType": "image/png"}}],
        "parameters": {"aspectRatio": "9:16", "resolution": "1080p", "durationSeconds": 8}
    });
    assert_eq!(
        predict(&sim, "veo-3.1-fast-generate-preview", &image)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn submission_failures_come_in_googles_shape() {
    let sim = start(video_config(0)).await;
    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 3,
    });
    sim.push_script(Behaviour::ServerError);
    let limited = predict(&sim, MODEL, &body()).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "3");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["status"], "RESOURCE_EXHAUSTED");
    let failed = predict(&sim, MODEL, &body()).await;
    assert_eq!(failed.status(), 500);
    let error: Value = failed.json().await.unwrap();
    assert_eq!(error["error"]["status"], "INTERNAL");
    assert_eq!(count(&sim, WireFormat::Veo), 2);
}

#[tokio::test]
async fn a_filtered_operation_is_done_without_samples() {
    let sim = start(video_config(1)).await;
    sim.push_script(Behaviour::ContentFiltered);
    let name = submit(&sim).await;
    let done = until_done(&sim, &name).await;
    let response = &done["response"]["generateVideoResponse"];
    assert_eq!(response["raiMediaFilteredCount"], 1);
    assert!(response["raiMediaFilteredReasons"][0].is_string());
    assert!(response.get("generatedSamples").is_none());
    assert!(done.get("error").is_none());
}

#[tokio::test]
async fn a_failed_operation_is_done_with_an_error() {
    let sim = start(video_config(0)).await;
    sim.push_script(Behaviour::JobFailed);
    let name = submit(&sim).await;
    let done = poll(&sim, &name).await;
    assert_eq!(done["done"], true);
    assert_eq!(done["error"]["code"], 13);
    assert!(done["error"]["message"].is_string());
    assert!(done.get("response").is_none());
}

#[tokio::test]
async fn a_stuck_operation_never_finishes() {
    let sim = start(video_config(1)).await;
    sim.push_script(Behaviour::JobStuck);
    let name = submit(&sim).await;
    for _ in 0..20 {
        let operation = poll(&sim, &name).await;
        assert!(operation.get("done").is_none(), "{operation}");
    }
}

#[tokio::test]
async fn a_dropped_download_is_shorter_than_its_content_length() {
    let sim = start(video_config(0)).await;
    sim.push_script(Behaviour::DownloadDrop { after_bytes: 777 });
    let name = submit(&sim).await;
    let uri = video_uri(&until_done(&sim, &name).await);
    let (announced, received, failed) = read_cut(download(&uri).await).await;
    assert_eq!(announced, Some(VIDEO_BYTES as u64));
    assert!(failed);
    assert!(received <= 777, "{received}");
}

#[tokio::test]
async fn polls_do_not_consume_the_script_and_there_is_no_cancel() {
    let sim = start(video_config(2)).await;
    sim.push_script(Behaviour::ContentFiltered);
    sim.push_script(Behaviour::ServerError);
    let name = submit(&sim).await;
    let done = until_done(&sim, &name).await;
    assert_eq!(
        done["response"]["generateVideoResponse"]["raiMediaFilteredCount"],
        1
    );
    assert_eq!(predict(&sim, MODEL, &body()).await.status(), 500);

    // The Gemini API has no cancel for a models/*/operations/* operation.
    let cancel = client()
        .post(format!("{}/v1beta/{name}:cancel", sim.root_url()))
        .header("x-goog-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_client_error(), "{}", cancel.status());

    let unknown = client()
        .get(format!(
            "{}/v1beta/models/{MODEL}/operations/nope",
            sim.root_url()
        ))
        .header("x-goog-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}
