//! A task's events as Server-Sent Events (`POST /chat/stream`, `GET /video/{task_id}/events`,
//! `GET /api/v1/ingest/{job_id}/events`): `id:` the event id, `data:` the event JSON as the
//! WebSocket sends it, a keep-alive comment every 15 s, the end after the task's `complete`.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use common::error::AppError;
use futures::Stream;

use crate::hub::StreamId;
use crate::session::client_event;
use crate::task::TaskFeed;

/// The `Last-Event-ID` of a request that resumes a stream: `None` without the header, 400 when
/// it is not an event id.
pub fn last_event_id(headers: &HeaderMap) -> Result<Option<StreamId>, AppError> {
    headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|id| id.trim().parse::<StreamId>().ok())
                .ok_or_else(|| AppError::BadRequest("Last-Event-ID is not an event id".into()))
        })
        .transpose()
}

/// The response: the feed's events, ending after its `complete`, or when the gateway shuts down
/// (the client resumes elsewhere with `Last-Event-ID`).
pub fn response(feed: TaskFeed) -> Response {
    Sse::new(events(feed))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn events(feed: TaskFeed) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold(Some(feed), |feed| async move {
        let mut feed = feed?;
        let event = feed.next().await?;
        let sse = SseEvent::default()
            .id(event.entry.id.to_string())
            .data(client_event(&event.entry));
        let rest = (!event.is_complete()).then_some(feed);
        Some((Ok(sse), rest))
    })
}
