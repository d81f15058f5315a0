//! Deepgram's live WebSocket (`wss://api.deepgram.com/v1/listen`): raw `linear16` audio as binary
//! messages; `Results` back (interim with `is_final: false`, then final, `speech_final` at a
//! pause); `KeepAlive` while no audio flows (Deepgram closes a silent socket after ~10 s);
//! `Finalize` then `CloseStream` at the end, after which Deepgram sends what remains, `Metadata`,
//! and closes.

use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use common::provider::ProviderError;
use common::settings::Secret;

use super::{LiveInput, LiveParams, LiveResult, LiveSession, LiveTranscriber};
use crate::config::ProviderAccess;
use crate::providers::upgrade_error;

/// Longest wait for the answer to the upgrade. (The socket is opened with Nagle off: small audio
/// frames go out at once rather than waiting for the last one to be acknowledged.)
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A `KeepAlive` after this long without audio.
const KEEP_ALIVE: Duration = Duration::from_secs(4);
/// Longest wait for Deepgram's last results after `CloseStream`.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Deepgram's live transcription.
pub struct DeepgramLive {
    ws_base: String,
    key: Secret,
}

impl DeepgramLive {
    /// A client for `access` (`DEEPGRAM_BASE_URL` defaults to `https://api.deepgram.com`).
    pub fn new(access: &ProviderAccess) -> Self {
        let base = access.base_or("https://api.deepgram.com");
        Self {
            ws_base: base
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1),
            key: access.api_key.clone(),
        }
    }

    fn url(&self, params: &LiveParams, model: &str) -> Result<reqwest::Url, ProviderError> {
        let mut query = vec![
            ("model", model.to_owned()),
            ("encoding", "linear16".into()),
            ("sample_rate", params.sample_rate.to_string()),
            ("channels", "1".into()),
            ("punctuate", "true".into()),
            ("smart_format", "true".into()),
            ("interim_results", params.interim.to_string()),
        ];
        if params.interim {
            // Deepgram takes utterance_end_ms only with interim results.
            query.push(("utterance_end_ms", "1000".into()));
        }
        if let Some(language) = &params.language {
            query.push(("language", language.clone()));
        }
        reqwest::Url::parse_with_params(&format!("{}/v1/listen", self.ws_base), &query)
            .map_err(|e| ProviderError::Connection(format!("bad endpoint: {e}")))
    }
}

#[async_trait]
impl LiveTranscriber for DeepgramLive {
    fn name(&self) -> &'static str {
        "deepgram"
    }

    fn default_model(&self) -> String {
        "nova-3".into()
    }

    async fn open(&self, params: &LiveParams) -> Result<LiveSession, ProviderError> {
        let model = params.model.clone().unwrap_or_else(|| self.default_model());
        let mut upgrade = self
            .url(params, &model)?
            .as_str()
            .into_client_request()
            .map_err(|e| ProviderError::Connection(format!("bad endpoint: {e}")))?;
        let auth = format!("Token {}", self.key.expose())
            .parse()
            .map_err(|_| ProviderError::Connection("the API key is not a header value".into()))?;
        upgrade.headers_mut().insert("authorization", auth);
        let connected = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(upgrade, None, true),
        )
        .await;
        let socket = match connected {
            Err(_) => return Err(ProviderError::Connection("timed out".into())),
            Ok(Err(e)) => return Err(upgrade_error("deepgram", e)),
            Ok(Ok((socket, _))) => socket,
        };
        let (input_tx, input_rx) = mpsc::channel(256);
        let (results_tx, results_rx) = mpsc::channel(64);
        tokio::spawn(converse(socket, input_rx, results_tx));
        Ok(LiveSession {
            input: input_tx,
            results: results_rx,
        })
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Results = mpsc::Sender<Result<LiveResult, ProviderError>>;

