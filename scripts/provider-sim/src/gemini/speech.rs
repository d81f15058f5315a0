//! Gemini text to speech: `generateContent` (or `streamGenerateContent`) with
//! `generationConfig.responseModalities: ["AUDIO"]` answers with 24 kHz 16-bit PCM in
//! `inlineData` parts instead of text.

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::Value;

use super::request::{at, field};
use super::wire::{Candidate, Content, GenerateContentResponse, InlineData, Part, UsageMetadata};
use super::{
    Framer, Framing, JSON, error_event, failure_response, malformed_complete, response_id,
};
use crate::audio::{AudioFormat, Clip, Codec};
use crate::engine::{Failure, Turn};
use crate::json::to_json;

/// The audio's MIME type: raw signed 16-bit little-endian mono PCM at 24 kHz.
const MIME_TYPE: &str = "audio/L16;codec=pcm;rate=24000";
const RATE: u32 = 24_000;
/// `data` of an `inlineData` the `bad_audio` behaviour sends: not base64.
const NOT_BASE64: &str = "!!not base64!!";
/// The prebuilt voices of the speech models.
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

/// The audio format of every Gemini speech reply.
pub(super) const FORMAT: AudioFormat = AudioFormat {
    codec: Codec::Pcm,
    rate: RATE,
};

/// Whether the request asks for audio, after checking the voices it names against the
/// prebuilt ones; `Err` holds the `INVALID_ARGUMENT` message.
pub(super) fn requested(body: &Value) -> Result<bool, String> {
    let Some(config) = body
        .as_object()
        .and_then(|o| field(o, "generationConfig", "generation_config"))
    else {
        return Ok(false);
    };
    let audio = at(config, "responseModalities", "response_modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| {
            m.iter()
                .any(|m| m.as_str().is_some_and(|m| m.eq_ignore_ascii_case("audio")))
        });
    if !audio {
        return Ok(false);
    }
    let Some(speech) = at(config, "speechConfig", "speech_config") else {
        return Ok(true);
    };
    let single = at(speech, "voiceConfig", "voice_config");
    let multi = at(
        speech,
        "multiSpeakerVoiceConfig",
        "multi_speaker_voice_config",
    )
    .and_then(|m| at(m, "speakerVoiceConfigs", "speaker_voice_configs"))
    .and_then(Value::as_array);
    let voice_configs = single.into_iter().chain(
        multi
            .into_iter()
            .flatten()
            .filter_map(|s| at(s, "voiceConfig", "voice_config")),
    );
    for voice_config in voice_configs {
        let name = at(voice_config, "prebuiltVoiceConfig", "prebuilt_voice_config")
            .and_then(|p| at(p, "voiceName", "voice_name"))
            .and_then(Value::as_str);
        if let Some(name) = name
            && !VOICES.iter().any(|v| v.eq_ignore_ascii_case(name))
        {
            return Err(format!(
                "Voice name '{name}' is not supported. Use one of the prebuilt voices, e.g. Kore or Puck."
            ));
        }
    }
    Ok(true)
}

