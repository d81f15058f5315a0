//! Gemini speech: `generateContent` with the AUDIO modality. The answer is one piece of raw PCM
//! (16-bit mono, 24 kHz) in base64, wrapped here as WAV when WAV is asked for.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

use common::provider::{client, send};
use common::settings::Secret;

use super::{AudioStream, ProviderError, SpeechProvider, SpeechRequest, one_of};
use crate::audio::{AudioFormat, wav_header};
use crate::config::{ProviderAccess, TtsSettings};

/// The prebuilt voices.
const VOICES: [&str; 30] = [
    "Zephyr",
    "Puck",
    "Charon",
    "Kore",
    "Fenrir",
    "Leda",
    "Orus",
    "Aoede",
    "Callirrhoe",
    "Autonoe",
    "Enceladus",
    "Iapetus",
    "Umbriel",
    "Algieba",
    "Despina",
    "Erinome",
    "Algenib",
    "Rasalgethi",
    "Laomedeia",
    "Achernar",
    "Alnilam",
    "Schedar",
    "Gacrux",
    "Pulcherrima",
    "Achird",
    "Zubenelgenubi",
    "Vindemiatrix",
    "Sadachbia",
    "Sadaltager",
    "Sulafat",
];
/// The sample rate of Gemini's speech.
const RATE: u32 = 24_000;

/// The Gemini speech provider.
pub struct Gemini {
    http: reqwest::Client,
    base: String,
    key: Secret,
    model: String,
    voice: String,
}

impl Gemini {
    /// A client for `access` (`GEMINI_BASE_URL` defaults to Google's endpoint).
    pub fn new(access: &ProviderAccess, settings: &TtsSettings) -> anyhow::Result<Self> {
        let base = access.base_or("https://generativelanguage.googleapis.com");
        Ok(Self {
            http: client()?,
            base,
            key: access.api_key.clone(),
            model: settings.gemini_model.clone(),
            voice: settings.gemini_voice.clone(),
        })
    }
}

/// The base64 PCM of the first audio part of a `generateContent` answer.
fn audio_of(answer: &Value) -> Option<&str> {
    answer["candidates"][0]["content"]["parts"]
        .as_array()?
        .iter()
        .find_map(|p| p["inlineData"]["data"].as_str())
}

#[async_trait]
impl SpeechProvider for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn max_chars(&self) -> usize {
        // Its context is tokens (32k for the speech models); a margin for the instructions.
        20_000
    }

    fn pcm_rate(&self) -> u32 {
        RATE
    }

    fn defaults(&self) -> (&str, &str, AudioFormat) {
        (&self.model, &self.voice, AudioFormat::Wav)
    }

    fn check(&self, request: &SpeechRequest) -> Result<(), String> {
        if !matches!(request.format, AudioFormat::Wav | AudioFormat::Pcm) {
            return Err(format!("gemini speaks wav or pcm, not {}", request.format));
        }
        if request.model.contains(['/', '?', '#', ':']) {
            return Err(format!("unknown gemini model {:?}", request.model));
        }
        one_of("voice", &request.voice, &VOICES)
    }

    async fn speak(
        &self,
        request: &SpeechRequest,
        text: &str,
    ) -> Result<AudioStream, ProviderError> {
        // Gemini takes its style as words before the text.
        let prompt = match &request.instructions {
            Some(style) => format!("{style}: {text}"),
            None => text.to_owned(),
        };
        let body = json!({
            "contents": [{"parts": [{"text": prompt}]}],
            "generationConfig": {
                "responseModalities": ["AUDIO"],
                "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": request.voice}}},
            },
        });
        let url = format!(
            "{}/v1beta/models/{}:generateContent",
            self.base, request.model
        );
        let builder = self
            .http
            .post(url)
            .header("x-goog-api-key", self.key.expose())
            .json(&body);
        let response = send(builder, Some(&self.key)).await?;
        let answer: Value = response
            .json()
            .await
            .map_err(|e| ProviderError::Protocol(format!("unreadable answer: {e}")))?;
        let pcm = audio_of(&answer)
            .ok_or_else(|| ProviderError::Protocol("the answer holds no audio".into()))?;
        let pcm = STANDARD
            .decode(pcm)
            .map_err(|e| ProviderError::Protocol(format!("audio is not base64: {e}")))?;
        let mut clip = Vec::with_capacity(pcm.len() + 44);
        if request.format == AudioFormat::Wav {
            let len = u32::try_from(pcm.len()).unwrap_or(u32::MAX);
            clip.extend_from_slice(&wav_header(RATE, Some(len)));
        }
        clip.extend_from_slice(&pcm);
        Ok(futures::stream::once(async move { Ok(Bytes::from(clip)) }).boxed())
    }
}
