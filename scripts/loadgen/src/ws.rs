//! A WebSocket client of the gateway's `/chat/ws` protocol.

use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A connected WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One server event, with the fields the measurements use.
#[derive(Debug, Deserialize)]
pub struct ServerEvent {
    /// The event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The task, if any.
    #[serde(default)]
    pub task_id: Option<String>,
    /// The response-stream entry id (`<ms>-<seq>`), if any.
    #[serde(default)]
    pub event_id: Option<String>,
    /// The session, if any.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The event's data.
    #[serde(default)]
    pub data: Value,
}

impl ServerEvent {
    /// The millisecond part of the event id: when Redis stored the event.
    pub fn stored_at_ms(&self) -> Option<u64> {
        self.event_id.as_deref()?.split('-').next()?.parse().ok()
    }

    /// `data.code` of an `error` event.
    pub fn error_code(&self) -> Option<&str> {
        self.data.get("code").and_then(Value::as_str)
    }
}

/// Client-side buffers: small, so thousands of idle connections stay cheap in the load generator.
pub fn small_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
}

/// Connects with `url` (which carries `?token=`) and waits for `websocket_ready`; returns the
/// socket and the session id.
pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<(Ws, String)> {
    tokio::time::timeout(timeout, async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(small_config()), true)
                .await
                .context("websocket connect")?;
        match next_event(&mut ws).await? {
            Some(e) if e.kind == "websocket_ready" => Ok((ws, e.session_id.unwrap_or_default())),
            Some(e) => bail!(
                "expected websocket_ready, got {} {}",
                e.kind,
                e.error_code().unwrap_or_default()
            ),
            None => bail!("closed before websocket_ready"),
        }
    })
    .await
    .context("websocket connect timed out")?
}

/// The next server event; `None` when the connection closed. Pings are answered by the library.
pub async fn next_event(ws: &mut Ws) -> anyhow::Result<Option<ServerEvent>> {
    loop {
        match ws.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(e).context("websocket read"),
            Some(Ok(Message::Text(text))) => {
                return Ok(Some(
                    serde_json::from_str(text.as_str()).context("server event is not JSON")?,
                ));
            }
            Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(_)) => continue,
        }
    }
}

/// Sends one JSON message.
pub async fn send(ws: &mut Ws, message: &Value) -> anyhow::Result<()> {
    ws.send(Message::text(message.to_string()))
        .await
        .context("websocket send")
}

/// The `chat` message for `prompt`.
pub fn chat_message(prompt: &str, model: &str) -> Value {
    json!({"type": "chat", "prompt": prompt, "model": model})
}
