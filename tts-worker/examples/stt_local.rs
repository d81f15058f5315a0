//! The offline transcription provider's figures on this machine: load time, seconds and
//! real-time factor per clip, word error rate, and peak memory. Run by
//! `scripts/bench --only stt-local`, or by hand (a release build: the model's C++ is optimised
//! in any profile, the spectrogram and resampling are not):
//!
//! ```sh
//! cargo run --release -p tts-worker --example stt_local -- \
//!   --model ~/.cache/aibackend/models/whisper-tiny.en --audio ~/.cache/aibackend/test-audio
//! ```
//!
//! Clips: `beckett.wav` (a 10 s recording, from `ensure_test_audio`), espeak-ng saying a
//! reminder (22.05 kHz, made here), and the recording four times over (40 s: two windows).
#![allow(clippy::print_stdout)] // A command-line tool: its table is its output.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use tts_worker::stt::decode::{SAMPLE_RATE, decode_to_16k_mono};
use tts_worker::stt::local::LocalWhisper;
use tts_worker::stt::providers::Audio;
use tts_worker::stt::score::word_error_rate;

const BECKETT: &str = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.";
const REMINDER: &str = "please remind me to water the tomatoes on tuesday morning";

struct Args {
    model: PathBuf,
    audio: PathBuf,
    threads: usize,
    runs: usize,
}

fn args() -> anyhow::Result<Args> {
    let home = std::env::var("HOME").unwrap_or_default();
    let mut a = Args {
        model: std::env::var("STT__MODEL_DIR")
            .unwrap_or_else(|_| tts_worker::config::default_model_dir())
            .into(),
        audio: std::env::var("TEST_AUDIO_DIR")
            .unwrap_or_else(|_| format!("{home}/.cache/aibackend/test-audio"))
            .into(),
        threads: 2,
        runs: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => a.model = value.into(),
            "--audio" => a.audio = value.into(),
            "--threads" => a.threads = value.parse()?,
            "--runs" => a.runs = value.parse()?,
            _ => anyhow::bail!(
                "usage: stt_local [--model DIR] [--audio DIR] [--threads N] [--runs N]"
            ),
        }
    }
    Ok(a)
}

fn decode(bytes: Vec<u8>) -> anyhow::Result<Vec<f32>> {
    Ok(decode_to_16k_mono(&Audio {
        bytes: Bytes::from(bytes),
        format: "wav".into(),
        sample_rate: None,
    })?)
}

/// CPU time of this process so far (all threads), seconds: `utime + stime` of `/proc/self/stat`,
/// in the kernel's fixed 100 ticks a second. On a busy machine this stays what the work costs
/// while the wall time grows.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start at its closing ')'.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .map_or(0.0, |ticks| ticks / 100.0)
}

/// The peak resident memory of this process so far (`VmHWM`), MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let model_bytes = std::fs::metadata(a.model.join("model.bin"))?.len();
    let started = Instant::now();
    let model = LocalWhisper::load(&a.model, a.threads)?;
    let load = started.elapsed();
    println!(
        "model {} ({:.1} MB model.bin), {} threads: loaded in {} ms, peak RSS {:.0} MB",
        a.model.display(),
        model_bytes as f64 / 1e6,
        a.threads,
        load.as_millis(),
        peak_rss_mb()
    );

    let beckett_wav = std::fs::read(a.audio.join("beckett.wav"))?;
    let reminder_path = std::env::temp_dir().join(format!("stt-bench-{}.wav", std::process::id()));
    let spoke = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&reminder_path)
        .arg(REMINDER)
        .status()?;
    anyhow::ensure!(spoke.success(), "espeak-ng failed");
    let reminder_wav = std::fs::read(&reminder_path)?;
    let _ = std::fs::remove_file(&reminder_path);

    let started = Instant::now();
    let beckett = decode(beckett_wav)?;
    let decode_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let reminder = decode(reminder_wav)?;
    let resample_ms = started.elapsed().as_secs_f64() * 1e3;
    let long: Vec<f32> = beckett
        .iter()
        .copied()
        .cycle()
        .take(beckett.len() * 4)
        .collect();
    let clips = [
        ("beckett.wav (recording)", beckett, BECKETT.to_owned()),
        (
            "espeak-ng reminder (22.05 kHz)",
            reminder,
            REMINDER.to_owned(),
        ),
        ("beckett.wav ×4", long, [BECKETT; 4].join(" ")),
    ];
    println!(
        "decoding: beckett.wav (10 s, 16 kHz WAV) {decode_ms:.1} ms; the espeak-ng clip (22.05 kHz WAV, resampled) {resample_ms:.1} ms"
    );
    println!();
    println!(
        "| clip | audio | seconds per run (min / median of {}) | real-time factor (min) | CPU seconds per run | WER | text |",
        a.runs
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for (name, samples, said) in clips {
        let secs = samples.len() as f64 / f64::from(SAMPLE_RATE);
        let mut times = Vec::new();
        let mut text = String::new();
        let cpu = cpu_secs();
        for _ in 0..a.runs.max(1) {
            let started = Instant::now();
            let t = model.transcribe_samples(samples.clone()).await?;
            times.push(started.elapsed().as_secs_f64());
            text = t.text;
        }
        let cpu = (cpu_secs() - cpu) / times.len() as f64;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "| {name} | {secs:.1} s | {:.2} / {median:.2} s | {:.3} | {cpu:.2} | {:.3} | {text} |",
            times[0],
            times[0] / secs,
            word_error_rate(&said, &text),
        );
    }
    println!();
    println!("peak RSS {:.0} MB", peak_rss_mb());
    Ok(())
}
