//! Accounts: registration (a new tenant with its first admin, or a user added by a tenant's
//! admin), login with Argon2id-hashed passwords issuing JWTs, and the caller's own account.
//! The route handlers unpack requests and call these functions, which answer with
//! `common::error::AppError` (a taken email is its 409 `Conflict`). Request types have no `Debug`, so a password can never be logged by accident.

mod password;
pub mod usage;
mod validate;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::auth::{Claims, JwtAuth, Role};
use common::error::AppError;
use common::http::is_admin;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

pub use password::Passwords;
pub use validate::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, parse_body};
use validate::{bad, valid_email, valid_name, valid_password};

/// The one answer to every failed login, so it does not tell which emails have accounts.
pub const INVALID_LOGIN: &str = "invalid email or password";

/// `POST /auth/register` body.
#[derive(Deserialize)]
pub struct RegisterRequest {
    /// Login name; unique across tenants, case-insensitively.
    pub email: String,
    /// At least [`MIN_PASSWORD_CHARS`] characters.
    pub password: String,
    /// Shown instead of the email.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Name of the new tenant (self-registration only); the email's domain when absent.
    #[serde(default)]
    pub tenant_name: Option<String>,
    /// Role of the new user (admin-created users only); `user` when absent.
    #[serde(default)]
    pub role: Option<Role>,
}

/// `POST /auth/login` body.
#[derive(Deserialize)]
pub struct LoginRequest {
    /// The account's email, any case.
    pub email: String,
    /// Its password.
    pub password: String,
}

/// An account as clients see it (never the password hash).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// The user id (the token's `sub`).
    pub id: Uuid,
    /// The email, as registered.
    pub email: String,
    /// The tenant.
    pub tenant_id: Uuid,
    /// `user` or `admin`.
    pub role: Role,
    /// The display name, if any.
    pub display_name: Option<String>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// `POST /auth/login` answer.
#[derive(Debug, Serialize)]
pub struct LoginResponse {
    /// The JWT to send as `Authorization: Bearer`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// Who logged in.
    pub user: User,
}

/// `GET /auth/me` answer: the account, or only the token's claims when the token's user has no
/// account (a development token from `gateway-service token`): then `registered` is false and
/// `email`, `display_name` and `created_at` are null.
#[derive(Debug, Serialize)]
pub struct Me {
    /// The token's `sub`.
    pub id: Uuid,
    /// The token's tenant.
    pub tenant_id: Uuid,
    /// The account's role, or the token's when there is no account.
    pub role: Role,
    /// The email, when there is an account.
    pub email: Option<String>,
    /// The display name, when set.
    pub display_name: Option<String>,
    /// When the account was created.
    pub created_at: Option<DateTime<Utc>>,
    /// Whether an account backs this token.
    pub registered: bool,
}

/// A short, stable pseudonym of an email for logs and rate-limit keys: the first 16 hex digits
/// of the SHA-256 of the trimmed, lower-cased address. The same account always maps to the
/// same value; the address itself never reaches a log line.
pub fn email_hash(email: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(email.trim().to_lowercase().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The role as stored in `users.role`.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::User => "user",
    }
}

/// A stored role; anything but `admin` is an ordinary user (the column's CHECK allows only two).
fn parse_role(stored: &str) -> Role {
    if stored == "admin" {
        Role::Admin
    } else {
        Role::User
    }
}

