//! The speech half of a chat with `settings.tts.enabled`. The chat task stays the one owner of the
//! task's completion:
//!
//! 1. it publishes a `tts.speech.stream` action with the chat's task id (so a cancel reaches both
//!    halves) and a private callback stream for its events;
//! 2. every text chunk sent to the client is also appended to the task's speech-input stream,
//!    which the tts-worker reads while the answer is written; an `end` entry closes it;
//! 3. the speech events that come back on the callback stream (`tts_started`, `audio_chunk`,
//!    `tts_completed`, or an `error` of stage `tts`) are relayed to the session as the chat's own;
//! 4. once its text is done, the chat task waits for the speech half to end before it completes.
//!
//! A tts-worker that dies mid-speech leaves its action pending; another one reclaims it, reads the
//! text again from the start and speaks it again: chunks whose sequence number was already relayed
//! are dropped, so the client's numbering goes on. No speech event for the idle timeout (no
//! tts-worker at all, or none left) ends the speech half with an error: the task still completes
//! exactly once.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use common::Bus;
use common::events::{ErrorData, EventType, TaskEvents};
use common::payloads::tts::{ChatSpeech, STREAM, StreamPayload};
use common::worker::{HandlerError, Task};

use super::subtask::{Silence, SubAction, SubEvents, Timeouts};

/// Most text entries kept in a speech-input stream.
const INPUT_MAXLEN: usize = 100_000;
/// How long a speech-input stream outlives its last write, seconds.
const INPUT_TTL_SECS: i64 = 3600;

/// How long the chat waits for its speech half.
pub type SpeechTimeouts = Timeouts;

/// What the speech-input writer is given.
#[derive(Debug)]
enum Input {
    Text(String),
    /// The text is complete.
    End,
}

/// Where a chat's text goes to be spoken.
#[derive(Clone, Debug)]
pub struct SpeechFeed(mpsc::UnboundedSender<Input>);

impl SpeechFeed {
    /// Queues text to be spoken (written to Redis off the text's path).
    pub fn push(&self, text: &str) {
        if !text.is_empty() {
            let _ = self.0.send(Input::Text(text.to_owned()));
        }
    }
}

/// A running speech half.
pub struct SpeechHalf {
    feed: Option<SpeechFeed>,
    writer: JoinHandle<()>,
    relay: JoinHandle<()>,
    sub: SubAction,
}

impl SpeechHalf {
    /// Publishes the speech action and starts relaying its events.
    pub async fn start(
        bus: &Bus,
        task: &Task,
        speech: &ChatSpeech,
        timeouts: SpeechTimeouts,
    ) -> Result<Self, HandlerError> {
        let chat = &task.action;
        let input = bus
            .names()
            .speech_input_stream(chat.session_id, chat.task_id);
        let data = StreamPayload {
            options: speech.options.clone(),
            save: speech.save,
        };
        let data = serde_json::to_value(&data).unwrap_or_default();
        let sub = SubAction::publish(bus, task, STREAM, data, &callback_name(chat.task_id), "tts")
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_input(bus.clone(), input, rx));
        let relay = tokio::spawn(relay(sub.follow(timeouts), task.events.clone()));
        Ok(Self {
            feed: Some(SpeechFeed(tx)),
            writer,
            relay,
            sub,
        })
    }

    /// Where the chat's text chunks go.
    pub fn feed(&self) -> Option<SpeechFeed> {
        self.feed.clone()
    }

    /// The text will not go on: closes the speech input (unless the task was cancelled: then the
    /// speech half stops on its own cancel, without speaking what its provider buffered), then
    /// waits for the speech half to end (its `tts_completed` or `error` relayed).
    pub async fn finish(mut self, cancelled: bool) {
        if let Some(feed) = self.feed.take()
            && !cancelled
        {
            let _ = feed.0.send(Input::End);
        }
        let _ = (&mut self.writer).await;
        let _ = (&mut self.relay).await;
        self.sub.remove().await;
    }

    /// The chat failed in a way the runtime retries: the speech half is left to end on its own.
    pub fn abandon(mut self) {
        self.feed = None;
        self.relay.abort();
    }
}

/// Appends text to the speech input as it comes (what arrived meanwhile in one round trip), then
/// an `end` entry when the text is complete.
async fn write_input(bus: Bus, key: String, mut rx: mpsc::UnboundedReceiver<Input>) {
    let mut conn = bus.conn();
    let mut first = true;
    loop {
        let mut batch = Vec::new();
        let mut ended = false;
        let mut next = rx.recv().await;
        // Every feed dropped without an end: a cancelled task, nothing more to write.
        if next.is_none() {
            return;
        }
        while let Some(input) = next {
            match input {
                Input::Text(t) => batch.push(t),
                Input::End => {
                    ended = true;
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        let mut pipe = redis::pipe();
        for text in &batch {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(INPUT_MAXLEN)
                .arg("*")
                .arg("text")
                .arg(text)
                .ignore();
        }
        if ended {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("end")
                .arg("1")
                .ignore();
        }
        if first || ended {
            pipe.expire(&key, INPUT_TTL_SECS).ignore();
            first = false;
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(error = %e, "speech input not written");
        }
        if ended {
            return;
        }
    }
}

/// Relays the speech half's events from its callback stream until its `complete`.
async fn relay(mut sub: SubEvents, events: TaskEvents) {
    let mut started = false;
    let mut next_sequence = 0u64;
    loop {
        let event = match sub.next().await {
            Ok(event) => event,
            Err(silence) => {
                let error = match silence {
                    Silence::NotStarted => ErrorData::new(
                        "tts",
                        "tts_unavailable",
                        "no speech worker took the request",
                        true,
                    ),
                    Silence::Stopped => ErrorData::new(
                        "tts",
                        "tts_timeout",
                        "the speech stopped before it was complete",
                        true,
                    ),
                    Silence::Unavailable(e) => ErrorData::new("tts", "bus_unavailable", e, true),
                };
                tracing::warn!(code = %error.code, "speech half given up");
                let _ = events.tts_failed(&error).await;
                return;
            }
        };
        let data = event.data;
        let sent = match event.kind.as_str() {
            "tts_started" if !started => {
                started = true;
                events.send(EventType::TtsStarted, data).await
            }
            "audio_chunk" => {
                let sequence = data["sequence"].as_u64().unwrap_or(next_sequence);
                if sequence < next_sequence {
                    continue; // spoken again after a reclaim: already relayed
                }
                next_sequence = sequence + 1;
                events.send(EventType::AudioChunk, data).await
            }
            "tts_completed" => events.send(EventType::TtsCompleted, data).await,
            "error" => {
                let error = serde_json::from_value::<ErrorData>(data).unwrap_or_else(|_| {
                    ErrorData::new("tts", "tts_failed", "the speech failed", false)
                });
                events.tts_failed(&error).await
            }
            "complete" => return,
            _ => continue,
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "speech event not relayed");
        }
    }
}

/// The callback name of a chat task's speech half (for tests and operators).
pub fn callback_name(task_id: Uuid) -> String {
    format!("speech-{task_id}")
}
