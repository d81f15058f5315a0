//! The transcription providers: OpenAI (`/v1/audio/transcriptions`, multipart), Deepgram
//! (`POST /v1/listen`, the audio as the body) and Gemini (`generateContent` with the audio as an
//! inline part), each speaking its real API.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use common::provider::{ProviderError, client, send};
use common::settings::Secret;

use super::{Segment, Transcript};
use crate::config::ProviderAccess;

/// Audio to transcribe, as it was stored or sent.
#[derive(Debug, Clone)]
pub struct Audio {
    /// Its bytes.
    pub bytes: Bytes,
    /// Its format (`wav`, `mp3`, …; `pcm` is 16-bit little-endian mono at `sample_rate`).
    pub format: String,
    /// The sample rate of `pcm`.
    pub sample_rate: Option<u32>,
}

impl Audio {
    /// Its MIME type.
    pub fn mime(&self) -> String {
        match self.format.as_str() {
            "wav" => "audio/wav".into(),
            "mp3" => "audio/mpeg".into(),
            "ogg" | "opus" => "audio/ogg".into(),
            "webm" => "audio/webm".into(),
            "flac" => "audio/flac".into(),
            "m4a" | "mp4" => "audio/mp4".into(),
            "pcm" => format!("audio/L16;rate={}", self.sample_rate.unwrap_or(16_000)),
            other => format!("audio/{other}"),
        }
    }
}

/// What a request asks besides the audio.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The model; the provider's default when absent.
    pub model: Option<String>,
    /// The spoken language.
    pub language: Option<String>,
    /// Words that help.
    pub prompt: Option<String>,
}

/// A transcription provider.
#[async_trait]
pub trait Transcriber: Send + Sync {
    /// Its name in requests and events.
    fn name(&self) -> &'static str;
    /// Its model when the request names none.
    fn default_model(&self) -> &str;
    /// It runs on this machine, at no price per request: live transcription may then ask it
    /// again and again for interim results.
    fn runs_locally(&self) -> bool {
        false
    }
    /// Transcribes a whole recording.
    async fn transcribe(
        &self,
        audio: &Audio,
        options: &Options,
    ) -> Result<Transcript, ProviderError>;
}

fn protocol(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Protocol(format!("unreadable answer: {e}"))
}

fn seconds(v: &Value) -> f64 {
    v.as_f64().unwrap_or_default()
}

/// OpenAI's transcriptions.
pub struct OpenAiStt {
    http: reqwest::Client,
    url: String,
    key: Secret,
}

impl OpenAiStt {
    /// A client for `access`.
    pub fn new(access: &ProviderAccess) -> anyhow::Result<Self> {
        let base = access.base_or("https://api.openai.com/v1");
        Ok(Self {
            http: client()?,
            url: format!("{base}/audio/transcriptions"),
            key: access.api_key.clone(),
        })
    }
}

#[async_trait]
impl Transcriber for OpenAiStt {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn default_model(&self) -> &str {
        "whisper-1"
    }

    async fn transcribe(
        &self,
        audio: &Audio,
        options: &Options,
    ) -> Result<Transcript, ProviderError> {
        let model = options
            .model
            .clone()
            .unwrap_or_else(|| self.default_model().to_owned());
        // whisper-1 gives segments with times; the gpt-4o models only json.
        let verbose = model == "whisper-1";
        let file = reqwest::multipart::Part::bytes(audio.bytes.to_vec())
            .file_name(format!("audio.{}", audio.format))
            .mime_str(&audio.mime())
            .map_err(|e| ProviderError::Unsupported(e.to_string()))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", model)
            .text(
                "response_format",
                if verbose { "verbose_json" } else { "json" },
            );
        if verbose {
            form = form.text("timestamp_granularities[]", "segment");
        }
        if let Some(language) = &options.language {
            form = form.text("language", language.clone());
        }
        if let Some(prompt) = &options.prompt {
            form = form.text("prompt", prompt.clone());
        }
        let builder = self
            .http
            .post(&self.url)
            .bearer_auth(self.key.expose())
            .multipart(form);
        let answer: Value = send(builder, Some(&self.key))
            .await?
            .json()
            .await
            .map_err(protocol)?;
        let text = answer["text"]
            .as_str()
            .ok_or_else(|| protocol("no text"))?
            .trim()
            .to_owned();
        let segments: Vec<Segment> = answer["segments"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|s| Segment {
                        start: seconds(&s["start"]),
                        end: seconds(&s["end"]),
                        text: s["text"].as_str().unwrap_or_default().trim().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Transcript {
            duration_secs: answer["duration"]
                .as_f64()
                .or_else(|| segments.last().map(|s| s.end))
                .unwrap_or_default(),
            language: answer["language"]
                .as_str()
                .map(language_code)
                .or_else(|| options.language.clone())
                .unwrap_or_default(),
            text,
            segments,
        })
    }
}

/// OpenAI's verbose answer names the language in words (`english`).
fn language_code(name: &str) -> String {
    match name {
        "english" => "en".into(),
        other => other.into(),
    }
}

/// Deepgram's pre-recorded transcription.
pub struct DeepgramStt {
    http: reqwest::Client,
    url: String,
    key: Secret,
}

impl DeepgramStt {
    /// A client for `access` (`DEEPGRAM_BASE_URL` defaults to `https://api.deepgram.com`).
    pub fn new(access: &ProviderAccess) -> anyhow::Result<Self> {
        let base = access.base_or("https://api.deepgram.com");
        Ok(Self {
            http: client()?,
            url: format!("{base}/v1/listen"),
            key: access.api_key.clone(),
        })
    }
}

#[async_trait]
impl Transcriber for DeepgramStt {
    fn name(&self) -> &'static str {
        "deepgram"
    }

