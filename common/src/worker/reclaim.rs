//! Recovery of entries left pending by dead consumers (`XAUTOCLAIM`), and removal of consumers
//! that are gone for good.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamInfoConsumersReply, StreamPendingCountReply,
};
use redis::{AsyncCommands, RedisResult};
use tokio_util::sync::CancellationToken;

use super::{Inner, sleep_or_shutdown};

/// Entries claimed per `XAUTOCLAIM` call.
const CLAIM_BATCH: usize = 64;
/// Consumers with nothing pending and idle this long are deleted from the group.
const STALE_CONSUMER_MS: usize = 3_600_000;
/// Stale consumers are looked for once every this many reclaim rounds.
const CLEANUP_EVERY: u64 = 60;

pub(super) async fn run(inner: Arc<Inner>, shutdown: CancellationToken) {
    let interval = Duration::from_millis(inner.settings.reclaim_interval_ms);
    let mut round: u64 = 0;
    loop {
        if sleep_or_shutdown(interval, &shutdown).await {
            return;
        }
        if let Err(e) = inner.reclaim_round(&shutdown).await {
            tracing::warn!(error = %e, "reclaim round failed");
        }
        round += 1;
        if round.is_multiple_of(CLEANUP_EVERY)
            && let Err(e) = inner.delete_stale_consumers().await
        {
            tracing::warn!(error = %e, "consumer clean-up failed");
        }
    }
}

impl Inner {
    /// Claims entries idle past `min_idle`, as many as this worker has free handler slots, and
    /// runs them here. A claimed entry that waited for a slot would go idle again unrefreshed and
    /// be claimed by the next worker, a delivery counted each time.
    async fn reclaim_round(self: &Arc<Self>, shutdown: &CancellationToken) -> RedisResult<()> {
        let mut start = "0-0".to_owned();
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            // A free slot first (the semaphore is fair: an idle read loop's reservation is
            // handed over when its blocking read returns), then whatever else is free.
            let first = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                p = self.permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return Ok(()),
                },
            };
            let mut permits = vec![first];
            while permits.len() < CLAIM_BATCH {
                match self.permits.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let mut conn = self.bus.conn();
            let reply: StreamAutoClaimReply = conn
                .xautoclaim_options(
                    &self.stream,
                    &self.group,
                    &self.consumer,
                    self.settings.min_idle_ms,
                    &start,
                    StreamAutoClaimOptions::default().count(permits.len()),
                )
                .await?;
            if !reply.deleted_ids.is_empty() {
                // Trimmed away while pending: nothing left to run, so only the reference goes.
                tracing::warn!(
                    count = reply.deleted_ids.len(),
                    "pending entries were trimmed; acknowledged"
                );
                let _: u64 = conn
                    .xack(&self.stream, &self.group, &reply.deleted_ids)
                    .await?;
            }
            if !reply.claimed.is_empty() {
                let counts = self.delivery_counts(&reply).await?;
                for (entry, permit) in reply.claimed.into_iter().zip(permits) {
                    let delivery = counts.get(&entry.id).copied().unwrap_or(2);
                    tracing::info!(entry_id = %entry.id, delivery, "reclaimed an entry from a dead consumer");
                    self.spawn_entry(entry.id, entry.map, delivery, permit);
                }
            }
            if reply.next_stream_id == "0-0" {
                return Ok(());
            }
            start = reply.next_stream_id;
        }
    }

    /// The delivery counts of the entries just claimed, from `XPENDING`.
    async fn delivery_counts(
        &self,
        reply: &StreamAutoClaimReply,
    ) -> RedisResult<HashMap<String, u64>> {
        let (Some(first), Some(last)) = (reply.claimed.first(), reply.claimed.last()) else {
            return Ok(HashMap::new());
        };
        let mut conn = self.bus.conn();
        let pending: StreamPendingCountReply = conn
            .xpending_consumer_count(
                &self.stream,
                &self.group,
                &first.id,
                &last.id,
                reply.claimed.len() + CLAIM_BATCH,
                &self.consumer,
            )
            .await?;
        Ok(pending
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered as u64))
            .collect())
    }

    /// Deletes consumers that hold nothing and have been idle for an hour (crashed processes).
    async fn delete_stale_consumers(&self) -> RedisResult<()> {
        let mut conn = self.bus.conn();
        let info: StreamInfoConsumersReply =
            conn.xinfo_consumers(&self.stream, &self.group).await?;
        for c in info.consumers {
            if c.name != self.consumer && c.pending == 0 && c.idle > STALE_CONSUMER_MS {
                let _: u64 = conn
                    .xgroup_delconsumer(&self.stream, &self.group, &c.name)
                    .await?;
                tracing::info!(consumer = %c.name, "deleted a stale consumer");
            }
        }
        Ok(())
    }
}
