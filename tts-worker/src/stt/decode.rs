//! Audio as a speech model takes it: any upload decoded, mixed down to mono and resampled to
//! 16 kHz `f32` samples in [-1, 1]. The offline Whisper (`local`) uses it for whole files; live
//! transcription can use [`resample_pcm16`] on the 16-bit PCM it receives.
//!
//! Decoding is symphonia's (WAV of any rate, channel count and sample format, MP3, FLAC, Ogg
//! Vorbis), resampling rubato's synchronous FFT resampler: written by hand they would be the
//! larger part of this worker.

use std::io::Cursor;

use bytes::Bytes;
use common::provider::ProviderError;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::providers::Audio;

/// The sample rate speech models take (Whisper's), Hz.
pub const SAMPLE_RATE: u32 = 16_000;

/// The longest audio decoded, seconds: 20 minutes are 77 MB of 16 kHz samples (and up to three
/// times that at 48 kHz while they are resampled), and about 40 s of the local model's time on
/// two cores. A 25 MiB upload of compressed audio can hold hours.
pub const MAX_SECONDS: u32 = 20 * 60;

/// The formats [`decode_to_16k_mono`] reads.
pub const DECODED_FORMATS: [&str; 5] = ["wav", "pcm", "mp3", "flac", "ogg"];

/// Why audio could not be turned into samples.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// The format is not one this decoder reads (opus, webm, m4a, …).
    #[error(
        "{0} audio cannot be decoded here (this provider reads wav, pcm, mp3, flac and ogg vorbis); convert it or name another provider"
    )]
    UnsupportedFormat(String),
    /// The bytes are not what their format says.
    #[error("the audio could not be decoded as {format}: {reason}")]
    Corrupt {
        /// The format it was read as.
        format: String,
        /// What went wrong.
        reason: String,
    },
    /// Longer than [`MAX_SECONDS`].
    #[error("the audio is longer than {} minutes, the most transcribed here", MAX_SECONDS / 60)]
    TooLong,
}

impl From<AudioError> for ProviderError {
    fn from(e: AudioError) -> Self {
        match e {
            AudioError::TooLong => ProviderError::Unsupported(e.to_string()),
            e => ProviderError::InvalidAudio(e.to_string()),
        }
    }
}

/// The audio as 16 kHz mono samples in [-1, 1]: `pcm` is read as 16-bit little-endian mono at
/// `sample_rate` (16 kHz when absent), the other formats of [`DECODED_FORMATS`] by their
/// headers. Channels are averaged. CPU-bound (a few milliseconds for 10 s of WAV in a release
/// build, more when it is resampled): call it off the async runtime for long audio.
pub fn decode_to_16k_mono(audio: &Audio) -> Result<Vec<f32>, AudioError> {
    match audio.format.as_str() {
        "pcm" => {
            let rate = audio.sample_rate.unwrap_or(SAMPLE_RATE);
            if audio.bytes.len() / 2 > (MAX_SECONDS as usize) * (rate as usize) {
                return Err(AudioError::TooLong);
            }
            resample_pcm16(&audio.bytes, rate)
        }
        "wav" | "mp3" | "flac" | "ogg" => {
            let (samples, rate) = decode_mono(audio.bytes.clone(), &audio.format)?;
            resample_to_16k(&samples, rate)
        }
        other => Err(AudioError::UnsupportedFormat(other.to_owned())),
    }
}

/// 16-bit signed little-endian mono PCM at `rate` Hz as 16 kHz samples in [-1, 1] (a last odd
/// byte is ignored). For live audio, resample pieces of a second or more: each call starts the
/// resampler afresh, so very short pieces cost more and may click at their joins.
pub fn resample_pcm16(bytes: &[u8], rate: u32) -> Result<Vec<f32>, AudioError> {
    let samples: Vec<f32> = bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0)
        .collect();
    resample_to_16k(&samples, rate)
}

/// Mono samples at `rate` Hz resampled to 16 kHz; the output has `len × 16000 / rate` samples
/// (rounded up), aligned with the input (the resampler's delay is trimmed).
pub fn resample_to_16k(samples: &[f32], rate: u32) -> Result<Vec<f32>, AudioError> {
    if rate == SAMPLE_RATE || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let corrupt = |reason: String| AudioError::Corrupt {
        format: format!("audio at {rate} Hz"),
        reason,
    };
    if rate == 0 {
        return Err(corrupt("a sample rate of 0".into()));
    }
    let mut resampler = Fft::<f32>::new(
        rate as usize,
        SAMPLE_RATE as usize,
        1024,
        1,
        FixedSync::Both,
    )
    .map_err(|e| corrupt(e.to_string()))?;
    let input =
        InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| corrupt(e.to_string()))?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(output.take_data())
}

