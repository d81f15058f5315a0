//! `media.video.generate` and `media.video.extend` against real Redis, a real storage directory
//! and provider-sim speaking Sora's, Veo's and KlingAI's job APIs: progress on every poll, the
//! video stored (never streamed), failures told, cancel passed upstream, and a job that survives
//! its worker's kill -9 without a second submission.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::payloads::media::{EXTEND_VIDEO, GENERATE_VIDEO};
use common::testing::Received;
use provider_sim::{Behaviour, SimConfig, Simulator};
use serde_json::{Value, json};
use support::{Worker, action, assert_ends_once, kinds, observe, of, settings, start, with};

async fn sim(job_polls: usize, video_bytes: usize) -> Simulator {
    Simulator::start(SimConfig {
        job_polls,
        poll_after: Duration::from_millis(20),
        video_bytes,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// How many requests of `format` the simulator saw.
fn count(sim: &Simulator, format: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| serde_json::to_value(r.format).unwrap() == format)
        .count()
}

fn progress(events: &[Received]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e.kind == "progress")
        .map(|e| &e.event["data"])
        .collect()
}

fn error_of(events: &[Received]) -> Value {
    of(events, "error")
        .cloned()
        .unwrap_or_else(|| panic!("no error in {:?}", kinds(events)))
}

/// The stored video of a finished action: checked to be the simulator's MP4.
async fn stored_video(w: &Worker, a: &common::envelope::DomainAction, size: usize) -> Value {
    let events = w.events(a, "complete").await;
    assert_ends_once(&events);
    let data = of(&events, "text_completed").unwrap_or_else(|| panic!("no answer in {events:#?}"))
        ["data"]
        .clone();
    let video = &data["video"];
    assert_eq!(video["mime"], "video/mp4");
    let key = video["key"].as_str().unwrap();
    assert!(
        key.starts_with(&format!("{}/videos/", a.tenant_id)),
        "{key}"
    );
    let bytes = w.stored(a.tenant_id, key).await;
    assert_eq!(&bytes[4..8], b"ftyp");
    assert_eq!(bytes.len(), size);
    // Video bytes never travel in the stream: no event is anywhere near the video's size.
    assert!(
        events.iter().all(|e| e.event.to_string().len() < size),
        "a big event"
    );
    data
}

#[tokio::test]
async fn sora_polls_with_progress_and_stores_the_video() {
    let sim = sim(3, 48 * 1024).await;
    let w = start(with(settings(), "openai", sim.base_url())).await;
    let a = action(
        GENERATE_VIDEO,
        json!({"prompt": "a paper boat on a river", "model": "sora", "duration_secs": 8,
               "aspect_ratio": "16:9"}),
    );
    w.bus.publish(&a).await.unwrap();
    let data = stored_video(&w, &a, 48 * 1024).await;
    assert_eq!(data["model"], "sora-2");
    assert_eq!(data["provider"], "openai");
    let events = w.events(&a, "complete").await;
    let generating: Vec<&Value> = progress(&events)
        .into_iter()
        .filter(|p| p["stage"] == "generating")
        .collect();
    assert_eq!(
        generating.len(),
        3,
        "one progress per poll: {generating:#?}"
    );
    let fractions: Vec<f64> = generating
        .iter()
        .map(|p| p["fraction"].as_f64().unwrap())
        .collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    assert!(
        generating
            .iter()
            .all(|p| p["provider_job_id"] == data["provider_job_id"])
    );
    assert_eq!(count(&sim, "sora"), 1);
    assert_eq!(count(&sim, "sora_content"), 1);
    let submitted = sim
        .requests()
        .into_iter()
        .find(|r| serde_json::to_value(r.format).unwrap() == "sora")
        .unwrap();
    assert_eq!(submitted.body["seconds"], "8", "{}", submitted.body);
    assert_eq!(submitted.body["size"], "1280x720", "{}", submitted.body);
}

#[tokio::test]
async fn veo_filtered_and_failed_jobs_are_clear_errors() {
    let sim = sim(1, 4096).await;
    let w = start(with(settings(), "gemini", sim.root_url())).await;
    let ok = action(
        GENERATE_VIDEO,
        json!({"prompt": "waves", "model": "veo-3.1-fast", "duration_secs": 8,
               "resolution": "1080p"}),
    );
    w.bus.publish(&ok).await.unwrap();
    let data = stored_video(&w, &ok, 4096).await;
    assert_eq!(data["model"], "veo-3.1-fast");
    assert_eq!(count(&sim, "veo"), 1);

    for (behaviour, code) in [
        (Behaviour::ContentFiltered, "content_filtered"),
        (Behaviour::JobFailed, "job_failed"),
    ] {
        sim.push_script(behaviour);
        let a = action(GENERATE_VIDEO, json!({"prompt": "waves", "model": "veo"}));
        let events = w.run(&a).await;
        assert_ends_once(&events);
        let e = error_of(&events);
        assert_eq!(e["code"], code, "{e}");
        assert_eq!(e["stage"], "provider", "{e}");
        assert!(of(&events, "text_completed").is_none());
    }
}

#[tokio::test]
async fn kling_text_image_and_extension_with_a_signed_token() {
    let sim = sim(1, 2048).await;
    let w = start(with(settings(), "klingai", sim.root_url())).await;
    let a = action(
        GENERATE_VIDEO,
        json!({"prompt": "a fox in snow", "model": "kling-v2-1", "duration_secs": 5,
               "mode": "pro", "camera_control": {"type": "simple",
               "config": {"horizontal": 0, "vertical": 0, "pan": 0, "tilt": 0, "roll": 0,
               "zoom": 5}}}),
    );
    w.bus.publish(&a).await.unwrap();
    let data = stored_video(&w, &a, 2048).await;
    let video_id = data["video"]["provider_video_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = data["video"]["duration_secs"].as_f64().unwrap();
    let token = sim.requests()[0].authorization.clone().unwrap();
    let png = media_worker::images::dummy::placeholder_png(64, 64, b"frame").unwrap();
    let image = format!("data:image/png;base64,{}", STANDARD.encode(&png));
    let b = action(
        GENERATE_VIDEO,
        json!({"prompt": "it runs", "model": "kling", "image_url": image, "mask_url": image,
               "trajectories": [[{"x": 1, "y": 1}, {"x": 30, "y": 40}]]}),
    );
    w.bus.publish(&b).await.unwrap();
    stored_video(&w, &b, 2048).await;
    let c = action(
        EXTEND_VIDEO,
        json!({"video_id": video_id, "prompt": "and on"}),
    );
    w.bus.publish(&c).await.unwrap();
    let extended = stored_video(&w, &c, 2048).await;
    assert!(
        extended["video"]["duration_secs"].as_f64().unwrap() > first,
        "{extended}"
    );
    let submissions: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| serde_json::to_value(r.format).unwrap() == "kling")
        .collect();
    let paths: Vec<&str> = submissions.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/videos/text2video",
            "/v1/videos/image2video",
            "/v1/videos/video-extend"
        ]
    );
    assert!(submissions[1].body["dynamic_masks"][0]["trajectories"].is_array());
    // One token, cached, for every call of the API (the video URLs take none).
    let api: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/videos/"))
        .collect();
    assert!(api.len() >= 6, "{}", api.len());
    assert!(
        api.iter()
            .all(|r| r.authorization.as_deref() == Some(&token))
    );
}

