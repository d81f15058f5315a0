//! The `stream-input` WebSocket: text arrives in pieces and is buffered until the
//! `chunk_length_schedule` threshold, a flush or the end; each generation comes back as one audio
//! message with its character alignment, and the end of input as `isFinal: true`.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::wire::{Alignment, AudioOutput, FinalOutput, SocketError};
use super::{api_key, failure_response, output_format, query_of, voice_speed};
use crate::audio::{self, AudioFormat, Clip};
use crate::config::Behaviour;
use crate::engine::{Timing, upfront_failure};
use crate::json::to_json;
use crate::record::{Incoming, ResponseGuard, WireFormat};
use crate::server::Shared;
use crate::websocket::close;

/// Thresholds when the first message sets none: the API's default.
const DEFAULT_SCHEDULE: [usize; 4] = [120, 160, 250, 290];
/// Values a `chunk_length_schedule` entry may take.
const SCHEDULE_RANGE: RangeInclusive<u64> = 50..=500;
/// `inactivity_timeout` when the query sets none, and the most it may be.
const DEFAULT_INACTIVITY: Duration = Duration::from_secs(20);
const MAX_INACTIVITY: Duration = Duration::from_secs(180);
/// Buffered characters `try_trigger_generation` needs before it generates (the simulator's
/// stand-in for the API's undocumented minimum).
const TRIGGER_MIN_CHARS: usize = 50;
/// Audio of the message the `bad_audio` behaviour sends: not base64.
const NOT_BASE64: &str = "!!not base64!!";
/// WebSocket close codes.
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_INTERNAL: u16 = 1011;

/// `GET /v1/text-to-speech/{voice_id}/stream-input`, upgraded to a WebSocket.
///
/// A behaviour that fails before any audio (`server_error`, `rate_limited`, `refused`) is the
/// HTTP answer to the upgrade request; the other behaviours play out on the socket.
pub(crate) async fn stream_input(
    State(shared): State<Arc<Shared>>,
    Path(_voice_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let query = query_of(&uri);
    let format = match output_format(&query) {
        Ok(format) => format,
        Err(rejected) => return rejected.into_response(),
    };
    let inactivity = query
        .get("inactivity_timeout")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(DEFAULT_INACTIVITY, Duration::from_secs)
        .clamp(Duration::from_secs(1), MAX_INACTIVITY);
    let header_key = api_key(&headers);
    let incoming = Incoming::new(
        WireFormat::ElevenLabs,
        &uri,
        header_key.clone(),
        Value::Null,
    );
    let (behaviour, mut guard) = shared.begin(incoming);
    tracing::debug!(?behaviour, "elevenlabs stream-input");
    if let Some(failure) = upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, "");
    }
    let config = shared.config();
    let session = Session {
        behaviour,
        guard,
        format,
        timing: Timing::from(config),
        per_char: config.speech_per_char,
        header_key,
        inactivity,
        initialized: false,
        schedule: DEFAULT_SCHEDULE.to_vec(),
        speed: 1.0,
        buffer: String::new(),
        generations: 0,
        pending: VecDeque::new(),
        sent: 0,
        last_sent: None,
        ended: false,
    };
    let stop = shared.stop_token();
    upgrade.on_upgrade(move |socket| session.run(socket, stop))
}

/// Buffered text handed to the simulated model, and when its audio is ready.
struct Generation {
    text: String,
    ready_at: Instant,
}

/// Why the server ends the session early: reported as `{"message","error","code"}`, then a close
/// frame with `code` and `error` as its reason.
struct Refusal {
    code: u16,
    error: &'static str,
    message: String,
}

impl Refusal {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: CLOSE_POLICY,
            error: "invalid_request",
            message: message.into(),
        }
    }
}

