//! Log of served requests, and the guard that notices a client hanging up mid-reply.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::Uri;
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::Behaviour;

/// Which provider API a request was made to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum WireFormat {
    /// OpenAI Chat Completions, `POST /v1/chat/completions`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages, `POST /v1/messages`.
    #[serde(rename = "anthropic")]
    Anthropic,
    /// Google Gemini, `POST /v1beta/models/{model}:generateContent` or `:streamGenerateContent`.
    #[serde(rename = "gemini")]
    Gemini,
    /// OpenAI text to speech, `POST /v1/audio/speech`.
    #[serde(rename = "openai_speech")]
    OpenAiSpeech,
    /// ElevenLabs text to speech: `POST /v1/text-to-speech/{voice_id}` (and `/stream`), or the
    /// WebSocket `GET /v1/text-to-speech/{voice_id}/stream-input`.
    #[serde(rename = "elevenlabs")]
    ElevenLabs,
    /// Gemini text to speech: `generateContent` or `streamGenerateContent` asking for
    /// `responseModalities: ["AUDIO"]`.
    #[serde(rename = "gemini_speech")]
    GeminiSpeech,
    /// OpenAI speech to text: `POST /v1/audio/transcriptions` or `/v1/audio/translations`.
    #[serde(rename = "openai_transcription")]
    OpenAiTranscription,
    /// Deepgram speech to text: `POST /v1/listen` (a recording), or the WebSocket
    /// `GET /v1/listen` (live audio).
    #[serde(rename = "deepgram")]
    Deepgram,
    /// Gemini audio understanding: `generateContent` or `streamGenerateContent` with an audio
    /// `inlineData` part, answered with the transcript as text.
    #[serde(rename = "gemini_transcription")]
    GeminiTranscription,
    /// OpenAI embeddings, `POST /v1/embeddings`.
    #[serde(rename = "openai_embeddings")]
    OpenAiEmbeddings,
    /// OpenAI (or xAI) image generation, `POST /v1/images/generations`.
    #[serde(rename = "openai_images")]
    OpenAiImages,
    /// A Black Forest Labs (Flux) task submission, `POST /v1/{model}`; its polls are `BflResult`.
    #[serde(rename = "bfl")]
    Bfl,
    /// A poll of a Flux task, `GET /v1/get_result?id=…`.
    #[serde(rename = "bfl_result")]
    BflResult,
    /// Stability AI image generation: `POST /v2beta/stable-image/generate/{core,sd3,ultra}` or
    /// SDXL's `POST /v1/generation/{engine_id}/text-to-image`.
    #[serde(rename = "stability")]
    Stability,
    /// Gemini image generation: `generateContent` asking for `responseModalities: ["IMAGE"]`.
    #[serde(rename = "gemini_image")]
    GeminiImage,
    /// Imagen, `POST /v1beta/models/{model}:predict`.
    #[serde(rename = "imagen")]
    Imagen,
    /// A download of a file the simulator generated (an image `url`, a Flux `sample`),
    /// `GET /_sim/files/{id}`.
    #[serde(rename = "file_download")]
    FileDownload,
    /// A Sora video job submission, `POST /v1/videos`; its later requests are `SoraPoll`,
    /// `SoraContent` and `SoraDelete`.
    #[serde(rename = "sora")]
    Sora,
    /// A poll of a Sora video job, `GET /v1/videos/{video_id}`.
    #[serde(rename = "sora_poll")]
    SoraPoll,
    /// A download of a Sora video, `GET /v1/videos/{video_id}/content`.
    #[serde(rename = "sora_content")]
    SoraContent,
    /// A deletion of a Sora video (a client's cancel), `DELETE /v1/videos/{video_id}`.
    #[serde(rename = "sora_delete")]
    SoraDelete,
    /// A Veo video job submission, `POST /v1beta/models/{model}:predictLongRunning`.
    #[serde(rename = "veo")]
    Veo,
    /// A poll of a Veo operation, `GET /v1beta/models/{model}/operations/{operation_id}`.
    #[serde(rename = "veo_poll")]
    VeoPoll,
    /// A Veo video download, `GET /v1beta/files/{file_id}:download?alt=media` (answered with a
    /// redirect to the bytes, which are `VeoMedia`).
    #[serde(rename = "veo_download")]
    VeoDownload,
    /// The bytes a Veo download redirects to, `GET /veo-media/{file_id}.mp4`.
    #[serde(rename = "veo_media")]
    VeoMedia,
    /// A KlingAI video task submission: `POST /v1/videos/text2video`, `/image2video` or
    /// `/video-extend`.
    #[serde(rename = "kling")]
    Kling,
    /// A poll of a KlingAI video task, `GET /v1/videos/{text2video|image2video|video-extend}/{task_id}`.
    #[serde(rename = "kling_poll")]
    KlingPoll,
    /// A download of a KlingAI video from its `url`, `GET /kling-media/{video_id}.mp4`.
    #[serde(rename = "kling_download")]
    KlingDownload,
    /// An OpenAI file upload, `POST /v1/files` (a batch's JSONL input).
    #[serde(rename = "openai_file_upload")]
    OpenAiFileUpload,
    /// A read of an OpenAI file object, `GET /v1/files/{file_id}`.
    #[serde(rename = "openai_file_get")]
    OpenAiFileGet,
    /// A download of an OpenAI file's bytes, `GET /v1/files/{file_id}/content` (a batch's output
    /// or error file).
    #[serde(rename = "openai_file_content")]
    OpenAiFileContent,
    /// A deletion of an OpenAI file, `DELETE /v1/files/{file_id}`.
    #[serde(rename = "openai_file_delete")]
    OpenAiFileDelete,
    /// An OpenAI batch submission, `POST /v1/batches`; its later requests are `OpenAiBatchGet`,
    /// `OpenAiBatchCancel` and the file requests.
    #[serde(rename = "openai_batch_create")]
    OpenAiBatchCreate,
    /// A poll of an OpenAI batch, `GET /v1/batches/{batch_id}`.
    #[serde(rename = "openai_batch_get")]
    OpenAiBatchGet,
    /// A page of OpenAI batches, `GET /v1/batches`.
    #[serde(rename = "openai_batch_list")]
    OpenAiBatchList,
    /// A cancel of an OpenAI batch, `POST /v1/batches/{batch_id}/cancel`.
    #[serde(rename = "openai_batch_cancel")]
    OpenAiBatchCancel,
    /// An Anthropic Message Batch submission, `POST /v1/messages/batches`.
    #[serde(rename = "anthropic_batch_create")]
    AnthropicBatchCreate,
    /// A poll of an Anthropic Message Batch, `GET /v1/messages/batches/{id}`.
    #[serde(rename = "anthropic_batch_get")]
    AnthropicBatchGet,
    /// A page of Anthropic Message Batches, `GET /v1/messages/batches`.
    #[serde(rename = "anthropic_batch_list")]
    AnthropicBatchList,
    /// A download of an Anthropic Message Batch's results, `GET /v1/messages/batches/{id}/results`.
    #[serde(rename = "anthropic_batch_results")]
    AnthropicBatchResults,
    /// A cancel of an Anthropic Message Batch, `POST /v1/messages/batches/{id}/cancel`.
    #[serde(rename = "anthropic_batch_cancel")]
    AnthropicBatchCancel,
    /// A Gemini batch submission, `POST /v1beta/models/{model}:batchGenerateContent`.
    #[serde(rename = "gemini_batch_create")]
    GeminiBatchCreate,
    /// A poll of a Gemini batch, `GET /v1beta/batches/{id}`.
    #[serde(rename = "gemini_batch_get")]
    GeminiBatchGet,
    /// A page of Gemini batches, `GET /v1beta/batches`.
    #[serde(rename = "gemini_batch_list")]
    GeminiBatchList,
    /// A cancel of a Gemini batch, `POST /v1beta/batches/{id}:cancel`.
    #[serde(rename = "gemini_batch_cancel")]
    GeminiBatchCancel,
}

