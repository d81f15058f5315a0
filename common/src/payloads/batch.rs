//! The `data` of the `batch.*` actions: run a batch job the gateway recorded. The job itself
//! (its input file, endpoint and owner) is in PostgreSQL (`common::batch`); the action only names
//! it, so a replayed or reclaimed action resumes the same job.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Invalid, Payload};

/// The action type that runs a batch job to its end: `progress` events while it runs, then
/// `text_completed` with `data.batch` (the job), or an `error` of stage `validation` when its
/// input file is refused.
pub const RUN: &str = "batch.job.run";

/// The longest batch id accepted, characters.
const MAX_ID_CHARS: usize = 64;

/// Runs the batch job `batch_id` of the action's tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunPayload {
    /// The job (`batch_…`), recorded by the gateway in `batch_jobs`.
    pub batch_id: String,
}

impl Payload for RunPayload {
    fn validate(&self) -> Result<(), Invalid> {
        let id = &self.batch_id;
        let well_formed = id.starts_with("batch_")
            && id.len() <= MAX_ID_CHARS
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !well_formed {
            return Err(Invalid(
                "batch_id must be a batch id (batch_ followed by letters and digits)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_batch_id_is_accepted() {
        assert!(RunPayload::parse(&json!({"batch_id": "batch_0193abc"})).is_ok());
        for bad in [
            json!({"batch_id": "file-1"}),
            json!({"batch_id": "batch_../x"}),
            json!({}),
        ] {
            assert!(RunPayload::parse(&bad).is_err(), "{bad}");
        }
        assert!(RunPayload::parse(&json!({"batch_id": "batch_1", "x": 1})).is_err());
    }
}
