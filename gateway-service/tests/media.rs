//! Images and videos through the gateway, end to end: the gateway and a media-worker with no
//! provider key (the offline `dummy` model draws placeholder PNGs; videos are refused) on a real
//! Redis and PostgreSQL. `POST /image/generate` stored and inline, refusals with their codes;
//! `/v1/images/generations` as `b64_json` (no stored copy left) and as URLs; a video job accepted,
//! followed (status, SSE, WebSocket resume) to its `provider_unavailable` error, hidden from other
//! users, and cancelled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use support::{Opts, System, WAIT, kinds};
use uuid::Uuid;

/// The width and height of a PNG (its `IHDR`), or a panic when the bytes are no PNG.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 24 && &bytes[12..16] == b"IHDR",
        "not a PNG: {:?}",
        &bytes[..bytes.len().min(16)]
    );
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (be(16), be(20))
}

/// Every file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { files_under(&p) } else { vec![p] }
        })
        .collect()
}

async fn get(system: &System, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", system.http))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// `GET {url}` without a token: the status, the content type and the bytes.
async fn download(url: &str) -> (u16, String, Vec<u8>) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let mime = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, mime, r.bytes().await.unwrap().to_vec())
}

/// `GET {path}` as Server-Sent Events, read to the end of the response: the status and each
/// event's `id:` and JSON.
async fn sse(
    system: &System,
    token: &str,
    path: &str,
    last_event_id: Option<&str>,
) -> (u16, Vec<(String, Value)>) {
    let mut request = reqwest::Client::new()
        .get(format!("{}{path}", system.http))
        .bearer_auth(token);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    if status != 200 {
        return (status, Vec::new());
    }
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = tokio::time::timeout(WAIT, r.text())
        .await
        .expect("the event stream did not end after the task's complete")
        .unwrap();
    let mut events = Vec::new();
    let mut id = String::new();
    for line in body.lines() {
        if let Some(rest) = line
            .strip_prefix("id: ")
            .or_else(|| line.strip_prefix("id:"))
        {
            id = rest.trim().to_owned();
        } else if let Some(rest) = line
            .strip_prefix("data: ")
            .or_else(|| line.strip_prefix("data:"))
        {
            events.push((id.clone(), serde_json::from_str(rest.trim()).unwrap()));
        }
    }
    (status, events)
}

fn types(events: &[(String, Value)]) -> Vec<String> {
    kinds(&events.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>())
}

