//! The chat-history REST API and session naming, end to end over HTTP and the WebSocket: turns
//! stored by the chat-worker read back, pagination, rename, delete, search, cancelled turns,
//! titles, and what another tenant (or another user) cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use common::auth::{JwtAuth, Role};
use common::testing::{TEST_SECRET, xrange_all};
use redis::AsyncCommands;
use serde_json::{Value, json};
use support::{Opts, System, kinds, text};
use uuid::Uuid;

/// A token for a known user of `tenant`.
fn token_for(user: Uuid, tenant: Uuid, role: Role) -> String {
    JwtAuth::hs256(TEST_SECRET.as_bytes())
        .issue(user, tenant, role, Duration::from_secs(600))
        .unwrap()
}

/// An HTTP client speaking as one token.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(system: &System, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: system.http.clone(),
            token: token.to_owned(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"].as_u64(), Some(u64::from(status)), "{body}");
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// One `POST /chat` turn; returns the session id.
    async fn chat(&self, prompt: &str, session: Option<&str>) -> String {
        let (status, body) = self
            .post("/chat", json!({"prompt": prompt, "session_id": session}))
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"]["session_id"].as_str().unwrap().to_owned()
    }

    /// Every session id the list shows, page by page.
    async fn list_ids(&self, query: &str) -> Vec<String> {
        let (status, body) = self.get(&format!("/api/v1/chat/sessions?{query}")).await;
        assert_eq!(status, 200, "{body}");
        ids(&body["data"]["sessions"])
    }
}

