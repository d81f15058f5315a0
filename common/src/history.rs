//! Chat history in PostgreSQL: sessions and messages, always scoped by tenant. Shared by the
//! chat-worker (which writes turns and titles) and the gateway (which lists, reads, searches,
//! renames and deletes). `docs/database.md` lists each query with the index it uses.
//!
//! Functions taking `only_user` restrict to that user's sessions when it is `Some` (a regular
//! user), and see the whole tenant when it is `None` (an admin, or the worker).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

mod search;
pub mod title;
pub use search::{SearchHit, search_messages};

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

/// Starts a turn in one statement (one round trip, one commit): creates the session for this
/// tenant and user or touches it if it is theirs, and writes the turn's first message (the
/// user's). `None`: another tenant or user owns the session (or the turn), and nothing was written.
pub async fn start_turn(
    pool: &PgPool,
    user_id: Option<Uuid>,
    m: &NewMessage<'_>,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"WITH session AS (
             INSERT INTO chat_sessions (id, tenant_id, user_id) VALUES ($3, $2, $13)
             ON CONFLICT (id) DO UPDATE SET updated_at = now()
             WHERE chat_sessions.tenant_id = EXCLUDED.tenant_id
               AND chat_sessions.user_id IS NOT DISTINCT FROM EXCLUDED.user_id
             RETURNING id
           )
           INSERT INTO chat_messages
             (id, tenant_id, session_id, task_id, role, content, parts, model, provider, usage,
              latency_ms, status)
           SELECT $1, $2, session.id, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM session
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
        m.status,
        user_id
    )
    .fetch_optional(pool)
    .await
}

/// The owner of a stored session, if it is stored.
pub async fn session_owner(
    pool: &PgPool,
    session_id: Uuid,
) -> sqlx::Result<Option<crate::sessions::Owner>> {
    let row = sqlx::query!(
        "SELECT tenant_id, user_id FROM chat_sessions WHERE id = $1",
        session_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| crate::sessions::Owner::new(r.tenant_id, r.user_id)))
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

/// A session as lists show it: with its size and the start of its last message.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SessionSummary {
    /// The session id.
    pub id: Uuid,
    /// Who started it.
    pub user_id: Option<Uuid>,
    /// Its title, once named.
    pub title: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last had a turn (the list's order).
    pub updated_at: DateTime<Utc>,
    /// Messages stored in it.
    pub message_count: i64,
    /// The first characters of its newest non-empty message.
    pub last_message_preview: Option<String>,
}

/// A position in a list ordered newest first: `(updated_at, id)` of sessions, `(created_at, id)`
/// of messages. The next page holds what sorts strictly after it.
pub type Key = (DateTime<Utc>, Uuid);

/// The summary columns; `s` is the session. Previews are 160 characters.
const SUMMARY_SELECT: &str = r#"SELECT s.id, s.user_id, s.title, s.created_at, s.updated_at,
    (SELECT count(*) FROM chat_messages m
      WHERE m.tenant_id = s.tenant_id AND m.session_id = s.id) AS message_count,
    (SELECT left(m.content, 160) FROM chat_messages m
      WHERE m.tenant_id = s.tenant_id AND m.session_id = s.id AND m.content <> ''
      ORDER BY m.created_at DESC, m.id DESC LIMIT 1) AS last_message_preview
  FROM chat_sessions s"#;

/// A tenant's sessions, newest first (`updated_at DESC, id DESC`), after `after`.
pub async fn list_sessions(
    pool: &PgPool,
    tenant_id: Uuid,
    only_user: Option<Uuid>,
    after: Option<Key>,
    limit: i64,
) -> sqlx::Result<Vec<SessionSummary>> {
    let mut q = QueryBuilder::<Postgres>::new(SUMMARY_SELECT);
    q.push(" WHERE s.tenant_id = ").push_bind(tenant_id);
    if let Some(user) = only_user {
        q.push(" AND s.user_id = ").push_bind(user);
    }
    if let Some((at, id)) = after {
        q.push(" AND (s.updated_at, s.id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY s.updated_at DESC, s.id DESC LIMIT ")
        .push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

/// One session of the tenant (and of `only_user`, if given).
pub async fn find_session(
    pool: &PgPool,
    tenant_id: Uuid,
    session_id: Uuid,
    only_user: Option<Uuid>,
) -> sqlx::Result<Option<SessionSummary>> {
    sqlx::query_as!(
        SessionSummary,
        r#"SELECT s.id, s.user_id, s.title, s.created_at, s.updated_at,
             (SELECT count(*) FROM chat_messages m
               WHERE m.tenant_id = s.tenant_id AND m.session_id = s.id) AS "message_count!",
             (SELECT left(m.content, 160) FROM chat_messages m
               WHERE m.tenant_id = s.tenant_id AND m.session_id = s.id AND m.content <> ''
               ORDER BY m.created_at DESC, m.id DESC LIMIT 1) AS last_message_preview
           FROM chat_sessions s
           WHERE s.tenant_id = $1 AND s.id = $2 AND ($3::uuid IS NULL OR s.user_id = $3)"#,
        tenant_id,
        session_id,
        only_user
    )
    .fetch_optional(pool)
    .await
}

/// A session's newest `limit` messages before `before` (all when `None`), newest first.
pub async fn messages_before(
    pool: &PgPool,
    tenant_id: Uuid,
    session_id: Uuid,
    before: Option<Key>,
    limit: i64,
) -> sqlx::Result<Vec<Message>> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT id, session_id, task_id, role, content, parts, model, provider, usage, \
         latency_ms, status, created_at, metadata FROM chat_messages WHERE tenant_id = ",
    );
    q.push_bind(tenant_id)
        .push(" AND session_id = ")
        .push_bind(session_id);
    if let Some((at, id)) = before {
        q.push(" AND (created_at, id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

/// A session's first `limit` messages, oldest first.
pub async fn first_messages(
    pool: &PgPool,
    tenant_id: Uuid,
    session_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Message>> {
    sqlx::query_as!(
        Message,
        r#"SELECT id, session_id, task_id, role, content, parts, model, provider, usage,
                  latency_ms, status, created_at, metadata
           FROM chat_messages
           WHERE tenant_id = $1 AND session_id = $2
           ORDER BY created_at, id
           LIMIT $3"#,
        tenant_id,
        session_id,
        limit
    )
    .fetch_all(pool)
    .await
}

/// Sets a session's title; false when there is no such session (for `only_user`).
/// `updated_at` is left alone: naming a session does not move it up the list.
pub async fn set_title(
    pool: &PgPool,
    tenant_id: Uuid,
    session_id: Uuid,
    only_user: Option<Uuid>,
    title: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE chat_sessions SET title = $4
           WHERE tenant_id = $1 AND id = $2 AND ($3::uuid IS NULL OR user_id = $3)"#,
        tenant_id,
        session_id,
        only_user,
        title
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes a session; its messages go with it (`ON DELETE CASCADE`, served by
/// `chat_messages_session_fk_idx`). False when there is no such session (for `only_user`).
pub async fn delete_session(
    pool: &PgPool,
    tenant_id: Uuid,
    session_id: Uuid,
    only_user: Option<Uuid>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"DELETE FROM chat_sessions
           WHERE tenant_id = $1 AND id = $2 AND ($3::uuid IS NULL OR user_id = $3)"#,
        tenant_id,
        session_id,
        only_user
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}
