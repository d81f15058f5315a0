//! The gateway's batch APIs on a real Redis, PostgreSQL and local storage: OpenAI's `/v1/files`
//! (upload, list, read, content, delete, the size cap) and `/v1/batches` (create, publish the
//! `batch.job.run` action, list, cancel), the service's `/api/v1/batch…` (its checks, 202, the
//! results of an ended job), every route answering 404 for another tenant's or user's ids, and
//! a job run to its end by a batch-worker with the offline `dummy` model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use support::{Opts, System, WAIT};
use uuid::Uuid;

/// One input line calling `/v1/chat/completions`.
fn line(custom_id: &str, model: &str, text: &str) -> String {
    json!({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}]}})
    .to_string()
}

/// An input file of `n` lines for `model`.
fn input(n: usize, model: &str) -> Vec<u8> {
    let mut text = (1..=n)
        .map(|i| line(&format!("line-{i}"), model, &format!("question {i}")))
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
    text.into_bytes()
}

async fn send(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(system: &System, token: &str, path: &str) -> (u16, Value) {
    send(
        reqwest::Client::new()
            .get(format!("{}{path}", system.http))
            .bearer_auth(token),
    )
    .await
}

async fn delete(system: &System, token: &str, path: &str) -> (u16, Value) {
    send(
        reqwest::Client::new()
            .delete(format!("{}{path}", system.http))
            .bearer_auth(token),
    )
    .await
}

/// `POST /v1/files` with `bytes` as `input.jsonl` and `purpose`.
async fn upload(system: &System, token: &str, bytes: Vec<u8>, purpose: &str) -> (u16, Value) {
    let form = Form::new()
        .text("purpose", purpose.to_owned())
        .part("file", Part::bytes(bytes).file_name("input.jsonl"));
    send(
        reqwest::Client::new()
            .post(format!("{}/v1/files", system.http))
            .bearer_auth(token)
            .multipart(form),
    )
    .await
}

/// Uploads an input file and creates a batch over it; the Batch object.
async fn create_batch(system: &System, token: &str, bytes: Vec<u8>) -> Value {
    let (status, file) = upload(system, token, bytes, "batch").await;
    assert_eq!(status, 200, "{file}");
    let (status, batch) = system
        .post(
            token,
            "/v1/batches",
            json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions",
                "completion_window": "24h", "metadata": {"purpose": "test"}}),
        )
        .await;
    assert_eq!(status, 200, "{batch}");
    batch
}

