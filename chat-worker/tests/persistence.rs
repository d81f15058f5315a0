//! Chat history written by the chat-worker: both messages of a turn, history loaded into the next
//! prompt within its budget, cancelled replies, persistence failures that do not cost the client
//! its answer, and sessions that stay with their tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chat_worker::Settings;
use common::envelope::DomainAction;
use common::llm::DummySettings;
use common::settings::{CoreSettings, Secret};
use common::testing::{Received, isolated_settings};
use provider_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use sqlx::Row;
use support::{Harness, point};
use uuid::Uuid;

struct Setup {
    sim: Simulator,
    h: Harness,
}

async fn setup(core: CoreSettings, tweak: impl FnOnce(&mut Settings)) -> Setup {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut settings = support::settings(&core);
    settings.dummy = DummySettings {
        tokens: 400,
        first_token_delay_ms: 0,
        token_interval_ms: 10,
    };
    point(&mut settings, "openai", sim.base_url(), "k");
    tweak(&mut settings);
    Setup {
        sim,
        h: Harness::start(settings).await,
    }
}

impl Setup {
    async fn publish(&self, tenant: Uuid, session: Uuid, data: Value) -> DomainAction {
        self.h
            .publish("chat.completion.generate", tenant, session, data)
            .await
    }

    async fn wait(&self, action: &DomainAction, kind: &str) -> Vec<Received> {
        self.h.wait(action, kind).await
    }

    async fn ask(&self, tenant: Uuid, session: Uuid, data: Value) -> Vec<Received> {
        self.h.ask_in(tenant, session, data).await
    }

    async fn rows(&self, session: Uuid) -> Vec<sqlx::postgres::PgRow> {
        sqlx::query(
            "SELECT id, tenant_id, task_id, role, content, model, provider, usage, latency_ms, status
             FROM chat_messages WHERE session_id = $1 ORDER BY created_at, role DESC",
        )
        .bind(session)
        .fetch_all(&self.h.db)
        .await
        .unwrap()
    }
}

use support::first as find;

#[tokio::test]
async fn a_turn_is_stored_and_the_next_turn_sees_it() {
    let s = setup(isolated_settings(), |_| {}).await;
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    let events = s
        .ask(
            tenant,
            session,
            json!({"prompt": "my name is Ada", "model": "gpt-4o-mini"}),
        )
        .await;
    let saved = find(&events, "db_operation_executed").expect("db_operation_executed");
    let rows = s.rows(session).await;
    assert_eq!(rows.len(), 2);
    let (user, assistant) = (&rows[0], &rows[1]);
    assert_eq!(user.get::<String, _>("role"), "user");
    assert_eq!(user.get::<String, _>("content"), "my name is Ada");
    assert_eq!(
        saved["user_message_id"],
        user.get::<Uuid, _>("id").to_string()
    );
    assert_eq!(assistant.get::<String, _>("role"), "assistant");
    assert_eq!(
        saved["assistant_message_id"],
        assistant.get::<Uuid, _>("id").to_string()
    );
    assert_eq!(
        assistant.get::<String, _>("content"),
        "tok tok tok tok tok "
    );
    assert_eq!(assistant.get::<String, _>("status"), "complete");
    assert_eq!(
        assistant.get::<Option<String>, _>("model").as_deref(),
        Some("gpt-4o-mini")
    );
    assert_eq!(
        assistant.get::<Option<String>, _>("provider").as_deref(),
        Some("openai")
    );
    assert_eq!(
        assistant.get::<Option<Value>, _>("usage").unwrap()["output_tokens"],
        5
    );
    assert!(assistant.get::<Option<i32>, _>("latency_ms").is_some());
    assert_eq!(assistant.get::<Uuid, _>("tenant_id"), tenant);

    s.ask(
        tenant,
        session,
        json!({"prompt": "what is my name?", "model": "gpt-4o-mini"}),
    )
    .await;
    let sent = &s.sim.requests()[1].body["messages"];
    assert_eq!(
        sent[0],
        json!({"role": "user", "content": "my name is Ada"})
    );
    assert_eq!(
        sent[1],
        json!({"role": "assistant", "content": "tok tok tok tok tok "})
    );
    assert_eq!(
        sent[2],
        json!({"role": "user", "content": "what is my name?"})
    );
    assert_eq!(s.rows(session).await.len(), 4);
}

#[tokio::test]
async fn history_is_cut_to_the_token_budget_newest_first() {
    // "tok tok tok tok tok " costs 20/4 + 4 = 9 estimated tokens: only the newest message fits.
    let s = setup(isolated_settings(), |s| s.history_token_budget = 12).await;
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    s.ask(
        tenant,
        session,
        json!({"prompt": "first question here", "model": "gpt-4o-mini"}),
    )
    .await;
    s.ask(
        tenant,
        session,
        json!({"prompt": "second", "model": "gpt-4o-mini"}),
    )
    .await;
    let sent = &s.sim.requests()[1].body["messages"];
    assert_eq!(sent.as_array().unwrap().len(), 2, "{sent}");
    assert_eq!(sent[0]["role"], "assistant");
}

