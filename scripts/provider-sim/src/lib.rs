//! Local stand-in for LLM providers, speaking OpenAI's Chat Completions wire format with scriptable failures.
//!
//! Integration tests and benchmarks start a [`Simulator`] on port 0, point their OpenAI client at
//! [`Simulator::base_url`], script failures with [`Simulator::push_script`] and inspect what was
//! received with [`Simulator::requests`]. The `provider-sim` binary serves the same thing and is
//! driven over HTTP: `POST /_sim/script` queues behaviours, `GET /_sim/requests` lists requests.

mod config;
mod engine;
mod openai;
mod record;
mod server;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{Behaviour, SimConfig};
pub use record::RequestRecord;

use server::Shared;

/// How long `shutdown` waits for connections to wind down before aborting the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulator; dropping it stops the server.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    graceful: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts a simulator on an ephemeral port of 127.0.0.1.
    pub async fn start(config: SimConfig) -> io::Result<Simulator> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts a simulator listening on `addr`.
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Chunks are tiny and latency is what clients measure, so Nagle's algorithm must not
        // hold them back waiting for an ACK.
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::warn!(%err, "could not set TCP_NODELAY");
            }
        });
        let shared = Arc::new(Shared::new(config));
        let graceful = CancellationToken::new();
        let app = server::router(Arc::clone(&shared));
        let signal = graceful.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::error!(%err, "provider-sim server failed");
            }
        });
        tracing::info!(%addr, "provider-sim listening");
        Ok(Simulator {
            addr,
            shared,
            graceful,
            task: Some(task),
        })
    }

    /// The address the simulator is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL for an OpenAI client, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        // A wildcard bind is reachable through loopback, and a wildcard is no URL host.
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}/v1", SocketAddr::new(ip, self.addr.port()))
    }

    /// Queues `behaviour` for the next request; with an empty queue `SimConfig::behaviour` applies.
    pub fn push_script(&self, behaviour: Behaviour) {
        self.shared.push_script([behaviour]);
    }

    /// Snapshot of every request served so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.recorder().snapshot()
    }

    /// Waits for a request whose client hung up before its reply was complete.
    ///
    /// Each client close is returned once, oldest first, so a close that happened before the
    /// call is returned at once and consecutive calls see consecutive closes. `None` on timeout.
    pub async fn wait_for_client_close(&self, timeout: Duration) -> Option<RequestRecord> {
        self.shared.recorder().wait_for_client_close(timeout).await
    }

    /// Stops accepting connections, cuts replies still in flight and waits for the server to end.
    pub async fn shutdown(mut self) {
        self.graceful.cancel();
        self.shared.stop_token().cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            tracing::warn!("provider-sim did not stop in time; aborting it");
            task.abort();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.graceful.cancel();
        self.shared.stop_token().cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
