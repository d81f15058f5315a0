//! The `chat.completion.generate` handler: plans provider and model (with fallbacks), retries
//! before the first token, streams deltas as events, reassembles tool calls, and closes the
//! upstream stream on cancel. A voice turn (`audio`) is transcribed first, or, with
//! `audio.direct`, its audio is given to the model as part of the prompt.

mod direct;
mod memory;
mod payload;
mod persist;
mod speech;
mod stream;
mod subtask;
mod transcribe;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use common::backoff::Backoff;
use common::events::{ErrorData, TaskEvents};
use common::llm::{Candidate, Plan, ProviderError, Providers};
use common::payloads::chat::ChatAudio;
use common::storage::Storage;
use common::worker::{Action, HandlerError, Task};
use serde_json::Value;
use sqlx::PgPool;

use crate::config::Settings;
use direct::{AudioSource, Loaded};
use memory::{Breaker, Memory, Recalled};
pub use payload::ChatPayload;
use payload::ProviderRequest;
use speech::{SpeechHalf, SpeechTimeouts};
use stream::{Progress, StreamEnd};
use subtask::Timeouts;
use transcribe::Heard;

pub use speech::callback_name as speech_callback_name;
pub use transcribe::callback_name as transcription_callback_name;

/// Streams chat completions.
pub struct ChatHandler {
    providers: Arc<Providers>,
    pool: PgPool,
    bus: common::Bus,
    speech_timeouts: SpeechTimeouts,
    stt_timeouts: Timeouts,
    audio: AudioSource,
    memory: Memory,
    history_budget: usize,
    history_max_messages: i64,
    idle_timeout: Duration,
    retries: u32,
    retry_base: Duration,
    retry_after_cap: Duration,
}

impl ChatHandler {
    /// A handler over the given providers, shared with the other handlers; `storage` holds the
    /// recordings of direct voice turns (`None`: those fail with `storage_unavailable`).
    pub fn new(
        providers: Arc<Providers>,
        pool: PgPool,
        bus: common::Bus,
        storage: Option<Storage>,
        settings: &Settings,
    ) -> Self {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        Self {
            providers,
            pool,
            audio: AudioSource::new(
                storage,
                bus.clone(),
                secs(settings.live_audio_idle_timeout_secs),
            ),
            bus,
            speech_timeouts: SpeechTimeouts {
                start: secs(settings.tts_start_timeout_secs),
                idle: secs(settings.tts_idle_timeout_secs),
            },
            stt_timeouts: Timeouts {
                start: secs(settings.stt_start_timeout_secs),
                idle: secs(settings.stt_idle_timeout_secs),
            },
            memory: Memory {
                indexing: settings.semantic_indexing_enabled,
                timeouts: Timeouts {
                    start: secs(settings.semantic_search_timeout_secs),
                    idle: secs(settings.semantic_search_timeout_secs),
                },
                budget_tokens: settings.semantic_search_context_max_tokens,
                breaker: Breaker::new(secs(settings.semantic_breaker_cool_down_secs)),
            },
            history_budget: settings.history_token_budget,
            history_max_messages: settings.history_max_messages,
            idle_timeout: Duration::from_secs(settings.provider_idle_timeout_secs.max(1)),
            retries: settings.provider_retries,
            retry_base: Duration::from_millis(settings.provider_retry_base_ms),
            retry_after_cap: Duration::from_secs(settings.provider_retry_after_cap_secs),
        }
    }

    /// How long to wait before trying again after `e` (the provider's `Retry-After` wins).
    fn retry_delay(&self, e: &ProviderError, attempt: u32) -> Duration {
        e.retry_after()
            .map(|d| d.min(self.retry_after_cap))
            .unwrap_or_else(|| Backoff::delay_for(self.retry_base, self.retry_base * 16, attempt))
    }
}

/// Where a voice turn stands once its audio was heard.
enum Voice {
    /// The prompt holds what was said (its transcript, or the audio itself): answer it.
    Ready,
    /// No answer follows: the client was told why.
    Ended,
    /// The task was cancelled meanwhile.
    Cancelled,
}

/// Sends an `error` event.
pub(crate) async fn send_error(events: &TaskEvents, error: ErrorData) -> Result<(), HandlerError> {
    events.error(&error).await?;
    Ok(())
}

