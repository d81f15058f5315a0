//! Deepgram's live WebSocket, `GET /v1/listen`: binary audio frames in; `Results` (interim, then
//! final), `SpeechStarted`, `UtteranceEnd` and, after `CloseStream`, `Metadata` out.
//!
//! The simulated speaker says word `k` of the transcript (repeated) during `[k·w, (k+1)·w)` of
//! the audio, `w` being `SimConfig::live_word`. A word is heard once the audio received covers
//! its end. Newly heard words bring an interim result of the segment so far (with
//! `interim_results=true`); a sentence's last word brings the segment's final result (`is_final`,
//! and `speech_final` unless `endpointing=false`) and an `UtteranceEnd` (with
//! `utterance_end_ms`). `Finalize` makes what was heard so far final (`from_finalize: true`);
//! `CloseStream` (or an empty binary frame) does the same, then sends `Metadata` and closes
//! with 1000.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::wire::{Alternative, Channel, LiveMessage, ResultMetadata};
use super::{
    Model, Options, bad_request, failure_response, insert_request_id, invalid_auth, token,
};
use crate::audio::probe::{Container, RawLayout};
use crate::config::Behaviour;
use crate::engine::{Timing, upfront_failure};
use crate::json::to_json;
use crate::record::{Incoming, ResponseGuard, WireFormat};
use crate::server::Shared;
use crate::transcript::{CONFIDENCE, Transcript, seconds};
use crate::websocket::close;

/// Shortest word the simulator times, so a zero `live_word` cannot divide by zero.
const MIN_WORD: Duration = Duration::from_millis(1);
/// WebSocket close codes.
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_INTERNAL: u16 = 1011;
/// Close reasons of the idle timeout (`NET-0001`) and of the scripted mid-stream error.
const NET_0001: &str = "Deepgram did not receive audio data or a text message within the timeout window. See https://dpgr.am/net0001";
const NET_0000: &str = "Deepgram encountered an internal error while processing the audio (simulated). See https://dpgr.am/net0000";

/// `GET /v1/listen`, upgraded to a WebSocket.
///
/// A missing key, bad query parameters and the behaviours that fail before any result
/// (`server_error`, `rate_limited`, `refused`) are the HTTP answer to the upgrade request; the
/// other behaviours play out on the socket.
pub(crate) async fn live(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(key) = token(&headers, true) else {
        return invalid_auth();
    };
    let options = match Options::parse(&uri) {
        Ok(options) => options,
        Err(message) => return bad_request(message),
    };
    let incoming = Incoming::new(WireFormat::Deepgram, &uri, Some(key), Value::Null);
    let (behaviour, mut guard) = shared.begin(incoming);
    let request_id = uuid::Uuid::new_v4().to_string();
    tracing::debug!(?behaviour, "deepgram live");
    if let Some(failure) = upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, &request_id);
    }
    let config = shared.config();
    let session = Session {
        behaviour,
        guard,
        timing: Timing::from(config),
        transcript: Transcript::new(&config.transcript),
        model: Model::new(&options.model),
        request_id: request_id.clone(),
        word: config.live_word.max(MIN_WORD),
        idle: config.live_idle_timeout,
        meter: Meter::new(options.raw),
        options,
        heard: 0,
        segment_word: 0,
        segment_start: 0.0,
        utterance_word: 0,
        speech_announced: false,
        pending: VecDeque::new(),
        sent: 0,
        last_sent: None,
        failed: false,
        closing: false,
    };
    let stop = shared.stop_token();
    // Browsers send the key as a subprotocol and need the server to pick `token`.
    let mut response = upgrade
        .protocols(["token"])
        .on_upgrade(move |socket| session.run(socket, stop));
    insert_request_id(&mut response, &request_id);
    response
}

/// The audio received: its size, its digest and how long it lasts.
struct Meter {
    raw: Option<RawLayout>,
    /// Known from the first frame (a WAV header, say) unless `encoding` stated raw audio.
    container: Option<Container>,
    bytes: usize,
    digest: Sha256,
}

impl Meter {
    fn new(raw: Option<RawLayout>) -> Self {
        Self {
            raw,
            container: None,
            bytes: 0,
            digest: Sha256::new(),
        }
    }

    /// Takes in a frame; returns how long the audio received so far lasts.
    fn push(&mut self, frame: &[u8]) -> Duration {
        if self.container.is_none() {
            // A header that cannot be read leaves the bytes to count at the nominal rate.
            let container = Container::sniff(frame, self.raw).unwrap_or(Container::Other);
            self.container = Some(container);
        }
        self.bytes = self.bytes.saturating_add(frame.len());
        self.digest.update(frame);
        self.duration()
    }

    fn duration(&self) -> Duration {
        self.container
            .map_or(Duration::ZERO, |c| c.duration(self.bytes))
    }

    fn sha256(&self) -> String {
        format!("{:x}", self.digest.clone().finalize())
    }
}

