//! The HTTP service skeleton the services share. Here, at the socket and response level: serving
//! with a header read timeout (so half-open connections do not pile up), a request-body idle
//! timeout, the client's address for handlers, and the security headers of every response. In
//! the submodules: the caller from a bearer token ([`auth`]), query, path and body parsing whose
//! refusals are the REST envelope ([`extract`]), the one `limit` rule of lists ([`page`]), and
//! the liveness and readiness answers ([`probe`]).

pub mod auth;
pub mod extract;
pub mod page;
pub mod probe;

pub use auth::{admin_only, auth_error, bearer_claims, is_admin};
pub use extract::{Params, checked_query, json_body, path_id, query};
pub use page::{PageRule, truncate_page};
pub use probe::{Dependency, health, readiness};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_service::Service;

/// Socket-level limits of an HTTP service (`HTTP__…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// A connection must send a request's headers within this many seconds of connecting (or
    /// of its previous response); otherwise it is closed. Bounds half-open connections.
    pub header_read_timeout_secs: u64,
    /// A request body that sends nothing for this many seconds is abandoned (the request fails
    /// with 400); a slow but steady upload is not cut.
    pub body_idle_timeout_secs: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            body_idle_timeout_secs: 30,
        }
    }
}

/// Adds what every response of a service carries: the security headers (no MIME sniffing, no
/// framing by other sites, no referrer leaks) and the request-body idle timeout.
pub fn harden(router: Router, settings: &HttpSettings) -> Router {
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    router
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
            settings.body_idle_timeout_secs.max(1),
        )))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::REFERRER_POLICY, "no-referrer"))
}

/// Serves `router` on `listener` until `shutdown` fires, then lets open connections finish (each
/// is asked to close after its current response). Like `axum::serve`, plus hyper's header read
/// timeout, which `axum::serve` does not expose. Handlers can read the peer's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: &HttpSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let header_timeout = Duration::from_secs(settings.header_read_timeout_secs.max(1));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move {
                let response = router.call(request.map(axum::body::Body::new)).await;
                Ok::<_, Infallible>(response.unwrap_or_else(|e| match e {}))
            }
        });
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                    return;
                }
                () = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// The address a request came from: the TCP peer, or with `trust_forwarded_for` the last
/// `X-Forwarded-For` entry (the one the fronting proxy appended; earlier entries are the
/// client's own claims). `None` outside [`serve`] (a router called directly).
pub fn client_addr(
    parts: &axum::http::request::Parts,
    trust_forwarded_for: bool,
) -> Option<std::net::IpAddr> {
    if trust_forwarded_for
        && let Some(forwarded) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(forwarded);
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}
