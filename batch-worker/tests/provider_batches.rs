//! The provider batch clients (OpenAI Batches, Anthropic Message Batches, Gemini Batch Mode)
//! against provider-sim speaking each API: a small job submitted once, polled to its end and its
//! results written as OpenAI-shaped output and error lines; a line failing at the provider; a
//! cancel mid-run; an earlier submission found again; a line that cannot be converted; a refused
//! key that never shows in the error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use batch_worker::output::Output;
use batch_worker::providers::anthropic::AnthropicBatches;
use batch_worker::providers::gemini::GeminiBatches;
use batch_worker::providers::openai::OpenAiBatches;
use batch_worker::providers::{BatchApi, Polled, Submitted};
use chrono::Utc;
use common::batch::Job;
use common::llm::{Candidate, DummySettings, ProviderAccess, Providers};
use common::models::ModelRegistry;
use common::provider::ProviderError;
use common::settings::Secret;
use provider_sim::{Behaviour, SimConfig, Simulator};
use serde_json::{Value, json};
use uuid::Uuid;

/// The key every client sends.
const KEY: &str = "sk-sim-batch-secret-0123456789";
/// What the simulator answers every request with (its default: five chunks of "tok ").
const TEXT: &str = "tok tok tok tok tok ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OpenAi,
    Anthropic,
    Gemini,
}

const KINDS: [Kind; 3] = [Kind::OpenAi, Kind::Anthropic, Kind::Gemini];

impl Kind {
    fn provider(self) -> &'static str {
        match self {
            Kind::OpenAi => "openai",
            Kind::Anthropic => "anthropic",
            Kind::Gemini => "gemini",
        }
    }

    /// A model of the provider with a batch API, by its registry name.
    fn model(self) -> &'static str {
        match self {
            Kind::OpenAi => "gpt-4o-mini",
            Kind::Anthropic => "claude-haiku-4-5",
            Kind::Gemini => "gemini-2-5-flash",
        }
    }

    /// The request log's name of a batch submission.
    fn create_format(self) -> &'static str {
        match self {
            Kind::OpenAi => "openai_batch_create",
            Kind::Anthropic => "anthropic_batch_create",
            Kind::Gemini => "gemini_batch_create",
        }
    }

    fn base(self, sim: &Simulator) -> String {
        match self {
            Kind::OpenAi => sim.base_url(),
            Kind::Anthropic | Kind::Gemini => sim.root_url(),
        }
    }

    /// A fresh client (as a new process would have) of the simulator, with `key`.
    fn api_with(self, sim: &Simulator, key: &str) -> Arc<dyn BatchApi> {
        let base = self.base(sim);
        let key = Secret::new(key);
        match self {
            Kind::OpenAi => Arc::new(OpenAiBatches::new(&base, key).unwrap()),
            Kind::Anthropic => Arc::new(AnthropicBatches::new(&base, key).unwrap()),
            Kind::Gemini => Arc::new(GeminiBatches::new(&base, key, 20 * 1024 * 1024).unwrap()),
        }
    }

    fn api(self, sim: &Simulator) -> Arc<dyn BatchApi> {
        self.api_with(sim, KEY)
    }

    /// The text provider's candidate for the model, on the simulator.
    fn candidate(self, sim: &Simulator) -> Candidate {
        let access = BTreeMap::from([(
            self.provider().to_owned(),
            ProviderAccess {
                api_key: Some(Secret::new(KEY)),
                base_url: Some(self.base(sim)),
            },
        )]);
        let providers = Providers::new(
            ModelRegistry::load(None).unwrap(),
            &access,
            DummySettings::default(),
        )
        .unwrap();
        let candidate = providers
            .plan(Some(self.model()))
            .unwrap()
            .candidates
            .remove(0);
        assert_eq!(candidate.provider_name, self.provider());
        candidate
    }
}

