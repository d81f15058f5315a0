//! Local stand-in for LLM (and their batch APIs), text-to-speech, speech-to-text, image and
//! video providers, speaking their real wire formats with scriptable failures.
//!
//! Integration tests and benchmarks start a [`Simulator`] on port 0, point their client at it,
//! script failures with [`Simulator::push_script`] and inspect what was received with
//! [`Simulator::requests`]. The `provider-sim` binary serves the same thing and is driven over
//! HTTP: `POST /_sim/script` queues behaviours, `GET /_sim/requests` lists requests.
//!
//! | API | paths | client base URL |
//! | --- | --- | --- |
//! | OpenAI Chat Completions | `POST /v1/chat/completions` (and `/chat/completions`) | [`Simulator::base_url`] (`…/v1`) |
//! | Anthropic Messages | `POST /v1/messages` | [`Simulator::root_url`] |
//! | Google Gemini | `POST /v1beta/models/{model}:streamGenerateContent` (`?alt=sse` for SSE, else a JSON array), `POST /v1beta/models/{model}:generateContent` | [`Simulator::root_url`] |
//! | OpenAI text to speech | `POST /v1/audio/speech` (and `/audio/speech`) | [`Simulator::base_url`] |
//! | ElevenLabs text to speech | `POST /v1/text-to-speech/{voice_id}`, `POST /v1/text-to-speech/{voice_id}/stream`, WebSocket `GET /v1/text-to-speech/{voice_id}/stream-input` | [`Simulator::root_url`] |
//! | Gemini text to speech | the Gemini paths with `generationConfig.responseModalities: ["AUDIO"]` | [`Simulator::root_url`] |
//! | OpenAI speech to text | `POST /v1/audio/transcriptions`, `POST /v1/audio/translations` (and without `/v1`) | [`Simulator::base_url`] |
//! | Deepgram speech to text | `POST /v1/listen` (a recording), WebSocket `GET /v1/listen` (live audio) | [`Simulator::root_url`] |
//! | OpenAI embeddings | `POST /v1/embeddings` (and `/embeddings`) | [`Simulator::base_url`] |
//! | Gemini audio understanding | the Gemini paths with an audio `inlineData` part: a transcription when a text part asks for one, else a chat about the audio | [`Simulator::root_url`] |
//! | OpenAI Sora video jobs | `POST /v1/videos`, `GET /v1/videos/{video_id}`, `GET /v1/videos/{video_id}/content`, `DELETE /v1/videos/{video_id}` | [`Simulator::base_url`] |
//! | Veo video jobs (Gemini API) | `POST /v1beta/models/{model}:predictLongRunning`, `GET /v1beta/models/{model}/operations/{id}`, `GET /v1beta/files/{id}:download?alt=media` (a `302` to `GET /veo-media/{id}.mp4`) | [`Simulator::root_url`] |
//! | KlingAI video jobs | `POST /v1/videos/{text2video,image2video,video-extend}`, `GET /v1/videos/{text2video,image2video,video-extend}/{task_id}`, `GET /kling-media/{video_id}.mp4` | [`Simulator::root_url`] |
//! | OpenAI (and xAI Grok) image generation | `POST /v1/images/generations` (and `/images/generations`); a `url` answer is served at `GET /_sim/files/{id}` | [`Simulator::base_url`] |
//! | Black Forest Labs (Flux) image tasks | `POST /v1/{flux-2-pro,flux-2-max,flux-2-flex,flux-kontext-pro,flux-kontext-max,flux-pro-1.1,flux-pro-1.1-ultra,flux-pro,flux-dev}`, `GET /v1/get_result?id=…`, the sample at `GET /_sim/files/{id}` | [`Simulator::root_url`] |
//! | Stability AI image generation | `POST /v2beta/stable-image/generate/{core,sd3,ultra}` (multipart), `POST /v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image` | [`Simulator::root_url`] |
//! | Gemini image generation | the Gemini paths for an image model (`gemini-2.5-flash-image`, `gemini-3-pro-image-preview`) or with `generationConfig.responseModalities` holding `IMAGE` | [`Simulator::root_url`] |
//! | Imagen (Gemini API) | `POST /v1beta/models/{imagen-…}:predict` | [`Simulator::root_url`] |
//! | OpenAI Files | `POST /v1/files` (multipart), `GET /v1/files/{file_id}`, `GET /v1/files/{file_id}/content`, `DELETE /v1/files/{file_id}` | [`Simulator::base_url`] |
//! | OpenAI Batches | `POST /v1/batches`, `GET /v1/batches?after=&limit=`, `GET /v1/batches/{batch_id}`, `POST /v1/batches/{batch_id}/cancel` | [`Simulator::base_url`] |
//! | Anthropic Message Batches | `POST /v1/messages/batches`, `GET /v1/messages/batches?limit=&after_id=&before_id=`, `GET /v1/messages/batches/{id}`, `GET /v1/messages/batches/{id}/results`, `POST /v1/messages/batches/{id}/cancel` | [`Simulator::root_url`] |
//! | Gemini Batch Mode | `POST /v1beta/models/{model}:batchGenerateContent` (inline requests), `GET /v1beta/batches?pageSize=&pageToken=`, `GET /v1beta/batches/{id}`, `POST /v1beta/batches/{id}:cancel` | [`Simulator::root_url`] |
//!
//! All formats share one script queue, one request log ([`RequestRecord::format`] names the API)
//! and the same [`Behaviour`]s. A reply is a sequence of paced units — text chunks
//! ([`SimConfig::chunks`] × [`SimConfig::chunk_text`]), reasoning deltas, tool-argument pieces,
//! a whole Gemini function call, audio chunks, transcript words, or Deepgram `Results` messages
//! — framed by each format's opening and closing events. [`RequestRecord::unit_sent_at`] holds
//! when each unit went out, on the simulator's clock.
//!
//! What the simulated model says:
//! - **Text**: `chunks` deltas of `chunk_text`.
//! - **Tool call**: when the request declares tools and the last user prompt contains
//!   `call_tool` with no tool result after it, a call of the first declared tool with arguments
//!   `{"location":"Paris"}` (OpenAI and Anthropic stream them in pieces; Anthropic says
//!   "Let me check." in a text block first; Gemini sends the whole `functionCall`).
//! - **Reasoning**: Anthropic `thinking: {"type":"enabled"|"adaptive"}` gets a thinking block
//!   (two `thinking_delta`s and a `signature_delta`) before the answer; Gemini
//!   `generationConfig.thinkingConfig.includeThoughts: true` gets two `thought: true` chunks.
//! - **Speech**: a 440 Hz tone lasting [`SimConfig::speech_per_char`] per character of the text
//!   (divided by the requested speed), cut into [`SimConfig::audio_chunk`] chunks; PCM, WAV,
//!   μ-law and A-law carry the tone, MP3 carries valid frames of silence of the same length, and
//!   formats that would need an encoder (Opus, AAC, FLAC) are refused with a 400
//!   (`unsupported_in_simulator`). [`RequestRecord::texts`] holds the text each request (or
//!   ElevenLabs WebSocket session) asked to speak.
//! - **Transcripts**: whatever the audio, the recogniser hears [`SimConfig::transcript`]
//!   (default "The quick brown fox jumps over the lazy dog."). How long the audio lasts is read
//!   from a WAV header, from the bitrate of the first MPEG audio frame, from a raw layout the
//!   request states (Deepgram's `encoding` and `sample_rate`, Gemini's `audio/L16;rate=…`), or
//!   else from the byte count at a nominal 128 kbit/s. An upload holds the transcript once, word
//!   `i` of `n` spanning `[i·d/n, (i+1)·d/n)` of its duration `d` (audio of no duration holds no
//!   words); a live stream speaks word `k` of the transcript said over and over during
//!   `[k·w, (k+1)·w)`, `w` being [`SimConfig::live_word`], and a word is heard once the audio
//!   received covers its end. A sentence ends at a word ending in `.`, `?` or `!`, or at the
//!   transcript's end: subtitles have a cue per sentence, Deepgram's live stream a final result
//!   per sentence. Unformatted words (Deepgram without `punctuate`) are lower case without
//!   punctuation. [`RequestRecord::audio_bytes`], [`RequestRecord::audio_duration`] and
//!   [`RequestRecord::audio_frames_at`] hold what audio arrived, and when.
//! - **Audio in a chat**: a Gemini request with audio `inlineData` whose text does not ask for a
//!   transcript (no "transcribe", "transcript" or "transcription" in any text part) is answered
//!   with what was heard, a word per chunk: "I heard 115244 bytes of audio/wav (3.6 s)." (the
//!   decoded bytes of all audio parts, the first part's media type, their duration), so a client
//!   can check its audio arrived whole. Its [`RequestRecord::format`] is `gemini`, with
//!   [`RequestRecord::audio_bytes`] and [`RequestRecord::audio_duration`] set.
//! - **Embeddings**: a hashed bag of words, unit length, deterministic: each lower-cased word
//!   adds ±1 at 4 positions chosen by its hash, so texts that share words are closer than texts
//!   that do not. `text-embedding-3-small` (1536), `-3-large` (3072, both shortened by
//!   `dimensions`) and `text-embedding-ada-002` (1536); JSON floats, or base64 little-endian
//!   float32 for `encoding_format: "base64"` (what the official SDKs ask for). The failure
//!   behaviours apply as to a non-streamed chat: `ErrorEvent` is a 503, `MalformedLine` a body
//!   cut in the middle of its JSON.
//! - **Usage**: each whitespace-separated prompt word is an input token, each unit an output token.
//! - **Video jobs** (Sora, Veo, Kling): a submission makes a job in memory (at most 10,000; the
//!   oldest is forgotten) and answers at once; the job takes its [`Behaviour`] from the script
//!   at submission and keeps it, so polls, downloads and deletes never take one. The first
//!   [`SimConfig::job_polls`] polls (default 2) find it running, its progress rising
//!   (`polls·100 / (job_polls + 1)`: 33, 66), the next finds it done, as the behaviour says:
//!   `Normal` succeeded; `ContentFiltered` refused by the provider's safety system (Sora
//!   `failed`/`moderation_blocked`, Veo `raiMediaFilteredCount: 1` without samples, Kling `failed`
//!   with its risk-control message); `JobFailed` failed (Sora `internal_error`, Veo `error.code`
//!   13, Kling `failed`); `JobStuck` never done; `DownloadDrop { after_bytes }` succeeded, but
//!   every download of its video announces the full `Content-Length` and is cut after
//!   `after_bytes`. `ServerError`, `RateLimited` and `Refused` answer the submission (no job).
//!   The video is an MP4 start of [`SimConfig::video_bytes`] (default 64 KiB): an `ftyp` box
//!   (`isom`; `isom iso2 avc1 mp41`) and an `mdat` box of filler, not a playable video. Sora
//!   answers carry `openai-poll-after-ms` ([`SimConfig::poll_after`], default 100 ms); Kling
//!   verifies an HS256 JWT signed with [`SimConfig::kling_secret_key`] whose `iss` is
//!   [`SimConfig::kling_access_key`]. Every request is in the log under its step's format
//!   (`sora`, `sora_poll`, `sora_content`, `sora_delete`, `veo`, `veo_poll`, `veo_download`,
//!   `veo_media`, `kling`, `kling_poll`, `kling_download`), so a test counts submissions and
//!   polls apart and reads when a delete arrived ([`RequestRecord::received_at`]). Only Sora
//!   has a call that ends a job (`DELETE`); the Gemini API cannot cancel a Veo operation and
//!   Kling has no cancel, so there a client just stops polling.
//! - **Batches** (OpenAI Batches, Anthropic Message Batches, Gemini Batch Mode): a submission
//!   makes a batch in memory (at most 10,000 batches and 1,000,000 requests in all; the oldest
//!   batch is forgotten) and answers at once. Each request of the batch gets, decided at
//!   submission, what the provider's own endpoint would answer it without streaming (a
//!   `chat.completion`, a Message, a `GenerateContentResponse`, with the text, tool calls,
//!   thinking and usage above), or its own error: a request that endpoint would refuse (with
//!   its message), or one with a user message (Gemini: a user turn) containing `fail_line`
//!   (OpenAI: an error-file line with `status_code: 400` and `code: "simulated_failure"`;
//!   Anthropic: an `errored` result, `invalid_request_error`; Gemini: an inlined response with
//!   `error: {"code": 3}`). Each poll (a `GET` of the batch; a list or a results download is no
//!   poll) moves the batch on: the first [`SimConfig::job_polls`] polls find it running, the
//!   first `⌊n·k/(job_polls + 1)⌋` of its `n` requests done after poll `k` (in submission
//!   order, counted in its request counts); the next poll finds it ended: OpenAI `finalizing`,
//!   then `completed` at the poll after, Anthropic `ended`, Gemini `BATCH_STATE_SUCCEEDED`. A
//!   batch takes its [`Behaviour`] once, at submission: `ServerError`, `RateLimited` and
//!   `Refused` answer the submission (no batch is made); `JobFailed` ends the batch failed where
//!   it would have ended (OpenAI `failed` with `errors.data[0].code: "server_error"`,
//!   Anthropic `ended` with every request `errored` as `api_error`, Gemini `BATCH_STATE_FAILED`
//!   with `error.code: 13`); `JobStuck` keeps it running (its requests stop short of `n`) until
//!   it is cancelled; `DownloadDrop` cuts the downloads of its results (OpenAI's output and
//!   error files, Anthropic's results). Polls, cancels, lists, file requests and result
//!   downloads never take a behaviour from the script, nor does an OpenAI file upload: an
//!   OpenAI batch takes its one at `POST /v1/batches`, like the others at their submission. A
//!   cancel keeps the requests done so far: OpenAI `cancelling`, then `cancelled` at the next
//!   poll with those requests in its files; Anthropic `canceling`, then `ended` with the others
//!   `canceled`; Gemini `BATCH_STATE_CANCELLED` at once (`done`, `error.code: 1`, no output). An
//!   ended batch refuses a cancel (OpenAI and Anthropic 400, Gemini 400 `FAILED_PRECONDITION`).
//!   OpenAI checks an input file's lines after accepting the batch, so a line that is not JSON
//!   (`invalid_json_line`), lacks `custom_id`, `method`, `url` or `body`, names another `url`
//!   than the batch's endpoint (`url_mismatch`), repeats a `custom_id`
//!   (`duplicate_custom_id`), names another model (`model_mismatch`), or an empty file
//!   (`empty_file`) fails the batch at its first poll, with `errors.data[] = {code, line,
//!   message, param}`. Every call is in the log under its own format (`openai_file_upload`,
//!   `openai_file_get`, `openai_file_content`, `openai_file_delete`, `openai_batch_create`,
//!   `openai_batch_get`, `openai_batch_list`, `openai_batch_cancel`, `anthropic_batch_create`,
//!   `anthropic_batch_get`, `anthropic_batch_list`, `anthropic_batch_results`,
//!   `anthropic_batch_cancel`, `gemini_batch_create`, `gemini_batch_get`, `gemini_batch_list`,
//!   `gemini_batch_cancel`), with [`RequestRecord::batch_requests`] holding the number of
//!   requests of the batch concerned, so a test counts the batches submitted, and their sizes,
//!   apart from their polls. The module docs of `openai::files`, `openai::batches`,
//!   `anthropic::batches` and `gemini::batch` list every field.
//! - **Images**: a real PNG or JPEG of the size the request asks for (by the provider's own
//!   size tables), a smooth gradient whose colours come from the prompt (or the stated seed),
//!   so different prompts give different images; a PNG is about 25 KiB per megapixel.
//!   WebP, which needs an encoder the simulator lacks, is refused with a 400
//!   (`unsupported_in_simulator`). URLs (OpenAI `response_format: "url"`, xAI, Flux's `sample`)
//!   point at `GET /_sim/files/{id}`, kept in memory for the newest 256 files and logged as
//!   `file_download`. `ContentFiltered` is each provider's own safety answer: OpenAI a 400
//!   `moderation_blocked` (`content_policy_violation` for DALL·E and Grok), Stability a 200 with
//!   `finish-reason: CONTENT_FILTERED` and a blurred (flat grey) image, Gemini `finishReason:
//!   "IMAGE_SAFETY"` without an image, Imagen predictions without images, Flux `Content
//!   Moderated`. A Flux task is a job like the videos: it takes its behaviour at submission
//!   (`JobFailed` ends it `Error`, `JobStuck` keeps it `Pending`), its polls are logged as
//!   `bfl_result` apart from the submission (`bfl`), and `DownloadDrop` cuts its sample's
//!   downloads (and those of an OpenAI `url`). The synchronous APIs (`openai_images`,
//!   `stability`, `gemini_image`, `imagen`) play the failure behaviours as a non-streamed reply
//!   does: the first-token delay stands for the generation time, `MalformedLine` cuts the body
//!   in half, `BadAudio` sends image data that is not base64 (where the reply holds base64),
//!   `ErrorEvent` is the provider's 503; each image is one unit. The module docs of
//!   `openai::images`, `bfl`, `stability` and `gemini::image` list every field and error.
//!
//! Requests the real API would refuse get its 400 in its own error shape and are not recorded:
//! OpenAI without `model`/`messages`, Anthropic without `model`/`max_tokens`/`messages` (or with
//! a thinking budget below 1024 or not below `max_tokens`), Gemini without `contents` (or with an
//! unknown prebuilt voice), OpenAI speech without a Bearer key (401) or with an input, voice,
//! format, speed or stream format the API refuses, ElevenLabs HTTP without `xi-api-key` (401),
//! with an unknown `output_format` or no `text` (422) or over the model's character limit,
//! OpenAI transcriptions without a Bearer key (401), with an unknown model (404), a format the
//! model does not write, a file extension it does not take, a WAV it cannot read, less than
//! 0.1 s of audio, or over 25 MiB (413), OpenAI embeddings without a Bearer key (401), with an
//! unknown model (404), an empty or over-long `input` (over 2048 items, an item over 8192
//! words), an `encoding_format` other than `float`/`base64`, or `dimensions` for a model that
//! cannot shorten (ada-002) or beyond the model's size, Deepgram without a `Token` (401), with a `url` to fetch
//! (the simulator is offline), an unknown `encoding`, raw audio without `sample_rate`, or a body
//! that is empty, unreadable or not audio (400), and Gemini audio of an unsupported MIME type,
//! not base64, unreadable, or in a request over 20 MiB (400), Sora without a Bearer key (401),
//! without a `prompt`, with an unknown `model`, `seconds` other than `"4"`, `"8"`, `"12"` or a
//! `size` the model does not make (400, with `param`), Veo without a key (403), for a model that
//! is no Veo model (404), or with an `aspectRatio`, `durationSeconds`, `resolution` or
//! `personGeneration` the API refuses (400 `INVALID_ARGUMENT`), and Kling without a JWT that
//! verifies (401, codes 1000–1004), with a body that is not JSON (1200), an unknown model (1203),
//! or a parameter the API refuses (1201: a missing prompt or image, a `duration` other than
//! `"5"`/`"10"`, a motion-brush trajectory of more than 77 points, start/end frames with the
//! motion brush or camera control, a reused `external_task_id`, or extending a video over
//! 3 minutes), OpenAI images without a Bearer key (401), with an unknown model (404), or a
//! prompt, `n`, `size`, `quality` or format the model does not take (400, with `param`; GPT image
//! models refuse `response_format`), Flux without `x-key` (403) or with a field it refuses (422,
//! FastAPI's `detail`), Stability without `authorization` (401), over 10 MiB (413) or with a
//! field it refuses (400 `bad_request`; SDXL `invalid_sdxl_v1_dimensions`), and Gemini or
//! Imagen images without a key (403), with an aspect ratio, image size or sample count the
//! model does not take, or `IMAGE` asked of a model that makes none (400 `INVALID_ARGUMENT`),
//! OpenAI files and batches without a Bearer key (401), an upload without `purpose` or `file`,
//! with another purpose than the API's, or a `batch` file not named `*.jsonl` (400), a batch
//! of a file the API does not hold (404), of a file of another purpose, with an `endpoint`,
//! `completion_window` or `metadata` the API refuses, or for another endpoint than
//! `/v1/chat/completions` (400, `unsupported_in_simulator`), Anthropic batches without
//! `x-api-key` (401) or `anthropic-version` (400), without requests, or with a `custom_id` not
//! matching `^[a-zA-Z0-9_-]{1,64}$` or used twice (400), and Gemini batches without a key
//! (403), without inline requests or with an input file (400 `INVALID_ARGUMENT`).

