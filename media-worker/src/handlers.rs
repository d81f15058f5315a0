//! The media actions.

pub mod image;
pub mod video;

use std::time::Duration;

use common::backoff::Backoff;

use crate::error::MediaError;

/// Tries of one provider call (the first, then the retries of a rate limit, a 5xx or a broken
/// connection).
pub const TRIES: u32 = 3;
/// The longest wait between tries, whatever the provider's `Retry-After` says.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// Runs `attempt` up to [`TRIES`] times while it fails retryably, waiting as the provider says
/// (or backing off).
async fn with_retries<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, MediaError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, MediaError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(e) if e.retryable() && tries < TRIES => {
                let wait = match &e {
                    MediaError::Provider(p) => p.retry_after(),
                    _ => None,
                }
                .unwrap_or_else(|| {
                    Backoff::delay_for(Duration::from_millis(500), Duration::from_secs(8), tries)
                })
                .min(MAX_RETRY_WAIT);
                tracing::warn!(error = %e, tries, what, "provider failed; trying again");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}
