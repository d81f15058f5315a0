//! HTTP routing, the script queue and the control endpoints shared by every wire format.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::batch::BatchRegistry;
use crate::config::{Behaviour, SimConfig};
use crate::image::FileStore;
use crate::jobs::JobRegistry;
use crate::record::{Incoming, RecordView, Recorder, ResponseGuard};
use crate::{anthropic, bfl, deepgram, elevenlabs, gemini, image, kling, openai, stability};

/// Conversation histories in load tests get long; the extractor's 2 MiB default is too tight.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// State every handler sees.
pub(crate) struct Shared {
    config: SimConfig,
    started: Instant,
    /// `started` on the wall clock, for the `*_unix_us` fields of the request log.
    started_wall: SystemTime,
    script: Mutex<VecDeque<Behaviour>>,
    recorder: Arc<Recorder>,
    stop: CancellationToken,
    /// Asynchronous jobs (video generations) by id.
    jobs: JobRegistry,
    /// Generated files served at `GET /_sim/files/{id}` (image URLs, Flux samples).
    files: FileStore,
    /// Provider batches (OpenAI, Anthropic, Gemini) by id.
    batches: BatchRegistry,
    /// Files of OpenAI's Files API: batch inputs, outputs and errors.
    openai_files: openai::Files,
}

impl Shared {
    pub(crate) fn new(config: SimConfig) -> Self {
        Self {
            config,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            script: Mutex::new(VecDeque::new()),
            recorder: Arc::new(Recorder::default()),
            stop: CancellationToken::new(),
            jobs: JobRegistry::default(),
            files: FileStore::default(),
            batches: BatchRegistry::default(),
            openai_files: openai::Files::default(),
        }
    }

    pub(crate) fn config(&self) -> &SimConfig {
        &self.config
    }

    pub(crate) fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Cancelled when the simulator stops, which cuts replies still in flight.
    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub(crate) fn push_script(&self, behaviours: impl IntoIterator<Item = Behaviour>) -> usize {
        let mut script = self.script.lock().unwrap_or_else(PoisonError::into_inner);
        script.extend(behaviours);
        script.len()
    }

    /// Asynchronous jobs (video generations) by id.
    pub(crate) fn jobs(&self) -> &JobRegistry {
        &self.jobs
    }

    /// Generated files served at `GET /_sim/files/{id}`.
    pub(crate) fn files(&self) -> &FileStore {
        &self.files
    }

    /// Provider batches (OpenAI, Anthropic, Gemini) by id.
    pub(crate) fn batches(&self) -> &BatchRegistry {
        &self.batches
    }

    /// Files of OpenAI's Files API.
    pub(crate) fn openai_files(&self) -> &openai::Files {
        &self.openai_files
    }

    /// Opens the record of a request that follows up on a job (a poll, a download, a delete)
    /// under the job's `behaviour`, without taking one from the script.
    pub(crate) fn follow_up(&self, incoming: Incoming, behaviour: Behaviour) -> ResponseGuard {
        let id = self.recorder.open(incoming, behaviour);
        ResponseGuard::new(Arc::clone(&self.recorder), id)
    }

    /// Takes the behaviour for a new request and opens its record.
    pub(crate) fn begin(&self, incoming: Incoming) -> (Behaviour, ResponseGuard) {
        let scripted = self
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        let behaviour = scripted.unwrap_or_else(|| self.config.behaviour.clone());
        let id = self.recorder.open(incoming, behaviour.clone());
        (
            behaviour,
            ResponseGuard::new(Arc::clone(&self.recorder), id),
        )
    }
}