/// The error's `param` and `message` of an OpenAI error body.
fn openai_error(body: &Value) -> (&str, &str) {
    (
        body["error"]["param"].as_str().unwrap_or_default(),
        body["error"]["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn files_are_uploaded_listed_read_and_deleted() {
    let system = System::start(Opts::new().no_chat().files()).await;
    let token = system.token(Uuid::now_v7());
    let bytes = input(3, "dummy");
    let (status, file) = upload(&system, &token, bytes.clone(), "batch").await;
    assert_eq!(status, 200, "{file}");
    let id = file["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("file-"), "{id}");
    assert_eq!(file["object"], "file");
    assert_eq!(file["purpose"], "batch");
    assert_eq!(file["filename"], "input.jsonl");
    assert_eq!(file["bytes"], bytes.len());
    assert_eq!(file["status"], "processed");
    // Kept for the retention (29 days by default).
    let created = file["created_at"].as_i64().unwrap();
    let expires = file["expires_at"].as_i64().unwrap();
    assert!((expires - created - 29 * 86_400).abs() < 5, "{file}");

    let (_, second) = upload(&system, &token, input(1, "dummy"), "batch").await;
    let (status, list) = get(&system, &token, "/v1/files").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [second["id"].as_str().unwrap(), id.as_str()],
        "newest first"
    );
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], second["id"]);
    assert_eq!(list["last_id"], id.as_str());
    // A cursor page.
    let (_, page) = get(&system, &token, "/v1/files?limit=1").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["has_more"], true);
    let (_, next) = get(
        &system,
        &token,
        &format!(
            "/v1/files?limit=1&after={}",
            page["last_id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(next["data"][0]["id"], id.as_str());
    assert_eq!(next["has_more"], false);
    let (_, outputs) = get(&system, &token, "/v1/files?purpose=batch_output").await;
    assert_eq!(outputs["data"], json!([]));
    let (status, body) = get(&system, &token, "/v1/files?limit=10001").await;
    assert_eq!((status, openai_error(&body).0), (400, "limit"));

    let (status, read) = get(&system, &token, &format!("/v1/files/{id}")).await;
    assert_eq!((status, &read), (200, &file));
    let content = reqwest::Client::new()
        .get(format!("{}/v1/files/{id}/content", system.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), 200);
    assert_eq!(content.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let (status, deleted) = delete(&system, &token, &format!("/v1/files/{id}")).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted,
        json!({"id": id, "object": "file", "deleted": true})
    );
    let (status, body) = get(&system, &token, &format!("/v1/files/{id}")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let (status, _) = get(&system, &token, &format!("/v1/files/{id}/content")).await;
    assert_eq!(status, 404);
    let (status, _) = delete(&system, &token, &format!("/v1/files/{id}")).await;
    assert_eq!(status, 404);
    let (_, list) = get(&system, &token, "/v1/files").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    system.stop().await;
}

#[tokio::test]
async fn a_file_over_the_cap_is_refused_and_leaves_nothing_behind() {
    let mut opts = Opts::new().no_chat().files();
    let spool = std::env::temp_dir().join(format!("gateway-spool-{}", Uuid::now_v7().simple()));
    opts.gateway.batch.max_file_bytes = 1000;
    opts.gateway.batch.spool_dir = Some(spool.display().to_string());
    let system = System::start(opts).await;
    let token = system.token(Uuid::now_v7());
    let (status, body) = upload(&system, &token, vec![b'x'; 1001], "batch").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(openai_error(&body).0, "file");
    // Far over the cap: the body limit stops it before it is read.
    let (status, _) = upload(&system, &token, vec![b'x'; 3 << 20], "batch").await;
    assert_eq!(status, 413);
    let (status, _) = upload(&system, &token, vec![b'x'; 1000], "batch").await;
    assert_eq!(status, 200);
    let (_, list) = get(&system, &token, "/v1/files").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().flatten().collect();
    assert!(left.is_empty(), "spool files left: {left:?}");
    let _ = std::fs::remove_dir_all(&spool);
    system.stop().await;
}

#[tokio::test]
async fn uploads_and_batches_are_refused_naming_the_parameter() {
    let system = System::start(Opts::new().no_chat().files()).await;
    let token = system.token(Uuid::now_v7());
    let (status, body) = upload(&system, &token, input(1, "dummy"), "fine-tune").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(openai_error(&body).0, "purpose");
    let no_file = Form::new().text("purpose", "batch");
    let (status, body) = send(
        reqwest::Client::new()
            .post(format!("{}/v1/files", system.http))
            .bearer_auth(&token)
            .multipart(no_file),
    )
    .await;
    assert_eq!((status, openai_error(&body).0), (400, "file"), "{body}");
    let (status, body) = upload(&system, &token, Vec::new(), "batch").await;
    assert_eq!((status, openai_error(&body).0), (400, "file"), "{body}");

    let (_, file) = upload(&system, &token, input(1, "dummy"), "batch").await;
    let good = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions",
        "completion_window": "24h"});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    for (body, param, status, says) in [
        (
            with("endpoint", json!("/v1/embeddings")),
            "endpoint",
            400,
            "/v1/chat/completions",
        ),
        (
            with("completion_window", json!("48h")),
            "completion_window",
            400,
            "24h",
        ),
        (with("metadata", Value::Object(many)), "metadata", 400, "16"),
        (
            with("metadata", json!({"k": "v".repeat(513)})),
            "metadata",
            400,
            "512",
        ),
        (
            with("input_file_id", json!("file-0000nope")),
            "input_file_id",
            404,
            "No such File object",
        ),
        (
            json!({"endpoint": "/v1/chat/completions", "completion_window": "24h"}),
            "input_file_id",
            400,
            "Missing required parameter",
        ),
    ] {
        let (s, answer) = system.post(&token, "/v1/batches", body.clone()).await;
        let (p, message) = openai_error(&answer);
        assert_eq!((s, p), (status, param), "{body} -> {answer}");
        assert!(message.contains(says), "{message}");
    }
    let (_, list) = get(&system, &token, "/v1/batches").await;
    assert_eq!(list["data"], json!([]), "nothing was created");
    system.stop().await;
}

#[tokio::test]
async fn creating_a_batch_publishes_its_run_action() {
    let system = System::start(Opts::new().no_chat().files()).await;
    let tenant = Uuid::now_v7();
    let token = system.token(tenant);
    let batch = create_batch(&system, &token, input(2, "dummy")).await;
    let id = batch["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("batch_"), "{id}");
    assert_eq!(batch["object"], "batch");
    assert_eq!(batch["status"], "validating");
    assert_eq!(batch["endpoint"], "/v1/chat/completions");
    assert_eq!(batch["completion_window"], "24h");
    assert_eq!(batch["metadata"], json!({"purpose": "test"}));
    assert_eq!(
        batch["request_counts"],
        json!({"total": 0, "completed": 0, "failed": 0})
    );
    let window = batch["expires_at"].as_i64().unwrap() - batch["created_at"].as_i64().unwrap();
    assert!((window - 86_400).abs() < 5, "{batch}");

    // The action, on the batch service's stream, as `redis-cli XRANGE` shows it.
    let mut redis = system
        .redis()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stream = system.core.names().action_stream("batch");
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(entries.ids.len(), 1, "{stream}");
    let entry = &entries.ids[0];
    let field = |k: &str| -> String { entry.get(k).unwrap() };
    assert_eq!(field("action_type"), "batch.job.run");
    assert_eq!(field("tenant_id"), tenant.to_string());
    let action: Value = serde_json::from_str(&field("payload")).unwrap();
    assert_eq!(action["data"], json!({"batch_id": id}));
    assert_eq!(action["origin_service"], "gateway-service");
    // The job's task and session are the action's.
    let (status, job) = get(&system, &token, &format!("/api/v1/batch/{id}")).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["data"]["task_id"], action["task_id"]);
    assert_eq!(job["data"]["session_id"], action["session_id"]);
    assert_eq!(job["data"]["task_id"].as_str().unwrap(), field("task_id"));

    let (status, read) = get(&system, &token, &format!("/v1/batches/{id}")).await;
    assert_eq!((status, &read["id"]), (200, &json!(id)));
    let (_, list) = get(&system, &token, "/v1/batches").await;
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert_eq!(list["has_more"], false);
    let (status, body) = get(&system, &token, "/v1/batches?limit=101").await;
    assert_eq!((status, openai_error(&body).0), (400, "limit"));
    system.stop().await;
}

/// Ends a job as a worker would have (no worker runs in these tests).
async fn end_job(system: &System, id: &str, status: &str) {
    let db = sqlx::PgPool::connect(system.core.database_url.expose())
        .await
        .unwrap();
    sqlx::query("UPDATE batch_jobs SET status = $2, completed_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
}

#[tokio::test]
async fn cancelling_a_queued_batch_marks_it_and_raises_its_cancel_flag() {
    let system = System::start(Opts::new().no_chat().files()).await;
    let token = system.token(Uuid::now_v7());
    let batch = create_batch(&system, &token, input(2, "dummy")).await;
    let id = batch["id"].as_str().unwrap().to_owned();
    let (status, cancelled) = system
        .post(&token, &format!("/v1/batches/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelling");
    assert!(cancelled["cancelling_at"].is_i64(), "{cancelled}");
    let (_, job) = get(&system, &token, &format!("/api/v1/batch/{id}")).await;
    let task_id = Uuid::parse_str(job["data"]["task_id"].as_str().unwrap()).unwrap();
    let mut redis = system
        .redis()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let flag: Option<String> = redis::cmd("GET")
        .arg(system.core.names().cancel_flag(task_id))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(flag.is_some(), "no cancel flag for the job's task");
    // Asking again is the same answer; the seed API's cancel is 202 with the job.
    let (status, again) = system
        .post(&token, &format!("/api/v1/batch/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["data"]["batch"]["status"], "cancelling");
    assert!(
        again["data"]["status_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/batch/{id}"))
    );
    // Results wait for the end.
    let (status, body) = get(&system, &token, &format!("/api/v1/batch/{id}/results")).await;
    assert_eq!(status, 409, "{body}");

    // An ended job cannot be cancelled; its (here empty) results can be read.
    end_job(&system, &id, "cancelled").await;
    let (status, body) = system
        .post(&token, &format!("/v1/batches/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(openai_error(&body).1.contains("cancelled"), "{body}");
    let (status, body) = system
        .post(&token, &format!("/api/v1/batch/{id}/cancel"), json!({}))
        .await;
    assert_eq!((status, body["success"].clone()), (409, json!(false)));
    let (status, results) = get(&system, &token, &format!("/api/v1/batch/{id}/results")).await;
    assert_eq!(status, 200, "{results}");
    assert_eq!(
        results["data"],
        json!({"results": [], "total": 0, "has_more": false})
    );
    system.stop().await;
}

#[tokio::test]
async fn another_tenants_or_users_ids_are_not_found_on_every_route() {
    let system = System::start(Opts::new().no_chat().files()).await;
    let tenant = Uuid::now_v7();
    let owner = system.token(tenant);
    let (_, file) = upload(&system, &owner, input(1, "dummy"), "batch").await;
    let file_id = file["id"].as_str().unwrap().to_owned();
    let batch = create_batch(&system, &owner, input(1, "dummy")).await;
    let batch_id = batch["id"].as_str().unwrap().to_owned();
    let (status, seed) = system
        .post(
            &owner,
            "/api/v1/batch",
            json!({"model": "dummy", "requests": [{"prompt": "hi"}]}),
        )
        .await;
    assert_eq!(status, 202, "{seed}");
    let seed_id = seed["data"]["batch"]["id"].as_str().unwrap().to_owned();

    for (who, token) in [
        // Every token `System::token` issues is a new user.
        ("another user", system.token(tenant)),
        ("another tenant", system.token(Uuid::now_v7())),
    ] {
        for path in [
            format!("/v1/files/{file_id}"),
            format!("/v1/files/{file_id}/content"),
            format!("/v1/batches/{batch_id}"),
            format!("/api/v1/batch/{batch_id}"),
            format!("/api/v1/batch/{seed_id}"),
            format!("/api/v1/batch/{seed_id}/events"),
            format!("/api/v1/batch/{seed_id}/results"),
        ] {
            let (status, body) = get(&system, &token, &path).await;
            assert_eq!(status, 404, "{who}: GET {path} -> {body}");
        }
        for path in [
            format!("/v1/batches/{batch_id}/cancel"),
            format!("/api/v1/batch/{seed_id}/cancel"),
        ] {
            let (status, body) = system.post(&token, &path, json!({})).await;
            assert_eq!(status, 404, "{who}: POST {path} -> {body}");
        }
        let (status, body) = delete(&system, &token, &format!("/v1/files/{file_id}")).await;
        assert_eq!(status, 404, "{who}: DELETE -> {body}");
        let (status, body) = system
            .post(
                &token,
                "/v1/batches",
                json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                    "completion_window": "24h"}),
            )
            .await;
        assert_eq!(status, 404, "{who}: a batch over another's file -> {body}");
        let (_, files) = get(&system, &token, "/v1/files").await;
        assert_eq!(files["data"], json!([]), "{who}");
        let (_, batches) = get(&system, &token, "/v1/batches").await;
        assert_eq!(batches["data"], json!([]), "{who}");
        let (_, jobs) = get(&system, &token, "/api/v1/batch").await;
        assert_eq!(jobs["data"]["batches"], json!([]), "{who}");
    }
    // Untouched for its owner.
    let (status, _) = get(&system, &owner, &format!("/v1/files/{file_id}")).await;
    assert_eq!(status, 200);
    let (_, batches) = get(&system, &owner, "/v1/batches").await;
    assert_eq!(batches["data"][0]["status"], "validating");
    let (_, jobs) = get(&system, &owner, "/api/v1/batch").await;
    assert_eq!(jobs["data"]["batches"].as_array().unwrap().len(), 2);
    system.stop().await;
}

#[tokio::test]
async fn the_seed_api_checks_requests_at_once() {
    let system = System::start(Opts::new().no_chat().files()).await;
    let token = system.token(Uuid::now_v7());
    for (body, says) in [
        (
            json!({"model": "no-such-model", "requests": [{"prompt": "x"}]}),
            "unknown model \"no-such-model\"",
        ),
        (json!({"model": "dummy", "requests": []}), "1 to 50000"),
        (
            json!({"model": "dummy", "requests": [{"custom_id": "a", "prompt": "x"},
                {"custom_id": "a", "prompt": "y"}]}),
            "requests[1].custom_id \"a\" is already used by requests[0]",
        ),
        (
            json!({"model": "dummy", "requests": [{"system_prompt": "x"}]}),
            "requests[0] needs a prompt or messages",
        ),
        (
            json!({"model": "dummy", "requests": [{"prompt": "x", "temperature": "hot"}]}),
            "requests[0].temperature",
        ),
    ] {
        let (status, answer) = system.post(&token, "/api/v1/batch", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["success"], false);
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (_, files) = get(&system, &token, "/v1/files").await;
    assert_eq!(files["data"], json!([]), "nothing was stored");

    let (status, answer) = system
        .post(
            &token,
            "/api/v1/batch",
            json!({"model": "dummy", "metadata": {"run": "1"}, "requests": [
                {"prompt": "first", "max_tokens": 20},
                {"custom_id": "mine", "messages": [{"role": "user", "content": "second"}]},
            ]}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let data = &answer["data"];
    let id = data["batch"]["id"].as_str().unwrap();
    assert_eq!(data["batch"]["status"], "validating");
    assert_eq!(data["batch"]["metadata"], json!({"run": "1"}));
    assert_eq!(data["task_id"], data["batch"]["task_id"]);
    for (link, tail) in [
        ("status_url", String::new()),
        ("events_url", "/events".into()),
        ("results_url", "/results".into()),
    ] {
        let url = data[link].as_str().unwrap();
        assert_eq!(url, format!("{}/api/v1/batch/{id}{tail}", system.http));
    }
    // Its input file, as OpenAI's clients see it.
    let input_id = data["batch"]["input_file_id"].as_str().unwrap();
    let content = reqwest::Client::new()
        .get(format!("{}/v1/files/{input_id}/content", system.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = content
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["custom_id"], "request-1");
    assert_eq!(lines[0]["body"]["max_tokens"], 20);
    assert_eq!(lines[1]["custom_id"], "mine");
    let (status, list) = get(&system, &token, "/api/v1/batch?limit=1").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"]["batches"][0]["id"], id);
    assert_eq!(list["data"]["has_more"], false);
    system.stop().await;
}

/// Polls `GET {path}` until `status` (at `pointer`) is terminal; the last answer.
async fn until_ended(system: &System, token: &str, path: &str, pointer: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = get(system, token, path).await;
        assert_eq!(status, 200, "{body}");
        let state = body.pointer(pointer).and_then(Value::as_str).unwrap_or("");
        if ["completed", "failed", "expired", "cancelled"].contains(&state) {
            return body;
        }
        assert!(
            started.elapsed() < WAIT * 3,
            "the batch did not end: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_batch_runs_to_its_end_with_the_batch_worker() {
    let system = System::start(Opts::new().no_chat().batch()).await;
    let token = system.token(Uuid::now_v7());
    let prompts = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let requests: Vec<Value> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i == 2 {
                json!({"custom_id": "third", "prompt": p})
            } else {
                json!({"prompt": p})
            }
        })
        .collect();
    let (status, answer) = system
        .post(
            &token,
            "/api/v1/batch",
            json!({"model": "dummy", "requests": requests}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["data"]["batch"]["id"].as_str().unwrap().to_owned();
    let job = until_ended(
        &system,
        &token,
        &format!("/api/v1/batch/{id}"),
        "/data/status",
    )
    .await;
    let job = &job["data"];
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        job["request_counts"],
        json!({"total": 5, "completed": 5, "failed": 0})
    );
    assert_eq!(job["model"], "dummy");

    let (status, results) = get(&system, &token, &format!("/api/v1/batch/{id}/results")).await;
    assert_eq!(status, 200, "{results}");
    let data = &results["data"];
    assert_eq!(
        (data["total"].clone(), data["has_more"].clone()),
        (json!(5), json!(false))
    );
    let mut by_id = std::collections::HashMap::new();
    for r in data["results"].as_array().unwrap() {
        assert_eq!(r["status"], "succeeded", "{r}");
        let answer = r["response"]["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        by_id.insert(r["custom_id"].as_str().unwrap().to_owned(), answer);
    }
    for (i, p) in prompts.iter().enumerate() {
        let custom_id = if i == 2 {
            "third".to_owned()
        } else {
            format!("request-{}", i + 1)
        };
        let answer = by_id
            .get(&custom_id)
            .unwrap_or_else(|| panic!("no answer for {custom_id}: {by_id:?}"));
        assert!(answer.contains(p), "{custom_id}: {answer}");
    }
    // A page of two, then the rest.
    let (_, page) = get(
        &system,
        &token,
        &format!("/api/v1/batch/{id}/results?offset=3&limit=2"),
    )
    .await;
    assert_eq!(page["data"]["results"].as_array().unwrap().len(), 2);
    assert_eq!(page["data"]["has_more"], false);
    let (_, page) = get(
        &system,
        &token,
        &format!("/api/v1/batch/{id}/results?offset=1&limit=2"),
    )
    .await;
    assert_eq!(page["data"]["has_more"], true);
    assert_eq!(page["data"]["total"], 5);

    // Its events, from the start, as Server-Sent Events ending after `complete`.
    let sse = reqwest::Client::new()
        .get(format!("{}/api/v1/batch/{id}/events", system.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let text = tokio::time::timeout(WAIT, sse.text())
        .await
        .unwrap()
        .unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.last(), Some(&"complete"), "{kinds:?}");
    let done = events
        .iter()
        .find(|e| e["type"] == "text_completed")
        .unwrap_or_else(|| panic!("{kinds:?}"));
    assert_eq!(done["data"]["data"]["batch"]["id"], id.as_str());
    assert_eq!(done["data"]["data"]["batch"]["status"], "completed");

    // The output file, through OpenAI's Files API.
    let output = job["output_file_id"].as_str().unwrap();
    let (_, file) = get(&system, &token, &format!("/v1/files/{output}")).await;
    assert_eq!(file["purpose"], "batch_output");
    let content = reqwest::Client::new()
        .get(format!("{}/v1/files/{output}/content", system.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(content.lines().count(), 5);
    system.stop().await;
}