impl WireFormat {
    /// The name used in `GET /_sim/requests`: `openai`, `anthropic`, `gemini`, `openai_speech`,
    /// `elevenlabs`, `gemini_speech`, `openai_transcription`, `deepgram`,
    /// `gemini_transcription`, `openai_embeddings`, `openai_images`, `bfl`, `bfl_result`,
    /// `stability`, `gemini_image`, `imagen`, `file_download`, `sora`, `sora_poll`,
    /// `sora_content`, `sora_delete`, `veo`, `veo_poll`, `veo_download`, `veo_media`, `kling`,
    /// `kling_poll`, `kling_download`, `openai_file_upload`, `openai_file_get`,
    /// `openai_file_content`, `openai_file_delete`, `openai_batch_create`, `openai_batch_get`,
    /// `openai_batch_list`, `openai_batch_cancel`, `anthropic_batch_create`,
    /// `anthropic_batch_get`, `anthropic_batch_list`, `anthropic_batch_results`,
    /// `anthropic_batch_cancel`, `gemini_batch_create`, `gemini_batch_get`, `gemini_batch_list`
    /// or `gemini_batch_cancel`.
    pub fn as_str(self) -> &'static str {
        match self {
            WireFormat::OpenAi => "openai",
            WireFormat::Anthropic => "anthropic",
            WireFormat::Gemini => "gemini",
            WireFormat::OpenAiSpeech => "openai_speech",
            WireFormat::ElevenLabs => "elevenlabs",
            WireFormat::GeminiSpeech => "gemini_speech",
            WireFormat::OpenAiTranscription => "openai_transcription",
            WireFormat::Deepgram => "deepgram",
            WireFormat::GeminiTranscription => "gemini_transcription",
            WireFormat::OpenAiEmbeddings => "openai_embeddings",
            WireFormat::OpenAiImages => "openai_images",
            WireFormat::Bfl => "bfl",
            WireFormat::BflResult => "bfl_result",
            WireFormat::Stability => "stability",
            WireFormat::GeminiImage => "gemini_image",
            WireFormat::Imagen => "imagen",
            WireFormat::FileDownload => "file_download",
            WireFormat::Sora => "sora",
            WireFormat::SoraPoll => "sora_poll",
            WireFormat::SoraContent => "sora_content",
            WireFormat::SoraDelete => "sora_delete",
            WireFormat::Veo => "veo",
            WireFormat::VeoPoll => "veo_poll",
            WireFormat::VeoDownload => "veo_download",
            WireFormat::VeoMedia => "veo_media",
            WireFormat::Kling => "kling",
            WireFormat::KlingPoll => "kling_poll",
            WireFormat::KlingDownload => "kling_download",
            WireFormat::OpenAiFileUpload => "openai_file_upload",
            WireFormat::OpenAiFileGet => "openai_file_get",
            WireFormat::OpenAiFileContent => "openai_file_content",
            WireFormat::OpenAiFileDelete => "openai_file_delete",
            WireFormat::OpenAiBatchCreate => "openai_batch_create",
            WireFormat::OpenAiBatchGet => "openai_batch_get",
            WireFormat::OpenAiBatchList => "openai_batch_list",
            WireFormat::OpenAiBatchCancel => "openai_batch_cancel",
            WireFormat::AnthropicBatchCreate => "anthropic_batch_create",
            WireFormat::AnthropicBatchGet => "anthropic_batch_get",
            WireFormat::AnthropicBatchList => "anthropic_batch_list",
            WireFormat::AnthropicBatchResults => "anthropic_batch_results",
            WireFormat::AnthropicBatchCancel => "anthropic_batch_cancel",
            WireFormat::GeminiBatchCreate => "gemini_batch_create",
            WireFormat::GeminiBatchGet => "gemini_batch_get",
            WireFormat::GeminiBatchList => "gemini_batch_list",
            WireFormat::GeminiBatchCancel => "gemini_batch_cancel",
        }
    }
}

