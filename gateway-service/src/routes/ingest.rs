//! Documents: `POST /api/v1/ingest` (upload, 202 with the job), `GET /api/v1/ingest/{job_id}`
//! (its state), `GET /api/v1/ingest/{job_id}/events` (SSE) and `WS /ws/ingest/{job_id}` (its
//! events as they come), `GET /api/v1/documents` and `DELETE /api/v1/documents/{id}`.

use std::time::Duration;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::auth::Claims;
use common::error::{ApiEnvelope, AppError, ok};
use common::http::is_admin;
use common::payloads::semantic::{DELETE, DeletePayload, LIST_DOCUMENTS, ListDocumentsPayload};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::extract::{AuthUser, auth_error};
use crate::hub::StreamId;
use crate::links::base_url;
use crate::protocol::{self, ClientMessage};
use crate::session::{client_event, error_event};
use crate::state::AppState;
use crate::{ingest, jobs};

/// `POST /api/v1/ingest` (multipart/form-data: `file`; optional `metadata`, `document_id`,
/// `tags`, `session_id`, `agent_id`, `tenant_id`): the document is stored and its ingestion
/// starts; 202 with `{job_id, status, document_id, session_id, name, websocket_url,
/// status_url}`. Counts against the tenant's request limit, like every request.
pub async fn upload(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let multipart = multipart.map_err(|e| AppError::BadRequest(e.body_text()))?;
    // (The tenant's request limit was counted when the token was read.)
    let form = ingest::read_form(&state, &claims, multipart).await?;
    let job = ingest::start(&state, &claims, form, &base_url(&state, &headers)).await?;
    let status = StatusCode::ACCEPTED;
    let body = ApiEnvelope {
        code: status.as_u16(),
        success: true,
        message: "ingestion started".into(),
        data: job,
    };
    Ok((status, Json(body)).into_response())
}

/// `GET /api/v1/ingest/{job_id}`: `{job_id, session_id, status, progress, result, error}`, where
/// `status` is `processing`, `completed`, `error` or `cancelled`, `progress` the last `progress`
/// event's data, `result` the `text_completed` data (`document_id`, `chunks`, ...), `error` the
/// `error` event's.
pub async fn status(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(job_id): Path<Uuid>,
) -> Result<Response, AppError> {
    let session_id = ingest::job_session(&state, &claims, job_id).await?;
    let job = jobs::state_of(&state, session_id, job_id).await?;
    Ok(ok(json!({
        "job_id": job_id,
        "session_id": job.session_id,
        "status": job.status,
        "progress": job.progress,
        "result": job.result,
        "error": job.error,
    }))
    .into_response())
}

/// `GET /api/v1/ingest/{job_id}/events` (`Last-Event-ID` to resume): the job's events from its
/// start as Server-Sent Events, as `WS /ws/ingest/{job_id}` sends them, ending after `complete`.
pub async fn events(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(job_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let after = super::sse::last_event_id(&headers)?.unwrap_or(StreamId::ZERO);
    let session_id = ingest::job_session(&state, &claims, job_id).await?;
    Ok(super::sse::response(jobs::follow(
        &state, session_id, job_id, after,
    )))
}

/// Query parameters of `WS /ws/ingest/{job_id}`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    token: Option<String>,
    /// Replay only what came after this event (a reconnect).
    last_event_id: Option<String>,
}

/// `WS /ws/ingest/{job_id}` (`?token=`, or a first `{"type":"auth"}` message): every event of
/// the job from its start (or after `last_event_id`) as the chat WebSocket sends them —
/// `progress`, then `text_completed` or `error`, then `complete` — after which the server closes
/// the socket. `{"type":"cancel"}` stops the job.
pub async fn websocket(
    State(state): State<AppState>,
    Path(job_id): Path<Uuid>,
    Query(query): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |socket| follow(state, socket, job_id, query))
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

async fn refuse(socket: &mut WebSocket, code: &str, message: &str, close_with: u16) {
    let text = error_event(None, "validation", code, message);
    let _ = socket.send(Message::Text(text.into())).await;
    close(socket, close_with, "refused").await;
}

