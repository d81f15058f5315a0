//! OpenAI's `POST /v1/audio/speech`: the whole text in, audio bytes streamed back as they are
//! produced (chunked transfer). No input streaming: a chat's text is spoken once it is complete.

use async_trait::async_trait;
use serde_json::json;

use common::provider::{client, send};
use common::settings::Secret;

use super::{AudioStream, ProviderError, SpeechProvider, SpeechRequest, body_stream, one_of};
use crate::audio::AudioFormat;
use crate::config::{ProviderAccess, TtsSettings};

/// The built-in voices.
const VOICES: [&str; 13] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];
/// The voices of `tts-1` and `tts-1-hd`.
const OLD_VOICES: [&str; 9] = [
    "alloy", "ash", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer",
];
/// The longest input OpenAI takes.
const MAX_CHARS: usize = 4096;

/// The OpenAI speech provider.
pub struct OpenAi {
    http: reqwest::Client,
    url: String,
    key: Secret,
    model: String,
    voice: String,
}

impl OpenAi {
    /// A client for `access` (`OPENAI_BASE_URL` defaults to `https://api.openai.com/v1`).
    pub fn new(access: &ProviderAccess, settings: &TtsSettings) -> anyhow::Result<Self> {
        let base = access.base_or("https://api.openai.com/v1");
        Ok(Self {
            http: client()?,
            url: format!("{base}/audio/speech"),
            key: access.api_key.clone(),
            model: settings.openai_model.clone(),
            voice: settings.openai_voice.clone(),
        })
    }
}

#[async_trait]
impl SpeechProvider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn max_chars(&self) -> usize {
        MAX_CHARS
    }

    fn pcm_rate(&self) -> u32 {
        24_000
    }

    fn defaults(&self) -> (&str, &str, AudioFormat) {
        (&self.model, &self.voice, AudioFormat::Mp3)
    }

    fn check(&self, request: &SpeechRequest) -> Result<(), String> {
        let old = matches!(request.model.as_str(), "tts-1" | "tts-1-hd");
        one_of(
            "voice",
            &request.voice,
            if old { &OLD_VOICES } else { &VOICES },
        )?;
        if old && request.instructions.is_some() {
            return Err(format!("{} takes no instructions", request.model));
        }
        Ok(())
    }

    async fn speak(
        &self,
        request: &SpeechRequest,
        text: &str,
    ) -> Result<AudioStream, ProviderError> {
        let mut body = json!({
            "model": request.model,
            "input": text,
            "voice": request.voice,
            "response_format": request.format.name(),
        });
        if let Some(speed) = request.speed {
            body["speed"] = json!(speed);
        }
        if let Some(instructions) = &request.instructions {
            body["instructions"] = json!(instructions);
        }
        let builder = self
            .http
            .post(&self.url)
            .bearer_auth(self.key.expose())
            .json(&body);
        let response = send(builder, Some(&self.key)).await?;
        Ok(body_stream(response))
    }
}
