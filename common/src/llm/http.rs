//! SSE plumbing shared by the text providers: a stream of deltas driven by a per-format event
//! parser (the HTTP client and status mapping are [`crate::provider`]'s).

use eventsource_stream::{Event, Eventsource};
use futures::StreamExt;
use serde_json::Value;

pub use crate::provider::{client, send};

use super::{Delta, DeltaStream, ProviderError};

/// What a format's parser makes of one SSE event.
pub trait SseParser: Send + 'static {
    /// The deltas in this event.
    fn event(&mut self, event: &Event) -> Result<Vec<Delta>, ProviderError>;
    /// True once the format's explicit end marker arrived (`[DONE]`, `message_stop`).
    fn done(&self) -> bool;
    /// True once the answer is whole, so the body ending here is not a broken stream.
    fn complete(&self) -> bool {
        self.done()
    }
}

/// Turns an SSE response into deltas. A body that ends before the parser saw the answer complete
/// is a broken stream: an error, never a silently truncated answer.
pub fn sse_stream<P: SseParser>(response: reqwest::Response, parser: P) -> DeltaStream {
    let events = response.bytes_stream().eventsource();
    let state = (events, parser, Vec::<Delta>::new().into_iter(), false);
    futures::stream::unfold(
        state,
        |(mut events, mut parser, mut pending, ended)| async move {
            loop {
                if let Some(d) = pending.next() {
                    return Some((Ok(d), (events, parser, pending, ended)));
                }
                if ended || parser.done() {
                    return None;
                }
                let failure = match events.next().await {
                    Some(Ok(event)) => match parser.event(&event) {
                        Ok(deltas) => {
                            pending = deltas.into_iter();
                            continue;
                        }
                        Err(e) => e,
                    },
                    Some(Err(e)) => ProviderError::Connection(format!("stream broke off: {e}")),
                    None if parser.complete() => return None,
                    None => ProviderError::Connection(
                        "stream ended before the provider finished".into(),
                    ),
                };
                return Some((Err(failure), (events, parser, pending, true)));
            }
        },
    )
    .boxed()
}

/// Parses an event's data as JSON, or a protocol error.
pub fn json(event: &Event) -> Result<Value, ProviderError> {
    serde_json::from_str(&event.data)
        .map_err(|e| ProviderError::Protocol(format!("malformed event: {e}")))
}
