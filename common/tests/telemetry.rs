//! Traces leave the process over OTLP/HTTP when an endpoint is set, and the W3C trace context of
//! an envelope makes the worker's span a child of the publisher's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use common::settings::CoreSettings;
use tracing::Instrument;

type Seen = Arc<Mutex<Vec<(String, usize)>>>;

async fn collector() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let store = seen.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                store.lock().unwrap().push((kind, body.len()));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_and_linked_through_traceparent() {
    let (url, seen) = collector().await;
    let settings = CoreSettings {
        otel_exporter_otlp_endpoint: Some(url),
        ..CoreSettings::default()
    };
    let guard = common::telemetry::init("telemetry-test", &settings).unwrap();

    let publisher = tracing::info_span!("publish");
    let traceparent = publisher
        .in_scope(common::telemetry::current_traceparent)
        .expect("a traceparent");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00");

    let worker = tracing::info_span!("action");
    common::telemetry::set_parent(&worker, Some(&traceparent));
    let child = async { common::telemetry::current_traceparent() }
        .instrument(worker)
        .await
        .unwrap();
    assert_eq!(child.split('-').nth(1), Some(parts[1]), "same trace id");
    assert_ne!(child.split('-').nth(2), Some(parts[2]), "a span of its own");
    drop(publisher);

    // Dropping the guard flushes the batch exporter.
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the collector received spans");
    assert!(
        seen.iter()
            .all(|(kind, len)| kind.contains("protobuf") && *len > 0),
        "{seen:?}"
    );
}
