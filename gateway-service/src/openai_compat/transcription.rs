//! `POST /v1/audio/transcriptions`: OpenAI's transcription request (multipart, as the official
//! SDK sends it) as a `stt.transcription.file` task over the stored recording, answered in the
//! `response_format` asked (`json`, `text`, `srt`, `vtt`, `verbose_json`) or, with `stream`, as
//! `transcript.text.delta` events then `transcript.text.done`. Which provider transcribes follows
//! from `model` as for `/v1/audio/speech` ([`Route::for_transcription`]).

use std::convert::Infallible;

use axum::Json;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use common::auth::Claims;
use common::payloads::stt::TranscribePayload;
use serde_json::{Value, json};

use super::error::OpenAiError;
use super::speech::Route;
use crate::files::{Form, UploadForm};
use crate::speech::Failure;
use crate::state::AppState;
use crate::transcription::{self, TranscriptionTask, cues};

/// The form's text fields the gateway reads; others (`temperature`, `chunking_strategy`,
/// `include[]`, …) are ignored.
pub const FIELDS: [&str; 7] = [
    "model",
    "language",
    "prompt",
    "response_format",
    "stream",
    "timestamp_granularities[]",
    "timestamp_granularities",
];

/// OpenAI's response formats.
const FORMATS: [&str; 5] = ["json", "text", "srt", "verbose_json", "vtt"];

/// What the gateway uses of a transcription request.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptionRequest {
    /// The model, which picks the provider.
    pub model: String,
    /// The spoken language (ISO-639-1).
    pub language: Option<String>,
    /// Words that help the provider.
    pub prompt: Option<String>,
    /// `json` (the default), `text`, `srt`, `vtt` or `verbose_json`.
    pub format: String,
    /// `transcript.text.*` events instead of one answer.
    pub stream: bool,
}

fn invalid(message: impl Into<String>, param: &str) -> OpenAiError {
    OpenAiError::invalid_request(message, Some(param))
}

/// A text field, blank read as absent.
fn text(form: &Form, name: &str) -> Result<Option<String>, OpenAiError> {
    Ok(form
        .text(name)?
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty()))
}

impl TranscriptionRequest {
    /// The request's fields, checked (each refusal names OpenAI's parameter).
    pub fn parse(form: &Form) -> Result<Self, OpenAiError> {
        let model = text(form, "model")?
            .ok_or_else(|| invalid("You must provide a model parameter.", "model"))?;
        let format = text(form, "response_format")?.unwrap_or_else(|| "json".to_owned());
        if !FORMATS.contains(&format.as_str()) {
            return Err(invalid(
                format!(
                    "Invalid value for 'response_format': '{format}'. Supported values are: {}.",
                    FORMATS.join(", ")
                ),
                "response_format",
            ));
        }
        let stream = match text(form, "stream")?.map(|s| s.to_ascii_lowercase()) {
            None => false,
            Some(s) if s == "true" || s == "1" => true,
            Some(s) if s == "false" || s == "0" => false,
            Some(_) => {
                return Err(invalid(
                    "Invalid type for 'stream': expected a boolean.",
                    "stream",
                ));
            }
        };
        for (name, raw) in &form.fields {
            if name.starts_with("timestamp_granularities") {
                let value = String::from_utf8_lossy(raw);
                if !matches!(value.trim(), "word" | "segment") {
                    return Err(invalid(
                        format!(
                            "Invalid value for 'timestamp_granularities': '{}'. Supported values \
                             are: word, segment.",
                            value.trim()
                        ),
                        "timestamp_granularities",
                    ));
                }
            }
        }
        Ok(Self {
            model,
            language: text(form, "language")?,
            prompt: text(form, "prompt")?,
            format,
            stream,
        })
    }

    /// The action's `data` for `route` (the key is set once the file is stored); `fallback`:
    /// OpenAI was asked for but is not configured, so the default provider transcribes with its
    /// own model.
    pub fn payload(&self, route: &Route, fallback: bool) -> TranscribePayload {
        let (provider, model) = match route {
            Route::OpenAi(model) if !fallback => (Some("openai".to_owned()), Some(model.clone())),
            Route::OpenAi(_) | Route::Default => (None, None),
            Route::Named { provider, model } => (Some(provider.clone()), model.clone()),
        };
        TranscribePayload {
            language: self.language.clone(),
            provider,
            model,
            prompt: self.prompt.clone(),
            ..TranscribePayload::default()
        }
    }
}

