//! Live audio on the bus: the frames a client streams for one task, written by the gateway to the
//! task's audio stream (`Names::audio_input_stream`) and read in order by whichever worker
//! replica serves the task. Entries are `a` (the frame's bytes) or `end` (with `reason`:
//! `ended` when the client ended it, `disconnected` when its connection went away). The reader
//! trims what it has read, so the stream's length is the backlog, and deletes the stream at its
//! end; the writer refuses frames past [`MAX_BACKLOG`] unread entries rather than trimming audio
//! nobody heard. The key expires [`TTL_SECS`] after its last write.

use std::time::Duration;

use crate::bus::Conn;
use bytes::Bytes;
use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Bus;

/// Unread frames a stream may hold before the writer refuses more (at 20 ms frames, 40 s of
/// audio nobody is reading: the worker is gone or far behind).
pub const MAX_BACKLOG: usize = 2000;
/// Seconds a stream is kept after its last write.
pub const TTL_SECS: i64 = 600;

/// Why a frame was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The reader is [`MAX_BACKLOG`] frames behind.
    #[error("the audio is not being read (more than {MAX_BACKLOG} frames wait)")]
    Backlog,
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Appends `frame` to `key`; one round trip (append, refresh the expiry, read the backlog).
pub async fn write(conn: &mut Conn, key: &str, frame: &[u8]) -> Result<(), WriteError> {
    let (backlog,): (usize,) = redis::pipe()
        .cmd("XADD")
        .arg(key)
        .arg("*")
        .arg("a")
        .arg(frame)
        .ignore()
        .expire(key, TTL_SECS)
        .ignore()
        .xlen(key)
        .query_async(conn)
        .await?;
    if backlog > MAX_BACKLOG {
        return Err(WriteError::Backlog);
    }
    Ok(())
}

/// Ends the audio of `key`; `reason` is `ended` or `disconnected`.
pub async fn end(conn: &mut Conn, key: &str, reason: &str) -> redis::RedisResult<()> {
    redis::pipe()
        .cmd("XADD")
        .arg(key)
        .arg("*")
        .arg("end")
        .arg(reason)
        .ignore()
        .expire(key, TTL_SECS)
        .ignore()
        .query_async(conn)
        .await
}

/// What a reader gets, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// The next frame.
    Audio(Bytes),
    /// The audio is over: `ended` (the client ended it), `disconnected`, or `idle` (nothing
    /// arrived for the reader's idle time).
    End(String),
}

/// Reads `key` from its start until its `end`, `idle` without a frame, or `cancel`. The channel
/// closes after [`Piece::End`] (or at once on cancel).
pub fn follow(
    bus: Bus,
    key: String,
    idle: Duration,
    cancel: CancellationToken,
) -> mpsc::Receiver<Piece> {
    let (tx, rx) = mpsc::channel::<Piece>(256);
    tokio::spawn(async move {
        let block = Duration::from_millis(500).min(idle);
        let mut conn = match bus.blocking_conn(&key, block).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "live audio not readable");
                let _ = tx.send(Piece::End("unavailable".into())).await;
                return;
            }
        };
        let mut trim = bus.conn();
        let mut last = "0".to_owned();
        let mut quiet = Duration::ZERO;
        loop {
            let opts = StreamReadOptions::default()
                .count(512)
                .block(block.as_millis() as usize);
            let keys = [key.as_str()];
            let ids = [last.as_str()];
            let read = tokio::select! {
                () = cancel.cancelled() => return,
                () = tx.closed() => return,
                r = conn.xread_options::<_, _, Option<StreamReadReply>>(&keys, &ids, &opts) => r,
            };
            let entries: Vec<_> = match read {
                Ok(reply) => reply
                    .into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|k| k.ids)
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "live audio read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Vec::new()
                }
            };
            if entries.is_empty() {
                quiet += block;
                if quiet >= idle {
                    let _ = tx.send(Piece::End("idle".into())).await;
                    return;
                }
                continue;
            }
            quiet = Duration::ZERO;
            for entry in entries {
                last.clone_from(&entry.id);
                if let Some(reason) = entry.get::<String>("end") {
                    // Nothing follows an end: the stream is done with.
                    let deleted: redis::RedisResult<()> = trim.del(&key).await;
                    if let Err(e) = deleted {
                        tracing::debug!(error = %e, "live audio not deleted; it expires");
                    }
                    let _ = tx.send(Piece::End(reason)).await;
                    return;
                }
                if let Some(frame) = entry.get::<Vec<u8>>("a")
                    && !frame.is_empty()
                    && tx.send(Piece::Audio(Bytes::from(frame))).await.is_err()
                {
                    return;
                }
            }
            // What was read is gone from the stream, so its length is what waits.
            let trimmed: redis::RedisResult<usize> = redis::cmd("XTRIM")
                .arg(&key)
                .arg("MINID")
                .arg(&last)
                .query_async(&mut trim)
                .await;
            if let Err(e) = trimmed {
                tracing::debug!(error = %e, "live audio not trimmed");
            }
        }
    });
    rx
}
