//! `media.image.generate` against real Redis and a real storage directory: the offline
//! placeholder, and every provider's wire format through provider-sim.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::payloads::media::GENERATE_IMAGE;
use common::storage::{Storage, StorageError};
use serde_json::{Value, json};
use support::{action, assert_ends_once, kinds, of, settings, start};
use uuid::Uuid;

/// `(mime, width, height)` of an image's bytes.
fn image_of(bytes: &[u8]) -> (&'static str, u32, u32) {
    let (mime, _, w, h) = media_worker::images::sniff(bytes).expect("an image");
    (mime, w, h)
}

fn error_of(events: &[common::testing::Received]) -> Value {
    of(events, "error")
        .cloned()
        .unwrap_or_else(|| panic!("no error in {:?}", kinds(events)))
}

#[tokio::test]
async fn with_no_key_a_placeholder_png_is_stored_for_the_tenant_only() {
    let w = start(settings()).await;
    let a = action(
        GENERATE_IMAGE,
        json!({"prompt": "a lighthouse at dusk", "size": "640x480", "n": 2}),
    );
    let events = w.run(&a).await;
    assert_ends_once(&events);
    let model = of(&events, "model_in_use").unwrap();
    assert_eq!(model["provider"], "dummy");
    assert!(
        model["note"].as_str().unwrap().contains("placeholder"),
        "{model}"
    );
    let done = of(&events, "text_completed").unwrap();
    let data = &done["data"];
    assert_eq!(data["model"], "dummy");
    assert_eq!(data["placeholder"], true);
    let images = data["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    let mut stored = Vec::new();
    for image in images {
        assert_eq!(image["mime"], "image/png");
        assert_eq!(
            (image["width"].as_u64(), image["height"].as_u64()),
            (Some(640), Some(480))
        );
        assert!(
            image["url"].as_str().unwrap().contains("/images/"),
            "{image}"
        );
        let key = image["key"].as_str().unwrap();
        assert!(
            key.starts_with(&format!("{}/images/", a.tenant_id)),
            "{key}"
        );
        let bytes = w.stored(a.tenant_id, key).await;
        assert_eq!(image_of(&bytes), ("image/png", 640, 480));
        assert_eq!(image["bytes"].as_u64(), Some(bytes.len() as u64));
        stored.push(bytes);
    }
    assert_ne!(stored[0], stored[1], "two images, two pictures");
    // Another tenant cannot read them, even knowing the key.
    let storage = Storage::new(&w.settings.storage, &w.settings.core).unwrap();
    let key = images[0]["key"].as_str().unwrap();
    let other = storage.get(Uuid::now_v7(), key).await.unwrap_err();
    assert!(matches!(other, StorageError::NotFound), "{other:?}");
}

#[tokio::test]
async fn save_false_answers_a_data_uri_and_stores_nothing() {
    let w = start(settings()).await;
    let a = action(
        GENERATE_IMAGE,
        json!({"prompt": "a cat", "size": "64x32", "save_to_db": false}),
    );
    let events = w.run(&a).await;
    let image = &of(&events, "text_completed").unwrap()["data"]["images"][0];
    assert!(image.get("url").is_none(), "{image}");
    let uri = image["data_uri"].as_str().unwrap();
    let b64 = uri.strip_prefix("data:image/png;base64,").unwrap();
    let bytes = STANDARD.decode(b64).unwrap();
    assert_eq!(image_of(&bytes), ("image/png", 64, 32));
    let dir = std::path::Path::new(&w.settings.storage.dir);
    let files = walk(dir);
    assert!(files.is_empty(), "stored {files:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { walk(&p) } else { vec![p] }
        })
        .collect()
}

