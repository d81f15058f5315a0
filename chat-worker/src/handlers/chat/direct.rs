//! Audio given to the chat model as it is (a voice turn with `audio.direct`): the recording
//! (`audio_base64`, or `key` read from the tenant's storage) or the live audio of the task's
//! audio stream, read to its end and wrapped as WAV, becomes one OpenAI `input_audio` content
//! part of the user's message (`{"type":"input_audio","input_audio":{"data","format"}}`), which
//! each provider passes on in its own form (Gemini: an `inlineData` part).
//!
//! The chat history keeps no audio: the user's message is stored with a marker such as
//! `[audio: 3.2 s wav]` after the prompt's text ([`describe`]).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use common::Bus;
use common::audio::{WAV_HEADER_LEN, sniff_format, wav};
use common::events::ErrorData;
use common::live_audio::{self, Piece};
use common::payloads::chat::ChatAudio;
use common::payloads::stt::FORMATS;
use common::storage::{Storage, StorageError};
use common::worker::Task;

/// The most audio a direct turn takes, bytes: Gemini takes at most 20 MB of inline data per
/// request, and base64 makes 14 MiB into 18.7 MB.
pub const MAX_AUDIO_BYTES: usize = 14 * 1024 * 1024;

/// Where a direct turn's audio comes from.
pub struct AudioSource {
    /// Stored recordings (`key`); `None` when this process has no usable storage settings.
    storage: Option<Storage>,
    bus: Bus,
    /// The longest wait for the next frame of live audio.
    live_idle: Duration,
}

/// What came of reading the audio.
#[derive(Debug)]
pub enum Loaded {
    /// The `input_audio` content part.
    Part(Value),
    /// The audio cannot be used; the client is told this (stage `audio`).
    Refused(ErrorData),
    /// The task was cancelled while the audio was read.
    Cancelled,
}

fn refused(code: &str, message: impl Into<String>, retryable: bool) -> Loaded {
    Loaded::Refused(ErrorData::new("audio", code, message, retryable))
}

impl AudioSource {
    /// A source reading stored files from `storage` and live audio from `bus`.
    pub fn new(storage: Option<Storage>, bus: Bus, live_idle: Duration) -> Self {
        Self {
            storage,
            bus,
            live_idle,
        }
    }

    /// The voice turn's audio as an `input_audio` part.
    pub async fn load(&self, task: &Task, audio: &ChatAudio) -> Loaded {
        let read = if audio.live {
            self.live(task).await
        } else {
            self.recorded(task, audio).await
        };
        let (bytes, format) = match read {
            Ok(read) => read,
            Err(loaded) => return loaded,
        };
        let (bytes, format) = if format == "pcm" {
            // Validated: pcm (and so live audio) comes with its sample rate.
            let rate = audio.sample_rate.unwrap_or(16_000);
            (wav(&bytes, rate), "wav".to_owned())
        } else {
            (bytes, format)
        };
        Loaded::Part(json!({
            "type": "input_audio",
            "input_audio": {"data": STANDARD.encode(&bytes), "format": format},
        }))
    }

    /// A recording: the tenant's stored file, or the audio carried in the action.
    async fn recorded(&self, task: &Task, audio: &ChatAudio) -> Result<(Vec<u8>, String), Loaded> {
        let (bytes, ext) = match (&audio.key, &audio.audio_base64) {
            (Some(key), _) => {
                let Some(storage) = &self.storage else {
                    return Err(refused(
                        "storage_unavailable",
                        "stored audio cannot be read here (the chat-worker has no storage)",
                        false,
                    ));
                };
                let object =
                    storage
                        .get(task.action.tenant_id, key)
                        .await
                        .map_err(|e| match e {
                            StorageError::NotFound | StorageError::Invalid(_) => {
                                refused("not_found", "no such file", false)
                            }
                            e => {
                                tracing::warn!(error = %e, "recording not read");
                                refused("storage_unavailable", "the file could not be read", true)
                            }
                        })?;
                let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
                (object.bytes.to_vec(), ext)
            }
            (None, Some(b64)) => {
                let bytes = STANDARD
                    .decode(b64)
                    .map_err(|_| refused("invalid_audio", "audio_base64 is not base64", false))?;
                (bytes, None)
            }
            (None, None) => return Err(refused("invalid_audio", "no audio", false)),
        };
        if bytes.len() > MAX_AUDIO_BYTES {
            return Err(too_long());
        }
        let format = audio
            .format
            .clone()
            .or(ext.filter(|e| FORMATS.contains(&e.as_str())))
            .or_else(|| sniff_format(&bytes).map(str::to_owned))
            .ok_or_else(|| {
                refused(
                    "unsupported_format",
                    "the audio's format is unknown: name it in format",
                    false,
                )
            })?;
        Ok((bytes, format))
    }

