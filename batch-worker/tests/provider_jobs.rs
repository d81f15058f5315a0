//! Batch jobs on the providers' batch APIs (through provider-sim), driven end to end by the job
//! driver: OpenAI, Anthropic and Gemini jobs completed with one answer per line, a job cancelled
//! at the provider, and a worker killed with SIGKILL while it polls: replaced, it finds the same
//! provider batch and submits no second one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use common::batch::Status;
use provider_sim::{SimConfig, Simulator};
use serde_json::Value;
use support::*;

fn count(sim: &Simulator, format: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| serde_json::to_value(r.format).unwrap() == format)
        .count()
}

async fn sim(polls: usize) -> Simulator {
    Simulator::start(SimConfig {
        job_polls: polls,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn ids(lines: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

async fn completes_on(provider: &str, base_url: String, model: &str, create: &str) {
    let sim_url = base_url;
    let w = start(with(settings(), provider, sim_url)).await;
    let mut input = lines(5, model);
    input[2] = line("line-3", model, "please fail_line here");
    let (job, a) = w.submit(owner(), &input).await;
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    let job = w.job(&job).await;
    assert_eq!(job.state(), Status::Completed, "{job:?}");
    assert_eq!(job.mode.as_deref(), Some("provider"));
    assert!(job.to_api()["provider"] == provider);
    let out = w.file_lines(&job, job.output_file_id.as_deref()).await;
    let errors = w.file_lines(&job, job.error_file_id.as_deref()).await;
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["custom_id"], "line-3");
    for l in &out {
        let body = &l["response"]["body"];
        assert_eq!(body["object"], "chat.completion", "{l}");
        assert!(
            !body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!((job.completed, job.failed), (4, 1));
    let progress: Vec<&Value> = events
        .iter()
        .filter(|e| e.kind == "progress")
        .map(|e| &e.event["data"])
        .collect();
    assert!(
        progress.iter().any(|p| p["provider_job_id"].is_string()),
        "{progress:?}"
    );
    let _ = create;
}

#[tokio::test]
async fn an_openai_job_runs_on_openais_batch_api() {
    let sim = sim(2).await;
    completes_on(
        "openai",
        sim.base_url(),
        "gpt-4o-mini",
        "openai_batch_create",
    )
    .await;
    assert_eq!(count(&sim, "openai_batch_create"), 1);
    assert_eq!(count(&sim, "openai_file_upload"), 1);
}

#[tokio::test]
async fn an_anthropic_job_runs_on_message_batches() {
    let sim = sim(2).await;
    completes_on(
        "anthropic",
        sim.root_url(),
        "claude-haiku-4-5",
        "anthropic_batch_create",
    )
    .await;
    assert_eq!(count(&sim, "anthropic_batch_create"), 1);
}

#[tokio::test]
async fn a_gemini_job_runs_on_batch_mode() {
    let sim = sim(2).await;
    completes_on(
        "gemini",
        sim.root_url(),
        "gemini-2-5-flash",
        "gemini_batch_create",
    )
    .await;
    assert_eq!(count(&sim, "gemini_batch_create"), 1);
}

#[tokio::test]
async fn a_cancelled_job_cancels_the_provider_batch_and_keeps_what_finished() {
    let sim = sim(1000).await;
    cancelled_on(&sim, "anthropic", sim.root_url(), "claude-haiku-4-5").await;
}

#[tokio::test]
async fn a_cancelled_openai_job_accounts_for_every_line() {
    // OpenAI leaves a cancelled batch's unrun requests out of both its files.
    let sim = sim(1000).await;
    cancelled_on(&sim, "openai", sim.base_url(), "gpt-4o-mini").await;
}

async fn cancelled_on(sim: &Simulator, provider: &str, url: String, model: &str) {
    let w = start(with(settings(), provider, url)).await;
    let (job, a) = w.submit(owner(), &lines(50, model)).await;
    let get = format!("{provider}_batch_get");
    loop {
        if count(sim, &get) >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.bus.request_cancel(a.task_id).await.unwrap();
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    assert_eq!(count(sim, &format!("{provider}_batch_cancel")), 1);
    let job = w.job(&job).await;
    assert_eq!(job.state(), Status::Cancelled);
    let out = w.file_lines(&job, job.output_file_id.as_deref()).await;
    let errors = w.file_lines(&job, job.error_file_id.as_deref()).await;
    assert!(!out.is_empty(), "lines the provider finished stay");
    assert_eq!(out.len() + errors.len(), 50);
    assert!(
        errors
            .iter()
            .all(|e| e["error"]["code"] == "batch_cancelled"),
        "{errors:?}"
    );
}

#[tokio::test]
async fn a_worker_killed_while_polling_is_replaced_and_submits_no_second_batch() {
    let sim = sim(60).await;
    let s = with(settings(), "openai", sim.base_url());
    let idle = observe(s.clone()).await;
    let mut child = spawn_process(
        env!("CARGO_BIN_EXE_batch-worker"),
        &idle,
        &[
            ("OPENAI_API_KEY", "sk-test-key".into()),
            ("OPENAI_BASE_URL", sim.base_url()),
        ],
    );
    let (job, a) = idle.submit(owner(), &lines(10, "gpt-4o-mini")).await;
    loop {
        if count(&sim, "openai_batch_get") >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(count(&sim, "openai_batch_create"), 1);
    let w = start(s).await;
    let events = w.events(&a, "complete").await;
    assert!(
        of(&events, "text_completed").is_some(),
        "{:?}",
        kinds(&events)
    );
    let job = w.job(&job).await;
    assert_eq!(job.state(), Status::Completed);
    assert_eq!(count(&sim, "openai_batch_create"), 1, "one provider batch");
    assert_eq!(count(&sim, "openai_file_upload"), 1);
    let out = w.file_lines(&job, job.output_file_id.as_deref()).await;
    let expected: Vec<String> = {
        let mut v: Vec<String> = (1..=10).map(|i| format!("line-{i}")).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&out), expected);
}

#[tokio::test]
async fn a_batch_the_provider_refuses_fails_once_and_never_quotes_the_key() {
    let sim = sim(2).await;
    let w = start(with(settings(), "openai", sim.base_url())).await;
    sim.push_script(provider_sim::Behaviour::Refused {
        status: 401,
        message: "Incorrect API key provided: sk-test-key".into(),
    });
    let (job, a) = w.submit(owner(), &lines(3, "gpt-4o-mini")).await;
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    let error = of(&events, "error").expect("an error event");
    assert_eq!(error["code"], "upstream_misconfigured");
    assert!(!error.to_string().contains("sk-test-key"), "{error}");
    let job = w.job(&job).await;
    assert_eq!(job.state(), Status::Failed);
    assert_eq!(count(&sim, "openai_batch_create"), 1, "not retried");
}
