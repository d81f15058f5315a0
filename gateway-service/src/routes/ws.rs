//! `GET /chat/ws`: the WebSocket protocol of DESIGN §5.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::response::Response;
use common::auth::{Claims, LEEWAY_SECS, unix_now};
use common::error::AppError;
use common::payloads::Payload;
use common::payloads::media::GENERATE_IMAGE;
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

use crate::extract::auth_error;
use crate::hub::{Entry, StreamId, Subscription};
use crate::protocol::{self, ClientMessage, ImageInput};
use crate::rate_limit;
use crate::session::{AudioStart, ChatInput, client_event, entry_task, error_event, local_event};
use crate::state::AppState;
use common::live_audio::{self, WriteError};

/// Query parameters of the upgrade request.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    token: Option<String>,
    session_id: Option<String>,
}

/// Close code for a refused, missing or expired token (RFC 6455 "policy violation").
const CLOSE_AUTH: u16 = close_code::POLICY;

/// Bytes read from the socket at once. tungstenite zero-fills that much of its read buffer on
/// every read, so it stays resident for the life of the connection: the 128 KiB default made an
/// idle session cost ~140 KiB (see docs/benchmarks.md). Larger messages still arrive whole; the
/// buffer grows for them.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Upgrades to a WebSocket with the configured frame limits.
pub async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let max = state.settings().ws.max_frame_bytes;
    ws.max_frame_size(max)
        .max_message_size(max)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            let span = tracing::info_span!(
                "ws",
                tenant_id = tracing::field::Empty,
                session_id = tracing::field::Empty,
            );
            async move {
                let mut conn = Connection {
                    state,
                    socket,
                    session_id: None,
                    claims: None,
                    subscription: None,
                    running: None,
                    audio: None,
                };
                conn.run(query).await;
            }
            .instrument(span)
        })
}

struct Connection {
    state: AppState,
    socket: WebSocket,
    claims: Option<Claims>,
    session_id: Option<Uuid>,
    subscription: Option<Subscription>,
    /// The task started or resumed here that has not completed yet.
    running: Option<Uuid>,
    /// The audio stream of the running task while the client streams audio into it.
    audio: Option<String>,
}

/// What the read loop does after a client message.
enum Flow {
    Continue,
    Close(u16, &'static str),
    /// The connection was closed already.
    Closed,
}

/// How a failed read ends the connection: oversized frames and messages (tungstenite's capacity
/// errors) with 1009 saying why, anything else as a protocol error.
fn read_failed(e: axum::Error) -> Flow {
    let cause = e.into_inner();
    match cause.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Flow::Close(close_code::SIZE, "message too big"),
        _ => Flow::Close(close_code::PROTOCOL, "malformed frame"),
    }
}

