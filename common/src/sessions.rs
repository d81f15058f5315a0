//! Who owns a session: one rule for every path that reads or writes a session's response stream or
//! history, in the gateway (chat, resume, replay, cancel, naming) and in every worker (before its
//! first event), whoever published the action.
//!
//! A session belongs to one tenant and one user (no user for sessions that internal services start
//! without one). The owner is kept in Redis (`{ns}:session:{id}:owner` = `{tenant}:{user}`, with a
//! TTL) and, for sessions with stored history, in `chat_sessions`. The first caller of a new
//! session claims it (`SET NX`); a session whose Redis key expired is matched against its stored
//! row before anyone claims it again, so Redis and the database never name two owners.

use crate::bus::Conn;
use sqlx::PgPool;
use uuid::Uuid;

use crate::names::Names;

/// The owner of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The user, when the session was started on someone's behalf.
    pub user_id: Option<Uuid>,
}

impl Owner {
    /// An owner.
    pub fn new(tenant_id: Uuid, user_id: Option<Uuid>) -> Self {
        Self { tenant_id, user_id }
    }

    /// The value kept in the owner key: `{tenant}:{user}`, `-` for no user.
    pub fn to_value(&self) -> String {
        match self.user_id {
            Some(user) => format!("{}:{user}", self.tenant_id),
            None => format!("{}:-", self.tenant_id),
        }
    }

    /// Reads an owner key's value; `None` for anything else (such as a bare tenant id).
    pub fn parse(value: &str) -> Option<Self> {
        let (tenant, user) = value.split_once(':')?;
        let user = match user {
            "-" => None,
            u => Some(u.parse().ok()?),
        };
        Some(Self::new(tenant.parse().ok()?, user))
    }
}

/// Why a session cannot be used by a caller.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Another tenant or user owns it. Callers answer "not found", so existence does not leak.
    #[error("session not found")]
    NotOwner,
    /// The nil UUID is no session id: anyone could guess it.
    #[error("session_id must not be the nil UUID")]
    NilId,
    /// Redis or PostgreSQL did not answer.
    #[error("session owner unavailable: {0}")]
    Unavailable(String),
}

impl From<redis::RedisError> for SessionError {
    fn from(e: redis::RedisError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<sqlx::Error> for SessionError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Claims and checks session owners.
#[derive(Clone)]
pub struct SessionOwners {
    conn: Conn,
    names: Names,
    ttl_secs: u64,
    db: Option<PgPool>,
}

impl std::fmt::Debug for SessionOwners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionOwners")
            .field("ttl_secs", &self.ttl_secs)
            .field("db", &self.db.is_some())
            .finish_non_exhaustive()
    }
}

impl SessionOwners {
    /// Owners kept for `ttl_secs` after their last use; `db` holds stored sessions (when the
    /// service has the database).
    pub fn new(conn: Conn, names: Names, ttl_secs: u64, db: Option<PgPool>) -> Self {
        Self {
            conn,
            names,
            ttl_secs,
            db,
        }
    }

    /// The command that claims a session for `owner` unless someone has: `SET key owner NX GET
    /// EX ttl`. Its reply (the previous owner, if any) goes to [`SessionOwners::settle`]. Split
    /// out so the worker runtime can pipeline it with its other reads.
    pub fn claim_cmd(&self, session_id: Uuid, owner: &Owner) -> redis::Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.names.session_owner(session_id))
            .arg(owner.to_value())
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(self.ttl_secs);
        cmd
    }

    /// Claims a new session or checks that `owner` owns an existing one. `fresh`: the id was
    /// minted by the caller just now, so no stored session can have it.
    pub async fn claim(
        &self,
        session_id: Uuid,
        owner: &Owner,
        fresh: bool,
    ) -> Result<(), SessionError> {
        if session_id.is_nil() {
            // Not even claimed: nobody may own the nil id.
            return Err(SessionError::NilId);
        }
        let previous: Option<String> = self
            .claim_cmd(session_id, owner)
            .query_async(&mut self.conn.clone())
            .await?;
        let known = previous.as_deref() == Some(owner.to_value().as_str());
        self.settle(session_id, owner, previous, fresh).await?;
        if known {
            // In use again: remembered for another full TTL.
            let _: bool = redis::cmd("EXPIRE")
                .arg(self.names.session_owner(session_id))
                .arg(self.ttl_secs)
                .query_async(&mut self.conn.clone())
                .await?;
        }
        Ok(())
    }

    /// Decides a claim from the owner key's previous value (the reply of
    /// [`SessionOwners::claim_cmd`]). Leaves a known owner's TTL as it is.
    pub async fn settle(
        &self,
        session_id: Uuid,
        owner: &Owner,
        previous: Option<String>,
        fresh: bool,
    ) -> Result<(), SessionError> {
        let key = self.names.session_owner(session_id);
        let mut conn = self.conn.clone();
        let mine = owner.to_value();
        let claimed_now = previous.is_none();
        // Gives back a claim this call made, when the session turns out not to be the caller's.
        let release = || async {
            if claimed_now {
                let _ = crate::bus::delete_if_equals(&mut self.conn.clone(), &key, &mine).await;
            }
        };
        if session_id.is_nil() {
            release().await;
            return Err(SessionError::NilId);
        }
        match previous.as_deref() {
            None if fresh => return Ok(()),
            Some(v) if v == mine => return Ok(()),
            Some(v) if Owner::parse(v).is_some() => return Err(SessionError::NotOwner),
            // A key of the older layout names only the tenant.
            Some(v) if v != owner.tenant_id.to_string() => return Err(SessionError::NotOwner),
            _ => {}
        }
        // Claimed just now in Redis (or an older key of the same tenant): the stored session, if
        // any, decides.
        let stored = match &self.db {
            Some(db) => crate::history::session_owner(db, session_id).await,
            None => Ok(None),
        };
        match stored {
            Ok(Some(stored)) if stored != *owner => {
                release().await;
                Err(SessionError::NotOwner)
            }
            Ok(_) => {
                if !claimed_now {
                    let _: () = redis::cmd("SET")
                        .arg(&key)
                        .arg(&mine)
                        .arg("EX")
                        .arg(self.ttl_secs)
                        .query_async(&mut conn)
                        .await?;
                }
                Ok(())
            }
            Err(e) => {
                release().await;
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_values_round_trip() {
        let (t, u) = (Uuid::now_v7(), Uuid::now_v7());
        for owner in [Owner::new(t, Some(u)), Owner::new(t, None)] {
            assert_eq!(Owner::parse(&owner.to_value()), Some(owner));
        }
        assert_eq!(Owner::parse(&t.to_string()), None);
        assert_eq!(Owner::parse("x:y"), None);
    }
}
