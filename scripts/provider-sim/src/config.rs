//! Simulator settings and the per-request behaviours that can be scripted.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the simulator paces and fills its replies.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Pause before the first paced unit; headers and the opening events (OpenAI's role chunk,
    /// Anthropic's `message_start`, `content_block_start` and `ping`) go out before it.
    pub first_token_delay: Duration,
    /// Number of text delta chunks in a text reply.
    pub chunks: usize,
    /// Pause between consecutive content chunks.
    pub chunk_interval: Duration,
    /// Text carried by every content chunk.
    pub chunk_text: String,
    /// Behaviour for requests that arrive while the script queue is empty.
    pub behaviour: Behaviour,
    /// Length of simulated speech per input character, at speed 1.0 (text-to-speech replies).
    pub speech_per_char: Duration,
    /// Audio carried by one streamed chunk of a text-to-speech reply (rounded to whole MP3
    /// frames); ElevenLabs' WebSocket sends one audio message per generation instead.
    pub audio_chunk: Duration,
    /// What the simulated recogniser hears in any audio (speech to text), punctuated as it is
    /// returned; its whitespace-separated words are the recognised words.
    ///
    /// An uploaded file holds the whole transcript once, its words sharing the file's duration
    /// evenly; a live stream speaks one word per [`SimConfig::live_word`] of audio, the
    /// transcript over and over.
    pub transcript: String,
    /// Audio one word lasts in a live speech-to-text stream (Deepgram's WebSocket).
    pub live_word: Duration,
    /// A live speech-to-text stream that receives neither audio nor a message for this long is
    /// closed with Deepgram's `NET-0001` error (the real API waits 10 s).
    pub live_idle_timeout: Duration,
    /// Polls of an asynchronous job (a Flux task's `get_result`, a Sora, Veo or Kling video, a
    /// provider batch) answered as still running before the job ends: with 2, the first two
    /// polls say running and the third says done (an OpenAI batch: `finalizing`, then
    /// `completed` at the fourth). A batch's requests finish over those polls, in order.
    pub job_polls: usize,
    /// Sora's `openai-poll-after-ms` header on every answer about a video job: how long the
    /// official SDKs' `poll` helpers wait before polling again.
    pub poll_after: Duration,
    /// Size in bytes of a generated video (an MP4 `ftyp` box, then an `mdat` box filling the
    /// rest; not a playable video).
    pub video_bytes: usize,
    /// KlingAI access key: the `iss` a request's JWT must carry.
    pub kling_access_key: String,
    /// KlingAI secret key: the HS256 key a request's JWT must be signed with.
    pub kling_secret_key: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            first_token_delay: Duration::ZERO,
            chunks: 5,
            chunk_interval: Duration::ZERO,
            chunk_text: "tok ".to_owned(),
            behaviour: Behaviour::Normal,
            speech_per_char: Duration::from_millis(60),
            audio_chunk: Duration::from_millis(100),
            transcript: "The quick brown fox jumps over the lazy dog.".to_owned(),
            live_word: Duration::from_millis(400),
            live_idle_timeout: Duration::from_secs(10),
            job_polls: 2,
            poll_after: Duration::from_millis(100),
            video_bytes: 64 * 1024,
            kling_access_key: "sim-kling-access".to_owned(),
            kling_secret_key: "sim-kling-secret".to_owned(),
        }
    }
}

