//! The offline default: the `espeak-ng` program (a Debian package), spoken to through its standard
//! input and read as it writes WAV (22,050 Hz, 16-bit mono) to its standard output, so the first
//! audio leaves before the whole text is spoken. Dropping the stream ends the process.

use std::collections::HashSet;
use std::process::Stdio;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio_util::io::ReaderStream;

use super::{AudioStream, ProviderError, SpeechProvider, SpeechRequest, async_stream};
use crate::audio::{AudioFormat, WAV_HEADER_LEN};
use crate::config::TtsSettings;

/// espeak-ng's sample rate.
const RATE: u32 = 22_050;
/// espeak-ng's words per minute at speed 1.
const WPM: f64 = 175.0;
/// The one model name.
const MODEL: &str = "espeak-ng";

/// The espeak-ng provider.
pub struct Espeak {
    program: String,
    voice: String,
    /// The voices espeak-ng has (lowercase language names such as `en-us`, and file names such
    /// as `gmw/en-us`), read once at start-up; empty when they could not be read.
    voices: HashSet<String>,
}

impl Espeak {
    /// Runs `settings.espeak_program`.
    pub fn new(settings: &TtsSettings) -> Self {
        let voices = installed_voices(&settings.espeak_program);
        if voices.is_empty() {
            tracing::warn!(program = %settings.espeak_program,
                "espeak-ng's voices could not be listed (is it installed?); offline speech will fail");
        }
        Self {
            program: settings.espeak_program.clone(),
            voice: settings.espeak_voice.clone(),
            voices,
        }
    }

    /// Whether espeak-ng has `voice` (a variant such as `+f3` allowed after it).
    fn knows(&self, voice: &str) -> bool {
        let base = voice
            .split('+')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        plausible_voice(voice) && (self.voices.is_empty() || self.voices.contains(&base))
    }
}

/// The voices `espeak-ng --voices` lists: its language and file columns.
fn installed_voices(program: &str) -> HashSet<String> {
    let Ok(out) = std::process::Command::new(program).arg("--voices").output() else {
        return HashSet::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .flat_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            [cols.get(1), cols.get(4)]
                .into_iter()
                .flatten()
                .map(|c| c.to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A voice name espeak-ng could know (`en-us`, `de`, `en-gb+f3`): nothing it would read as an
/// option or a path.
fn plausible_voice(voice: &str) -> bool {
    !voice.is_empty()
        && voice.len() <= 40
        && !voice.starts_with('-')
        && voice
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+'))
}

#[async_trait]
impl SpeechProvider for Espeak {
    fn name(&self) -> &'static str {
        "espeak"
    }

    fn max_chars(&self) -> usize {
        20_000
    }

    fn pcm_rate(&self) -> u32 {
        RATE
    }

    fn defaults(&self) -> (&str, &str, AudioFormat) {
        (MODEL, &self.voice, AudioFormat::Wav)
    }

    fn check(&self, request: &SpeechRequest) -> Result<(), String> {
        if request.model != MODEL {
            return Err(format!("espeak has one model, {MODEL}"));
        }
        if !matches!(request.format, AudioFormat::Wav | AudioFormat::Pcm) {
            return Err(format!("espeak speaks wav or pcm, not {}", request.format));
        }
        if !self.knows(&request.voice) {
            return Err(format!("unknown espeak voice {:?}", request.voice));
        }
        Ok(())
    }

    async fn speak(
        &self,
        request: &SpeechRequest,
        text: &str,
    ) -> Result<AudioStream, ProviderError> {
        let wpm = (WPM * request.speed.unwrap_or(1.0))
            .clamp(80.0, 450.0)
            .round();
        let mut child = Command::new(&self.program)
            .args(["--stdout", "--stdin", "-b", "1", "-v", &request.voice, "-s"])
            .arg(format!("{wpm}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ProviderError::Connection(format!("cannot run {}: {e}", self.program)))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ProviderError::Connection("espeak-ng has no pipes".into()));
        };
        let text = text.to_owned();
        tokio::spawn(async move {
            // A failed write (espeak-ng exited early) shows in its exit status.
            let _ = stdin.write_all(text.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
        let mut skip = if request.format == AudioFormat::Pcm {
            WAV_HEADER_LEN
        } else {
            0
        };
        let mut audio = ReaderStream::new(stdout);
        // The process lives as long as the stream; its exit status decides the ending.
        let stream = async_stream(move |tx| async move {
            let mut sent = 0usize;
            while let Some(chunk) = audio.next().await {
                let mut chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx
                            .send(Err(ProviderError::Connection(format!(
                                "reading espeak-ng: {e}"
                            ))))
                            .await;
                        return;
                    }
                };
                if skip > 0 {
                    let n = skip.min(chunk.len());
                    chunk = chunk.slice(n..);
                    skip -= n;
                }
                if chunk.is_empty() {
                    continue;
                }
                sent += chunk.len();
                if tx.send(Ok(chunk)).await.is_err() {
                    return; // the listener left: dropping `child` ends the process
                }
            }
            let status = child.wait().await;
            if !status.as_ref().is_ok_and(|s| s.success()) || sent == 0 {
                let mut why = String::new();
                let _ = tokio::io::AsyncReadExt::read_to_string(
                    &mut tokio::io::AsyncReadExt::take(stderr, 1000),
                    &mut why,
                )
                .await;
                let why = why.trim();
                let message = if why.is_empty() {
                    "espeak-ng produced no audio".to_owned()
                } else {
                    format!("espeak-ng: {why}")
                };
                let _ = tx.send(Err(ProviderError::Protocol(message))).await;
            }
        });
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::plausible_voice;

    #[test]
    fn voices_that_could_be_options_or_paths_are_refused() {
        assert!(plausible_voice("en-us"));
        assert!(plausible_voice("en-gb+f3"));
        assert!(!plausible_voice("-w/tmp/x"));
        assert!(!plausible_voice("../../etc"));
        assert!(!plausible_voice(""));
    }
}
