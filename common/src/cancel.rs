//! Cancel signals on the worker side: a registry of running tasks and the Pub/Sub listener that
//! cancels them the moment a cancel flag is announced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::bus::Bus;

/// The tasks running in this process, each with its cancellation token.
#[derive(Clone, Default, Debug)]
pub struct CancelRegistry {
    tasks: Arc<Mutex<HashMap<Uuid, CancellationToken>>>,
}

/// Removes a task from the registry when dropped.
#[derive(Debug)]
pub struct Registration {
    registry: CancelRegistry,
    task_id: Uuid,
    /// Fires when the task is cancelled.
    pub token: CancellationToken,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.task_id);
    }
}

impl CancelRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CancellationToken>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a running task; the token is a child of `parent`.
    pub fn register(&self, task_id: Uuid, parent: &CancellationToken) -> Registration {
        let token = parent.child_token();
        self.lock().insert(task_id, token.clone());
        Registration {
            registry: self.clone(),
            task_id,
            token,
        }
    }

    /// Cancels a task if it runs here.
    pub fn cancel(&self, task_id: Uuid) -> bool {
        match self.lock().get(&task_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    fn ids(&self) -> Vec<Uuid> {
        self.lock().keys().copied().collect()
    }
}

/// Listens for cancel announcements until `shutdown`. After every (re)subscription it checks the
/// flags of the tasks running here, so an announcement missed while disconnected still counts.
pub async fn listen(bus: Bus, registry: CancelRegistry, shutdown: CancellationToken) {
    let channel = bus.names().cancel_channel();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while !shutdown.is_cancelled() {
        let subscribed = async {
            let mut pubsub = bus.topology().pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        let pubsub = match subscribed {
            Ok(p) => p,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, "cancel listener cannot subscribe; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        backoff.reset();
        for task_id in registry.ids() {
            if bus.is_cancel_requested(task_id).await.unwrap_or(false) {
                registry.cancel(task_id);
            }
        }
        let mut messages = pubsub.into_on_message();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                msg = messages.next() => match msg {
                    Some(msg) => {
                        let text: String = msg.get_payload().unwrap_or_default();
                        if let Ok(task_id) = text.parse::<Uuid>()
                            && registry.cancel(task_id)
                        {
                            tracing::info!(%task_id, "cancel received");
                        }
                    }
                    None => {
                        tracing::warn!("cancel listener lost its connection; resubscribing");
                        break;
                    }
                }
            }
        }
    }
}
