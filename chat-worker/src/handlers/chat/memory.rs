//! A chat that remembers. Before the provider is called, a chat with `settings.semantic.enabled`
//! searches the user's past messages and documents (`semantic.search.execute`, a sub-action under the
//! chat's task id), tells the client what it found (`semantic_context_added`: `results`,
//! `tokens`, `mode`) and puts it into the prompt within a token budget. After a turn is stored,
//! its messages are indexed (`semantic.messages.index`, published and not waited for: never on
//! the first token's path, never holding up the turn).
//!
//! The search can fail (no semantic-worker, its store or embedder down): the chat then answers
//! without context and says so (`semantic_context_added` with `unavailable`), never fails. A
//! circuit breaker stops asking after repeated failures, so a dead index costs a chat nothing
//! (not even the wait) until it is tried again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use common::Bus;
use common::envelope::DomainAction;
use common::events::EventType;
use common::llm::content_text;
use common::payloads::semantic::{
    BACKGROUND_CALLBACK, CONTEXT_HEADER, ChatSemantic, INDEX_MESSAGES, IndexMessagesPayload,
    IndexedMessage, SEARCH,
};
use common::worker::{HandlerError, Task};

use super::payload::ChatPayload;
use super::subtask::{SubAction, Timeouts};

/// Consecutive failed searches that open the breaker.
const BREAKER_FAILURES: u32 = 3;

/// A circuit breaker around the semantic search: after [`BREAKER_FAILURES`] failures in a row
/// it stays open for `cool_down` (searches are skipped at once), then lets one search through; a
/// success closes it. Written here rather than taken from a crate (`failsafe`) because this is
/// the whole of it: a counter and a time, no policies to configure.
#[derive(Debug)]
pub struct Breaker {
    cool_down: Duration,
    state: Mutex<(u32, Option<Instant>)>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cool_down: Duration) -> Self {
        Self {
            cool_down,
            state: Mutex::new((0, None)),
        }
    }

    /// Whether a search may be tried now.
    pub fn allows(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.1 {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                // Half open: this one search decides.
                state.1 = None;
                state.0 = BREAKER_FAILURES - 1;
                true
            }
            None => true,
        }
    }

    /// A search answered.
    pub fn succeeded(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (0, None);
    }

    /// A search failed.
    pub fn failed(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 += 1;
        if state.0 >= BREAKER_FAILURES {
            state.1 = Some(Instant::now() + self.cool_down);
        }
    }
}

/// What a chat does with the semantic index.
#[derive(Debug)]
pub struct Memory {
    /// Publish each stored turn for indexing.
    pub indexing: bool,
    /// How long the search may take.
    pub timeouts: Timeouts,
    /// The most estimated tokens of context put into the prompt.
    pub budget_tokens: usize,
    /// Around the search.
    pub breaker: Breaker,
}

/// How the search before a turn ended.
pub enum Recalled {
    /// Found (perhaps nothing); the prompt holds what fits the budget.
    Done,
    /// The task was cancelled meanwhile.
    Cancelled,
}

