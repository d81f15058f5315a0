//! OpenAI speech to text, `POST /v1/audio/transcriptions` and `/v1/audio/translations`: a
//! multipart form with the audio `file`, answered in the requested `response_format`, or as
//! `transcript.text.delta` and `transcript.text.done` events with `stream=true`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{
    Invalid, bearer_key, error_with_param, invalid_request, invalid_value, missing, no_api_key,
};
use crate::audio::probe::Container;
use crate::content::word_count;
use crate::engine;
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;
use crate::transcript::Transcript;

mod form;
mod reply;

use form::{BodyError, Form, MAX_REQUEST_BYTES, Upload, read_body};
use reply::{Granularity, ResponseFormat, TranscriptionTurn};

/// Shortest audio the API transcribes.
const MIN_AUDIO: Duration = Duration::from_millis(100);
/// File extensions the API accepts, as its error message lists them.
const EXTENSIONS: [&str; 10] = [
    "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm",
];
/// Values of `response_format`, `timestamp_granularities[]` and `include[]`.
const FORMATS: [&str; 6] = [
    "json",
    "text",
    "srt",
    "verbose_json",
    "vtt",
    "diarized_json",
];
const GRANULARITIES: [&str; 2] = ["word", "segment"];
const INCLUDES: [&str; 1] = ["logprobs"];
/// The one model that translates.
const WHISPER: &str = "whisper-1";

/// What the request asks the model to do with the speech.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Task {
    /// Write down what is said, in its language.
    Transcribe,
    /// Write it down in English.
    Translate,
}

/// `POST /v1/audio/transcriptions`.
pub(crate) async fn transcriptions(state: State<Arc<Shared>>, request: Request) -> Response {
    serve(state, request, Task::Transcribe).await
}

/// `POST /v1/audio/translations`.
pub(crate) async fn translations(state: State<Arc<Shared>>, request: Request) -> Response {
    serve(state, request, Task::Translate).await
}

async fn serve(State(shared): State<Arc<Shared>>, request: Request, task: Task) -> Response {
    let (parts, body) = request.into_parts();
    // The real API checks the key before it reads the body.
    let Some(authorization) = bearer_key(&parts.headers) else {
        return no_api_key();
    };
    let uri = parts.uri.clone();
    let bytes = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge { read }) => {
            return error_with_param(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "413: Maximum content size limit ({MAX_REQUEST_BYTES}) exceeded ({read} bytes read)"
                ),
                "server_error",
                None,
                None,
            );
        }
        Err(BodyError::Broken) => {
            return invalid_request("The request body could not be read.".to_owned(), None);
        }
    };
    let form = match Form::read(Request::from_parts(parts, Body::from(bytes))).await {
        Ok(form) => form,
        Err(invalid) => return invalid.into_response(),
    };
    let request = match TranscriptionRequest::parse(&form, task) {
        Ok(request) => request,
        Err(invalid) => return invalid.into_response(),
    };
    let transcript = Transcript::new(&shared.config().transcript);
    let incoming = Incoming::new(
        WireFormat::OpenAiTranscription,
        &uri,
        Some(authorization),
        form.record(),
    )
    .with_audio(request.audio_bytes, request.duration);
    let (behaviour, guard) = shared.begin(incoming);
    tracing::debug!(?behaviour, stream = request.stream, "openai transcription");
    let turn = TranscriptionTurn::new(request, &transcript);
    engine::respond(
        turn,
        &behaviour,
        engine::Timing::from(shared.config()),
        guard,
        shared.stop_token(),
    )
    .await
}

/// Which kind of model serves the request: the formats and options it has differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    /// `whisper-1`: every response format, timestamps, translation; no streaming.
    Whisper,
    /// `gpt-4o-transcribe`, `gpt-4o-mini-transcribe` and their kin: `json` or `text`, token
    /// usage, streaming and log probabilities.
    Gpt,
}

