//! Serde shapes of ElevenLabs' errors and WebSocket messages, with the API's field names.

use serde::Serialize;
use serde_json::Value;

/// `{"detail": {"status": …, "message": …}}`, ElevenLabs' error for a refused request.
#[derive(Serialize)]
pub(super) struct DetailError<'a> {
    pub(super) detail: Detail<'a>,
}

#[derive(Serialize)]
pub(super) struct Detail<'a> {
    pub(super) status: &'a str,
    pub(super) message: String,
}

/// `{"detail": [{…}]}`, the 422 a request gets when a field fails validation.
#[derive(Serialize)]
pub(super) struct ValidationError<'a> {
    pub(super) detail: [ValidationItem<'a>; 1],
}

#[derive(Serialize)]
pub(super) struct ValidationItem<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'a str,
    pub(super) loc: [&'a str; 2],
    pub(super) msg: String,
    pub(super) input: Value,
}

/// An audio message of the `stream-input` WebSocket.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AudioOutput<'a> {
    /// Base64 of the generation's audio in the requested `output_format`.
    pub(super) audio: &'a str,
    pub(super) is_final: bool,
    pub(super) normalized_alignment: &'a Alignment,
    pub(super) alignment: &'a Alignment,
}

/// Character timings of one generation, relative to its own audio.
///
/// The durations are spelled `charsDurationsMs`, as the live API sends them (its SDKs and docs
/// also show `charDurationsMs`; clients should accept both).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Alignment {
    pub(super) chars: Vec<String>,
    pub(super) char_start_times_ms: Vec<u64>,
    pub(super) chars_durations_ms: Vec<u64>,
}

/// The message that ends a generation stream: no audio, `isFinal: true`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FinalOutput {
    pub(super) audio: Option<()>,
    pub(super) is_final: bool,
}

/// An error reported on the WebSocket before it is closed.
#[derive(Serialize)]
pub(super) struct SocketError<'a> {
    pub(super) message: &'a str,
    pub(super) error: &'a str,
    pub(super) code: u16,
}
