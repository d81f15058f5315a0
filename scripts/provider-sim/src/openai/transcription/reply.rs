//! The reply to a transcription: the transcript in each `response_format`, or streamed as
//! `transcript.text.delta` events (one word each) and a `transcript.text.done`.

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use super::super::wire::{ErrorBody, ErrorDetail, sse};
use super::super::{SERVER_ERROR_MESSAGE, failure_response};
use super::{Family, Task, TranscriptionRequest};
use crate::engine::{Failure, Turn};
use crate::json::to_json;
use crate::transcript::{CONFIDENCE, Transcript, seconds};

/// Audio input tokens the GPT models count per second of audio (the simulator's rate).
const AUDIO_TOKENS_PER_SECOND: f64 = 10.0;
/// Whisper's decoding window: a segment's `seek` is the start of its window, in centiseconds.
const WINDOW_SECONDS: f64 = 30.0;
/// Fixed quality figures of every verbose segment.
const AVG_LOGPROB: f64 = -0.1;
const COMPRESSION_RATIO: f64 = 1.0;
const NO_SPEECH_PROB: f64 = 0.0;

/// How the transcript is written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::openai) enum ResponseFormat {
    /// `{"text", "usage"}`.
    Json,
    /// The text and a newline, `text/plain`.
    Text,
    /// SubRip subtitles, one cue per sentence.
    Srt,
    /// WebVTT subtitles, one cue per sentence.
    Vtt,
    /// `{"task", "language", "duration", "text", "segments"?, "words"?, "usage"}`.
    VerboseJson,
}

/// Which timestamps `verbose_json` carries (`timestamp_granularities[]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(in crate::openai) struct Granularity {
    pub(in crate::openai) words: bool,
    pub(in crate::openai) segments: bool,
}

/// A word of the transcript and when it is heard.
struct TimedWord {
    text: String,
    trimmed: String,
    start: f64,
    end: f64,
}

/// A sentence of the transcript and when it is heard.
struct Cue {
    start: f64,
    end: f64,
    text: String,
}

/// One transcription and the reply the simulator gives to it.
pub(in crate::openai) struct TranscriptionTurn {
    request: TranscriptionRequest,
    text: String,
    words: Vec<TimedWord>,
    cues: Vec<Cue>,
}

impl TranscriptionTurn {
    pub(in crate::openai) fn new(request: TranscriptionRequest, transcript: &Transcript) -> Self {
        let timed = transcript.spread(request.duration);
        let words: Vec<TimedWord> = timed
            .iter()
            .map(|t| TimedWord {
                text: t.word.text().to_owned(),
                trimmed: t.word.trimmed().to_owned(),
                start: t.start,
                end: t.end,
            })
            .collect();
        let cues = transcript
            .sentences()
            .into_iter()
            .filter_map(|range| {
                let first = timed.get(range.start)?;
                let last = timed.get(range.end.checked_sub(1)?)?;
                Some(Cue {
                    start: first.start,
                    end: last.end,
                    text: transcript.join(range, true),
                })
            })
            .collect();
        Self {
            request,
            text: transcript.text(),
            words,
            cues,
        }
    }