/// All routes of the simulator.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/chat/completions", post(openai::chat_completions))
        .route("/v1/audio/speech", post(openai::audio_speech))
        .route("/audio/speech", post(openai::audio_speech))
        .route("/v1/audio/transcriptions", post(openai::transcriptions))
        .route("/audio/transcriptions", post(openai::transcriptions))
        .route("/v1/audio/translations", post(openai::translations))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/embeddings", post(openai::embeddings))
        .route("/audio/translations", post(openai::translations))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/listen", post(deepgram::listen).get(deepgram::live))
        .route("/v1/text-to-speech/{voice_id}", post(elevenlabs::convert))
        .route(
            "/v1/text-to-speech/{voice_id}/stream",
            post(elevenlabs::convert_stream),
        )
        .route(
            "/v1/text-to-speech/{voice_id}/stream-input",
            get(elevenlabs::stream_input),
        )
        .route("/v1beta/models/{model_action}", post(gemini::models))
        .route("/v1/images/generations", post(openai::images_generations))
        .route("/images/generations", post(openai::images_generations))
        .merge(bfl::routes())
        .route(
            "/v2beta/stable-image/generate/{service}",
            post(stability::generate),
        )
        .route(
            "/v1/generation/{engine_id}/text-to-image",
            post(stability::text_to_image),
        )
        .route("/_sim/files/{id}", get(image::download))
        .route("/v1/videos", post(openai::create_video))
        .route(
            "/v1/videos/{video_id}",
            get(openai::retrieve_video).delete(openai::delete_video),
        )
        .route("/v1/videos/{video_id}/content", get(openai::video_content))
        .route("/v1/files", post(openai::upload_file))
        .route(
            "/v1/files/{file_id}",
            get(openai::retrieve_file).delete(openai::delete_file),
        )
        .route("/v1/files/{file_id}/content", get(openai::file_content))
        .route(
            "/v1/batches",
            post(openai::create_batch).get(openai::list_batches),
        )
        .route("/v1/batches/{batch_id}", get(openai::retrieve_batch))
        .route("/v1/batches/{batch_id}/cancel", post(openai::cancel_batch))
        .route(
            "/v1/messages/batches",
            post(anthropic::create_batch).get(anthropic::list_batches),
        )
        .route(
            "/v1/messages/batches/{batch_id}",
            get(anthropic::retrieve_batch),
        )
        .route(
            "/v1/messages/batches/{batch_id}/results",
            get(anthropic::batch_results),
        )
        .route(
            "/v1/messages/batches/{batch_id}/cancel",
            post(anthropic::cancel_batch),
        )
        .route("/v1beta/batches", get(gemini::list_batches))
        .route(
            "/v1beta/batches/{batch_action}",
            get(gemini::get_batch).post(gemini::batch_action),
        )
        .merge(kling::routes())
        .route(
            "/v1beta/models/{model_action}/operations/{operation_id}",
            get(gemini::veo_operation),
        )
        .route("/v1beta/files/{file_action}", get(gemini::veo_file))
        .route("/veo-media/{file}", get(gemini::veo_media))
        .route("/_sim/script", post(push_script))
        .route("/_sim/requests", get(list_requests))
        .route("/health", get(|| async { "ok" }))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Script {
    One(Behaviour),
    Many(Vec<Behaviour>),
}

async fn push_script(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let script = match serde_json::from_slice::<Script>(&body) {
        Ok(Script::One(behaviour)) => vec![behaviour],
        Ok(Script::Many(behaviours)) => behaviours,
        Err(err) => {
            return openai::error_response(
                StatusCode::BAD_REQUEST,
                format!("expected a behaviour or an array of behaviours: {err}"),
                "invalid_request_error",
            );
        }
    };
    let added = script.len();
    let queued = shared.push_script(script);
    Json(serde_json::json!({ "added": added, "queued": queued })).into_response()
}

async fn list_requests(State(shared): State<Arc<Shared>>) -> Response {
    let views = shared.recorder().with_records(|records| {
        let views: Vec<_> = records
            .iter()
            .map(|r| RecordView::new(r, shared.started, shared.started_wall))
            .collect();
        serde_json::to_vec(&views)
    });
    match views {
        Ok(json) => ([(CONTENT_TYPE, "application/json")], json).into_response(),
        Err(err) => openai::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not encode the request log: {err}"),
            "server_error",
        ),
    }
}

async fn not_found(uri: Uri) -> Response {
    openai::error_response(
        StatusCode::NOT_FOUND,
        format!("Unknown request URL: {}", uri.path()),
        "invalid_request_error",
    )
}
