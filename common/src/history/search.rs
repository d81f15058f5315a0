//! Full-text search in a tenant's messages: the `search` column (`to_tsvector('simple', content)`,
//! GIN index `chat_messages_search_idx`), `websearch_to_tsquery`, `ts_rank` and `ts_headline`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// One full-text search hit.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    /// The message found.
    pub message_id: Uuid,
    /// Its session.
    pub session_id: Uuid,
    /// The session's title.
    pub session_title: Option<String>,
    /// The message's role.
    pub role: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// `ts_rank` of the match (higher is better).
    pub rank: f32,
    /// `ts_headline` of the content, with the given start and stop markers around matches.
    pub snippet: String,
}

/// The tenant's messages matching `query` (`websearch_to_tsquery('simple', ...)`), best first.
/// `headline_options` are `ts_headline`'s options (markers, fragment sizes).
pub async fn search_messages(
    pool: &PgPool,
    tenant_id: Uuid,
    only_user: Option<Uuid>,
    query: &str,
    headline_options: &str,
    limit: i64,
) -> sqlx::Result<Vec<SearchHit>> {
    // Rank and cut first, so ts_headline (which re-parses the content) runs on the page only.
    sqlx::query_as!(
        SearchHit,
        r#"WITH q AS (SELECT websearch_to_tsquery('simple', $3) AS query),
           hits AS (
             SELECT m.id, m.session_id, s.title, m.role, m.content, m.created_at,
                    ts_rank(m.search, q.query) AS rank
             FROM q, chat_messages m
             JOIN chat_sessions s ON s.id = m.session_id AND s.tenant_id = m.tenant_id
             WHERE m.tenant_id = $1 AND ($2::uuid IS NULL OR s.user_id = $2)
               AND m.search @@ q.query
             ORDER BY rank DESC, m.created_at DESC, m.id DESC
             LIMIT $5)
           SELECT hits.id AS "message_id!", hits.session_id AS "session_id!",
                  hits.title AS session_title, hits.role AS "role!",
                  hits.created_at AS "created_at!", hits.rank AS "rank!",
                  ts_headline('simple', hits.content, q.query, $4) AS "snippet!"
           FROM hits, q
           ORDER BY hits.rank DESC, hits.created_at DESC, hits.id DESC"#,
        tenant_id,
        only_user,
        query,
        headline_options,
        limit
    )
    .fetch_all(pool)
    .await
}