/// Registers an account. Without `creator`: a new tenant (named `tenant_name`, or the email's
/// domain) and its first user, an admin. With an admin `creator`: a user of the admin's tenant
/// with the requested role (`user` by default). A taken email is [`AppError::Conflict`].
pub async fn register(
    db: &PgPool,
    passwords: &Passwords,
    creator: Option<&Claims>,
    request: RegisterRequest,
) -> Result<User, AppError> {
    let email = valid_email(&request.email)?;
    valid_password(&request.password)?;
    let display_name = valid_name(request.display_name.as_deref(), "display_name")?;
    let tenant_name = valid_name(request.tenant_name.as_deref(), "tenant_name")?;
    let (tenant_id, role, new_tenant) = match creator {
        None => {
            if request.role.is_some() {
                return Err(bad("role can only be chosen by an admin creating a user"));
            }
            let domain = email.rsplit('@').next().unwrap_or_default().to_lowercase();
            let name = tenant_name.unwrap_or(domain);
            (Uuid::now_v7(), Role::Admin, Some(name))
        }
        Some(claims) if is_admin(claims) => {
            if tenant_name.is_some() {
                return Err(bad(
                    "tenant_name cannot be set here: the user joins the admin's tenant",
                ));
            }
            (claims.tenant_id, request.role.unwrap_or(Role::User), None)
        }
        Some(_) => {
            return Err(AppError::Forbidden("only an admin can create users".into()));
        }
    };
    let password_hash = passwords.hash(request.password).await?;
    let user_id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    match &new_tenant {
        Some(name) => {
            sqlx::query!(
                "INSERT INTO tenants (id, name) VALUES ($1, $2)",
                tenant_id,
                name
            )
            .execute(&mut *tx)
            .await?;
        }
        // A tenant known so far only from signed tokens gets its row now (named by its id).
        None => {
            sqlx::query!(
                "INSERT INTO tenants (id, name) VALUES ($1, $1::uuid::text) ON CONFLICT (id) DO NOTHING",
                tenant_id
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    let created_at = sqlx::query_scalar!(
        r#"INSERT INTO users (id, tenant_id, email, password_hash, role, display_name)
           VALUES ($1, $2, $3, $4, $5, $6)
           RETURNING created_at"#,
        user_id,
        tenant_id,
        email,
        password_hash,
        role_name(role),
        display_name
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("users_email_key") => {
            AppError::Conflict("an account with this email already exists".into())
        }
        _ => e.into(),
    })?;
    tx.commit().await?;
    tracing::info!(%user_id, %tenant_id, role = role_name(role), new_tenant = new_tenant.is_some(), "account registered");
    Ok(User {
        id: user_id,
        email,
        tenant_id,
        role,
        display_name,
        created_at,
    })
}

/// Checks an email and password and issues a token valid for `ttl`. Unknown emails and wrong
/// passwords get the same 401 after the same amount of hashing work; each refusal is logged with
/// a hash of the email (never the email) and the client's address.
pub async fn login(
    db: &PgPool,
    passwords: &Passwords,
    client: Option<std::net::IpAddr>,
    auth: &JwtAuth,
    ttl: Duration,
    request: LoginRequest,
) -> Result<LoginResponse, AppError> {
    let row = sqlx::query!(
        r#"SELECT id, tenant_id, email, password_hash, role, display_name, created_at
           FROM users WHERE lower(email) = lower($1)"#,
        request.email.trim()
    )
    .fetch_optional(db)
    .await?;
    let stored = row.as_ref().map(|r| r.password_hash.clone());
    let verified = passwords.verify(request.password, stored).await?;
    let Some(row) = row.filter(|_| verified) else {
        tracing::info!(email_hash = %email_hash(&request.email), client = ?client, "login refused");
        return Err(AppError::Unauthorized(INVALID_LOGIN.into()));
    };
    let user = User {
        id: row.id,
        email: row.email,
        tenant_id: row.tenant_id,
        role: parse_role(&row.role),
        display_name: row.display_name,
        created_at: row.created_at,
    };
    let token = auth
        .issue(user.id, user.tenant_id, user.role, ttl)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot issue a token: {e}")))?;
    tracing::info!(user_id = %user.id, tenant_id = %user.tenant_id, "login");
    Ok(LoginResponse {
        token,
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
        user,
    })
}

/// The caller's account (`sub` within the token's tenant), or the claims alone when no account
/// backs the token.
pub async fn me(db: &PgPool, claims: &Claims) -> Result<Me, AppError> {
    let row = sqlx::query!(
        r#"SELECT email, role, display_name, created_at
           FROM users WHERE id = $1 AND tenant_id = $2"#,
        claims.sub,
        claims.tenant_id
    )
    .fetch_optional(db)
    .await?;
    Ok(match row {
        Some(r) => Me {
            id: claims.sub,
            tenant_id: claims.tenant_id,
            role: parse_role(&r.role),
            email: Some(r.email),
            display_name: r.display_name,
            created_at: Some(r.created_at),
            registered: true,
        },
        None => Me {
            id: claims.sub,
            tenant_id: claims.tenant_id,
            role: claims.role,
            email: None,
            display_name: None,
            created_at: None,
            registered: false,
        },
    })
}

/// A tenant's users, oldest first, `limit` from `offset`.
pub async fn list_users(
    db: &PgPool,
    tenant_id: Uuid,
    limit: i64,
    offset: i64,
) -> Result<Vec<User>, AppError> {
    let rows = sqlx::query!(
        r#"SELECT id, tenant_id, email, role, display_name, created_at
           FROM users WHERE tenant_id = $1
           ORDER BY created_at, id
           LIMIT $2 OFFSET $3"#,
        tenant_id,
        limit,
        offset
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| User {
            id: r.id,
            email: r.email,
            tenant_id: r.tenant_id,
            role: parse_role(&r.role),
            display_name: r.display_name,
            created_at: r.created_at,
        })
        .collect())
}
