//! Chat history in PostgreSQL: sessions and messages, always scoped by tenant. Shared by the
//! chat-worker (which writes turns) and the gateway (which reads, renames and deletes).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// A stored session.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Session {
    /// The session id (also the response stream's name).
    pub id: Uuid,
    /// Who started it.
    pub user_id: Option<Uuid>,
    /// Its title, once named.
    pub title: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last had a turn.
    pub updated_at: DateTime<Utc>,
}

/// A stored message.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Message {
    /// The message id.
    pub id: Uuid,
    /// Its session.
    pub session_id: Uuid,
    /// The task (turn) it belongs to.
    pub task_id: Uuid,
    /// `user`, `assistant`, `system` or `tool`.
    pub role: String,
    /// Its text.
    pub content: String,
    /// Multimodal parts or tool calls, as sent.
    pub parts: Option<Value>,
    /// The model that wrote it.
    pub model: Option<String>,
    /// The provider that served it.
    pub provider: Option<String>,
    /// Token counts.
    pub usage: Option<Value>,
    /// Time from the task's start to its end, milliseconds.
    pub latency_ms: Option<i32>,
    /// `complete`, `cancelled` or `error`.
    pub status: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Free-form.
    pub metadata: Value,
}

/// A message to write.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// Owner.
    pub tenant_id: Uuid,
    /// Session.
    pub session_id: Uuid,
    /// Turn.
    pub task_id: Uuid,
    /// Role.
    pub role: &'a str,
    /// Text.
    pub content: &'a str,
    /// Parts or tool calls.
    pub parts: Option<Value>,
    /// Model.
    pub model: Option<&'a str>,
    /// Provider.
    pub provider: Option<&'a str>,
    /// Token counts.
    pub usage: Option<Value>,
    /// Latency, milliseconds.
    pub latency_ms: Option<i32>,
    /// `complete`, `cancelled` or `error`.
    pub status: &'a str,
}

/// Creates the session for this tenant, or touches it if it is theirs. `None`: another tenant owns it.
pub async fn ensure_session(
    pool: &PgPool,
    tenant_id: Uuid,
    session_id: Uuid,
    user_id: Option<Uuid>,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"INSERT INTO chat_sessions (id, tenant_id, user_id) VALUES ($1, $2, $3)
           ON CONFLICT (id) DO UPDATE SET updated_at = now()
           WHERE chat_sessions.tenant_id = EXCLUDED.tenant_id
           RETURNING id"#,
        session_id,
        tenant_id,
        user_id
    )
    .fetch_optional(pool)
    .await
}

/// The tenant owning a session, if it is stored.
pub async fn session_tenant(pool: &PgPool, session_id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT tenant_id FROM chat_sessions WHERE id = $1",
        session_id
    )
    .fetch_optional(pool)
    .await
}

/// Writes a message; writing the same turn and role again (a redelivered action) updates it.
pub async fn save_message(pool: &PgPool, m: &NewMessage<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO chat_messages
             (id, tenant_id, session_id, task_id, role, content, parts, model, provider, usage,
              latency_ms, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           ON CONFLICT (task_id, role) DO UPDATE SET
             content = EXCLUDED.content, parts = EXCLUDED.parts, model = EXCLUDED.model,
             provider = EXCLUDED.provider, usage = EXCLUDED.usage,
             latency_ms = EXCLUDED.latency_ms, status = EXCLUDED.status
           WHERE chat_messages.tenant_id = EXCLUDED.tenant_id
           RETURNING id"#,
        Uuid::now_v7(),
        m.tenant_id,
        m.session_id,
        m.task_id,
        m.role,
        m.content,
        m.parts,
        m.model,
        m.provider,
        m.usage,
        m.latency_ms,
        m.status
    )
    .fetch_one(pool)
    .await
}

/// The newest messages of a session (other turns than `except_task`), newest first.
pub async fn recent_messages(
    pool: &PgPool,
    tenant_id: Uuid,
    session_id: Uuid,
    except_task: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Message>> {
    sqlx::query_as!(
        Message,
        r#"SELECT id, session_id, task_id, role, content, parts, model, provider, usage,
                  latency_ms, status, created_at, metadata
           FROM chat_messages
           WHERE tenant_id = $1 AND session_id = $2 AND task_id <> $3
           ORDER BY created_at DESC, id DESC
           LIMIT $4"#,
        tenant_id,
        session_id,
        except_task,
        limit
    )
    .fetch_all(pool)
    .await
}
