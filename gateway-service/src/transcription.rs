//! One transcription as the gateway follows it, for both surfaces that transcribe
//! (`POST /api/v1/audio/transcriptions`, `POST /v1/audio/transcriptions`): the uploaded recording
//! read within its limits and stored in the tenant's `uploads` folder (the upload route's code),
//! a `stt.transcription.file` action naming its key, and the `transcription` event it answers
//! with; plus the transcript as subtitles. No HTTP types here beyond the multipart form.

use std::time::Duration;

use axum::extract::Multipart;
use common::auth::Claims;
use common::error::AppError;
use common::events::EventType;
use common::payloads::Payload;
use common::payloads::stt::{FORMATS, TRANSCRIBE_FILE, TranscribePayload};
use serde_json::Value;
use uuid::Uuid;

use crate::files::{self, Form, FormRules, UploadForm};
use crate::session::traced_action;
use crate::speech::Failure;
use crate::state::AppState;
use crate::task::{Abandon, TaskFeed};

/// The largest recording, bytes: what the worker transcribes (25 MiB, OpenAI's limit too), or
/// less when uploads are limited further (`STORAGE__MAX_UPLOAD_BYTES`).
pub const MAX_AUDIO_BYTES: usize = 25 << 20;

/// The largest recording of this deployment.
pub fn max_audio_bytes(state: &AppState) -> usize {
    MAX_AUDIO_BYTES.min(state.settings().storage.max_upload_bytes)
}

/// Reads a transcription form: the `file` part (an audio extension the worker knows, within
/// [`max_audio_bytes`]) and the text fields `fields`.
pub async fn read_form(
    state: &AppState,
    multipart: Multipart,
    fields: &[&str],
) -> Result<(Form, UploadForm), AppError> {
    let formats: Vec<String> = FORMATS.iter().map(|f| (*f).to_owned()).collect();
    let mut form = files::read_multipart(
        multipart,
        FormRules {
            max_file_bytes: max_audio_bytes(state),
            allowed_extensions: &formats,
            fields,
        },
    )
    .await?;
    let (file, filename, ext) = form
        .file
        .take()
        .ok_or_else(|| AppError::BadRequest("the form has no file part".into()))?;
    if file.is_empty() {
        return Err(AppError::BadRequest("the file is empty".into()));
    }
    let upload = UploadForm {
        file,
        filename,
        ext,
        user_input: serde_json::Map::new(),
        user_settings: serde_json::Map::new(),
    };
    Ok((form, upload))
}

/// Checks `payload` as the worker would, with a stand-in key for the recording not stored yet
/// (400 naming the field).
pub fn check(
    claims: &Claims,
    upload: &UploadForm,
    payload: &TranscribePayload,
) -> Result<(), AppError> {
    let mut probe = payload.clone();
    probe.key = Some(format!(
        "{}/uploads/pending.{}",
        claims.tenant_id, upload.ext
    ));
    probe.audio_base64 = None;
    probe.validate().map_err(|e| AppError::BadRequest(e.0))
}

/// Stores the recording in the tenant's `uploads` folder (under a generated name) and sets
/// `payload.key` to its key.
pub async fn store(
    state: &AppState,
    claims: &Claims,
    upload: UploadForm,
    payload: &mut TranscribePayload,
) -> Result<(), AppError> {
    let stored = files::store(state.storage(), claims.tenant_id, upload).await?;
    payload.key = Some(stored.key);
    payload.audio_base64 = None;
    Ok(())
}

/// A published `stt.transcription.file` task. Dropped before it finished (the client went away),
/// it cancels the task.
#[derive(Debug)]
pub struct TranscriptionTask {
    feed: TaskFeed,
    wait: Duration,
}