async fn sim() -> Simulator {
    Simulator::start(SimConfig::default()).await.unwrap()
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("provider-batches-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A job as the gateway records it, in progress.
fn new_job() -> Job {
    let now = Utc::now();
    Job {
        id: common::batch::new_batch_id(),
        tenant_id: Uuid::now_v7(),
        user_id: Some(Uuid::now_v7()),
        session_id: Uuid::now_v7(),
        task_id: Uuid::now_v7(),
        endpoint: common::batch::CHAT_ENDPOINT.to_owned(),
        input_file_id: common::batch::new_file_id(),
        completion_window: common::batch::COMPLETION_WINDOW.to_owned(),
        status: "in_progress".to_owned(),
        model: None,
        provider: None,
        mode: Some("provider".to_owned()),
        provider_batch_id: None,
        provider_file_id: None,
        output_file_id: None,
        error_file_id: None,
        total: 0,
        completed: 0,
        failed: 0,
        errors: None,
        metadata: None,
        usage: None,
        created_at: now,
        in_progress_at: Some(now),
        finalizing_at: None,
        completed_at: None,
        failed_at: None,
        expired_at: None,
        cancelling_at: None,
        cancelled_at: None,
        expires_at: now + chrono::Duration::hours(24),
        delete_at: now + chrono::Duration::days(30),
    }
}

/// An OpenAI batch line of `model` asking `prompt`.
fn line(custom_id: &str, model: &str, prompt: &str) -> Value {
    json!({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
           "body": {"model": model, "messages": [
               {"role": "system", "content": "Be brief."},
               {"role": "user", "content": prompt}],
               "max_tokens": 100, "temperature": 0.5}})
}

/// The job's spool file, as the driver writes it: one validated line each.
fn spool(dir: &Path, lines: &[Value]) -> PathBuf {
    let path = dir.join(format!("{}-input.jsonl", Uuid::now_v7().simple()));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// The three lines of the usual job: two answered (one with an id Anthropic would refuse), one
/// the simulator fails.
fn three(kind: Kind) -> Vec<Value> {
    let m = kind.model();
    vec![
        line("req-1", m, "Say hello."),
        line("doc.2 (second)", m, "Say hello again."),
        line("req-3", m, "Please fail_line now."),
    ]
}

async fn poll_to_end(api: &dyn BatchApi, batch_id: &str) -> Vec<Polled> {
    let mut seen = Vec::new();
    for _ in 0..20 {
        let p = api.poll(batch_id).await.unwrap();
        let ended = p.ended;
        seen.push(p);
        if ended {
            return seen;
        }
    }
    panic!("the batch never ended: {seen:?}");
}

/// The results of `batch_id` as the output and error files' lines.
async fn results(
    api: &dyn BatchApi,
    batch_id: &str,
    candidate: &Candidate,
    job: &Job,
    dir: &Path,
) -> (Vec<Value>, Vec<Value>) {
    let mut out = Output::create(dir.join("out"), job).await.unwrap();
    api.results(batch_id, candidate, &mut out).await.unwrap();
    let (ok, err) = out.flushed_paths().await.unwrap();
    let read = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    (read(ok), read(err))
}

fn ids(lines: &[Value]) -> Vec<&str> {
    let mut ids: Vec<&str> = lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// The simulator's requests of a format (`openai_batch_create`, …).
fn logged(sim: &Simulator, format: &str) -> Vec<provider_sim::RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| serde_json::to_value(r.format).unwrap() == format)
        .collect()
}

/// A success line carries the simulator's answer as an OpenAI chat completion.
fn assert_answered(line: &Value, kind: Kind) {
    assert!(line["error"].is_null(), "{line}");
    let response = &line["response"];
    assert_eq!(response["status_code"], 200, "{line}");
    assert!(
        response["request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{line}"
    );
    let body = &response["body"];
    assert_eq!(body["object"], "chat.completion", "{line}");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], TEXT, "{line}");
    assert_eq!(choice["finish_reason"], "stop", "{line}");
    let usage = &body["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{line}");
    assert_eq!(usage["completion_tokens"], 5, "{line}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap() + 5)
    );
    let upstream = match kind {
        Kind::Gemini => "gemini-2.5-flash",
        other => other.model(),
    };
    assert!(
        body["model"].as_str().unwrap().starts_with(upstream),
        "{line}"
    );
}

/// The request the provider got for the job: checked to be its own batch format, converted.
fn assert_wire_format(sim: &Simulator, kind: Kind, job: &Job) {
    let created = logged(sim, kind.create_format());
    assert_eq!(created.len(), 1, "exactly one batch submission");
    let body = &created[0].body;
    match kind {
        Kind::OpenAi => {
            assert_eq!(body["endpoint"], "/v1/chat/completions");
            assert_eq!(body["completion_window"], "24h");
            assert_eq!(body["metadata"]["batch_job_id"], job.id.as_str());
            let uploads = logged(sim, "openai_file_upload");
            assert_eq!(uploads.len(), 1);
            assert_eq!(uploads[0].body["purpose"], "batch");
            assert_eq!(
                uploads[0].body["file"]["filename"],
                format!("{}.jsonl", job.id)
            );
            assert_eq!(uploads[0].batch_requests, 3);
        }
        Kind::Anthropic => {
            let requests = body["requests"].as_array().unwrap();
            assert_eq!(requests.len(), 3);
            let params = &requests[0]["params"];
            assert_eq!(params["model"], "claude-haiku-4-5");
            assert_eq!(params["system"], "Be brief.");
            assert_eq!(params["max_tokens"], 100);
            assert!(params.get("stream").is_none(), "{params}");
            // Anthropic refuses the id as it is: it travels encoded.
            let sent: Vec<&str> = requests
                .iter()
                .map(|r| r["custom_id"].as_str().unwrap())
                .collect();
            assert_eq!(sent[0], "req-1");
            assert!(sent[1].starts_with("b64-"), "{sent:?}");
        }
        Kind::Gemini => {
            assert_eq!(
                created[0].path,
                "/v1beta/models/gemini-2.5-flash:batchGenerateContent"
            );
            let batch = &body["batch"];
            assert_eq!(batch["display_name"], job.id.as_str());
            let requests = batch["input_config"]["requests"]["requests"]
                .as_array()
                .unwrap();
            assert_eq!(requests.len(), 3);
            assert_eq!(requests[1]["metadata"]["key"], "doc.2 (second)");
            let request = &requests[0]["request"];
            assert_eq!(
                request["systemInstruction"]["parts"][0]["text"],
                "Be brief."
            );
            assert_eq!(request["generationConfig"]["maxOutputTokens"], 100);
        }
    }
    assert!(
        created[0]
            .authorization
            .as_deref()
            .is_some_and(|a| a.contains(KEY)),
        "the key goes with the request"
    );
}

async fn answers_every_line(kind: Kind) {
    let sim = sim().await;
    let dir = Scratch::new();
    let job = new_job();
    let api = kind.api(&sim);
    let candidate = kind.candidate(&sim);
    let path = spool(&dir.0, &three(kind));
    let submitted = api.submit(&job, &candidate, &path).await.unwrap();
    assert!(!submitted.batch_id.is_empty());
    assert_eq!(submitted.file_id.is_some(), kind == Kind::OpenAi);
    assert!(path.exists(), "the job's spool file is the driver's");
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(
        leftovers.len(),
        1,
        "the converted body is removed: {leftovers:?}"
    );
    assert_wire_format(&sim, kind, &job);

    let polls = poll_to_end(api.as_ref(), &submitted.batch_id).await;
    let last = polls.last().unwrap();
    assert_eq!((last.completed, last.failed), (2, 1), "{polls:?}");
    assert!(polls.len() >= 2 && !polls[0].ended, "{polls:?}");
    let expected = match kind {
        Kind::OpenAi => "completed",
        Kind::Anthropic => "ended",
        Kind::Gemini => "BATCH_STATE_SUCCEEDED",
    };
    assert_eq!(last.status, expected);

    let (ok, err) = results(api.as_ref(), &submitted.batch_id, &candidate, &job, &dir.0).await;
    assert_eq!(ids(&ok), ["doc.2 (second)", "req-1"]);
    for l in &ok {
        assert_answered(l, kind);
    }
    assert_eq!(ids(&err), ["req-3"]);
    let failure = &err[0];
    assert_eq!(failure["response"]["status_code"], 400, "{failure}");
    let error = &failure["response"]["body"]["error"];
    assert!(
        error["message"].as_str().unwrap().contains("fail_line"),
        "{failure}"
    );
    // Exactly one submission, whatever was polled and read.
    assert_eq!(logged(&sim, kind.create_format()).len(), 1);
}

#[tokio::test]
async fn openai_batch_answers_every_line() {
    answers_every_line(Kind::OpenAi).await;
}

#[tokio::test]
async fn anthropic_batch_answers_every_line() {
    answers_every_line(Kind::Anthropic).await;
}

#[tokio::test]
async fn gemini_batch_answers_every_line() {
    answers_every_line(Kind::Gemini).await;
}

/// A batch that would run for ever is cancelled after its first poll finished one line: it ends,
/// the finished line keeps its answer and the others are reported `batch_cancelled`.
async fn cancel_mid_run(kind: Kind) {
    let sim = sim().await;
    let dir = Scratch::new();
    let job = new_job();
    let api = kind.api(&sim);
    let candidate = kind.candidate(&sim);
    let m = kind.model();
    let lines: Vec<Value> = ["x1", "x2", "x3"]
        .iter()
        .map(|id| line(id, m, "Say hello."))
        .collect();
    sim.push_script(Behaviour::JobStuck);
    let submitted = api
        .submit(&job, &candidate, &spool(&dir.0, &lines))
        .await
        .unwrap();
    let first = api.poll(&submitted.batch_id).await.unwrap();
    assert!(!first.ended);
    api.cancel(&submitted.batch_id).await.unwrap();
    let polls = poll_to_end(api.as_ref(), &submitted.batch_id).await;
    let status = &polls.last().unwrap().status;
    let expected = match kind {
        Kind::OpenAi => "cancelled",
        Kind::Anthropic => "ended",
        Kind::Gemini => "BATCH_STATE_CANCELLED",
    };
    assert_eq!(status, expected);
    assert_eq!(logged(&sim, kind.create_format()).len(), 1);

    // OpenAI's unfinished lines are read from its input file: a client that did not submit the
    // batch (a new process) reports them too.
    let reader = if kind == Kind::OpenAi {
        kind.api(&sim)
    } else {
        api
    };
    let (ok, err) = results(
        reader.as_ref(),
        &submitted.batch_id,
        &candidate,
        &job,
        &dir.0,
    )
    .await;
    let answered = match kind {
        // Gemini's cancelled batch keeps no output.
        Kind::Gemini => 0,
        Kind::OpenAi | Kind::Anthropic => 1,
    };
    assert_eq!(ok.len(), answered, "{ok:?}");
    assert_eq!(ok.len() + err.len(), 3, "every line once: {ok:?} {err:?}");
    let mut all = ids(&ok);
    all.extend(ids(&err));
    all.sort_unstable();
    assert_eq!(all, ["x1", "x2", "x3"]);
    if let Some(l) = ok.first() {
        assert_eq!(l["custom_id"], "x1", "lines finish in order");
        assert_answered(l, kind);
    }
    for l in &err {
        assert!(l["response"].is_null(), "{l}");
        assert_eq!(l["error"]["code"], "batch_cancelled", "{l}");
    }
}

#[tokio::test]
async fn openai_cancel_mid_run_reports_the_unfinished_lines() {
    cancel_mid_run(Kind::OpenAi).await;
}

#[tokio::test]
async fn anthropic_cancel_mid_run_reports_the_unfinished_lines() {
    cancel_mid_run(Kind::Anthropic).await;
}

#[tokio::test]
async fn gemini_cancel_mid_run_reports_the_unfinished_lines() {
    cancel_mid_run(Kind::Gemini).await;
}

/// A new process finds the batch an earlier one submitted for the job (OpenAI by its metadata,
/// Gemini by its display name) among others; Anthropic's batches cannot be found.
#[tokio::test]
async fn an_earlier_submission_is_found_by_the_job_id() {
    for kind in KINDS {
        let sim = sim().await;
        let dir = Scratch::new();
        let candidate = kind.candidate(&sim);
        let api = kind.api(&sim);
        let (mine, other, never) = (new_job(), new_job(), new_job());
        let submitted = api
            .submit(&mine, &candidate, &spool(&dir.0, &three(kind)))
            .await
            .unwrap();
        api.submit(&other, &candidate, &spool(&dir.0, &three(kind)))
            .await
            .unwrap();
        let fresh = kind.api(&sim);
        let found = fresh.find(&mine).await.unwrap();
        match kind {
            Kind::OpenAi | Kind::Gemini => {
                let Some(Submitted { batch_id, file_id }) = found else {
                    panic!("{kind:?}: the batch was not found");
                };
                assert_eq!(batch_id, submitted.batch_id, "{kind:?}");
                assert_eq!(file_id, submitted.file_id, "{kind:?}");
            }
            Kind::Anthropic => assert_eq!(found, None),
        }
        assert_eq!(fresh.find(&never).await.unwrap(), None, "{kind:?}");
        // Finding submits nothing.
        assert_eq!(logged(&sim, kind.create_format()).len(), 2, "{kind:?}");
    }
}

/// A line the provider's format cannot carry (a tool without a name) never goes to the provider
/// and lands in the error file as the sequential run writes it; a job of only such lines
/// submits nothing and ends at once.
#[tokio::test]
async fn a_line_that_cannot_be_converted_is_refused_without_a_submission() {
    for kind in KINDS {
        let sim = sim().await;
        let dir = Scratch::new();
        let job = new_job();
        let api = kind.api(&sim);
        let candidate = kind.candidate(&sim);
        let mut bad = line("bad", kind.model(), "Call a tool.");
        bad["body"]["tools"] =
            json!([{"type": "function", "function": {"description": "no name"}}]);
        let good = line("good", kind.model(), "Say hello.");
        let submitted = api
            .submit(&job, &candidate, &spool(&dir.0, &[good, bad.clone()]))
            .await
            .unwrap();
        let created = logged(&sim, kind.create_format());
        assert_eq!(
            created[0].batch_requests, 1,
            "{kind:?}: only the good line is sent"
        );
        poll_to_end(api.as_ref(), &submitted.batch_id).await;
        let (ok, err) = results(api.as_ref(), &submitted.batch_id, &candidate, &job, &dir.0).await;
        assert_eq!(ids(&ok), ["good"], "{kind:?}");
        assert_eq!(ids(&err), ["bad"], "{kind:?}");
        assert_eq!(err[0]["response"]["status_code"], 400, "{kind:?}");
        assert_eq!(
            err[0]["response"]["body"]["error"]["code"],
            "invalid_request"
        );

        let alone = new_job();
        let submitted = api
            .submit(&alone, &candidate, &spool(&dir.0, &[bad]))
            .await
            .unwrap();
        assert_eq!(
            logged(&sim, kind.create_format()).len(),
            1,
            "{kind:?}: nothing sent"
        );
        let polled = api.poll(&submitted.batch_id).await.unwrap();
        assert!(polled.ended && polled.failed == 1, "{polled:?}");
        api.cancel(&submitted.batch_id).await.unwrap();
        let (ok, err) = results(
            api.as_ref(),
            &submitted.batch_id,
            &candidate,
            &alone,
            &dir.0,
        )
        .await;
        assert!(ok.is_empty());
        assert_eq!(ids(&err), ["bad"], "{kind:?}");
    }
}

/// A refused key is the operator's problem: `Misconfigured`, and the key (which the provider
/// quotes) is nowhere in the error. A 429 or 5xx is returned as it is, for the driver to retry.
#[tokio::test]
async fn a_refused_key_is_misconfigured_and_never_quoted() {
    for kind in KINDS {
        let sim = sim().await;
        let dir = Scratch::new();
        let api = kind.api(&sim);
        let candidate = kind.candidate(&sim);
        sim.push_script(Behaviour::Refused {
            status: 401,
            message: format!("Incorrect API key provided: {KEY}."),
        });
        let e = api
            .submit(&new_job(), &candidate, &spool(&dir.0, &three(kind)))
            .await
            .unwrap_err();
        assert_eq!(e, ProviderError::Misconfigured { status: 401 }, "{kind:?}");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(KEY) && !shown.contains("sk-sim"), "{shown}");
        if kind == Kind::OpenAi {
            // The upload the refused batch would have used is deleted.
            assert_eq!(logged(&sim, "openai_file_delete").len(), 1);
        }

        sim.push_script(Behaviour::RateLimited {
            retry_after_secs: 3,
        });
        let e = api
            .submit(&new_job(), &candidate, &spool(&dir.0, &three(kind)))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            },
            "{kind:?}"
        );
        sim.push_script(Behaviour::ServerError);
        let e = api
            .submit(&new_job(), &candidate, &spool(&dir.0, &three(kind)))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ProviderError::Upstream { .. }),
            "{kind:?}: {e:?}"
        );
        assert!(e.retryable());
    }
}

