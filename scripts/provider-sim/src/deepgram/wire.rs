//! Serde shapes of Deepgram's responses, errors and WebSocket messages, in the API's field order.

use std::collections::BTreeMap;

use serde::Serialize;

/// `{"err_code", "err_msg", "request_id"}`, Deepgram's error for a refused request.
#[derive(Serialize)]
pub(super) struct ErrorBody<'a> {
    pub(super) err_code: &'a str,
    pub(super) err_msg: String,
    pub(super) request_id: &'a str,
}

/// The model that answered.
#[derive(Clone, Serialize)]
pub(super) struct ModelInfo {
    pub(super) name: String,
    pub(super) version: &'static str,
    pub(super) arch: String,
}

/// A recognised word: bare (`word`) and, with `punctuate` or `smart_format`, as written.
#[derive(Serialize)]
pub(super) struct Word<'a> {
    pub(super) word: String,
    pub(super) start: f64,
    pub(super) end: f64,
    pub(super) confidence: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) punctuated_word: Option<&'a str>,
    /// With `diarize=true`: the simulator hears one speaker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) speaker: Option<u32>,
}

#[derive(Serialize)]
pub(super) struct Alternative<'a> {
    pub(super) transcript: String,
    pub(super) confidence: f64,
    pub(super) words: Vec<Word<'a>>,
}

#[derive(Serialize)]
pub(super) struct Channel<'a> {
    pub(super) alternatives: Vec<Alternative<'a>>,
}

/// A recording's transcript: `POST /v1/listen`.
#[derive(Serialize)]
pub(super) struct ListenResponse<'a> {
    pub(super) metadata: Metadata<'a>,
    pub(super) results: Results<'a>,
}

/// About the request and the audio; also the last message of a live stream.
#[derive(Serialize)]
pub(super) struct Metadata<'a> {
    pub(super) transaction_key: &'static str,
    pub(super) request_id: &'a str,
    /// Of every audio byte received.
    pub(super) sha256: String,
    /// RFC 3339 with milliseconds, UTC.
    pub(super) created: String,
    /// Seconds of audio received.
    pub(super) duration: f64,
    pub(super) channels: u16,
    pub(super) models: Vec<&'a str>,
    pub(super) model_info: BTreeMap<&'a str, ModelInfo>,
}

#[derive(Serialize)]
pub(super) struct Results<'a> {
    pub(super) channels: Vec<Channel<'a>>,
}

/// The model of a live `Results` message.
#[derive(Serialize)]
pub(super) struct ResultMetadata<'a> {
    pub(super) request_id: &'a str,
    pub(super) model_info: ModelInfo,
    pub(super) model_uuid: &'a str,
}

/// A message the live WebSocket sends.
#[derive(Serialize)]
#[serde(tag = "type")]
pub(super) enum LiveMessage<'a> {
    /// A transcript of the audio from `start` for `duration` seconds: interim (`is_final:
    /// false`) until that stretch is final.
    Results {
        /// `[channel, channel count]`.
        channel_index: [u16; 2],
        duration: f64,
        start: f64,
        is_final: bool,
        speech_final: bool,
        channel: Channel<'a>,
        metadata: ResultMetadata<'a>,
        from_finalize: bool,
    },
    /// An utterance ended (`utterance_end_ms`).
    UtteranceEnd {
        channel: [u16; 2],
        last_word_end: f64,
    },
    /// Speech began (`vad_events=true`).
    SpeechStarted { channel: [u16; 1], timestamp: f64 },
    /// The summary sent after `CloseStream`, before the close.
    Metadata(Metadata<'a>),
}
