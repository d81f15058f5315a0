//! Live transcription with a provider that only takes recordings: the audio is cut into
//! utterances at pauses (an energy gate over 20 ms frames), and each utterance is transcribed
//! as a WAV recording when it ends — a final result per utterance. A provider that runs on this
//! machine (the local model) also gives interim results: the utterance so far, transcribed again
//! after each further second of speech. Paid providers give finals only, so one spoken sentence
//! costs one request. Audio before the first speech is never sent anywhere: silence costs
//! nothing and transcribes as nothing.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use common::provider::ProviderError;

use super::{LiveInput, LiveParams, LiveResult, LiveSession, LiveTranscriber};
use crate::audio::wav_header;
use crate::stt::providers::{Audio, Options, Transcriber};

/// The energy gate's frame, in milliseconds.
const FRAME_MS: u32 = 20;
/// A frame whose RMS is above this (of full scale, about -40 dBFS) is speech.
const SPEECH_RMS: f64 = 0.01;
/// This much quiet after speech ends an utterance.
const PAUSE_MS: u32 = 700;
/// Audio kept from before the speech started, so its first sound is not cut.
const PREROLL_MS: u32 = 200;
/// The longest utterance: cut there even without a pause (Whisper hears 30 s at most).
const MAX_UTTERANCE_MS: u32 = 28_000;
/// Interim results (local providers) after each this much further speech.
const INTERIM_MS: u32 = 1_000;

/// A recording provider, driven per utterance.
pub struct Utterances {
    transcriber: Arc<dyn Transcriber>,
}

impl Utterances {
    /// Live transcription with `transcriber`.
    pub fn new(transcriber: Arc<dyn Transcriber>) -> Self {
        Self { transcriber }
    }
}

#[async_trait]
impl LiveTranscriber for Utterances {
    fn name(&self) -> &'static str {
        self.transcriber.name()
    }

    fn default_model(&self) -> String {
        self.transcriber.default_model().to_owned()
    }

    async fn open(&self, params: &LiveParams) -> Result<LiveSession, ProviderError> {
        let (input_tx, input_rx) = mpsc::channel(256);
        let (results_tx, results_rx) = mpsc::channel(64);
        let interim = params.interim && self.transcriber.runs_locally();
        let run = Run {
            transcriber: Arc::clone(&self.transcriber),
            options: Options {
                model: params.model.clone(),
                language: params.language.clone(),
                prompt: params.prompt.clone(),
            },
            cutter: Cutter::new(params.sample_rate),
            interim,
            results: results_tx,
        };
        tokio::spawn(run.go(input_rx));
        Ok(LiveSession {
            input: input_tx,
            results: results_rx,
        })
    }
}

struct Run {
    transcriber: Arc<dyn Transcriber>,
    options: Options,
    cutter: Cutter,
    interim: bool,
    results: mpsc::Sender<Result<LiveResult, ProviderError>>,
}

impl Run {
    async fn go(mut self, mut input: mpsc::Receiver<LiveInput>) {
        loop {
            let item = tokio::select! {
                item = input.recv() => item,
                () = self.results.closed() => return,
            };
            match item {
                Some(LiveInput::Audio(bytes)) => {
                    for utterance in self.cutter.push(&bytes) {
                        if !self.transcribe(utterance, true).await {
                            return;
                        }
                    }
                    if self.interim
                        && let Some(so_far) = self.cutter.interim_due()
                        && !self.transcribe(so_far, false).await
                    {
                        return;
                    }
                }
                Some(LiveInput::Finish) => {
                    if let Some(rest) = self.cutter.finish() {
                        self.transcribe(rest, true).await;
                    }
                    return;
                }
                None => return,
            }
        }
    }