/// The text to speak: every text part of every content, joined.
pub(super) fn text_of(body: &Value) -> String {
    body.get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("parts").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One speech request and its reply: chunks of PCM, each in its own response when streamed.
pub(super) struct SpeechTurn {
    model: String,
    response_id: String,
    framer: Framer,
    clip: Clip,
    prompt_tokens: u64,
    sent_units: usize,
}

impl SpeechTurn {
    pub(super) fn new(
        clip: Clip,
        model: &str,
        framing: Option<Framing>,
        prompt_tokens: u64,
    ) -> Self {
        Self {
            model: model.to_owned(),
            response_id: response_id(),
            framer: Framer::new(framing),
            clip,
            prompt_tokens,
            sent_units: 0,
        }
    }

    /// One response carrying `data` (base64 audio, or nothing), with the first `sent` chunks
    /// counted as output tokens (one each).
    fn response(
        &self,
        data: Option<String>,
        finish_reason: Option<&'static str>,
        sent: usize,
    ) -> String {
        let parts = data
            .map(|data| Part::InlineData {
                inline_data: InlineData {
                    mime_type: MIME_TYPE,
                    data,
                },
            })
            .into_iter()
            .collect();
        let candidates = sent as u64;
        let response = GenerateContentResponse {
            candidates: vec![Candidate {
                content: Content {
                    parts,
                    role: "model",
                },
                finish_reason,
                index: 0,
            }],
            usage_metadata: UsageMetadata {
                prompt_token_count: self.prompt_tokens,
                candidates_token_count: candidates,
                total_token_count: self.prompt_tokens + candidates,
                prompt_tokens_details: Vec::new(),
                thoughts_token_count: 0,
            },
            model_version: &self.model,
            response_id: &self.response_id,
        };
        to_json(&response)
    }

    fn chunk(&mut self, index: usize, finish_reason: Option<&'static str>) -> Bytes {
        self.sent_units = self.sent_units.max(index + 1);
        let data = BASE64.encode(self.clip.chunk(index));
        let json = self.response(Some(data), finish_reason, self.sent_units);
        self.framer.element(&json)
    }

    /// A chunk without audio that finishes the reply, after a broken one.
    fn finish_chunk(&mut self) -> Bytes {
        let json = self.response(None, Some("STOP"), self.sent_units);
        self.framer.element(&json)
    }

    /// The non-streamed reply: all the audio in one part.
    fn whole(&self, data: String) -> Response {
        let json = self.response(Some(data), Some("STOP"), self.clip.chunk_count());
        let mut response = json.into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
        response
    }
}

impl Turn for SpeechTurn {
    fn streaming(&self) -> bool {
        self.framer.streaming()
    }

    fn units(&self) -> usize {
        self.clip.chunk_count()
    }

    fn opening(&mut self) -> Vec<Bytes> {
        self.framer.opening()
    }

    fn unit(&mut self, index: usize) -> Bytes {
        self.chunk(index, None)
    }

    /// The last chunk carries `finishReason`, as a text reply's does.
    fn final_unit(&mut self, index: usize) -> Bytes {
        self.chunk(index, Some("STOP"))
    }

    fn closing(&mut self) -> Vec<Bytes> {
        self.framer.end_of_array().into_iter().collect()
    }

    fn malformed(&mut self) -> Vec<Bytes> {
        let mut events = vec![self.framer.element("{not json"), self.finish_chunk()];
        events.extend(self.framer.end_of_array());
        events
    }

    fn bad_audio(&mut self) -> Vec<Bytes> {
        let json = self.response(Some(NOT_BASE64.to_owned()), None, self.sent_units);
        let mut events = vec![self.framer.element(&json), self.finish_chunk()];
        events.extend(self.framer.end_of_array());
        events
    }

    fn error_event(&mut self) -> Vec<Bytes> {
        error_event(&mut self.framer)
    }

    fn stream_content_type(&self) -> &'static str {
        self.framer.content_type()
    }

    fn complete(&self) -> Response {
        self.whole(BASE64.encode(self.clip.whole()))
    }

    fn malformed_complete(&self) -> Response {
        malformed_complete()
    }

    fn bad_audio_complete(&self) -> Response {
        self.whole(NOT_BASE64.to_owned())
    }

    fn failure(&self, failure: Failure) -> Response {
        failure_response(failure, &self.model)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(config: Value) -> Value {
        json!({"contents": [{"parts": [{"text": "Say hi"}]}], "generationConfig": config})
    }

    #[test]
    fn audio_is_asked_by_the_response_modalities() {
        assert_eq!(requested(&json!({"contents": []})), Ok(false));
        assert_eq!(requested(&body(json!({"temperature": 1}))), Ok(false));
        assert_eq!(
            requested(&body(json!({"responseModalities": ["TEXT"]}))),
            Ok(false)
        );
        assert_eq!(
            requested(&body(json!({"responseModalities": ["AUDIO"]}))),
            Ok(true)
        );
        assert_eq!(
            requested(&json!({"generation_config": {"response_modalities": ["audio"]}})),
            Ok(true)
        );
    }

    #[test]
    fn voices_must_be_prebuilt() {
        let voice = |name: &str| {
            body(
                json!({"responseModalities": ["AUDIO"], "speechConfig": {"voiceConfig":
                {"prebuiltVoiceConfig": {"voiceName": name}}}}),
            )
        };
        assert_eq!(requested(&voice("Kore")), Ok(true));
        assert!(requested(&voice("Bob")).is_err());
        let multi = body(json!({"responseModalities": ["AUDIO"], "speechConfig": {
        "multiSpeakerVoiceConfig": {"speakerVoiceConfigs": [
            {"speaker": "A", "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}},
            {"speaker": "B", "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Nobody"}}}
        ]}}}));
        assert!(requested(&multi).is_err());
    }

    #[test]
    fn text_joins_every_part() {
        let body = json!({"contents": [{"parts": [{"text": "Say"}, {"text": "hi"}]}]});
        assert_eq!(text_of(&body), "Say hi");
    }
}