#[tokio::test]
async fn a_cancelled_reply_is_stored_as_cancelled_with_what_was_streamed() {
    let s = setup(isolated_settings(), |_| {}).await;
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    let action = s
        .publish(
            tenant,
            session,
            json!({"prompt": "go on and on", "model": "dummy"}),
        )
        .await;
    s.wait(&action, "text_chunk").await;
    s.h.bus.request_cancel(action.task_id).await.unwrap();
    let events = s.wait(&action, "complete").await;
    let streamed = find(&events, "text_completed").unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let rows = s.rows(session).await;
    let assistant = rows
        .iter()
        .find(|r| r.get::<String, _>("role") == "assistant")
        .unwrap();
    assert_eq!(assistant.get::<String, _>("status"), "cancelled");
    assert_eq!(assistant.get::<String, _>("content"), streamed);
    assert!(!streamed.is_empty());
}

#[tokio::test]
async fn a_failed_write_is_reported_and_the_answer_still_arrives() {
    // A database of its own, so breaking its table does not touch other tests.
    let mut core = isolated_settings();
    let name = format!("aibt_broken_{}", Uuid::now_v7().simple());
    core.database_url = Secret::new(format!("postgres://postgres@127.0.0.1:5432/{name}"));
    let s = setup(core, |_| {}).await;
    sqlx::query("ALTER TABLE chat_messages RENAME TO chat_messages_gone")
        .execute(&s.h.db)
        .await
        .unwrap();
    let events = s
        .ask(
            Uuid::now_v7(),
            Uuid::now_v7(),
            json!({"prompt": "hi", "model": "gpt-4o-mini"}),
        )
        .await;
    let errors: Vec<&Value> = events
        .iter()
        .filter(|e| e.kind == "error")
        .map(|e| &e.event["data"])
        .collect();
    assert_eq!(errors.len(), 2, "user message and reply: {errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e["stage"] == "persistence" && e["code"] == "persistence_failed")
    );
    assert_eq!(
        find(&events, "text_completed").unwrap()["content"],
        "tok tok tok tok tok "
    );
    assert_eq!(events.last().unwrap().kind, "complete");
    assert!(find(&events, "db_operation_executed").is_none());
}

#[tokio::test]
async fn a_session_stays_with_its_tenant() {
    let s = setup(isolated_settings(), |_| {}).await;
    let (owner, session) = (Uuid::now_v7(), Uuid::now_v7());
    s.ask(owner, session, json!({"prompt": "mine", "model": "dummy"}))
        .await;
    // Even once the owner's Redis key is gone (expired), the stored session decides.
    let _: () =
        redis::AsyncCommands::del(&mut s.h.bus.conn(), s.h.bus.names().session_owner(session))
            .await
            .unwrap();
    for store in [true, false] {
        let events =
            s.h.run_with_callback(
                "chat.completion.generate",
                Uuid::now_v7(),
                session,
                json!({"prompt": "let me in", "model": "dummy", "store": store}),
            )
            .await;
        let error = events.iter().find(|e| e.kind == "error").expect("error");
        assert_eq!(error.event["data"]["code"], "session_not_owned");
        assert!(events.iter().all(|e| e.kind != "text_chunk"));
        let task: Uuid = events[0].event["task_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(s.h.in_session(session, task).await.is_empty());
    }
    let rows = s.rows(session).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.get::<Uuid, _>("tenant_id") == owner));
    // The owner goes on as before.
    let events = s
        .ask(
            owner,
            session,
            json!({"prompt": "still mine", "model": "dummy"}),
        )
        .await;
    assert!(find(&events, "text_completed").is_some());
}

#[tokio::test]
async fn a_turn_with_store_false_is_answered_and_kept_out_of_the_history() {
    let s = setup(isolated_settings(), |_| {}).await;
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    s.ask(
        tenant,
        session,
        json!({"prompt": "remember me", "model": "gpt-4o-mini"}),
    )
    .await;
    let events = s
        .ask(
            tenant,
            session,
            json!({"prompt": "off the record", "model": "gpt-4o-mini", "store": false}),
        )
        .await;
    let done = find(&events, "text_completed").expect("text_completed");
    assert_eq!(done["content"], "tok tok tok tok tok ");
    assert!(find(&events, "db_operation_executed").is_none());
    // Stateless: the stored turn is not read into the prompt, and nothing new is written.
    let sent = &s.sim.requests()[1].body["messages"];
    assert_eq!(
        sent,
        &json!([{"role": "user", "content": "off the record"}])
    );
    assert_eq!(s.rows(session).await.len(), 2);
}