impl std::fmt::Display for WireFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request the simulator served, and how its reply went.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// Sequence number, starting at 0; equals the record's index in `Simulator::requests`.
    pub id: u64,
    /// The API the request was made to.
    pub format: WireFormat,
    /// Request path as received, without the query, e.g. `/v1/chat/completions` or
    /// `/v1beta/models/gemini-2.0-flash:streamGenerateContent`.
    pub path: String,
    /// The query string as received, without the `?`, e.g. `model_id=…&output_format=pcm_24000`.
    pub query: Option<String>,
    /// The API key as received: OpenAI's `Authorization` header (`Bearer …`), Anthropic's
    /// `x-api-key` header, Gemini's `x-goog-api-key` header (else its `key` query parameter),
    /// ElevenLabs' `xi-api-key` header (on a WebSocket, else the first message's `xi_api_key` or
    /// `authorization`), or Deepgram's `Authorization` header (`Token …`; on a WebSocket, else
    /// the `Sec-WebSocket-Protocol` header, `token, …`), or Kling's `Authorization` header
    /// (`Bearer <jwt>`), or BFL's `x-key` header, or Stability's `authorization` header.
    /// `None` for the downloads of a video from its URL (Veo's redirect target, Kling's `url`)
    /// or of an image (`GET /_sim/files/{id}`), which need no key.
    pub authorization: Option<String>,
    /// The JSON request body; for an ElevenLabs WebSocket, its first (initializing) message; for
    /// an OpenAI transcription, the form's fields (the file as `{"filename", "content_type",
    /// "bytes"}`, array fields under their bare names); for a Deepgram recording
    /// `{"content_type"}`; `null` for a Deepgram WebSocket; for a Sora submission, its form
    /// fields (a file part as `{"filename", "content_type", "bytes"}`) or JSON body; `null` for
    /// the polls, downloads and deletes of a video job, of a Flux task and of an image; for a
    /// Stability v2beta request, its form fields (the `image` file as `{"filename",
    /// "content_type", "bytes"}`); for an OpenAI file upload, its form fields (the `file` as
    /// `{"filename", "content_type", "bytes"}`); for a batch submission, its JSON body; `null`
    /// for the polls, cancels, lists and result downloads of a batch and the other file
    /// requests.
    pub body: serde_json::Value,
    /// Text to speak, in the order it arrived: the one input of an HTTP text-to-speech request,
    /// or every non-empty `text` after the first message of an ElevenLabs WebSocket, so a test can
    /// check that no text was sent twice or lost; the text inputs of an embeddings request; the
    /// prompt of an image request (OpenAI, Flux, Stability, Gemini image, Imagen).
    /// Empty for chat requests.
    pub texts: Vec<String>,
    /// Bytes of audio received: the uploaded file, the decoded audio parts of a Gemini request
    /// (a transcription, or a chat about its audio), or every binary frame of a live stream so
    /// far (a WAV header included). 0 for other requests.
    pub audio_bytes: u64,
    /// How long that audio lasts, as the simulator measured it (see `SimConfig::transcript`).
    pub audio_duration: Duration,
    /// When each binary audio frame of a live stream arrived, oldest first, so a benchmark can
    /// line the frames its client sent up with their arrival. Empty for uploads.
    pub audio_frames_at: Vec<Instant>,
    /// Requests in the batch the request is about: a batch submission's requests (for OpenAI,
    /// the non-empty lines of its input file), or those of the batch polled, cancelled or whose
    /// results were read; the non-empty lines of an OpenAI file uploaded or downloaded. 0 for
    /// other requests, lists, and unknown batches.
    pub batch_requests: usize,
    /// The behaviour applied to this request; for the poll, download or delete of a video job,
    /// the job's (taken from the script at its submission; `Normal` for an unknown job).
    pub behaviour: Behaviour,
    /// When the request reached the handler.
    pub received_at: Instant,
    /// Paced units handed to the connection so far: text chunks, reasoning deltas, tool-argument
    /// pieces, Gemini's whole function calls, audio chunks, transcript words (OpenAI and Gemini
    /// transcriptions, Deepgram recordings) or `Results` messages (Deepgram's WebSocket).
    pub chunks_sent: usize,
    /// When the reply's first event was handed to the connection: a stream's opening events
    /// (ahead of the first-token delay), else the whole response. `None` while nothing went out.
    pub first_event_at: Option<Instant>,
    /// When each paced unit was handed to the connection, oldest first (`chunks_sent` of them),
    /// so tests check the pacing on the simulator's clock rather than their own.
    pub unit_sent_at: Vec<Instant>,
    /// The simulator handed over the whole reply.
    pub finished: bool,
    /// The client dropped the connection or body before the simulator finished.
    pub client_closed: bool,
    /// When the client's drop was observed.
    pub closed_at: Option<Instant>,
}