    /// Word `index` as a delta: a space joins it to the word before.
    fn piece(&self, index: usize) -> String {
        let word = self.words.get(index).map_or("", |w| w.text.as_str());
        if index == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        }
    }

    fn logprobs(&self, pieces: impl Iterator<Item = String>) -> Option<Vec<Logprob>> {
        self.request.logprobs.then(|| {
            pieces
                .map(|token| Logprob {
                    logprob: CONFIDENCE.ln(),
                    bytes: token.as_bytes().to_vec(),
                    token,
                })
                .collect()
        })
    }

    fn usage(&self) -> Usage {
        let secs = self.request.duration.as_secs_f64();
        match self.request.family {
            // Billed by the second of audio.
            Family::Whisper => Usage::Duration {
                seconds: secs.ceil() as u64,
            },
            Family::Gpt => {
                let audio_tokens = (secs * AUDIO_TOKENS_PER_SECOND).ceil() as u64;
                let text_tokens = self.request.prompt_tokens;
                let output_tokens = self.words.len() as u64;
                Usage::Tokens {
                    input_tokens: audio_tokens + text_tokens,
                    input_token_details: InputTokenDetails {
                        text_tokens,
                        audio_tokens,
                    },
                    output_tokens,
                    total_tokens: audio_tokens + text_tokens + output_tokens,
                }
            }
        }
    }

    fn done(&self) -> Bytes {
        sse(&StreamEvent::Done {
            text: &self.text,
            logprobs: self.logprobs((0..self.words.len()).map(|i| self.piece(i))),
            usage: self.usage(),
        })
    }

    /// The language `verbose_json` names: English for a translation, else the one asked for.
    fn language(&self) -> &str {
        match (self.request.task, self.request.language.as_deref()) {
            (Task::Translate, _) | (Task::Transcribe, None) => "english",
            (Task::Transcribe, Some(code)) => language_name(code),
        }
    }

    fn verbose(&self) -> Verbose<'_> {
        let granularity = self.request.granularity;
        // Segments are the default granularity.
        let segments = (granularity.segments || !granularity.words).then(|| {
            self.cues
                .iter()
                .enumerate()
                .map(|(id, cue)| Segment {
                    id,
                    seek: ((cue.start / WINDOW_SECONDS).floor() * WINDOW_SECONDS * 100.0) as u64,
                    start: cue.start,
                    end: cue.end,
                    text: format!(" {}", cue.text),
                    tokens: Vec::new(),
                    temperature: self.request.temperature,
                    avg_logprob: AVG_LOGPROB,
                    compression_ratio: COMPRESSION_RATIO,
                    no_speech_prob: NO_SPEECH_PROB,
                })
                .collect()
        });
        let words = granularity.words.then(|| {
            self.words
                .iter()
                .map(|w| VerboseWord {
                    word: &w.trimmed,
                    start: w.start,
                    end: w.end,
                })
                .collect()
        });
        Verbose {
            task: match self.request.task {
                Task::Transcribe => "transcribe",
                Task::Translate => "translate",
            },
            language: self.language(),
            duration: seconds(self.request.duration.as_secs_f64()),
            text: &self.text,
            segments,
            words,
            usage: self.usage(),
        }
    }

    fn subtitles(&self, vtt: bool) -> String {
        let mut out = String::new();
        if vtt {
            out.push_str("WEBVTT\n\n");
        }
        for (i, cue) in self.cues.iter().enumerate() {
            if !vtt {
                out.push_str(&format!("{}\n", i + 1));
            }
            let separator = if vtt { '.' } else { ',' };
            out.push_str(&format!(
                "{} --> {}\n{}\n\n",
                clock(cue.start, separator),
                clock(cue.end, separator),
                cue.text
            ));
        }
        out
    }
}

impl Turn for TranscriptionTurn {
    fn streaming(&self) -> bool {
        self.request.stream
    }

    fn units(&self) -> usize {
        self.words.len()
    }