async fn next_entry(sub: &mut Option<Subscription>) -> Entry {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

impl Connection {
    async fn send(&mut self, text: String) -> bool {
        self.socket.send(Message::Text(text.into())).await.is_ok()
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }

    async fn send_error(&mut self, code: &str, message: &str) -> bool {
        let text = error_event(self.session_id, "validation", code, message);
        self.send(text).await
    }

    async fn run(&mut self, query: WsQuery) {
        let claims = match query.token {
            Some(token) => self.state.auth().verify(&token).map_err(auth_error),
            None => self.await_auth_message().await,
        };
        let claims = match claims {
            Ok(c) => c,
            Err(e) => {
                self.send_error("unauthorized", &e.to_string()).await;
                self.close(CLOSE_AUTH, "unauthorized").await;
                return;
            }
        };
        // Connections per tenant are bounded on each replica; the slot frees when this returns.
        let Some(_slot) = self.state.ws_slots().take(claims.tenant_id) else {
            self.send_error(
                "too_many_connections",
                "this tenant has too many open WebSockets; retry later",
            )
            .await;
            self.close(close_code::AGAIN, "too many connections").await;
            return;
        };
        self.claims = Some(claims.clone());
        let wanted = match query.session_id.as_deref().map(str::parse::<Uuid>) {
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => {
                self.send_error("bad_request", "session_id is not a UUID")
                    .await;
                self.close(close_code::POLICY, "bad session_id").await;
                return;
            }
            None => None,
        };
        tracing::Span::current().record("tenant_id", tracing::field::display(claims.tenant_id));
        match self.state.claim_session(&claims, wanted).await {
            Ok(id) => {
                tracing::Span::current().record("session_id", tracing::field::display(id));
                self.session_id = Some(id);
            }
            Err(e) => {
                self.send_error(e.code(), &e.to_string()).await;
                self.close(close_code::POLICY, "session refused").await;
                return;
            }
        }
        let ready = json!({"type": "websocket_ready", "version": "2.0", "session_id": self.session_id,
            "task_id": null, "event_id": null, "data": {}});
        if !self.send(ready.to_string()).await {
            return;
        }
        self.serve().await;
        if let (Some(task), Some(session)) = (self.running, self.session_id) {
            if self.audio.is_some() {
                // Nobody can resume live audio: the worker stops at once.
                self.end_audio("disconnected").await;
                if let Err(e) = self.state.cancel_task(task).await {
                    tracing::warn!(error = ?e, "live task not cancelled after a disconnect");
                }
            } else {
                self.state.cancel_unless_resumed(session, task);
            }
        }
    }

    async fn await_auth_message(&mut self) -> Result<Claims, AppError> {
        let timeout = Duration::from_secs(self.state.settings().ws.auth_timeout_secs);
        let first = tokio::time::timeout(timeout, self.socket.recv()).await;
        let Ok(Some(Ok(Message::Text(text)))) = first else {
            return Err(AppError::Unauthorized("missing token".into()));
        };
        match protocol::parse(&text) {
            Ok(ClientMessage::Auth { token }) => {
                self.state.auth().verify(&token).map_err(auth_error)
            }
            _ => Err(AppError::Unauthorized("missing token".into())),
        }
    }

    async fn serve(&mut self) {
        let idle = Duration::from_secs(self.state.settings().ws.idle_timeout_secs);
        let shutdown = self.state.shutdown().clone();
        let mut deadline = tokio::time::Instant::now() + idle;
        // The token stops working when it expires, also on a connection opened before.
        let exp = self.claims.as_ref().map_or(0, |c| c.exp + LEEWAY_SECS);
        let expires =
            tokio::time::Instant::now() + Duration::from_secs(exp.saturating_sub(unix_now()));
        loop {
            let idle_timer = tokio::time::sleep_until(deadline);
            tokio::select! {
                msg = self.socket.recv() => {
                    deadline = tokio::time::Instant::now() + idle;
                    let flow = match msg {
                        None => return,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "websocket read failed");
                            read_failed(e)
                        }
                        Some(Ok(Message::Text(text))) => self.on_text(&text).await,
                        Some(Ok(Message::Binary(frame))) => self.on_audio(&frame).await,
                        Some(Ok(Message::Close(_))) => return,
                        Some(Ok(_)) => Flow::Continue,
                    };
                    match flow {
                        Flow::Continue => {}
                        Flow::Close(code, reason) => {
                            self.close(code, reason).await;
                            return;
                        }
                        Flow::Closed => return,
                    }
                }
                entry = next_entry(&mut self.subscription) => {
                    let was_running = self.running.is_some();
                    if !self.forward(entry).await {
                        return;
                    }
                    // A long task is not idleness: the idle clock starts when it completes.
                    if was_running && self.running.is_none() {
                        deadline = tokio::time::Instant::now() + idle;
                    }
                }
                () = idle_timer, if self.running.is_none() => {
                    self.close(close_code::NORMAL, "idle timeout").await;
                    return;
                }
                () = tokio::time::sleep_until(expires) => {
                    self.token_expired().await;
                    return;
                }
                () = shutdown.cancelled() => {
                    self.close(close_code::AWAY, "server shutting down").await;
                    return;
                }
            }
        }
    }

    /// Sends one response-stream entry to the client; false when the client is gone.
    async fn forward(&mut self, entry: Entry) -> bool {
        if entry.kind == "complete" {
            let task = entry_task(&entry);
            if task.is_some() && task == self.running {
                self.running = None;
                self.audio = None;
                if let (Some(s), Some(t)) = (self.session_id, task) {
                    self.state.task_finished(s, t).await;
                }
            }
        }
        self.send(client_event(&entry)).await
    }

    /// Tells the client its token expired and closes: it reconnects with a fresh one.
    async fn token_expired(&mut self) {
        tracing::info!("websocket token expired; closing");
        self.send_error(
            "token_expired",
            "the token has expired; reconnect with a new one",
        )
        .await;
        self.close(CLOSE_AUTH, "token expired").await;
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        if self.claims.as_ref().is_some_and(Claims::expired) {
            self.token_expired().await;
            return Flow::Closed;
        }
        let message = match protocol::parse(text) {
            Ok(m) => m,
            Err(refusal) => {
                self.send_error(refusal.code, &refusal.message).await;
                return Flow::Continue;
            }
        };
        let result = match message {
            ClientMessage::Auth { .. } => Ok(()),
            ClientMessage::Ping => {
                let pong = local_event("pong", self.session_id, None, json!({}));
                self.send(pong).await;
                Ok(())
            }
            ClientMessage::Chat(input) => self.on_chat(*input).await,
            ClientMessage::Image(input) => self.on_image(*input).await,
            ClientMessage::AudioStart(start) => self.on_audio_start(*start).await,
            ClientMessage::AudioEnd => self.on_audio_end().await,
            ClientMessage::Cancel => self.on_cancel().await,
            ClientMessage::Resume {
                session_id,
                last_event_id,
            } => self.on_resume(session_id, last_event_id).await,
        };
        if let Err(e) = result {
            let text = match &e {
                // Over the tenant's limit: say when to retry; the connection stays open.
                AppError::RateLimited { retry_after_secs } => {
                    rate_limit::error_event(self.session_id, *retry_after_secs)
                }
                AppError::Unavailable(_) | AppError::Internal(_) => {
                    error_event(self.session_id, "gateway", e.code(), &e.to_string())
                }
                _ => error_event(self.session_id, "validation", e.code(), &e.to_string()),
            };
            self.send(text).await;
            if matches!(e, AppError::Unavailable(_) | AppError::Internal(_)) {
                tracing::warn!(error = ?e, "websocket request failed");
            }
        }
        Flow::Continue
    }

    fn claims(&self) -> Result<&Claims, AppError> {
        self.claims
            .as_ref()
            .ok_or_else(|| AppError::Unauthorized("missing token".into()))
    }

    async fn switch_session(
        &mut self,
        session_id: Uuid,
        after: Option<StreamId>,
    ) -> Result<(), AppError> {
        let claims = self.claims()?.clone();
        let session_id = self.state.claim_session(&claims, Some(session_id)).await?;
        let stream = self.state.bus().names().response_stream(session_id);
        let after = match after {
            Some(a) => a,
            None => self.state.last_entry_id(&stream).await?,
        };
        self.subscription = None;
        self.subscription = Some(self.state.hub().subscribe(&stream, after));
        self.session_id = Some(session_id);
        Ok(())
    }

    /// Where a new task of this connection runs: refused while one runs; the connection moves
    /// to `wanted` (a session of the caller's) when it names another, and follows its session
    /// from now on. The caller's claims and the session.
    async fn task_session(&mut self, wanted: Option<Uuid>) -> Result<(Claims, Uuid), AppError> {
        if self.running.is_some() {
            return Err(AppError::BadRequest(
                "a task is running in this session; wait for complete or cancel it".into(),
            ));
        }
        let session = wanted.or(self.session_id);
        if let Some(session) = session
            && (session != self.session_id.unwrap_or_default() || self.subscription.is_none())
        {
            self.switch_session(session, None).await?;
        }
        let claims = self.claims()?.clone();
        Ok((claims, self.session_id.unwrap_or_default()))
    }

    async fn on_chat(&mut self, input: ChatInput) -> Result<(), AppError> {
        // Every `chat` message counts against the tenant's limit, like an authenticated request.
        let tenant = self.claims()?.tenant_id;
        self.state.rate_limiter().admit(tenant).await?;
        input.validate()?;
        let (claims, session_id) = self.task_session(input.session_id).await?;
        let started = self.state.publish_chat(&claims, session_id, &input).await?;
        self.running = Some(started.task_id);
        Ok(())
    }

    /// An `image` message: `media.image.generate` in the session, followed like a chat.
    async fn on_image(&mut self, input: ImageInput) -> Result<(), AppError> {
        let tenant = self.claims()?.tenant_id;
        self.state.rate_limiter().admit(tenant).await?;
        input
            .payload
            .validate()
            .map_err(|e| AppError::BadRequest(e.0))?;
        let (claims, session_id) = self.task_session(input.session_id).await?;
        let data = serde_json::to_value(&input.payload)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("image payload: {e}")))?;
        let started = self
            .state
            .publish_task(&claims, session_id, GENERATE_IMAGE, data)
            .await?;
        self.running = Some(started.task_id);
        Ok(())
    }

    async fn on_audio_start(&mut self, start: AudioStart) -> Result<(), AppError> {
        let tenant = self.claims()?.tenant_id;
        self.state.rate_limiter().admit(tenant).await?;
        let (action_type, data) = start.action()?;
        let (claims, session_id) = self.task_session(start.session_id).await?;
        let started = self
            .state
            .publish_task(&claims, session_id, action_type, data)
            .await?;
        self.running = Some(started.task_id);
        self.audio = Some(
            self.state
                .bus()
                .names()
                .audio_input_stream(session_id, started.task_id),
        );
        Ok(())
    }

    /// A binary frame: the next audio of the open stream.
    async fn on_audio(&mut self, frame: &[u8]) -> Flow {
        let Some(key) = &self.audio else {
            self.send_error(
                "unsupported",
                "no audio stream is open: send audio_start before binary frames",
            )
            .await;
            return Flow::Continue;
        };
        let mut conn = self.state.bus().conn();
        match live_audio::write(&mut conn, key, frame).await {
            Ok(()) => {}
            Err(WriteError::Backlog) => {
                self.end_audio("backlog").await;
                self.send_error(
                    "audio_backlog",
                    "the audio is not being transcribed fast enough; the stream was ended",
                )
                .await;
            }
            Err(WriteError::Redis(e)) => {
                tracing::warn!(error = %e, "audio frame not written");
                let text = error_event(
                    self.session_id,
                    "gateway",
                    "unavailable",
                    "the audio frame could not be passed on; retry",
                );
                self.send(text).await;
            }
        }
        Flow::Continue
    }

    async fn on_audio_end(&mut self) -> Result<(), AppError> {
        if self.audio.is_none() {
            return Err(AppError::BadRequest("no audio stream is open".into()));
        }
        self.end_audio("ended").await;
        Ok(())
    }

    /// Ends the open audio stream, if any: later frames are refused.
    async fn end_audio(&mut self, reason: &str) {
        if let Some(key) = self.audio.take() {
            let mut conn = self.state.bus().conn();
            if let Err(e) = live_audio::end(&mut conn, &key, reason).await {
                tracing::warn!(error = %e, "end of the audio not written; the worker stops when it idles");
            }
        }
    }

    async fn on_cancel(&mut self) -> Result<(), AppError> {
        self.audio = None;
        match self.running {
            Some(task) => self.state.cancel_task(task).await,
            None => Ok(()),
        }
    }

    async fn on_resume(
        &mut self,
        session_id: Uuid,
        last_event_id: Option<String>,
    ) -> Result<(), AppError> {
        let after = match last_event_id.as_deref() {
            Some(id) => id
                .parse::<StreamId>()
                .map_err(|_| AppError::BadRequest("last_event_id is not an event id".into()))?,
            None => StreamId::ZERO,
        };
        self.switch_session(session_id, Some(after)).await?;
        self.state.mark_resumed(session_id).await?;
        self.running = self.state.running_task(session_id).await?;
        Ok(())
    }
}
