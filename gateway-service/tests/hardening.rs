//! The gateway against careless and hostile clients: half-open connections are closed, tokens
//! are checked for `nbf` and stop working on an open WebSocket when they expire, WebSockets per
//! tenant are bounded, and every response carries the security headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use common::auth::{Claims, JwtAuth, Role, unix_now};
use common::testing::TEST_SECRET;
use serde_json::json;
use support::{Ended, Opts, System, Ws};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

fn token(exp: u64, nbf: Option<u64>) -> String {
    JwtAuth::hs256(TEST_SECRET.as_bytes())
        .sign(&Claims {
            sub: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            role: Role::User,
            exp,
            nbf,
        })
        .unwrap()
}

#[tokio::test]
async fn a_half_open_connection_is_closed_by_the_server() {
    let mut opts = Opts::new();
    opts.gateway.http.header_read_timeout_secs = 1;
    let system = System::start(opts).await;
    let addr = system.http.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A request line and one header, then silence.
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
        .await
        .expect("the server kept the half-open connection");
    // Closed (EOF or reset), possibly after a 408.
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        }
    }
    system.stop().await;
}

#[tokio::test]
async fn responses_carry_the_security_headers() {
    let system = System::start(Opts::new()).await;
    let http = reqwest::Client::new();
    for path in ["/health", "/api/v1/chat/sessions", "/no/such/path"] {
        let r = http
            .get(format!("{}{path}", system.http))
            .send()
            .await
            .unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
    system.stop().await;
}

#[tokio::test]
async fn a_token_valid_only_later_is_refused() {
    let system = System::start(Opts::new()).await;
    let early = token(unix_now() + 7200, Some(unix_now() + 3600));
    let r = reqwest::Client::new()
        .get(format!("{}/auth/me", system.http))
        .bearer_auth(&early)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let mut ws = Ws::connect(&format!("{}?token={early}", system.ws)).await;
    let (events, ended) = ws.until_closed().await;
    assert_eq!(ended, Ended::Closed(1008));
    assert_eq!(events[0]["data"]["code"], "unauthorized");
    system.stop().await;
}

#[tokio::test]
async fn an_open_websocket_stops_when_its_token_expires() {
    let system = System::start(Opts::new()).await;
    // Valid for two more seconds (plus the verification leeway).
    let short = token(unix_now() + 2, None);
    let (mut ws, _) = system.connect(&short).await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await["type"], "pong");
    let (events, ended) = ws.until_closed().await;
    assert_eq!(ended, Ended::Closed(1008));
    assert_eq!(events.last().unwrap()["data"]["code"], "token_expired");
    system.stop().await;
}

#[tokio::test]
async fn websockets_per_tenant_are_bounded() {
    let mut opts = Opts::new();
    opts.gateway.ws.max_per_tenant = 2;
    let system = System::start(opts).await;
    let tenant = Uuid::now_v7();
    let (first, _) = system.connect(&system.token(tenant)).await;
    let (_second, _) = system.connect(&system.token(tenant)).await;
    let mut third = Ws::connect(&format!("{}?token={}", system.ws, system.token(tenant))).await;
    let (events, ended) = third.until_closed().await;
    assert_eq!(ended, Ended::Closed(1013));
    assert_eq!(events[0]["data"]["code"], "too_many_connections");
    // Another tenant is not affected; a closed connection frees its slot.
    system.connect(&system.token(Uuid::now_v7())).await;
    first.close().await;
    let mut freed = false;
    for _ in 0..50 {
        let mut ws = Ws::connect(&format!("{}?token={}", system.ws, system.token(tenant))).await;
        // Refused connections close at once; an accepted one stays open.
        if tokio::time::timeout(Duration::from_secs(1), ws.until_closed())
            .await
            .is_err()
        {
            freed = true;
            break;
        }
    }
    assert!(freed);
    system.stop().await;
}
