//! Stability AI: the v2beta Stable Image services (multipart in, image bytes or JSON out) and
//! SDXL's v1 text-to-image, their errors and the failure behaviours.

// The helpers below run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provider_sim::{Behaviour, SimConfig, Simulator, WireFormat};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::image_support::{assert_jpeg, assert_png};
use crate::support::{base64_decode, client, start};

const KEY: &str = "Bearer sk-stability-sim";
const PROMPT: &str = "A lighthouse on a cliff overlooking the ocean";

fn form(fields: &[(&str, &str)]) -> Form {
    fields.iter().fold(Form::new(), |form, (name, value)| {
        form.text((*name).to_owned(), (*value).to_owned())
    })
}

async fn generate(sim: &Simulator, service: &str, accept: &str, form: Form) -> reqwest::Response {
    client()
        .post(format!(
            "{}/v2beta/stable-image/generate/{service}",
            sim.root_url()
        ))
        .header("authorization", KEY)
        .header("accept", accept)
        .multipart(form)
        .send()
        .await
        .expect("send stability request")
}

async fn sdxl(sim: &Simulator, accept: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!(
            "{}/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image",
            sim.root_url()
        ))
        .header("authorization", KEY)
        .header("accept", accept)
        .json(body)
        .send()
        .await
        .expect("send sdxl request")
}

#[tokio::test]
async fn core_answers_the_image_bytes_with_its_finish_reason_and_seed() {
    let sim = start(SimConfig::default()).await;
    let response = generate(
        &sim,
        "core",
        "image/*",
        form(&[
            ("prompt", PROMPT),
            ("aspect_ratio", "16:9"),
            ("style_preset", "photographic"),
        ]),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.headers()["finish-reason"], "SUCCESS");
    let seed: u64 = response.headers()["seed"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seed > 0, "seed 0 asks for a random one");
    assert_png(&response.bytes().await.unwrap(), 1344, 768);

    let seeded = generate(
        &sim,
        "core",
        "image/*",
        form(&[
            ("prompt", PROMPT),
            ("seed", "1234"),
            ("output_format", "jpeg"),
        ]),
    )
    .await;
    assert_eq!(seeded.headers()["content-type"], "image/jpeg");
    assert_eq!(seeded.headers()["seed"], "1234");
    assert_jpeg(&seeded.bytes().await.unwrap(), 1024, 1024);

    let record = &sim.requests()[0];
    assert_eq!(record.format, WireFormat::Stability);
    assert_eq!(record.path, "/v2beta/stable-image/generate/core");
    assert_eq!(record.authorization.as_deref(), Some(KEY));
    assert_eq!(record.texts, [PROMPT]);
    assert_eq!(record.body["aspect_ratio"], "16:9");
}

#[tokio::test]
async fn sd3_and_ultra_answer_json_when_asked() {
    let sim = start(SimConfig::default()).await;
    let response = generate(
        &sim,
        "sd3",
        "application/json",
        form(&[
            ("prompt", PROMPT),
            ("model", "sd3.5-large-turbo"),
            ("aspect_ratio", "9:16"),
            ("output_format", "jpeg"),
        ]),
    )
    .await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["finish_reason"], "SUCCESS");
    assert!(reply["seed"].as_u64().is_some());
    assert_jpeg(&base64_decode(reply["image"].as_str().unwrap()), 768, 1344);

    // Ultra's image-to-image: the upload is recorded by its size, not its bytes.
    let upload = Part::bytes(vec![7u8; 2048])
        .file_name("input.png")
        .mime_str("image/png")
        .unwrap();
    let with_image = form(&[("prompt", PROMPT), ("strength", "0.6")]).part("image", upload);
    let ultra = generate(&sim, "ultra", "image/*", with_image).await;
    assert_eq!(ultra.status(), 200);
    assert_png(&ultra.bytes().await.unwrap(), 1024, 1024);
    let record = &sim.requests()[1];
    assert_eq!(record.body["image"]["bytes"], 2048);
    assert_eq!(record.body["image"]["filename"], "input.png");
    assert_eq!(record.body["strength"], "0.6");
}

#[tokio::test]
async fn content_filtered_is_a_blurred_image_with_its_finish_reason() {
    let sim = start(SimConfig::default()).await;
    sim.push_script(Behaviour::ContentFiltered);
    let raw = generate(&sim, "core", "image/*", form(&[("prompt", PROMPT)])).await;
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["finish-reason"], "CONTENT_FILTERED");
    assert_png(&raw.bytes().await.unwrap(), 1024, 1024);

    sim.push_script(Behaviour::ContentFiltered);
    let json: Value = generate(&sim, "sd3", "application/json", form(&[("prompt", PROMPT)]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json["finish_reason"], "CONTENT_FILTERED");
    assert_png(&base64_decode(json["image"].as_str().unwrap()), 1024, 1024);
}