    /// Transcribes `cut` and sends its result; false when the session is over (an error sent,
    /// or nobody listens).
    async fn transcribe(&mut self, cut: Cut, is_final: bool) -> bool {
        let rate = self.cutter.rate;
        let mut wav = Vec::with_capacity(44 + cut.samples.len() * 2);
        wav.extend_from_slice(&wav_header(rate, Some((cut.samples.len() * 2) as u32)));
        for s in &cut.samples {
            wav.extend_from_slice(&s.to_le_bytes());
        }
        let audio = Audio {
            bytes: Bytes::from(wav),
            format: "wav".into(),
            sample_rate: Some(rate),
        };
        let answer = tokio::select! {
            r = self.transcriber.transcribe(&audio, &self.options) => r,
            () = self.results.closed() => return false,
        };
        match answer {
            Ok(transcript) => {
                let text = transcript.text.trim();
                if text.is_empty() {
                    return true;
                }
                let result = LiveResult {
                    text: text.to_owned(),
                    is_final,
                    speech_final: is_final && cut.paused,
                    start: cut.start,
                    end: cut.end,
                };
                self.results.send(Ok(result)).await.is_ok()
            }
            Err(e) => {
                let _ = self.results.send(Err(e)).await;
                false
            }
        }
    }
}

/// A stretch of audio to transcribe.
#[derive(Debug, Clone, PartialEq)]
struct Cut {
    samples: Vec<i16>,
    /// Seconds from the start of the audio.
    start: f64,
    end: f64,
    /// It ended at a pause (not at the length limit or the end of the audio).
    paused: bool,
}

/// Cuts 16-bit mono audio into utterances.
#[derive(Debug)]
struct Cutter {
    rate: u32,
    frame_len: usize,
    /// An odd byte left from the last push.
    carry: Option<u8>,
    /// Samples not yet a whole frame.
    partial: Vec<i16>,
    /// Quiet audio kept before speech starts.
    preroll: VecDeque<i16>,
    /// The utterance being spoken, if one is.
    utterance: Option<Vec<i16>>,
    utterance_start: u64,
    /// Samples of quiet at the utterance's end.
    quiet: usize,
    /// Samples seen in all.
    seen: u64,
    /// Utterance length at the last interim.
    interim_at: usize,
}

impl Cutter {
    fn new(rate: u32) -> Self {
        Self {
            rate,
            frame_len: (rate * FRAME_MS / 1000) as usize,
            carry: None,
            partial: Vec::new(),
            preroll: VecDeque::new(),
            utterance: None,
            utterance_start: 0,
            quiet: 0,
            seen: 0,
            interim_at: 0,
        }
    }

    fn samples(&self, ms: u32) -> usize {
        (self.rate as u64 * ms as u64 / 1000) as usize
    }

    fn seconds(&self, sample: u64) -> f64 {
        sample as f64 / self.rate as f64
    }

