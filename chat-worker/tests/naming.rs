//! `chat.session.name` against a provider simulator: the title is asked of the model with the
//! session's first messages, cleaned, stored, and sent whole; other tenants' sessions are not found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use common::testing::{Received, isolated_settings};
use provider_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use support::{Harness, point};
use uuid::Uuid;

struct Setup {
    sim: Simulator,
    h: Harness,
}

async fn setup() -> Setup {
    // Every reply is one chunk that a model answering "title?" might send.
    let sim = Simulator::start(SimConfig {
        chunks: 1,
        chunk_text: "\"Alpine Hiking Weekend.\"\n".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut settings = support::settings(&isolated_settings());
    point(&mut settings, "openai", sim.base_url(), "k");
    Setup {
        sim,
        h: Harness::start(settings).await,
    }
}

impl Setup {
    async fn run(
        &self,
        action_type: &str,
        tenant: Uuid,
        session: Uuid,
        data: Value,
    ) -> Vec<Received> {
        self.h.run(action_type, tenant, session, data).await
    }
}

#[tokio::test]
async fn the_model_titles_the_session_and_the_title_is_stored() {
    let s = setup().await;
    let (tenant, session) = (Uuid::now_v7(), Uuid::now_v7());
    s.run(
        "chat.completion.generate",
        tenant,
        session,
        json!({"prompt": "Which trails near Chamonix suit a weekend?"}),
    )
    .await;

    let events = s.run("chat.session.name", tenant, session, json!({})).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "working",
            "model_in_use",
            "text_completed",
            "db_operation_executed",
            "tts_not_requested",
            "complete"
        ]
    );
    assert_eq!(events[2].event["data"]["content"], "Alpine Hiking Weekend");
    assert_eq!(
        events[3].event["data"],
        json!({"operation": "session_titled", "session_id": session})
    );
    let title: Option<String> = sqlx::query_scalar("SELECT title FROM chat_sessions WHERE id = $1")
        .bind(session)
        .fetch_one(&s.h.db)
        .await
        .unwrap();
    assert_eq!(title.as_deref(), Some("Alpine Hiking Weekend"));

    // The model saw instructions and the conversation's start, and had little room to ramble.
    let request = &s.sim.requests()[1].body;
    assert_eq!(request["messages"][0]["role"], "system");
    let prompt = request["messages"][1]["content"].as_str().unwrap();
    assert!(
        prompt.contains("User: Which trails near Chamonix suit a weekend?"),
        "{prompt}"
    );
    assert!(
        prompt.contains("Assistant: \"Alpine Hiking Weekend.\""),
        "{prompt}"
    );
    assert_eq!(request["max_completion_tokens"], 48);
}

#[tokio::test]
async fn another_tenants_session_is_not_found() {
    let s = setup().await;
    let session = Uuid::now_v7();
    s.run(
        "chat.completion.generate",
        Uuid::now_v7(),
        session,
        json!({"prompt": "private"}),
    )
    .await;
    // Told on the asker's own callback stream, never on the session's.
    let events =
        s.h.run_with_callback("chat.session.name", Uuid::now_v7(), session, json!({}))
            .await;
    let error = events.iter().find(|e| e.kind == "error").expect("error");
    assert_eq!(error.event["data"]["code"], "session_not_owned");
    assert!(events.iter().all(|e| e.kind != "text_completed"));
    assert_eq!(s.sim.requests().len(), 1, "the model was not asked");
}
