//! `POST /auth/register`, `POST /auth/login`, `GET /auth/me`.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::error::{ApiEnvelope, AppError};

use crate::accounts::{self, LoginResponse, Me};
use crate::extract::{AuthUser, ClientAddr};
use crate::state::AppState;

/// `POST /auth/register`: 201 with the new user. Without a token, a new tenant and its admin;
/// with an admin's token, a user of the admin's tenant.
pub async fn register(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    creator: Option<AuthUser>,
    body: Bytes,
) -> Result<Response, AppError> {
    let request: accounts::RegisterRequest = accounts::parse_body(&body)?;
    if creator.is_none() {
        // Self-registration is unauthenticated: bounded per client address like a login.
        state
            .rate_limiter()
            .admit_auth(&state.settings().auth, client, None)
            .await?;
    }
    let creator = creator.map(|AuthUser(claims)| claims);
    let user = accounts::register(state.db(), state.passwords(), creator.as_ref(), request).await?;
    let body = ApiEnvelope {
        code: StatusCode::CREATED.as_u16(),
        success: true,
        message: "created".into(),
        data: user,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /auth/login`: a token for an email and password.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    body: Bytes,
) -> Result<Json<ApiEnvelope<LoginResponse>>, AppError> {
    let request: accounts::LoginRequest = accounts::parse_body(&body)?;
    state
        .rate_limiter()
        .admit_auth(&state.settings().auth, client, Some(&request.email))
        .await?;
    let ttl = Duration::from_secs(state.settings().auth_token_ttl_secs);
    let answer = accounts::login(
        state.db(),
        state.passwords(),
        client,
        state.auth(),
        ttl,
        request,
    )
    .await?;
    Ok(common::error::ok(answer))
}

/// `GET /auth/me`: the caller's account (or its token's claims when it has none).
pub async fn me(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<ApiEnvelope<Me>>, AppError> {
    Ok(common::error::ok(accounts::me(state.db(), &claims).await?))
}