    /// Takes more audio; the utterances it completed.
    fn push(&mut self, bytes: &[u8]) -> Vec<Cut> {
        let mut data = Vec::with_capacity(bytes.len() + 1);
        data.extend(self.carry.take());
        data.extend_from_slice(bytes);
        if data.len() % 2 == 1 {
            self.carry = data.pop();
        }
        self.partial.extend(
            data.chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        let mut cuts = Vec::new();
        let frames = self.partial.len() / self.frame_len;
        let all: Vec<i16> = self.partial.drain(..frames * self.frame_len).collect();
        for frame in all.chunks_exact(self.frame_len) {
            if let Some(cut) = self.frame(frame) {
                cuts.push(cut);
            }
        }
        cuts
    }

    fn frame(&mut self, frame: &[i16]) -> Option<Cut> {
        let voiced = rms(frame) > SPEECH_RMS;
        let (pause, longest) = (self.samples(PAUSE_MS), self.samples(MAX_UTTERANCE_MS));
        let start_of_frame = self.seen;
        self.seen += frame.len() as u64;
        match &mut self.utterance {
            None => {
                if voiced {
                    let mut utterance: Vec<i16> = self.preroll.drain(..).collect();
                    self.utterance_start = start_of_frame - utterance.len() as u64;
                    utterance.extend_from_slice(frame);
                    self.utterance = Some(utterance);
                    self.quiet = 0;
                    self.interim_at = 0;
                } else {
                    self.preroll.extend(frame);
                    let keep = self.samples(PREROLL_MS);
                    while self.preroll.len() > keep {
                        self.preroll.pop_front();
                    }
                }
                None
            }
            Some(utterance) => {
                utterance.extend_from_slice(frame);
                self.quiet = if voiced { 0 } else { self.quiet + frame.len() };
                let paused = self.quiet >= pause;
                let too_long = utterance.len() >= longest;
                if paused || too_long {
                    self.take(paused)
                } else {
                    None
                }
            }
        }
    }

    /// The utterance so far, when another second of it was spoken since the last interim.
    fn interim_due(&mut self) -> Option<Cut> {
        let len = self.utterance.as_ref()?.len();
        if len < self.interim_at + self.samples(INTERIM_MS) {
            return None;
        }
        self.interim_at = len;
        let samples = self.utterance.clone()?;
        Some(Cut {
            start: self.seconds(self.utterance_start),
            end: self.seconds(self.utterance_start + samples.len() as u64),
            samples,
            paused: false,
        })
    }

    /// Ends the utterance being spoken.
    fn take(&mut self, paused: bool) -> Option<Cut> {
        let samples = self.utterance.take()?;
        let start = self.utterance_start;
        self.quiet = 0;
        self.interim_at = 0;
        Some(Cut {
            start: self.seconds(start),
            end: self.seconds(start + samples.len() as u64),
            samples,
            paused,
        })
    }

    /// The audio is over: the utterance being spoken, with what was left of a frame.
    fn finish(&mut self) -> Option<Cut> {
        let rest = std::mem::take(&mut self.partial);
        if let Some(utterance) = &mut self.utterance {
            utterance.extend_from_slice(&rest);
        }
        self.take(true)
    }
}

/// Root mean square of `frame`, as a fraction of full scale.
fn rms(frame: &[i16]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame
        .iter()
        .map(|&s| {
            let x = s as f64 / 32768.0;
            x * x
        })
        .sum();
    (sum / frame.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(ms: u32, rate: u32, amplitude: f64) -> Vec<u8> {
        let n = (rate * ms / 1000) as usize;
        (0..n)
            .flat_map(|i| {
                let t = i as f64 / rate as f64;
                let s =
                    (amplitude * 32767.0 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()) as i16;
                s.to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn silence_is_never_an_utterance() {
        let mut c = Cutter::new(16_000);
        assert!(c.push(&pcm(5_000, 16_000, 0.0)).is_empty());
        assert!(c.push(&pcm(1_000, 16_000, 0.001)).is_empty());
        assert_eq!(c.finish(), None);
    }

    #[test]
    fn a_pause_ends_an_utterance_with_its_times() {
        let mut c = Cutter::new(16_000);
        let mut audio = pcm(1_000, 16_000, 0.0);
        audio.extend(pcm(1_500, 16_000, 0.3));
        audio.extend(pcm(1_000, 16_000, 0.0));
        audio.extend(pcm(500, 16_000, 0.3));
        // Pushed in odd-sized pieces, as frames arrive.
        let mut cuts = Vec::new();
        for piece in audio.chunks(333) {
            cuts.extend(c.push(piece));
        }
        assert_eq!(cuts.len(), 1);
        let first = &cuts[0];
        assert!(first.paused);
        assert!((first.start - 0.8).abs() < 0.03, "{}", first.start);
        assert!((first.end - 3.2).abs() < 0.03, "{}", first.end);
        let rest = c.finish().unwrap();
        assert!((rest.start - 3.3).abs() < 0.03, "{}", rest.start);
        assert!((rest.end - 4.0).abs() < 0.03, "{}", rest.end);
    }

    #[test]
    fn a_long_utterance_is_cut_at_the_limit_and_interims_come_each_second() {
        let mut c = Cutter::new(8_000);
        let mut interims = 0;
        let mut cuts = Vec::new();
        for piece in pcm(30_000, 8_000, 0.3).chunks(1600) {
            cuts.extend(c.push(piece));
            if c.interim_due().is_some() {
                interims += 1;
            }
        }
        assert_eq!(cuts.len(), 1);
        assert!(!cuts[0].paused);
        assert!((cuts[0].end - cuts[0].start - 28.0).abs() < 0.05);
        assert!((28..=30).contains(&interims), "{interims}");
    }
}
