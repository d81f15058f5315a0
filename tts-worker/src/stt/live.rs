//! Live transcription: audio in as it is spoken, interim and final results out. Deepgram speaks
//! it natively (its live WebSocket); every other provider is driven per utterance
//! ([`utterances`]): the audio is cut at pauses and each utterance is transcribed as a recording.

pub mod deepgram;
pub mod utterances;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use common::provider::ProviderError;

/// What a live transcription is asked.
#[derive(Debug, Clone)]
pub struct LiveParams {
    /// Samples per second of the 16-bit little-endian mono audio.
    pub sample_rate: u32,
    /// The spoken language.
    pub language: Option<String>,
    /// The provider's model; its default when absent.
    pub model: Option<String>,
    /// Words that help, where the provider takes them.
    pub prompt: Option<String>,
    /// Send interim results.
    pub interim: bool,
}

/// What the transcription is given, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveInput {
    /// The next audio: 16-bit little-endian mono samples.
    Audio(Bytes),
    /// The audio is over: finish what was heard, then close the results.
    Finish,
}

/// A result: what was said over a stretch of the audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveResult {
    /// The words; an interim text is replaced by the next result of the same stretch.
    pub text: String,
    /// Final: this stretch's text will not change.
    pub is_final: bool,
    /// The speaker paused: an utterance ended here.
    pub speech_final: bool,
    /// Where the stretch starts, seconds from the start of the audio.
    pub start: f64,
    /// Where it ends.
    pub end: f64,
}

/// An open live transcription: audio goes into `input`, results come out of `results`, which
/// closes once every result of the audio given before [`LiveInput::Finish`] was sent (or after
/// an error, which is its last item). Dropping `input` abandons it (the upstream is closed).
pub struct LiveSession {
    /// Audio in.
    pub input: mpsc::Sender<LiveInput>,
    /// Results out.
    pub results: mpsc::Receiver<Result<LiveResult, ProviderError>>,
}

/// A provider that transcribes audio while it is spoken.
#[async_trait]
pub trait LiveTranscriber: Send + Sync {
    /// Its name in requests and events.
    fn name(&self) -> &'static str;
    /// Its model when the request names none.
    fn default_model(&self) -> String;
    /// Opens a session.
    async fn open(&self, params: &LiveParams) -> Result<LiveSession, ProviderError>;
}
