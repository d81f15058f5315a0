//! HTTP and SSE plumbing shared by the providers: status mapping, error messages, and a stream of
//! deltas driven by a per-format event parser.

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use common::settings::Secret;

use super::{Delta, DeltaStream, ProviderError};

/// The HTTP client every provider uses.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()?)
}

/// Sends a request, mapping transport failures and error statuses to [`ProviderError`]. `api_key`
/// is the key the request carries, cut out of any error message the provider echoes it in.
pub async fn send(
    builder: reqwest::RequestBuilder,
    api_key: Option<&Secret>,
) -> Result<reqwest::Response, ProviderError> {
    let response = builder.send().await.map_err(|e| {
        ProviderError::Connection(
            if e.is_connect() {
                "cannot connect"
            } else if e.is_timeout() {
                "timed out"
            } else {
                "request failed"
            }
            .to_owned(),
        )
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(ProviderError::RateLimited {
            retry_after: retry_after(response.headers()),
        });
    }
    if status.is_server_error() {
        return Err(ProviderError::Upstream {
            status: status.as_u16(),
        });
    }
    let url = response.url().clone();
    let message = error_message(response, api_key).await;
    if matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    ) {
        // The deployment's problem, not the user's: the operator reads why here, the user is
        // told only that the provider refused.
        tracing::error!(status = status.as_u16(), host = url.host_str().unwrap_or_default(),
            path = url.path(), provider_message = %message,
            "the provider refused the deployment: check its API key, permissions and model names");
        return Err(ProviderError::Misconfigured {
            status: status.as_u16(),
        });
    }
    Err(ProviderError::Refused {
        status: status.as_u16(),
        message,
    })
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The provider's own error message (`error.message` in all three formats), cut short, with the
/// request's key replaced should the provider quote it.
async fn error_message(response: reqwest::Response, api_key: Option<&Secret>) -> String {
    let text = response.text().await.unwrap_or_default();
    let mut message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or(text);
    if let Some(key) = api_key.map(Secret::expose).filter(|k| !k.is_empty()) {
        message = message.replace(key, "[api key]");
    }
    message.chars().take(300).collect()
}

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
