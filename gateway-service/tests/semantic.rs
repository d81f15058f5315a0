//! Semantic search through the gateway, end to end: the gateway, a chat-worker (offline dummy
//! provider) and a semantic-worker (offline embeddings, Qdrant Edge in a fresh directory) on a
//! real Redis and PostgreSQL. A chat is indexed as it is stored and a later chat remembers it;
//! the search API in three modes, tenant by tenant; limits and refusals; and a chat that
//! answers without context when the index is away; documents uploaded, their progress followed
//! over `WS /ws/ingest/{job_id}`, found, used by a chat, listed, replaced and deleted; bad
//! uploads refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use common::testing::pdf_with_text;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use support::{Ended, Opts, System, Ws, kinds, text};
use uuid::Uuid;

/// Searches until `found` accepts the results (indexing is not waited for by the chat: it lands
/// a moment after the turn's `complete`), or fails after 20 s.
async fn search_until(
    system: &System,
    token: &str,
    body: Value,
    found: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, answer) = system
            .post(token, "/api/v1/semantic/search", body.clone())
            .await;
        assert_eq!(status, 200, "{answer}");
        let results = answer["data"]["results"].as_array().unwrap().clone();
        if found(&results) {
            return results;
        }
        last = answer;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("never found what was expected; last answer: {last}");
}

fn has(results: &[Value], needle: &str) -> bool {
    results
        .iter()
        .any(|r| r["text"].as_str().unwrap_or_default().contains(needle))
}

