//! Semantic search through the gateway, end to end: the gateway, a chat-worker (offline dummy
//! provider) and a semantic-worker (offline embeddings, Qdrant Edge in a fresh directory) on a
//! real Redis and PostgreSQL. A chat is indexed as it is stored and a later chat remembers it;
//! the search API in three modes, tenant by tenant; limits and refusals; and a chat that
//! answers without context when the index is away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Opts, System, kinds, text};
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
    opts.gateway.rate_limit.search_per_minute = 60;
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
