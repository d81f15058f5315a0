//! Per-tenant request rate limits shared by every gateway replica: GCRA in one Redis Lua script.
//!
//! Why a hand-written script and not `governor` (the crate STYLE.md prefers): `governor` keeps
//! its state in process memory, so N replicas behind a load balancer would each allow the full
//! rate and a tenant would get N times its limit. The limit must hold for the whole deployment,
//! so the state lives in Redis and each check is one atomic script call on one key per tenant.
//!
//! GCRA (the generic cell rate algorithm) stores a single number per tenant, the "theoretical
//! arrival time" (TAT) of the next request. With an emission interval `T = 60 s / rpm` and a
//! burst tolerance `τ = T × (burst − 1)`, a request at `now` is allowed when
//! `max(TAT, now) − now ≤ τ`, and then moves the TAT forward by `T`; otherwise the caller waits
//! `max(TAT, now) − τ − now`. That is a token bucket of `burst` cells refilled at `rpm` per
//! minute, without a refill timer. The script reads the clock with `TIME`, so replicas whose
//! clocks drift still share one time line.
//!
//! Failing open: when Redis does not answer within [`CHECK_TIMEOUT`] or returns an error, the
//! request is allowed and a warning is logged. A Redis hiccup must not lock every tenant out; the
//! limiter protects capacity, it is not a security boundary.

use std::net::IpAddr;
use std::time::Duration;

use common::Names;
use common::bus::Conn;
use common::error::AppError;
use common::settings::CoreSettings;
use serde_json::json;
use uuid::Uuid;

use crate::config::{AuthSettings, RateLimitSettings};

/// The longest a rate-limit check may take before the request is let through.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// GCRA on one key. KEYS[1]: the tenant's TAT key. ARGV[1]: emission interval, µs. ARGV[2]:
/// burst tolerance, µs. Returns 0 when allowed, else the wait in ms (≥ 1). Times are µs since
/// the epoch: ~1.8e15, exact in Lua's doubles (< 2^53).
const GCRA: &str = r"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
if tat - now > tolerance then
  return math.max(1, math.ceil((tat - tolerance - now) / 1000))
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return 0
";

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Over the limit; retry after this long.
    Limited(Duration),
}

/// Checks requests against the per-tenant limit; cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    conn: Conn,
    script: redis::Script,
    names: Names,
    /// `(interval µs, tolerance µs)`; `None` when disabled.
    params: Option<(u64, u64)>,
    /// The same for semantic searches.
    search: Option<(u64, u64)>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// GCRA parameters in µs: the emission interval and the burst tolerance; `None` when disabled.
fn gcra_params(s: &RateLimitSettings) -> Option<(u64, u64)> {
    per_minute(s.requests_per_minute, s.burst)
}

/// GCRA parameters for `rpm` requests a minute, `burst` at once; `None` when `rpm` is 0.
pub fn per_minute(rpm: u32, burst: u32) -> Option<(u64, u64)> {
    if rpm == 0 {
        return None;
    }
    let interval = 60_000_000 / u64::from(rpm);
    let tolerance = interval * u64::from(burst.max(1) - 1);
    Some((interval.max(1), tolerance))
}

impl RateLimiter {
    /// A limiter on the shared connection.
    pub fn new(conn: Conn, core: &CoreSettings, settings: &RateLimitSettings) -> Self {
        Self {
            conn,
            script: redis::Script::new(GCRA),
            names: core.names(),
            params: gcra_params(settings),
            search: per_minute(settings.search_per_minute, settings.search_burst),
        }
    }

    /// The key holding a tenant's TAT.
    pub fn key(&self, tenant: Uuid) -> String {
        self.names.rate_limit(tenant)
    }

    /// Counts one request of `tenant`. Fails open (allows) when Redis is unavailable.
    pub async fn check(&self, tenant: Uuid) -> Decision {
        self.check_key(&self.key(tenant), self.params).await
    }

