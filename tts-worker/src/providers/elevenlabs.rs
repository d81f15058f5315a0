//! ElevenLabs: a whole text over HTTP (`/v1/text-to-speech/{voice}/stream`, audio bytes as they
//! are made), and text while it is written over the `stream-input` WebSocket: an init message
//! (voice settings, `generation_config.chunk_length_schedule`), text messages, `{"text":""}` at
//! the end; `audio` messages (base64) come back until `isFinal`. Leaving early sends a close
//! frame, so the provider stops.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use common::provider::{client, send};
use common::settings::Secret;

use super::{
    AudioStream, ProviderError, SpeechProvider, SpeechRequest, TextStream, body_stream,
    upgrade_error,
};
use crate::audio::{AudioFormat, wav_header};
use crate::config::{ProviderAccess, TtsSettings};

/// The sample rate asked for `pcm` and `wav`.
const RATE: u32 = 24_000;
/// Longest wait for the WebSocket's answer to the upgrade.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The ElevenLabs provider.
pub struct ElevenLabs {
    http: reqwest::Client,
    base: String,
    key: Secret,
    model: String,
    voice: String,
}

impl ElevenLabs {
    /// A client for `access` (`ELEVENLABS_BASE_URL` defaults to `https://api.elevenlabs.io`).
    pub fn new(access: &ProviderAccess, settings: &TtsSettings) -> anyhow::Result<Self> {
        let base = access.base_or("https://api.elevenlabs.io");
        Ok(Self {
            http: client()?,
            base,
            key: access.api_key.clone(),
            model: settings.elevenlabs_model.clone(),
            voice: settings.elevenlabs_voice.clone(),
        })
    }

    /// ElevenLabs' `output_format` for a format.
    fn output_format(format: AudioFormat) -> &'static str {
        match format {
            AudioFormat::Mp3 => "mp3_44100_128",
            _ => "pcm_24000",
        }
    }

    fn voice_settings(request: &SpeechRequest) -> Value {
        match request.speed {
            // ElevenLabs' own range is narrower than the request's.
            Some(speed) => json!({"speed": speed.clamp(0.7, 1.2)}),
            None => json!({}),
        }
    }

    /// The audio as the client asked: WAV gets a header for a stream of unknown length first.
    fn shaped(format: AudioFormat, audio: AudioStream) -> AudioStream {
        if format != AudioFormat::Wav {
            return audio;
        }
        let header = Bytes::copy_from_slice(&wav_header(RATE, None));
        futures::stream::once(async move { Ok(header) })
            .chain(audio)
            .boxed()
    }
}

#[async_trait]
impl SpeechProvider for ElevenLabs {
    fn name(&self) -> &'static str {
        "elevenlabs"
    }

    fn input_streaming(&self) -> bool {
        true
    }

    fn max_chars(&self) -> usize {
        10_000
    }

    fn pcm_rate(&self) -> u32 {
        RATE
    }

    fn defaults(&self) -> (&str, &str, AudioFormat) {
        (&self.model, &self.voice, AudioFormat::Mp3)
    }

    fn check(&self, request: &SpeechRequest) -> Result<(), String> {
        if !matches!(
            request.format,
            AudioFormat::Mp3 | AudioFormat::Pcm | AudioFormat::Wav
        ) {
            return Err(format!(
                "elevenlabs speaks mp3, wav or pcm, not {}",
                request.format
            ));
        }
        let id_like = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !id_like(&request.voice) {
            return Err(format!(
                "an elevenlabs voice is a voice id, not {:?}",
                request.voice
            ));
        }
        if !id_like(&request.model) {
            return Err(format!("unknown elevenlabs model {:?}", request.model));
        }
        Ok(())
    }

    async fn speak(
        &self,
        request: &SpeechRequest,
        text: &str,
    ) -> Result<AudioStream, ProviderError> {
        let url = format!(
            "{}/v1/text-to-speech/{}/stream?output_format={}",
            self.base,
            request.voice,
            Self::output_format(request.format)
        );
        let body = json!({
            "text": text,
            "model_id": request.model,
            "voice_settings": Self::voice_settings(request),
        });
        let builder = self
            .http
            .post(url)
            .header("xi-api-key", self.key.expose())
            .json(&body);
        let response = send(builder, Some(&self.key)).await?;
        Ok(Self::shaped(request.format, body_stream(response)))
    }

    async fn speak_stream(
        &self,
        request: &SpeechRequest,
        text: TextStream,
    ) -> Result<AudioStream, ProviderError> {
        let ws_base = self
            .base
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let url = format!(
            "{ws_base}/v1/text-to-speech/{}/stream-input?model_id={}&output_format={}",
            request.voice,
            request.model,
            Self::output_format(request.format)
        );
        let mut upgrade = url
            .into_client_request()
            .map_err(|e| ProviderError::Connection(format!("bad endpoint: {e}")))?;
        let key =
            self.key.expose().parse().map_err(|_| {
                ProviderError::Connection("the API key is not a header value".into())
            })?;
        upgrade.headers_mut().insert("xi-api-key", key);
        let connected = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(upgrade, None, true),
        )
        .await;
        let socket = match connected {
            Err(_) => return Err(ProviderError::Connection("timed out".into())),
            Ok(Err(e)) => return Err(upgrade_error("elevenlabs", e)),
            Ok(Ok((socket, _))) => socket,
        };
        let mut init = json!({
            "text": " ",
            "voice_settings": Self::voice_settings(request),
        });
        if let Some(schedule) = &request.chunk_schedule {
            init["generation_config"] = json!({"chunk_length_schedule": schedule});
        }
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(converse(socket, init, text, tx));
        let audio = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed();
        Ok(Self::shaped(request.format, audio))
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type AudioSender = tokio::sync::mpsc::Sender<Result<Bytes, ProviderError>>;

