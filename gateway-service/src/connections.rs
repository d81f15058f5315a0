//! Open WebSockets per tenant on this replica, bounded so one tenant cannot take every socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// Counts open WebSockets per tenant; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct WsSlots {
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
    max_per_tenant: usize,
}

/// One open WebSocket; its tenant's count goes down when it is dropped.
#[derive(Debug)]
pub struct Slot {
    slots: WsSlots,
    tenant: Uuid,
}

impl WsSlots {
    /// At most `max_per_tenant` open at once per tenant (`0`: no limit).
    pub fn new(max_per_tenant: usize) -> Self {
        Self {
            open: Arc::default(),
            max_per_tenant,
        }
    }

    /// A slot for one more WebSocket of `tenant`, or `None` when it has its maximum open.
    pub fn take(&self, tenant: Uuid) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(tenant).or_default();
        if self.max_per_tenant > 0 && *count >= self.max_per_tenant {
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: self.clone(),
            tenant,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_tenant_and_freed_on_drop() {
        let slots = WsSlots::new(2);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert!(slots.take(a).is_none());
        assert!(slots.take(b).is_some(), "another tenant is not affected");
        drop(first);
        assert!(slots.take(a).is_some());
        assert!(WsSlots::new(0).take(a).is_some());
    }
}
