//! Log of served requests, and the guard that notices a client hanging up mid-reply.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::Notify;

use crate::config::Behaviour;

/// Which provider API a request was made to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum WireFormat {
    /// OpenAI Chat Completions, `POST /v1/chat/completions`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages, `POST /v1/messages`.
    #[serde(rename = "anthropic")]
    Anthropic,
    /// Google Gemini, `POST /v1beta/models/{model}:generateContent` or `:streamGenerateContent`.
    #[serde(rename = "gemini")]
    Gemini,
}

impl WireFormat {
    /// The name used in `GET /_sim/requests`: `openai`, `anthropic` or `gemini`.
    pub fn as_str(self) -> &'static str {
        match self {
            WireFormat::OpenAi => "openai",
            WireFormat::Anthropic => "anthropic",
            WireFormat::Gemini => "gemini",
        }
    }
}

impl std::fmt::Display for WireFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request the simulator served, and how its reply went.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// Sequence number, starting at 0; equals the record's index in `Simulator::requests`.
    pub id: u64,
    /// The API the request was made to.
    pub format: WireFormat,
    /// Request path as received, without the query, e.g. `/v1/chat/completions` or
    /// `/v1beta/models/gemini-2.0-flash:streamGenerateContent`.
    pub path: String,
    /// The API key as received: OpenAI's `Authorization` header (`Bearer …`), Anthropic's
    /// `x-api-key` header, or Gemini's `x-goog-api-key` header (else its `key` query parameter).
    pub authorization: Option<String>,
    /// The JSON request body.
    pub body: serde_json::Value,
    /// The behaviour applied to this request.
    pub behaviour: Behaviour,
    /// When the request reached the handler.
    pub received_at: Instant,
    /// Paced units handed to the connection so far: text chunks, reasoning deltas, tool-argument
    /// pieces, or Gemini's whole function calls.
    pub chunks_sent: usize,
    /// When the reply's first event was handed to the connection: a stream's opening events
    /// (ahead of the first-token delay), else the whole response. `None` while nothing went out.
    pub first_event_at: Option<Instant>,
    /// When each paced unit was handed to the connection, oldest first (`chunks_sent` of them),
    /// so tests check the pacing on the simulator's clock rather than their own.
    pub unit_sent_at: Vec<Instant>,
    /// The simulator handed over the whole reply.
    pub finished: bool,
    /// The client dropped the connection or body before the simulator finished.
    pub client_closed: bool,
    /// When the client's drop was observed.
    pub closed_at: Option<Instant>,
}

/// JSON shape of a record for `GET /_sim/requests`: instants become milliseconds since start,
/// and also microseconds since the Unix epoch (`*_unix_us`), so other processes on the machine can
/// line their own clocks up with the simulator's (e.g. cancel sent → upstream closed).
#[derive(Serialize)]
pub(crate) struct RecordView<'a> {
    id: u64,
    format: WireFormat,
    path: &'a str,
    authorization: Option<&'a str>,
    body: &'a serde_json::Value,
    behaviour: &'a Behaviour,
    received_at_ms: u64,
    chunks_sent: usize,
    finished: bool,
    client_closed: bool,
    closed_at_ms: Option<u64>,
    received_at_unix_us: u64,
    closed_at_unix_us: Option<u64>,
}