/// A message waiting for its send time.
struct Outgoing {
    json: String,
    ready_at: Instant,
    /// A `Results` message: a paced unit, and where scripted failures strike.
    results: bool,
}

/// One live session's protocol state.
struct Session {
    behaviour: Behaviour,
    guard: ResponseGuard,
    timing: Timing,
    options: Options,
    transcript: Transcript,
    model: Model,
    request_id: String,
    /// Audio one word lasts.
    word: Duration,
    idle: Duration,
    meter: Meter,
    /// Words heard in full so far.
    heard: usize,
    /// First word of the segment the next result covers, and where that segment starts (s).
    segment_word: usize,
    segment_start: f64,
    /// First word of the current utterance, and whether its `SpeechStarted` went out.
    utterance_word: usize,
    speech_announced: bool,
    pending: VecDeque<Outgoing>,
    /// `Results` messages sent.
    sent: usize,
    last_sent: Option<Instant>,
    /// The scripted malformed frame went out.
    failed: bool,
    /// `CloseStream` arrived: what is pending goes out, then `Metadata` and the close.
    closing: bool,
}

impl Session {
    async fn run(mut self, mut socket: WebSocket, stop: CancellationToken) {
        let mut idle_deadline = Instant::now() + self.idle;
        loop {
            if self.closing && self.pending.is_empty() {
                self.end(&mut socket).await;
                return;
            }
            let send_at = self.next_send_at();
            tokio::select! {
                // The simulator is stopping: cut the connection, as HTTP streams are cut.
                () = stop.cancelled() => {
                    self.guard.abort();
                    return;
                }
                message = socket.recv(), if !self.closing => {
                    match message {
                        Some(Ok(Message::Binary(frame))) if frame.is_empty() => self.close_stream(),
                        Some(Ok(Message::Binary(frame))) => self.on_audio(&frame),
                        Some(Ok(Message::Text(text))) => self.on_text(text.as_str()),
                        // Control frames keep nothing alive: the API wants audio or a message.
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        // The client went away before the end: dropping the unsettled guard
                        // records the close.
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                    }
                    idle_deadline = Instant::now() + self.idle;
                }
                () = sleep_until(send_at.unwrap_or(idle_deadline)), if send_at.is_some() => {
                    if !self.send_next(&mut socket).await {
                        return;
                    }
                }
                () = sleep_until(idle_deadline), if !self.closing => {
                    self.guard.abort();
                    close(&mut socket, CLOSE_INTERNAL, NET_0001).await;
                    return;
                }
            }
        }
    }

