//! The gateway's routes: paths mapped to handlers.

mod admin;
mod auth;
mod batch;
mod chat;
mod health;
mod history;
mod ingest;
mod media;
mod models;
mod openai;
mod openai_batch;
mod semantic;
mod session_name;
mod sse;
mod storage;
mod stt;
mod tts;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::{delete, get, post};
use common::storage::FILES_PATH;
use tower_http::trace::TraceLayer;

use crate::files::FORM_OVERHEAD_BYTES;

use crate::state::AppState;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let limit = state.settings().max_body_bytes;
    let upload_limit = state
        .settings()
        .storage
        .max_upload_bytes
        .saturating_add(FORM_OVERHEAD_BYTES);
    let transcription_limit =
        crate::transcription::max_audio_bytes(&state).saturating_add(FORM_OVERHEAD_BYTES);
    let document_limit =
        crate::ingest::max_document_bytes(&state).saturating_add(FORM_OVERHEAD_BYTES);
    let batch = &state.settings().batch;
    let batch_file_limit = usize::try_from(batch.file_limit())
        .unwrap_or(usize::MAX)
        .saturating_add(FORM_OVERHEAD_BYTES);
    let batch_body_limit = batch.max_body_bytes;
    Router::new()
        .route("/chat/ws", get(ws::upgrade))
        .route("/chat", post(chat::chat))
        .route("/chat/stream", post(chat::stream))
        .route("/chat/session-name", post(session_name::name))
        .route("/tts/generate", post(tts::generate))
        .route("/tts/stream", post(tts::stream))
        .route("/image/generate", post(media::generate_image))
        .route("/video/generate", post(media::generate_video))
        .route("/video/extend", post(media::extend_video))
        .route("/video/{task_id}", get(media::video_status))
        .route("/video/{task_id}/events", get(media::video_events))
        .route("/video/{task_id}/cancel", post(media::cancel_video))
        .route("/api/v1/chat/sessions", get(history::list))
        .route(
            "/api/v1/chat/sessions/{id}",
            get(history::read)
                .patch(history::rename)
                .delete(history::delete),
        )
        .route("/api/v1/chat/search", get(history::search))
        .route("/api/v1/semantic/search", post(semantic::search))
        .route(
            "/api/v1/ingest",
            post(ingest::upload).layer(DefaultBodyLimit::max(document_limit)),
        )
        .route("/api/v1/ingest/{job_id}", get(ingest::status))
        .route("/api/v1/ingest/{job_id}/events", get(ingest::events))
        .route("/ws/ingest/{job_id}", get(ingest::websocket))
        .route("/api/v1/documents", get(ingest::list))
        .route("/api/v1/documents/{id}", delete(ingest::delete))
        .route(
            "/api/v1/batch",
            get(batch::list)
                .post(batch::create)
                .layer(DefaultBodyLimit::max(batch_body_limit)),
        )
        .route("/api/v1/batch/{id}", get(batch::read))
        .route("/api/v1/batch/{id}/cancel", post(batch::cancel))
        .route("/api/v1/batch/{id}/events", get(batch::events))
        .route("/api/v1/batch/{id}/results", get(batch::results))
        .route("/api/v1/models", get(models::list))
        .route(
            "/api/v1/storage/upload",
            post(storage::upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/api/v1/audio/transcriptions",
            post(stt::transcriptions).layer(DefaultBodyLimit::max(transcription_limit)),
        )
        .route(&format!("{FILES_PATH}/{{*key}}"), get(storage::file))
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/me", get(auth::me))
        .route("/api/v1/admin/usage", get(admin::usage))
        .route("/api/v1/admin/users", get(admin::users))
        .nest("/v1", openai_router(transcription_limit, batch_file_limit))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .layer(DefaultBodyLimit::max(limit))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// `/v1`: the OpenAI-compatible surface, whose every error (unknown paths too) is in OpenAI's format.
fn openai_router(transcription_limit: usize, batch_file_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/chat/completions", post(openai::chat_completions))
        .route("/audio/speech", post(openai::audio_speech))
        .route(
            "/audio/transcriptions",
            post(openai::audio_transcriptions).layer(DefaultBodyLimit::max(transcription_limit)),
        )
        .route("/embeddings", post(openai::embeddings))
        .route("/images/generations", post(openai::images_generations))
        .route(
            "/files",
            get(openai_batch::list_files)
                .post(openai_batch::create_file)
                .layer(DefaultBodyLimit::max(batch_file_limit)),
        )
        .route(
            "/files/{id}",
            get(openai_batch::retrieve_file).delete(openai_batch::delete_file),
        )
        .route("/files/{id}/content", get(openai_batch::file_content))
        .route(
            "/batches",
            get(openai_batch::list_batches).post(openai_batch::create_batch),
        )
        .route("/batches/{id}", get(openai_batch::retrieve_batch))
        .route("/batches/{id}/cancel", post(openai_batch::cancel_batch))
        .route("/models", get(openai::list_models))
        .route("/models/{model}", get(openai::retrieve_model))
        .fallback(openai::unknown_url)
        .method_not_allowed_fallback(openai::method_not_allowed)
}

/// The span of a request: method and path only. The query string can carry a token
/// (`/chat/ws?token=`), and tokens never reach logs.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
}