#[tokio::test]
async fn a_wrong_kling_secret_is_the_operators_problem_and_bad_options_cost_nothing() {
    let sim = sim(1, 2048).await;
    let mut s = with(settings(), "klingai", sim.root_url());
    s.providers.get_mut("klingai").unwrap().secret_key =
        Some(common::settings::Secret::new("not-the-secret"));
    let s = with(s, "openai", sim.base_url());
    let w = start(s).await;
    let a = action(
        GENERATE_VIDEO,
        json!({"prompt": "x", "model": "kling-v1-6"}),
    );
    let e = error_of(&w.run(&a).await);
    assert_eq!(e["code"], "upstream_misconfigured", "{e}");
    assert!(!e["message"].as_str().unwrap().contains("not-the-secret"));
    for (data, code) in [
        (
            json!({"prompt": "x", "model": "sora-2", "duration_secs": 5}),
            "unsupported_option",
        ),
        (
            json!({"prompt": "x", "model": "sora-2", "resolution": "1792x1024"}),
            "unsupported_option",
        ),
        (
            json!({"prompt": "x", "model": "veo"}),
            "provider_unavailable",
        ),
        (
            json!({"prompt": "x", "model": "gpt-image-1"}),
            "unknown_model",
        ),
    ] {
        let a = action(GENERATE_VIDEO, data.clone());
        let e = error_of(&w.run(&a).await);
        assert_eq!(e["code"], code, "{data}: {e}");
    }
    let a = action(EXTEND_VIDEO, json!({"video_id": "v", "model": "sora-2"}));
    assert_eq!(error_of(&w.run(&a).await)["code"], "unsupported_option");
    assert_eq!(count(&sim, "sora"), 0, "nothing was submitted");
}

