//! The abusers other than the login flood and the half-open connections: WebSocket clients
//! that never read, upgraded connections that never authenticate, a flood of invalid tokens and
//! oversized frames. Each runs until `stop` and counts what the gateway did.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::chat;
use crate::context::Ctx;
use crate::ws::{self, Ws};

/// Outcome counters of the abusers.
#[derive(Default)]
pub struct Counters {
    slow_connected: AtomicU64,
    slow_chats_sent: AtomicU64,
    slow_sends_blocked: AtomicU64,
    silent_connected: AtomicU64,
    silent_closed_by_server: AtomicU64,
    invalid_attempts: AtomicU64,
    invalid_refused: AtomicU64,
    invalid_other: AtomicU64,
    oversized_sent: AtomicU64,
    oversized_closed_1009: AtomicU64,
    oversized_closed_1008: AtomicU64,
    oversized_dropped: AtomicU64,
    oversized_accepted: AtomicU64,
}

impl Counters {
    /// Oversized frames the gateway took as a message.
    pub fn oversized_accepted(&self) -> u64 {
        self.oversized_accepted.load(Ordering::Relaxed)
    }

    /// Every counter, for the result.
    pub fn json(&self) -> Value {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "slow_connected": load(&self.slow_connected),
            "slow_chats_sent": load(&self.slow_chats_sent),
            "slow_sends_blocked": load(&self.slow_sends_blocked),
            "silent_connected": load(&self.silent_connected),
            "silent_closed_by_server": load(&self.silent_closed_by_server),
            "invalid_attempts": load(&self.invalid_attempts),
            "invalid_refused": load(&self.invalid_refused),
            "invalid_other": load(&self.invalid_other),
            "oversized_sent": load(&self.oversized_sent),
            "oversized_closed_1009": load(&self.oversized_closed_1009),
            "oversized_closed_1008": load(&self.oversized_closed_1008),
            "oversized_dropped": load(&self.oversized_dropped),
            "oversized_accepted": load(&self.oversized_accepted),
        })
    }
}

/// A TCP connection to `addr` with a tiny receive buffer, so unread data backs up at once.
async fn tiny_buffer_tcp(addr: &str) -> anyhow::Result<TcpStream> {
    let sockaddr: std::net::SocketAddr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .context("no address")?;
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    Ok(socket.connect(sockaddr).await?)
}