    /// Counts one request against the GCRA state at `key` with `params` (from [`per_minute`];
    /// `None` allows everything). Fails open (allows) when Redis is unavailable.
    pub async fn check_key(&self, key: &str, params: Option<(u64, u64)>) -> Decision {
        let Some((interval, tolerance)) = params else {
            return Decision::Allowed;
        };
        let mut conn = self.conn.clone();
        let mut call = self.script.key(key);
        call.arg(interval).arg(tolerance);
        let reply = tokio::time::timeout(CHECK_TIMEOUT, call.invoke_async::<u64>(&mut conn)).await;
        match reply {
            Ok(Ok(0)) => Decision::Allowed,
            Ok(Ok(wait_ms)) => Decision::Limited(Duration::from_millis(wait_ms)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, %key, "rate limit check failed; allowing the request");
                Decision::Allowed
            }
            Err(_) => {
                tracing::warn!(%key, "rate limit check timed out; allowing the request");
                Decision::Allowed
            }
        }
    }

    /// Counts one unauthenticated request (`/auth/login`, `/auth/register`) against its client
    /// address and, for a login, against the account (by email hash). Over either limit →
    /// [`AppError::RateLimited`].
    pub async fn admit_auth(
        &self,
        settings: &AuthSettings,
        client: Option<IpAddr>,
        email: Option<&str>,
    ) -> Result<(), AppError> {
        if let Some(addr) = client {
            let key = self.names.rate_limit_auth("addr", &addr.to_string());
            let limit = per_minute(settings.per_address_per_minute, settings.address_burst);
            limited(self.check_key(&key, limit).await, "address")?;
        }
        if let Some(email) = email {
            let key = self
                .names
                .rate_limit_auth("account", &crate::accounts::email_hash(email));
            let limit = per_minute(settings.per_account_per_minute, settings.account_burst);
            limited(self.check_key(&key, limit).await, "account")?;
        }
        Ok(())
    }

    /// Counts one request of `tenant`; over the limit → [`AppError::RateLimited`].
    pub async fn admit(&self, tenant: Uuid) -> Result<(), AppError> {
        match self.check(tenant).await {
            Decision::Allowed => Ok(()),
            Decision::Limited(wait) => {
                tracing::debug!(%tenant, wait_ms = wait.as_millis() as u64, "rate limited");
                Err(AppError::RateLimited {
                    retry_after_secs: retry_after_secs(wait),
                })
            }
        }
    }
}

impl RateLimiter {
    /// Counts one semantic search of `tenant` against its search limit (the seed's 60 a
    /// minute); over it → [`AppError::RateLimited`].
    pub async fn admit_search(&self, tenant: Uuid) -> Result<(), AppError> {
        let key = format!("{}:search", self.key(tenant));
        limited(self.check_key(&key, self.search).await, "search")
    }
}

fn limited(decision: Decision, what: &str) -> Result<(), AppError> {
    match decision {
        Decision::Allowed => Ok(()),
        Decision::Limited(wait) => {
            tracing::info!(
                limit = what,
                wait_ms = wait.as_millis() as u64,
                "request rate limited"
            );
            Err(AppError::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            })
        }
    }
}

/// The WebSocket `error` event for a `chat` over the limit: code `rate_limited`, stage
/// `rate_limit`, `retryable: true` and `retry_after_secs`.
pub fn error_event(session_id: Option<Uuid>, retry_after_secs: u64) -> String {
    crate::session::local_event(
        "error",
        session_id,
        None,
        json!({
            "stage": "rate_limit",
            "code": "rate_limited",
            "message": format!("rate limit reached; retry after {retry_after_secs} s"),
            "retryable": true,
            "retry_after_secs": retry_after_secs,
        }),
    )
}

/// Whole seconds for `Retry-After`, rounded up and at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_follow_the_settings() {
        let s = |rpm, burst| RateLimitSettings {
            requests_per_minute: rpm,
            burst,
            ..RateLimitSettings::default()
        };
        assert_eq!(gcra_params(&s(0, 10)), None);
        assert_eq!(gcra_params(&s(600, 60)), Some((100_000, 5_900_000)));
        assert_eq!(gcra_params(&s(30, 5)), Some((2_000_000, 8_000_000)));
        // A burst of 0 means one request at a time, not "nothing ever".
        assert_eq!(gcra_params(&s(60, 0)), Some((1_000_000, 0)));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }
}