impl Family {
    fn of(model: &str) -> Option<Self> {
        if model == WHISPER {
            Some(Family::Whisper)
        } else if model.starts_with("gpt-") && model.contains("transcribe") {
            Some(Family::Gpt)
        } else {
            None
        }
    }
}

/// A transcription request the simulator accepted.
pub(super) struct TranscriptionRequest {
    pub(super) task: Task,
    pub(super) model: String,
    pub(super) family: Family,
    pub(super) format: ResponseFormat,
    pub(super) granularity: Granularity,
    /// Streamed as server-sent events (only the GPT models stream; whisper-1 ignores it).
    pub(super) stream: bool,
    /// `include[]=logprobs` on a model that has them.
    pub(super) logprobs: bool,
    pub(super) language: Option<String>,
    pub(super) temperature: f64,
    /// Words of the `prompt`, counted as text input tokens.
    pub(super) prompt_tokens: u64,
    pub(super) audio_bytes: usize,
    pub(super) duration: Duration,
}

impl TranscriptionRequest {
    /// Checks the fields and the file as the real API does, with its messages and codes.
    fn parse(form: &Form, task: Task) -> Result<Self, Invalid> {
        let Some(file) = &form.file else {
            return Err(missing("file"));
        };
        let model = match form.one("model") {
            Some(model) if !model.is_empty() => model.to_owned(),
            _ => {
                return Err(Invalid::new(
                    "you must provide a model parameter".to_owned(),
                    Some("model"),
                ));
            }
        };
        let family = match (Family::of(&model), task) {
            (Some(Family::Gpt), Task::Translate) => {
                return Err(invalid_value("model", &model, &[WHISPER]));
            }
            (Some(family), _) => family,
            (None, _) => {
                return Err(Invalid::new(
                    format!("The model `{model}` does not exist or you do not have access to it."),
                    None,
                )
                .with_code("model_not_found")
                .with_status(StatusCode::NOT_FOUND));
            }
        };
        let format = response_format(form.one("response_format"), &model, family)?;
        let mut granularity = Granularity::default();
        for value in form.all("timestamp_granularities") {
            match value {
                "word" => granularity.words = true,
                "segment" => granularity.segments = true,
                other => {
                    return Err(invalid_value(
                        "timestamp_granularities",
                        other,
                        &GRANULARITIES,
                    ));
                }
            }
        }
        for value in form.all("include") {
            if !INCLUDES.contains(&value) {
                return Err(invalid_value("include", value, &INCLUDES));
            }
        }
        let stream = match form.one("stream").map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Invalid::new(
                    format!(
                        "Invalid type for 'stream': expected a boolean, but got '{other}' instead."
                    ),
                    Some("stream"),
                )
                .with_code("invalid_type"));
            }
        };
        let temperature = temperature(form.one("temperature"))?;
        let language = match form.one("language") {
            None | Some("") => None,
            Some(code) if code.len() == 2 && code.bytes().all(|b| b.is_ascii_lowercase()) => {
                Some(code.to_owned())
            }
            Some(other) => {
                return Err(Invalid::new(
                    format!("Invalid language '{other}'. Language parameter must be specified in ISO-639-1 format."),
                    Some("language"),
                )
                .with_code("invalid_language_format"));
            }
        };
        let duration = audio_duration(file)?;
        Ok(Self {
            task,
            family,
            format,
            granularity,
            // whisper-1 ignores `stream`, as the API reference says: the answer is the usual body.
            stream: stream && family == Family::Gpt,
            logprobs: family == Family::Gpt
                && format == ResponseFormat::Json
                && form.all("include").contains(&"logprobs"),
            language,
            temperature,
            prompt_tokens: form.one("prompt").map_or(0, word_count),
            audio_bytes: file.bytes.len(),
            duration,
            model,
        })
    }
}