/// A refusal of the payload's rules, with OpenAI's parameter for the payload's field.
fn refusal(e: OpenAiError, message: &str) -> OpenAiError {
    for (field, param) in [
        ("language", "language"),
        ("prompt", "prompt"),
        ("provider", "model"),
        ("model", "model"),
    ] {
        if message.starts_with(field) {
            return e.param(param);
        }
    }
    e
}

/// A failure in OpenAI's format; `model` as the request named it.
fn failure(f: &Failure, model: &str) -> OpenAiError {
    match f {
        Failure::Task(error) => match f.code() {
            Some("unknown_provider") => OpenAiError::invalid_request(
                format!(
                    "The model `{model}` does not exist; use an OpenAI transcription model \
                     (whisper-1, gpt-4o-transcribe, gpt-4o-mini-transcribe), `default`, or \
                     `<provider>/<model>` ({}).",
                    error["message"].as_str().unwrap_or_default()
                ),
                Some("model"),
            )
            .code("model_not_found")
            .with_status(axum::http::StatusCode::NOT_FOUND),
            Some("provider_not_configured") => OpenAiError::from_event(error).param("model"),
            Some("unsupported_format" | "invalid_audio" | "file_too_large") => {
                OpenAiError::from_event(error).param("file")
            }
            _ => OpenAiError::from_event(error),
        },
        other => other.app_error().into(),
    }
}

/// Answers a request: stores the recording, transcribes it (falling back to the default
/// provider when OpenAI is asked for but not configured) and formats the transcript.
pub async fn create(
    state: &AppState,
    claims: &Claims,
    request: &TranscriptionRequest,
    upload: UploadForm,
) -> Result<Response, OpenAiError> {
    let route = Route::for_transcription(&request.model);
    let mut payload = request.payload(&route, false);
    if let Err(e) = transcription::check(claims, &upload, &payload) {
        let message = e.to_string();
        return Err(refusal(e.into(), &message));
    }
    // Each request is a session of its own, as with Chat Completions.
    let session_id = state.claim_session(claims, None).await?;
    transcription::store(state, claims, upload, &mut payload).await?;
    let mut task = TranscriptionTask::start(state, claims, session_id, &payload).await?;
    let transcript = match task.transcript().await {
        Ok(t) => t,
        Err(f)
            if matches!(route, Route::OpenAi(_)) && f.code() == Some("provider_not_configured") =>
        {
            tracing::debug!(model = %request.model, "no OpenAI key for transcription; the default provider transcribes");
            let mut fallback = request.payload(&route, true);
            fallback.key = payload.key.clone();
            task = TranscriptionTask::start(state, claims, session_id, &fallback).await?;
            task.transcript()
                .await
                .map_err(|f| failure(&f, &request.model))?
        }
        Err(f) => return Err(failure(&f, &request.model)),
    };
    let text = transcript["text"].as_str().unwrap_or_default().to_owned();
    if request.stream {
        return Ok(events(&text));
    }
    Ok(match request.format.as_str() {
        "text" => plain(text),
        "srt" => plain(transcription::srt(&transcript)),
        "vtt" => plain(transcription::vtt(&transcript)),
        "verbose_json" => Json(verbose(&transcript, request.language.as_deref())).into_response(),
        _ => Json(json!({"text": text})).into_response(),
    })
}

/// A `text/plain` answer, as OpenAI sends `text`, `srt` and `vtt`.
fn plain(body: String) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `verbose_json`: Whisper's shape, with the segments the provider timed (or one spanning the
/// recording). Token-level fields are not known and read as zero; word times are not given.
pub fn verbose(transcript: &Value, asked_language: Option<&str>) -> Value {
    let segments: Vec<Value> = cues(transcript)
        .into_iter()
        .enumerate()
        .map(|(id, (start, end, text))| {
            json!({
                "id": id, "seek": 0, "start": start, "end": end, "text": text,
                "tokens": [], "temperature": 0.0, "avg_logprob": 0.0,
                "compression_ratio": 0.0, "no_speech_prob": 0.0,
            })
        })
        .collect();
    json!({
        "task": "transcribe",
        "language": transcript["language"].as_str().or(asked_language).unwrap_or_default(),
        "duration": transcript["duration_s"].as_f64().unwrap_or(0.0),
        "text": transcript["text"].as_str().unwrap_or_default(),
        "segments": segments,
    })
}

