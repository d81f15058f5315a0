//! What the simulated WebSocket APIs do alike: the server's side of the closing handshake.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::time::timeout;

/// How long the server waits for the client to answer its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Sends a close frame and waits a moment for the client's, completing the closing handshake.
pub(crate) async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let drain = async { while let Some(Ok(_)) = socket.recv().await {} };
    let _ = timeout(CLOSE_GRACE, drain).await;
}
