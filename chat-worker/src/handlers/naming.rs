//! The `chat.session.name` handler: titles a session from its first messages with the text
//! provider, stores the title, and answers with `text_completed {content: title}`.
//!
//! With the offline `dummy` provider (no provider key configured) the title is the first words of
//! the first user message instead: deterministic, and more useful than the dummy's echo.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;
use sqlx::PgPool;

use common::events::{ErrorData, TextCompleted};
use common::history::{self, Message};
use common::llm::{Candidate, ChatRequest, Delta, ProviderError, Providers, Usage};
use common::payloads::chat::NamePayload;
use common::worker::{Action, HandlerError, Task};

use crate::config::Settings;
use crate::handlers::chat::send_error;

/// Messages of the session's start shown to the model.
const CONTEXT_MESSAGES: i64 = 6;
/// Characters of each message shown to the model.
const EXCERPT_CHARS: usize = 1000;
/// Longest title kept, in characters and in words.
const MAX_TITLE_CHARS: usize = 60;
const MAX_TITLE_WORDS: usize = 8;
/// Words of the first user message that make the title when no model writes it.
const DERIVED_TITLE_WORDS: usize = 6;
/// Output tokens asked for; room for a reasoning model's preamble, not for an essay.
const TITLE_MAX_TOKENS: u32 = 48;
/// The title when the session's messages carry no text at all (e.g. only images).
const UNTITLED: &str = "Untitled chat";

const INSTRUCTIONS: &str = "You write titles for chat conversations. Reply with a title of at \
most six words that says what the conversation is about, in the conversation's language. Reply \
with the title only: no quotes, no trailing punctuation, no preamble.";

/// Titles sessions.
pub struct NamingHandler {
    providers: Arc<Providers>,
    pool: PgPool,
    idle_timeout: Duration,
}

impl NamingHandler {
    /// A handler over the given providers, shared with the other handlers.
    pub fn new(providers: Arc<Providers>, pool: PgPool, settings: &Settings) -> Self {
        Self {
            providers,
            pool,
            idle_timeout: Duration::from_secs(settings.provider_idle_timeout_secs.max(1)),
        }
    }
}

#[async_trait]
impl Action<NamePayload> for NamingHandler {
    async fn run(&self, task: Task, payload: NamePayload) -> Result<(), HandlerError> {
        let (events, action) = (&task.events, &task.action);
        let messages = history::first_messages(
            &self.pool,
            action.tenant_id,
            action.session_id,
            CONTEXT_MESSAGES,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "session messages not loaded");
            HandlerError::retryable(
                "persistence",
                "history_unavailable",
                "the history is unavailable",
            )
        })?;
        if messages.is_empty() {
            let error = ErrorData::new("validation", "not_found", "session not found", false);
            return send_error(events, error).await;
        }
        let plan = match self.providers.plan(payload.model.as_deref()) {
            Ok(plan) => plan,
            Err(e) => {
                let error = ErrorData::new("validation", e.code(), e.to_string(), false);
                return send_error(events, error).await;
            }
        };
        let mut written = None;
        let mut last_error = None;
        for candidate in &plan.candidates {
            events
                .model_in_use(&candidate.provider_name, &candidate.model, plan.note)
                .await?;
            if candidate.provider.kind() == "dummy" {
                written = Some((derived_title(&messages), None));
                break;
            }
            match self.ask(candidate, &messages, &task).await {
                Asked::Text(text, usage) => {
                    let title = clean_title(&text).unwrap_or_else(|| derived_title(&messages));
                    written = Some((title, usage));
                    break;
                }
                Asked::Cancelled => {
                    events.cancelled().await?;
                    return Ok(());
                }
                Asked::Failed(e) => {
                    tracing::warn!(provider = %candidate.provider_name, error = %e, "titling failed");
                    last_error = Some(e);
                }
            }
        }
        let Some((title, usage)) = written else {
            let e = last_error.unwrap_or(ProviderError::Connection("no provider answered".into()));
            let error = ErrorData::new("provider", e.code(), e.to_string(), e.retryable());
            return send_error(events, error).await;
        };
        self.store(&task, &title, usage).await
    }
}

/// How asking one provider ended.
enum Asked {
    Text(String, Option<Usage>),
    Cancelled,
    Failed(ProviderError),
}