    fn opening(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn unit(&mut self, index: usize) -> Bytes {
        let delta = self.piece(index);
        sse(&StreamEvent::Delta {
            logprobs: self.logprobs(std::iter::once(delta.clone())),
            delta: &delta,
        })
    }

    fn closing(&mut self) -> Vec<Bytes> {
        vec![self.done()]
    }

    fn malformed(&mut self) -> Vec<Bytes> {
        vec![Bytes::from_static(b"data: {not json\n\n"), self.done()]
    }

    /// As a chat stream's: a `data:` line holding an error object, and no `transcript.text.done`.
    fn error_event(&mut self) -> Vec<Bytes> {
        vec![sse(&ErrorBody {
            error: ErrorDetail {
                message: SERVER_ERROR_MESSAGE.to_owned(),
                kind: "server_error",
                param: None,
                code: None,
            },
        })]
    }

    fn complete(&self) -> Response {
        let (content_type, body) = match self.request.format {
            ResponseFormat::Json => (
                "application/json",
                to_json(&Transcription {
                    text: &self.text,
                    logprobs: self.logprobs((0..self.words.len()).map(|i| self.piece(i))),
                    usage: self.usage(),
                }),
            ),
            ResponseFormat::VerboseJson => ("application/json", to_json(&self.verbose())),
            ResponseFormat::Text => ("text/plain; charset=utf-8", format!("{}\n", self.text)),
            ResponseFormat::Srt => ("text/plain; charset=utf-8", self.subtitles(false)),
            ResponseFormat::Vtt => ("text/plain; charset=utf-8", self.subtitles(true)),
        };
        let mut response = body.into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    fn malformed_complete(&self) -> Response {
        let mut response = "{not json".into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }

    fn failure(&self, failure: Failure) -> Response {
        failure_response(failure, &self.request.model)
    }
}

/// `secs` as a subtitle clock, `HH:MM:SS,mmm` (SubRip) or `HH:MM:SS.mmm` (WebVTT).
fn clock(secs: f64, separator: char) -> String {
    let millis = (secs.max(0.0) * 1000.0).round() as u64;
    let (hours, rest) = (millis / 3_600_000, millis % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (secs, millis) = (rest / 1000, rest % 1000);
    format!("{hours:02}:{minutes:02}:{secs:02}{separator}{millis:03}")
}

/// The English name Whisper gives a language in `verbose_json`; other codes are named as sent.
fn language_name(code: &str) -> &str {
    match code {
        "en" => "english",
        "de" => "german",
        "es" => "spanish",
        "fr" => "french",
        "it" => "italian",
        "ja" => "japanese",
        "ko" => "korean",
        "nl" => "dutch",
        "pl" => "polish",
        "pt" => "portuguese",
        "ru" => "russian",
        "zh" => "chinese",
        other => other,
    }
}

/// An event of a `stream=true` reply.
#[derive(Serialize)]
#[serde(tag = "type")]
enum StreamEvent<'a> {
    /// The next piece of the transcript.
    #[serde(rename = "transcript.text.delta")]
    Delta {
        delta: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        logprobs: Option<Vec<Logprob>>,
    },
    /// The last event: the whole transcript and the usage.
    #[serde(rename = "transcript.text.done")]
    Done {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        logprobs: Option<Vec<Logprob>>,
        usage: Usage,
    },
}

#[derive(Serialize)]
struct Logprob {
    token: String,
    logprob: f64,
    bytes: Vec<u8>,
}

/// `usage`: tokens for the GPT models, seconds of audio for whisper-1.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Usage {
    Tokens {
        input_tokens: u64,
        input_token_details: InputTokenDetails,
        output_tokens: u64,
        total_tokens: u64,
    },
    Duration {
        seconds: u64,
    },
}

#[derive(Serialize)]
struct InputTokenDetails {
    text_tokens: u64,
    audio_tokens: u64,
}

/// The `json` body.
#[derive(Serialize)]
struct Transcription<'a> {
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<Vec<Logprob>>,
    usage: Usage,
}

/// The `verbose_json` body.
#[derive(Serialize)]
struct Verbose<'a> {
    task: &'static str,
    language: &'a str,
    duration: f64,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<Vec<Segment>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    words: Option<Vec<VerboseWord<'a>>>,
    usage: Usage,
}

#[derive(Serialize)]
struct Segment {
    id: usize,
    seek: u64,
    start: f64,
    end: f64,
    text: String,
    tokens: Vec<u32>,
    temperature: f64,
    avg_logprob: f64,
    compression_ratio: f64,
    no_speech_prob: f64,
}

#[derive(Serialize)]
struct VerboseWord<'a> {
    word: &'a str,
    start: f64,
    end: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtitle_clocks() {
        assert_eq!(clock(0.0, ','), "00:00:00,000");
        assert_eq!(clock(3_725.045_6, '.'), "01:02:05.046");
        assert_eq!(clock(-1.0, ','), "00:00:00,000");
    }
}
