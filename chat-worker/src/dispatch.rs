//! Routes each action type of the chat service to the handler that serves it.

use std::sync::Arc;

use async_trait::async_trait;
use common::worker::{Handler, HandlerError, Task};

/// One worker, several handlers: each action goes to the first handler that knows its type.
pub struct Dispatcher {
    handlers: Vec<Arc<dyn Handler>>,
}

impl Dispatcher {
    /// A dispatcher over `handlers`, asked in order.
    pub fn new(handlers: Vec<Arc<dyn Handler>>) -> Self {
        Self { handlers }
    }

    fn find(&self, action_type: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.iter().find(|h| h.handles(action_type))
    }
}

#[async_trait]
impl Handler for Dispatcher {
    fn handles(&self, action_type: &str) -> bool {
        self.find(action_type).is_some()
    }

    async fn handle(&self, task: Task) -> Result<(), HandlerError> {
        match self.find(&task.action.action_type) {
            Some(handler) => handler.handle(task).await,
            // The runtime asks `handles` first; this is only reached if a handler changed its mind.
            None => Err(HandlerError::fatal(
                "validation",
                "unknown_action_type",
                format!("chat does not handle {}", task.action.action_type),
            )),
        }
    }
}
