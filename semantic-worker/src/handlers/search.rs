//! `semantic.search.execute`: the best texts of the action's tenant (and user, unless `all_users`) for a
//! query, answered in `text_completed.data`.

use async_trait::async_trait;
use serde_json::json;

use common::events::TextCompleted;
use common::payloads::semantic::SearchPayload;
use common::worker::{Action, HandlerError, Task};

use super::index_error;
use crate::index::{Index, Scope, hit_json};

/// Serves `semantic.search.execute`.
#[derive(Debug, Clone)]
pub struct Search(pub Index);

/// Who an action searches for: its tenant, and its user unless the payload asks for the whole
/// tenant (the gateway lets only admins ask) or the action has no user (an internal service).
pub fn scope(task: &Task, all_users: bool) -> Scope {
    Scope {
        tenant: task.action.tenant_id.to_string(),
        user: if all_users {
            None
        } else {
            task.action.user_id.map(|u| u.to_string())
        },
    }
}

#[async_trait]
impl Action<SearchPayload> for Search {
    async fn run(&self, task: Task, payload: SearchPayload) -> Result<(), HandlerError> {
        let scope = scope(&task, payload.all_users);
        let found = self.0.search(&scope, &payload).await.map_err(index_error)?;
        let results: Vec<_> = found.hits.iter().map(hit_json).collect();
        let mut done = TextCompleted::new("", serde_json::Value::Null, "stop");
        done.data = Some(json!({
            "results": results,
            "mode": payload.mode,
            "embed_ms": found.embed_ms,
            "search_ms": found.search_ms,
        }));
        task.events.text_completed(&done).await?;
        Ok(())
    }
}