    fn default_model(&self) -> &str {
        "nova-3"
    }

    async fn transcribe(
        &self,
        audio: &Audio,
        options: &Options,
    ) -> Result<Transcript, ProviderError> {
        let model = options
            .model
            .clone()
            .unwrap_or_else(|| self.default_model().to_owned());
        let mut query = vec![
            ("model", model),
            ("smart_format", "true".to_owned()),
            ("punctuate", "true".to_owned()),
            ("utterances", "false".to_owned()),
        ];
        if let Some(language) = &options.language {
            query.push(("language", language.clone()));
        }
        if audio.format == "pcm" {
            query.push(("encoding", "linear16".into()));
            query.push((
                "sample_rate",
                audio.sample_rate.unwrap_or(16_000).to_string(),
            ));
            query.push(("channels", "1".into()));
        }
        let builder = self
            .http
            .post(&self.url)
            .query(&query)
            .header("authorization", format!("Token {}", self.key.expose()))
            .header("content-type", audio.mime())
            .body(audio.bytes.clone());
        let answer: Value = send(builder, Some(&self.key))
            .await?
            .json()
            .await
            .map_err(protocol)?;
        let best = &answer["results"]["channels"][0]["alternatives"][0];
        let text = best["transcript"]
            .as_str()
            .ok_or_else(|| protocol("no transcript"))?
            .to_owned();
        let words = best["words"].as_array().cloned().unwrap_or_default();
        let segments = if words.is_empty() {
            Vec::new()
        } else {
            vec![Segment {
                start: seconds(&words[0]["start"]),
                end: seconds(&words[words.len() - 1]["end"]),
                text: text.clone(),
            }]
        };
        Ok(Transcript {
            text,
            language: options.language.clone().unwrap_or_else(|| "en".into()),
            duration_secs: seconds(&answer["metadata"]["duration"]),
            segments,
        })
    }
}

/// Gemini's audio understanding, asked for a transcript.
pub struct GeminiStt {
    http: reqwest::Client,
    base: String,
    key: Secret,
}

impl GeminiStt {
    /// A client for `access`.
    pub fn new(access: &ProviderAccess) -> anyhow::Result<Self> {
        let base = access.base_or("https://generativelanguage.googleapis.com");
        Ok(Self {
            http: client()?,
            base,
            key: access.api_key.clone(),
        })
    }
}

#[async_trait]
impl Transcriber for GeminiStt {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn default_model(&self) -> &str {
        "gemini-2.5-flash"
    }

    async fn transcribe(
        &self,
        audio: &Audio,
        options: &Options,
    ) -> Result<Transcript, ProviderError> {
        let model = options
            .model
            .clone()
            .unwrap_or_else(|| self.default_model().to_owned());
        if model.contains(['/', '?', '#', ':']) {
            return Err(ProviderError::Unsupported(format!(
                "unknown gemini model {model:?}"
            )));
        }
        let mut instruction = "Transcribe this audio. Answer with the transcript only.".to_owned();
        if let Some(prompt) = &options.prompt {
            instruction.push_str(&format!(" Words that may occur: {prompt}"));
        }
        let body = json!({
            "contents": [{"role": "user", "parts": [
                {"text": instruction},
                {"inlineData": {"mimeType": audio.mime(), "data": STANDARD.encode(&audio.bytes)}},
            ]}],
        });
        let url = format!("{}/v1beta/models/{model}:generateContent", self.base);
        let builder = self
            .http
            .post(url)
            .header("x-goog-api-key", self.key.expose())
            .json(&body);
        let answer: Value = send(builder, Some(&self.key))
            .await?
            .json()
            .await
            .map_err(protocol)?;
        let text: String = answer["candidates"][0]["content"]["parts"]
            .as_array()
            .map(|parts| {
                parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .concat()
            })
            .ok_or_else(|| protocol("no text"))?;
        Ok(Transcript {
            text: text.trim().to_owned(),
            language: options.language.clone().unwrap_or_else(|| "en".into()),
            duration_secs: 0.0,
            segments: Vec::new(),
        })
    }
}
