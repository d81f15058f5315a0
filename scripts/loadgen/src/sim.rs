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
}

impl SimRecord {
    /// The marker of the request's last user message (`bench <marker> …`).
    pub fn marker(&self) -> Option<String> {
        let messages = self.body.get("messages")?.as_array()?;
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
        let mut words = text.split_whitespace();
        (words.next() == Some("bench"))
            .then(|| words.next().map(str::to_owned))
            .flatten()
    }
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
