//! `/api/v1/chat/sessions…` and `/api/v1/chat/search`: the chat history (list, read, rename,
//! delete, full-text search). Handlers unpack the request and call `crate::history`.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use common::error::{AppError, ok};
use common::http::{Params, json_body, path_id};
use serde::Deserialize;
use uuid::Uuid;

use crate::extract::AuthUser;
use crate::history::{self, Viewer};
use crate::state::AppState;

/// `GET /api/v1/chat/sessions` parameters.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    #[serde(default)]
    all: bool,
}

/// `GET /api/v1/chat/sessions/{id}` parameters.
#[derive(Debug, Deserialize)]
pub struct ReadParams {
    limit: Option<i64>,
    before: Option<String>,
}

/// `GET /api/v1/chat/search` parameters.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    q: String,
    limit: Option<i64>,
    #[serde(default)]
    all: bool,
}

/// `PATCH /api/v1/chat/sessions/{id}` body.
#[derive(Debug, Deserialize)]
struct RenameBody {
    title: String,
}

fn session_id(p: Result<Path<Uuid>, PathRejection>) -> Result<Uuid, AppError> {
    path_id(p, "session")
}

/// `GET /api/v1/chat/sessions?limit=&cursor=&all=`: the caller's sessions, newest first.
pub async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Params(p): Params<ListParams>,
) -> Result<Response, AppError> {
    let viewer = Viewer::new(&claims);
    let page =
        history::list_sessions(state.db(), viewer, p.all, p.limit, p.cursor.as_deref()).await?;
    Ok(ok(page).into_response())
}

/// `GET /api/v1/chat/sessions/{id}?limit=&before=`: a session with its messages in order.
pub async fn read(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    id: Result<Path<Uuid>, PathRejection>,
    Params(p): Params<ReadParams>,
) -> Result<Response, AppError> {
    let id = session_id(id)?;
    let detail = history::read_session(
        state.db(),
        Viewer::new(&claims),
        id,
        p.limit,
        p.before.as_deref(),
    )
    .await?;
    Ok(ok(detail).into_response())
}

/// `PATCH /api/v1/chat/sessions/{id}` `{title}`: renames a session.
pub async fn rename(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    id: Result<Path<Uuid>, PathRejection>,
    body: Bytes,
) -> Result<Response, AppError> {
    let id = session_id(id)?;
    let body: RenameBody = json_body(&body)?;
    let session =
        history::rename_session(state.db(), Viewer::new(&claims), id, &body.title).await?;
    Ok(ok(session).into_response())
}

/// `DELETE /api/v1/chat/sessions/{id}`: deletes a session, its messages and its streams.
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, AppError> {
    let id = session_id(id)?;
    let deleted = history::delete_session(&state, Viewer::new(&claims), id).await?;
    crate::semantic::forget_session(&state, &claims, id).await;
    Ok(ok(deleted).into_response())
}

/// `GET /api/v1/chat/search?q=&limit=&all=`: full-text search in the caller's messages.
pub async fn search(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Params(p): Params<SearchParams>,
) -> Result<Response, AppError> {
    let results = history::search(state.db(), Viewer::new(&claims), p.all, &p.q, p.limit).await?;
    Ok(ok(results).into_response())
}
