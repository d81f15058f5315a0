//! `stt.transcription.stream`: audio transcribed while the client speaks. The audio arrives on
//! the task's audio stream (`common::live_audio`, written by the gateway from the WebSocket's
//! binary frames); results go out as `transcription` events, interim and final, and the whole
//! text as `text_completed` once the audio ends. A cancel, or a client that went away, closes the
//! provider's session at once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use common::Bus;
use common::events::{ErrorData, EventType, TextCompleted};
use common::live_audio::{self, Piece};
use common::payloads::stt::StreamPayload;
use common::worker::{Action, HandlerError, Task};

use super::transcribe::{Transcribers, provider_error, stt_error};
use crate::stt::live::{LiveInput, LiveParams};

/// How long live audio may pause (no frame at all) before it counts as ended.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest live audio transcribed, seconds.
pub const MAX_LIVE_SECS: u64 = 3600;

/// `stt.transcription.stream`.
pub struct TranscribeStream {
    transcribers: Arc<Transcribers>,
    bus: Bus,
    idle: Duration,
}

impl TranscribeStream {
    /// Transcribes with `transcribers` the audio read from `bus`.
    pub fn new(transcribers: Arc<Transcribers>, bus: Bus) -> Self {
        Self {
            transcribers,
            bus,
            idle: IDLE_TIMEOUT,
        }
    }
}

#[async_trait]
impl Action<StreamPayload> for TranscribeStream {
    async fn run(&self, task: Task, payload: StreamPayload) -> Result<(), HandlerError> {
        let events = &task.events;
        let live = match self.transcribers.pick_live(payload.provider.as_deref()) {
            Ok(l) => l,
            Err(error) => return fail(&task, &error).await,
        };
        let model = payload
            .model
            .clone()
            .unwrap_or_else(|| live.default_model());
        let params = LiveParams {
            sample_rate: payload.sample_rate,
            language: payload.language.clone(),
            model: payload.model.clone(),
            prompt: payload.prompt.clone(),
            interim: payload.interim_results,
        };
        let key = self
            .bus
            .names()
            .audio_input_stream(task.action.session_id, task.action.task_id);
        let mut audio = live_audio::follow(self.bus.clone(), key, self.idle, task.cancel.clone());
        let mut session = tokio::select! {
            () = task.cancel.cancelled() => return Ok(()),
            s = live.open(&params) => match s {
                Ok(s) => s,
                Err(e) => return fail(&task, &provider_error(&e)).await,
            },
        };
        let max_bytes = MAX_LIVE_SECS * u64::from(payload.sample_rate) * 2;
        let mut bytes = 0u64;
        let mut finals: Vec<String> = Vec::new();
        let mut finishing = false;
        loop {
            tokio::select! {
                () = task.cancel.cancelled() => return Ok(()),
                piece = audio.recv(), if !finishing => match piece {
                    Some(Piece::Audio(frame)) => {
                        bytes += frame.len() as u64;
                        if bytes > max_bytes {
                            let message = format!("live audio is limited to {MAX_LIVE_SECS} seconds");
                            return fail(&task, &stt_error("audio_too_long", message)).await;
                        }
                        if session.input.send(LiveInput::Audio(frame)).await.is_err() {
                            finishing = true;
                        }
                    }
                    Some(Piece::End(reason)) if reason == "disconnected" => {
                        tracing::info!("the client went away mid-stream; transcription stopped");
                        return Ok(());
                    }
                    Some(Piece::End(reason)) => {
                        tracing::debug!(%reason, bytes, "live audio ended");
                        let _ = session.input.send(LiveInput::Finish).await;
                        finishing = true;
                    }
                    // The reader stopped (a cancel): nothing more will come.
                    None => return Ok(()),
                },
                result = session.results.recv() => match result {
                    Some(Ok(r)) => {
                        if r.is_final {
                            finals.push(r.text.clone());
                        }
                        let data = json!({
                            "text": r.text,
                            "is_final": r.is_final,
                            "speech_final": r.speech_final,
                            "start": r.start,
                            "end": r.end,
                            "provider": live.name(),
                            "model": model,
                        });
                        events.send(EventType::Transcription, data).await?;
                    }
                    Some(Err(e)) => {
                        tracing::info!(code = e.code(), "live transcription failed");
                        return fail(&task, &provider_error(&e)).await;
                    }
                    None if finishing => break,
                    None => {
                        let e = common::provider::ProviderError::Connection(
                            "the provider ended the transcription early".into(),
                        );
                        return fail(&task, &provider_error(&e)).await;
                    }
                },
            }
        }
        let text = finals.join(" ");
        let data = json!({
            "text": text,
            "duration_s": bytes as f64 / (2.0 * f64::from(payload.sample_rate)),
            "language": payload.language,
            "provider": live.name(),
            "model": model,
        });
        let mut done = TextCompleted::new(text, json!(null), "stop");
        done.data = Some(data);
        events.text_completed(&done).await?;
        Ok(())
    }
}

/// Sends `error` and ends the task (the runtime adds what is owed and `complete`).
async fn fail(task: &Task, error: &ErrorData) -> Result<(), HandlerError> {
    task.events.error(error).await?;
    Ok(())
}