async fn authenticate(
    state: &AppState,
    socket: &mut WebSocket,
    token: Option<String>,
) -> Result<Claims, AppError> {
    if let Some(token) = token {
        return state.auth().verify(&token).map_err(auth_error);
    }
    let wait = Duration::from_secs(state.settings().ws.auth_timeout_secs);
    match tokio::time::timeout(wait, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => match protocol::parse(&text) {
            Ok(ClientMessage::Auth { token }) => state.auth().verify(&token).map_err(auth_error),
            _ => Err(AppError::Unauthorized("missing token".into())),
        },
        _ => Err(AppError::Unauthorized("missing token".into())),
    }
}

async fn follow(state: AppState, mut socket: WebSocket, job_id: Uuid, query: WsQuery) {
    let claims = match authenticate(&state, &mut socket, query.token).await {
        Ok(c) => c,
        Err(e) => {
            refuse(
                &mut socket,
                "unauthorized",
                &e.to_string(),
                close_code::POLICY,
            )
            .await;
            return;
        }
    };
    let session_id = match ingest::job_session(&state, &claims, job_id).await {
        Ok(s) => s,
        Err(e) => {
            refuse(&mut socket, e.code(), &e.to_string(), close_code::POLICY).await;
            return;
        }
    };
    let after = match query.last_event_id.as_deref().map(str::parse::<StreamId>) {
        None => StreamId::ZERO,
        Some(Ok(id)) => id,
        Some(Err(_)) => {
            refuse(
                &mut socket,
                "bad_request",
                "last_event_id is not an event id",
                close_code::POLICY,
            )
            .await;
            return;
        }
    };
    let mut feed = jobs::follow(&state, session_id, job_id, after);
    loop {
        tokio::select! {
            event = feed.next() => {
                let Some(event) = event else {
                    close(&mut socket, close_code::AWAY, "server shutting down").await;
                    return;
                };
                let text = client_event(&event.entry);
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
                if event.is_complete() {
                    close(&mut socket, close_code::NORMAL, "job complete").await;
                    return;
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(text))) => match protocol::parse(&text) {
                    Ok(ClientMessage::Cancel) => {
                        if let Err(e) = state.cancel_task(job_id).await {
                            tracing::warn!(%job_id, error = %e, "ingestion not cancelled");
                        }
                    }
                    Ok(ClientMessage::Ping) => {
                        let pong = json!({"type": "pong", "session_id": session_id,
                            "task_id": job_id, "event_id": null, "data": {}});
                        if socket.send(Message::Text(pong.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                    _ => {}
                },
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Query parameters of `GET /api/v1/documents`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Every user's documents of the tenant (admins).
    #[serde(default)]
    all_users: bool,
}

/// `GET /api/v1/documents` (`?all_users=true` for admins): `{documents: [{document_id, name,
/// chunks, tags, metadata, user_id, created_at}]}`, newest first.
pub async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    if query.all_users && !is_admin(&claims) {
        return Err(AppError::Forbidden(
            "all_users is for admins: a user lists their own documents".into(),
        ));
    }
    let data = serde_json::to_value(ListDocumentsPayload {
        all_users: query.all_users,
    })
    .map_err(|e| AppError::Internal(anyhow::anyhow!("list payload: {e}")))?;
    let answered = crate::semantic::run(&state, &claims, LIST_DOCUMENTS, data)
        .await?
        .map_err(|f| f.app_error())?;
    Ok(ok(answered.data).into_response())
}

/// `DELETE /api/v1/documents/{id}`: the caller's document leaves the index; `{document_id,
/// deleted}` (chunks removed), 404 when the caller has no such document.
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(document_id): Path<Uuid>,
) -> Result<Response, AppError> {
    let data = serde_json::to_value(DeletePayload {
        session_id: None,
        document_id: Some(document_id),
    })
    .map_err(|e| AppError::Internal(anyhow::anyhow!("delete payload: {e}")))?;
    let answered = crate::semantic::run(&state, &claims, DELETE, data)
        .await?
        .map_err(|f| f.app_error())?;
    let deleted = answered.data["deleted"].as_u64().unwrap_or(0);
    if deleted == 0 {
        return Err(AppError::NotFound("no such document".into()));
    }
    Ok(ok(json!({"document_id": document_id, "deleted": deleted})).into_response())
}