/// Polling or reading a batch the provider does not know is the provider's answer, not a panic
/// or an empty result.
#[tokio::test]
async fn an_unknown_batch_is_an_error() {
    for kind in KINDS {
        let sim = sim().await;
        let dir = Scratch::new();
        let api = kind.api(&sim);
        let candidate = kind.candidate(&sim);
        let id = match kind {
            Kind::OpenAi => "batch_nope",
            Kind::Anthropic => "msgbatch_nope",
            Kind::Gemini => "batches/nope",
        };
        let e = api.poll(id).await.unwrap_err();
        assert!(
            matches!(e, ProviderError::Misconfigured { status: 404 }),
            "{kind:?}: {e:?}"
        );
        let mut out = Output::create(dir.0.join("out"), &new_job()).await.unwrap();
        assert!(
            api.results(id, &candidate, &mut out).await.is_err(),
            "{kind:?}"
        );
    }
}

/// Gemini takes jobs up to its inline limit; the others have none.
#[tokio::test]
async fn only_gemini_limits_the_input() {
    let sim = sim().await;
    assert_eq!(Kind::OpenAi.api(&sim).max_input_bytes(), None);
    assert_eq!(Kind::Anthropic.api(&sim).max_input_bytes(), None);
    let gemini = GeminiBatches::new(&sim.root_url(), Secret::new(KEY), 1234).unwrap();
    assert_eq!(gemini.max_input_bytes(), Some(1234));
}