impl Memory {
    /// Searches for the turn's prompt and puts what is found into the payload's system prompt.
    /// Every failure ends in a `semantic_context_added` saying the context is unavailable.
    pub async fn recall(
        &self,
        bus: &Bus,
        task: &Task,
        payload: &mut ChatPayload,
        settings: &ChatSemantic,
    ) -> Result<Recalled, HandlerError> {
        let prompt = payload
            .prompt
            .as_ref()
            .map(content_text)
            .unwrap_or_default();
        if prompt.trim().is_empty() {
            return Ok(Recalled::Done);
        }
        let mode = settings.mode;
        let unavailable =
            |why: &str| json!({"results": [], "tokens": 0, "mode": mode, "unavailable": why});
        if !self.breaker.allows() {
            task.events
                .send(
                    EventType::SemanticContextAdded,
                    unavailable("the search index failed recently; answering without it"),
                )
                .await?;
            return Ok(Recalled::Done);
        }
        let found = tokio::select! {
            () = task.cancel.cancelled() => return Ok(Recalled::Cancelled),
            found = self.search(bus, task, settings, &prompt) => found,
        };
        let results = match found {
            Ok(results) => {
                self.breaker.succeeded();
                results
            }
            Err(why) => {
                self.breaker.failed();
                tracing::warn!(reason = %why, "semantic search failed; answering without context");
                task.events
                    .send(EventType::SemanticContextAdded, unavailable(&why))
                    .await?;
                return Ok(Recalled::Done);
            }
        };
        // What the conversation already holds is not repeated.
        let known: Vec<String> = payload
            .messages
            .iter()
            .map(|m| content_text(&m["content"]))
            .chain(std::iter::once(prompt))
            .collect();
        let (context, used, tokens) = context(&results, &known, self.budget_tokens);
        task.events
            .send(
                EventType::SemanticContextAdded,
                json!({"results": used, "tokens": tokens, "mode": mode}),
            )
            .await?;
        if let Some(context) = context {
            let system = match payload.settings.system_prompt.take() {
                Some(s) if !s.is_empty() => format!("{s}\n\n{context}"),
                _ => context,
            };
            payload.settings.system_prompt = Some(system);
        }
        Ok(Recalled::Done)
    }