#[tokio::test]
async fn inline_images_over_the_limit_are_refused_with_a_way_out() {
    let mut s = settings();
    s.media.max_inline_bytes = 100;
    let w = start(s).await;
    let a = action(
        GENERATE_IMAGE,
        json!({"prompt": "a cat", "size": "256x256", "save": false}),
    );
    let events = w.run(&a).await;
    assert_ends_once(&events);
    let e = error_of(&events);
    assert_eq!(e["code"], "inline_too_large");
    assert!(e["message"].as_str().unwrap().contains("save"), "{e}");
    assert!(of(&events, "text_completed").is_none());
}

#[tokio::test]
async fn bad_requests_get_a_clear_error_and_cost_nothing() {
    let w = start(settings()).await;
    let cases = [
        (
            json!({"prompt": "x", "model": "picasso"}),
            "unknown_model",
            "gpt-image-1.5",
        ),
        (
            json!({"prompt": "x", "model": "sora-2"}),
            "unknown_model",
            "makes videos",
        ),
        (
            json!({"prompt": "x", "model": "gpt-image-1.5"}),
            "provider_unavailable",
            "OPENAI_API_KEY",
        ),
        (
            json!({"prompt": "x", "model": "nano-banana"}),
            "provider_unavailable",
            "GEMINI_API_KEY",
        ),
        (
            json!({"prompt": "x", "size": "5000x5000"}),
            "unsupported_option",
            "5000x5000",
        ),
        (
            json!({"prompt": "x", "size": "huge"}),
            "unsupported_option",
            "WIDTHxHEIGHT",
        ),
        (
            json!({"prompt": "x", "n": 5}),
            "unsupported_option",
            "at most 4",
        ),
        (
            json!({"prompt": "x", "n": 11}),
            "invalid_payload",
            "n must be",
        ),
        (json!({"prompt": ""}), "invalid_payload", "prompt"),
        (
            json!({"prompt": "x", "image_url": "data:text/plain;base64,aGVsbG8="}),
            "invalid_image",
            "not a PNG",
        ),
        (
            json!({"prompt": "x", "image_url": "http://127.0.0.1:9/cat.png"}),
            "invalid_image",
            "internal address",
        ),
    ];
    for (data, code, says) in cases {
        let a = action(GENERATE_IMAGE, data.clone());
        let events = w.run(&a).await;
        assert_ends_once(&events);
        let e = error_of(&events);
        assert_eq!(e["code"], code, "{data}: {e}");
        assert_eq!(e["stage"], "validation", "{data}: {e}");
        assert_eq!(e["retryable"], false, "{data}: {e}");
        assert!(e["message"].as_str().unwrap().contains(says), "{data}: {e}");
        assert!(of(&events, "text_completed").is_none(), "{data}");
    }
    let dead: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg(w.bus.names().dead_letter_stream("media"))
        .arg("-")
        .arg("+")
        .query_async(&mut w.bus.conn())
        .await
        .unwrap();
    assert!(dead.is_empty(), "bad requests are not dead-lettered");
}

mod providers {
    use std::time::Duration;

    use common::payloads::media::GENERATE_IMAGE;
    use provider_sim::{Behaviour, SimConfig, Simulator};
    use serde_json::{Value, json};

    use super::support::{Worker, action, assert_ends_once, kinds, of, settings, start, with};
    use super::{error_of, image_of};

    async fn sim() -> Simulator {
        Simulator::start(SimConfig::default()).await.unwrap()
    }

    fn count(sim: &Simulator, format: &str) -> usize {
        sim.requests()
            .iter()
            .filter(|r| serde_json::to_value(r.format).unwrap() == format)
            .count()
    }

    /// Runs `data` and checks the answer: `n` stored images of `mime` and `size`.
    async fn draws(w: &Worker, data: Value, mime: &str, size: (u32, u32), n: usize) -> Value {
        let a = action(GENERATE_IMAGE, data.clone());
        let events = w.run(&a).await;
        assert_ends_once(&events);
        let done = of(&events, "text_completed")
            .unwrap_or_else(|| panic!("{data}: {:?} {:?}", kinds(&events), of(&events, "error")));
        let images = done["data"]["images"].as_array().unwrap();
        assert_eq!(images.len(), n, "{data}");
        for image in images {
            let bytes = w.stored(a.tenant_id, image["key"].as_str().unwrap()).await;
            let (m, width, height) = image_of(&bytes);
            assert_eq!((m, width, height), (mime, size.0, size.1), "{data}");
            assert_eq!(image["mime"], mime);
        }
        done.clone()
    }

