//! The provider simulator's request log (`GET /_sim/requests`), matched to clients by the marker
//! each prompt starts with.

use std::collections::HashMap;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;

/// What the simulator recorded about one request.
#[derive(Debug, Clone, Deserialize)]
pub struct SimRecord {
    /// The JSON request body.
    #[serde(default)]
    pub body: Value,
    /// When it arrived, µs since the Unix epoch.
    #[serde(default)]
    pub received_at_unix_us: Option<u64>,
    /// When the client's close was seen, µs since the Unix epoch.
    #[serde(default)]
    pub closed_at_unix_us: Option<u64>,
    /// The client hung up before the reply was complete.
    #[serde(default)]
    pub client_closed: bool,
    /// Content chunks handed to the connection.
    #[serde(default)]
    pub chunks_sent: u64,
    /// The whole reply went out.
    #[serde(default)]
    pub finished: bool,
    /// Text-to-speech: the text each request (or ElevenLabs WebSocket session) asked to speak.
    #[serde(default)]
    pub texts: Vec<String>,
    /// When it arrived, ms since the simulator started.
    #[serde(default)]
    pub received_at_ms: Option<u64>,
    /// When each paced unit (text chunk, audio chunk) went out, ms since the simulator started.
    #[serde(default)]
    pub unit_sent_at_ms: Vec<u64>,
}

impl SimRecord {
    /// The marker of the request's last user message (`bench <marker> …`), or of the text a
    /// text-to-speech request speaks (OpenAI's `input`, else the first text received).
    pub fn marker(&self) -> Option<String> {
        if let Some(input) = self.body.get("input").and_then(Value::as_str) {
            return marker_of(input);
        }
        let Some(messages) = self.body.get("messages").and_then(Value::as_array) else {
            return self.texts.first().and_then(|t| marker_of(t));
        };
        let last_user = messages.iter().rev().find(|m| m["role"] == "user")?;
        let text = match &last_user["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            _ => return None,
        };
        marker_of(&text)
    }

    /// When the first paced unit went out, µs since the Unix epoch (ms resolution: the
    /// simulator records units in ms since its start).
    pub fn first_unit_unix_us(&self) -> Option<u64> {
        let received = self.received_at_unix_us?;
        let offset_ms = self
            .unit_sent_at_ms
            .first()?
            .checked_sub(self.received_at_ms?)?;
        Some(received + offset_ms * 1000)
    }
}

/// `marker` of a text that starts `bench <marker> …`.
fn marker_of(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    (words.next() == Some("bench"))
        .then(|| words.next().map(str::to_owned))
        .flatten()
}

/// Every record, keyed by marker (the first record wins when a request was retried).
pub async fn records_by_marker(
    http: &reqwest::Client,
    sim: &str,
) -> anyhow::Result<HashMap<String, SimRecord>> {
    let records: Vec<SimRecord> = http
        .get(format!("{sim}/_sim/requests"))
        .send()
        .await
        .context("GET /_sim/requests")?
        .error_for_status()?
        .json()
        .await
        .context("decoding /_sim/requests")?;
    let mut by_marker = HashMap::new();
    for r in records {
        if let Some(m) = r.marker() {
            by_marker.entry(m).or_insert(r);
        }
    }
    Ok(by_marker)
}
