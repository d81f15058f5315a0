//! The `data` of the `semantic.*` actions: search a tenant's messages and documents, index a chat
//! turn, delete what a session or document left in the index, and embed texts — one set of rules
//! for the gateway, the chat-worker and the semantic-worker.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Invalid, Payload, storable};

/// The action type that searches (answer: `text_completed` with `data.results`).
pub const SEARCH: &str = "semantic.search.execute";
/// The action type that indexes the messages of a chat turn.
pub const INDEX_MESSAGES: &str = "semantic.messages.index";
/// The action type that deletes a session's or a document's points.
pub const DELETE: &str = "semantic.points.delete";
/// The action type that embeds texts (answer: `text_completed` with `data.embeddings`).
pub const EMBED: &str = "semantic.embeddings.create";
/// The action type that ingests a stored document (answer: `progress` events, then
/// `text_completed` with `data.document_id` and `data.chunks`).
pub const INGEST: &str = "semantic.documents.ingest";
/// The action type that lists the ingested documents (answer: `text_completed` with
/// `data.documents`).
pub const LIST_DOCUMENTS: &str = "semantic.documents.list";

/// The formats a document may have, by file extension: plain text, Markdown, HTML, PDF.
pub const DOCUMENT_FORMATS: [&str; 6] = ["txt", "md", "markdown", "html", "htm", "pdf"];
/// The largest document, bytes.
pub const MAX_DOCUMENT_BYTES: usize = 20 << 20;
/// The largest `metadata` of a document, bytes of JSON.
pub const MAX_DOCUMENT_METADATA_BYTES: usize = 8 << 10;

/// The callback stream (`Names::callback_stream`) of the actions nobody waits for (indexing,
/// deletes): their events go there rather than to a chat's session, bounded like any stream.
pub const BACKGROUND_CALLBACK: &str = "semantic-index";

/// How the context a chat found starts in its system prompt (then one `[n] (origin) text` line
/// per result): what the offline `dummy` provider looks for to show that it was given context.
pub const CONTEXT_HEADER: &str = "Context found in the user's earlier conversations and documents";

/// The longest query, characters.
pub const MAX_QUERY_CHARS: usize = 4000;
/// The most hits one search returns.
pub const MAX_LIMIT: u32 = 100;
/// The most texts one `semantic.embeddings.create` takes (OpenAI's limit).
pub const MAX_EMBED_INPUTS: usize = 2048;
/// The most messages one `semantic.messages.index` carries.
pub const MAX_INDEX_MESSAGES: usize = 64;
/// The most filter values of one kind (tags, sessions, ...).
pub const MAX_FILTER_VALUES: usize = 100;

/// How a search ranks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// By meaning: dense embeddings only.
    Semantic,
    /// Both, fused with Reciprocal Rank Fusion (the default).
    #[default]
    Hybrid,
    /// By the words: BM25 only.
    Keyword,
}

impl Mode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Semantic => "semantic",
            Self::Hybrid => "hybrid",
            Self::Keyword => "keyword",
        }
    }
}

/// Where an indexed text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A chat message.
    Message,
    /// A chunk of an ingested document.
    Document,
}

impl Source {
    /// The wire name (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Document => "document",
        }
    }
}

/// The `data` of `semantic.search.execute`. The tenant is the action's; the user too unless
/// `all_users` (which the gateway grants to admins only). The answer is `text_completed` whose
/// `data` holds `results` (best first: `id`, `score`, `text`, `source`, `session_id`,
/// `message_id`, `role`, `document_id`, `document_name`, `chunk_index`, `tags`, `created_at`),
/// `mode` and `took_ms`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchPayload {
    /// What to look for.
    #[schema(min_length = 1, max_length = 4000)]
    pub query: String,
    /// `semantic`, `hybrid` (default) or `keyword`.
    #[serde(default)]
    pub mode: Mode,
    /// Most results, 1 to 100 (default 10).
    #[serde(default = "ten")]
    #[schema(minimum = 1, maximum = 100, default = 10)]
    pub limit: u32,
    /// Drop results scoring below: a cosine similarity (`semantic`), a BM25 score (`keyword`) or
    /// a fused rank score (`hybrid`, at most 1/61 + 1/61 ≈ 0.033 with k = 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<f32>,
    /// Only these sources (default both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Only messages of these roles (`user`, `assistant`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Only texts with one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Only these sessions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_ids: Vec<Uuid>,
    /// Only these documents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub document_ids: Vec<Uuid>,
    /// Only texts written at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Only texts written at or before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// Search every user's texts of the tenant, not only the caller's (admins).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_users: bool,
}