/// Sends the text as it comes and the audio back as it comes, until `isFinal`, an error, or the
/// listener leaving (then the socket is closed properly, so the provider stops).
async fn converse(mut socket: Socket, init: Value, mut text: TextStream, tx: AudioSender) {
    let fail = |e: ProviderError| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(Err(e)).await;
        }
    };
    if let Err(e) = socket.send(Message::text(init.to_string())).await {
        return fail(ProviderError::Connection(format!("stream broke off: {e}"))).await;
    }
    let mut text_open = true;
    loop {
        tokio::select! {
            biased;
            () = tx.closed() => {
                let _ = socket.close(None).await;
                return;
            }
            piece = text.next(), if text_open => {
                let message = match piece {
                    Some(piece) if piece.is_empty() => continue,
                    Some(piece) => json!({"text": piece}),
                    None => {
                        text_open = false;
                        json!({"text": ""})
                    }
                };
                if let Err(e) = socket.send(Message::text(message.to_string())).await {
                    return fail(ProviderError::Connection(format!("stream broke off: {e}"))).await;
                }
            }
            frame = socket.next() => {
                let message = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => {
                        return fail(ProviderError::Connection(
                            "the provider closed the stream before the end".into(),
                        ))
                        .await;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        return fail(ProviderError::Connection(format!("stream broke off: {e}"))).await;
                    }
                };
                match parse(&message) {
                    Ok(Frame::Audio(bytes)) => {
                        if tx.send(Ok(bytes)).await.is_err() {
                            let _ = socket.close(None).await;
                            return;
                        }
                    }
                    Ok(Frame::Final) => {
                        let _ = socket.close(None).await;
                        return;
                    }
                    Ok(Frame::Other) => {}
                    Err(e) => {
                        let _ = socket.close(None).await;
                        return fail(e).await;
                    }
                }
            }
        }
    }
}

/// One server message.
enum Frame {
    Audio(Bytes),
    Final,
    Other,
}

fn parse(message: &str) -> Result<Frame, ProviderError> {
    let v: Value = serde_json::from_str(message)
        .map_err(|e| ProviderError::Protocol(format!("malformed message: {e}")))?;
    if let Some(audio) = v["audio"].as_str().filter(|a| !a.is_empty()) {
        let bytes = STANDARD
            .decode(audio)
            .map_err(|e| ProviderError::Protocol(format!("audio is not base64: {e}")))?;
        return Ok(Frame::Audio(Bytes::from(bytes)));
    }
    if v["isFinal"] == true {
        return Ok(Frame::Final);
    }
    if v.get("error").is_some() || v.get("message").is_some() && v.get("audio").is_none() {
        let message = v["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .unwrap_or("unknown error");
        return Err(ProviderError::Refused {
            status: 400,
            message: message.chars().take(300).collect(),
        });
    }
    Ok(Frame::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_audio_the_end_or_errors() {
        assert!(
            matches!(parse(r#"{"audio":"AAEC","isFinal":false}"#), Ok(Frame::Audio(b)) if b.len() == 3)
        );
        assert!(matches!(
            parse(r#"{"audio":null,"isFinal":true}"#),
            Ok(Frame::Final)
        ));
        assert!(matches!(
            parse(r#"{"audio":"!!","isFinal":false}"#),
            Err(ProviderError::Protocol(_))
        ));
        assert!(matches!(parse("not json"), Err(ProviderError::Protocol(_))));
        assert!(matches!(
            parse(r#"{"message":"quota exceeded","error":"quota","code":1008}"#),
            Err(ProviderError::Refused { .. })
        ));
    }
}