/// Sends audio and keep-alives, relays results, until Deepgram closes after `CloseStream`, the
/// caller goes away, or it fails.
async fn converse(socket: Socket, mut input: mpsc::Receiver<LiveInput>, results: Results) {
    let (mut sink, mut stream) = socket.split();
    let mut finishing: Option<tokio::time::Instant> = None;
    let mut last_audio = tokio::time::Instant::now();
    loop {
        let keep_alive = tokio::time::sleep_until(last_audio + KEEP_ALIVE);
        let close_deadline = async {
            match finishing {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            item = input.recv(), if finishing.is_none() => match item {
                Some(LiveInput::Audio(audio)) => {
                    last_audio = tokio::time::Instant::now();
                    if let Err(e) = sink.send(Message::Binary(audio)).await {
                        let _ = results.send(Err(ProviderError::Connection(e.to_string()))).await;
                        return;
                    }
                }
                Some(LiveInput::Finish) => {
                    let finish = sink.send(text(r#"{"type":"Finalize"}"#)).await;
                    let close = sink.send(text(r#"{"type":"CloseStream"}"#)).await;
                    if let Err(e) = finish.and(close) {
                        let _ = results.send(Err(ProviderError::Connection(e.to_string()))).await;
                        return;
                    }
                    finishing = Some(tokio::time::Instant::now() + CLOSE_TIMEOUT);
                }
                // The caller went away (a cancel, a departed client): close the upstream at
                // once; what it would still have said is not wanted.
                None => {
                    let _ = sink.close().await;
                    return;
                }
            },
            () = keep_alive, if finishing.is_none() => {
                last_audio = tokio::time::Instant::now();
                if sink.send(text(r#"{"type":"KeepAlive"}"#)).await.is_err() {
                    let _ = results.send(Err(ProviderError::Connection("the stream broke off".into()))).await;
                    return;
                }
            }
            () = close_deadline => {
                tracing::warn!("deepgram did not close after CloseStream; ending");
                let _ = sink.close().await;
                return;
            }
            () = results.closed() => {
                let _ = sink.close().await;
                return;
            }
            message = stream.next() => match message {
                Some(Ok(Message::Text(body))) => match parse(&body) {
                    Ok(Some(result)) => {
                        if results.send(Ok(result)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = results.send(Err(e)).await;
                        return;
                    }
                },
                Some(Ok(Message::Close(frame))) => {
                    let normal = frame.as_ref().is_none_or(|f| u16::from(f.code) == 1000);
                    if !normal || finishing.is_none() {
                        let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                        tracing::warn!(%reason, "deepgram closed the stream");
                        let _ = results
                            .send(Err(ProviderError::Connection(format!(
                                "the provider closed the stream: {}",
                                reason.chars().take(200).collect::<String>()
                            ))))
                            .await;
                    }
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = results.send(Err(ProviderError::Connection(e.to_string()))).await;
                    return;
                }
                None => {
                    if finishing.is_none() {
                        let _ = results
                            .send(Err(ProviderError::Connection("the stream ended early".into())))
                            .await;
                    }
                    return;
                }
            },
        }
    }
}

fn text(s: &'static str) -> Message {
    Message::Text(s.into())
}

/// A `Results` message as a result; other messages (`Metadata`, `UtteranceEnd`,
/// `SpeechStarted`) as nothing.
fn parse(body: &str) -> Result<Option<LiveResult>, ProviderError> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| ProviderError::Protocol(format!("unreadable message: {e}")))?;
    if v["type"] != "Results" {
        return Ok(None);
    }
    let text = v["channel"]["alternatives"][0]["transcript"]
        .as_str()
        .ok_or_else(|| ProviderError::Protocol("a result without a transcript".into()))?
        .trim()
        .to_owned();
    if text.is_empty() {
        return Ok(None);
    }
    let start = v["start"].as_f64().unwrap_or_default();
    Ok(Some(LiveResult {
        text,
        is_final: v["is_final"].as_bool().unwrap_or(false),
        speech_final: v["speech_final"].as_bool().unwrap_or(false),
        start,
        end: start + v["duration"].as_f64().unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_become_live_results_and_the_rest_nothing() {
        let r = parse(
            r#"{"type":"Results","start":1.5,"duration":0.5,"is_final":true,"speech_final":false,
            "channel":{"alternatives":[{"transcript":" hello there ","confidence":0.9}]}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.text, "hello there");
        assert!(r.is_final && !r.speech_final);
        assert!((r.end - 2.0).abs() < 1e-9);
        assert_eq!(parse(r#"{"type":"UtteranceEnd"}"#).unwrap(), None);
        let empty = r#"{"type":"Results","channel":{"alternatives":[{"transcript":""}]}}"#;
        assert_eq!(parse(empty).unwrap(), None);
        assert!(parse("nope").is_err());
    }

    #[test]
    fn the_url_asks_for_raw_audio_at_the_rate_given() {
        let live = DeepgramLive::new(&ProviderAccess {
            api_key: Secret::new("k"),
            base_url: Some("http://127.0.0.1:9/".into()),
        });
        let params = LiveParams {
            sample_rate: 8000,
            language: Some("pt-BR".into()),
            model: None,
            prompt: None,
            interim: true,
        };
        let url = live.url(&params, "nova-3").unwrap();
        assert_eq!(url.scheme(), "ws");
        let q = url.query().unwrap();
        for part in [
            "encoding=linear16",
            "sample_rate=8000",
            "language=pt-BR",
            "interim_results=true",
            "utterance_end_ms=1000",
        ] {
            assert!(q.contains(part), "{q}");
        }
    }
}