fn ten() -> u32 {
    10
}

impl SearchPayload {
    /// A search for `query` with every default.
    pub fn new(query: impl Into<String>) -> Self {
        Self {
            query: query.into(),
            mode: Mode::default(),
            limit: 10,
            score_threshold: None,
            sources: Vec::new(),
            roles: Vec::new(),
            tags: Vec::new(),
            session_ids: Vec::new(),
            document_ids: Vec::new(),
            from: None,
            to: None,
            all_users: false,
        }
    }
}

const ROLES: [&str; 2] = ["user", "assistant"];

impl Payload for SearchPayload {
    fn validate(&self) -> Result<(), Invalid> {
        if self.query.trim().is_empty() {
            return Err(Invalid("query is empty".into()));
        }
        storable(&self.query, "query")?;
        if self.query.chars().count() > MAX_QUERY_CHARS {
            return Err(Invalid(format!(
                "query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(Invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        if let Some(t) = self.score_threshold
            && !t.is_finite()
        {
            return Err(Invalid("score_threshold must be a number".into()));
        }
        if let Some(role) = self.roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
            return Err(Invalid(format!(
                "roles: {role:?} is not one of {}",
                ROLES.join(", ")
            )));
        }
        check_tags(&self.tags)?;
        for (name, n) in [
            ("roles", self.roles.len()),
            ("session_ids", self.session_ids.len()),
            ("document_ids", self.document_ids.len()),
        ] {
            if n > MAX_FILTER_VALUES {
                return Err(Invalid(format!(
                    "{name} has more than {MAX_FILTER_VALUES} values"
                )));
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(Invalid("from is after to".into()));
        }
        Ok(())
    }
}

fn check_tags(tags: &[String]) -> Result<(), Invalid> {
    if tags.len() > MAX_FILTER_VALUES {
        return Err(Invalid(format!(
            "tags has more than {MAX_FILTER_VALUES} values"
        )));
    }
    for tag in tags {
        crate::text::check("tag", tag, 100).map_err(Invalid)?;
    }
    Ok(())
}

/// `settings.semantic` of a chat: search the user's past messages and documents before the
/// provider is called and put what is found into the prompt (a `semantic_context_added` event
/// says what was added).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatSemantic {
    /// Search before answering.
    #[serde(default)]
    pub enabled: bool,
    /// `semantic`, `hybrid` (default) or `keyword`.
    #[serde(default)]
    pub mode: Mode,
    /// Most results, 1 to 20 (default 5).
    #[serde(default = "five")]
    #[schema(minimum = 1, maximum = 20, default = 5)]
    pub limit: u32,
    /// Drop results scoring below (as in `semantic.search.execute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<f32>,
    /// Past messages, documents, or both (default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
}

fn five() -> u32 {
    5
}

impl ChatSemantic {
    /// Checks the ranges serde's types do not.
    pub fn check(&self) -> Result<(), Invalid> {
        if !(1..=20).contains(&self.limit) {
            return Err(Invalid(
                "settings.semantic.limit must be between 1 and 20".into(),
            ));
        }
        if let Some(t) = self.score_threshold
            && !t.is_finite()
        {
            return Err(Invalid(
                "settings.semantic.score_threshold must be a number".into(),
            ));
        }
        Ok(())
    }

    /// The search a chat turn runs for `prompt`.
    pub fn search(&self, prompt: &str) -> SearchPayload {
        let mut query: String = prompt.chars().take(MAX_QUERY_CHARS).collect();
        if query.trim().is_empty() {
            query = prompt.to_owned();
        }
        SearchPayload {
            mode: self.mode,
            limit: self.limit,
            score_threshold: self.score_threshold,
            sources: self.sources.clone(),
            ..SearchPayload::new(query)
        }
    }
}

/// One message of a chat turn to index.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexedMessage {
    /// Its id in the chat history, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// `user` or `assistant`.
    pub role: String,
    /// Its text.
    pub content: String,
    /// When it was written (default: when indexed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

/// The `data` of `semantic.messages.index`: the messages of one chat turn of the action's
/// session, tenant and user. The same text of one user is indexed once (SHA-256 of the text):
/// indexing again replaces the point, never adds a second.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexMessagesPayload {
    /// The messages, 1 to 64.
    pub messages: Vec<IndexedMessage>,
    /// Tags to search them by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Payload for IndexMessagesPayload {
    fn validate(&self) -> Result<(), Invalid> {
        if self.messages.is_empty() || self.messages.len() > MAX_INDEX_MESSAGES {
            return Err(Invalid(format!(
                "messages must hold 1 to {MAX_INDEX_MESSAGES} messages"
            )));
        }
        for m in &self.messages {
            if !ROLES.contains(&m.role.as_str()) {
                return Err(Invalid(format!(
                    "role {:?} is not one of {}",
                    m.role,
                    ROLES.join(", ")
                )));
            }
            storable(&m.content, "content")?;
            if let Some(id) = &m.message_id {
                crate::text::check("message_id", id, 100).map_err(Invalid)?;
            }
        }
        check_tags(&self.tags)
    }
}

/// The `data` of `semantic.points.delete`: everything indexed of one session or one document of
/// the action's tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletePayload {
    /// The session whose messages go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
    /// Or the document whose chunks go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<Uuid>,
}

impl Payload for DeletePayload {
    fn validate(&self) -> Result<(), Invalid> {
        match (self.session_id, self.document_id) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(Invalid("give session_id or document_id".into())),
        }
    }
}

