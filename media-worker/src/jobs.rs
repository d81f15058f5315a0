//! The record of the provider job an action started, in Redis under the action's id: written
//! right after the provider accepted the job and before the first poll, so that the action,
//! delivered again after its worker died, polls the same job instead of paying for a second
//! one. Once the video is stored, the record keeps the answer too, and a later delivery only
//! repeats it.

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use common::Bus;

use crate::videos::JobRef;

/// One action's provider job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The provider (`openai`, `gemini`, `klingai`).
    pub provider: String,
    /// The model's id.
    pub model: String,
    /// The provider's job.
    pub job: JobRef,
    /// When the provider accepted it (the job's deadline counts from here).
    pub submitted_at: DateTime<Utc>,
    /// The answer (`text_completed.data`), once the video is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// The records, in Redis.
#[derive(Clone, Debug)]
pub struct Jobs {
    bus: Bus,
    ttl_secs: u64,
}

impl Jobs {
    /// Records kept `ttl_secs`.
    pub fn new(bus: Bus, ttl_secs: u64) -> Self {
        Self {
            bus,
            ttl_secs: ttl_secs.max(60),
        }
    }

    fn key(&self, action_id: Uuid) -> String {
        self.bus.names().media_job(action_id)
    }

    /// The record of `action_id`, if any (one that cannot be read counts as none, and is
    /// logged).
    pub async fn get(&self, action_id: Uuid) -> redis::RedisResult<Option<JobRecord>> {
        let raw: Option<String> = self.bus.conn().get(self.key(action_id)).await?;
        Ok(raw.and_then(|raw| match serde_json::from_str(&raw) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::error!(%action_id, error = %e, "an unreadable media job record");
                None
            }
        }))
    }

    /// Writes the record of `action_id`.
    pub async fn put(&self, action_id: Uuid, record: &JobRecord) -> redis::RedisResult<()> {
        let raw = serde_json::to_string(record).unwrap_or_default();
        self.bus
            .conn()
            .set_ex(self.key(action_id), raw, self.ttl_secs)
            .await
    }

    /// Forgets the record of `action_id` (the job was cancelled or failed for good).
    pub async fn delete(&self, action_id: Uuid) -> redis::RedisResult<()> {
        self.bus.conn().del(self.key(action_id)).await
    }
}
