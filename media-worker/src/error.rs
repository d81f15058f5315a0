//! How making an image or a video fails, with the code and stage its `error` event carries.

use common::events::ErrorData;
pub use common::provider::ProviderError;

/// Why a provider gave no image or video.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MediaError {
    /// The HTTP exchange failed (status, connection, protocol).
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The provider's safety system refused the prompt or the result.
    #[error("the provider's safety system refused this: {0}")]
    Filtered(String),
    /// The provider's job ended failed.
    #[error("the provider's job failed: {0}")]
    JobFailed(String),
    /// The job did not end in time.
    #[error("the provider's job did not finish within {0} s")]
    Timeout(u64),
    /// The provider's answer is not what its API promises (not an image, no video).
    #[error("the provider sent an invalid answer: {0}")]
    BadOutput(String),
    /// The result is larger than this service keeps.
    #[error("{0}")]
    TooLarge(String),
    /// The image to start from cannot be used (not reachable, not an image, too large).
    #[error("{0}")]
    BadInput(String),
}

impl MediaError {
    /// The `error` event's code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Provider(e) => e.code(),
            Self::Filtered(_) => "content_filtered",
            Self::JobFailed(_) => "job_failed",
            Self::Timeout(_) => "job_timeout",
            Self::BadOutput(_) => "upstream_protocol",
            Self::TooLarge(_) => "output_too_large",
            Self::BadInput(_) => "invalid_image",
        }
    }

    /// Whether trying again may succeed (a rate limit, a 5xx, a broken connection).
    pub fn retryable(&self) -> bool {
        match self {
            Self::Provider(e) => e.retryable(),
            _ => false,
        }
    }

    /// Whether the client's request is at fault (told, never retried nor dead-lettered).
    pub fn is_clients(&self) -> bool {
        matches!(
            self,
            Self::Filtered(_)
                | Self::BadInput(_)
                | Self::Provider(ProviderError::Refused { .. } | ProviderError::Unsupported(_))
        )
    }

    /// The `error` event's data, of `stage`.
    pub fn error_data(&self, stage: &str) -> ErrorData {
        let mut error = ErrorData::new(stage, self.code(), self.to_string(), self.retryable());
        if let Self::Provider(e) = self {
            error.retry_after_secs = e.retry_after().map(|d| d.as_secs().max(1));
        }
        error
    }
}
