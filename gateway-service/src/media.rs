//! Images and videos as the gateway runs them (`POST /image/generate`, `POST /video/generate`,
//! `POST /video/extend`, `/v1/images/generations`): the body checked with the media payloads' own
//! rules, an image task waited for, a video task started as a job followed by its id
//! (`crate::jobs`). No HTTP types here.

use common::auth::Claims;
use common::error::AppError;
use common::payloads::Payload;
use common::payloads::media::{EXTEND_VIDEO, ExtendPayload, GENERATE_IMAGE, GENERATE_VIDEO};
use common::payloads::media::{ImagePayload, VideoPayload};
use serde::Serialize;
use uuid::Uuid;

use crate::extract::session_body;
use crate::session::traced_action;
use crate::speech::Failure;
use crate::state::AppState;
use crate::task::Answered;

/// A media request of the REST surface: the action's `data`, checked, and the session to run in.
#[derive(Debug, Clone)]
pub struct MediaInput<P> {
    /// Run in this session (claimed or checked like `POST /chat`'s); a new one when absent.
    pub session_id: Option<Uuid>,
    /// The payload, checked with the worker's rules.
    pub payload: P,
}

impl<P: Payload + Serialize> MediaInput<P> {
    /// A body that is a payload `P` plus an optional `session_id`, refused (400, naming the
    /// field) when the worker would refuse its shape or ranges.
    pub fn parse(body: &[u8]) -> Result<Self, AppError> {
        let (session_id, data) = session_body(body)?;
        let payload = P::parse(&data).map_err(|e| AppError::BadRequest(e.0))?;
        Ok(Self {
            session_id,
            payload,
        })
    }
}

fn to_data(payload: &impl Serialize) -> Result<serde_json::Value, AppError> {
    serde_json::to_value(payload)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("media payload: {e}")))
}

/// Publishes `media.image.generate` with `payload` (checked) in `session_id` (owned by the
/// caller: claim it first) and waits up to `CHAT_TIMEOUT_SECS` for the images: the
/// `text_completed` data (`images`, `model`, `provider`, `placeholder`, `revised_prompt`) and
/// usage, or the task's failure. A caller that goes away cancels the task.
pub async fn generate_image(
    state: &AppState,
    claims: &Claims,
    session_id: Uuid,
    payload: &ImagePayload,
) -> Result<Result<Answered, Failure>, AppError> {
    payload.validate().map_err(|e| AppError::BadRequest(e.0))?;
    crate::task::answer(state, claims, session_id, GENERATE_IMAGE, to_data(payload)?).await
}

/// What `POST /video/generate` and `POST /video/extend` answer (202).
#[derive(Debug, Clone, Serialize)]
pub struct VideoJob {
    /// The task: the id of the job's events and of its status.
    pub task_id: Uuid,
    /// The session whose response stream carries its events (`resume` it on the WebSocket).
    pub session_id: Uuid,
    /// `processing`.
    pub status: &'static str,
    /// Where its state can be polled: `GET /video/{task_id}`.
    pub status_url: String,
    /// Its events as Server-Sent Events: `GET /video/{task_id}/events`.
    pub events_url: String,
    /// The chat WebSocket, where a `resume` of `session_id` follows its progress.
    pub websocket_url: String,
}

/// A video action to start: which one, and its checked `data`.
#[derive(Debug, Clone)]
pub enum VideoAction {
    /// `media.video.generate`.
    Generate(VideoPayload),
    /// `media.video.extend`.
    Extend(ExtendPayload),
}

/// Publishes a video action in `session_id` (owned by the caller: claim it first) as a job
/// followed by its task id, and answers where to follow it; `base` is where the links point
/// (`http://host`). Nothing waits for the video: a client polls, follows the events, or resumes
/// the session.
pub async fn start_video(
    state: &AppState,
    claims: &Claims,
    session_id: Uuid,
    video: &VideoAction,
    base: &str,
) -> Result<VideoJob, AppError> {
    let (action_type, data) = match video {
        VideoAction::Generate(p) => {
            p.validate().map_err(|e| AppError::BadRequest(e.0))?;
            (GENERATE_VIDEO, to_data(p)?)
        }
        VideoAction::Extend(p) => {
            p.validate().map_err(|e| AppError::BadRequest(e.0))?;
            (EXTEND_VIDEO, to_data(p)?)
        }
    };
    let (action, span) = traced_action(action_type, claims, session_id, data);
    crate::jobs::publish(state, &action).await?;
    span.in_scope(|| tracing::info!("video job published"));
    let task_id = action.task_id;
    Ok(VideoJob {
        task_id,
        session_id,
        status: "processing",
        status_url: format!("{base}/video/{task_id}"),
        events_url: format!("{base}/video/{task_id}/events"),
        websocket_url: format!("{}/chat/ws", crate::links::websocket_base(base)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused<P: Payload + Serialize + std::fmt::Debug>(body: serde_json::Value) -> String {
        match MediaInput::<P>::parse(body.to_string().as_bytes()) {
            Err(AppError::BadRequest(m)) => m,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_body_is_the_payload_and_a_session() {
        let session = Uuid::now_v7();
        let input = MediaInput::<ImagePayload>::parse(
            json!({"prompt": "a cat", "n": 2, "save_to_db": false, "session_id": session})
                .to_string()
                .as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(input.session_id, Some(session));
        assert_eq!(input.payload.n, Some(2));
        assert!(!input.payload.save);
        let data = serde_json::to_value(&input.payload).unwrap_or_default();
        assert!(data.get("session_id").is_none(), "{data}");
    }

    #[test]
    fn refusals_name_the_field() {
        assert!(refused::<ImagePayload>(json!({})).contains("prompt"));
        assert!(refused::<ImagePayload>(json!({"prompt": "x", "n": 11})).starts_with("n "));
        assert!(refused::<ImagePayload>(json!({"prompt": "x", "n": "two"})).starts_with("n: "));
        assert!(
            refused::<ImagePayload>(json!({"prompt": "x", "session_id": 1})).contains("session_id")
        );
        assert!(
            refused::<VideoPayload>(json!({"prompt": "x", "duration_secs": 0}))
                .contains("duration_secs")
        );
        assert!(refused::<ExtendPayload>(json!({"prompt": "x"})).contains("video_id"));
        assert!(refused::<ImagePayload>(json!(["x"])).contains("JSON object"));
    }
}
