//! Half-open connections: part of an HTTP request's headers, then silence. A server with a header
//! read timeout closes them; one without holds each (a socket, a task, buffers) until the client
//! goes away. Measures, per connection, how long after connecting the server closed it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats::round3;

/// What became of the half-open connections to one service.
#[derive(Debug)]
pub struct Release {
    /// Which service (`gateway`, `health`).
    pub service: &'static str,
    /// Connections asked for.
    pub requested: usize,
    /// Connections that sent their partial request.
    pub opened: usize,
    /// The bound: a connection still open this long after connecting is held.
    pub bound: Duration,
    /// Seconds from connecting to the server's close (EOF or reset), of those it closed.
    close_secs: Vec<f64>,
}

impl Release {
    /// Closed by the server within the bound.
    pub fn closed_within(&self) -> usize {
        let bound = self.bound.as_secs_f64();
        self.close_secs.iter().filter(|s| **s <= bound).count()
    }

    /// Still open when the bound had passed.
    pub fn held(&self) -> usize {
        self.opened - self.closed_within()
    }

    /// Passes when something was opened and the server closed all of it within the bound.
    pub fn released(&self) -> bool {
        self.opened > 0 && self.held() == 0
    }

    fn close_quantile(&self, q: f64) -> Option<f64> {
        let mut s = self.close_secs.clone();
        s.sort_by(f64::total_cmp);
        let i = ((s.len() as f64 - 1.0) * q).round() as usize;
        s.get(i).copied()
    }

    /// The figures for the result.
    pub fn json(&self) -> Value {
        let q = |x: f64| self.close_quantile(x).map(round3);
        json!({
            "requested": self.requested,
            "opened": self.opened,
            "bound_secs": self.bound.as_secs(),
            "closed_by_server_within_bound": self.closed_within(),
            "closed_by_server_later": self.close_secs.len() - self.closed_within(),
            "held_after_bound": self.held(),
            "close_after_secs": {"min": q(0.0), "p50": q(0.5), "max": q(1.0)},
        })
    }

    /// A one-line human form.
    pub fn line(&self) -> String {
        let secs = self.bound.as_secs();
        let range = match (self.close_quantile(0.0), self.close_quantile(1.0)) {
            (Some(a), Some(b)) => format!(", closed {a:.1}–{b:.1} s after connecting"),
            _ => String::new(),
        };
        format!(
            "{} {} half-open: {} closed by the server within {secs} s, {} held after {secs} s{range}",
            self.service,
            self.opened,
            self.closed_within(),
            self.held(),
        )
    }
}

/// Opens `n` connections to `addr`, each sending `partial` (headers without the blank line that
/// ends them) and nothing more, and watches each until the server closes it, or until `stop` is
/// set and it has been open for `bound`; never past `hard_end`.
pub async fn hold(
    service: &'static str,
    addr: String,
    partial: String,
    n: usize,
    bound: Duration,
    stop: Arc<AtomicBool>,
    hard_end: Instant,
) -> Release {
    let mut watchers = Vec::with_capacity(n);
    for _ in 0..n {
        if stop.load(Ordering::Relaxed) || Instant::now() >= hard_end {
            break;
        }
        let connected = tokio::time::timeout(Duration::from_secs(5), async {
            let mut s = TcpStream::connect(&addr).await?;
            s.write_all(partial.as_bytes()).await?;
            Ok::<_, std::io::Error>(s)
        })
        .await;
        let Ok(Ok(s)) = connected else {
            continue;
        };
        // The server's clock starts at the connection; ours too (connect and write are one
        // loopback round trip).
        let opened = Instant::now();
        let stop = stop.clone();
        watchers.push(tokio::spawn(async move {
            watch(s, opened, bound, &stop, hard_end).await
        }));
    }
    let opened = watchers.len();
    let mut close_secs = Vec::new();
    for w in watchers {
        if let Ok(Some(d)) = w.await {
            close_secs.push(d.as_secs_f64());
        }
    }
    Release {
        service,
        requested: n,
        opened,
        bound,
        close_secs,
    }
}

/// How long after `opened` the server closed `s`; `None` if it still held it when we let go.
async fn watch(
    mut s: TcpStream,
    opened: Instant,
    bound: Duration,
    stop: &AtomicBool,
    hard_end: Instant,
) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    loop {
        let now = Instant::now();
        if now >= hard_end || (stop.load(Ordering::Relaxed) && now >= opened + bound) {
            return None;
        }
        // End of stream or a reset: the server closed it. An answer (a 408, say) before the
        // close, or nothing yet: keep reading.
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await
        {
            return Some(opened.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_counts_what_was_not_closed_within_the_bound() {
        let r = Release {
            service: "gateway",
            requested: 5,
            opened: 4,
            bound: Duration::from_secs(30),
            close_secs: vec![10.2, 10.0, 31.0],
        };
        assert_eq!(r.closed_within(), 2);
        assert_eq!(r.held(), 2);
        assert!(!r.released());
        assert_eq!(r.json()["close_after_secs"]["min"], 10.0);
        assert_eq!(r.json()["closed_by_server_later"], 1);
    }
}