/// What the simulator does with one request.
///
/// `after_chunks` counts paced units: text chunks, reasoning (thinking) deltas, tool-argument
/// pieces, Gemini's whole function calls, audio chunks (ElevenLabs WebSocket: audio messages),
/// transcript words, or Deepgram's live `Results` messages — the units
/// `RequestRecord::chunks_sent` counts.
///
/// Text-to-speech replies that are raw audio bytes (OpenAI `stream_format: "audio"`, ElevenLabs
/// HTTP) have no events: there `MalformedLine` and `BadAudio` end the body with half a sample
/// (one stray byte) and `ErrorEvent` cuts the connection like `DropMidStream`. An ElevenLabs
/// or Deepgram WebSocket gets `ServerError`, `RateLimited` and `Refused` as the HTTP answer to
/// its upgrade request. On Deepgram's live WebSocket, which goes on after a bad frame,
/// `MalformedLine` (and `BadAudio`) sends one text frame that is not JSON in place of the next
/// `Results` message and the session carries on; `DropMidStream` resets the connection.
///
/// A video job (Sora, Veo, Kling), a Flux image task or a provider batch (OpenAI, Anthropic,
/// Gemini) takes its behaviour once, at submission, and keeps it: polls, downloads and deletes never take one from the script, and neither do the
/// downloads of an image URL (`GET /_sim/files/{id}`), which follow the request that made it. `ServerError`, `RateLimited` and
/// `Refused` answer the submission itself (no job is made); `ContentFiltered`, `JobFailed`,
/// `JobStuck` and `DownloadDrop` shape the job's life; the streaming failures
/// (`DropMidStream`, `MalformedLine`, `BadAudio`, `ErrorEvent`) do not apply to a job, which then
/// runs as `Normal`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Behaviour {
    /// A complete, well-formed reply.
    #[default]
    Normal,
    /// HTTP 500 with a provider-style error body, before any token.
    ServerError,
    /// HTTP 429 with a `Retry-After` header and a provider-style error body.
    RateLimited {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// An HTTP error other than 429 or 5xx (meant for 4xx: 400, 401, 403, 404), before any token,
    /// in the format's error shape with `message` as the provider's explanation, as a real API
    /// answers a wrong key (`Incorrect API key provided: sk-…`), a missing permission or an
    /// unknown model. A status that is not a valid HTTP status is sent as 400.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The provider's explanation (`error.message`).
        message: String,
    },
    /// Sends that many content chunks, then aborts the connection with no terminator.
    DropMidStream {
        /// Content chunks sent before the connection is cut.
        after_chunks: usize,
    },
    /// Sends that many content chunks, then an event that is not JSON, then the terminator.
    ///
    /// The terminator is OpenAI's `[DONE]`, Anthropic's `message_stop`, or for Gemini (which has
    /// none) a last chunk carrying `finishReason: "STOP"`.
    MalformedLine {
        /// Content chunks sent before the malformed event.
        after_chunks: usize,
    },
    /// Sends that many audio chunks, then one whose audio is not valid base64 (an OpenAI
    /// `speech.audio.delta`, an ElevenLabs WebSocket audio message, a Gemini `inlineData`), then
    /// the format's terminator. Formats without audio treat it as `MalformedLine`.
    BadAudio {
        /// Audio chunks sent before the bad one.
        after_chunks: usize,
    },
    /// Sends that many content chunks, then the format's own mid-stream error, then ends the body
    /// cleanly (no terminator), as the real APIs report a failure after the headers are out.
    ///
    /// - Anthropic: `event: error` with `{"type":"error","error":{"type":"overloaded_error",
    ///   "message":"Overloaded"}}`.
    /// - OpenAI: a `data:` line holding `{"error":{"message":…,"type":"server_error",…}}`, which
    ///   the official SDKs raise as an API error; no `[DONE]` follows.
    /// - Gemini: a chunk holding `{"error":{"code":503,"message":…,"status":"UNAVAILABLE"}}`.
    /// - OpenAI speech with `stream_format: "sse"` and OpenAI transcriptions with `stream=true`:
    ///   the same error object as a chat stream's.
    /// - ElevenLabs WebSocket: `{"message":…,"error":"internal_error","code":1011}`, then a close
    ///   frame with code 1011.
    /// - Deepgram WebSocket: a close frame with code 1011 and a `NET-0000` reason.
    /// - Raw audio bodies (OpenAI `stream_format: "audio"`, ElevenLabs HTTP): the connection is
    ///   cut, as they have no way to carry an error.
    ///
    /// A non-streamed request gets the format's "overloaded" HTTP error after the first-token
    /// delay instead: Anthropic 529 `overloaded_error`, OpenAI 503, Gemini 503 `UNAVAILABLE`,
    /// Deepgram 503 `SERVICE_UNAVAILABLE`.
    ErrorEvent {
        /// Content chunks sent before the error event.
        after_chunks: usize,
    },
    /// The provider's own "refused by its safety system" answer, where the API has one: OpenAI
    /// images 400 `moderation_blocked` (`content_policy_violation` for DALL·E and Grok),
    /// Stability `finish-reason: CONTENT_FILTERED` with a blurred image (SDXL: the artifact's
    /// `finishReason`), Gemini `finishReason: "IMAGE_SAFETY"` with no image, Imagen predictions
    /// without images; a job API's job ends filtered (Flux: `Content Moderated`; Sora
    /// `status: "failed"` with `error.code: "moderation_blocked"`; Veo a done operation whose
    /// `generateVideoResponse` holds no sample, `raiMediaFilteredCount: 1` and a reason; Kling
    /// `task_status: "failed"` with its risk-control `task_status_msg`). APIs without such an
    /// answer (chat, speech, transcription, embeddings) reply normally.
    ContentFiltered,
    /// A video job that ends failed with the provider's error once its running polls are over:
    /// Sora `status: "failed"` with `error.code: "internal_error"`, Veo a done operation holding
    /// `error: {"code": 13, "message": …}`, Kling `task_status: "failed"` with a failure
    /// `task_status_msg`, a Flux task `status: "Error"`; a batch ends failed: OpenAI
    /// `status: "failed"` with `errors.data[0].code: "server_error"`, Anthropic `ended` with
    /// every request `errored` (`api_error`), Gemini `BATCH_STATE_FAILED` with `error.code: 13`.
    /// Other APIs reply normally.
    JobFailed,
    /// A video job that never leaves its running state however often it is polled (its progress
    /// stops below 100; a Flux task stays `Pending`; a batch stays in progress, some of its
    /// requests never done, until it is cancelled), for a client's poll timeout. Other APIs
    /// reply normally.
    JobStuck,
    /// A video job that completes, but every download of its video announces the whole
    /// `Content-Length`, sends `after_bytes` bytes and cuts the connection; likewise the
    /// downloads of a Flux task's `sample`, of an image `url` the request handed out, and of a
    /// batch's results (OpenAI's output and error files, Anthropic's results). Other APIs reply
    /// normally.
    DownloadDrop {
        /// Bytes of the video sent before the connection is cut.
        after_bytes: usize,
    },
}
