//! The semantic-worker end to end over a real Redis: the in-process Qdrant Edge in a fresh
//! directory and the local all-MiniLM-L6-v2 (installed by `scripts/test`): a chat turn indexed,
//! found in each mode by its owner only, once however often it is indexed, gone with its
//! session; texts embedded for `/v1/embeddings`; documents (text, Markdown, HTML, PDF) ingested
//! from storage with progress, replaced, listed, deleted, and bad files refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::Bus;
use common::envelope::DomainAction;
use common::payloads::semantic::{DELETE, EMBED, INDEX_MESSAGES, INGEST, LIST_DOCUMENTS, SEARCH};
use common::storage::Storage;
use common::testing::{
    Received, WAIT, fast_worker_settings, isolated_settings, pdf_with_text, read_until,
};
use semantic_worker::Settings;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Worker {
    bus: Bus,
    client: redis::Client,
    /// The storage uploads are read from (the gateway's, shared).
    storage: Storage,
    shutdown: CancellationToken,
    dirs: [std::path::PathBuf; 2],
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
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
    let files = std::env::temp_dir().join(format!("semantic-files-{}", Uuid::now_v7().simple()));
    settings.storage.dir = files.display().to_string();
    // Small chunks, so that a page of text makes several.
    settings.semantic.chunk_tokens = 64;
    settings.semantic.chunk_overlap_tokens = 8;
    settings.semantic.batch_size = 4;
    let storage = Storage::new(&settings.storage, &settings.core).unwrap();
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
        storage,
        shutdown,
        dirs: [dir, files],
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

    /// Stores `bytes` as an upload of the caller's tenant and ingests it as `document`.
    async fn ingest(
        &self,
        caller: Caller,
        document: Uuid,
        name: &str,
        bytes: Vec<u8>,
        extra: Value,
    ) -> (Vec<Received>, String) {
        let ext = name.rsplit('.').next().unwrap();
        let stored = self
            .storage
            .put(
                caller.tenant,
                "uploads",
                ext,
                "application/octet-stream",
                bytes.into(),
            )
            .await
            .unwrap();
        let mut data = json!({"key": stored.key, "document_id": document, "name": name,
            "format": ext});
        for (k, v) in extra.as_object().into_iter().flatten() {
            data[k] = v.clone();
        }
        let events = self.run(caller, Uuid::now_v7(), INGEST, data).await;
        (events, stored.key)
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

fn kinds(events: &[Received]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn error_code(events: &[Received]) -> String {
    let error = events
        .iter()
        .find(|e| e.kind == "error")
        .unwrap_or_else(|| panic!("no error: {events:?}"));
    error.event["data"]["code"].as_str().unwrap().to_owned()
}

/// A report about otters, long enough for several chunks of 64 tokens.
fn otter_report(topic: &str) -> Vec<String> {
    (0..24)
        .map(|i| {
            format!(
                "Paragraph {i}: the river otters of the {topic} valley were counted at dawn by \
                 volunteers, who also noted the water temperature and the fish they saw."
            )
        })
        .collect()
}

#[tokio::test]
async fn a_pdf_is_ingested_with_progress_found_replaced_listed_and_deleted() {
    let w = start().await;
    let dana = Caller::new();
    let doc = Uuid::now_v7();
    let mut lines = otter_report("Tamar");
    lines.push("The secret word of the survey is marzipan.".into());
    let lines_ref: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (events, key) = w
        .ingest(
            dana,
            doc,
            "otters.pdf",
            pdf_with_text(&lines_ref),
            json!({"tags": ["survey"], "metadata": {"author": "Dana"}}),
        )
        .await;
    let k = kinds(&events);
    assert_eq!(k.last(), Some(&"complete"), "{events:?}");
    assert!(!k.contains(&"error"), "{events:?}");
    // Progress through the stages, the counts rising to the total.
    let progress: Vec<&Value> = events
        .iter()
        .filter(|e| e.kind == "progress")
        .map(|e| &e.event["data"])
        .collect();
    let stages: Vec<&str> = progress
        .iter()
        .map(|p| p["stage"].as_str().unwrap())
        .collect();
    for stage in ["reading", "chunking", "embedding", "indexing"] {
        assert!(stages.contains(&stage), "{stage} missing: {stages:?}");
    }
    let fractions: Vec<f64> = progress
        .iter()
        .map(|p| p["fraction"].as_f64().unwrap())
        .collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    let embedding: Vec<&&Value> = progress
        .iter()
        .filter(|p| p["stage"] == "embedding")
        .collect();
    assert!(embedding.len() >= 2, "one event per batch: {embedding:?}");
    let last = embedding.last().unwrap();
    assert_eq!(last["chunks_processed"], last["total_chunks"]);
    let done = &events
        .iter()
        .find(|e| e.kind == "text_completed")
        .unwrap()
        .event["data"]["data"];
    let chunks = done["chunks"].as_u64().unwrap();
    assert!(chunks >= 5, "{done}");
    assert_eq!(done["document_id"], doc.to_string());
    assert_eq!(done["replaced"], 0);
    assert_eq!(last["total_chunks"].as_u64().unwrap(), chunks);
    // The upload has served.
    assert!(matches!(
        w.storage.get(dana.tenant, &key).await,
        Err(common::storage::StorageError::NotFound)
    ));

    // Found in each mode, with where it came from; by nobody else.
    for mode in ["semantic", "hybrid", "keyword"] {
        let found = w
            .search(
                dana,
                json!({"query": "what is the survey's secret word? marzipan", "mode": mode,
                    "sources": ["document"]}),
            )
            .await;
        let hit = found
            .iter()
            .find(|r| r["text"].as_str().unwrap().contains("marzipan"))
            .unwrap_or_else(|| panic!("{mode}: {found:?}"));
        assert_eq!(hit["document_id"], doc.to_string());
        assert_eq!(hit["document_name"], "otters.pdf");
        assert_eq!(hit["source"], "document");
        assert_eq!(hit["tags"], json!(["survey"]));
        assert_eq!(hit["metadata"]["author"], "Dana");
        assert!(hit["chunk_index"].as_u64().unwrap() < chunks);
        let q = json!({"query": "marzipan", "mode": mode});
        assert!(w.search(Caller::new(), q.clone()).await.is_empty());
        assert!(w.search(dana.colleague(), q).await.is_empty());
    }

    // Listed.
    let listed = w
        .result(dana, Uuid::now_v7(), LIST_DOCUMENTS, json!({}))
        .await;
    let docs = listed["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{listed}");
    assert_eq!(docs[0]["document_id"], doc.to_string());
    assert_eq!(docs[0]["name"], "otters.pdf");
    assert_eq!(docs[0]["chunks"].as_u64().unwrap(), chunks);
    let theirs = w
        .result(dana.colleague(), Uuid::now_v7(), LIST_DOCUMENTS, json!({}))
        .await;
    assert_eq!(theirs["documents"], json!([]));

    // A shorter version replaces it: the old text and the chunks past the new end are gone.
    let short = "Only a note now: the heron count moved to Thursday.";
    let (events, _) = w
        .ingest(
            dana,
            doc,
            "otters.txt",
            short.as_bytes().to_vec(),
            json!({}),
        )
        .await;
    let done = &events
        .iter()
        .find(|e| e.kind == "text_completed")
        .unwrap_or_else(|| panic!("{events:?}"))
        .event["data"]["data"];
    assert_eq!(done["chunks"], 1);
    assert_eq!(done["replaced"].as_u64().unwrap(), chunks);
    let found = w
        .search(
            dana,
            json!({"query": "otters marzipan heron", "mode": "keyword"}),
        )
        .await;
    assert_eq!(texts(&found), [short], "only the new version: {found:?}");
    let listed = w
        .result(dana, Uuid::now_v7(), LIST_DOCUMENTS, json!({}))
        .await;
    assert_eq!(listed["documents"][0]["chunks"], 1);
    assert_eq!(listed["documents"][0]["name"], "otters.txt");

    // A colleague can neither overwrite nor delete it by naming its id.
    let (events, _) = w
        .ingest(
            dana.colleague(),
            doc,
            "mine.txt",
            b"hijack".to_vec(),
            json!({}),
        )
        .await;
    assert_eq!(error_code(&events), "not_found");
    let out = w
        .result(
            dana.colleague(),
            Uuid::now_v7(),
            DELETE,
            json!({"document_id": doc}),
        )
        .await;
    assert_eq!(out["deleted"], 0);

    // Deleted by its owner.
    let out = w
        .result(dana, Uuid::now_v7(), DELETE, json!({"document_id": doc}))
        .await;
    assert_eq!(out["deleted"], 1);
    let found = w
        .search(dana, json!({"query": "heron Thursday", "mode": "keyword"}))
        .await;
    assert!(found.is_empty(), "{found:?}");
}

#[tokio::test]
async fn markdown_and_html_are_read_as_text() {
    let w = start().await;
    let erin = Caller::new();
    let md = "# Garden log\n\nThe **tomatoes** ripened in the greenhouse in late July.\n\n\
              ## Pests\n\n- aphids on the roses\n- slugs near the lettuce\n";
    let html = "<html><head><script>var tracking = 'xyz';</script></head><body>\
                <h1>Recipe</h1><p>Knead the <em>sourdough</em> for ten minutes.</p></body></html>";
    for (name, bytes) in [("garden.md", md), ("recipe.html", html)] {
        let (events, _) = w
            .ingest(
                erin,
                Uuid::now_v7(),
                name,
                bytes.as_bytes().to_vec(),
                json!({}),
            )
            .await;
        assert!(
            kinds(&events).contains(&"text_completed"),
            "{name}: {events:?}"
        );
    }
    let found = w
        .search(erin, json!({"query": "sourdough", "mode": "keyword"}))
        .await;
    let text = found[0]["text"].as_str().unwrap();
    assert!(
        text.contains("Knead the sourdough for ten minutes."),
        "{text}"
    );
    assert!(!text.contains('<') && !text.contains("tracking"), "{text}");
    let found = w
        .search(erin, json!({"query": "aphids", "mode": "keyword"}))
        .await;
    assert_eq!(found[0]["document_name"], "garden.md");
}

#[tokio::test]
async fn bad_files_are_refused_and_nothing_is_indexed() {
    let w = start().await;
    let finn = Caller::new();
    let corrupt = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer".to_vec();
    let no_text = pdf_with_text(&[]);
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("notes.txt", b" \n \n".to_vec(), "invalid_document"),
        (
            "latin1.txt",
            b"caf\xe9 au lait".to_vec(),
            "invalid_document",
        ),
        ("broken.pdf", corrupt, "invalid_document"),
        ("scan.pdf", no_text, "invalid_document"),
    ];
    for (name, bytes, code) in cases {
        let (events, key) = w.ingest(finn, Uuid::now_v7(), name, bytes, json!({})).await;
        assert_eq!(error_code(&events), code, "{name}: {events:?}");
        let error = events.iter().find(|e| e.kind == "error").unwrap();
        assert_eq!(error.event["data"]["retryable"], false);
        assert!(!error.event["data"]["message"].as_str().unwrap().is_empty());
        assert_eq!(kinds(&events).last(), Some(&"complete"));
        // Refused for good: the upload is not kept.
        assert!(w.storage.get(finn.tenant, &key).await.is_err(), "{name}");
    }
    // A format the worker does not read never runs.
    let events = w
        .run(
            finn,
            Uuid::now_v7(),
            INGEST,
            json!({"key": format!("{}/uploads/x.docx", finn.tenant), "document_id": Uuid::now_v7(),
                "name": "x.docx", "format": "docx"}),
        )
        .await;
    assert_eq!(error_code(&events), "invalid_payload");
    // A file that is not there.
    let events = w
        .run(
            finn,
            Uuid::now_v7(),
            INGEST,
            json!({"key": format!("{}/uploads/20260101T000000_gone.txt", finn.tenant),
                "document_id": Uuid::now_v7(), "name": "gone.txt", "format": "txt"}),
        )
        .await;
    assert_eq!(error_code(&events), "not_found");
    let listed = w
        .result(finn, Uuid::now_v7(), LIST_DOCUMENTS, json!({}))
        .await;
    assert_eq!(listed["documents"], json!([]), "nothing half-indexed");
}
