//! One speech task as the gateway follows it, for every surface that speaks (`POST /tts/generate`,
//! `POST /tts/stream`, `POST /v1/audio/speech`): the request checked with the worker's own rules,
//! a `tts.speech.synthesize` action in an owned session, and its events read either as the stored
//! clip's description or as the audio itself, piece by piece. No HTTP types here.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::auth::Claims;
use common::error::AppError;
use common::events::EventType;
use common::payloads::Payload;
use common::payloads::tts::{SYNTHESIZE, SynthesizePayload};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::extract::session_body;
use crate::session::traced_action;
use crate::state::AppState;
use crate::task::{Abandon, TaskFeed, task_error};

/// A speech request of the REST surface: the action's `data`, and the session to speak in.
#[derive(Debug, Clone)]
pub struct SpeechInput {
    /// Speak in this session (claimed or checked like `POST /chat`'s); a new one when absent.
    pub session_id: Option<Uuid>,
    /// The `tts.speech.synthesize` data, checked.
    pub payload: SynthesizePayload,
}

impl SpeechInput {
    /// A `POST /tts/*` body: a `SynthesizePayload` plus an optional `session_id`, refused (400,
    /// naming the field) when the worker would refuse it.
    pub fn parse(body: &[u8]) -> Result<Self, AppError> {
        let (session_id, body) = session_body(body)?;
        let payload = decode(&body).map_err(AppError::BadRequest)?;
        payload.validate().map_err(|e| AppError::BadRequest(e.0))?;
        Ok(Self {
            session_id,
            payload,
        })
    }
}

/// Decodes a `SynthesizePayload`. Serde cannot name a field of the wrong type inside a flattened
/// struct (every speech option is one), so the field is found by decoding each on its own.
pub fn decode(data: &Value) -> Result<SynthesizePayload, String> {
    SynthesizePayload::deserialize(data).map_err(|e| {
        let culprit = data.as_object().and_then(|fields| {
            fields.iter().map(|(k, _)| k).find(|key| {
                let mut probe = Map::new();
                probe.insert("text".into(), json!("x"));
                probe.insert((*key).clone(), fields[*key].clone());
                SynthesizePayload::deserialize(&Value::Object(probe)).is_err()
            })
        });
        match culprit {
            Some(field) => format!("{field}: {e}"),
            None => e.to_string(),
        }
    })
}

/// Why a speech task gave no clip, or no more audio (or a transcription no transcript).
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The worker's `error` event (its `data`).
    Task(Value),
    /// Nothing came for this many seconds; the task was cancelled.
    Timeout(u64),
    /// The task was cancelled (by a `cancel` on its session).
    Cancelled,
    /// The gateway is shutting down.
    ShuttingDown,
    /// The audio's pieces did not follow each other (a worker started the task over after its
    /// audio had begun), or one was not base64.
    Broken(String),
    /// The task completed without its clip and without saying why.
    Incomplete,
}

impl Failure {
    /// The REST answer (a worker's `error` through the one mapping, `task::task_error`).
    pub fn app_error(&self) -> AppError {
        match self {
            Self::Task(error) => task_error(error),
            Self::Timeout(secs) => {
                AppError::Timeout(format!("no answer within {secs} s; the task was cancelled"))
            }
            Self::Cancelled => {
                AppError::Conflict("the task was cancelled before it was complete".into())
            }
            Self::ShuttingDown => {
                AppError::Unavailable(anyhow::anyhow!("the gateway is shutting down"))
            }
            Self::Broken(why) => AppError::Upstream(format!("the audio broke off: {why}")),
            Self::Incomplete => AppError::Internal(anyhow::anyhow!(
                "a task completed without its result or an error"
            )),
        }
    }

    /// A worker's `error` event's `code` (`None` for the gateway's own failures).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Task(error) => error["code"].as_str(),
            _ => None,
        }
    }
}

/// The audio of a task, after its first piece.
#[derive(Debug, Clone, PartialEq)]
pub enum Audio {
    /// The next piece, base64 as the worker sent it.
    Piece(String),
    /// The clip is whole: the `tts_completed` data.
    Done(Value),
}

/// What one event means for the caller.
enum Step {
    Piece { data: String, sequence: Option<u64> },
    Done(Value),
}