#[tokio::test]
async fn errors_are_stability_shaped() {
    let sim = start(SimConfig::default()).await;
    let name_of = |reply: &Value| reply["name"].as_str().unwrap_or_default().to_owned();

    let no_key = client()
        .post(format!(
            "{}/v2beta/stable-image/generate/core",
            sim.root_url()
        ))
        .multipart(form(&[("prompt", PROMPT)]))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    assert_eq!(name_of(&no_key.json().await.unwrap()), "unauthorized");

    let missing = generate(&sim, "core", "image/*", form(&[("aspect_ratio", "1:1")])).await;
    assert_eq!(missing.status(), 400);
    let reply: Value = missing.json().await.unwrap();
    assert_eq!(name_of(&reply), "bad_request");
    assert!(reply["id"].is_string());
    assert!(reply["errors"][0].as_str().unwrap().contains("prompt"));

    let webp = generate(
        &sim,
        "core",
        "image/*",
        form(&[("prompt", PROMPT), ("output_format", "webp")]),
    )
    .await;
    assert_eq!(webp.status(), 400);
    assert_eq!(
        name_of(&webp.json().await.unwrap()),
        "unsupported_in_simulator"
    );

    let bad_ratio = generate(
        &sim,
        "sd3",
        "image/*",
        form(&[("prompt", PROMPT), ("aspect_ratio", "4:3")]),
    )
    .await;
    assert_eq!(bad_ratio.status(), 400);

    let big = Part::bytes(vec![0u8; 10 * 1024 * 1024 + 1]).file_name("huge.png");
    let too_large = generate(
        &sim,
        "ultra",
        "image/*",
        form(&[("prompt", PROMPT)]).part("image", big),
    )
    .await;
    assert_eq!(too_large.status(), 413);
    assert_eq!(
        name_of(&too_large.json().await.unwrap()),
        "payload_too_large"
    );
    assert!(
        sim.requests().is_empty(),
        "refused requests are not recorded"
    );

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 60,
    });
    let limited = generate(&sim, "core", "image/*", form(&[("prompt", PROMPT)])).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "60");
    assert_eq!(
        name_of(&limited.json().await.unwrap()),
        "rate_limit_exceeded"
    );

    sim.push_script(Behaviour::ServerError);
    let server = generate(&sim, "core", "image/*", form(&[("prompt", PROMPT)])).await;
    assert_eq!(server.status(), 500);
    assert_eq!(name_of(&server.json().await.unwrap()), "internal_error");

    sim.push_script(Behaviour::Refused {
        status: 403,
        message: "Your request was flagged by our content moderation system.".to_owned(),
    });
    let moderated = generate(&sim, "core", "image/*", form(&[("prompt", PROMPT)])).await;
    assert_eq!(moderated.status(), 403);
    let reply: Value = moderated.json().await.unwrap();
    assert_eq!(name_of(&reply), "content_moderation");
    assert_eq!(
        reply["errors"][0],
        "Your request was flagged by our content moderation system."
    );

    sim.push_script(Behaviour::MalformedLine { after_chunks: 0 });
    let cut = generate(&sim, "core", "image/*", form(&[("prompt", PROMPT)])).await;
    let bytes = cut.bytes().await.unwrap();
    assert!(imagesize::image_type(&bytes).is_ok());
    assert!(
        !bytes.ends_with(b"IEND\xae\x42\x60\x82"),
        "a truncated image"
    );
}

#[tokio::test]
async fn sdxl_answers_artifacts() {
    let sim = start(SimConfig::default()).await;
    let body = json!({
        "text_prompts": [{"text": PROMPT, "weight": 1.0}, {"text": "blurry", "weight": -1.0}],
        "width": 1152, "height": 896, "samples": 2, "cfg_scale": 7, "steps": 30,
    });
    let response = sdxl(&sim, "application/json", &body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    let artifacts = reply["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 2);
    for artifact in artifacts {
        assert_eq!(artifact["finishReason"], "SUCCESS");
        assert!(artifact["seed"].as_u64().is_some());
        assert_png(
            &base64_decode(artifact["base64"].as_str().unwrap()),
            1152,
            896,
        );
    }
    assert_ne!(artifacts[0]["seed"], artifacts[1]["seed"]);
    assert_eq!(sim.requests()[0].texts, [PROMPT]);

    let png = sdxl(
        &sim,
        "image/png",
        &json!({"text_prompts": [{"text": PROMPT}]}),
    )
    .await;
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(png.headers()["finish-reason"], "SUCCESS");
    assert_png(&png.bytes().await.unwrap(), 1024, 1024);

    sim.push_script(Behaviour::ContentFiltered);
    let filtered: Value = sdxl(
        &sim,
        "application/json",
        &json!({"text_prompts": [{"text": PROMPT}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(filtered["artifacts"][0]["finishReason"], "CONTENT_FILTERED");

    let wrong = sdxl(
        &sim,
        "application/json",
        &json!({"text_prompts": [{"text": PROMPT}], "width": 512, "height": 512}),
    )
    .await;
    assert_eq!(wrong.status(), 400);
    let reply: Value = wrong.json().await.unwrap();
    assert_eq!(reply["name"], "invalid_sdxl_v1_dimensions");
    assert!(reply["message"].as_str().unwrap().contains("1024x1024"));

    sim.push_script(Behaviour::ServerError);
    let server = sdxl(
        &sim,
        "application/json",
        &json!({"text_prompts": [{"text": PROMPT}]}),
    )
    .await;
    assert_eq!(server.status(), 500);
    let reply: Value = server.json().await.unwrap();
    assert_eq!(reply["name"], "internal_error");
    assert!(reply["message"].is_string());
}
