//! Client-side helpers: requests shaped like an OpenAI client's, and an incremental SSE reader.

// These helpers run only inside tests, where a panic is how a failure is reported; clippy's
// test exemption does not reach them because they are not `#[test]` functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use provider_sim::{SimConfig, Simulator};
use serde_json::{Value, json};

pub const API_KEY: &str = "sk-sim-test";

pub fn client() -> reqwest::Client {
    // An HTTP(S)_PROXY in the environment must not divert loopback traffic.
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build reqwest client")
}

pub async fn start(config: SimConfig) -> Simulator {
    Simulator::start(config).await.expect("start simulator")
}

pub fn config(chunks: usize, chunk_interval_ms: u64) -> SimConfig {
    SimConfig {
        chunks,
        chunk_interval: Duration::from_millis(chunk_interval_ms),
        ..SimConfig::default()
    }
}

/// A chat request with a 3-word system prompt and a 4-word user message (7 prompt words).
pub fn chat_body(stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello to me"}
        ]
    })
}

pub async fn post_chat(sim: &Simulator, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", sim.base_url()))
        .bearer_auth(API_KEY)
        .json(body)
        .send()
        .await
        .expect("send chat request")
}

/// Reads `data:` payloads one event at a time, as an SSE client would.
pub struct SseReader {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event's data; `Ok(None)` on a clean end of body, `Err` if the body failed.
    pub async fn next(&mut self) -> Result<Option<String>, reqwest::Error> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Ok(Some(data));
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                Some(Err(err)) => return Err(err),
                None => {
                    assert!(
                        self.buffer.is_empty(),
                        "partial event at end: {:?}",
                        self.buffer
                    );
                    return Ok(None);
                }
            }
        }
    }

    /// Every remaining event's data, failing the test if the body does not end cleanly.
    pub async fn all(mut self) -> Vec<String> {
        let mut events = Vec::new();
        while let Some(data) = self.next().await.expect("stream body read") {
            events.push(data);
        }
        events
    }
}

pub fn json_of(data: &str) -> Value {
    serde_json::from_str(data).unwrap_or_else(|e| panic!("event is not JSON ({e}): {data}"))
}

/// Concatenated `delta.content` of the chunks.
pub fn content_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// One server-sent event as a spec-compliant client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if the event had one.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        json_of(&self.data)
    }
}

/// End of the first event in `buffer` and the length of its blank-line separator, accepting
/// every line ending the SSE spec allows.
fn event_end(buffer: &str) -> Option<(usize, usize)> {
    ["\r\n\r\n", "\n\n", "\r\r"]
        .iter()
        .filter_map(|sep| buffer.find(sep).map(|at| (at, sep.len())))
        .min()
}

fn parse_event(block: &str) -> SseEvent {
    let mut event = None;
    let mut data = Vec::new();
    for line in block.split("\r\n").flat_map(|l| l.split(['\n', '\r'])) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    SseEvent {
        event,
        data: data.join("\n"),
    }
}

/// Every event of a complete SSE body.
pub fn parse_events(mut body: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while let Some((end, sep)) = event_end(body) {
        events.push(parse_event(&body[..end]));
        body = &body[end + sep..];
    }
    assert!(body.is_empty(), "partial event at end: {body:?}");
    events
}

/// Reads events one at a time, with their `event:` names, as an SSE client would.
pub struct EventReader {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl EventReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event; `Ok(None)` on a clean end of body, `Err` if the body failed.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, reqwest::Error> {
        loop {
            if let Some((end, sep)) = event_end(&self.buffer) {
                let block: String = self.buffer.drain(..end + sep).collect();
                return Ok(Some(parse_event(&block[..end])));
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                Some(Err(err)) => return Err(err),
                None => {
                    assert!(
                        self.buffer.is_empty(),
                        "partial event at end: {:?}",
                        self.buffer
                    );
                    return Ok(None);
                }
            }
        }
    }

    /// Events until the body fails, and the failure; panics if the body ends cleanly.
    pub async fn until_failure(mut self) -> (Vec<SseEvent>, reqwest::Error) {
        let mut events = Vec::new();
        loop {
            match self.next().await {
                Ok(Some(event)) => events.push(event),
                Ok(None) => panic!("body ended cleanly after {events:?}"),
                Err(err) => return (events, err),
            }
        }
    }
}

