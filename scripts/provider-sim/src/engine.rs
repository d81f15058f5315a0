//! Format-independent playback: applies a behaviour, paces the chunks and keeps the record current.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::config::{Behaviour, SimConfig};
use crate::record::ResponseGuard;

/// A failure the simulator reports as an HTTP error instead of a reply.
pub(crate) enum Failure {
    Server,
    RateLimited {
        retry_after_secs: u64,
    },
    /// The non-streamed form of `Behaviour::ErrorEvent`: the provider is overloaded.
    Overloaded,
    /// `Behaviour::Refused`: a 4xx with the provider's explanation.
    Refused {
        status: StatusCode,
        message: String,
    },
}

/// One request's reply as a wire format encodes it; the engine decides when each part goes out.
///
/// A reply is made of "units" (text chunks, reasoning deltas, tool-argument pieces or whole
/// function calls) framed by opening and closing events, so every format shares the same pacing,
/// failure injection and recording. A unit's bytes may hold several events, e.g. the end of one
/// content block and the start of the next ahead of the block's first delta.
pub(crate) trait Turn: Send + 'static {
    /// The client asked for a streamed reply.
    fn streaming(&self) -> bool;
    /// Number of paced units in a complete reply.
    fn units(&self) -> usize;
    /// Events sent as soon as the headers go out, before the first-token delay.
    fn opening(&mut self) -> Vec<Bytes>;
    /// The event carrying unit `index`.
    fn unit(&mut self, index: usize) -> Bytes;
    /// The event carrying the last unit of a complete reply.
    ///
    /// Formats that put the finish reason on their last content event (Gemini) override this;
    /// a truncated stream never calls it.
    fn final_unit(&mut self, index: usize) -> Bytes {
        self.unit(index)
    }
    /// Events that end a complete stream (finish reason, usage, terminator).
    ///
    /// Asked for only after every unit was produced. May be empty when the last unit ends the
    /// reply (see `final_unit`), but a stream must hold at least one event in all.
    fn closing(&mut self) -> Vec<Bytes>;
    /// A malformed event followed by whatever terminator the format uses.
    fn malformed(&mut self) -> Vec<Bytes>;
    /// An event whose audio is not valid base64, then the terminator; formats without audio
    /// send their malformed event instead.
    fn bad_audio(&mut self) -> Vec<Bytes> {
        self.malformed()
    }
    /// Whether the format can report an error inside the body; raw audio bytes cannot, so there
    /// `Behaviour::ErrorEvent` cuts the connection instead.
    fn has_error_event(&self) -> bool {
        true
    }
    /// The format's mid-stream error report; the body ends cleanly after it.
    fn error_event(&mut self) -> Vec<Bytes>;
    /// The whole reply as one non-streamed response.
    fn complete(&self) -> Response;
    /// A non-streamed response whose body is not valid JSON.
    fn malformed_complete(&self) -> Response;
    /// A non-streamed response whose audio is not valid base64; formats without audio send
    /// their malformed response instead.
    fn bad_audio_complete(&self) -> Response {
        self.malformed_complete()
    }
    /// The format's error response for `failure`.
    fn failure(&self, failure: Failure) -> Response;
    /// Content type of a streamed reply.
    fn stream_content_type(&self) -> &'static str {
        "text/event-stream"
    }
}

/// Pacing of a reply, taken from the simulator config.
#[derive(Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) first_token_delay: Duration,
    pub(crate) chunk_interval: Duration,
}

impl From<&SimConfig> for Timing {
    fn from(config: &SimConfig) -> Self {
        Self {
            first_token_delay: config.first_token_delay,
            chunk_interval: config.chunk_interval,
        }
    }
}

/// The HTTP error `behaviour` answers with before any reply, if it is one of those.
pub(crate) fn upfront_failure(behaviour: &Behaviour) -> Option<Failure> {
    match behaviour {
        Behaviour::ServerError => Some(Failure::Server),
        Behaviour::RateLimited { retry_after_secs } => Some(Failure::RateLimited {
            retry_after_secs: *retry_after_secs,
        }),
        Behaviour::Refused { status, message } => Some(Failure::Refused {
            status: StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
            message: message.clone(),
        }),
        Behaviour::Normal
        | Behaviour::ContentFiltered
        | Behaviour::JobFailed
        | Behaviour::JobStuck
        | Behaviour::DownloadDrop { .. }
        | Behaviour::DropMidStream { .. }
        | Behaviour::MalformedLine { .. }
        | Behaviour::BadAudio { .. }
        | Behaviour::ErrorEvent { .. } => None,
    }
}

/// Produces the response for one request according to `behaviour`.
pub(crate) async fn respond<T: Turn>(
    mut turn: T,
    behaviour: &Behaviour,
    timing: Timing,
    mut guard: ResponseGuard,
    stop: CancellationToken,
) -> Response {
    if let Some(failure) = upfront_failure(behaviour) {
        guard.finish();
        return turn.failure(failure);
    }

    if turn.streaming() {
        let steps = plan(&mut turn, behaviour, timing);
        let content_type = turn.stream_content_type();
        let playback = Playback {
            turn,
            steps,
            guard,
            stop,
        };
        return stream_response(playback, content_type);
    }

    // Dropping this future while it sleeps drops the guard too, which records a client close.
    if !pause(timing.first_token_delay, &stop).await {
        guard.abort();
        return cut_response();
    }
    match behaviour {
        Behaviour::DropMidStream { .. } => {
            guard.abort();
            cut_response()
        }
        Behaviour::MalformedLine { .. } => {
            guard.finish();
            turn.malformed_complete()
        }
        Behaviour::BadAudio { .. } => {
            guard.finish();
            turn.bad_audio_complete()
        }
        Behaviour::ErrorEvent { .. } => {
            guard.finish();
            turn.failure(Failure::Overloaded)
        }
        Behaviour::Normal
        | Behaviour::ContentFiltered
        | Behaviour::JobFailed
        | Behaviour::JobStuck
        | Behaviour::DownloadDrop { .. }
        | Behaviour::ServerError
        | Behaviour::RateLimited { .. }
        | Behaviour::Refused { .. } => {
            for _ in 0..turn.units() {
                guard.chunk_sent();
            }
            guard.finish();
            turn.complete()
        }
    }
}

