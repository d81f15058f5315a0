//! Simulator settings and the per-request behaviours that can be scripted.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the simulator paces and fills its replies.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Pause before the first content chunk; headers and the role chunk go out before it.
    pub first_token_delay: Duration,
    /// Number of content delta chunks in a text reply.
    pub chunks: usize,
    /// Pause between consecutive content chunks.
    pub chunk_interval: Duration,
    /// Text carried by every content chunk.
    pub chunk_text: String,
    /// Behaviour for requests that arrive while the script queue is empty.
    pub behaviour: Behaviour,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            first_token_delay: Duration::ZERO,
            chunks: 5,
            chunk_interval: Duration::ZERO,
            chunk_text: "tok ".to_owned(),
            behaviour: Behaviour::Normal,
        }
    }
}

/// What the simulator does with one request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Behaviour {
    /// A complete, well-formed reply.
    #[default]
    Normal,
    /// HTTP 500 with a provider-style error body, before any token.
    ServerError,
    /// HTTP 429 with a `Retry-After` header and a provider-style error body.
    RateLimited {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Sends that many content chunks, then aborts the connection with no terminator.
    DropMidStream {
        /// Content chunks sent before the connection is cut.
        after_chunks: usize,
    },
    /// Sends that many content chunks, then an event that is not JSON, then the terminator.
    MalformedLine {
        /// Content chunks sent before the malformed event.
        after_chunks: usize,
    },
}