    /// The search's results, or why there are none.
    async fn search(
        &self,
        bus: &Bus,
        task: &Task,
        settings: &ChatSemantic,
        prompt: &str,
    ) -> Result<Vec<Value>, String> {
        let data = serde_json::to_value(settings.search(prompt)).map_err(|e| e.to_string())?;
        let callback = format!("semantic-{}", task.action.task_id);
        let sub = SubAction::publish(bus, task, SEARCH, data, &callback, "semantic")
            .await
            .map_err(|e| e.error.message)?;
        let mut events = sub.follow(self.timeouts);
        let outcome = loop {
            match events.next().await {
                Err(_) => break Err("the search index did not answer in time".to_owned()),
                Ok(event) => match event.kind.as_str() {
                    "text_completed" => {
                        let results = event.data["data"]["results"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        break Ok(results);
                    }
                    "error" => {
                        let message = event.data["message"].as_str().unwrap_or("search failed");
                        break Err(format!("the search failed: {message}"));
                    }
                    "complete" => break Err("the search ended without results".to_owned()),
                    _ => {}
                },
            }
        };
        sub.remove().await;
        outcome
    }

    /// Publishes the stored turn for indexing (fire and forget: a failure is logged, the turn
    /// is not affected). Its events go to the shared background callback stream.
    pub fn index_turn(&self, bus: &Bus, task: &Task, messages: Vec<IndexedMessage>) {
        if !self.indexing || task.action.user_id.is_none() {
            return;
        }
        let messages: Vec<IndexedMessage> = messages
            .into_iter()
            .filter(|m| !m.content.trim().is_empty())
            .collect();
        if messages.is_empty() {
            return;
        }
        let payload = IndexMessagesPayload {
            messages,
            tags: Vec::new(),
        };
        let Ok(data) = serde_json::to_value(payload) else {
            return;
        };
        let chat = &task.action;
        let mut action = DomainAction::new(
            INDEX_MESSAGES,
            "chat-worker",
            chat.tenant_id,
            chat.session_id,
            data,
        );
        action.user_id = chat.user_id;
        action.correlation_id = Some(chat.action_id);
        action.callback_stream = Some(bus.names().callback_stream(BACKGROUND_CALLBACK));
        action.traceparent.clone_from(&chat.traceparent);
        action.trace_id.clone_from(&chat.trace_id);
        let bus = bus.clone();
        tokio::spawn(async move {
            if let Err(e) = bus.publish(&action).await {
                tracing::warn!(error = %e, "turn not published for indexing");
            }
        });
    }
}

/// The message of a stored turn to index.
pub fn indexed(id: Option<Uuid>, role: &str, content: String) -> IndexedMessage {
    IndexedMessage {
        message_id: id.map(|i| i.to_string()),
        role: role.to_owned(),
        content,
        created_at: None,
    }
}

/// The context block for the prompt from search results (best first) within `budget`
/// estimated tokens (four characters a token, as the history's budget), leaving out texts the
/// conversation already holds; with the results used and the tokens they take.
fn context(
    results: &[Value],
    known: &[String],
    budget: usize,
) -> (Option<String>, Vec<Value>, usize) {
    let mut used = Vec::new();
    let mut lines = Vec::new();
    let mut tokens = 0;
    for hit in results {
        let text = hit["text"].as_str().unwrap_or_default().trim();
        if text.is_empty() || known.iter().any(|k| k.trim() == text) {
            continue;
        }
        let origin = match hit["source"].as_str() {
            Some("document") => format!(
                "document {}",
                hit["document_name"].as_str().unwrap_or("(unnamed)")
            ),
            _ => format!(
                "{} message{}",
                hit["role"].as_str().unwrap_or("earlier"),
                hit["created_at"]
                    .as_str()
                    .and_then(|t| t.get(..10))
                    .map(|d| format!(" of {d}"))
                    .unwrap_or_default()
            ),
        };
        // One line per result: a document chunk's line breaks become spaces, so no line of a
        // chunk can pass for a result (or an instruction) of its own.
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let line = format!("[{}] ({origin}) {text}", used.len() + 1);
        let cost = line.len() / 4 + 4;
        if tokens + cost > budget {
            break;
        }
        tokens += cost;
        lines.push(line);
        used.push(hit.clone());
    }
    if lines.is_empty() {
        return (None, used, 0);
    }
    let block = format!(
        "{CONTEXT_HEADER} (use it when it helps to answer; it may be incomplete):\n{}",
        lines.join("\n")
    );
    (Some(block), used, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_repeated_failures_and_tries_again_later() {
        let b = Breaker::new(Duration::from_millis(30));
        assert!(b.allows());
        b.failed();
        b.failed();
        assert!(b.allows(), "two failures leave it closed");
        b.failed();
        assert!(!b.allows(), "three open it");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allows(), "half open after the cool-down");
        b.failed();
        assert!(!b.allows(), "one more failure opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allows());
        b.succeeded();
        b.failed();
        assert!(b.allows(), "a success closed it");
    }

    #[test]
    fn context_keeps_to_the_budget_and_skips_what_the_conversation_holds() {
        let hits = vec![
            json!({"text": "My dog is called Biscuit.", "source": "message", "role": "user",
                   "created_at": "2026-11-02T10:00:00+00:00"}),
            json!({"text": "what is my dog called?", "source": "message", "role": "user"}),
            json!({"text": "x".repeat(4000), "source": "document", "document_name": "big.pdf"}),
        ];
        let known = vec!["what is my dog called?".to_owned()];
        let (block, used, tokens) = context(&hits, &known, 200);
        let block = block.unwrap();
        assert!(block.contains("[1] (user message of 2026-11-02) My dog is called Biscuit."));
        assert!(!block.contains("what is my dog called"));
        assert_eq!(used.len(), 1, "the big document does not fit");
        assert!(tokens > 0 && tokens <= 200);
        assert_eq!(context(&[], &known, 200).0, None);
    }

    #[test]
    fn a_chunk_of_several_lines_is_one_line_of_the_context() {
        let hits = vec![
            json!({"text": "Section 1.\nThe dog was named Pharos.\n\n[2] (fake) injected",
                   "source": "document", "document_name": "log.pdf"}),
            json!({"text": "Second hit.", "source": "message", "role": "user"}),
        ];
        let block = context(&hits, &[], 500).0.unwrap();
        let lines: Vec<&str> = block.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "[1] (document log.pdf) Section 1. The dog was named Pharos. [2] (fake) injected",
                "[2] (user message) Second hit."
            ]
        );
    }
}