mod anthropic;
mod audio;
mod batch;
mod bfl;
mod config;
mod content;
mod deepgram;
mod elevenlabs;
mod engine;
mod gemini;
mod image;
mod jobs;
mod json;
mod kling;
mod openai;
mod record;
mod server;
mod speech;
mod stability;
mod transcript;
mod video;
mod websocket;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{Behaviour, SimConfig};
pub use record::{RequestRecord, WireFormat};

use server::Shared;

/// How long `shutdown` waits for connections to wind down before aborting the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulator; dropping it stops the server.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    graceful: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts a simulator on an ephemeral port of 127.0.0.1.
    pub async fn start(config: SimConfig) -> io::Result<Simulator> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts a simulator listening on `addr`.
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Chunks are tiny and latency is what clients measure, so Nagle's algorithm must not
        // hold them back waiting for an ACK.
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::warn!(%err, "could not set TCP_NODELAY");
            }
        });
        let shared = Arc::new(Shared::new(config));
        let graceful = CancellationToken::new();
        let app = server::router(Arc::clone(&shared));
        let signal = graceful.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::error!(%err, "provider-sim server failed");
            }
        });
        tracing::info!(%addr, "provider-sim listening");
        Ok(Simulator {
            addr,
            shared,
            graceful,
            task: Some(task),
        })
    }

    /// The address the simulator is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL for an OpenAI client, e.g. `http://127.0.0.1:PORT/v1`; see [`Simulator::root_url`]
    /// for Anthropic and Gemini clients.
    pub fn base_url(&self) -> String {
        // A wildcard bind is reachable through loopback, and a wildcard is no URL host.
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}/v1", SocketAddr::new(ip, self.addr.port()))
    }

    /// Base URL for Anthropic and Gemini clients, which append `/v1/messages` or
    /// `/v1beta/models/…` themselves: `http://127.0.0.1:PORT`.
    pub fn root_url(&self) -> String {
        let base = self.base_url();
        base.strip_suffix("/v1").unwrap_or(&base).to_owned()
    }

    /// Queues `behaviour` for the next request; with an empty queue `SimConfig::behaviour` applies.
    pub fn push_script(&self, behaviour: Behaviour) {
        self.shared.push_script([behaviour]);
    }

    /// Snapshot of every request served so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.recorder().snapshot()
    }

    /// Waits for a request whose client hung up before its reply was complete.
    ///
    /// Each client close is returned once, oldest first, so a close that happened before the
    /// call is returned at once and consecutive calls see consecutive closes. `None` on timeout.
    pub async fn wait_for_client_close(&self, timeout: Duration) -> Option<RequestRecord> {
        self.shared.recorder().wait_for_client_close(timeout).await
    }

    /// Stops accepting connections, cuts replies still in flight and waits for the server to end.
    pub async fn shutdown(mut self) {
        self.graceful.cancel();
        self.shared.stop_token().cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            tracing::warn!("provider-sim did not stop in time; aborting it");
            task.abort();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.graceful.cancel();
        self.shared.stop_token().cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