    #[tokio::test]
    async fn openai_and_xai_answer_base64_that_is_stored() {
        let sim = sim().await;
        let s = with(
            with(settings(), "openai", sim.base_url()),
            "xai",
            sim.base_url(),
        );
        let w = start(s).await;
        let done = draws(
            &w,
            json!({"prompt": "a fox", "model": "openai", "size": "1536x1024", "n": 2}),
            "image/png",
            (1536, 1024),
            2,
        )
        .await;
        assert_eq!(done["data"]["model"], "gpt-image-1.5");
        assert!(
            done["usage"]["total_tokens"].as_u64().unwrap() > 0,
            "{done}"
        );
        draws(
            &w,
            json!({"prompt": "a fox", "model": "dall-e-3", "size": "1792x1024"}),
            "image/png",
            (1792, 1024),
            1,
        )
        .await;
        let grok = draws(
            &w,
            json!({"prompt": "a fox", "model": "grok"}),
            "image/jpeg",
            (1024, 768),
            1,
        )
        .await;
        assert_eq!(grok["data"]["provider"], "xai");
        let bodies: Vec<Value> = sim.requests().into_iter().map(|r| r.body).collect();
        assert!(
            bodies[0].get("response_format").is_none(),
            "GPT image models refuse it"
        );
        assert_eq!(bodies[1]["response_format"], "b64_json");
        // The default model, with OpenAI's key set, is OpenAI's.
        let d = draws(&w, json!({"prompt": "x"}), "image/png", (1024, 1024), 1).await;
        assert_eq!(d["data"]["model"], "gpt-image-1.5");
    }

    #[tokio::test]
    async fn flux_polls_then_downloads_and_edits_the_image_it_is_given() {
        let sim = sim().await;
        let w = start(with(settings(), "bfl", sim.root_url())).await;
        draws(
            &w,
            json!({"prompt": "a fox", "model": "flux-pro", "size": "1024x768"}),
            "image/jpeg",
            (1024, 768),
            1,
        )
        .await;
        assert_eq!(count(&sim, "bfl"), 1);
        assert!(count(&sim, "bfl_result") >= 3, "polled until Ready");
        let png = media_worker::images::dummy::placeholder_png(32, 32, b"start").unwrap();
        let uri = format!(
            "data:image/png;base64,{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &png)
        );
        draws(
            &w,
            json!({"prompt": "make it blue", "model": "flux-2-pro", "image_url": uri,
                   "output_format": "png", "size": "512x512"}),
            "image/png",
            (512, 512),
            1,
        )
        .await;
        let submitted: Vec<Value> = sim
            .requests()
            .into_iter()
            .filter(|r| serde_json::to_value(r.format).unwrap() == "bfl")
            .map(|r| r.body)
            .collect();
        assert!(
            submitted[1]["input_image"].as_str().unwrap().len() > 20,
            "image_url → input_image"
        );
        // Image-to-image on a model that cannot: refused before anything is sent.
        let a = action(
            GENERATE_IMAGE,
            json!({"prompt": "x", "model": "flux-pro-1.1", "image_url": uri}),
        );
        assert_eq!(error_of(&w.run(&a).await)["code"], "unsupported_option");
        for (behaviour, code) in [
            (Behaviour::ContentFiltered, "content_filtered"),
            (Behaviour::JobFailed, "job_failed"),
        ] {
            sim.push_script(behaviour);
            let a = action(GENERATE_IMAGE, json!({"prompt": "x", "model": "flux"}));
            let e = error_of(&w.run(&a).await);
            assert_eq!(
                (e["code"].as_str(), e["stage"].as_str()),
                (Some(code), Some("provider")),
                "{e}"
            );
        }
        assert_eq!(
            count(&sim, "bfl"),
            4,
            "the refused request never reached Flux"
        );
    }

