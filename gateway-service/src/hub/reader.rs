//! A shard's reader (one blocking `XREAD` over all its keys) and its kicker (`CLIENT UNBLOCK`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::bus::{Conn, NodeConn};
use redis::RedisResult;
use redis::streams::StreamReadReply;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::{Entry, NOT_BLOCKED, Shard, StreamId};
use common::backoff::Backoff;

/// Entries per key per read at most.
const READ_COUNT: usize = 512;

/// The reader connection's response timeout: the block time and some.
pub(super) fn response_timeout(block_ms: u64) -> Duration {
    Duration::from_millis(block_ms) + Duration::from_secs(5)
}

pub(super) async fn read_loop(
    shard: Arc<Shard>,
    mut conn: NodeConn,
    block_ms: u64,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        // The generation is read before the keys, so any later change has a higher one.
        let generation = shard.generation.load(Ordering::SeqCst);
        let (keys, ids): (Vec<String>, Vec<String>) = shard
            .lock()
            .iter()
            .map(|(k, s)| (k.clone(), s.cursor.to_string()))
            .unzip();
        if keys.is_empty() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = shard.keys_changed.notified() => continue,
            }
        }
        if conn.node().is_none() {
            // Connected to the node serving the keys before blocking, so a kick finds it.
            if let Err(e) = conn.follow(&keys[0]).await {
                tracing::warn!(shard = shard.index, error = %e, "response reader cannot connect");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => continue,
                }
            }
        }
        shard.set_reader(conn.node());
        shard.blocked_generation.store(generation, Ordering::SeqCst);
        // A change between the snapshot and the store above may have found the reader "not
        // blocked" and left it to this check; a later change finds it blocked and kicks it.
        if shard.generation.load(Ordering::SeqCst) != generation {
            shard
                .blocked_generation
                .store(NOT_BLOCKED, Ordering::SeqCst);
            continue;
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&keys)
            .arg(&ids);
        let reply: RedisResult<Option<StreamReadReply>> = tokio::select! {
            () = shutdown.cancelled() => return,
            r = cmd.query_async(&mut conn) => r,
        };
        shard
            .blocked_generation
            .store(NOT_BLOCKED, Ordering::SeqCst);
        // A redirect during the read moved the reader to another node.
        shard.set_reader(conn.node());
        match reply {
            Ok(Some(reply)) => {
                backoff.reset();
                deliver(&shard, reply);
            }
            Ok(None) => backoff.reset(),
            Err(e) => {
                tracing::warn!(shard = shard.index, error = %e, "response read failed; reading again");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}

fn field(map: &std::collections::HashMap<String, redis::Value>, name: &str) -> String {
    map.get(name)
        .and_then(|v| redis::from_redis_value_ref(v).ok())
        .unwrap_or_default()
}

fn deliver(shard: &Shard, reply: StreamReadReply) {
    let mut keys = shard.lock();
    let mut emptied = false;
    for stream in reply.keys {
        let Some(state) = keys.get_mut(&stream.key) else {
            continue;
        };
        for raw in stream.ids {
            let Ok(id) = raw.id.parse::<StreamId>() else {
                continue;
            };
            if id > state.cursor {
                state.cursor = id;
            }
            let entry = Entry {
                id,
                kind: field(&raw.map, "type"),
                task_id: field(&raw.map, "task_id"),
                payload: field(&raw.map, "payload"),
            };
            // A subscriber whose buffer is full is dropped: its receiver then reports `Lagged`
            // and it resubscribes from its last id, so a slow client never blocks the others.
            state
                .subscribers
                .retain(|s| match s.tx.try_send(entry.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_)) => {
                        tracing::warn!(key = %stream.key, "subscriber lagging; dropped");
                        false
                    }
                    Err(TrySendError::Closed(_)) => false,
                });
        }
        if state.subscribers.is_empty() {
            keys.remove(&stream.key);
            emptied = true;
        }
    }
    if emptied {
        shard.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Wakes the shard's blocked `XREAD` when its key set changed, so new keys are read at once.
pub(super) async fn kick_loop(shard: Arc<Shard>, mut control: Conn, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = shard.kick_needed.notified() => {}
        }
        // The reader may be between taking its snapshot and blocking: `CLIENT UNBLOCK` then
        // answers 0 and is tried again a moment later, until the reader sees the new generation.
        for _ in 0..500 {
            let wanted = shard.generation.load(Ordering::SeqCst);
            let blocked = shard.blocked_generation.load(Ordering::SeqCst);
            let Some((node, client)) = shard.reader() else {
                break;
            };
            if blocked == NOT_BLOCKED || blocked >= wanted {
                break;
            }
            let mut unblock = redis::cmd("CLIENT");
            unblock.arg("UNBLOCK").arg(client);
            let unblocked: RedisResult<i64> = control.query_node(&node, &unblock).await;
            match unblocked {
                Ok(1) => tokio::task::yield_now().await,
                Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                Err(e) => {
                    tracing::debug!(error = %e, "CLIENT UNBLOCK failed");
                    break;
                }
            }
        }
    }
}