fn response_format(
    value: Option<&str>,
    model: &str,
    family: Family,
) -> Result<ResponseFormat, Invalid> {
    let format = match value {
        None | Some("json") => ResponseFormat::Json,
        Some("text") => ResponseFormat::Text,
        Some("srt") => ResponseFormat::Srt,
        Some("vtt") => ResponseFormat::Vtt,
        Some("verbose_json") => ResponseFormat::VerboseJson,
        // Only the diarizing model writes diarized JSON, and the simulator has no such model.
        Some(name @ "diarized_json") => return Err(incompatible(name, model)),
        Some(other) => return Err(invalid_value("response_format", other, &FORMATS)),
    };
    if family == Family::Gpt && !matches!(format, ResponseFormat::Json | ResponseFormat::Text) {
        return Err(incompatible(value.unwrap_or_default(), model));
    }
    Ok(format)
}

fn incompatible(format: &str, model: &str) -> Invalid {
    Invalid::new(
        format!("response_format '{format}' is not compatible with model '{model}'. Use 'json' or 'text' instead."),
        Some("response_format"),
    )
    .with_code("unsupported_value")
}

fn temperature(value: Option<&str>) -> Result<f64, Invalid> {
    let Some(value) = value else {
        return Ok(0.0);
    };
    let Ok(temperature) = value.trim().parse::<f64>() else {
        return Err(Invalid::new(
            format!(
                "Invalid type for 'temperature': expected a number, but got '{value}' instead."
            ),
            Some("temperature"),
        )
        .with_code("invalid_type"));
    };
    if !(0.0..=1.0).contains(&temperature) {
        return Err(Invalid::new(
            format!("Invalid 'temperature': expected a value between 0 and 1, but got {temperature} instead."),
            Some("temperature"),
        )
        .with_code("invalid_value"));
    }
    Ok(temperature)
}

