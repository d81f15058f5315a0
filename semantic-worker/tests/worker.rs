//! The semantic-worker end to end over a real Redis: the in-process Qdrant Edge in a fresh
//! directory and the local all-MiniLM-L6-v2 (installed by `scripts/test`): a chat turn indexed,
//! found in each mode by its owner only, once however often it is indexed, gone with its
//! session; texts embedded for `/v1/embeddings`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::Bus;
use common::envelope::DomainAction;
use common::payloads::semantic::{DELETE, EMBED, INDEX_MESSAGES, SEARCH};
use common::testing::{Received, WAIT, fast_worker_settings, isolated_settings, read_until};
use semantic_worker::Settings;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Worker {
    bus: Bus,
    client: redis::Client,
    shutdown: CancellationToken,
    dir: std::path::PathBuf,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start() -> Worker {
    let mut settings = Settings {
        core: isolated_settings(),
        worker: fast_worker_settings(),
        ..Settings::default()
    };
    let dir = std::env::temp_dir().join(format!("semantic-test-{}", Uuid::now_v7().simple()));
    settings.semantic.store_dir = dir.display().to_string();
    let shutdown = CancellationToken::new();
    let run = semantic_worker::run(settings.clone(), shutdown.clone());
    tokio::spawn(async move {
        if let Err(e) = run.await {
            panic!(
                "the semantic-worker stopped: {e:#} (is the model installed? scripts/lib.sh ensure_embedding_model)"
            );
        }
    });
    Worker {
        bus: Bus::connect(&settings.core).await.unwrap(),
        client: redis::Client::open(settings.core.redis_url.expose()).unwrap(),
        shutdown,
        dir,
    }
}

/// Who acts.
#[derive(Clone, Copy)]
struct Caller {
    tenant: Uuid,
    user: Option<Uuid>,
}

impl Caller {
    fn new() -> Self {
        Self {
            tenant: Uuid::now_v7(),
            user: Some(Uuid::now_v7()),
        }
    }

    fn colleague(self) -> Self {
        Self {
            user: Some(Uuid::now_v7()),
            ..self
        }
    }
}

impl Worker {
    async fn run(&self, caller: Caller, session: Uuid, kind: &str, data: Value) -> Vec<Received> {
        let mut a = DomainAction::new(kind, "test", caller.tenant, session, data);
        a.user_id = caller.user;
        self.bus.publish(&a).await.unwrap();
        let key = self.bus.names().response_stream(session);
        read_until(&self.client, &key, "complete", Some(a.task_id), WAIT)
            .await
            .into_iter()
            .filter(|e| e.event["task_id"] == a.task_id.to_string())
            .collect()
    }

    /// `text_completed.data` of an action that must succeed.
    async fn result(&self, caller: Caller, session: Uuid, kind: &str, data: Value) -> Value {
        let events = self.run(caller, session, kind, data).await;
        let done = events
            .iter()
            .find(|e| e.kind == "text_completed")
            .unwrap_or_else(|| panic!("{kind} did not answer: {events:?}"));
        done.event["data"]["data"].clone()
    }

    async fn index(&self, caller: Caller, session: Uuid, texts: &[(&str, &str)]) {
        let messages: Vec<Value> = texts
            .iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect();
        let out = self
            .result(
                caller,
                session,
                INDEX_MESSAGES,
                json!({"messages": messages}),
            )
            .await;
        assert!(out["indexed"].as_u64().unwrap() >= 1, "{out}");
    }

    async fn search(&self, caller: Caller, data: Value) -> Vec<Value> {
        let out = self.result(caller, Uuid::now_v7(), SEARCH, data).await;
        out["results"].as_array().unwrap().clone()
    }
}

fn texts(results: &[Value]) -> Vec<&str> {
    results
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect()
}

const FACTS: [(&str, &str); 4] = [
    (
        "user",
        "My dog Biscuit is a four year old beagle who loves the beach.",
    ),
    (
        "assistant",
        "Beagles are friendly hounds with a great sense of smell.",
    ),
    (
        "user",
        "I am planning a trip to Lisbon in March to see the tiles.",
    ),
    (
        "user",
        "The quarterly revenue report is due on Friday for finance.",
    ),
];

#[tokio::test]
async fn a_turn_is_found_in_every_mode_by_its_owner_only() {
    let w = start().await;
    let alice = Caller::new();
    let session = Uuid::now_v7();
    w.index(alice, session, &FACTS).await;

    // By meaning: no word in common with the text.
    let found = w
        .search(
            alice,
            json!({"query": "what kind of pet do I have?", "mode": "semantic"}),
        )
        .await;
    let top: Vec<&str> = texts(&found)[..2].to_vec();
    assert!(
        top.contains(&FACTS[0].1) && top.contains(&FACTS[1].1),
        "the two texts about the dog first: {found:?}"
    );
    assert!(found[1]["score"].as_f64().unwrap() > 0.2);
    assert!(
        found[2]["score"].as_f64().unwrap() < 0.2,
        "the others far behind"
    );
    let dog = found.iter().find(|r| r["text"] == FACTS[0].1).unwrap();
    assert_eq!(dog["role"], "user");
    assert_eq!(dog["session_id"], session.to_string());
    assert_eq!(dog["source"], "message");

    // By a word: a rare one, in a sentence with little meaning of its own.
    let found = w
        .search(alice, json!({"query": "quarterly", "mode": "keyword"}))
        .await;
    assert_eq!(texts(&found), [FACTS[3].1], "only the text with the word");

    // Both.
    let found = w
        .search(alice, json!({"query": "Lisbon holiday plans"}))
        .await;
    assert_eq!(texts(&found)[0], FACTS[2].1, "{found:?}");

    // Filters.
    let found = w
        .search(
            alice,
            json!({"query": "dogs", "mode": "semantic", "roles": ["assistant"]}),
        )
        .await;
    assert_eq!(texts(&found), [FACTS[1].1]);
    let found = w
        .search(
            alice,
            json!({"query": "dogs", "session_ids": [Uuid::now_v7()]}),
        )
        .await;
    assert!(found.is_empty(), "another session's filter finds nothing");

    // Nobody else finds it: another tenant, or a colleague in the same tenant.
    let stranger = Caller::new();
    for mode in ["semantic", "hybrid", "keyword"] {
        let q = json!({"query": "beagle Biscuit beach", "mode": mode});
        assert!(w.search(stranger, q.clone()).await.is_empty(), "{mode}");
        assert!(
            w.search(alice.colleague(), q.clone()).await.is_empty(),
            "{mode}"
        );
    }
    // The tenant as a whole (an admin's search through the gateway, or an internal service).
    let found = w
        .search(
            alice.colleague(),
            json!({"query": "Biscuit", "mode": "keyword", "all_users": true}),
        )
        .await;
    assert_eq!(texts(&found), [FACTS[0].1]);
}

#[tokio::test]
async fn the_same_text_is_indexed_once_and_goes_with_its_session() {
    let w = start().await;
    let bob = Caller::new();
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let text = "Remember that the garage door code is 4711.";
    w.index(bob, first, &[("user", text)]).await;
    w.index(
        bob,
        second,
        &[("user", text), ("assistant", "Noted: 4711.")],
    )
    .await;
    let found = w
        .search(bob, json!({"query": "garage door code", "mode": "keyword"}))
        .await;
    assert_eq!(texts(&found), [text], "one point for one text: {found:?}");

    let out = w
        .result(bob, second, DELETE, json!({"session_id": second}))
        .await;
    assert!(out["deleted"].as_u64().is_some_and(|n| n >= 1), "{out}");
    let found = w
        .search(
            bob,
            json!({"query": "garage door code 4711", "mode": "keyword"}),
        )
        .await;
    assert!(found.is_empty(), "the session's points are gone: {found:?}");
}

#[tokio::test]
async fn texts_are_embedded_as_little_endian_float32_unit_vectors() {
    let w = start().await;
    let carol = Caller::new();
    let out = w
        .result(
            carol,
            Uuid::now_v7(),
            EMBED,
            json!({"input": ["A cat sat on the mat.", "A kitten rested on the rug.", "Stock prices fell sharply."]}),
        )
        .await;
    assert_eq!(out["dimensions"], 384);
    let vectors: Vec<Vec<f32>> = out["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            STANDARD
                .decode(v.as_str().unwrap())
                .unwrap()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect();
    assert_eq!(vectors.len(), 3);
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for v in &vectors {
        assert_eq!(v.len(), 384);
        assert!((dot(v, v) - 1.0).abs() < 1e-3);
    }
    assert!(dot(&vectors[0], &vectors[1]) > dot(&vectors[0], &vectors[2]) + 0.2);

    // What it cannot do is the caller's to change.
    let events = w
        .run(
            carol,
            Uuid::now_v7(),
            EMBED,
            json!({"input": ["x"], "dimensions": 128}),
        )
        .await;
    let error = events.iter().find(|e| e.kind == "error").unwrap();
    assert_eq!(error.event["data"]["code"], "unsupported_option");
    let events = w
        .run(
            carol,
            Uuid::now_v7(),
            EMBED,
            json!({"input": ["x"], "model": "no-such-model"}),
        )
        .await;
    let error = events.iter().find(|e| e.kind == "error").unwrap();
    assert_eq!(error.event["data"]["code"], "unknown_model");
    let events = w
        .run(carol, Uuid::now_v7(), SEARCH, json!({"query": ""}))
        .await;
    let error = events.iter().find(|e| e.kind == "error").unwrap();
    assert_eq!(error.event["data"]["code"], "invalid_payload");
}
