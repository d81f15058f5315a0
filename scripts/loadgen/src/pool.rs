//! A set of clients of one path, opened ahead of a measurement, and one timed chat on one of them.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use uuid::Uuid;

use crate::chat::{self, Path, Timing};
use crate::context::Ctx;
use crate::ws::{self, Ws};

/// One client: an open WebSocket, or a handle on the shared HTTP client.
pub enum Client {
    /// An authenticated WebSocket with its session.
    Ws(Box<Ws>),
    /// HTTP (the shared `reqwest` pool).
    Http,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Client::Ws(_) => "Client::Ws",
            Client::Http => "Client::Http",
        })
    }
}

/// Opens `n` clients of `path`, `parallelism` at a time; failures are counted by kind.
pub async fn open(
    ctx: &Ctx,
    path: Path,
    n: usize,
    parallelism: usize,
) -> (Vec<Client>, BTreeMap<String, u64>) {
    let mut errors = BTreeMap::new();
    if path != Path::Ws {
        return ((0..n).map(|_| Client::Http).collect(), errors);
    }
    let url = ctx.ws_url_with(&ctx.token);
    let results: Vec<anyhow::Result<(Ws, String)>> = futures::stream::iter(0..n)
        .map(|_| {
            let url = url.clone();
            async move { ws::connect(&url, Duration::from_secs(30)).await }
        })
        .buffer_unordered(parallelism.max(1))
        .collect()
        .await;
    let mut clients = Vec::with_capacity(n);
    for r in results {
        match r {
            Ok((socket, _)) => clients.push(Client::Ws(Box::new(socket))),
            Err(e) => *errors.entry(chat::short_error(&e)).or_default() += 1,
        }
    }
    (clients, errors)
}

/// One timed chat on `client`; the prompt starts with a fresh marker, returned with the timing.
/// `settings` go with a WebSocket chat (`settings.semantic`, ...).
pub async fn chat(
    ctx: &Ctx,
    client: &mut Client,
    path: Path,
    prompt_words: usize,
    settings: Option<&serde_json::Value>,
    timeout: Duration,
) -> (String, Timing) {
    let marker = Uuid::new_v4().simple().to_string();
    let prompt = chat::prompt(&marker, prompt_words);
    let model = &ctx.common.model;
    let timing = match (path, client) {
        (Path::Ws, Client::Ws(socket)) => {
            let mut message = ws::chat_message(&prompt, model);
            if let Some(settings) = settings {
                message["settings"] = settings.clone();
            }
            chat::ws_chat(socket, &message, timeout, |_, _| None).await
        }
        (Path::Direct, _) => {
            let url = format!("{}/v1/chat/completions", ctx.sim());
            chat::openai_stream(&ctx.http, &url, "sk-bench", model, &prompt, timeout).await
        }
        (Path::Openai, _) => {
            let url = format!("{}/v1/chat/completions", ctx.gateway());
            chat::openai_stream(&ctx.http, &url, &ctx.token, model, &prompt, timeout).await
        }
        (Path::Ws, Client::Http) => Timing {
            outcome: "no_socket".into(),
            ..Timing::default()
        },
    };
    (marker, timing)
}

/// Counts outcomes other than `ok`.
pub fn error_counts<'a>(timings: impl IntoIterator<Item = &'a Timing>) -> BTreeMap<String, u64> {
    let mut errors = BTreeMap::new();
    for t in timings {
        if t.outcome != "ok" {
            *errors.entry(t.outcome.clone()).or_default() += 1;
        }
    }
    errors
}