    #[tokio::test]
    async fn stability_core_and_sdxl() {
        let sim = sim().await;
        let w = start(with(settings(), "stability", sim.root_url())).await;
        draws(
            &w,
            json!({"prompt": "a fox", "model": "core", "aspect_ratio": "16:9"}),
            "image/png",
            (1344, 768),
            1,
        )
        .await;
        draws(
            &w,
            json!({"prompt": "a fox", "model": "sdxl", "size": "1152x896", "n": 2}),
            "image/png",
            (1152, 896),
            2,
        )
        .await;
        sim.push_script(Behaviour::ContentFiltered);
        let a = action(GENERATE_IMAGE, json!({"prompt": "x", "model": "sd3.5"}));
        assert_eq!(error_of(&w.run(&a).await)["code"], "content_filtered");
        let a = action(
            GENERATE_IMAGE,
            json!({"prompt": "x", "model": "core", "size": "1000x333"}),
        );
        let e = error_of(&w.run(&a).await);
        assert_eq!(e["code"], "unsupported_option");
        assert!(e["message"].as_str().unwrap().contains("16:9"), "{e}");
    }

    #[tokio::test]
    async fn gemini_and_imagen() {
        let sim = sim().await;
        let w = start(with(settings(), "gemini", sim.root_url())).await;
        let done = draws(
            &w,
            json!({"prompt": "a fox", "model": "nano-banana", "aspect_ratio": "1:1"}),
            "image/png",
            (1024, 1024),
            1,
        )
        .await;
        assert_eq!(done["data"]["model"], "gemini-2.5-flash-image");
        draws(
            &w,
            json!({"prompt": "a fox", "model": "imagen", "n": 2, "aspect_ratio": "1:1"}),
            "image/png",
            (1024, 1024),
            2,
        )
        .await;
        sim.push_script(Behaviour::ContentFiltered);
        let a = action(
            GENERATE_IMAGE,
            json!({"prompt": "x", "model": "gemini-pro"}),
        );
        assert_eq!(error_of(&w.run(&a).await)["code"], "content_filtered");
        let a = action(
            GENERATE_IMAGE,
            json!({"prompt": "x", "model": "nano-banana", "quality": "4K"}),
        );
        assert_eq!(error_of(&w.run(&a).await)["code"], "unsupported_option");
    }

    #[tokio::test]
    async fn rate_limits_are_waited_out_and_a_bad_key_is_the_operators() {
        let sim = sim().await;
        let w = start(with(settings(), "openai", sim.base_url())).await;
        sim.push_script(Behaviour::RateLimited {
            retry_after_secs: 1,
        });
        let started = std::time::Instant::now();
        draws(
            &w,
            json!({"prompt": "x", "model": "gpt-image-1"}),
            "image/png",
            (1024, 1024),
            1,
        )
        .await;
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "waited as told"
        );
        assert_eq!(count(&sim, "openai_images"), 2);
        sim.push_script(Behaviour::Refused {
            status: 401,
            message: "Incorrect API key provided: sk-test-key".into(),
        });
        let a = action(
            GENERATE_IMAGE,
            json!({"prompt": "x", "model": "gpt-image-1"}),
        );
        let e = error_of(&w.run(&a).await);
        assert_eq!(e["code"], "upstream_misconfigured");
        assert!(!e.to_string().contains("sk-test-key"), "{e}");
        sim.push_script(Behaviour::ContentFiltered);
        let a = action(
            GENERATE_IMAGE,
            json!({"prompt": "x", "model": "gpt-image-1"}),
        );
        assert_eq!(error_of(&w.run(&a).await)["code"], "content_filtered");
    }
}