impl TranscriptionTask {
    /// Checks `payload`, publishes it in `session_id` (owned by the caller: claim it first) and
    /// follows its task.
    pub async fn start(
        state: &AppState,
        claims: &Claims,
        session_id: Uuid,
        payload: &TranscribePayload,
    ) -> Result<Self, AppError> {
        payload.validate().map_err(|e| AppError::BadRequest(e.0))?;
        let data = serde_json::to_value(payload)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("transcription payload: {e}")))?;
        let (action, span) = traced_action(TRANSCRIBE_FILE, claims, session_id, data);
        let feed = TaskFeed::action(state, &action, Abandon::Cancel).await?;
        span.in_scope(|| tracing::info!("transcription published"));
        Ok(Self {
            feed,
            wait: Duration::from_secs(state.settings().chat_timeout_secs),
        })
    }

    /// The task.
    pub fn task_id(&self) -> Uuid {
        self.feed.task_id().unwrap_or_default()
    }

    /// Its session.
    pub fn session_id(&self) -> Uuid {
        self.feed.session_id()
    }

    /// Waits (up to `CHAT_TIMEOUT_SECS`) for the `transcription` event: its `data` (`text`,
    /// `language`, `duration_s`, `segments`, `provider`, `model`).
    pub async fn transcript(&mut self) -> Result<Value, Failure> {
        self.feed.result(EventType::Transcription, self.wait).await
    }
}

/// The transcript's cues: `(start, end, text)` of each segment, or one cue spanning the whole
/// recording when the provider gave no times.
pub fn cues(transcript: &Value) -> Vec<(f64, f64, String)> {
    let segments: Vec<(f64, f64, String)> = transcript["segments"]
        .as_array()
        .map(|segments| {
            segments
                .iter()
                .filter_map(|s| {
                    Some((
                        s["start"].as_f64()?,
                        s["end"].as_f64()?,
                        s["text"].as_str()?.trim().to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    if !segments.is_empty() {
        return segments;
    }
    let text = transcript["text"].as_str().unwrap_or_default().trim();
    if text.is_empty() {
        return Vec::new();
    }
    let duration = transcript["duration_s"].as_f64().unwrap_or(0.0);
    vec![(0.0, duration, text.to_owned())]
}

/// `hh:mm:ss{sep}mmm` of `secs`.
fn timestamp(secs: f64, sep: char) -> String {
    // Rounded to whole milliseconds; negative or non-finite times read as 0.
    let ms = if secs.is_finite() && secs > 0.0 {
        (secs * 1000.0).round() as u64
    } else {
        0
    };
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The transcript as SubRip subtitles.
pub fn srt(transcript: &Value) -> String {
    let mut out = String::new();
    for (i, (start, end, text)) in cues(transcript).into_iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{text}\n\n",
            i + 1,
            timestamp(start, ','),
            timestamp(end, ',')
        ));
    }
    out
}

/// The transcript as WebVTT subtitles.
pub fn vtt(transcript: &Value) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (start, end, text) in cues(transcript) {
        out.push_str(&format!(
            "{} --> {}\n{text}\n\n",
            timestamp(start, '.'),
            timestamp(end, '.')
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subtitles_from_segments_or_one_cue() {
        let timed = json!({"text": "a b", "duration_s": 3.5, "segments": [
            {"start": 0.0, "end": 1.25, "text": " a"},
            {"start": 1.25, "end": 3661.5, "text": "b"},
        ]});
        assert_eq!(
            srt(&timed),
            "1\n00:00:00,000 --> 00:00:01,250\na\n\n2\n00:00:01,250 --> 01:01:01,500\nb\n\n"
        );
        assert_eq!(
            vtt(&timed),
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.250\na\n\n00:00:01.250 --> 01:01:01.500\nb\n\n"
        );
        let untimed = json!({"text": "hello there", "duration_s": 2.0, "segments": []});
        assert_eq!(
            srt(&untimed),
            "1\n00:00:00,000 --> 00:00:02,000\nhello there\n\n"
        );
        let silence = json!({"text": "", "duration_s": null, "segments": null});
        assert_eq!(srt(&silence), "");
        assert_eq!(vtt(&silence), "WEBVTT\n\n");
        assert_eq!(timestamp(f64::NAN, ','), "00:00:00,000");
        assert_eq!(timestamp(-1.0, ','), "00:00:00,000");
    }
}