/// JSON shape of a record for `GET /_sim/requests`: instants become milliseconds since start,
/// and also microseconds since the Unix epoch (`*_unix_us`), so other processes on the machine can
/// line their own clocks up with the simulator's (e.g. cancel sent → upstream closed).
#[derive(Serialize)]
pub(crate) struct RecordView<'a> {
    id: u64,
    format: WireFormat,
    path: &'a str,
    query: Option<&'a str>,
    authorization: Option<&'a str>,
    body: &'a serde_json::Value,
    texts: &'a [String],
    audio_bytes: u64,
    audio_duration_ms: u64,
    audio_frames_at_ms: Vec<u64>,
    audio_frames_at_unix_us: Vec<u64>,
    batch_requests: usize,
    behaviour: &'a Behaviour,
    received_at_ms: u64,
    chunks_sent: usize,
    first_event_at_ms: Option<u64>,
    unit_sent_at_ms: Vec<u64>,
    unit_sent_at_unix_us: Vec<u64>,
    finished: bool,
    client_closed: bool,
    closed_at_ms: Option<u64>,
    received_at_unix_us: u64,
    closed_at_unix_us: Option<u64>,
}

impl<'a> RecordView<'a> {
    /// `started` and `started_wall` are the same moment on the monotonic and the wall clock.
    pub(crate) fn new(
        record: &'a RequestRecord,
        started: Instant,
        started_wall: SystemTime,
    ) -> Self {
        let ms = |at: Instant| millis(at.saturating_duration_since(started));
        let unix_us = |at: Instant| {
            let wall = started_wall + at.saturating_duration_since(started);
            wall.duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        };
        Self {
            id: record.id,
            format: record.format,
            path: &record.path,
            query: record.query.as_deref(),
            authorization: record.authorization.as_deref(),
            body: &record.body,
            texts: &record.texts,
            audio_bytes: record.audio_bytes,
            audio_duration_ms: millis(record.audio_duration),
            audio_frames_at_ms: record.audio_frames_at.iter().copied().map(ms).collect(),
            audio_frames_at_unix_us: record
                .audio_frames_at
                .iter()
                .copied()
                .map(unix_us)
                .collect(),
            batch_requests: record.batch_requests,
            behaviour: &record.behaviour,
            received_at_ms: ms(record.received_at),
            chunks_sent: record.chunks_sent,
            first_event_at_ms: record.first_event_at.map(ms),
            unit_sent_at_ms: record.unit_sent_at.iter().copied().map(ms).collect(),
            unit_sent_at_unix_us: record.unit_sent_at.iter().copied().map(unix_us).collect(),
            finished: record.finished,
            client_closed: record.client_closed,
            closed_at_ms: record.closed_at.map(ms),
            received_at_unix_us: unix_us(record.received_at),
            closed_at_unix_us: record.closed_at.map(unix_us),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Default)]
struct Log {
    records: Vec<RequestRecord>,
    /// Ids of client-closed requests in the order the closes were seen.
    closes: Vec<u64>,
    /// How many entries of `closes` `next_close` has already handed out.
    reported: usize,
}

/// What a handler knows about a request when it opens the request's record.
pub(crate) struct Incoming {
    format: WireFormat,
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    body: serde_json::Value,
    texts: Vec<String>,
    audio_bytes: u64,
    audio_duration: Duration,
    batch_requests: usize,
}

impl Incoming {
    /// A request to `uri` in `format`, with the key and body it carried.
    pub(crate) fn new(
        format: WireFormat,
        uri: &Uri,
        authorization: Option<String>,
        body: serde_json::Value,
    ) -> Self {
        Self {
            format,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            authorization,
            body,
            texts: Vec::new(),
            audio_bytes: 0,
            audio_duration: Duration::ZERO,
            batch_requests: 0,
        }
    }

