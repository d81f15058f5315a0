//! The transcription of a voice turn (a chat whose `audio` is not `direct`): the chat publishes
//! `stt.transcription.file` (recorded audio) or `stt.transcription.stream` (live audio, read by
//! the stt worker from the task's audio stream) as a sub-action, relays its `transcription`
//! events and its errors to the session as the chat's own, in order, and takes the transcript
//! from its `text_completed`. The chat then answers the transcript as the user's prompt.

use common::Bus;
use common::events::{ErrorData, EventType};
use common::payloads::chat::ChatAudio;
use common::payloads::stt::{TRANSCRIBE_FILE, TRANSCRIBE_STREAM};
use common::worker::{HandlerError, Task};
use uuid::Uuid;

use super::subtask::{Silence, SubAction, Timeouts};

/// How a transcription ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// What the user said (not blank).
    Transcript(String),
    /// No transcript: the client was told why (an `error` of stage `stt`); the turn ends.
    Nothing,
    /// The task was cancelled meanwhile.
    Cancelled,
}

fn stt_error(code: &str, message: &str, retryable: bool) -> ErrorData {
    ErrorData::new("stt", code, message, retryable)
}

/// Transcribes the voice turn's audio through the `stt` service.
pub async fn transcribe(
    bus: &Bus,
    task: &Task,
    audio: &ChatAudio,
    timeouts: Timeouts,
) -> Result<Heard, HandlerError> {
    // Recorded audio is a file to transcribe; live audio (no file) a stream.
    let request = match audio.file_request() {
        Some(file) => serde_json::to_value(file).map(|d| (TRANSCRIBE_FILE, d)),
        None => serde_json::to_value(audio.stream_request()).map(|d| (TRANSCRIBE_STREAM, d)),
    };
    let (action_type, data) =
        request.map_err(|e| HandlerError::fatal("stt", "internal", e.to_string()))?;
    let sub = SubAction::publish(
        bus,
        task,
        action_type,
        data,
        &callback_name(task.action.task_id),
        "stt",
    )
    .await?;
    let heard = relay(&sub, task, timeouts).await;
    sub.remove().await;
    heard
}

/// Relays the transcription's events until its transcript, its end, or the chat's cancel.
async fn relay(sub: &SubAction, task: &Task, timeouts: Timeouts) -> Result<Heard, HandlerError> {
    let events = &task.events;
    let mut reader = sub.follow(timeouts);
    let mut failed = false;
    let mut cancelled = false;
    loop {
        let next = tokio::select! {
            biased;
            // The transcription has the same task id: the cancel reaches it too.
            () = task.cancel.cancelled() => return Ok(Heard::Cancelled),
            next = reader.next() => next,
        };
        let event = match next {
            Ok(event) => event,
            Err(silence) => {
                let error = match silence {
                    Silence::NotStarted => stt_error(
                        "stt_unavailable",
                        "no transcription worker took the audio",
                        true,
                    ),
                    Silence::Stopped => stt_error(
                        "stt_timeout",
                        "the transcription stopped before it was complete",
                        true,
                    ),
                    Silence::Unavailable(e) => stt_error("bus_unavailable", &e, true),
                };
                tracing::warn!(code = %error.code, "transcription given up");
                events.error(&error).await?;
                return Ok(Heard::Nothing);
            }
        };
        match event.kind.as_str() {
            "transcription" => {
                events.send(EventType::Transcription, event.data).await?;
            }
            "error" => {
                // Whatever stage the stt side gave it (its runtime's `validation`, say), it is
                // the transcription that failed.
                let mut error = serde_json::from_value::<ErrorData>(event.data)
                    .unwrap_or_else(|_| stt_error("stt_failed", "the transcription failed", false));
                error.stage = "stt".into();
                events.error(&error).await?;
                failed = true;
            }
            "text_completed" => {
                let text = event.data["content"].as_str().unwrap_or_default().trim();
                if text.is_empty() {
                    let error = stt_error("no_speech", "no speech was heard in the audio", false);
                    events.error(&error).await?;
                    return Ok(Heard::Nothing);
                }
                return Ok(Heard::Transcript(text.to_owned()));
            }
            "cancelled" => cancelled = true,
            "complete" => {
                if cancelled || task.cancel.is_cancelled() {
                    return Ok(Heard::Cancelled);
                }
                if !failed {
                    let error = stt_error(
                        "stt_failed",
                        "the transcription ended without a transcript",
                        false,
                    );
                    events.error(&error).await?;
                }
                return Ok(Heard::Nothing);
            }
            _ => {}
        }
    }
}

/// The callback name of a voice turn's transcription (for tests and operators).
pub fn callback_name(task_id: Uuid) -> String {
    format!("stt-{task_id}")
}
