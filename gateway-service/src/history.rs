//! The chat history as the REST API serves it: listing, reading, renaming, deleting and searching
//! sessions, and who may see what. Plain functions; the route handlers only unpack requests.
//!
//! Visibility: a regular user sees the sessions they started (`user_id = sub`); an admin reads,
//! renames and deletes any session of the tenant, and lists or searches the whole tenant with
//! `all=true` (their own sessions otherwise). Anything else, another tenant's sessions above all,
//! is "not found", never "forbidden", so its existence does not leak.

mod cursor;
pub mod naming;

use common::auth::Claims;
use common::error::AppError;
use common::history::{self, Message, SearchHit, SessionSummary};
use common::http::{PageRule, truncate_page};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::state::AppState;

/// Sessions per page: default and maximum.
pub const SESSIONS_PAGE: PageRule = PageRule::new(20, 100);
/// Messages per read: default and maximum.
pub const MESSAGES_PAGE: PageRule = PageRule::new(100, 500);
/// Search hits: default and maximum.
pub const SEARCH_PAGE: PageRule = PageRule::new(20, 100);
/// Longest title a client may set, in characters.
pub const MAX_TITLE_CHARS: usize = history::title::MAX_CHARS;
/// Longest search query, in characters.
const MAX_QUERY_CHARS: usize = 500;

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    /// Their tenant: every query is scoped by it.
    pub tenant_id: Uuid,
    /// Their user id (`sub`).
    pub user_id: Uuid,
    /// Whether they have the admin role.
    pub admin: bool,
}

impl Viewer {
    /// The viewer a token describes.
    pub fn new(claims: &Claims) -> Self {
        Self {
            tenant_id: claims.tenant_id,
            user_id: claims.sub,
            admin: common::http::is_admin(claims),
        }
    }

    /// For one session: admins reach the whole tenant, users their own sessions.
    fn owner_filter(&self) -> Option<Uuid> {
        (!self.admin).then_some(self.user_id)
    }

    /// For lists and search: the whole tenant only for an admin who asks for it.
    fn list_filter(&self, all: bool) -> Result<Option<Uuid>, AppError> {
        match (all, self.admin) {
            (true, true) => Ok(None),
            (true, false) => Err(AppError::Forbidden("all=true needs the admin role".into())),
            (false, _) => Ok(Some(self.user_id)),
        }
    }
}

fn not_found() -> AppError {
    AppError::NotFound("session not found".into())
}