enum Step {
    Event(Bytes),
    /// Unit `index`; `last` when it completes the reply.
    Unit {
        index: usize,
        last: bool,
    },
    Pause(Duration),
    Cut,
    /// The events that end the stream, asked of the turn only once every unit before them has
    /// been produced, so formats can frame them according to what was sent.
    Tail(Tail),
}

#[derive(Clone, Copy)]
enum Tail {
    Closing,
    Malformed,
    BadAudio,
    ErrorEvent,
}

fn plan<T: Turn>(turn: &mut T, behaviour: &Behaviour, timing: Timing) -> VecDeque<Step> {
    let mut steps: VecDeque<Step> = turn.opening().into_iter().map(Step::Event).collect();
    let (units, complete) = match behaviour {
        Behaviour::DropMidStream { after_chunks }
        | Behaviour::MalformedLine { after_chunks }
        | Behaviour::BadAudio { after_chunks }
        | Behaviour::ErrorEvent { after_chunks } => ((*after_chunks).min(turn.units()), false),
        Behaviour::Normal
        | Behaviour::ContentFiltered
        | Behaviour::JobFailed
        | Behaviour::JobStuck
        | Behaviour::DownloadDrop { .. }
        | Behaviour::ServerError
        | Behaviour::RateLimited { .. }
        | Behaviour::Refused { .. } => (turn.units(), true),
    };
    for index in 0..units {
        let delay = if index == 0 {
            timing.first_token_delay
        } else {
            timing.chunk_interval
        };
        if !delay.is_zero() {
            steps.push_back(Step::Pause(delay));
        }
        steps.push_back(Step::Unit {
            index,
            last: complete && index + 1 == units,
        });
    }
    steps.push_back(match behaviour {
        Behaviour::DropMidStream { .. } => Step::Cut,
        Behaviour::MalformedLine { .. } => Step::Tail(Tail::Malformed),
        Behaviour::BadAudio { .. } => Step::Tail(Tail::BadAudio),
        Behaviour::ErrorEvent { .. } if !turn.has_error_event() => Step::Cut,
        Behaviour::ErrorEvent { .. } => Step::Tail(Tail::ErrorEvent),
        Behaviour::Normal
        | Behaviour::ContentFiltered
        | Behaviour::JobFailed
        | Behaviour::JobStuck
        | Behaviour::DownloadDrop { .. }
        | Behaviour::ServerError
        | Behaviour::RateLimited { .. }
        | Behaviour::Refused { .. } => Step::Tail(Tail::Closing),
    });
    steps
}

/// Sleeps for `delay`; false if the simulator is stopping instead.
async fn pause(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stop.cancelled() => false,
    }
}

struct Playback<T> {
    turn: T,
    steps: VecDeque<Step>,
    guard: ResponseGuard,
    stop: CancellationToken,
}

impl<T: Turn> Playback<T> {
    /// Replaces a tail at the front of the queue with the events the turn gives for it.
    fn expand_tail(&mut self) {
        while let Some(&Step::Tail(tail)) = self.steps.front() {
            self.steps.pop_front();
            let events = match tail {
                Tail::Closing => self.turn.closing(),
                Tail::Malformed => self.turn.malformed(),
                Tail::BadAudio => self.turn.bad_audio(),
                Tail::ErrorEvent => self.turn.error_event(),
            };
            for event in events.into_iter().rev() {
                self.steps.push_front(Step::Event(event));
            }
        }
    }

    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            self.expand_tail();
            let event = match self.steps.pop_front()? {
                Step::Event(bytes) => bytes,
                Step::Unit { index, last } => {
                    self.guard.chunk_sent();
                    if last {
                        self.turn.final_unit(index)
                    } else {
                        self.turn.unit(index)
                    }
                }
                Step::Pause(delay) => {
                    if pause(delay, &self.stop).await {
                        continue;
                    }
                    self.steps.clear();
                    return Some(self.cut().await);
                }
                Step::Cut => return Some(self.cut().await),
                Step::Tail(_) => continue,
            };
            self.guard.event_sent();
            // A tail right behind this event may turn out empty, which makes this the last one.
            self.expand_tail();
            // Settling when the last event is handed over, rather than when the stream is polled
            // once more, keeps a client that stops reading at the terminator from counting as a close.
            if self.steps.is_empty() {
                self.guard.finish();
            }
            return Some(Ok(event));
        }
    }

    async fn cut(&mut self) -> io::Result<Bytes> {
        self.guard.abort();
        // One trip through the scheduler lets hyper flush the chunks already handed to it;
        // otherwise the error would discard them together with the connection.
        tokio::task::yield_now().await;
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "provider-sim cut the stream",
        ))
    }
}

fn stream_response<T: Turn>(playback: Playback<T>, content_type: &'static str) -> Response {
    let events = futures::stream::unfold(playback, |mut playback| async move {
        let item = playback.next().await?;
        Some((item, playback))
    });
    let mut response = Response::new(Body::from_stream(events));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A response whose body fails at once, so hyper aborts the connection.
fn cut_response() -> Response {
    let body = futures::stream::once(async {
        tokio::task::yield_now().await;
        Err::<Bytes, _>(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "provider-sim cut the response",
        ))
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