/// The `data` of `semantic.documents.ingest`: a document the gateway stored (key `key`, in the
/// action's tenant) read, cut into overlapping chunks, embedded and indexed as `document_id`,
/// replacing what that id held before. `progress` events follow each stage (`stage`,
/// `fraction`, `message`, `chunks_processed`, `total_chunks`); the answer is `text_completed`
/// whose `data` holds `document_id`, `name`, `chunks`, `replaced` (chunks of the earlier version
/// removed) and `took_ms`. The stored file is deleted once the document is indexed or refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestPayload {
    /// The storage key of the uploaded file (`{tenant}/uploads/...`).
    #[schema(max_length = 512)]
    pub key: String,
    /// The document's id: re-ingesting an id replaces its chunks.
    pub document_id: Uuid,
    /// The document's name (the uploaded file's), shown with each hit.
    #[schema(max_length = 255)]
    pub name: String,
    /// `txt`, `md`, `markdown`, `html`, `htm` or `pdf`.
    pub format: String,
    /// Tags to search its chunks by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The client's own fields (a JSON object), kept with each chunk and returned with hits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Payload for IngestPayload {
    fn validate(&self) -> Result<(), Invalid> {
        crate::text::check("key", &self.key, 512).map_err(Invalid)?;
        crate::text::check("name", &self.name, 255).map_err(Invalid)?;
        if !DOCUMENT_FORMATS.contains(&self.format.as_str()) {
            return Err(Invalid(format!(
                "format {:?} is not one of {}",
                self.format,
                DOCUMENT_FORMATS.join(", ")
            )));
        }
        check_tags(&self.tags)?;
        if let Some(metadata) = &self.metadata {
            let size = serde_json::to_vec(metadata).map_or(usize::MAX, |v| v.len());
            if size > MAX_DOCUMENT_METADATA_BYTES {
                return Err(Invalid(format!(
                    "metadata is larger than {MAX_DOCUMENT_METADATA_BYTES} bytes"
                )));
            }
        }
        Ok(())
    }
}