    /// The number of requests in the batch the request is about.
    pub(crate) fn with_batch_requests(mut self, requests: usize) -> Self {
        self.batch_requests = requests;
        self
    }

    /// The text a text-to-speech request asks to speak.
    pub(crate) fn with_text(mut self, text: &str) -> Self {
        self.texts.push(text.to_owned());
        self
    }

    /// The audio a speech-to-text request uploaded: its size and how long it lasts.
    pub(crate) fn with_audio(mut self, bytes: usize, duration: Duration) -> Self {
        self.audio_bytes = bytes as u64;
        self.audio_duration = duration;
        self
    }
}

/// Shared request log; cheap to lock because every critical section is a few field writes.
#[derive(Default)]
pub(crate) struct Recorder {
    log: Mutex<Log>,
    closed: Notify,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave a record half-written in a harmful way.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a record for a request that is about to be served and returns its id.
    pub(crate) fn open(&self, incoming: Incoming, behaviour: Behaviour) -> u64 {
        let Incoming {
            format,
            path,
            query,
            authorization,
            body,
            texts,
            audio_bytes,
            audio_duration,
            batch_requests,
        } = incoming;
        let mut log = self.lock();
        let id = log.records.len() as u64;
        log.records.push(RequestRecord {
            id,
            format,
            path,
            query,
            authorization,
            body,
            texts,
            audio_bytes,
            audio_duration,
            audio_frames_at: Vec::new(),
            batch_requests,
            behaviour,
            received_at: Instant::now(),
            chunks_sent: 0,
            first_event_at: None,
            unit_sent_at: Vec::new(),
            finished: false,
            client_closed: false,
            closed_at: None,
        });
        id
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut RequestRecord)) {
        let mut log = self.lock();
        if let Some(record) = usize::try_from(id)
            .ok()
            .and_then(|i| log.records.get_mut(i))
        {
            f(record);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<RequestRecord> {
        self.lock().records.clone()
    }

    pub(crate) fn with_records<T>(&self, f: impl FnOnce(&[RequestRecord]) -> T) -> T {
        f(&self.lock().records)
    }

    fn mark_client_closed(&self, id: u64) {
        {
            let mut log = self.lock();
            let Some(record) = usize::try_from(id)
                .ok()
                .and_then(|i| log.records.get_mut(i))
            else {
                return;
            };
            record.client_closed = true;
            record.closed_at = Some(Instant::now());
            log.closes.push(id);
        }
        tracing::debug!(id, "client closed before the reply finished");
        self.closed.notify_waiters();
    }

    /// Hands out the oldest client close not yet reported, so each close is seen once.
    fn next_close(&self) -> Option<RequestRecord> {
        let mut log = self.lock();
        let id = *log.closes.get(log.reported)?;
        log.reported += 1;
        log.records.get(usize::try_from(id).ok()?).cloned()
    }

    /// Waits until a client close that no earlier call has returned is available.
    pub(crate) async fn wait_for_client_close(&self, timeout: Duration) -> Option<RequestRecord> {
        let wait = async {
            loop {
                // Registering before checking closes the gap where a close lands in between.
                let notified = self.closed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(record) = self.next_close() {
                    return record;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }
}

/// Tracks one reply in flight; dropping it before `finish` or `abort` counts as a client close.
pub(crate) struct ResponseGuard {
    recorder: std::sync::Arc<Recorder>,
    id: u64,
    settled: bool,
}

impl ResponseGuard {
    pub(crate) fn new(recorder: std::sync::Arc<Recorder>, id: u64) -> Self {
        Self {
            recorder,
            id,
            settled: false,
        }
    }

    /// A paced unit is being handed over.
    pub(crate) fn chunk_sent(&self) {
        let now = Instant::now();
        self.recorder.update(self.id, |r| {
            r.chunks_sent += 1;
            r.unit_sent_at.push(now);
            r.first_event_at.get_or_insert(now);
        });
    }

    /// An event of a streamed reply is being handed over.
    pub(crate) fn event_sent(&self) {
        let now = Instant::now();
        self.recorder.update(self.id, |r| {
            r.first_event_at.get_or_insert(now);
        });
    }

    /// The request's body arrived after the record was opened (an ElevenLabs WebSocket's first
    /// message), with the key it carried if the upgrade request had none.
    pub(crate) fn body_received(&self, body: serde_json::Value, key: Option<String>) {
        self.recorder.update(self.id, |r| {
            r.body = body;
            if r.authorization.is_none() {
                r.authorization = key;
            }
        });
    }

    /// More text to speak arrived (an ElevenLabs WebSocket message).
    pub(crate) fn text_received(&self, text: &str) {
        self.recorder
            .update(self.id, |r| r.texts.push(text.to_owned()));
    }

    /// A binary audio frame of `len` bytes arrived on a live stream, bringing the audio received
    /// to `duration`.
    pub(crate) fn audio_received(&self, len: usize, duration: Duration) {
        let now = Instant::now();
        self.recorder.update(self.id, |r| {
            r.audio_bytes += len as u64;
            r.audio_duration = duration;
            r.audio_frames_at.push(now);
        });
    }

    /// The whole reply has been handed over.
    pub(crate) fn finish(&mut self) {
        self.settled = true;
        let now = Instant::now();
        self.recorder.update(self.id, |r| {
            r.finished = true;
            r.first_event_at.get_or_insert(now);
        });
    }

    /// The simulator itself cut the reply short, so the drop that follows is not the client's.
    pub(crate) fn abort(&mut self) {
        self.settled = true;
    }
}

impl Drop for ResponseGuard {
    fn drop(&mut self) {
        if !self.settled {
            self.recorder.mark_client_closed(self.id);
        }
    }
}
