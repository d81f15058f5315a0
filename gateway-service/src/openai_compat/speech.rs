//! `POST /v1/audio/speech`: OpenAI's text-to-speech request as a `tts.speech.synthesize` task,
//! answered with the audio bytes as they are spoken (`stream_format` `audio`, the default) or as
//! `speech.audio.delta` events (`sse`). Which provider speaks follows from `model`: see
//! [`Route`].

mod request;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use common::auth::Claims;
use serde_json::{Value, json};

pub use request::{Route, SpeechRequest, Voice};

use super::error::OpenAiError;
use crate::speech::{Audio, Failure, SpeechTask, content_type, decode_piece};
use crate::state::AppState;

/// Interval of SSE keep-alive comments while the provider is silent.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A failure in OpenAI's format; `model` as the request named it.
fn failure(f: &Failure, model: &str) -> OpenAiError {
    match f {
        Failure::Task(error) => match f.code() {
            Some("unknown_provider") => OpenAiError::invalid_request(
                format!(
                    "The model `{model}` does not exist; use an OpenAI speech model (tts-1, \
                     tts-1-hd, gpt-4o-mini-tts), `default`, or `<provider>/<model>` ({}).",
                    error["message"].as_str().unwrap_or_default()
                ),
                Some("model"),
            )
            .code("model_not_found")
            .with_status(axum::http::StatusCode::NOT_FOUND),
            Some("provider_not_configured") => OpenAiError::from_event(error).param("model"),
            _ => OpenAiError::from_event(error),
        },
        other => other.app_error().into(),
    }
}

/// Answers a parsed request: the audio bytes, or `speech.audio.*` events.
pub async fn create(
    state: &AppState,
    claims: &Claims,
    request: &SpeechRequest,
) -> Result<Response, OpenAiError> {
    let route = Route::of(&request.model);
    // Each request is a session of its own, as with Chat Completions.
    let session_id = state.claim_session(claims, None).await?;
    let mut task =
        SpeechTask::start(state, claims, session_id, &request.payload(&route, false)).await?;
    let first = match task.first_audio().await {
        Ok(first) => first,
        Err(f)
            if matches!(route, Route::OpenAi(_)) && f.code() == Some("provider_not_configured") =>
        {
            tracing::debug!(model = %request.model, "no OpenAI key for speech; the default provider speaks");
            task = SpeechTask::start(state, claims, session_id, &request.payload(&route, true))
                .await?;
            task.first_audio()
                .await
                .map_err(|f| failure(&f, &request.model))?
        }
        Err(f) => return Err(failure(&f, &request.model)),
    };
    if request.sse {
        let characters = request.input.chars().count();
        Ok(events(task, first, characters))
    } else {
        let first = decode_piece(&first).map_err(|f| failure(&f, &request.model))?;
        let mime = content_type(task.format().unwrap_or(&request.format));
        let mut response = Body::from_stream(task.into_bytes(first)).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(mime));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }
}

/// OpenAI's `usage` of a speech: the input in estimated tokens (a token is about four
/// characters); audio is not counted in tokens here (`output_tokens` 0).
pub fn usage(characters: usize) -> Value {
    let input = characters.div_ceil(4);
    json!({"input_tokens": input, "output_tokens": 0, "total_tokens": input})
}

/// `stream_format: "sse"`: one `speech.audio.delta` per piece, then `speech.audio.done` with
/// the usage. A failure after the first piece is an `error` event, and the stream ends.
fn events(task: SpeechTask, first: String, characters: usize) -> Response {
    let delta = |audio: String| json!({"type": "speech.audio.delta", "audio": audio}).to_string();
    let body =
        futures::stream::unfold((Some(task), Some(first)), move |(task, first)| async move {
            if let Some(first) = first {
                return Some((delta(first), (task, None)));
            }
            let mut task = task?;
            let payload = match task.next_audio().await {
                Ok(Audio::Piece(audio)) => return Some((delta(audio), (Some(task), None))),
                Ok(Audio::Done(done)) => {
                    let characters = done["characters"]
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(characters);
                    json!({"type": "speech.audio.done", "usage": usage(characters)})
                }
                Err(f) => {
                    tracing::warn!(task_id = %task.task_id(), failure = ?f,
                        "speech failed after its audio started; the stream ends with an error");
                    let mut error = failure(&f, "").body();
                    error["type"] = json!("error");
                    error
                }
            };
            Some((payload.to_string(), (None, None)))
        });
    let body = futures::StreamExt::map(body, |data| {
        Ok::<_, Infallible>(SseEvent::default().data(data))
    });
    Sse::new(body)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_the_input() {
        assert_eq!(
            usage(9),
            json!({"input_tokens": 3, "output_tokens": 0, "total_tokens": 3})
        );
    }
}