#[tokio::test]
async fn a_download_that_drops_is_never_stored_short() {
    let sim = sim(1, 64 * 1024).await;
    let w = start(with(settings(), "openai", sim.base_url())).await;
    sim.push_script(Behaviour::DownloadDrop { after_bytes: 1000 });
    let a = action(GENERATE_VIDEO, json!({"prompt": "x", "model": "sora-2"}));
    let events = w.run(&a).await;
    assert_ends_once(&events);
    let e = error_of(&events);
    assert_eq!(e["code"], "upstream_connection", "{e}");
    assert_eq!(count(&sim, "sora_content"), 3, "tried three times");
    let dir = std::path::Path::new(&w.settings.storage.dir);
    assert!(!dir.join(a.tenant_id.to_string()).join("videos").exists());
}

#[tokio::test]
async fn cancel_stops_polling_and_deletes_the_sora_job() {
    let sim = sim(1, 2048).await;
    let w = start(with(settings(), "openai", sim.base_url())).await;
    sim.push_script(Behaviour::JobStuck);
    let a = action(GENERATE_VIDEO, json!({"prompt": "x", "model": "sora-2"}));
    w.bus.publish(&a).await.unwrap();
    let events = w.events(&a, "progress").await;
    assert!(events.iter().any(|e| e.kind == "progress"));
    // Wait for polling to be under way, then cancel.
    w.events(&a, "model_in_use").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.bus.request_cancel(a.task_id).await.unwrap();
    let events = w.events(&a, "complete").await;
    assert!(
        kinds(&events).contains(&"cancelled"),
        "{:?}",
        kinds(&events)
    );
    assert!(of(&events, "text_completed").is_none());
    assert_eq!(count(&sim, "sora_delete"), 1);
    let polls = count(&sim, "sora_poll");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&sim, "sora_poll"), polls, "polling stopped");
}

#[tokio::test]
async fn a_job_that_never_ends_times_out_and_is_cancelled_upstream() {
    let sim = sim(1, 2048).await;
    let mut s = with(settings(), "openai", sim.base_url());
    s.media.video_timeout_secs = 1;
    let w = start(s).await;
    sim.push_script(Behaviour::JobStuck);
    let a = action(GENERATE_VIDEO, json!({"prompt": "x", "model": "sora-2"}));
    let events = w.run(&a).await;
    assert_ends_once(&events);
    assert_eq!(error_of(&events)["code"], "job_timeout");
    assert_eq!(count(&sim, "sora_delete"), 1);
}

/// A media-worker as its own process, to be killed.
fn spawn_worker(w: &Worker, sim: &Simulator) -> Child {
    let core = &w.settings.core;
    Command::new(env!("CARGO_BIN_EXE_media-worker"))
        .env("REDIS_URL", core.redis_url.expose())
        .env("STREAM_PREFIX", &core.stream_prefix)
        .env("APP_ENV", &core.app_env)
        .env("JWT_SECRET", "test-secret")
        .env("OPENAI_API_KEY", "sk-test-key")
        .env("OPENAI_BASE_URL", sim.base_url())
        .env("STORAGE__DIR", &w.settings.storage.dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the media-worker binary")
}

#[tokio::test]
async fn a_worker_killed_mid_poll_is_replaced_and_the_same_job_is_resumed() {
    // 40 polls 20 ms apart: the job runs for about a second.
    let sim = sim(40, 8192).await;
    // The replacement: in-process, started once the first worker is dead (it shares nothing
    // with it but Redis and the storage directory).
    let s = with(settings(), "openai", sim.base_url());
    let idle = observe(s.clone()).await;
    let mut child = spawn_worker(&idle, &sim);
    let a = action(GENERATE_VIDEO, json!({"prompt": "x", "model": "sora-2"}));
    idle.bus.publish(&a).await.unwrap();
    // Polling is under way in the child process.
    let seen = idle.events(&a, "progress").await;
    assert!(seen.iter().any(|e| e.kind == "progress"));
    loop {
        if count(&sim, "sora_poll") >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        count(&sim, "sora_content"),
        0,
        "killed before the video was ready"
    );
    drop(idle);
    let w = start(s).await;
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    assert!(
        of(&events, "text_completed").is_some(),
        "{:?}",
        kinds(&events)
    );
    assert!(
        progress(&events).iter().any(|p| p["stage"] == "resuming"),
        "{:?}",
        progress(&events)
    );
    assert_eq!(count(&sim, "sora"), 1, "one submission, one bill");
    stored_video(&w, &a, 8192).await;
}