/// How long the uploaded audio lasts, after the checks the API makes of a file: a supported
/// extension, a readable WAV, at least [`MIN_AUDIO`] of sound.
fn audio_duration(file: &Upload) -> Result<Duration, Invalid> {
    let extension = file
        .filename
        .as_deref()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, extension)| extension.to_ascii_lowercase());
    let Some(extension) = extension.filter(|e| EXTENSIONS.contains(&e.as_str())) else {
        let supported = EXTENSIONS
            .iter()
            .map(|e| format!("'{e}'"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Invalid::new(
            format!("Invalid file format. Supported formats: [{supported}]"),
            None,
        ));
    };
    let corrupt = || {
        Invalid::new(
            "Audio file might be corrupted or unsupported".to_owned(),
            Some("file"),
        )
        .with_code("invalid_value")
    };
    let container = Container::sniff(&file.bytes, None).map_err(|_| corrupt())?;
    if extension == "wav" && !file.bytes.is_empty() && !matches!(container, Container::Wav { .. }) {
        return Err(corrupt());
    }
    let duration = container.duration(file.bytes.len());
    if duration < MIN_AUDIO {
        return Err(Invalid::new(
            "Audio file is too short. Minimum audio length is 0.1 seconds.".to_owned(),
            Some("file"),
        )
        .with_code("audio_too_short"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn form(fields: &[(&str, &str)], filename: &str, bytes: &[u8]) -> Form {
        Form {
            fields: fields
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            bracketed: vec!["timestamp_granularities".to_owned()],
            file: Some(Upload {
                filename: Some(filename.to_owned()),
                content_type: Some("audio/wav".to_owned()),
                bytes: Bytes::copy_from_slice(bytes),
            }),
        }
    }

    /// A WAV header for 16 kHz mono 16-bit audio, and `secs` seconds of silence.
    fn wav(secs: f64) -> Vec<u8> {
        let data = (secs * 32_000.0) as u32;
        let mut bytes = b"RIFF".to_vec();
        bytes.extend_from_slice(&(data + 36).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&[1, 0, 1, 0]);
        bytes.extend_from_slice(&16_000u32.to_le_bytes());
        bytes.extend_from_slice(&32_000u32.to_le_bytes());
        bytes.extend_from_slice(&[2, 0, 16, 0]);
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&data.to_le_bytes());
        bytes.resize(44 + data as usize, 0);
        bytes
    }

    fn refused(fields: &[(&str, &str)], filename: &str, bytes: &[u8]) -> Invalid {
        match TranscriptionRequest::parse(&form(fields, filename, bytes), Task::Transcribe) {
            Ok(_) => panic!("accepted {fields:?} {filename}"),
            Err(invalid) => invalid,
        }
    }

    #[test]
    fn a_whisper_request_with_every_option() {
        let form = form(
            &[
                ("model", "whisper-1"),
                ("response_format", "verbose_json"),
                ("timestamp_granularities", "word"),
                ("timestamp_granularities", "segment"),
                ("language", "fr"),
                ("temperature", "0.2"),
                ("prompt", "two words"),
                ("stream", "true"),
            ],
            "speech.WAV",
            &wav(1.5),
        );
        let Ok(request) = TranscriptionRequest::parse(&form, Task::Transcribe) else {
            panic!("refused");
        };
        assert_eq!(request.format, ResponseFormat::VerboseJson);
        assert!(request.granularity.words && request.granularity.segments);
        assert!(!request.stream, "whisper-1 ignores stream");
        assert_eq!(request.language.as_deref(), Some("fr"));
        assert_eq!(request.prompt_tokens, 2);
        assert_eq!(request.duration, Duration::from_millis(1_500));
        assert_eq!(
            form.record()["timestamp_granularities"],
            serde_json::json!(["word", "segment"])
        );
        assert_eq!(form.record()["file"]["bytes"], 44 + 48_000);
    }

    #[test]
    fn the_api_refusals() {
        let wav = wav(1.0);
        let gpt = ("model", "gpt-4o-transcribe");
        let verbose = refused(&[gpt, ("response_format", "srt")], "a.wav", &wav);
        assert_eq!(verbose.code, Some("unsupported_value"));
        assert_eq!(refused(&[("model", "tts-1")], "a.wav", &wav).status, 404);
        assert_eq!(
            refused(&[gpt, ("response_format", "xml")], "a.wav", &wav).code,
            Some("invalid_value")
        );
        assert_eq!(
            refused(&[gpt, ("temperature", "1.5")], "a.wav", &wav).param,
            Some("temperature")
        );
        assert_eq!(
            refused(&[gpt, ("language", "english")], "a.wav", &wav).param,
            Some("language")
        );
        let format = refused(&[gpt], "a.aiff", &wav);
        assert!(
            format.message.starts_with("Invalid file format."),
            "{}",
            format.message
        );
        assert_eq!(refused(&[gpt], "a.wav", &[]).code, Some("audio_too_short"));
        assert_eq!(
            refused(&[gpt], "a.wav", &wav[..44]).code,
            Some("audio_too_short")
        );
        assert_eq!(
            refused(&[gpt], "a.wav", b"not a wav file at all").code,
            Some("invalid_value")
        );
        assert_eq!(refused(&[], "a.wav", &wav).param, Some("model"));
        let translate = TranscriptionRequest::parse(&form(&[gpt], "a.wav", &wav), Task::Translate);
        assert!(translate.is_err());
    }

    #[test]
    fn gpt_models_stream_and_give_logprobs() {
        let form = form(
            &[
                ("model", "gpt-4o-mini-transcribe"),
                ("stream", "True"),
                ("include", "logprobs"),
            ],
            "clip.mp3",
            &[0; 16_000],
        );
        let Ok(request) = TranscriptionRequest::parse(&form, Task::Transcribe) else {
            panic!("refused");
        };
        assert!(request.stream);
        assert!(request.logprobs);
        // Not an MPEG frame: the nominal 16 kB/s.
        assert_eq!(request.duration, Duration::from_secs(1));
    }
}
