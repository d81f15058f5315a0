//! Fan-in of response streams: many sessions' streams read by a few blocking `XREAD`s.
//!
//! Sessions are spread over a fixed number of shards. Each shard has one reader task with one
//! Redis connection that reads all its keys in one `XREAD BLOCK` call, so a gateway holds `shards`
//! connections however many sessions it serves. When a session subscribes, the shard's blocked read
//! is woken with `CLIENT UNBLOCK`, sent to the node the reader is connected to, so the new key joins
//! the very next read (see `docs/architecture.md`).
//!
//! On one Redis, a key's shard is its session bucket modulo `shards`. On a Redis Cluster, one
//! `XREAD` may only name keys of one slot, so there is one shard per session bucket (the buckets
//! are the keys' hash tags, see `common::names`), and each shard's reader connects to the node
//! that serves its bucket's slot and follows it when the slot moves.

mod reader;
mod stream_id;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use common::Bus;
use common::names::{SESSION_BUCKETS, bucket_of_key};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

pub use stream_id::StreamId;

/// One entry of a response stream.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry id (the client's `event_id`).
    pub id: StreamId,
    /// The event type.
    pub kind: String,
    /// The task the event belongs to.
    pub task_id: String,
    /// The event as JSON, without `event_id`.
    pub payload: String,
}

/// Buffered entries per subscriber before it counts as lagging.
const SUBSCRIBER_BUFFER: usize = 4096;

/// The hub: a set of shards, each with its reader.
#[derive(Clone)]
pub struct Hub {
    shards: Arc<Vec<Arc<Shard>>>,
    /// One shard per session bucket (a Redis Cluster).
    by_bucket: bool,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("shards", &self.shards.len())
            .finish()
    }
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Entry>,
}

struct KeyState {
    /// The id after which the next read starts.
    cursor: StreamId,
    subscribers: Vec<Subscriber>,
}

pub(crate) struct Shard {
    index: usize,
    keys: Mutex<HashMap<String, KeyState>>,
    /// Bumped on every change of `keys`.
    generation: AtomicU64,
    /// The generation the reader is blocked with, or `NOT_BLOCKED`.
    blocked_generation: AtomicU64,
    /// The node the reader is connected to and its connection's `CLIENT ID` there.
    reader: Mutex<Option<(String, i64)>>,
    /// Wakes an idle reader (no keys) and the kicker.
    keys_changed: Notify,
    kick_needed: Notify,
    next_subscriber: AtomicU64,
}

const NOT_BLOCKED: u64 = u64::MAX;

impl Shard {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyState>> {
        // The map stays consistent even if a holder panicked: every update is a single insert/remove.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reader(&self) -> Option<(String, i64)> {
        self.reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_reader(&self, reader: Option<(String, i64)>) {
        *self.reader.lock().unwrap_or_else(PoisonError::into_inner) = reader;
    }
}

/// A live subscription to one response stream; unsubscribes when dropped.
pub struct Subscription {
    hub: Hub,
    shard: Arc<Shard>,
    key: String,
    subscriber: u64,
    rx: mpsc::Receiver<Entry>,
    last: StreamId,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("key", &self.key)
            .field("last", &self.last)
            .finish()
    }
}

/// Why a subscription stopped delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lagged {
    /// The subscriber fell too far behind; resubscribe from [`Subscription::last_id`].
    Lagged,
}

impl Subscription {
    /// The next entry after the last one delivered. A subscriber that fell behind (its buffer
    /// overflowed and the hub dropped it) subscribes again from the last entry it delivered, so
    /// nothing is lost and no caller handles lag itself.
    pub async fn next(&mut self) -> Entry {
        loop {
            match self.recv().await {
                Ok(entry) => return entry,
                Err(Lagged::Lagged) => {
                    tracing::debug!(key = %self.key, "subscriber fell behind; subscribing again");
                    *self = self.hub.subscribe(&self.key, self.last);
                }
            }
        }
    }