fn ids(sessions: &Value) -> Vec<String> {
    sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_websocket_turn_is_stored_with_both_messages() {
    let system = System::start(Opts::new()).await;
    let token = system.token(Uuid::now_v7());
    let (mut ws, session) = system.connect(&token).await;
    ws.send(json!({"type": "chat", "prompt": "remember the lighthouse"}))
        .await;
    let events = ws.until_complete().await;
    let saved = events
        .iter()
        .find(|e| e["type"] == "db_operation_executed")
        .expect("db_operation_executed");
    assert_eq!(saved["data"]["operation"], "chat_turn_saved");

    let (status, body) = Api::new(&system, &token)
        .get(&format!("/api/v1/chat/sessions/{session}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["id"], session.as_str());
    assert_eq!(data["message_count"], 2);
    assert_eq!(data["next_before"], Value::Null);
    let messages = data["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{data}");
    let (user, assistant) = (&messages[0], &messages[1]);
    assert_eq!(
        (
            user["role"].as_str(),
            user["content"].as_str(),
            user["status"].as_str()
        ),
        (
            Some("user"),
            Some("remember the lighthouse"),
            Some("complete")
        )
    );
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["status"], "complete");
    assert_eq!(assistant["content"].as_str().unwrap(), text(&events));
    assert_eq!(
        (assistant["provider"].as_str(), assistant["model"].as_str()),
        (Some("dummy"), Some("dummy"))
    );
    assert_eq!(assistant["usage"]["output_tokens"], 8);
    assert!(assistant["latency_ms"].as_i64().unwrap() >= 0);
    assert_eq!(user["task_id"], assistant["task_id"]);
    assert_eq!(
        data["last_message_preview"].as_str(),
        assistant["content"].as_str()
    );

    // The newest messages first page by page with `before`, each page in order.
    let api = Api::new(&system, &token);
    let (_, body) = api
        .get(&format!("/api/v1/chat/sessions/{session}?limit=1"))
        .await;
    let page = &body["data"];
    assert_eq!(page["messages"][0]["role"], "assistant");
    let before = page["next_before"].as_str().unwrap();
    let (_, body) = api
        .get(&format!(
            "/api/v1/chat/sessions/{session}?limit=1&before={before}"
        ))
        .await;
    assert_eq!(body["data"]["messages"][0]["role"], "user");
    assert_eq!(body["data"]["next_before"], Value::Null);
}

#[tokio::test]
async fn sessions_are_listed_newest_first_page_by_page() {
    let system = System::start(Opts::new()).await;
    let tenant = Uuid::now_v7();
    let api = Api::new(&system, &token_for(Uuid::now_v7(), tenant, Role::User));
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(api.chat(&format!("session number {i}"), None).await);
    }
    // Another turn moves a session to the top.
    api.chat("once more", Some(&created[1])).await;
    let mut expected: Vec<String> = created.iter().rev().cloned().collect();
    expected.retain(|s| s != &created[1]);
    expected.insert(0, created[1].clone());

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("/api/v1/chat/sessions?limit=2&cursor={c}"),
            None => "/api/v1/chat/sessions?limit=2".to_owned(),
        };
        let (status, body) = api.get(&query).await;
        assert_eq!(status, 200, "{body}");
        let page = &body["data"];
        let page_ids = ids(&page["sessions"]);
        assert!(page_ids.len() <= 2);
        seen.extend(page_ids);
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected, "newest first, no duplicates, no gaps");

    let (_, body) = api.get("/api/v1/chat/sessions?limit=1").await;
    let top = &body["data"]["sessions"][0];
    assert_eq!(top["message_count"], 4);
    assert!(
        top["last_message_preview"]
            .as_str()
            .unwrap()
            .starts_with("Echo: once more")
    );

    // Users see their own sessions; an admin sees the tenant's with all=true.
    let other_user = Api::new(&system, &token_for(Uuid::now_v7(), tenant, Role::User));
    assert!(other_user.list_ids("").await.is_empty());
    let (status, _) = other_user.get("/api/v1/chat/sessions?all=true").await;
    assert_eq!(status, 403);
    let admin = Api::new(&system, &token_for(Uuid::now_v7(), tenant, Role::Admin));
    assert!(admin.list_ids("").await.is_empty());
    assert_eq!(admin.list_ids("all=true&limit=100").await, expected);

    // limit=101: over the maximum is refused, not shortened (the one page rule).
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=garbage"] {
        let (status, body) = api.get(&format!("/api/v1/chat/sessions?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let r = reqwest::get(format!("{}/api/v1/chat/sessions", system.http))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_session_is_renamed_and_deleted_with_its_streams() {
    let system = System::start(Opts::new()).await;
    let api = Api::new(&system, &system.token(Uuid::now_v7()));
    let session = api.chat("something to forget", None).await;
    let path = format!("/api/v1/chat/sessions/{session}");

    let (status, body) = api.patch(&path, json!({"title": "  Forgettable  "})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["title"], "Forgettable");
    assert_eq!(body["data"]["message_count"], 2);
    let (_, body) = api.get(&path).await;
    assert_eq!(body["data"]["title"], "Forgettable");
    for bad in [
        json!({"title": " "}),
        json!({"title": "x".repeat(201)}),
        json!({}),
    ] {
        let (status, _) = api.patch(&path, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _) = api.get("/api/v1/chat/sessions/not-a-uuid").await;
    assert_eq!(status, 400);

    let names = system.core.names();
    let id: Uuid = session.parse().unwrap();
    let mut redis = system.redis().get_connection_manager().await.unwrap();
    let stream = names.response_stream(id);
    assert!(redis.exists::<_, bool>(&stream).await.unwrap());
    assert!(
        redis
            .exists::<_, bool>(names.session_owner(id))
            .await
            .unwrap()
    );

    let (status, body) = api.delete(&path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({"session_id": session, "deleted": true})
    );
    assert_eq!(api.get(&path).await.0, 404);
    assert_eq!(api.delete(&path).await.0, 404);
    assert!(!api.list_ids("").await.contains(&session));
    assert!(!redis.exists::<_, bool>(&stream).await.unwrap());
    assert!(
        !redis
            .exists::<_, bool>(names.session_owner(id))
            .await
            .unwrap()
    );
    let (_, body) = api.get("/api/v1/chat/search?q=forget").await;
    assert_eq!(body["data"]["results"], json!([]));
}

#[tokio::test]
async fn search_finds_a_word_in_the_tenant_only() {
    let system = System::start(Opts::new()).await;
    let a = Api::new(&system, &system.token(Uuid::now_v7()));
    let b = Api::new(&system, &system.token(Uuid::now_v7()));
    let a_session = a.chat("the \"quokka\" zephyrine & sings", None).await;
    a.chat("nothing special here", None).await;
    let b_session = b.chat("zephyrine elsewhere", None).await;

    let (status, body) = a.get("/api/v1/chat/search?q=zephyrine").await;
    assert_eq!(status, 200, "{body}");
    let results = body["data"]["results"].as_array().unwrap();
    // The user message and the dummy's echo of it.
    assert_eq!(results.len(), 2, "{body}");
    for hit in results {
        assert_eq!(hit["session_id"], a_session.as_str());
        assert!(hit["rank"].as_f64().unwrap() > 0.0);
        assert!(hit.get("session_title").is_some());
        let snippet = hit["snippet"].as_str().unwrap();
        assert!(snippet.contains("<mark>zephyrine</mark>"), "{snippet}");
        assert!(
            snippet.contains("<mark>zephyrine</mark> &amp; sings"),
            "{snippet}"
        );
    }
    let (_, body) = b.get("/api/v1/chat/search?q=zephyrine&limit=10").await;
    let results = body["data"]["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(
        results
            .iter()
            .all(|h| h["session_id"] == b_session.as_str())
    );
    let (_, body) = a.get("/api/v1/chat/search?q=elsewhere").await;
    assert_eq!(body["data"]["results"], json!([]));
    // Web-search syntax: a phrase, and exclusion.
    let (_, body) = a
        .get("/api/v1/chat/search?q=%22quokka%20zephyrine%22%20-special")
        .await;
    assert_eq!(body["data"]["results"].as_array().unwrap().len(), 2);

    for bad in ["q=", "q=%20%20", ""] {
        let (status, _) = a.get(&format!("/api/v1/chat/search?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test]
async fn a_cancelled_turn_is_stored_as_cancelled_with_its_partial_answer() {
    let system = System::start(Opts::new().dummy(2000, 10)).await;
    let token = system.token(Uuid::now_v7());
    let (mut ws, session) = system.connect(&token).await;
    ws.send(json!({"type": "chat", "prompt": "talk for a long time"}))
        .await;
    let mut events = ws.until("text_chunk").await;
    ws.send(json!({"type": "cancel"})).await;
    events.extend(ws.until_complete().await);
    assert!(kinds(&events).contains(&"cancelled".to_owned()));
    let streamed = text(&events);

    let (status, body) = Api::new(&system, &token)
        .get(&format!("/api/v1/chat/sessions/{session}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let assistant = &body["data"]["messages"][1];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["status"], "cancelled");
    let stored = assistant["content"].as_str().unwrap();
    // What the client saw before the cancel, no more and no less.
    assert!(stored.starts_with("Echo:"), "{stored}");
    assert_eq!(stored, streamed);
    let completed = events
        .iter()
        .find(|e| e["type"] == "text_completed")
        .unwrap();
    assert_eq!(completed["data"]["finish_reason"], "cancelled");
    assert!(stored.split_whitespace().count() < 2000);
}

#[tokio::test]
async fn a_session_is_named_from_its_first_message() {
    let system = System::start(Opts::new()).await;
    let (tenant, user) = (Uuid::now_v7(), Uuid::now_v7());
    let api = Api::new(&system, &token_for(user, tenant, Role::User));
    let session = api
        .chat("Plan a weekend hiking trip in the Alps with friends", None)
        .await;
    api.chat("and what should I pack", Some(&session)).await;

    let (status, body) = api
        .post("/chat/session-name", json!({"session_id": session}))
        .await;
    assert_eq!(status, 200, "{body}");
    let title = "Plan a weekend hiking trip in";
    assert_eq!(body["data"], json!({"session_id": session, "title": title}));
    let (_, body) = api.get("/api/v1/chat/sessions").await;
    assert_eq!(body["data"]["sessions"][0]["id"], session.as_str());
    assert_eq!(body["data"]["sessions"][0]["title"], title);

    // The task's events went to the session's stream like any task's.
    let mut redis = system.redis().get_connection_manager().await.unwrap();
    let entries = xrange_all(
        &mut redis,
        &system
            .core
            .names()
            .response_stream(session.parse().unwrap()),
    )
    .await;
    let titled = entries
        .iter()
        .find(|e| {
            e.kind == "db_operation_executed" && e.event["data"]["operation"] == "session_titled"
        })
        .expect("session_titled");
    assert_eq!(titled.event["data"]["session_id"], session.as_str());

    // Unknown sessions, and a stored session without messages (the worker says not_found).
    let (status, _) = api
        .post("/chat/session-name", json!({"session_id": Uuid::now_v7()}))
        .await;
    assert_eq!(status, 404);
    let empty = Uuid::now_v7();
    let db = sqlx::PgPool::connect(system.core.database_url.expose())
        .await
        .unwrap();
    sqlx::query("INSERT INTO chat_sessions (id, tenant_id, user_id) VALUES ($1, $2, $3)")
        .bind(empty)
        .bind(tenant)
        .bind(user)
        .execute(&db)
        .await
        .unwrap();
    let (status, body) = api
        .post("/chat/session-name", json!({"session_id": empty}))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = api.post("/chat/session-name", json!({})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn another_tenant_or_user_cannot_see_or_touch_a_session() {
    let system = System::start(Opts::new()).await;
    let tenant = Uuid::now_v7();
    let owner = Api::new(&system, &token_for(Uuid::now_v7(), tenant, Role::User));
    let session = owner.chat("the owner's secret marmalade", None).await;
    let path = format!("/api/v1/chat/sessions/{session}");

    let other_tenant_token = system.token(Uuid::now_v7());
    let other_tenant = Api::new(&system, &other_tenant_token);
    let same_tenant_user = Api::new(&system, &token_for(Uuid::now_v7(), tenant, Role::User));
    for intruder in [&other_tenant, &same_tenant_user] {
        assert!(!intruder.list_ids("").await.contains(&session));
        assert_eq!(intruder.get(&path).await.0, 404);
        assert_eq!(intruder.patch(&path, json!({"title": "mine"})).await.0, 404);
        assert_eq!(intruder.delete(&path).await.0, 404);
        let (status, _) = intruder
            .post("/chat/session-name", json!({"session_id": session}))
            .await;
        assert_eq!(status, 404);
        let (_, body) = intruder.get("/api/v1/chat/search?q=marmalade").await;
        assert_eq!(body["data"]["results"], json!([]));
    }
    // An admin of another tenant sees nothing either, even with all=true.
    let other_admin = Api::new(&system, &system.admin_token(Uuid::now_v7()));
    assert_eq!(other_admin.get(&path).await.0, 404);
    assert!(!other_admin.list_ids("all=true").await.contains(&session));
    let (_, body) = other_admin
        .get("/api/v1/chat/search?q=marmalade&all=true")
        .await;
    assert_eq!(body["data"]["results"], json!([]));

    let (mut ws, _) = system.connect(&other_tenant_token).await;
    ws.send(json!({"type": "resume", "session_id": session, "last_event_id": "0-0"}))
        .await;
    let e = ws.next().await;
    assert_eq!(
        (e["type"].as_str(), e["data"]["code"].as_str()),
        (Some("error"), Some("not_found"))
    );

    // Nothing happened to it; the tenant's admin reaches it.
    let (status, body) = owner.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["title"], Value::Null);
    assert_eq!(body["data"]["message_count"], 2);
    let admin = Api::new(&system, &token_for(Uuid::now_v7(), tenant, Role::Admin));
    assert_eq!(admin.get(&path).await.0, 200);
    let (_, body) = admin.get("/api/v1/chat/search?q=marmalade&all=true").await;
    assert_eq!(body["data"]["results"].as_array().unwrap().len(), 2);
}
