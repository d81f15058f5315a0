//! A worker's table of actions: each action type with its typed payload and the code that serves
//! it. The kit decodes and validates the payload once, before the action runs: an invalid one is
//! rejected (an `error` event of stage `validation`, code `invalid_payload`, then the completion;
//! nothing is retried or dead-lettered).
//!
//! ```ignore
//! let actions = Actions::new()
//!     .action(chat::GENERATE, ChatHandler::new(..))
//!     .action(chat::NAME, NamingHandler::new(..));
//! Worker::new(bus, settings, "chat", Arc::new(actions)).run(shutdown).await
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::{Handler, HandlerError, Task};
use crate::envelope::is_valid_action_type;
use crate::payloads::Payload;

/// The code behind one action type, given the task and its payload, decoded and valid.
#[async_trait]
pub trait Action<P>: Send + Sync + 'static {
    /// Does the work, streaming events through `task.events`; the runtime completes the task.
    async fn run(&self, task: Task, payload: P) -> Result<(), HandlerError>;
}

/// An async function or closure `(Task, P) -> Result<(), HandlerError>` is an action.
#[async_trait]
impl<P, F, Fut> Action<P> for F
where
    P: Send + 'static,
    F: Fn(Task, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    async fn run(&self, task: Task, payload: P) -> Result<(), HandlerError> {
        self(task, payload).await
    }
}

type Route = Box<dyn Fn(Task) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;

/// The action types a worker serves, each with its payload type and action: the [`Handler`] a
/// [`super::Worker`] runs. Types it does not list are refused by the runtime (`unknown_action_type`,
/// dead-lettered for an operator).
#[derive(Default)]
pub struct Actions {
    routes: HashMap<String, Route>,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<&String> = self.routes.keys().collect();
        types.sort();
        f.debug_struct("Actions").field("types", &types).finish()
    }
}

impl Actions {
    /// A table with no action yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `action_type` with `action`, whose `data` decodes to `P` and passes
    /// [`Payload::validate`].
    ///
    /// # Panics
    /// When `action_type` is not a valid action type or is declared twice: a mistake in the
    /// worker's code, found when it starts.
    pub fn action<P: Payload, A: Action<P>>(mut self, action_type: &str, action: A) -> Self {
        assert!(
            is_valid_action_type(action_type),
            "{action_type:?} is not a valid action type"
        );
        let action = Arc::new(action);
        let route: Route = Box::new(move |task: Task| {
            let action = Arc::clone(&action);
            Box::pin(async move {
                let payload = P::parse(&task.action.data)
                    .map_err(|e| HandlerError::rejected("invalid_payload", e.0))?;
                action.run(task, payload).await
            })
        });
        let previous = self.routes.insert(action_type.to_owned(), route);
        assert!(previous.is_none(), "{action_type} is declared twice");
        self
    }

    /// The action types served, sorted.
    pub fn action_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        types.sort_unstable();
        types
    }
}

#[async_trait]
impl Handler for Actions {
    fn handles(&self, action_type: &str) -> bool {
        self.routes.contains_key(action_type)
    }

    async fn handle(&self, task: Task) -> Result<(), HandlerError> {
        match self.routes.get(&task.action.action_type) {
            Some(route) => route(task).await,
            // The runtime asks `handles` first.
            None => Err(HandlerError::rejected(
                "unknown_action_type",
                format!("no action {}", task.action.action_type),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payloads::chat::NamePayload;

    async fn nothing(_task: Task, _payload: NamePayload) -> Result<(), HandlerError> {
        Ok(())
    }

    #[test]
    fn the_table_lists_what_it_serves() {
        let actions = Actions::new()
            .action("chat.session.name", nothing)
            .action("chat.other.thing", nothing);
        assert_eq!(
            actions.action_types(),
            ["chat.other.thing", "chat.session.name"]
        );
        assert!(actions.handles("chat.session.name"));
        assert!(!actions.handles("chat.session"));
    }

    #[test]
    #[should_panic(expected = "declared twice")]
    fn an_action_type_is_declared_once() {
        let _ = Actions::new()
            .action("chat.session.name", nothing)
            .action("chat.session.name", nothing);
    }

    #[test]
    #[should_panic(expected = "not a valid action type")]
    fn an_invalid_action_type_is_refused_at_start() {
        let _ = Actions::new().action("Chat.Name", nothing);
    }
}
