//! The text a chat task writes for its speech half, read from the task's speech-input stream
//! (`Names::speech_input_stream`): `text` entries in order, then an `end` entry. No new text for
//! the idle timeout (the chat's process died) ends the text too; a cancel does not.

use std::time::Duration;

use futures::StreamExt;
use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio_util::sync::CancellationToken;

use common::Bus;

use crate::providers::TextStream;

/// The text of `key` as it is written.
pub fn follow(bus: Bus, key: String, idle: Duration, cancel: CancellationToken) -> TextStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
    tokio::spawn(async move {
        let mut conn = match bus.blocking_conn(&key, Duration::from_millis(1000)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "speech input not readable");
                return;
            }
        };
        let mut last = "0".to_owned();
        let mut quiet = Duration::ZERO;
        let block = Duration::from_millis(1000);
        loop {
            let opts = StreamReadOptions::default()
                .count(256)
                .block(block.as_millis() as usize);
            let keys = [key.as_str()];
            let ids = [last.as_str()];
            let read = tokio::select! {
                // A cancel is not the end of the text: ending it would have the provider speak
                // what it buffered. The text stays open until the speech is dropped.
                () = cancel.cancelled() => {
                    tx.closed().await;
                    return;
                }
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
                    tracing::warn!(error = %e, "speech input read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Vec::new()
                }
            };
            if entries.is_empty() {
                quiet += block;
                if quiet >= idle {
                    tracing::warn!(%key, "no text for the speech half; speaking what came");
                    return;
                }
                continue;
            }
            quiet = Duration::ZERO;
            for entry in entries {
                last.clone_from(&entry.id);
                if entry.map.contains_key("end") {
                    return;
                }
                let text: Option<String> = entry.get("text");
                if let Some(text) = text.filter(|t| !t.is_empty())
                    && tx.send(text).await.is_err()
                {
                    return;
                }
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) }).boxed()
}