    fn on_text(&mut self, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return;
        };
        match message.get("type").and_then(Value::as_str) {
            Some("Finalize") => {
                let now = self.audio_seconds();
                self.queue_final(now.max(self.segment_start), false, true);
            }
            Some("CloseStream") => self.close_stream(),
            // `KeepAlive` only keeps the session open; other messages are ignored.
            _ => {}
        }
    }

    /// Makes whatever was heard since the last final result final, then ends the session.
    fn close_stream(&mut self) {
        let now = self.audio_seconds();
        if self.heard > self.segment_word || now > self.segment_start {
            self.queue_final(now, false, false);
        }
        self.closing = true;
    }

    fn audio_seconds(&self) -> f64 {
        self.meter.duration().as_secs_f64()
    }

    /// Where word `k` starts, in seconds of audio.
    fn word_start(&self, k: usize) -> f64 {
        k as f64 * self.word.as_secs_f64()
    }

    fn on_audio(&mut self, frame: &[u8]) {
        let audio = self.meter.push(frame);
        self.guard.audio_received(frame.len(), audio);
        if self.transcript.len() == 0 {
            return;
        }
        let now = audio.as_secs_f64();
        self.announce_speech(now);
        let done = usize::try_from(audio.as_nanos() / self.word.as_nanos()).unwrap_or(usize::MAX);
        let mut unfinished = false;
        while self.heard < done {
            let k = self.heard;
            self.heard += 1;
            if self.transcript.ends_sentence(k) {
                let end = self.word_start(k + 1);
                self.queue_final(end, self.options.endpointing, false);
                if self.options.utterance_end {
                    self.queue(
                        &LiveMessage::UtteranceEnd {
                            channel: [0, self.options.channels],
                            last_word_end: seconds(end),
                        },
                        false,
                    );
                }
                self.utterance_word = k + 1;
                self.speech_announced = false;
                self.announce_speech(now);
                unfinished = false;
            } else {
                unfinished = true;
            }
        }
        if unfinished && self.options.interim_results {
            let json = self.results(
                self.segment_word..self.heard,
                self.segment_start,
                now,
                Finality::Interim,
            );
            self.push(json, true);
        }
    }

    /// `SpeechStarted` once the audio reaches the current utterance's first word.
    fn announce_speech(&mut self, now: f64) {
        let start = self.word_start(self.utterance_word);
        if self.options.vad_events && !self.speech_announced && now > start {
            self.speech_announced = true;
            self.queue(
                &LiveMessage::SpeechStarted {
                    channel: [0],
                    timestamp: seconds(start),
                },
                false,
            );
        }
    }

    /// A final result for the segment up to `end` (s), holding the words heard in it; the next
    /// segment starts there.
    fn queue_final(&mut self, end: f64, speech_final: bool, from_finalize: bool) {
        let finality = Finality::Final {
            speech_final,
            from_finalize,
        };
        let json = self.results(
            self.segment_word..self.heard,
            self.segment_start,
            end,
            finality,
        );
        self.push(json, true);
        self.segment_word = self.heard;
        self.segment_start = end;
    }

    /// A `Results` message for `words`, covering the audio from `start` to `end` (s).
    fn results(&self, words: Range<usize>, start: f64, end: f64, finality: Finality) -> String {
        let timed: Vec<_> = words
            .clone()
            .filter_map(|k| {
                let word = self.transcript.cyclic(k)?;
                Some(
                    self.options
                        .word(word, self.word_start(k), self.word_start(k + 1)),
                )
            })
            .collect();
        let (is_final, speech_final, from_finalize) = match finality {
            Finality::Interim => (false, false, false),
            Finality::Final {
                speech_final,
                from_finalize,
            } => (true, speech_final, from_finalize),
        };
        to_json(&LiveMessage::Results {
            channel_index: [0, self.options.channels],
            duration: seconds((end - start).max(0.0)),
            start: seconds(start),
            is_final,
            speech_final,
            channel: Channel {
                alternatives: vec![Alternative {
                    transcript: self.transcript.join(words, self.options.punctuate),
                    confidence: if timed.is_empty() { 0.0 } else { CONFIDENCE },
                    words: timed,
                }],
            },
            metadata: ResultMetadata {
                request_id: &self.request_id,
                model_info: self.model.info(),
                model_uuid: &self.model.uuid,
            },
            from_finalize,
        })
    }

    fn queue(&mut self, message: &LiveMessage<'_>, results: bool) {
        let json = to_json(message);
        self.push(json, results);
    }

    /// Queues a message; it is ready after the first-token delay, the recogniser's latency.
    fn push(&mut self, json: String, results: bool) {
        self.pending.push_back(Outgoing {
            json,
            ready_at: Instant::now() + self.timing.first_token_delay,
            results,
        });
    }

    /// When the next message is due: once ready, and results at least the chunk interval apart.
    fn next_send_at(&self) -> Option<Instant> {
        let next = self.pending.front()?;
        Some(match self.last_sent {
            Some(last) if next.results => next.ready_at.max(last + self.timing.chunk_interval),
            _ => next.ready_at,
        })
    }

    /// `after_chunks` of a mid-stream failure behaviour that has not struck yet.
    fn failure_after(&self) -> Option<usize> {
        if self.failed {
            return None;
        }
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

    /// Sends the next message, or fails in its place; false when the session is over.
    async fn send_next(&mut self, socket: &mut WebSocket) -> bool {
        let Some(next) = self.pending.front() else {
            return true;
        };
        if next.results && self.failure_after().is_some_and(|after| self.sent >= after) {
            return self.fail(socket).await;
        }
        let Some(next) = self.pending.pop_front() else {
            return true;
        };
        if next.results {
            self.guard.chunk_sent();
            self.sent += 1;
            self.last_sent = Some(Instant::now());
        } else {
            self.guard.event_sent();
        }
        socket.send(Message::Text(next.json.into())).await.is_ok()
    }

    /// Plays the scripted mid-stream failure; false when it ended the session.
    async fn fail(&mut self, socket: &mut WebSocket) -> bool {
        match self.behaviour {
            // Formats without audio treat `bad_audio` as `malformed_line`; the session goes on.
            Behaviour::MalformedLine { .. } | Behaviour::BadAudio { .. } => {
                self.failed = true;
                socket.send(Message::Text("{not json".into())).await.is_ok()
            }
            Behaviour::ErrorEvent { .. } => {
                // The session ended the way the script asked, not because of the client.
                self.guard.finish();
                close(socket, CLOSE_INTERNAL, NET_0000).await;
                false
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
            | Behaviour::Refused { .. } => {
                self.guard.abort();
                false
            }
        }
    }

    /// Everything was sent after `CloseStream`: the scripted failure if it has not struck yet,
    /// then `Metadata` and a normal close.
    async fn end(&mut self, socket: &mut WebSocket) {
        if self.failure_after().is_some() && !self.fail(socket).await {
            return;
        }
        let metadata = self.model.metadata(
            &self.request_id,
            self.meter.sha256(),
            self.audio_seconds(),
            self.options.channels,
        );
        let json = to_json(&LiveMessage::Metadata(metadata));
        self.guard.finish();
        if socket.send(Message::Text(json.into())).await.is_ok() {
            close(socket, CLOSE_NORMAL, "").await;
        }
    }
}

/// Whether a result may still change.
#[derive(Clone, Copy)]
enum Finality {
    Interim,
    Final {
        speech_final: bool,
        from_finalize: bool,
    },
}