/// A published `tts.speech.synthesize` task and its events. Dropped before it finished (the
/// client went away), it cancels the task, so the provider's request is closed.
#[derive(Debug)]
pub struct SpeechTask {
    feed: TaskFeed,
    wait: Duration,
    format: Option<String>,
    next_sequence: u64,
}

impl SpeechTask {
    /// Checks `payload` (the worker's rules), publishes it in `session_id` (owned by the caller:
    /// claim it first) and follows its task.
    pub async fn start(
        state: &AppState,
        claims: &Claims,
        session_id: Uuid,
        payload: &SynthesizePayload,
    ) -> Result<Self, AppError> {
        payload.validate().map_err(|e| AppError::BadRequest(e.0))?;
        let data = serde_json::to_value(payload)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("speech payload: {e}")))?;
        let (action, span) = traced_action(SYNTHESIZE, claims, session_id, data);
        let feed = TaskFeed::action(state, &action, Abandon::Cancel).await?;
        span.in_scope(|| tracing::info!("speech published"));
        Ok(Self {
            feed,
            wait: Duration::from_secs(state.settings().chat_timeout_secs),
            format: None,
            next_sequence: 0,
        })
    }

    /// The task.
    pub fn task_id(&self) -> Uuid {
        self.feed.task_id().unwrap_or_default()
    }

    /// Its session.
    pub fn session_id(&self) -> Uuid {
        self.feed.session_id()
    }

    /// The audio format, once `tts_started` said it.
    pub fn format(&self) -> Option<&str> {
        self.format.as_deref()
    }

    /// The next event that matters, however long it takes.
    async fn step(&mut self) -> Result<Step, Failure> {
        loop {
            let Some(event) = self.feed.next().await else {
                return Err(Failure::ShuttingDown);
            };
            let Some(kind) = event.kind else { continue };
            match kind {
                EventType::TtsStarted => {
                    self.format = event.data()["format"].as_str().map(str::to_owned);
                }
                EventType::AudioChunk => {
                    let mut data = event.data();
                    let sequence = data["sequence"].as_u64();
                    let Value::String(data) = data["data"].take() else {
                        return Err(Failure::Broken("an audio piece without audio".into()));
                    };
                    return Ok(Step::Piece { data, sequence });
                }
                EventType::TtsCompleted => {
                    // The worker completes the task by itself now.
                    self.feed.finished().await;
                    return Ok(Step::Done(event.data()));
                }
                EventType::Error => {
                    self.feed.finished().await;
                    return Err(Failure::Task(event.data()));
                }
                EventType::Cancelled => {
                    self.feed.finished().await;
                    return Err(Failure::Cancelled);
                }
                EventType::Complete => return Err(Failure::Incomplete),
                _ => {}
            }
        }
    }

    /// Gives up after `wait`: the task is cancelled.
    async fn timed_out(&mut self) -> Failure {
        self.feed.abandon().await;
        Failure::Timeout(self.wait.as_secs())
    }

    /// Waits for the stored clip (up to `CHAT_TIMEOUT_SECS` in all): the `tts_completed` data.
    pub async fn clip(&mut self) -> Result<Value, Failure> {
        let waited = tokio::time::timeout(self.wait, async {
            loop {
                if let Step::Done(done) = self.step().await? {
                    return Ok(done);
                }
            }
        })
        .await;
        match waited {
            Ok(result) => result,
            Err(_) => Err(self.timed_out().await),
        }
    }

    /// Waits for the first piece of audio (up to `CHAT_TIMEOUT_SECS`), base64: what settles
    /// whether the answer is audio or an error.
    pub async fn first_audio(&mut self) -> Result<String, Failure> {
        match self.next_audio().await? {
            Audio::Piece(data) => Ok(data),
            // A clip is never empty (the worker fails with `no_audio`).
            Audio::Done(_) => Err(Failure::Incomplete),
        }
    }

    /// The next piece of audio, or the end of the clip, waiting up to `CHAT_TIMEOUT_SECS` for
    /// each. Pieces come in their numbered order; a piece out of order (a worker started the
    /// task over) is a failure, since what was sent cannot be taken back.
    pub async fn next_audio(&mut self) -> Result<Audio, Failure> {
        let step = match tokio::time::timeout(self.wait, self.step()).await {
            Ok(step) => step?,
            Err(_) => return Err(self.timed_out().await),
        };
        match step {
            Step::Done(done) => Ok(Audio::Done(done)),
            Step::Piece { data, sequence } => {
                if sequence != Some(self.next_sequence) {
                    return Err(Failure::Broken(format!(
                        "audio piece {sequence:?} came where {} was due",
                        self.next_sequence
                    )));
                }
                self.next_sequence += 1;
                Ok(Audio::Piece(data))
            }
        }
    }

    /// The audio as bytes, from `first` (the decoded first piece) to the clip's end. A failure
    /// after the first byte ends the stream with an error, logged: the connection is cut rather
    /// than a short file ending as if it were whole.
    pub fn into_bytes(self, first: Bytes) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::unfold((Some(self), Some(first)), |(task, first)| async move {
            if let Some(first) = first {
                return Some((Ok(first), (task, None)));
            }
            let mut task = task?;
            let failure = loop {
                match task.next_audio().await {
                    Ok(Audio::Piece(data)) => match decode_piece(&data) {
                        Ok(bytes) if bytes.is_empty() => {}
                        Ok(bytes) => return Some((Ok(bytes), (Some(task), None))),
                        Err(f) => break f,
                    },
                    Ok(Audio::Done(_)) => return None,
                    Err(f) => break f,
                }
            };
            tracing::warn!(
                task_id = %task.task_id(),
                session_id = %task.session_id(),
                failure = ?failure,
                "speech failed after its audio started; the response is cut"
            );
            Some((
                Err(std::io::Error::other("the audio broke off")),
                (None, None),
            ))
        })
    }
}