impl NamingHandler {
    /// Collects one provider's streamed answer (no `text_chunk` events: the title is sent whole).
    async fn ask(&self, candidate: &Candidate, messages: &[Message], task: &Task) -> Asked {
        let spec = &candidate.spec;
        let request = ChatRequest {
            model: candidate.upstream.clone(),
            messages: vec![
                json!({"role": "system", "content": INSTRUCTIONS}),
                json!({"role": "user", "content": transcript(messages)}),
            ],
            temperature: spec.temperature.map(|[lo, hi]| 0.2_f64.clamp(lo, hi)),
            max_tokens: Some(
                spec.max_output_tokens
                    .map_or(TITLE_MAX_TOKENS, |cap| cap.min(TITLE_MAX_TOKENS)),
            ),
            ..ChatRequest::default()
        };
        let started = tokio::select! {
            () = task.cancel.cancelled() => return Asked::Cancelled,
            s = candidate.provider.stream(request) => s,
        };
        let mut stream = match started {
            Ok(s) => s,
            Err(e) => return Asked::Failed(e),
        };
        let (mut text, mut usage) = (String::new(), None::<Usage>);
        loop {
            let next = tokio::select! {
                // Dropping the stream closes the upstream request.
                () = task.cancel.cancelled() => return Asked::Cancelled,
                n = tokio::time::timeout(self.idle_timeout, stream.next()) => n,
            };
            match next {
                Err(_) => {
                    let e = ProviderError::Connection("the provider stopped sending".into());
                    return Asked::Failed(e);
                }
                Ok(None) => return Asked::Text(text, usage),
                Ok(Some(Err(e))) => return Asked::Failed(e),
                Ok(Some(Ok(Delta::Text(t)))) => text.push_str(&t),
                Ok(Some(Ok(Delta::Usage(u)))) => {
                    usage = Some(usage.unwrap_or_default().merge(u));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Stores the title, then `text_completed` and `db_operation_executed`.
    async fn store(
        &self,
        task: &Task,
        title: &str,
        usage: Option<Usage>,
    ) -> Result<(), HandlerError> {
        let (events, action) = (&task.events, &task.action);
        let stored =
            history::set_title(&self.pool, action.tenant_id, action.session_id, None, title).await;
        match stored {
            Ok(true) => {}
            Ok(false) => {
                // Deleted while the title was being written.
                let error = ErrorData::new("validation", "not_found", "session not found", false);
                return send_error(events, error).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "session title not stored");
                let error = ErrorData::new(
                    "persistence",
                    "persistence_failed",
                    "the title could not be saved",
                    true,
                );
                return send_error(events, error).await;
            }
        }
        events
            .text_completed(&TextCompleted::new(title, json!(usage), "stop"))
            .await?;
        events
            .db_operation("session_titled", json!({"session_id": action.session_id}))
            .await?;
        Ok(())
    }
}

/// The conversation's start as one prompt: `User: ...` / `Assistant: ...`, each cut short.
fn transcript(messages: &[Message]) -> String {
    let mut out = String::from("The conversation so far:\n");
    for m in messages.iter().filter(|m| !m.content.trim().is_empty()) {
        let who = if m.role == "assistant" {
            "Assistant"
        } else {
            "User"
        };
        let excerpt: String = m.content.chars().take(EXCERPT_CHARS).collect();
        out.push_str(&format!("\n{who}: {}\n", excerpt.trim()));
    }
    out.push_str("\nTitle:");
    out
}

/// The first words of the first user message (any message when no user message has text).
fn derived_title(messages: &[Message]) -> String {
    let text = |m: &&Message| !m.content.trim().is_empty();
    let first = messages
        .iter()
        .filter(|m| m.role == "user")
        .find(text)
        .or_else(|| messages.iter().find(text));
    let words: Vec<&str> = first
        .map(|m| {
            m.content
                .split_whitespace()
                .take(DERIVED_TITLE_WORDS)
                .collect()
        })
        .unwrap_or_default();
    clean_title(&words.join(" ")).unwrap_or_else(|| UNTITLED.to_owned())
}

/// Quotes and markup a model likes to wrap titles in.
const WRAPPERS: &[char] = &['"', '\'', '`', '“', '”', '‘', '’', '«', '»', '*', '_', '#'];
/// Trailing punctuation a title does without (`?` stays: a question is a fine title).
const TRAILING: &[char] = &['.', ',', ';', ':', '!', '-', '–', '—'];

/// A model's answer as a title: its first non-empty line without a `Title:` label, quotes or
/// trailing punctuation, whitespace collapsed, at most 8 words and 60 characters (cut at a word
/// boundary). `None` when nothing is left.
pub fn clean_title(raw: &str) -> Option<String> {
    let line = raw.lines().map(str::trim).find(|l| !l.is_empty())?;
    // The title rule a client's rename meets: no controls, no bidirectional overrides.
    let line = history::title::sanitize(line);
    let line = line.as_str();
    let line = match line.get(..6) {
        Some(label) if label.eq_ignore_ascii_case("title:") => &line[6..],
        _ => line,
    };
    let strip = |s: &str| -> String {
        s.trim_matches(|c: char| c.is_whitespace() || WRAPPERS.contains(&c))
            .trim_end_matches(|c: char| c.is_whitespace() || TRAILING.contains(&c))
            .trim_matches(|c: char| c.is_whitespace() || WRAPPERS.contains(&c))
            .to_owned()
    };
    let words: Vec<&str> = line.split_whitespace().take(MAX_TITLE_WORDS).collect();
    let mut title = strip(&words.join(" "));
    if title.chars().count() > MAX_TITLE_CHARS {
        let cut: String = title.chars().take(MAX_TITLE_CHARS + 1).collect();
        title = match cut.rfind(char::is_whitespace) {
            Some(i) if i > 0 => cut[..i].to_owned(),
            _ => cut.chars().take(MAX_TITLE_CHARS).collect(),
        };
        title = strip(&title);
    }
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: &str, content: &str) -> Message {
        Message {
            id: uuid::Uuid::now_v7(),
            session_id: uuid::Uuid::nil(),
            task_id: uuid::Uuid::now_v7(),
            role: role.into(),
            content: content.into(),
            parts: None,
            model: None,
            provider: None,
            usage: None,
            latency_ms: None,
            status: "complete".into(),
            created_at: serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap(),
            metadata: json!({}),
        }
    }

    #[test]
    fn model_answers_become_short_clean_titles() {
        assert_eq!(
            clean_title("\"Alpine Hiking Weekend.\"\n").as_deref(),
            Some("Alpine Hiking Weekend")
        );
        assert_eq!(
            clean_title("\n  Title: **Rust lifetimes explained**").as_deref(),
            Some("Rust lifetimes explained")
        );
        assert_eq!(
            clean_title("How do tides work?").as_deref(),
            Some("How do tides work?")
        );
        assert_eq!(
            clean_title("one two three four five six seven eight nine ten").as_deref(),
            Some("one two three four five six seven eight")
        );
        let long =
            clean_title("Supercalifragilistic expialidocious antidisestablishmentarianism words");
        assert_eq!(long.as_deref(), Some("Supercalifragilistic expialidocious"));
        assert!(long.is_some_and(|t| t.chars().count() <= MAX_TITLE_CHARS));
        assert_eq!(clean_title(&"x".repeat(100)).map(|t| t.len()), Some(60));
        assert_eq!(clean_title(" \"\" \n"), None);
        // Escapes, bells and bidi overrides never reach a stored title.
        let title = clean_title("Plan\u{1b}[2J a \u{7}trip \u{202E}gnp.exe").unwrap();
        assert!(history::title::check(&title).is_ok(), "{title:?}");
        assert_eq!(title, "Plan [2J a trip gnp.exe");
    }

    #[test]
    fn derived_titles_take_the_first_user_words() {
        let messages = [
            message("system", "be brief"),
            message("user", "  Plan a weekend hiking trip in the Alps, please."),
            message("assistant", "Sure"),
        ];
        assert_eq!(derived_title(&messages), "Plan a weekend hiking trip in");
        assert_eq!(derived_title(&[message("user", "hi!")]), "hi");
        assert_eq!(derived_title(&[message("user", " ")]), UNTITLED);
    }

    #[test]
    fn transcript_labels_and_cuts_messages() {
        let long = "word ".repeat(1000);
        let t = transcript(&[message("user", "hello"), message("assistant", &long)]);
        assert!(t.contains("\nUser: hello\n"));
        assert!(t.contains("\nAssistant: word"));
        assert!(t.len() < 1200);
        assert!(t.ends_with("Title:"));
    }
}
