//! The offline transcription provider `local`: an English-only Whisper model (tiny.en, as
//! `scripts/lib.sh` installs it) run in this process by CTranslate2, so transcription works
//! with no provider key.
//!
//! The audio is decoded and resampled to 16 kHz ([`super::decode`]), cut at pauses into windows
//! of at most 30 s ([`super::split`]), and each window that is not silent is turned into its
//! log-mel spectrogram ([`mel`]) and decoded with timestamps into timed segments ([`text`]).
//! Whisper's habit of writing something for silence is checked twice: silent windows never reach
//! the model, and what it writes for a window it thinks holds no speech, or a bare caption such
//! as `[BLANK_AUDIO]`, is dropped.

mod mel;
mod text;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use common::provider::ProviderError;
use ct2rs::sys::{ComputeType, Config, Device, StorageView, Whisper, WhisperOptions};

use super::decode::{SAMPLE_RATE, decode_to_16k_mono};
use super::providers::{Audio, Options, Transcriber};
use super::split;
use super::{Segment, Transcript};

pub use mel::MelSpectrogram;

/// The files of a CTranslate2 Whisper model that must be there.
const MODEL_FILES: [&str; 3] = ["model.bin", "config.json", "vocabulary.txt"];

/// Whisper's rule for a window with no speech: the model's probability of "no speech" above
/// this, with an average token log-probability below [`LOW_LOGPROB`].
const NO_SPEECH: f32 = 0.6;
const LOW_LOGPROB: f32 = -1.0;

/// Whisper tiny.en in this process.
#[derive(Clone)]
pub struct LocalWhisper {
    inner: Arc<Inner>,
}

struct Inner {
    model: Whisper,
    mel: MelSpectrogram,
}

impl std::fmt::Debug for LocalWhisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWhisper")
            .field("model", &self.inner.model)
            .finish()
    }
}

impl LocalWhisper {
    /// The model's name in events.
    pub const MODEL: &'static str = "whisper-tiny.en";

    /// Loads the model in `dir` to run on `threads` CPU threads (blocking: about 250 ms for
    /// tiny.en). The error says what is missing and how to install it.
    pub fn load(dir: &Path, threads: usize) -> anyhow::Result<Self> {
        if let Some(missing) = MODEL_FILES.iter().find(|f| !dir.join(f).is_file()) {
            anyhow::bail!(
                "no Whisper model in {} ({missing} is missing; STT__MODEL_DIR): install it with \
                 scripts/dev or scripts/test (ensure_whisper_model in scripts/lib.sh)",
                dir.display()
            );
        }
        // The weights are float16, which this CPU backend runs as float32 (CTranslate2 would
        // convert them anyway, with a warning for each load).
        ct2rs::set_log_level(ct2rs::LogLevel::Error);
        let config = Config {
            device: Device::CPU,
            compute_type: ComputeType::FLOAT32,
            num_threads_per_replica: threads.max(1),
            ..Config::default()
        };
        let model = Whisper::new(dir, config).map_err(|e| {
            anyhow::anyhow!("the Whisper model in {} does not load: {e}", dir.display())
        })?;
        if model.is_multilingual() {
            anyhow::bail!(
                "the Whisper model in {} is multilingual; the local provider runs English-only \
                 models (tiny.en)",
                dir.display()
            );
        }
        let mel = MelSpectrogram::new(model.n_mels());
        Ok(Self {
            inner: Arc::new(Inner { model, mel }),
        })
    }

    /// Transcribes 16 kHz mono samples in [-1, 1] (as [`decode_to_16k_mono`] or
    /// [`super::decode::resample_pcm16`] give them) on a blocking thread. Silence is an empty
    /// transcript; audio longer than 30 s is cut at pauses and its segments' times are from the
    /// start of `samples`. About 1 s of two cores per 30 s window (tiny.en), whatever the window
    /// holds: transcribe pieces of several seconds, not single frames.
    pub async fn transcribe_samples(&self, samples: Vec<f32>) -> Result<Transcript, ProviderError> {
        let this = self.clone();
        let stop = StopOnDrop::default();
        let stopped = Arc::clone(&stop.0);
        tokio::task::spawn_blocking(move || this.run(&samples, &stopped))
            .await
            .map_err(failed)?
    }

    /// The transcript of `samples`; stops between windows once `stopped` is set.
    fn run(&self, samples: &[f32], stopped: &AtomicBool) -> Result<Transcript, ProviderError> {
        let rate = f64::from(SAMPLE_RATE);
        let mut segments = Vec::new();
        for range in split::windows(samples, mel::WINDOW_SAMPLES) {
            if stopped.load(Ordering::Relaxed) {
                break;
            }
            let window = &samples[range.clone()];
            if split::is_silent(window) {
                continue;
            }
            let offset = range.start as f64 / rate;
            segments.extend(self.window(window)?.into_iter().map(|p| Segment {
                start: round_ms(offset + p.start),
                end: round_ms(offset + p.end),
                text: p.text,
            }));
        }
        Ok(Transcript {
            text: segments
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            language: "en".into(),
            duration_secs: round_ms(samples.len() as f64 / rate),
            segments,
        })
    }

