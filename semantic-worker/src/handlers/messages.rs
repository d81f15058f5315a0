//! `semantic.messages.index` (a chat turn's messages, published by the chat-worker once the turn
//! is stored) and `semantic.points.delete` (a deleted session's or document's points).

use async_trait::async_trait;
use serde_json::json;

use common::events::TextCompleted;
use common::payloads::semantic::{DeletePayload, IndexMessagesPayload};
use common::worker::{Action, HandlerError, Task};

use super::index_error;
use crate::index::{Index, IndexError};
use crate::store::Filter;

/// Serves `semantic.messages.index`.
#[derive(Debug, Clone)]
pub struct IndexMessages(pub Index);

#[async_trait]
impl Action<IndexMessagesPayload> for IndexMessages {
    async fn run(&self, task: Task, payload: IndexMessagesPayload) -> Result<(), HandlerError> {
        let Some(user) = task.action.user_id else {
            return Err(HandlerError::rejected(
                "invalid_payload",
                "messages are indexed for a user: the action has no user_id",
            ));
        };
        let indexed = self
            .0
            .index_messages(
                &task.action.tenant_id.to_string(),
                &user.to_string(),
                task.action.session_id,
                &payload.messages,
                &payload.tags,
            )
            .await
            .map_err(index_error)?;
        tracing::debug!(indexed, session_id = %task.action.session_id, "messages indexed");
        let mut done = TextCompleted::new("", serde_json::Value::Null, "stop");
        done.data = Some(json!({ "indexed": indexed }));
        task.events.text_completed(&done).await?;
        Ok(())
    }
}

/// Serves `semantic.points.delete`.
#[derive(Debug, Clone)]
pub struct DeletePoints(pub Index);

#[async_trait]
impl Action<DeletePayload> for DeletePoints {
    async fn run(&self, task: Task, payload: DeletePayload) -> Result<(), HandlerError> {
        let filter = Filter {
            tenant: task.action.tenant_id.to_string(),
            // A document is its user's: another user of the tenant deletes nothing by naming
            // it. (A session's owner was checked by whoever published the delete.)
            user: payload
                .document_id
                .and(task.action.user_id)
                .map(|u| u.to_string()),
            session_ids: payload.session_id.iter().map(ToString::to_string).collect(),
            document_ids: payload
                .document_id
                .iter()
                .map(ToString::to_string)
                .collect(),
            ..Filter::default()
        };
        let deleted = self
            .0
            .store()
            .delete(filter)
            .await
            .map_err(|e| index_error(IndexError::Store(e)))?;
        let mut done = TextCompleted::new("", serde_json::Value::Null, "stop");
        done.data = Some(json!({ "deleted": deleted }));
        task.events.text_completed(&done).await?;
        Ok(())
    }
}