#[tokio::test]
async fn an_image_is_generated_stored_and_served_as_a_png_of_the_size_asked_for() {
    let system = System::start(Opts::new().no_chat().media()).await;
    let tenant = Uuid::now_v7();
    let token = system.token(tenant);

    let (status, answer) = system
        .post(
            &token,
            "/image/generate",
            json!({"prompt": "a lighthouse at dusk", "size": "320x200", "n": 2}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let data = &answer["data"];
    assert_eq!(data["model"], "dummy");
    assert_eq!(data["provider"], "dummy");
    assert_eq!(data["placeholder"], true);
    assert!(
        data["task_id"].is_string() && data["session_id"].is_string(),
        "{data}"
    );
    assert!(data.get("usage").is_some(), "{data}");
    let images = data["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    for image in images {
        assert_eq!(image["mime"], "image/png");
        assert_eq!(
            (image["width"].as_u64(), image["height"].as_u64()),
            (Some(320), Some(200))
        );
        assert!(
            image["key"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{tenant}/images/")),
            "{image}"
        );
        // A URL of the storage's files route, which opens without a token.
        let url = image["url"].as_str().unwrap();
        assert!(url.starts_with("/api/v1/storage/files/"), "{url}");
        let (status, mime, bytes) = download(&format!("{}{url}", system.http)).await;
        assert_eq!(status, 200);
        assert_eq!(mime, "image/png");
        assert_eq!(png_size(&bytes), (320, 200));
        assert_eq!(image["bytes"].as_u64(), Some(bytes.len() as u64));
    }

    // The same session again: its owner may; another user of the tenant may not.
    let session = data["session_id"].as_str().unwrap();
    let (status, again) = system
        .post(
            &token,
            "/image/generate",
            json!({"prompt": "a boat", "session_id": session}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["data"]["session_id"], session);
    let (status, refused) = system
        .post(
            &system.token(tenant),
            "/image/generate",
            json!({"prompt": "a boat", "session_id": session}),
        )
        .await;
    assert_eq!(status, 404, "{refused}");
    system.stop().await;
}

#[tokio::test]
async fn save_false_answers_a_data_uri() {
    let system = System::start(Opts::new().no_chat().media()).await;
    let token = system.token(Uuid::now_v7());
    let (status, answer) = system
        .post(
            &token,
            "/image/generate",
            json!({"prompt": "a cat", "size": "64x48", "save": false}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let image = &answer["data"]["images"][0];
    assert!(image.get("url").is_none(), "{image}");
    let uri = image["data_uri"].as_str().unwrap();
    let b64 = uri.strip_prefix("data:image/png;base64,").unwrap();
    assert_eq!(png_size(&STANDARD.decode(b64).unwrap()), (64, 48));
    system.stop().await;
}

#[tokio::test]
async fn bad_image_requests_are_refused_with_their_code() {
    let system = System::start(Opts::new().no_chat().media()).await;
    let token = system.token(Uuid::now_v7());
    // Refused by the gateway before anything is published: the payload's own rules.
    for (body, says) in [
        (json!({"prompt": "x", "n": 11}), "n must be 1 to 10"),
        (json!({"prompt": "x", "n": 0}), "n must be 1 to 10"),
        (json!({"prompt": " "}), "prompt"),
        (json!({"size": "64x64"}), "prompt"),
        (json!({"prompt": "x", "seed": "lucky"}), "seed: "),
        (json!({"prompt": "x", "session_id": "mine"}), "session_id"),
    ] {
        let (status, answer) = system.post(&token, "/image/generate", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(says),
            "{body}: {answer}"
        );
    }
    // Refused by the worker: the status of its code, the code in `data`.
    for (body, want, code, says) in [
        (
            json!({"prompt": "x", "model": "picasso"}),
            400,
            "unknown_model",
            "picasso",
        ),
        (
            json!({"prompt": "x", "size": "5000x5000"}),
            400,
            "unsupported_option",
            "5000x5000",
        ),
        (
            json!({"prompt": "x", "size": "huge"}),
            400,
            "unsupported_option",
            "WIDTHxHEIGHT",
        ),
        (
            json!({"prompt": "x", "n": 5}),
            400,
            "unsupported_option",
            "at most 4",
        ),
        (
            json!({"prompt": "x", "output_format": "webp"}),
            400,
            "unsupported_option",
            "png",
        ),
        (
            json!({"prompt": "x", "image_url": "data:text/plain;base64,aGVsbG8="}),
            400,
            "invalid_image",
            "PNG",
        ),
        // A model whose provider has no key here: this deployment's to fix, as for chats.
        (
            json!({"prompt": "x", "model": "gpt-image-1.5"}),
            503,
            "provider_unavailable",
            "",
        ),
    ] {
        let (status, answer) = system.post(&token, "/image/generate", body.clone()).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert_eq!(answer["success"], false);
        assert_eq!(answer["data"]["code"], code, "{body}: {answer}");
        assert_eq!(answer["data"]["stage"], "validation", "{body}: {answer}");
        assert_eq!(answer["data"]["retryable"], false, "{body}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(says),
            "{body}: {answer}"
        );
    }
    let (status, _) = system
        .post("not-a-token", "/image/generate", json!({"prompt": "x"}))
        .await;
    assert_eq!(status, 401);
    system.stop().await;
}

/// `POST /v1/images/generations` with a Bearer token: status and body.
async fn openai_images(system: &System, token: &str, body: Value) -> (u16, Value) {
    system.post(token, "/v1/images/generations", body).await
}

#[tokio::test]
async fn openai_images_are_base64_by_default_and_leave_no_stored_copy() {
    let opts = Opts::new().no_chat().media();
    let dir = std::path::PathBuf::from(&opts.gateway.storage.dir);
    let system = System::start(opts).await;
    let tenant = Uuid::now_v7();
    let token = system.token(tenant);
    let (status, answer) = openai_images(
        &system,
        &token,
        json!({"model": "dummy", "prompt": "a red kite", "size": "256x256", "n": 2,
            "style": "vivid", "user": "u-1", "moderation": "auto"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["created"].as_i64().unwrap() > 1_700_000_000,
        "{answer}"
    );
    let data = answer["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for item in data {
        assert!(item.get("url").is_none(), "{item}");
        let bytes = STANDARD.decode(item["b64_json"].as_str().unwrap()).unwrap();
        assert_eq!(png_size(&bytes), (256, 256));
    }
    assert_eq!(answer["output_format"], "png");
    assert_eq!(answer["size"], "256x256");
    // The placeholder counts no tokens: no usage rather than made-up figures.
    assert!(answer.get("usage").is_none(), "{answer}");
    // The worker stored the images; the answer read them back and deleted them. (An image
    // answered as a URL stays, so the directory looked at is the right one.)
    let left = files_under(&dir.join(tenant.to_string()));
    assert!(left.is_empty(), "stored copies left: {left:?}");
    let (status, answer) = openai_images(
        &system,
        &token,
        json!({"model": "dummy", "prompt": "a kite", "size": "16x16", "response_format": "url"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(files_under(&dir.join(tenant.to_string())).len(), 1);
    system.stop().await;
}

#[tokio::test]
async fn openai_images_as_urls_are_absolute_and_open_the_png() {
    let system = System::start(Opts::new().no_chat().media()).await;
    let token = system.token(Uuid::now_v7());
    let (status, answer) = openai_images(
        &system,
        &token,
        json!({"model": "dummy", "prompt": "a blue kite", "size": "128x96",
            "response_format": "url"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let url = answer["data"][0]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/api/v1/storage/files/", system.http)),
        "{url}"
    );
    assert!(answer["data"][0].get("b64_json").is_none());
    let (status, mime, bytes) = download(url).await;
    assert_eq!((status, mime.as_str()), (200, "image/png"));
    assert_eq!(png_size(&bytes), (128, 96));
    system.stop().await;
}

#[tokio::test]
async fn openai_image_errors_are_in_openai_shape_and_name_the_parameter() {
    let system = System::start(Opts::new().no_chat().media()).await;
    let token = system.token(Uuid::now_v7());
    for (body, want, kind, code, param) in [
        (
            json!({"model": "dummy"}),
            400,
            "invalid_request_error",
            Value::Null,
            "prompt",
        ),
        (
            json!({"prompt": "x", "n": 11}),
            400,
            "invalid_request_error",
            Value::Null,
            "n",
        ),
        (
            json!({"prompt": "x", "response_format": "gif"}),
            400,
            "invalid_request_error",
            Value::Null,
            "response_format",
        ),
        (
            json!({"prompt": "x", "model": "picasso"}),
            404,
            "invalid_request_error",
            json!("model_not_found"),
            "model",
        ),
        (
            json!({"prompt": "x", "model": "dummy", "size": "5000x5000"}),
            400,
            "invalid_request_error",
            json!("unsupported_option"),
            "size",
        ),
        (
            json!({"prompt": "x", "model": "dummy", "n": 5}),
            400,
            "invalid_request_error",
            json!("unsupported_option"),
            "n",
        ),
        (
            json!({"prompt": "x", "model": "gpt-image-1.5"}),
            503,
            "api_error",
            json!("model_unavailable"),
            "model",
        ),
    ] {
        let (status, answer) = openai_images(&system, &token, body.clone()).await;
        assert_eq!(status, want, "{body}: {answer}");
        let error = &answer["error"];
        assert_eq!(error["type"], kind, "{body}: {answer}");
        assert_eq!(error["code"], code, "{body}: {answer}");
        assert_eq!(error["param"], param, "{body}: {answer}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, answer) = openai_images(&system, "bad", json!({"prompt": "x"})).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"]["code"], "invalid_api_key");
    system.stop().await;
}

#[tokio::test]
async fn a_video_without_a_provider_is_accepted_then_fails_and_only_its_owner_sees_it() {
    let system = System::start(Opts::new().no_chat().media()).await;
    let tenant = Uuid::now_v7();
    let token = system.token(tenant);
    let (status, answer) = system
        .post(
            &token,
            "/video/generate",
            json!({"prompt": "waves on a beach", "duration_secs": 4}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["code"], 202);
    let job = &answer["data"];
    assert_eq!(job["status"], "processing");
    let task_id = job["task_id"].as_str().unwrap().to_owned();
    let session_id = job["session_id"].as_str().unwrap().to_owned();
    assert_eq!(
        job["status_url"],
        format!("{}/video/{task_id}", system.http)
    );
    assert_eq!(
        job["events_url"],
        format!("{}/video/{task_id}/events", system.http)
    );
    assert_eq!(job["websocket_url"], system.ws);

    // Its events over SSE, from the start, until `complete`: the worker refuses it.
    let path = format!("/video/{task_id}/events");
    let (status, events) = sse(&system, &token, &path, None).await;
    assert_eq!(status, 200);
    let k = types(&events);
    assert_eq!(k.last().map(String::as_str), Some("complete"), "{k:?}");
    let error = events.iter().find(|(_, e)| e["type"] == "error").unwrap();
    assert_eq!(
        error.1["data"]["code"], "provider_unavailable",
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .all(|(id, e)| e["task_id"] == task_id.as_str() && e["event_id"] == id.as_str())
    );
    // Resumed after the first event: the rest only.
    let (_, rest) = sse(&system, &token, &path, Some(&events[0].0)).await;
    assert_eq!(types(&rest), k[1..].to_vec());
    let (status, _) = sse(&system, &token, &path, Some("yesterday")).await;
    assert_eq!(status, 400);

    // Its state.
    let (status, polled) = get(&system, &token, &format!("/video/{task_id}")).await;
    assert_eq!(status, 200, "{polled}");
    let state = &polled["data"];
    assert_eq!(state["task_id"], task_id.as_str());
    assert_eq!(state["session_id"], session_id.as_str());
    assert_eq!(state["status"], "error");
    assert_eq!(state["error"]["code"], "provider_unavailable");
    assert!(
        state["error"]["message"]
            .as_str()
            .unwrap()
            .contains("video provider"),
        "{state}"
    );
    assert_eq!(state["result"], Value::Null);

    // The chat WebSocket's `resume` of the session replays the same events.
    let (mut ws, _) = system.connect(&token).await;
    ws.send(json!({"type": "resume", "session_id": session_id}))
        .await;
    let replayed = ws.until_complete().await;
    assert_eq!(kinds(&replayed), k);
    ws.close().await;

    // Over: nothing to cancel.
    let (status, answer) = system
        .post(&token, &format!("/video/{task_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 409, "{answer}");

    // Another user of the same tenant, or of another, does not find it.
    for stranger in [system.token(tenant), system.token(Uuid::now_v7())] {
        let (status, answer) = get(&system, &stranger, &format!("/video/{task_id}")).await;
        assert_eq!(status, 404, "{answer}");
        assert_eq!(answer["message"], "no such video task");
        let (status, _) = sse(&system, &stranger, &path, None).await;
        assert_eq!(status, 404);
        let (status, _) = system
            .post(&stranger, &format!("/video/{task_id}/cancel"), json!({}))
            .await;
        assert_eq!(status, 404);
    }
    // Unknown, or no id at all.
    let (status, _) = get(&system, &token, &format!("/video/{}", Uuid::now_v7())).await;
    assert_eq!(status, 404);
    let (status, _) = get(&system, &token, "/video/not-an-id").await;
    assert_eq!(status, 404);
    system.stop().await;
}

#[tokio::test]
async fn bad_video_requests_are_refused_before_anything_is_published() {
    let system = System::start(Opts::new().no_chat().media()).await;
    let token = system.token(Uuid::now_v7());
    for (path, body, says) in [
        ("/video/generate", json!({}), "prompt"),
        (
            "/video/generate",
            json!({"prompt": "x", "duration_secs": 0}),
            "duration_secs",
        ),
        (
            "/video/generate",
            json!({"prompt": "x", "image_url": "file:///etc/passwd"}),
            "image_url",
        ),
        (
            "/video/generate",
            json!({"prompt": "x", "trajectories": [[{"x": 1, "y": 1}, {"x": 2, "y": 2}]]}),
            "image_url",
        ),
        ("/video/extend", json!({"prompt": "more"}), "video_id"),
        ("/video/extend", json!({"video_id": " "}), "video_id"),
    ] {
        let (status, answer) = system.post(&token, path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(says),
            "{path} {body}: {answer}"
        );
    }
    // An extension is a job like a generation: accepted, then refused by the worker here.
    let (status, answer) = system
        .post(
            &token,
            "/video/extend",
            json!({"video_id": "v-1", "prompt": "and then"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let task_id = answer["data"]["task_id"].as_str().unwrap();
    let (_, events) = sse(&system, &token, &format!("/video/{task_id}/events"), None).await;
    let error = events.iter().find(|(_, e)| e["type"] == "error").unwrap();
    assert_eq!(
        error.1["data"]["code"], "provider_unavailable",
        "{events:?}"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_waiting_video_task_can_be_cancelled_by_its_owner() {
    // No media-worker: the job waits in the stream, still `processing`.
    let system = System::start(Opts::new().no_chat()).await;
    let token = system.token(Uuid::now_v7());
    let (status, answer) = system
        .post(
            &token,
            "/video/generate",
            json!({"prompt": "a slow sunrise"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let task_id = answer["data"]["task_id"].as_str().unwrap().to_owned();
    let (status, polled) = get(&system, &token, &format!("/video/{task_id}")).await;
    assert_eq!(
        (status, &polled["data"]["status"]),
        (200, &json!("processing"))
    );
    let (status, answer) = system
        .post(&token, &format!("/video/{task_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["data"]["status"], "cancelling");
    assert_eq!(answer["data"]["task_id"], task_id.as_str());
    // The cancel flag a worker reads before it runs the task.
    let mut redis = system
        .redis()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let names = system.core.names();
    let flag: Option<String> = redis::cmd("GET")
        .arg(names.cancel_flag(Uuid::parse_str(&task_id).unwrap()))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(flag.is_some(), "no cancel flag");
    system.stop().await;
}

#[tokio::test]
async fn an_image_is_made_over_the_websocket_like_a_chat() {
    let system = System::start(Opts::new().no_chat().media()).await;
    let tenant = Uuid::now_v7();
    let token = system.token(tenant);
    let (mut ws, session) = system.connect(&token).await;
    ws.send(json!({"type": "image", "prompt": "a red kite", "size": "96x64"}))
        .await;
    let events = ws.until_complete().await;
    let done = events
        .iter()
        .find(|e| e["type"] == "text_completed")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(done["session_id"], session.as_str());
    let image = &done["data"]["data"]["images"][0];
    let url = image["url"].as_str().unwrap();
    let (status, mime, bytes) = download(&format!("{}{url}", system.http)).await;
    assert_eq!((status, mime.as_str()), (200, "image/png"));
    assert_eq!(png_size(&bytes), (96, 64));
    // A bad one is refused on the socket, which stays open.
    ws.send(json!({"type": "image", "prompt": "x", "n": 0}))
        .await;
    let refused = ws.next().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["data"]["code"], "bad_request", "{refused}");
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await["type"], "pong");
    system.stop().await;
}