    /// The next entry after the last one delivered; `Err(Lagged)` if this subscriber fell behind
    /// (its buffer overflowed): resubscribe from `last_id()` to continue without loss.
    pub async fn recv(&mut self) -> Result<Entry, Lagged> {
        loop {
            let entry = self.rx.recv().await.ok_or(Lagged::Lagged)?;
            // Entries can arrive twice when another subscriber of the key rewound its cursor.
            if entry.id > self.last {
                self.last = entry.id;
                return Ok(entry);
            }
        }
    }

    /// The id of the last entry delivered (or the start cursor).
    pub fn last_id(&self) -> StreamId {
        self.last
    }

    /// The stream key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut keys = self.shard.lock();
        if let Some(state) = keys.get_mut(&self.key) {
            state.subscribers.retain(|s| s.id != self.subscriber);
            if state.subscribers.is_empty() {
                keys.remove(&self.key);
                self.shard.generation.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

impl Hub {
    /// Starts `shards` readers (one per session bucket on a cluster); they stop when `shutdown`
    /// fires.
    pub fn start(bus: &Bus, shards: usize, block_ms: u64, shutdown: CancellationToken) -> Self {
        let by_bucket = bus.is_cluster();
        let count = if by_bucket {
            SESSION_BUCKETS
        } else {
            shards.max(1)
        };
        let shards: Vec<Arc<Shard>> = (0..count)
            .map(|index| {
                Arc::new(Shard {
                    index,
                    keys: Mutex::new(HashMap::new()),
                    generation: AtomicU64::new(0),
                    blocked_generation: AtomicU64::new(NOT_BLOCKED),
                    reader: Mutex::new(None),
                    keys_changed: Notify::new(),
                    kick_needed: Notify::new(),
                    next_subscriber: AtomicU64::new(0),
                })
            })
            .collect();
        for shard in &shards {
            tokio::spawn(reader::read_loop(
                shard.clone(),
                bus.topology().node_conn(reader::response_timeout(block_ms)),
                block_ms,
                shutdown.clone(),
            ));
            tokio::spawn(reader::kick_loop(
                shard.clone(),
                bus.conn(),
                shutdown.clone(),
            ));
        }
        Self {
            shards: Arc::new(shards),
            by_bucket,
        }
    }

    fn shard_for(&self, key: &str) -> &Arc<Shard> {
        let i = match bucket_of_key(key) {
            Some(bucket) => bucket % self.shards.len(),
            None => {
                // Only session streams (bucket-tagged) are read; another key on a cluster would
                // make its shard's XREAD cross slots, so it is told loudly.
                if self.by_bucket {
                    tracing::error!(%key, "a key without a session bucket read on a cluster");
                }
                let mut h = DefaultHasher::new();
                key.hash(&mut h);
                (h.finish() % self.shards.len() as u64) as usize
            }
        };
        &self.shards[i]
    }

    /// Subscribes to `key`, delivering entries after `after`.
    pub fn subscribe(&self, key: &str, after: StreamId) -> Subscription {
        let shard = self.shard_for(key).clone();
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let subscriber = shard.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let rewound = {
            let mut keys = shard.lock();
            let state = keys.entry(key.to_owned()).or_insert_with(|| KeyState {
                cursor: after,
                subscribers: Vec::new(),
            });
            let rewound = state.subscribers.is_empty() || after < state.cursor;
            if after < state.cursor {
                state.cursor = after;
            }
            state.subscribers.push(Subscriber { id: subscriber, tx });
            rewound
        };
        if rewound {
            shard.generation.fetch_add(1, Ordering::SeqCst);
            shard.keys_changed.notify_one();
            shard.kick_needed.notify_one();
        }
        Subscription {
            hub: self.clone(),
            shard,
            key: key.to_owned(),
            subscriber,
            rx,
            last: after,
        }
    }

    /// Keys read by all shards together.
    pub fn key_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}