/// The bytes of an `audio_chunk`'s base64 `data`.
pub fn decode_piece(data: &str) -> Result<Bytes, Failure> {
    STANDARD
        .decode(data)
        .map(Bytes::from)
        .map_err(|_| Failure::Broken("an audio piece is not base64".into()))
}

/// The MIME type of audio in `format` (OpenAI's, for the formats it has).
pub fn content_type(format: &str) -> &'static str {
    match format {
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        "opus" => "audio/opus",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: Value) -> String {
        match SpeechInput::parse(body.to_string().as_bytes()) {
            Err(AppError::BadRequest(m)) => m,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_body_is_the_payload_and_a_session() {
        let session = Uuid::now_v7();
        let input = SpeechInput::parse(
            json!({"text": "hi", "voice": "en-us", "format": "wav", "speed": 2, "save": false,
                "session_id": session})
            .to_string()
            .as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(input.session_id, Some(session));
        assert_eq!(input.payload.options.speed, Some(2.0));
        assert!(!input.payload.save);
        let data = serde_json::to_value(&input.payload).unwrap_or_default();
        assert!(data.get("session_id").is_none(), "{data}");
    }

    #[test]
    fn refusals_name_the_field() {
        assert!(refused(json!({})).contains("text"));
        assert!(refused(json!({"text": " "})).contains("text is empty"));
        assert!(refused(json!({"text": "hi", "speed": 9})).starts_with("speed"));
        assert!(refused(json!({"text": "hi", "speed": "fast"})).starts_with("speed: "));
        assert!(refused(json!({"text": "hi", "voice": 3})).starts_with("voice: "));
        assert!(refused(json!({"text": 3})).starts_with("text: "));
        assert!(refused(json!({"text": "hi", "save": "no"})).starts_with("save: "));
        assert!(refused(json!({"text": "hi", "session_id": "x"})).contains("session_id"));
        assert!(refused(json!([1])).contains("JSON object"));
    }

    #[test]
    fn formats_have_their_types() {
        assert_eq!(content_type("mp3"), "audio/mpeg");
        assert_eq!(content_type("wav"), "audio/wav");
        assert_eq!(content_type("pcm"), "audio/pcm");
        assert_eq!(content_type("weird"), "application/octet-stream");
        assert!(decode_piece("!!").is_err());
        assert_eq!(decode_piece("aGk=").ok(), Some(Bytes::from_static(b"hi")));
    }
}