/// The stream of a finished transcript: the words as `transcript.text.delta` (the worker gives
/// one final transcript, so the deltas are its words, whitespace kept: they add up to the text),
/// then `transcript.text.done`.
pub fn stream_events(text: &str) -> Vec<Value> {
    let mut events: Vec<Value> = text
        .split_inclusive(char::is_whitespace)
        .map(|word| json!({"type": "transcript.text.delta", "delta": word}))
        .collect();
    events.push(json!({"type": "transcript.text.done", "text": text}));
    events
}

fn events(text: &str) -> Response {
    let body = futures::stream::iter(
        stream_events(text)
            .into_iter()
            .map(|e| Ok::<_, Infallible>(SseEvent::default().data(e.to_string()))),
    );
    let mut response = Sse::new(body).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form {
            file: None,
            fields: fields
                .iter()
                .map(|(n, v)| ((*n).to_owned(), Bytes::from(v.to_string())))
                .collect(),
        }
    }

    fn refused(fields: &[(&str, &str)]) -> Value {
        TranscriptionRequest::parse(&form(fields))
            .err()
            .map(|e| e.body())
            .unwrap_or_default()
    }

    #[test]
    fn requests_are_checked_and_routed() {
        let r = TranscriptionRequest::parse(&form(&[
            ("model", "whisper-1"),
            ("response_format", "srt"),
            ("stream", "false"),
            ("timestamp_granularities[]", "segment"),
            ("timestamp_granularities[]", "word"),
        ]))
        .unwrap_or_else(|e| panic!("{:?}", e.body()));
        assert_eq!(r.format, "srt");
        assert!(!r.stream);
        let route = Route::for_transcription(&r.model);
        assert_eq!(route, Route::OpenAi("whisper-1".into()));
        assert_eq!(r.payload(&route, false).provider.as_deref(), Some("openai"));
        assert_eq!(r.payload(&route, true).provider, None);
        assert_eq!(
            Route::for_transcription("gpt-4o-mini-transcribe"),
            Route::OpenAi("gpt-4o-mini-transcribe".into())
        );
        assert_eq!(
            Route::for_transcription("deepgram/nova-3"),
            Route::Named {
                provider: "deepgram".into(),
                model: Some("nova-3".into())
            }
        );
        assert_eq!(Route::for_transcription("default"), Route::Default);
        assert_eq!(refused(&[])["error"]["param"], "model");
        assert_eq!(
            refused(&[("model", "whisper-1"), ("response_format", "xml")])["error"]["param"],
            "response_format"
        );
        assert_eq!(
            refused(&[("model", "whisper-1"), ("stream", "maybe")])["error"]["param"],
            "stream"
        );
        assert_eq!(
            refused(&[("model", "whisper-1"), ("timestamp_granularities", "char")])["error"]["param"],
            "timestamp_granularities"
        );
    }

    #[test]
    fn deltas_add_up_to_the_text() {
        let events = stream_events("The quick  fox.");
        let deltas: String = events[..events.len() - 1]
            .iter()
            .map(|e| e["delta"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(deltas, "The quick  fox.");
        assert_eq!(events.len(), 5);
        assert_eq!(
            events[4],
            json!({"type": "transcript.text.done", "text": "The quick  fox."})
        );
        assert_eq!(stream_events("").len(), 1);
    }

    #[test]
    fn verbose_json_has_whispers_shape() {
        let v = verbose(
            &json!({"text": "hi", "language": null, "duration_s": 1.5, "segments": []}),
            Some("en"),
        );
        assert_eq!(v["task"], "transcribe");
        assert_eq!(v["language"], "en");
        assert_eq!(v["duration"], 1.5);
        assert_eq!(v["segments"][0]["id"], 0);
        assert_eq!(v["segments"][0]["end"], 1.5);
        assert_eq!(v["segments"][0]["text"], "hi");
    }
}
