//! `chat.session.name` against a provider simulator: the title is asked of the model with the
//! session's first messages, cleaned, stored, and sent whole; other tenants' sessions are not found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chat_worker::Settings;
use chat_worker::config::ProviderAccess;
use common::Bus;
use common::envelope::DomainAction;
use common::settings::Secret;
use common::testing::{Received, isolated_settings, read_until};
use provider_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Setup {
    sim: Simulator,
    bus: Bus,
    client: redis::Client,
    db: PgPool,
    shutdown: CancellationToken,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
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
    let core = isolated_settings();
    let mut settings = Settings {
        core: core.clone(),
        provider_retries: 0,
        ..Settings::default()
    };
    settings.providers.insert(
        "openai".into(),
        ProviderAccess {
            api_key: Some(Secret::new("k")),
            base_url: Some(sim.base_url()),
        },
    );
    let db = common::db::connect(&core).await.unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(chat_worker::run(settings, shutdown.clone()));
    Setup {
        sim,
        bus: Bus::connect(&core).await.unwrap(),
        client: redis::Client::open(core.redis_url.as_str()).unwrap(),
        db,
        shutdown,
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
        let action = DomainAction::new(action_type, "test", tenant, session, data);
        self.bus.publish(&action).await.unwrap();
        read_until(
            &self.client,
            &self.bus.names().response_stream(session),
            "complete",
            Some(action.task_id),
            Duration::from_secs(20),
        )
        .await
        .into_iter()
        .filter(|e| e.event["task_id"] == action.task_id.to_string())
        .collect()
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
        .fetch_one(&s.db)
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
    let events = s
        .run("chat.session.name", Uuid::now_v7(), session, json!({}))
        .await;
    let error = events.iter().find(|e| e.kind == "error").expect("error");
    assert_eq!(error.event["data"]["code"], "not_found");
    assert!(events.iter().all(|e| e.kind != "text_completed"));
    assert_eq!(s.sim.requests().len(), 1, "the model was not asked");
}