/// One WebSocket session's protocol state.
struct Session {
    behaviour: Behaviour,
    guard: ResponseGuard,
    format: AudioFormat,
    timing: Timing,
    per_char: Duration,
    header_key: Option<String>,
    inactivity: Duration,
    /// The first message has been read.
    initialized: bool,
    schedule: Vec<usize>,
    /// `voice_settings.speed` of the first message.
    speed: f64,
    /// Text received and not yet generated.
    buffer: String,
    /// Generations made so far; picks the next schedule threshold.
    generations: usize,
    /// Generations whose audio message has not been sent yet.
    pending: VecDeque<Generation>,
    /// Audio messages sent.
    sent: usize,
    last_sent: Option<Instant>,
    /// The client sent the end of input (`{"text": ""}`).
    ended: bool,
}

impl Session {
    async fn run(mut self, mut socket: WebSocket, stop: CancellationToken) {
        let mut idle_deadline = Instant::now() + self.inactivity;
        loop {
            if self.ended && self.pending.is_empty() {
                self.end(&mut socket).await;
                return;
            }
            let send_at = self.next_send_at();
            tokio::select! {
                // The simulator is stopping: cut the connection, as chat streams are cut.
                () = stop.cancelled() => {
                    self.guard.abort();
                    return;
                }
                message = socket.recv() => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {
                            continue;
                        }
                        // The client went away before `isFinal`: dropping the unsettled guard
                        // records the close.
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                    };
                    idle_deadline = Instant::now() + self.inactivity;
                    if let Err(refusal) = self.on_message(text.as_str()) {
                        self.refuse(&mut socket, refusal).await;
                        return;
                    }
                }
                () = sleep_until(send_at.unwrap_or(idle_deadline)), if send_at.is_some() => {
                    if !self.send_next(&mut socket).await {
                        return;
                    }
                }
                () = sleep_until(idle_deadline), if !self.ended => {
                    let secs = self.inactivity.as_secs();
                    let refusal = Refusal {
                        code: CLOSE_POLICY,
                        error: "input_timeout_exceeded",
                        message: format!(
                            "Have not received a new text input within the timeout of {secs} seconds."
                        ),
                    };
                    self.refuse(&mut socket, refusal).await;
                    return;
                }
            }
        }
    }

    /// Reads one client message; an error ends the session.
    fn on_message(&mut self, text: &str) -> Result<(), Refusal> {
        let message: Value = serde_json::from_str(text)
            .map_err(|err| Refusal::invalid(format!("Invalid message, not JSON: {err}")))?;
        let Value::Object(object) = &message else {
            return Err(Refusal::invalid("Invalid message, expected a JSON object."));
        };
        if !self.initialized {
            return self.on_init(object, &message);
        }
        if self.ended {
            return Ok(());
        }
        let flag = |key: &str| object.get(key).and_then(Value::as_bool).unwrap_or(false);
        let flush = flag("flush");
        let text = match object.get("text") {
            Some(Value::String(text)) => text.as_str(),
            None if flush => "",
            _ => {
                return Err(Refusal::invalid(
                    "Invalid message, 'text' must be a string.",
                ));
            }
        };
        if text.is_empty() && !flush {
            // `{"text": ""}` ends the input: whatever is buffered is generated now.
            self.generate();
            self.ended = true;
            return Ok(());
        }
        self.take_text(text);
        let buffered = self.buffer.chars().count();
        if flush || (flag("try_trigger_generation") && buffered >= TRIGGER_MIN_CHARS) {
            self.generate();
        }
        Ok(())
    }

    /// The first message: the key (unless the upgrade request had one), the schedule and the
    /// voice settings.
    fn on_init(&mut self, object: &Map<String, Value>, message: &Value) -> Result<(), Refusal> {
        let key = self.header_key.clone().or_else(|| {
            ["xi_api_key", "authorization"]
                .iter()
                .find_map(|k| object.get(*k).and_then(Value::as_str))
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
        });
        self.guard.body_received(message.clone(), key.clone());
        if key.is_none() {
            return Err(Refusal {
                code: CLOSE_POLICY,
                error: "invalid_api_key",
                message: "Invalid API key: send it in the xi-api-key header, or as xi_api_key in the first message.".to_owned(),
            });
        }
        if let Some(schedule) = object
            .get("generation_config")
            .and_then(|c| c.get("chunk_length_schedule"))
        {
            self.schedule = parse_schedule(schedule).ok_or_else(|| {
                Refusal::invalid(
                    "chunk_length_schedule must be a non-empty list of integers from 50 to 500.",
                )
            })?;
        }
        self.speed = voice_speed(object.get("voice_settings"));
        let Some(text) = object.get("text").and_then(Value::as_str) else {
            return Err(Refusal::invalid(
                "The first message must have a 'text' of a single space.",
            ));
        };
        self.initialized = true;
        // The first text should be " "; anything more is spoken like later text.
        if !text.trim().is_empty() {
            self.take_text(text);
        }
        Ok(())
    }

    /// Buffers `text` and generates if the buffer reached the schedule's next threshold.
    fn take_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.guard.text_received(text);
        self.buffer.push_str(text);
        let threshold = self
            .schedule
            .get(self.generations)
            .or(self.schedule.last())
            .copied()
            .unwrap_or(DEFAULT_SCHEDULE[0]);
        if self.buffer.chars().count() >= threshold {
            self.generate();
        }
    }

    /// Hands the whole buffer to the simulated model; its audio is ready after the first-token
    /// delay.
    fn generate(&mut self) {
        if self.buffer.trim().is_empty() {
            return;
        }
        self.generations += 1;
        self.pending.push_back(Generation {
            text: std::mem::take(&mut self.buffer),
            ready_at: Instant::now() + self.timing.first_token_delay,
        });
    }

    /// When the next audio message is due: once its generation is ready, and at least the chunk
    /// interval after the previous one.
    fn next_send_at(&self) -> Option<Instant> {
        let ready = self.pending.front()?.ready_at;
        Some(match self.last_sent {
            Some(last) => ready.max(last + self.timing.chunk_interval),
            None => ready,
        })
    }

    /// `after_chunks` of a mid-stream failure behaviour.
    fn failure_after(&self) -> Option<usize> {
        match self.behaviour {
            Behaviour::DropMidStream { after_chunks }
            | Behaviour::MalformedLine { after_chunks }
            | Behaviour::BadAudio { after_chunks }
            | Behaviour::ErrorEvent { after_chunks } => Some(after_chunks),
            Behaviour::Normal
            | Behaviour::ContentFiltered
            | Behaviour::JobFailed
            | Behaviour::JobStuck
            | Behaviour::DownloadDrop { .. }
            | Behaviour::ServerError
            | Behaviour::RateLimited { .. }
            | Behaviour::Refused { .. } => None,
        }
    }

    /// Sends the next audio message, or fails in its place; false when the session is over.
    async fn send_next(&mut self, socket: &mut WebSocket) -> bool {
        if self.failure_after().is_some_and(|after| self.sent >= after) {
            self.fail(socket).await;
            return false;
        }
        let Some(generation) = self.pending.pop_front() else {
            return true;
        };
        let message = self.audio_message(&generation.text);
        self.guard.chunk_sent();
        self.sent += 1;
        if socket.send(Message::Text(message.into())).await.is_err() {
            return false;
        }
        self.last_sent = Some(Instant::now());
        true
    }

    fn audio_message(&self, text: &str) -> String {
        let duration = audio::speech_duration(text, self.per_char, self.speed);
        let clip = Clip::new(self.format, duration, duration);
        let audio = BASE64.encode(clip.whole());
        let alignment = self.alignment(text);
        to_json(&AudioOutput {
            audio: &audio,
            is_final: false,
            normalized_alignment: &alignment,
            alignment: &alignment,
        })
    }

    /// Each character lasts `per_char / speed`; rounding the boundaries keeps the durations
    /// adding up to the whole.
    fn alignment(&self, text: &str) -> Alignment {
        let step = self.per_char.as_secs_f64() * 1000.0 / self.speed;
        let at = |i: usize| (i as f64 * step).round() as u64;
        let chars: Vec<String> = text.chars().map(String::from).collect();
        Alignment {
            char_start_times_ms: (0..chars.len()).map(at).collect(),
            chars_durations_ms: (0..chars.len()).map(|i| at(i + 1) - at(i)).collect(),
            chars,
        }
    }

    /// Every generation was sent after the end of input: `isFinal`, or the scripted failure if
    /// it has not happened yet.
    async fn end(&mut self, socket: &mut WebSocket) {
        if self.failure_after().is_some() {
            self.fail(socket).await;
            return;
        }
        self.send_final(socket).await;
    }

    async fn send_final(&mut self, socket: &mut WebSocket) {
        let message = to_json(&FinalOutput {
            audio: None,
            is_final: true,
        });
        self.guard.finish();
        if socket.send(Message::Text(message.into())).await.is_ok() {
            close(socket, CLOSE_NORMAL, "").await;
        }
    }

    /// Plays the scripted mid-stream failure.
    async fn fail(&mut self, socket: &mut WebSocket) {
        match self.behaviour {
            Behaviour::MalformedLine { .. } => {
                if socket.send(Message::Text("{not json".into())).await.is_ok() {
                    self.send_final(socket).await;
                }
            }
            Behaviour::BadAudio { .. } => {
                let alignment = self.alignment("");
                let message = to_json(&AudioOutput {
                    audio: NOT_BASE64,
                    is_final: false,
                    normalized_alignment: &alignment,
                    alignment: &alignment,
                });
                if socket.send(Message::Text(message.into())).await.is_ok() {
                    self.send_final(socket).await;
                }
            }
            Behaviour::ErrorEvent { .. } => {
                let refusal = Refusal {
                    code: CLOSE_INTERNAL,
                    error: "internal_error",
                    message: "An internal server error occurred (simulated).".to_owned(),
                };
                self.refuse(socket, refusal).await;
                // The session ended the way the script asked, not because of the client.
                self.guard.finish();
            }
            // Dropping the socket without a close frame resets the connection.
            Behaviour::DropMidStream { .. }
            | Behaviour::Normal
            | Behaviour::ContentFiltered
            | Behaviour::JobFailed
            | Behaviour::JobStuck
            | Behaviour::DownloadDrop { .. }
            | Behaviour::ServerError
            | Behaviour::RateLimited { .. }
            | Behaviour::Refused { .. } => self.guard.abort(),
        }
    }

    /// Reports the refusal, then closes with its code.
    async fn refuse(&mut self, socket: &mut WebSocket, refusal: Refusal) {
        self.guard.abort();
        let message = to_json(&SocketError {
            message: &refusal.message,
            error: refusal.error,
            code: refusal.code,
        });
        if socket.send(Message::Text(message.into())).await.is_ok() {
            close(socket, refusal.code, refusal.error).await;
        }
    }
}

/// A schedule of 1 or more thresholds in `SCHEDULE_RANGE`.
fn parse_schedule(value: &Value) -> Option<Vec<usize>> {
    let schedule = value
        .as_array()?
        .iter()
        .map(|v| {
            v.as_u64()
                .filter(|n| SCHEDULE_RANGE.contains(n))
                .and_then(|n| usize::try_from(n).ok())
        })
        .collect::<Option<Vec<_>>>()?;
    (!schedule.is_empty()).then_some(schedule)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(
            parse_schedule(&json!([120, 160, 250, 290])),
            Some(DEFAULT_SCHEDULE.to_vec())
        );
        assert_eq!(parse_schedule(&json!([50])), Some(vec![50]));
        assert_eq!(parse_schedule(&json!([])), None);
        assert_eq!(parse_schedule(&json!([49])), None);
        assert_eq!(parse_schedule(&json!([501])), None);
        assert_eq!(parse_schedule(&json!(["120"])), None);
        assert_eq!(parse_schedule(&json!(120)), None);
    }
}