/// The `data` of `semantic.documents.list`: the documents of the action's user (all the
/// tenant's with `all_users`, which the gateway grants to admins only), newest first. The answer
/// is `text_completed` whose `data.documents` holds `document_id`, `name`, `chunks`, `tags`,
/// `metadata`, `user_id` and `created_at` for each.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDocumentsPayload {
    /// Every user's documents of the tenant (admins).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_users: bool,
}

impl Payload for ListDocumentsPayload {
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

/// The `data` of `semantic.embeddings.create`. The answer is `text_completed` whose `data` holds
/// `embeddings` (one base64 string of little-endian float32 per input, in order), `model`,
/// `dimensions` and `usage` (`prompt_tokens`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedPayload {
    /// The texts, 1 to 2048, none empty.
    pub input: Vec<String>,
    /// The embedding model (default: the worker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub model: Option<String>,
    /// Fewer dimensions, where the model can give them (OpenAI's `text-embedding-3-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4096)]
    pub dimensions: Option<u32>,
}

impl Payload for EmbedPayload {
    fn validate(&self) -> Result<(), Invalid> {
        if self.input.is_empty() || self.input.len() > MAX_EMBED_INPUTS {
            return Err(Invalid(format!(
                "input must hold 1 to {MAX_EMBED_INPUTS} texts"
            )));
        }
        for (i, text) in self.input.iter().enumerate() {
            if text.is_empty() {
                return Err(Invalid(format!("input[{i}] is empty")));
            }
            storable(text, "input")?;
        }
        if let Some(model) = &self.model {
            crate::text::check("model", model, 100).map_err(Invalid)?;
        }
        if let Some(d) = self.dimensions
            && !(1..=4096).contains(&d)
        {
            return Err(Invalid("dimensions must be between 1 and 4096".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused<P: Payload>(data: serde_json::Value) -> String {
        P::parse(&data).err().map(|e| e.0).unwrap_or_default()
    }

    #[test]
    fn a_search_has_a_query_sane_limits_and_known_filters() {
        let p = SearchPayload::parse(&json!({"query": "espresso"})).unwrap();
        assert_eq!((p.mode, p.limit, p.all_users), (Mode::Hybrid, 10, false));
        let p = SearchPayload::parse(&json!({"query": "x", "mode": "keyword",
            "sources": ["document"], "roles": ["user"], "from": "2026-01-01T00:00:00Z"}))
        .unwrap();
        assert_eq!(p.mode, Mode::Keyword);
        assert!(refused::<SearchPayload>(json!({"query": "  "})).contains("empty"));
        assert!(refused::<SearchPayload>(json!({"query": "x", "limit": 0})).contains("limit"));
        assert!(refused::<SearchPayload>(json!({"query": "x", "mode": "fuzzy"})).contains("mode"));
        assert!(
            refused::<SearchPayload>(json!({"query": "x", "roles": ["system"]})).contains("roles")
        );
        assert!(refused::<SearchPayload>(json!({"query": "x", "qurey": "y"})).contains("qurey"));
        assert!(
            refused::<SearchPayload>(json!({"query": "x",
                "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}))
            .contains("after")
        );
    }

    #[test]
    fn index_delete_and_embed_payloads_hold_their_rules() {
        assert!(
            IndexMessagesPayload::parse(&json!({"messages": [
                {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}))
            .is_ok()
        );
        assert!(refused::<IndexMessagesPayload>(json!({"messages": []})).contains("messages"));
        assert!(
            refused::<IndexMessagesPayload>(
                json!({"messages": [{"role": "tool", "content": "x"}]})
            )
            .contains("role")
        );
        assert!(DeletePayload::parse(&json!({"session_id": Uuid::nil()})).is_ok());
        assert!(refused::<DeletePayload>(json!({})).contains("session_id"));
        assert!(EmbedPayload::parse(&json!({"input": ["a", "b"]})).is_ok());
        assert!(refused::<EmbedPayload>(json!({"input": []})).contains("input"));
        assert!(refused::<EmbedPayload>(json!({"input": ["a", ""]})).contains("input[1]"));
        assert!(
            refused::<EmbedPayload>(json!({"input": ["a"], "dimensions": 0}))
                .contains("dimensions")
        );
    }
}