    /// The segments of one window of at most 30 s, times from its start.
    fn window(&self, window: &[f32]) -> Result<Vec<text::Piece>, ProviderError> {
        let inner = &self.inner;
        let mut features = inner.mel.compute(window);
        let shape = [1, inner.mel.n_mels(), mel::FRAMES];
        let view = StorageView::new(&shape, &mut features, Device::CPU).map_err(failed)?;
        let options = WhisperOptions {
            return_scores: true,
            return_no_speech_prob: true,
            ..WhisperOptions::default()
        };
        // An English-only model's prompt is the start token alone (no language or task tokens);
        // without `<|notimestamps|>` it writes a timestamp before and after each segment.
        let prompt = [vec!["<|startoftranscript|>"]];
        let result = inner
            .model
            .generate(&view, &prompt, &options)
            .map_err(failed)?
            .into_iter()
            .next()
            .ok_or_else(|| failed("no result"))?;
        let tokens = result.sequences.into_iter().next().unwrap_or_default();
        // faster-whisper's average log-probability from CTranslate2's length-normalised score.
        let avg_logprob = result.scores.first().map_or(0.0, |score| {
            let n = tokens.len() as f32;
            score * n / (n + 1.0)
        });
        if result.no_speech_prob > NO_SPEECH && avg_logprob < LOW_LOGPROB {
            tracing::debug!(
                no_speech = result.no_speech_prob,
                avg_logprob,
                "a window without speech"
            );
            return Ok(Vec::new());
        }
        let secs = window.len() as f64 / f64::from(SAMPLE_RATE);
        Ok(text::pieces(&tokens, secs)
            .into_iter()
            .filter(|p| !text::is_caption(&p.text))
            .map(|p| text::Piece {
                start: p.start.min(secs),
                end: p.end.min(secs),
                text: p.text,
            })
            .collect())
    }
}

/// Sets its flag when dropped: a transcription whose caller gave up (a cancelled task) stops at
/// the next window instead of running to the end on a blocking thread.
#[derive(Default)]
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn failed(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Protocol(format!("the local model failed: {e}"))
}

fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// Refuses what tiny.en cannot do: another language (it would write English-sounding words for
/// it), or another model.
fn check(options: &Options) -> Result<(), ProviderError> {
    if let Some(language) = options.language.as_deref() {
        let primary = language.split('-').next().unwrap_or_default();
        if !primary.eq_ignore_ascii_case("en") {
            return Err(ProviderError::Unsupported(format!(
                "the local model ({}) transcribes English only, not {language:?}: send language \
                 en (or none), or name a provider that knows the language",
                LocalWhisper::MODEL
            )));
        }
    }
    if let Some(model) = options.model.as_deref()
        && model != LocalWhisper::MODEL
    {
        return Err(ProviderError::Unsupported(format!(
            "the local provider's model is {}, not {model:?}",
            LocalWhisper::MODEL
        )));
    }
    Ok(())
}

#[async_trait]
impl Transcriber for LocalWhisper {
    fn name(&self) -> &'static str {
        "local"
    }

    fn default_model(&self) -> &str {
        Self::MODEL
    }

    /// Free to ask again: live transcription gets interim results from it.
    fn runs_locally(&self) -> bool {
        true
    }

    /// Decodes and transcribes on a blocking thread; `prompt` is not used (the model is given
    /// no previous text).
    async fn transcribe(
        &self,
        audio: &Audio,
        options: &Options,
    ) -> Result<Transcript, ProviderError> {
        check(options)?;
        let this = self.clone();
        let audio = audio.clone();
        let stop = StopOnDrop::default();
        let stopped = Arc::clone(&stop.0);
        tokio::task::spawn_blocking(move || {
            let samples = decode_to_16k_mono(&audio)?;
            this.run(&samples, &stopped)
        })
        .await
        .map_err(failed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_english_and_its_own_model() {
        let ok = |language: Option<&str>, model: Option<&str>| {
            check(&Options {
                language: language.map(Into::into),
                model: model.map(Into::into),
                prompt: None,
            })
        };
        assert!(ok(None, None).is_ok());
        assert!(ok(Some("en"), Some("whisper-tiny.en")).is_ok());
        assert!(ok(Some("en-GB"), None).is_ok());
        assert!(ok(Some("EN"), None).is_ok());
        let e = ok(Some("fr"), None).unwrap_err();
        assert_eq!(e.code(), "unsupported_input");
        assert!(e.to_string().contains("English only"), "{e}");
        assert!(ok(None, Some("whisper-1")).is_err());
    }

    #[test]
    fn a_missing_model_says_how_to_install_it() {
        let e = LocalWhisper::load(Path::new("/nonexistent/whisper"), 1).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("model.bin is missing"), "{message}");
        assert!(message.contains("scripts/dev"), "{message}");
    }
}