#[async_trait]
impl Action<ChatPayload> for ChatHandler {
    async fn run(&self, task: Task, mut payload: ChatPayload) -> Result<(), HandlerError> {
        if let Some(audio) = payload.audio.clone() {
            // The model is checked first (direct audio: that it can hear), so nobody speaks
            // to a model that is unknown or cannot take the turn.
            if let Err(error) = self.checked_plan(&payload) {
                send_error(&task.events, error).await?;
                return Ok(());
            }
            let heard = if audio.direct {
                self.hear_directly(&task, &mut payload, &audio).await?
            } else {
                self.hear_transcribed(&task, &mut payload, &audio).await?
            };
            match heard {
                Voice::Ready => {}
                Voice::Ended => return Ok(()),
                Voice::Cancelled => {
                    // Sent here too, in case the transcription's cancel came first.
                    task.events.cancelled().await?;
                    return Ok(());
                }
            }
        }
        let semantic = payload.settings.semantic.clone().filter(|s| s.enabled);
        if let Some(semantic) = semantic
            && self.checked_plan(&payload).is_ok()
        {
            let recalled = self
                .memory
                .recall(&self.bus, &task, &mut payload, &semantic)
                .await?;
            if let Recalled::Cancelled = recalled {
                task.events.cancelled().await?;
                return Ok(());
            }
        }
        let speech = payload.settings.tts.as_ref().filter(|s| s.enabled);
        let Some(speech) = speech else {
            return self.answer(&task, payload, Progress::default()).await;
        };
        let half = SpeechHalf::start(&self.bus, &task, speech, self.speech_timeouts).await?;
        let answered = self
            .answer(&task, payload, Progress::speaking(half.feed()))
            .await;
        match answered {
            // The text is done (answered, failed or cancelled): the speech half ends next.
            Ok(()) => {
                half.finish(task.cancel.is_cancelled()).await;
                Ok(())
            }
            Err(e) => {
                half.abandon();
                Err(e)
            }
        }
    }
}

impl ChatHandler {
    /// A voice turn: the transcription's events relayed, then its transcript is the prompt
    /// (and so the user's message in the history).
    async fn hear_transcribed(
        &self,
        task: &Task,
        payload: &mut ChatPayload,
        audio: &ChatAudio,
    ) -> Result<Voice, HandlerError> {
        let heard = transcribe::transcribe(&self.bus, task, audio, self.stt_timeouts).await?;
        Ok(match heard {
            Heard::Transcript(text) => {
                payload.prompt = Some(Value::String(text));
                Voice::Ready
            }
            Heard::Nothing => Voice::Ended,
            Heard::Cancelled => Voice::Cancelled,
        })
    }

    /// Direct audio: the audio joins the prompt as an `input_audio` part, after its text.
    async fn hear_directly(
        &self,
        task: &Task,
        payload: &mut ChatPayload,
        audio: &ChatAudio,
    ) -> Result<Voice, HandlerError> {
        let part = match self.audio.load(task, audio).await {
            Loaded::Part(part) => part,
            Loaded::Refused(error) => {
                tracing::info!(code = %error.code, "direct audio refused");
                send_error(&task.events, error).await?;
                return Ok(Voice::Ended);
            }
            Loaded::Cancelled => return Ok(Voice::Cancelled),
        };
        let mut parts = match payload.prompt.take() {
            Some(Value::String(text)) => vec![serde_json::json!({"type": "text", "text": text})],
            Some(Value::Array(parts)) => parts,
            Some(other) => vec![other],
            None => Vec::new(),
        };
        parts.push(part);
        payload.prompt = Some(Value::Array(parts));
        Ok(Voice::Ready)
    }
}

impl ChatHandler {
    /// The text half: the answer streamed, and kept in the history unless `store` is false.
    async fn answer(
        &self,
        task: &Task,
        mut payload: ChatPayload,
        mut progress: Progress,
    ) -> Result<(), HandlerError> {
        let events = &task.events;
        if !payload.store {
            return self.generate(task, &payload, &mut progress).await;
        }
        // The runtime checked the session's owner before anything was written. The history is
        // read before the provider call; the user's message is written while the provider
        // answers, off the first token's path.
        let with_history = payload.messages.is_empty() && self.history_budget > 0;
        let history = if with_history {
            persist::load_history(
                &self.pool,
                &task.action,
                self.history_max_messages,
                self.history_budget,
            )
            .await
        } else {
            Vec::new()
        };
        if with_history {
            payload.messages = history;
        }
        let (turn, generated) = tokio::join!(
            persist::begin(&self.pool, &task.action, &payload, events),
            self.generate(task, &payload, &mut progress),
        );
        generated?;
        match turn? {
            Ok(turn) => {
                let (user_id, user_text) = turn.user_message();
                let saved =
                    persist::finish(&self.pool, &task.action, turn, &progress, events).await?;
                if let Some(reply) = saved
                    && progress.finish_reason() != "error"
                    && progress.finish_reason() != "cancelled"
                {
                    let messages = vec![
                        memory::indexed(user_id, "user", user_text),
                        memory::indexed(Some(reply), "assistant", progress.content().to_owned()),
                    ];
                    self.memory.index_turn(&self.bus, task, messages);
                }
                Ok(())
            }
            // Another owner stored the session between the runtime's check and the write: this
            // answer went to the asker only and is not kept.
            Err(persist::NotOwner) => send_error(events, not_found()).await,
        }
    }
}

