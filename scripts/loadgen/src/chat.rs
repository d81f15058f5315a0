//! One timed chat through each path: the simulator directly, the gateway's `/v1/chat/completions`
//! (both OpenAI's streaming format), and the gateway WebSocket.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::ws::{self, ServerEvent, Ws};

/// Which path a chat takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// The simulator's own `/v1/chat/completions`: the baseline.
    Direct,
    /// The gateway WebSocket `/chat/ws`.
    Ws,
    /// The gateway's OpenAI-compatible `/v1/chat/completions`.
    Openai,
}

/// Timings of one chat, measured from the moment the request was sent.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    /// Wall clock at send, µs since the epoch (to line up with other processes' records).
    pub sent_unix_us: u64,
    /// To the first content chunk.
    pub ttft: Option<Duration>,
    /// To the end: `[DONE]`, or `complete` on the WebSocket.
    pub total: Option<Duration>,
    /// WebSocket: to `text_completed` (the answer is whole; `complete` follows after the
    /// history write).
    pub text_done: Option<Duration>,
    /// Content chunks received.
    pub chunks: u64,
    /// How it ended: `ok`, or an error code.
    pub outcome: String,
    /// WebSocket: stored-at milliseconds (from event ids) of milestones, for breakdowns.
    pub marks: Marks,
}

/// Redis-side times of a WebSocket task's milestones (ms since the epoch, from event ids), and
/// when the client saw the first chunk.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    /// `working`: a worker started the task.
    pub working: Option<u64>,
    /// `model_in_use`: history written and read, the provider is about to be called.
    pub model_in_use: Option<u64>,
    /// The first `text_chunk` was stored.
    pub first_chunk: Option<u64>,
    /// The client received the first chunk, µs since the epoch.
    pub first_chunk_seen_unix_us: Option<u64>,
    /// `text_completed` was stored.
    pub text_completed: Option<u64>,
    /// `complete` was stored.
    pub complete: Option<u64>,
}

/// Microseconds since the Unix epoch now.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A prompt of `words` words that starts with a unique marker, so the simulator's request log
/// can be matched to the client's record.
pub fn prompt(marker: &str, words: usize) -> String {
    let mut p = format!("bench {marker}");
    for i in 0..words.saturating_sub(2) {
        p.push_str(if i % 2 == 0 { " lorem" } else { " ipsum" });
    }
    p
}

/// A streamed OpenAI chat completion at `url` (…/v1/chat/completions), timed.
pub async fn openai_stream(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
    model: &str,
    prompt: &str,
    timeout: Duration,
) -> Timing {
    let mut timing = Timing {
        sent_unix_us: unix_us(),
        ..Timing::default()
    };
    let start = Instant::now();
    let body = json!({
        "model": model,
        "stream": true,
        "messages": [{"role": "user", "content": prompt}],
    });
    let run = async {
        let response = http
            .post(url)
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .context("request")?;
        let status = response.status();
        if !status.is_success() {
            bail!("http_{}", status.as_u16());
        }
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| anyhow::anyhow!("stream: {e}"))?;
            if event.data == "[DONE]" {
                timing.total = Some(start.elapsed());
                return Ok(());
            }
            let chunk: Value = serde_json::from_str(&event.data).context("chunk is not JSON")?;
            if chunk.get("error").is_some() {
                bail!("stream_error");
            }
            let content = chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default();
            if !content.is_empty() {
                timing.chunks += 1;
                if timing.ttft.is_none() {
                    timing.ttft = Some(start.elapsed());
                }
            }
        }
        bail!("no_done")
    };
    timing.outcome = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(e)) => short_error(&e),
        Err(_) => "timeout".into(),
    };
    timing
}

/// A chat on an open WebSocket (`message` is the `chat` message), timed until its `complete`.
/// `on_event` sees every event of the task with the timing so far; what it returns is sent
/// (e.g. a `cancel`).
pub async fn ws_chat<F>(
    socket: &mut Ws,
    message: &Value,
    timeout: Duration,
    mut on_event: F,
) -> Timing
where
    F: FnMut(&ServerEvent, &Timing) -> Option<Value>,
{
    let mut timing = Timing {
        sent_unix_us: unix_us(),
        ..Timing::default()
    };
    let start = Instant::now();
    let run = async {
        ws::send(socket, message).await?;
        let mut task: Option<String> = None;
        let mut error: Option<String> = None;
        loop {
            let Some(event) = ws::next_event(socket).await? else {
                bail!("closed");
            };
            // Gateway-side errors (no task) answer the chat itself: it was refused.
            if event.kind == "error" && event.task_id.is_none() {
                bail!("{}", event.error_code().unwrap_or("error"));
            }
            if task.is_none() {
                task.clone_from(&event.task_id);
            }
            if event.task_id.is_some() && event.task_id != task {
                continue;
            }
            let at = event.stored_at_ms();
            match event.kind.as_str() {
                "working" => timing.marks.working = timing.marks.working.or(at),
                "model_in_use" => timing.marks.model_in_use = timing.marks.model_in_use.or(at),
                "text_chunk" => {
                    timing.chunks += 1;
                    if timing.ttft.is_none() {
                        timing.ttft = Some(start.elapsed());
                        timing.marks.first_chunk = at;
                        timing.marks.first_chunk_seen_unix_us = Some(unix_us());
                    }
                }
                "text_completed" => {
                    timing.text_done = Some(start.elapsed());
                    timing.marks.text_completed = at;
                }
                "error" => {
                    error.get_or_insert_with(|| event.error_code().unwrap_or("error").to_owned());
                }
                "complete" => {
                    timing.total = Some(start.elapsed());
                    timing.marks.complete = at;
                    return Ok(error);
                }
                _ => {}
            }
            if let Some(reply) = on_event(&event, &timing) {
                ws::send(socket, &reply).await?;
            }
        }
    };
    timing.outcome = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(None)) => "ok".into(),
        Ok(Ok(Some(code))) => code,
        Ok(Err(e)) => short_error(&e),
        Err(_) => "timeout".into(),
    };
    timing
}

/// A short, stable error label for counting (`http_502`, `timeout`, `closed`, …).
pub fn short_error(e: &anyhow::Error) -> String {
    let text = e.to_string();
    let label: String = text.chars().take_while(|c| *c != ':').take(40).collect();
    label.trim().replace(' ', "_")
}
