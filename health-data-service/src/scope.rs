//! Whose data a request or an action reaches: one tenant and one user, always both.

use common::auth::Claims;
use uuid::Uuid;

/// The owner of the rows a query may touch. Every query filters by both ids, so another user's
/// or another tenant's rows are never read, and asking for one by id is "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The user.
    pub user_id: Uuid,
}

impl Owner {
    /// An owner from explicit ids (actions, the CLI).
    pub fn new(tenant_id: Uuid, user_id: Uuid) -> Self {
        Self { tenant_id, user_id }
    }

    /// The caller a token describes.
    pub fn of(claims: &Claims) -> Self {
        Self::new(claims.tenant_id, claims.sub)
    }
}