fn not_found() -> ErrorData {
    ErrorData::new("validation", "not_found", "session not found", false)
}

impl ChatHandler {
    /// The plan for the payload: the model asked for, which must take what the payload holds
    /// (images, audio, tools), then those of its fallbacks that can take it too. The error is
    /// the client's `error` event (stage `validation`).
    fn checked_plan(&self, payload: &ChatPayload) -> Result<Plan, ErrorData> {
        let mut plan = self
            .providers
            .plan(payload.model.as_deref())
            .map_err(|e| ErrorData::new("validation", e.code(), e.to_string(), false))?;
        let first = &plan.candidates[0];
        payload
            .check_capabilities(&first.spec, &first.model)
            .map_err(|message| ErrorData::new("validation", "unsupported_input", message, false))?;
        plan.candidates
            .retain(|c| payload.check_capabilities(&c.spec, &c.model).is_ok());
        Ok(plan)
    }

    /// Plans, calls providers with retries and fallback, and streams the answer.
    async fn generate(
        &self,
        task: &Task,
        payload: &ChatPayload,
        progress: &mut Progress,
    ) -> Result<(), HandlerError> {
        let events = &task.events;
        let plan = match self.checked_plan(payload) {
            Ok(plan) => plan,
            Err(error) => {
                send_error(events, error).await?;
                return Ok(());
            }
        };

        let mut last_error: Option<ProviderError> = None;
        for candidate in &plan.candidates {
            progress.set_answered_by(&candidate.provider_name, &candidate.model);
            // Announced once per candidate, while its first request is on its way.
            let mut announce = Some(plan.note);
            for attempt in 0..=self.retries {
                match self
                    .attempt(task, candidate, payload, progress, announce.take())
                    .await?
                {
                    StreamEnd::Finished | StreamEnd::Cancelled => return Ok(()),
                    StreamEnd::Failed(e) if progress.output_sent() => {
                        // After the first token a failure is reported, never papered over.
                        return progress.provider_failed(events, &e).await;
                    }
                    StreamEnd::Failed(e) => {
                        tracing::warn!(provider = %candidate.provider_name, model = %candidate.model,
                            attempt, error = %e, "provider failed before the first token");
                        let retry = e.retryable() && attempt < self.retries;
                        let delay = self.retry_delay(&e, attempt + 1);
                        last_error = Some(e);
                        if !retry {
                            break;
                        }
                        tokio::select! {
                            () = task.cancel.cancelled() => {
                                return progress.cancelled(events).await;
                            }
                            () = tokio::time::sleep(delay) => {}
                        }
                    }
                }
            }
        }
        let e = last_error.unwrap_or(ProviderError::Connection("no provider answered".into()));
        progress.provider_failed(events, &e).await
    }
}

impl ChatHandler {
    /// One call to one provider, streamed to the client until it ends. `model_in_use` (its
    /// note), when given, is sent while the request opens: it is written before any output all
    /// the same.
    async fn attempt(
        &self,
        task: &Task,
        candidate: &Candidate,
        payload: &ChatPayload,
        progress: &mut Progress,
        model_in_use: Option<Option<&str>>,
    ) -> Result<StreamEnd, HandlerError> {
        let request = payload.request_for(candidate);
        let announced = async {
            if let Some(note) = model_in_use {
                let (provider, model) = (&candidate.provider_name, &candidate.model);
                task.events.model_in_use(provider, model, note).await?;
            }
            Ok::<(), HandlerError>(())
        };
        // A provider that never answers the request counts as a failed attempt, not a hang.
        let opened = tokio::time::timeout(self.idle_timeout, candidate.provider.stream(request));
        let started = tokio::select! {
            () = task.cancel.cancelled() => None,
            (announced, s) = async { tokio::join!(announced, opened) } => {
                announced?;
                Some(s.unwrap_or_else(|_| {
                    Err(ProviderError::Connection("the provider did not answer the request".into()))
                }))
            }
        };
        match started {
            None => {
                progress.cancelled(&task.events).await?;
                Ok(StreamEnd::Cancelled)
            }
            Some(Err(e)) => Ok(StreamEnd::Failed(e)),
            Some(Ok(stream)) => {
                progress
                    .relay(stream, &task.events, &task.cancel, self.idle_timeout)
                    .await
            }
        }
    }
}