impl<'a> RecordView<'a> {
    /// `started` and `started_wall` are the same moment on the monotonic and the wall clock.
    pub(crate) fn new(
        record: &'a RequestRecord,
        started: Instant,
        started_wall: SystemTime,
    ) -> Self {
        let ms = |at: Instant| millis(at.saturating_duration_since(started));
        let unix_us = |at: Instant| {
            let wall = started_wall + at.saturating_duration_since(started);
            wall.duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        };
        Self {
            id: record.id,
            format: record.format,
            path: &record.path,
            authorization: record.authorization.as_deref(),
            body: &record.body,
            behaviour: &record.behaviour,
            received_at_ms: ms(record.received_at),
            chunks_sent: record.chunks_sent,
            finished: record.finished,
            client_closed: record.client_closed,
            closed_at_ms: record.closed_at.map(ms),
            received_at_unix_us: unix_us(record.received_at),
            closed_at_unix_us: record.closed_at.map(unix_us),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Default)]
struct Log {
    records: Vec<RequestRecord>,
    /// Ids of client-closed requests in the order the closes were seen.
    closes: Vec<u64>,
    /// How many entries of `closes` `next_close` has already handed out.
    reported: usize,
}

/// Shared request log; cheap to lock because every critical section is a few field writes.
#[derive(Default)]
pub(crate) struct Recorder {
    log: Mutex<Log>,
    closed: Notify,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave a record half-written in a harmful way.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a record for a request that is about to be served and returns its id.
    pub(crate) fn open(
        &self,
        format: WireFormat,
        path: String,
        authorization: Option<String>,
        body: serde_json::Value,
        behaviour: Behaviour,
    ) -> u64 {
        let mut log = self.lock();
        let id = log.records.len() as u64;
        log.records.push(RequestRecord {
            id,
            format,
            path,
            authorization,
            body,
            behaviour,
            received_at: Instant::now(),
            chunks_sent: 0,
            first_event_at: None,
            unit_sent_at: Vec::new(),
            finished: false,
            client_closed: false,
            closed_at: None,
        });
        id
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut RequestRecord)) {
        let mut log = self.lock();
        if let Some(record) = usize::try_from(id)
            .ok()
            .and_then(|i| log.records.get_mut(i))
        {
            f(record);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<RequestRecord> {
        self.lock().records.clone()
    }

    pub(crate) fn with_records<T>(&self, f: impl FnOnce(&[RequestRecord]) -> T) -> T {
        f(&self.lock().records)
    }

    fn mark_client_closed(&self, id: u64) {
        {
            let mut log = self.lock();
            let Some(record) = usize::try_from(id)
                .ok()
                .and_then(|i| log.records.get_mut(i))
            else {
                return;
            };
            record.client_closed = true;
            record.closed_at = Some(Instant::now());
            log.closes.push(id);
        }
        tracing::debug!(id, "client closed before the reply finished");
        self.closed.notify_waiters();
    }

    /// Hands out the oldest client close not yet reported, so each close is seen once.
    fn next_close(&self) -> Option<RequestRecord> {
        let mut log = self.lock();
        let id = *log.closes.get(log.reported)?;
        log.reported += 1;
        log.records.get(usize::try_from(id).ok()?).cloned()
    }

    /// Waits until a client close that no earlier call has returned is available.
    pub(crate) async fn wait_for_client_close(&self, timeout: Duration) -> Option<RequestRecord> {
        let wait = async {
            loop {
                // Registering before checking closes the gap where a close lands in between.
                let notified = self.closed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(record) = self.next_close() {
                    return record;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }
}

/// Tracks one reply in flight; dropping it before `finish` or `abort` counts as a client close.
pub(crate) struct ResponseGuard {
    recorder: std::sync::Arc<Recorder>,
    id: u64,
    settled: bool,
}

impl ResponseGuard {
    pub(crate) fn new(recorder: std::sync::Arc<Recorder>, id: u64) -> Self {
        Self {
            recorder,
            id,
            settled: false,
        }
    }

    /// A paced unit is being handed over.
    pub(crate) fn chunk_sent(&self) {
        let now = Instant::now();
        self.recorder.update(self.id, |r| {
            r.chunks_sent += 1;
            r.unit_sent_at.push(now);
            r.first_event_at.get_or_insert(now);
        });
    }

    /// An event of a streamed reply is being handed over.
    pub(crate) fn event_sent(&self) {
        let now = Instant::now();
        self.recorder.update(self.id, |r| {
            r.first_event_at.get_or_insert(now);
        });
    }

    /// The whole reply has been handed over.
    pub(crate) fn finish(&mut self) {
        self.settled = true;
        let now = Instant::now();
        self.recorder.update(self.id, |r| {
            r.finished = true;
            r.first_event_at.get_or_insert(now);
        });
    }

    /// The simulator itself cut the reply short, so the drop that follows is not the client's.
    pub(crate) fn abort(&mut self) {
        self.settled = true;
    }
}

impl Drop for ResponseGuard {
    fn drop(&mut self) {
        if !self.settled {
            self.recorder.mark_client_closed(self.id);
        }
    }
}