/// A simulator whose speech lasts 60 ms per character, cut into 100 ms chunks `interval_ms` apart.
pub fn speech_config(interval_ms: u64) -> SimConfig {
    SimConfig {
        speech_per_char: Duration::from_millis(60),
        audio_chunk: Duration::from_millis(100),
        chunk_interval: Duration::from_millis(interval_ms),
        ..SimConfig::default()
    }
}

/// Samples of `chars` characters of speech at `rate`, 60 ms each, at speed `speed`.
pub fn speech_samples(chars: usize, rate: u32, speed: f64) -> usize {
    (chars as f64 * 0.060 / speed * f64::from(rate)).round() as usize
}

/// 16-bit little-endian samples.
pub fn pcm_samples(bytes: &[u8]) -> Vec<i16> {
    assert_eq!(bytes.len() % 2, 0, "PCM of odd length");
    bytes
        .chunks_exact(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]))
        .collect()
}

/// Checks a mono 16-bit PCM WAV file's header against its data; returns the rate and samples.
pub fn parse_wav(bytes: &[u8]) -> (u32, Vec<i16>) {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
    assert!(bytes.len() >= 44, "too short for a WAV header");
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(u32_at(4) as usize, bytes.len() - 8, "RIFF size");
    assert_eq!(&bytes[8..12], b"WAVE");
    assert_eq!(&bytes[12..16], b"fmt ");
    assert_eq!(u32_at(16), 16, "fmt chunk size");
    assert_eq!(u16_at(20), 1, "PCM");
    assert_eq!(u16_at(22), 1, "mono");
    let rate = u32_at(24);
    assert_eq!(u32_at(28), rate * 2, "byte rate");
    assert_eq!(u16_at(32), 2, "block align");
    assert_eq!(u16_at(34), 16, "bits per sample");
    assert_eq!(&bytes[36..40], b"data");
    assert_eq!(u32_at(40) as usize, bytes.len() - 44, "data size");
    (rate, pcm_samples(&bytes[44..]))
}

/// The tone is audible: some sample reaches a sixth of full scale.
pub fn assert_audible(samples: &[i16]) {
    let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(peak > 5000, "peak {peak}");
}

/// Frames of an MPEG Layer III stream with a constant frame length: (frame count, samples each).
pub fn mp3_frames(bytes: &[u8], frame_len: usize, samples_per_frame: usize) -> (usize, usize) {
    assert!(!bytes.is_empty());
    assert_eq!(bytes.len() % frame_len, 0, "whole frames");
    for frame in bytes.chunks(frame_len) {
        assert_eq!(frame[0], 0xFF, "frame sync");
        assert_eq!(frame[1] & 0xE0, 0xE0, "frame sync");
        assert_eq!(frame[1] & 0x06, 0x02, "layer III");
    }
    (bytes.len() / frame_len, samples_per_frame)
}

/// Base64 of audio as the providers send it.
pub fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("not base64 ({e}): {text:.40}"))
}

/// The simulator's send times are in order and at least `gap` apart.
pub fn assert_paced(sent: &[std::time::Instant], gap: Duration) {
    for pair in sent.windows(2) {
        assert!(pair[1] >= pair[0] + gap, "{:?}", pair[1] - pair[0]);
    }
}

/// A mono 16-bit PCM WAV file holding `millis` milliseconds of silence at `rate`.
pub fn wav(rate: u32, millis: u64) -> Vec<u8> {
    let data = pcm_silence(rate, millis);
    let mut bytes = Vec::with_capacity(44 + data.len());
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(data.len() as u32 + 36).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&data);
    bytes
}

/// `millis` milliseconds of 16-bit mono silence at `rate`, without a header.
pub fn pcm_silence(rate: u32, millis: u64) -> Vec<u8> {
    vec![0; (u64::from(rate) * millis / 1000) as usize * 2]
}

/// The default transcript of `SimConfig`.
pub const TRANSCRIPT: &str = "The quick brown fox jumps over the lazy dog.";

/// A simulator whose speech-to-text replies send their units `interval_ms` apart.
pub fn stt_config(interval_ms: u64) -> SimConfig {
    SimConfig {
        chunk_interval: Duration::from_millis(interval_ms),
        ..SimConfig::default()
    }
}