/// Decodes a container (WAV, MP3, FLAC, Ogg) into mono samples at its own rate.
fn decode_mono(bytes: Bytes, format: &str) -> Result<(Vec<f32>, u32), AudioError> {
    let corrupt = |reason: String| AudioError::Corrupt {
        format: format.to_owned(),
        reason,
    };
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(format);
    let mut reader = symphonia::default::get_probe()
        .probe(
            &hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| corrupt(e.to_string()))?;
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| corrupt("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| corrupt("no audio codec parameters".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| corrupt(e.to_string()))?;
    let mut mono: Vec<f32> = Vec::new();
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut rate = params.sample_rate.unwrap_or(0);
    let mut bad_packets = 0usize;
    let mut good_packets = 0usize;
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A stream cut short (or a streamed WAV whose header overstates its length) ends here.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) if good_packets > 0 => {
                tracing::debug!(error = %e, "audio decoding stopped early");
                break;
            }
            Err(e) => return Err(corrupt(e.to_string())),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            // One damaged packet is skipped, as players do.
            Err(SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_)) => {
                bad_packets += 1;
                continue;
            }
            Err(e) => return Err(corrupt(e.to_string())),
        };
        good_packets += 1;
        rate = buffer.spec().rate();
        buffer.copy_to_vecs_planar::<f32>(&mut planes);
        let channels = planes.len().max(1);
        let frames = planes.first().map_or(0, Vec::len);
        mono.extend((0..frames).map(|i| {
            planes
                .iter()
                .map(|p| p.get(i).copied().unwrap_or(0.0))
                .sum::<f32>()
                / channels as f32
        }));
        if rate > 0 && mono.len() > (MAX_SECONDS as usize) * (rate as usize) {
            return Err(AudioError::TooLong);
        }
    }
    if good_packets == 0 && bad_packets > 0 {
        return Err(corrupt(format!(
            "none of its {bad_packets} packets decoded"
        )));
    }
    if rate == 0 {
        return Err(corrupt("no sample rate".into()));
    }
    Ok((mono, rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::wav_header;

    fn sine(rate: u32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.5)
            .collect()
    }

    fn pcm16(samples: &[f32]) -> Vec<u8> {
        samples
            .iter()
            .flat_map(|s| ((s * 32_767.0) as i16).to_le_bytes())
            .collect()
    }

    #[test]
    fn resampling_keeps_the_duration() {
        for rate in [8_000, 22_050, 24_000, 44_100, 48_000] {
            let out = resample_to_16k(&sine(rate, 2.0), rate).unwrap();
            assert!(out.len().abs_diff(32_000) <= 1, "{rate}: {}", out.len());
            // The tone survives: its level is about that of a 0.5 sine (RMS 0.35).
            let rms = (out.iter().map(|s| s * s).sum::<f32>() / out.len() as f32).sqrt();
            assert!((rms - 0.354).abs() < 0.02, "{rate}: rms {rms}");
        }
        assert_eq!(
            resample_to_16k(&sine(16_000, 1.0), 16_000).unwrap().len(),
            16_000
        );
        assert!(resample_to_16k(&[], 44_100).unwrap().is_empty());
    }

    #[test]
    fn pcm_is_read_as_16_bit_mono() {
        let bytes = pcm16(&sine(8_000, 1.5));
        let out = resample_pcm16(&bytes, 8_000).unwrap();
        assert!(out.len().abs_diff(24_000) <= 1, "{}", out.len());
        assert!(out.iter().all(|s| s.abs() <= 1.0));
    }

    #[test]
    fn a_stereo_wav_is_mixed_down_and_resampled() {
        // 0.5 s of 44.1 kHz stereo: the left channel a tone, the right its negation, so the mix
        // is silence.
        let tone = sine(44_100, 0.5);
        let mut body = Vec::new();
        for s in &tone {
            body.extend_from_slice(&((s * 32_767.0) as i16).to_le_bytes());
            body.extend_from_slice(&((-s * 32_767.0) as i16).to_le_bytes());
        }
        let mut wav = stereo_header(44_100, body.len() as u32);
        wav.extend_from_slice(&body);
        let audio = Audio {
            bytes: Bytes::from(wav),
            format: "wav".into(),
            sample_rate: None,
        };
        let out = decode_to_16k_mono(&audio).unwrap();
        assert!(out.len().abs_diff(8_000) <= 1, "{}", out.len());
        assert!(out.iter().all(|s| s.abs() < 1e-3));
    }

    #[test]
    fn a_mono_wav_decodes() {
        let samples = sine(22_050, 1.0);
        let body = pcm16(&samples);
        let mut wav = wav_header(22_050, Some(body.len() as u32)).to_vec();
        wav.extend_from_slice(&body);
        let audio = Audio {
            bytes: Bytes::from(wav),
            format: "wav".into(),
            sample_rate: None,
        };
        assert!(decode_to_16k_mono(&audio).unwrap().len().abs_diff(16_000) <= 1);
    }

    #[test]
    fn bad_audio_is_an_error_not_a_panic() {
        for (bytes, format) in [
            (b"RIFF....WAVEjunk".to_vec(), "wav"),
            (b"not audio at all".to_vec(), "mp3"),
            (vec![0u8; 3], "flac"),
            (Vec::new(), "ogg"),
        ] {
            let audio = Audio {
                bytes: Bytes::from(bytes),
                format: format.into(),
                sample_rate: None,
            };
            let e = decode_to_16k_mono(&audio).unwrap_err();
            assert!(matches!(e, AudioError::Corrupt { .. }), "{format}: {e:?}");
            assert_eq!(ProviderError::from(e).code(), "invalid_audio");
        }
        let opus = Audio {
            bytes: Bytes::from_static(b"OggS"),
            format: "opus".into(),
            sample_rate: None,
        };
        assert_eq!(
            decode_to_16k_mono(&opus).unwrap_err(),
            AudioError::UnsupportedFormat("opus".into())
        );
    }

    fn stereo_header(rate: u32, data_len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * 4).to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        v
    }
}
