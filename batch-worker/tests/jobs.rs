//! Batch jobs run line by line (the sequential path) against real Redis, PostgreSQL and local
//! storage: the offline `dummy` with no key, an OpenAI-compatible provider without a batch API
//! (through provider-sim), a refused input file, cancel, the completion window, the lease, a
//! worker killed with SIGKILL, and the sweeper.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::batch::{Status, store};
use provider_sim::{Behaviour, SimConfig, Simulator};
use serde_json::Value;
use support::*;

/// How many chat requests the simulator got whose prompt names `custom_id`.
fn asked(sim: &Simulator) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in sim.requests() {
        let body = r.body.to_string();
        if let Some(start) = body.find("request line-") {
            let rest = &body[start + "request ".len()..];
            let id = rest.split(' ').next().unwrap_or_default().to_owned();
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

fn ids(lines: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

async fn slow_sim(delay_ms: u64) -> Simulator {
    Simulator::start(SimConfig {
        first_token_delay: Duration::from_millis(delay_ms),
        chunks: 2,
        chunk_interval: Duration::ZERO,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_dummy_batch_with_no_key_is_answered_line_by_line() {
    let w = start(settings()).await;
    let (job, a) = w.submit(owner(), &lines(12, "dummy")).await;
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    let done = of(&events, "text_completed").expect("text_completed");
    assert_eq!(done["data"]["batch"]["status"], "completed");
    let progress: Vec<&Value> = events
        .iter()
        .filter(|e| e.kind == "progress")
        .map(|e| &e.event["data"])
        .collect();
    assert!(!progress.is_empty());
    assert!(
        progress.iter().all(|p| p["requests_total"] == 12),
        "{progress:?}"
    );
    let job = w.job(&job).await;
    assert_eq!(job.state(), Status::Completed);
    assert_eq!((job.total, job.completed, job.failed), (12, 12, 0));
    assert_eq!(job.mode.as_deref(), Some("sequential"));
    assert!(job.error_file_id.is_none());
    let out = w.file_lines(&job, job.output_file_id.as_deref()).await;
    let expected: Vec<String> = {
        let mut v: Vec<String> = (1..=12).map(|i| format!("line-{i}")).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&out), expected);
    for l in &out {
        assert_eq!(l["response"]["status_code"], 200);
        let body = &l["response"]["body"];
        assert_eq!(body["object"], "chat.completion");
        assert!(
            !body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }
    assert!(job.usage.clone().unwrap()["total_tokens"].as_u64().unwrap() > 0);
    assert!(
        w.journaled(&job).await.is_empty(),
        "the journal is emptied into the files"
    );
}

#[tokio::test]
async fn a_provider_without_a_batch_api_answers_each_line_and_failures_go_to_the_error_file() {
    let sim = slow_sim(0).await;
    let w = start(with(settings(), "groq", sim.base_url())).await;
    // The first request the provider sees is refused (400); the others are answered.
    let (job, a) = w
        .record(owner(), &(lines(3, "llama-3-3-70b").join("\n") + "\n"))
        .await;
    sim.push_script(Behaviour::Refused {
        status: 400,
        message: "this request is refused".into(),
    });
    w.bus.publish(&a).await.unwrap();
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    let job = w.job(&job).await;
    assert_eq!(job.state(), Status::Completed);
    assert_eq!(job.provider.as_deref(), Some("groq"));
    assert_eq!(job.total, 3);
    assert_eq!(job.completed + job.failed, 3);
    assert_eq!(job.failed, 1, "one scripted refusal");
    let errors = w.file_lines(&job, job.error_file_id.as_deref()).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["response"]["status_code"], 400);
    let out = w.file_lines(&job, job.output_file_id.as_deref()).await;
    assert_eq!(out.len(), 2);
}

#[tokio::test]
async fn a_bad_file_fails_the_job_with_line_numbers_and_runs_nothing() {
    let w = start(settings()).await;
    let mut input = lines(4, "dummy");
    input[1] = "{not json".into();
    input[3] = line("line-1", "dummy", "again");
    let (job, a) = w.submit(owner(), &input).await;
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    let error = of(&events, "error").expect("an error event");
    assert_eq!(error["stage"], "validation");
    assert_eq!(error["code"], "invalid_batch_file");
    let job = w.job(&job).await;
    assert_eq!(job.state(), Status::Failed);
    let errors = job.to_openai()["errors"]["data"].clone();
    let found: Vec<(i64, String)> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_i64().unwrap(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (2, "invalid_json_line".into()),
            (4, "duplicate_custom_id".into())
        ]
    );
    assert!(job.output_file_id.is_none());
}

#[tokio::test]
async fn an_action_of_another_tenant_cannot_run_a_job() {
    let w = start(settings()).await;
    let (_job, mut a) = w.record(owner(), &(lines(1, "dummy").join("\n"))).await;
    a.tenant_id = uuid::Uuid::now_v7();
    w.bus.publish(&a).await.unwrap();
    let events = w.events(&a, "complete").await;
    assert_eq!(of(&events, "error").unwrap()["code"], "not_found");
}

#[tokio::test]
async fn cancel_stops_the_running_lines_and_keeps_the_finished_ones() {
    let sim = slow_sim(300).await;
    let mut s = with(settings(), "groq", sim.base_url());
    s.batch.concurrency = 4;
    let w = start(s).await;
    let (job, a) = w.submit(owner(), &lines(40, "llama-3-3-70b")).await;
    // Wait until some lines have finished.
    loop {
        if w.journaled(&job).await.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.bus.request_cancel(a.task_id).await.unwrap();
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    let asked_at_end = sim.requests().len();
    let job = w.job(&job).await;
    assert_eq!(job.state(), Status::Cancelled);
    let out = w.file_lines(&job, job.output_file_id.as_deref()).await;
    let errors = w.file_lines(&job, job.error_file_id.as_deref()).await;
    assert!(out.len() >= 4, "finished lines stay: {}", out.len());
    assert_eq!(out.len() + errors.len(), 40, "every line is accounted for");
    assert!(
        errors
            .iter()
            .all(|e| e["error"]["code"] == "batch_cancelled")
    );
    assert!(
        asked_at_end < 40,
        "the run stopped: {asked_at_end} requests"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sim.requests().len(),
        asked_at_end,
        "no line started after the cancel"
    );
}

#[tokio::test]
async fn a_job_past_its_window_ends_expired_with_what_finished() {
    let sim = slow_sim(200).await;
    let mut s = with(settings(), "groq", sim.base_url());
    s.batch.concurrency = 2;
    let w = start(s).await;
    let (job, a) = w
        .record(owner(), &(lines(30, "llama-3-3-70b").join("\n")))
        .await;
    sqlx::query("UPDATE batch_jobs SET expires_at = now() + interval '1 second' WHERE id = $1")
        .bind(&job.id)
        .execute(&w.db)
        .await
        .unwrap();
    w.bus.publish(&a).await.unwrap();
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    let job = w.job(&job).await;
    assert_eq!(job.state(), Status::Expired);
    let errors = w.file_lines(&job, job.error_file_id.as_deref()).await;
    assert!(!errors.is_empty());
    assert!(errors.iter().all(|e| e["error"]["code"] == "batch_expired"));
    assert_eq!(job.completed + job.failed, 30);
}

#[tokio::test]
async fn two_replicas_never_run_one_job_at_once() {
    let sim = slow_sim(30).await;
    let mut s = with(settings(), "groq", sim.base_url());
    s.batch.concurrency = 4;
    let w = start(s.clone()).await;
    let _second = start(s).await;
    let (job, a) = w
        .record(owner(), &(lines(20, "llama-3-3-70b").join("\n")))
        .await;
    // The same job asked to run twice (a producer retried): both replicas get an action.
    let mut again = a.clone();
    again.action_id = uuid::Uuid::now_v7();
    w.bus.publish(&a).await.unwrap();
    w.bus.publish(&again).await.unwrap();
    let events = w.events(&a, "complete").await;
    assert_ends_once(&events);
    let job = w.job(&job).await;
    assert_eq!(job.state(), Status::Completed);
    let counts = asked(&sim);
    assert_eq!(counts.len(), 20);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

#[tokio::test]
async fn a_killed_worker_is_replaced_and_no_finished_line_runs_twice() {
    let sim = slow_sim(150).await;
    let mut s = with(settings(), "groq", sim.base_url());
    s.batch.concurrency = 4;
    let idle = observe(s.clone()).await;
    let mut child = spawn_process(
        env!("CARGO_BIN_EXE_batch-worker"),
        &idle,
        &[
            ("GROQ_API_KEY", "sk-test-key".into()),
            ("GROQ_BASE_URL", sim.base_url()),
        ],
    );
    let (job, a) = idle.submit(owner(), &lines(40, "llama-3-3-70b")).await;
    loop {
        if idle.journaled(&job).await.len() >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before: HashSet<i32> = idle.journaled(&job).await.into_iter().collect();
    assert!(before.len() < 40, "killed mid-job");
    let w = start(s).await;
    let events = w.events(&a, "complete").await;
    assert!(
        of(&events, "text_completed").is_some(),
        "{:?}",
        kinds(&events)
    );
    let job = w.job(&job).await;
    assert_eq!(job.state(), Status::Completed);
    let out = w.file_lines(&job, job.output_file_id.as_deref()).await;
    let expected: HashSet<String> = (1..=40).map(|i| format!("line-{i}")).collect();
    assert_eq!(out.len(), 40, "one answer per line");
    assert_eq!(ids(&out).into_iter().collect::<HashSet<_>>(), expected);
    let counts = asked(&sim);
    for n in &before {
        assert_eq!(
            counts[&format!("line-{n}")],
            1,
            "line {n} finished before the kill ran again"
        );
    }
    // Only lines in flight at the kill may have been asked twice.
    let twice = counts.values().filter(|n| **n > 1).count();
    assert!(
        twice <= 4,
        "{twice} lines asked twice; at most the 4 in flight"
    );
}

#[tokio::test]
async fn the_sweeper_removes_jobs_and_files_past_their_retention() {
    let w = observe(settings()).await;
    let o = owner();
    let (job, _a) = w.record(o, &lines(1, "dummy").join("\n")).await;
    let input = store::file(&w.db, o, &job.input_file_id)
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE batch_jobs SET delete_at = now() - interval '1 second' WHERE id = $1")
        .bind(&job.id)
        .execute(&w.db)
        .await
        .unwrap();
    sqlx::query("UPDATE batch_files SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(&job.input_file_id)
        .execute(&w.db)
        .await
        .unwrap();
    let swept = batch_worker::sweeper::sweep(&w.db, &w.storage, &w.settings.batch)
        .await
        .unwrap();
    assert!(swept.jobs >= 1 && swept.files >= 1, "{swept:?}");
    assert!(store::job(&w.db, o, &job.id).await.unwrap().is_none());
    assert!(store::file(&w.db, o, &input.id).await.unwrap().is_none());
    assert!(matches!(
        w.storage.get(o.tenant_id, &input.storage_key).await,
        Err(common::storage::StorageError::NotFound)
    ));
}