/// Sends a chat every 200 ms and never reads.
pub async fn slow_reader(ctx: &Ctx, addr: &str, c: &Counters, stop: &AtomicBool) {
    let Ok(tcp) = tiny_buffer_tcp(addr).await else {
        return;
    };
    let url = ctx.ws_url_with(&ctx.token);
    let Ok((mut socket, _)) =
        tokio_tungstenite::client_async_with_config(url, tcp, Some(ws::small_config())).await
    else {
        return;
    };
    c.slow_connected.fetch_add(1, Ordering::Relaxed);
    while !stop.load(Ordering::Relaxed) {
        let message = ws::chat_message(
            &chat::prompt(&Uuid::new_v4().simple().to_string(), 5),
            &ctx.common.model,
        );
        let sent = tokio::time::timeout(
            Duration::from_secs(1),
            socket.send(Message::text(message.to_string())),
        )
        .await;
        match sent {
            Ok(Ok(())) => c.slow_chats_sent.fetch_add(1, Ordering::Relaxed),
            _ => c.slow_sends_blocked.fetch_add(1, Ordering::Relaxed),
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Opens `n` upgraded connections that never authenticate; holds them until `stop` and counts
/// those the server closes (its auth timeout).
pub async fn silent(ctx: &Ctx, n: usize, c: &Counters, stop: &AtomicBool) {
    let mut held: Vec<Ws> = Vec::new();
    for _ in 0..n {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let url = ctx.ws_url.clone();
        if let Ok(Ok((s, _))) = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async_with_config(url, Some(ws::small_config()), true),
        )
        .await
        {
            c.silent_connected.fetch_add(1, Ordering::Relaxed);
            held.push(s);
        }
    }
    let mut open: Vec<bool> = vec![true; held.len()];
    while !stop.load(Ordering::Relaxed) {
        for (open, s) in open.iter_mut().zip(held.iter_mut()) {
            if *open {
                // Whatever arrives (an error event, a close) or a read failure means the server
                // acted; a silent connection has nothing else to receive.
                let polled = tokio::time::timeout(Duration::from_millis(1), s.next()).await;
                if let Ok(item) = polled
                    && !matches!(item, Some(Ok(Message::Text(_))))
                {
                    *open = false;
                    c.silent_closed_by_server.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Connects with an invalid token `rate` times a second (at most 256 at once).
pub async fn invalid_flood(ctx: &Ctx, rate: u64, c: &Arc<Counters>, stop: &AtomicBool) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            continue;
        };
        i += 1;
        // Garbage, a well-formed token signed with another key, and `alg: none`.
        let token = match i % 3 {
            0 => "not-a-token".to_owned(),
            1 => "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl".to_owned(),
            _ => "eyJhbGciOiJub25lIn0.eyJzdWIiOiIwMTkwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJ0ZW5hbnRfaWQiOiIwMTkwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJyb2xlIjoiYWRtaW4iLCJleHAiOjQxMDI0NDQ4MDB9.".to_owned(),
        };
        let url = ctx.ws_url_with(&token);
        let c = c.clone();
        c.invalid_attempts.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let refused = tokio::time::timeout(Duration::from_secs(5), async {
                let (mut s, _) = tokio_tungstenite::connect_async_with_config(
                    url,
                    Some(ws::small_config()),
                    true,
                )
                .await?;
                let e = ws::next_event(&mut s).await?;
                Ok::<_, anyhow::Error>(e.is_some_and(|e| e.error_code() == Some("unauthorized")))
            })
            .await;
            if matches!(refused, Ok(Ok(true))) {
                c.invalid_refused.fetch_add(1, Ordering::Relaxed);
            } else {
                c.invalid_other.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
}

/// How the gateway answered an oversized frame.
enum Refusal {
    Closed(u16),
    Dropped,
    Accepted,
}

/// Sends `n` oversized text frames, each on its own authenticated connection, spread over
/// `secs`; half of them on connections without a token, as the first (`auth`) message.
pub async fn oversized(
    ctx: &Ctx,
    n: usize,
    bytes: usize,
    secs: u64,
    c: &Counters,
    stop: &AtomicBool,
) {
    let pause = Duration::from_secs_f64(secs as f64 / n.max(1) as f64);
    let big = format!("{{\"type\":\"chat\",\"prompt\":\"{}\"}}", "x".repeat(bytes));
    for i in 0..n {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let url = if i % 2 == 0 {
            ctx.ws_url_with(&ctx.token)
        } else {
            ctx.ws_url.clone()
        };
        // The server may close (and reset) while the frame is still being sent: a send or read
        // error is a dropped connection, a refusal too. Anything else means it was accepted.
        let outcome = tokio::time::timeout(Duration::from_secs(10), async {
            let (mut s, _) =
                tokio_tungstenite::connect_async_with_config(url, Some(ws::small_config()), true)
                    .await?;
            let sent = s.send(Message::text(big.clone())).await;
            c.oversized_sent.fetch_add(1, Ordering::Relaxed);
            if sent.is_err() {
                return Ok::<_, anyhow::Error>(Refusal::Dropped);
            }
            while let Some(m) = s.next().await {
                match m {
                    Ok(Message::Close(Some(frame))) => {
                        return Ok(Refusal::Closed(u16::from(frame.code)));
                    }
                    Ok(Message::Close(None)) | Err(_) => return Ok(Refusal::Dropped),
                    // `websocket_ready` (sent on connect, before the frame was read), and the
                    // `error` event that comes before the close.
                    Ok(Message::Text(t))
                        if t.as_str().contains("\"websocket_ready\"")
                            || t.as_str().contains("\"error\"") => {}
                    Ok(_) => return Ok(Refusal::Accepted),
                }
            }
            Ok(Refusal::Dropped)
        })
        .await;
        match outcome {
            Ok(Ok(Refusal::Closed(1009))) => {
                c.oversized_closed_1009.fetch_add(1, Ordering::Relaxed)
            }
            // Without a token the frame is the would-be `auth` message: refused as unauthorized.
            Ok(Ok(Refusal::Closed(1008))) => {
                c.oversized_closed_1008.fetch_add(1, Ordering::Relaxed)
            }
            Ok(Ok(Refusal::Dropped)) | Ok(Err(_)) => {
                c.oversized_dropped.fetch_add(1, Ordering::Relaxed)
            }
            Ok(Ok(Refusal::Closed(_) | Refusal::Accepted)) | Err(_) => {
                c.oversized_accepted.fetch_add(1, Ordering::Relaxed)
            }
        };
        tokio::time::sleep(pause).await;
    }
}