/// A page of sessions.
#[derive(Debug, Serialize)]
pub struct SessionPage {
    /// Newest first.
    pub sessions: Vec<SessionSummary>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// The viewer's sessions, newest first, after `cursor`.
pub async fn list_sessions(
    db: &PgPool,
    viewer: Viewer,
    all: bool,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<SessionPage, AppError> {
    let only_user = viewer.list_filter(all)?;
    let limit = SESSIONS_PAGE.limit(limit)?;
    let after = cursor.map(|c| cursor::decode(c, "cursor")).transpose()?;
    let mut sessions =
        history::list_sessions(db, viewer.tenant_id, only_user, after, limit + 1).await?;
    let more = truncate_page(&mut sessions, limit);
    let next_cursor = sessions
        .last()
        .filter(|_| more)
        .map(|s| cursor::encode((s.updated_at, s.id)));
    Ok(SessionPage {
        sessions,
        next_cursor,
    })
}

/// A session with (a page of) its messages.
#[derive(Debug, Serialize)]
pub struct SessionDetail {
    /// The session.
    #[serde(flatten)]
    pub session: SessionSummary,
    /// Oldest first: the newest `limit` messages (before `before`, if given).
    pub messages: Vec<Message>,
    /// Pass as `before` for the older messages; `null` when these are the oldest.
    pub next_before: Option<String>,
}

/// One session and its messages in order.
pub async fn read_session(
    db: &PgPool,
    viewer: Viewer,
    session_id: Uuid,
    limit: Option<i64>,
    before: Option<&str>,
) -> Result<SessionDetail, AppError> {
    let limit = MESSAGES_PAGE.limit(limit)?;
    let before = before.map(|c| cursor::decode(c, "before")).transpose()?;
    let session = history::find_session(db, viewer.tenant_id, session_id, viewer.owner_filter())
        .await?
        .ok_or_else(not_found)?;
    let mut messages =
        history::messages_before(db, viewer.tenant_id, session_id, before, limit + 1).await?;
    let more = truncate_page(&mut messages, limit);
    let next_before = messages
        .last()
        .filter(|_| more)
        .map(|m| cursor::encode((m.created_at, m.id)));
    messages.reverse();
    Ok(SessionDetail {
        session,
        messages,
        next_before,
    })
}

/// A title as a client may set it: the one title rule (`common::history::title`), trimmed.
pub fn valid_title(title: &str) -> Result<&str, AppError> {
    history::title::check(title).map_err(AppError::BadRequest)
}

/// Renames a session; returns it as lists show it.
pub async fn rename_session(
    db: &PgPool,
    viewer: Viewer,
    session_id: Uuid,
    title: &str,
) -> Result<SessionSummary, AppError> {
    let title = valid_title(title)?;
    let only_user = viewer.owner_filter();
    if !history::set_title(db, viewer.tenant_id, session_id, only_user, title).await? {
        return Err(not_found());
    }
    history::find_session(db, viewer.tenant_id, session_id, only_user)
        .await?
        .ok_or_else(not_found)
}

/// What `DELETE` removed.
#[derive(Debug, Serialize)]
pub struct Deleted {
    /// The session.
    pub session_id: Uuid,
    /// Always true.
    pub deleted: bool,
}

/// Deletes a session, its messages, and its Redis state (response stream, owner, running task,
/// resume mark), so nothing of it stays readable. A running task is cancelled first.
pub async fn delete_session(
    state: &AppState,
    viewer: Viewer,
    session_id: Uuid,
) -> Result<Deleted, AppError> {
    let db = state.db();
    let only_user = viewer.owner_filter();
    // Visibility first: another tenant's Redis keys must never be touched.
    history::find_session(db, viewer.tenant_id, session_id, only_user)
        .await?
        .ok_or_else(not_found)?;
    if let Some(task) = state.running_task(session_id).await? {
        state.cancel_task(task).await?;
    }
    // Redis before PostgreSQL: if Redis fails the client gets 503 and can retry the delete, which
    // would answer 404 (and leave the keys) had the rows gone first. One DEL per key, so the keys
    // need not share a Redis Cluster slot.
    let names = state.bus().names();
    let keys = [
        names.response_stream(session_id),
        names.session_owner(session_id),
        names.session_running_task(session_id),
        names.session_attached(session_id),
    ];
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.del(key).ignore();
    }
    let mut conn = state.bus().conn();
    let _: () = pipe.query_async(&mut conn).await?;
    if !history::delete_session(db, viewer.tenant_id, session_id, only_user).await? {
        return Err(not_found());
    }
    // A late event of the cancelled task cannot recreate the stream: events use NOMKSTREAM.
    tracing::info!(%session_id, tenant_id = %viewer.tenant_id, "session deleted");
    Ok(Deleted {
        session_id,
        deleted: true,
    })
}

/// Search results.
#[derive(Debug, Serialize)]
pub struct SearchResults {
    /// The query as searched.
    pub query: String,
    /// Best first.
    pub results: Vec<SearchHit>,
}

/// Markers `ts_headline` puts around matches: private-use characters that do not occur in text, so
/// the snippet can be HTML-escaped before they become `<mark>` tags.
const MARK_START: char = '\u{E000}';
const MARK_STOP: char = '\u{E001}';
const HEADLINE_OPTIONS: &str = "StartSel=\u{E000}, StopSel=\u{E001}, MaxWords=24, MinWords=8, \
     MaxFragments=2, FragmentDelimiter=\" … \"";

/// Full-text search in the viewer's messages (the tenant's, for an admin with `all`).
pub async fn search(
    db: &PgPool,
    viewer: Viewer,
    all: bool,
    query: &str,
    limit: Option<i64>,
) -> Result<SearchResults, AppError> {
    let query = query.trim();
    if query.is_empty() || query.chars().count() > MAX_QUERY_CHARS {
        return Err(AppError::BadRequest(format!(
            "q must be 1 to {MAX_QUERY_CHARS} characters"
        )));
    }
    let only_user = viewer.list_filter(all)?;
    let limit = SEARCH_PAGE.limit(limit)?;
    let mut results = history::search_messages(
        db,
        viewer.tenant_id,
        only_user,
        query,
        HEADLINE_OPTIONS,
        limit,
    )
    .await?;
    for hit in &mut results {
        hit.snippet = html_snippet(&hit.snippet);
    }
    Ok(SearchResults {
        query: query.to_owned(),
        results,
    })
}

/// The headline as HTML: the text escaped, matches in `<mark>…</mark>`.
fn html_snippet(headline: &str) -> String {
    let mut out = String::with_capacity(headline.len() + 32);
    for c in headline.chars() {
        match c {
            MARK_START => out.push_str("<mark>"),
            MARK_STOP => out.push_str("</mark>"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn snippets_are_escaped_with_marked_matches() {
        let raw = format!("a <script> & {MARK_START}word{MARK_STOP} \"x\"");
        assert_eq!(
            html_snippet(&raw),
            "a &lt;script&gt; &amp; <mark>word</mark> &quot;x&quot;"
        );
    }

    #[test]
    fn limits_and_titles_are_checked() {
        assert_eq!(SESSIONS_PAGE.limit(None).unwrap(), 20);
        // The one page rule (common::http::page): an oversized limit is refused, not clamped.
        assert!(SESSIONS_PAGE.limit(Some(1000)).is_err());
        assert!(SESSIONS_PAGE.limit(Some(0)).is_err());
        assert_eq!(valid_title("  Trip  ").unwrap(), "Trip");
        assert!(valid_title(" ").is_err());
        assert!(valid_title(&"é".repeat(201)).is_err());
        assert!(valid_title(&"é".repeat(200)).is_ok());
        assert!(valid_title("a\nb").is_err());
    }
}