#[tokio::test]
async fn a_later_chat_remembers_an_earlier_one_and_only_its_owner_finds_it() {
    let system = System::start(Opts::new().dummy(24, 0).semantic()).await;
    let tenant = Uuid::now_v7();
    let token = system.token(tenant);

    // A first chat: stored, then indexed.
    let (mut ws, _) = system.connect(&token).await;
    ws.send(json!({"type": "chat", "prompt": "My dog is called Biscuit and he is a beagle."}))
        .await;
    let first = ws.until_complete().await;
    assert!(kinds(&first).contains(&"db_operation_executed".to_owned()));
    search_until(
        &system,
        &token,
        json!({"query": "Biscuit", "mode": "keyword"}),
        |r| has(r, "called Biscuit"),
    )
    .await;

    // A later chat, in a new session, with semantic context.
    let (mut ws, _) = system.connect(&token).await;
    ws.send(
        json!({"type": "chat", "prompt": "What is the name of my dog?",
        "settings": {"semantic": {"enabled": true, "limit": 3}}}),
    )
    .await;
    let events = ws.until_complete().await;
    let k = kinds(&events);
    let added = k
        .iter()
        .position(|t| t == "semantic_context_added")
        .unwrap();
    let first_chunk = k.iter().position(|t| t == "text_chunk").unwrap();
    assert!(
        added < first_chunk,
        "the context comes before the answer: {k:?}"
    );
    let context = &events[added]["data"];
    assert_eq!(context["mode"], "hybrid");
    assert!(context["tokens"].as_u64().unwrap() > 0, "{context}");
    assert!(context.get("unavailable").is_none(), "{context}");
    let results = context["results"].as_array().unwrap();
    assert!(has(results, "My dog is called Biscuit"), "{context}");
    // The offline provider says what it was given: the answer used the earlier message.
    let answer = text(&events);
    assert!(
        answer.contains("Remembered: My dog is called Biscuit"),
        "{answer}"
    );
    assert_eq!(k.iter().filter(|t| *t == "complete").count(), 1);

    // Three modes through the API.
    for (mode, query) in [
        ("semantic", "which pet do I own?"),
        ("hybrid", "name of my beagle"),
        ("keyword", "beagle"),
    ] {
        let results = search_until(
            &system,
            &token,
            json!({"query": query, "mode": mode}),
            |r| !r.is_empty(),
        )
        .await;
        assert!(has(&results, "Biscuit"), "{mode}: {results:?}");
    }

    // Another tenant finds nothing; a colleague in the same tenant neither (their own texts
    // only), unless an admin asks for the whole tenant.
    let stranger = system.token(Uuid::now_v7());
    let colleague = system.token(tenant);
    for who in [&stranger, &colleague] {
        for mode in ["semantic", "hybrid", "keyword"] {
            let (status, answer) = system
                .post(
                    who,
                    "/api/v1/semantic/search",
                    json!({"query": "Biscuit beagle dog", "mode": mode}),
                )
                .await;
            assert_eq!(status, 200);
            assert_eq!(answer["data"]["results"], json!([]), "{mode}: {answer}");
        }
    }
    let (status, answer) = system
        .post(
            &colleague,
            "/api/v1/semantic/search",
            json!({"query": "Biscuit", "all_users": true}),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    let admin = system.admin_token(tenant);
    let (status, answer) = system
        .post(
            &admin,
            "/api/v1/semantic/search",
            json!({"query": "Biscuit", "mode": "keyword", "all_users": true}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(has(
        answer["data"]["results"].as_array().unwrap(),
        "Biscuit"
    ));
    system.stop().await;
}

#[tokio::test]
async fn deleting_a_session_deletes_what_it_left_in_the_index() {
    let system = System::start(Opts::new().semantic()).await;
    let token = system.token(Uuid::now_v7());
    let (status, answer) = system
        .post(
            &token,
            "/chat",
            json!({"prompt": "The spare key hides under the blue flowerpot."}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let session = answer["data"]["session_id"].as_str().unwrap().to_owned();
    let query = json!({"query": "flowerpot", "mode": "keyword"});
    search_until(&system, &token, query.clone(), |r| has(r, "flowerpot")).await;

    let r = reqwest::Client::new()
        .delete(format!("{}/api/v1/chat/sessions/{session}", system.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    search_until(&system, &token, query, <[Value]>::is_empty).await;
    system.stop().await;
}

#[tokio::test]
async fn bad_searches_are_refused_and_the_tenant_limit_holds() {
    let mut opts = Opts::new().no_chat().semantic();
    // One more search a minute after the burst of two: the third is refused however slowly
    // this machine answers the first two.
    opts.gateway.rate_limit.search_per_minute = 1;
    opts.gateway.rate_limit.search_burst = 2;
    let system = System::start(opts).await;
    let token = system.token(Uuid::now_v7());
    for (body, needle) in [
        (json!({"query": ""}), "query"),
        (json!({"query": "x", "mode": "fuzzy"}), "mode"),
        (json!({"query": "x", "limit": 1000}), "limit"),
        (json!({"qurey": "x"}), "qurey"),
    ] {
        let (status, answer) = system.post(&token, "/api/v1/semantic/search", body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
    // Two at once, then the third waits.
    for _ in 0..2 {
        let (status, answer) = system
            .post(
                &token,
                "/api/v1/semantic/search",
                json!({"query": "anything"}),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = system
        .post(
            &token,
            "/api/v1/semantic/search",
            json!({"query": "anything"}),
        )
        .await;
    assert_eq!(status, 429, "{answer}");
    // Another tenant has its own budget.
    let other = system.token(Uuid::now_v7());
    let (status, _) = system
        .post(
            &other,
            "/api/v1/semantic/search",
            json!({"query": "anything"}),
        )
        .await;
    assert_eq!(status, 200);
    system.stop().await;
}

#[tokio::test]
async fn without_an_index_a_chat_answers_and_says_the_context_is_unavailable() {
    // No semantic-worker: the search is never taken.
    let mut opts = Opts::new();
    opts.worker.as_mut().unwrap().semantic_search_timeout_secs = 1;
    let system = System::start(opts).await;
    let token = system.token(Uuid::now_v7());
    let (mut ws, _) = system.connect(&token).await;
    let chat = json!({"type": "chat", "prompt": "hello again",
        "settings": {"semantic": {"enabled": true}}});
    let mut reasons = Vec::new();
    for _ in 0..4 {
        ws.send(chat.clone()).await;
        let events = ws.until_complete().await;
        let k = kinds(&events);
        assert!(!k.contains(&"error".to_owned()), "{events:#?}");
        let added = events
            .iter()
            .find(|e| e["type"] == "semantic_context_added")
            .unwrap();
        assert_eq!(added["data"]["results"], json!([]));
        reasons.push(added["data"]["unavailable"].as_str().unwrap().to_owned());
        assert!(text(&events).starts_with("Echo: hello again"));
    }
    // Three failures open the breaker: the fourth chat does not ask at all.
    assert!(
        reasons[..3].iter().all(|r| r.contains("in time")),
        "{reasons:?}"
    );
    assert!(reasons[3].contains("failed recently"), "{reasons:?}");
    let mut redis = system
        .redis()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stream = system.core.names().action_stream("semantic");
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    let searches = entries
        .ids
        .iter()
        .filter(|e| e.get::<String>("action_type").as_deref() == Some("semantic.search.execute"))
        .count();
    assert_eq!(searches, 3, "the open breaker published no fourth search");
    system.stop().await;
}

/// `POST /api/v1/ingest` with `file` (`name`, `bytes`) and text `fields`: status and body.
async fn ingest(
    system: &System,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
    for (k, v) in fields {
        form = form.text((*k).to_owned(), (*v).to_owned());
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/ingest", system.http))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn get(system: &System, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", system.http))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn delete(system: &System, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .delete(format!("{}{path}", system.http))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Every event of a job over its WebSocket, until the server closes it.
async fn follow(job: &Value, token: &str) -> Vec<Value> {
    let url = format!("{}?token={token}", job["websocket_url"].as_str().unwrap());
    let mut ws = Ws::connect(&url).await;
    let (events, ended) = ws.until_closed().await;
    assert_eq!(ended, Ended::Closed(1000), "{events:?}");
    events
}

/// Every event of a job from `GET /api/v1/ingest/{job_id}/events`, which ends after `complete`.
async fn sse_events(system: &System, token: &str, job_id: &str) -> Vec<Value> {
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/ingest/{job_id}/events", system.http))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = tokio::time::timeout(support::WAIT, r.text())
        .await
        .expect("the event stream did not end after complete")
        .unwrap();
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn lighthouse_report() -> Vec<String> {
    let mut lines: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "Section {i}. The lighthouse keepers of Skerryvore logged the weather every \
                 four hours and trimmed the lamp wicks at dusk."
            )
        })
        .collect();
    lines.insert(
        17,
        "The keepers' dog on the rock was a collie named Pharos.".into(),
    );
    lines
}

#[tokio::test]
async fn a_pdf_is_ingested_with_progress_then_searched_used_listed_replaced_and_deleted() {
    // Long enough answers to say all that the offline provider remembered.
    let mut opts = Opts::new().dummy(400, 0).semantic();
    // Many searches in a row: not what the tenant limit is tested with here.
    opts.gateway.rate_limit.search_burst = 1000;
    let system = System::start(opts).await;
    let tenant = Uuid::now_v7();
    let token = system.token(tenant);
    let lines = lighthouse_report();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let pdf = pdf_with_text(&refs);
    let (status, answer) = ingest(
        &system,
        &token,
        "skerryvore.pdf",
        pdf.clone(),
        &[("metadata", r#"{"tags": ["history"], "archive": "NLS"}"#)],
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let job = &answer["data"];
    assert_eq!(job["status"], "processing");
    let job_id = job["job_id"].as_str().unwrap().to_owned();
    assert!(
        job["websocket_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/ws/ingest/", system.http.replace("http", "ws"))),
        "{job}"
    );

    // Progress, then the result and `complete`; the server closes the socket after it.
    let events = follow(job, &token).await;
    let k = kinds(&events);
    assert_eq!(k.last().map(String::as_str), Some("complete"), "{k:?}");
    assert!(k.contains(&"text_completed".to_owned()), "{events:?}");
    let progress: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "progress")
        .map(|e| &e["data"])
        .collect();
    assert!(progress.len() >= 3, "{progress:?}");
    let last = progress.last().unwrap();
    assert_eq!(last["chunks_processed"], last["total_chunks"]);
    assert!(
        progress
            .iter()
            .all(|p| p["message"].is_string() && p["fraction"].is_number())
    );
    assert!(events.iter().all(|e| e["task_id"] == job_id.as_str()));
    // A second look replays the whole job, on the WebSocket or as Server-Sent Events.
    assert_eq!(kinds(&follow(job, &token).await), k);
    assert_eq!(kinds(&sse_events(&system, &token, &job_id).await), k);
    let (status, polled) = get(&system, &token, &format!("/api/v1/ingest/{job_id}")).await;
    assert_eq!(status, 200, "{polled}");
    assert_eq!(polled["data"]["status"], "completed");
    let chunks = polled["data"]["result"]["chunks"].as_u64().unwrap();
    assert!(chunks >= 1, "{polled}");
    let document_id = polled["data"]["result"]["document_id"].clone();
    assert_eq!(document_id, job["document_id"]);

    // Found in three modes.
    for (mode, query) in [
        ("semantic", "what was the keepers' pet?"),
        ("hybrid", "dog named Pharos"),
        ("keyword", "Pharos"),
    ] {
        let results = search_until(
            &system,
            &token,
            json!({"query": query, "mode": mode, "sources": ["document"]}),
            |r| has(r, "Pharos"),
        )
        .await;
        let hit = results
            .iter()
            .find(|r| r["text"].as_str().unwrap().contains("Pharos"))
            .unwrap();
        assert_eq!(hit["document_name"], "skerryvore.pdf", "{mode}");
        assert_eq!(hit["tags"], json!(["history"]));
        assert_eq!(hit["metadata"]["archive"], "NLS");
    }

    // A chat that searches uses it.
    let (mut ws, _) = system.connect(&token).await;
    ws.send(
        json!({"type": "chat", "prompt": "What was the name of the keepers' dog?",
        "settings": {"semantic": {"enabled": true, "sources": ["document"], "limit": 2}}}),
    )
    .await;
    let events = ws.until_complete().await;
    let added = events
        .iter()
        .find(|e| e["type"] == "semantic_context_added")
        .unwrap();
    assert!(
        has(added["data"]["results"].as_array().unwrap(), "Pharos"),
        "{added}"
    );
    assert!(text(&events).contains("Pharos"), "{}", text(&events));

    // Nobody else sees the job or the document.
    let stranger = system.token(Uuid::now_v7());
    let (status, _) = get(&system, &stranger, &format!("/api/v1/ingest/{job_id}")).await;
    assert_eq!(status, 404);
    let (status, _) = get(
        &system,
        &stranger,
        &format!("/api/v1/ingest/{job_id}/events"),
    )
    .await;
    assert_eq!(status, 404);
    let url = format!(
        "{}?token={stranger}",
        job["websocket_url"].as_str().unwrap()
    );
    let (events, ended) = Ws::connect(&url).await.until_closed().await;
    assert_eq!(events[0]["data"]["code"], "not_found", "{events:?}");
    assert_eq!(ended, Ended::Closed(1008));
    let (status, listed) = get(&system, &stranger, "/api/v1/documents").await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"]["documents"], json!([]));

    // Listed for its owner.
    let (status, listed) = get(&system, &token, "/api/v1/documents").await;
    assert_eq!(status, 200, "{listed}");
    let docs = listed["data"]["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{listed}");
    assert_eq!(docs[0]["document_id"], document_id);
    assert_eq!(docs[0]["chunks"].as_u64().unwrap(), chunks);

    // The same file again is the same document, replaced rather than doubled.
    let (status, again) = ingest(&system, &token, "skerryvore.pdf", pdf, &[]).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["data"]["document_id"], document_id);
    let events = follow(&again["data"], &token).await;
    let done = events
        .iter()
        .find(|e| e["type"] == "text_completed")
        .unwrap();
    assert_eq!(done["data"]["data"]["replaced"].as_u64().unwrap(), chunks);
    let (_, listed) = get(&system, &token, "/api/v1/documents").await;
    assert_eq!(listed["data"]["documents"].as_array().unwrap().len(), 1);

    // Deleted.
    let path = format!("/api/v1/documents/{}", document_id.as_str().unwrap());
    let (status, gone) = delete(&system, &token, &path).await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["data"]["deleted"].as_u64().unwrap(), chunks);
    let (status, _) = delete(&system, &token, &path).await;
    assert_eq!(status, 404);
    search_until(
        &system,
        &token,
        // (The chat above that quoted it is a message of its own, and stays.)
        json!({"query": "Pharos", "mode": "keyword", "sources": ["document"]}),
        <[Value]>::is_empty,
    )
    .await;
    system.stop().await;
}

#[tokio::test]
async fn bad_uploads_are_refused_with_a_clear_answer() {
    let mut opts = Opts::new().no_chat().semantic();
    opts.gateway.storage.max_upload_bytes = 4096;
    let system = System::start(opts).await;
    let tenant = Uuid::now_v7();
    let token = system.token(tenant);
    let note = b"A short note.".to_vec();
    for (name, bytes, fields, status, needle) in [
        ("report.docx", note.clone(), vec![], 400, "extension"),
        ("empty.txt", vec![], vec![], 400, "empty"),
        ("big.txt", vec![b'a'; 5000], vec![], 413, "larger"),
        (
            "n.txt",
            note.clone(),
            vec![("metadata", "[1]")],
            400,
            "metadata",
        ),
        (
            "n.txt",
            note.clone(),
            vec![("document_id", "nope")],
            400,
            "document_id",
        ),
        (
            "n.txt",
            note.clone(),
            vec![("tenant_id", "00000000-0000-0000-0000-000000000001")],
            403,
            "tenant",
        ),
    ] {
        let (got, answer) = ingest(&system, &token, name, bytes, &fields).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["success"], false);
        assert!(
            answer["message"].as_str().unwrap().contains(needle),
            "{name}: {answer}"
        );
    }
    // A file that passes the door but cannot be read: the job ends with a clear error.
    let (status, answer) = ingest(
        &system,
        &token,
        "broken.pdf",
        b"%PDF-1.7 garbage".to_vec(),
        &[],
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let events = follow(&answer["data"], &token).await;
    let error = events.iter().find(|e| e["type"] == "error").unwrap();
    assert_eq!(error["data"]["code"], "invalid_document", "{error}");
    let job_id = answer["data"]["job_id"].as_str().unwrap();
    let (_, polled) = get(&system, &token, &format!("/api/v1/ingest/{job_id}")).await;
    assert_eq!(polled["data"]["status"], "error");
    assert_eq!(polled["data"]["error"]["code"], "invalid_document");
    let (_, listed) = get(&system, &token, "/api/v1/documents").await;
    assert_eq!(listed["data"]["documents"], json!([]));
    let (status, _) = get(
        &system,
        &token,
        &format!("/api/v1/ingest/{}", Uuid::now_v7()),
    )
    .await;
    assert_eq!(status, 404);
    system.stop().await;
}