    /// Live audio: the task's audio stream read until its end (16-bit PCM).
    async fn live(&self, task: &Task) -> Result<(Vec<u8>, String), Loaded> {
        let action = &task.action;
        let key = self
            .bus
            .names()
            .audio_input_stream(action.session_id, action.task_id);
        let mut frames =
            live_audio::follow(self.bus.clone(), key, self.live_idle, task.cancel.clone());
        let mut pcm = Vec::new();
        loop {
            match frames.recv().await {
                Some(Piece::Audio(frame)) => {
                    pcm.extend_from_slice(&frame);
                    if pcm.len() > MAX_AUDIO_BYTES {
                        return Err(too_long());
                    }
                }
                Some(Piece::End(reason)) => match reason.as_str() {
                    "idle" => {
                        return Err(refused(
                            "audio_timeout",
                            format!("no audio arrived for {} s", self.live_idle.as_secs().max(1)),
                            false,
                        ));
                    }
                    "unavailable" => {
                        return Err(refused(
                            "bus_unavailable",
                            "the live audio could not be read",
                            true,
                        ));
                    }
                    // Live audio cannot be resumed: nobody is left to hear an answer to half of it
                    // (the gateway cancels such a task too; this is for other writers).
                    "disconnected" => {
                        return Err(refused(
                            "audio_disconnected",
                            "the client went away while it spoke",
                            false,
                        ));
                    }
                    // `ended`.
                    _ => break,
                },
                // The follower stops without an end only on the task's cancel.
                None => return Err(Loaded::Cancelled),
            }
        }
        if pcm.is_empty() {
            return Err(refused(
                "no_audio",
                "the live audio ended before any arrived",
                false,
            ));
        }
        Ok((pcm, "pcm".to_owned()))
    }
}

fn too_long() -> Loaded {
    refused(
        "audio_too_long",
        format!("the audio is longer than {MAX_AUDIO_BYTES} bytes"),
        false,
    )
}

/// What an `input_audio` part holds, for the history: its format, size and, for WAV, how long it
/// plays (from the header's byte rate, without decoding the whole base64).
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    /// `wav`, `mp3`, …
    pub format: String,
    /// Bytes of audio (decoded).
    pub bytes: usize,
    /// Seconds, where the format tells.
    pub duration_s: Option<f64>,
}

impl Described {
    /// The marker the history keeps in the message's text: `[audio: 3.2 s wav]`, or the size
    /// where the length is unknown (`[audio: 48 KB mp3]`).
    pub fn marker(&self) -> String {
        match self.duration_s {
            Some(secs) => format!("[audio: {secs:.1} s {}]", self.format),
            None => format!("[audio: {} KB {}]", self.bytes.div_ceil(1024), self.format),
        }
    }
}

/// Describes an `input_audio` content part; `None` for any other part.
pub fn describe(part: &Value) -> Option<Described> {
    if part.get("type").and_then(Value::as_str) != Some("input_audio") {
        return None;
    }
    let audio = &part["input_audio"];
    let data = audio["data"].as_str().unwrap_or_default();
    let format = audio["format"].as_str().unwrap_or("audio").to_owned();
    let padding = data.bytes().rev().take_while(|b| *b == b'=').count();
    let bytes = (data.len() / 4 * 3).saturating_sub(padding);
    let header = data.get(..64).and_then(|h| STANDARD.decode(h).ok());
    let duration_s = header
        .filter(|h| h.starts_with(b"RIFF") && h.get(8..12) == Some(b"WAVE"))
        .and_then(|h| Some(u32::from_le_bytes(h.get(28..32)?.try_into().ok()?)))
        .filter(|rate| *rate > 0)
        .map(|rate| bytes.saturating_sub(WAV_HEADER_LEN) as f64 / f64::from(rate));
    Some(Described {
        format,
        bytes,
        duration_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_becomes_a_wav_the_history_can_measure() {
        // 3.2 s of 16 kHz 16-bit mono.
        let pcm = vec![0u8; 102_400];
        let file = wav(&pcm, 16_000);
        assert_eq!(file.len(), 44 + 102_400);
        assert_eq!(sniff_format(&file), Some("wav"));
        assert_eq!(&file[40..44], &102_400u32.to_le_bytes());
        let part = json!({"type": "input_audio",
            "input_audio": {"data": STANDARD.encode(&file), "format": "wav"}});
        let described = describe(&part).unwrap();
        assert_eq!(described.bytes, file.len());
        assert_eq!(described.marker(), "[audio: 3.2 s wav]");
    }

    #[test]
    fn other_audio_is_described_by_its_size() {
        let part = json!({"type": "input_audio",
            "input_audio": {"data": STANDARD.encode(vec![0xffu8; 5000]), "format": "mp3"}});
        assert_eq!(describe(&part).unwrap().marker(), "[audio: 5 KB mp3]");
        assert!(describe(&json!({"type": "text", "text": "hi"})).is_none());
    }
}
