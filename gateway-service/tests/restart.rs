//! A chat survives a restart of every process: it is read back through the history API and the
//! conversation continues with its history.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Opts, System, text};
use uuid::Uuid;

#[tokio::test]
async fn a_chat_survives_a_restart_of_every_process() {
    let core = common::testing::isolated_settings();
    let tenant = Uuid::now_v7();
    let system = System::start(Opts::with_core(core.clone())).await;
    // One user across both lives of the system.
    let user = Uuid::now_v7();
    let token = common::auth::JwtAuth::hs256(common::testing::TEST_SECRET.as_bytes())
        .issue(
            user,
            tenant,
            common::auth::Role::User,
            std::time::Duration::from_secs(600),
        )
        .unwrap();
    let (mut ws, session) = system.connect(&token).await;
    ws.send(json!({"type": "chat", "prompt": "remember the word zephyr"}))
        .await;
    let before = text(&ws.until_complete().await);
    ws.close().await;
    system.stop().await;

    let system = System::start(Opts::with_core(core)).await;
    let http = reqwest::Client::new();
    let body: Value = http
        .get(format!("{}/api/v1/chat/sessions/{session}", system.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages = body["data"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{body}");
    assert_eq!(messages[0]["content"], "remember the word zephyr");
    assert_eq!(messages[1]["content"], before.as_str());
    assert_eq!(messages[1]["status"], "complete");

    // The conversation continues on the same session after the restart.
    let (mut ws, _) = system.connect(&token).await;
    ws.send(json!({"type": "chat", "prompt": "which word?", "session_id": session}))
        .await;
    let events = ws.until_complete().await;
    assert_eq!(events[0]["session_id"], session.as_str());
    let listed: Value = http
        .get(format!("{}/api/v1/chat/sessions", system.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = &listed["data"]["sessions"][0];
    assert_eq!(first["id"], session.as_str());
    assert_eq!(first["message_count"], 4);
}
