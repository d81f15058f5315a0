//! Deterministic, decodable speech stand-in: a sine tone whose length follows the text, encoded
//! as the formats TTS providers return, and cut into chunks rendered on demand.
//!
//! PCM, WAV, μ-law and A-law carry the tone itself. MP3 carries valid MPEG Layer III frames of
//! silence (an encoder is out of scope); the frame count still follows the text, so a decoder sees
//! the right duration. Opus, AAC and FLAC are refused by the wire formats that offer them.
//!
//! The other way round, [`probe`] reads how long received audio lasts, for speech to text.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

mod g711;
mod mp3;
pub(crate) mod probe;

/// Frequency of the tone every clip carries.
const TONE_HZ: f64 = 440.0;
/// Peak of the tone: a quarter of full scale, loud enough to see and far from clipping.
const TONE_PEAK: f64 = 0.25 * i16::MAX as f64;
/// Longest clip the simulator renders, so a huge text cannot exhaust memory.
pub(crate) const MAX_CLIP: Duration = Duration::from_secs(600);
/// Size of the canonical 44-byte PCM WAV header.
pub(crate) const WAV_HEADER_LEN: usize = 44;

/// How the samples are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Raw signed 16-bit little-endian mono, no header.
    Pcm,
    /// `Pcm` behind a RIFF/WAVE header whose sizes are exact.
    Wav,
    /// MPEG Layer III mono frames at this bitrate, carrying silence.
    Mp3 { kbps: u32 },
    /// G.711 μ-law, one byte per sample, no header.
    Mulaw,
    /// G.711 A-law, one byte per sample, no header.
    Alaw,
}

/// An audio encoding and its sample rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AudioFormat {
    pub(crate) codec: Codec,
    pub(crate) rate: u32,
}

impl AudioFormat {
    /// An MP3 format, if `rate` and `kbps` make a valid mono MPEG-1 or MPEG-2 Layer III stream.
    pub(crate) fn mp3(rate: u32, kbps: u32) -> Option<Self> {
        mp3::FrameLayout::new(rate, kbps).map(|_| Self {
            codec: Codec::Mp3 { kbps },
            rate,
        })
    }

    /// The `Content-Type` the simulator sends for this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self.codec {
            Codec::Pcm => "audio/pcm",
            Codec::Wav => "audio/wav",
            Codec::Mp3 { .. } => "audio/mpeg",
            Codec::Mulaw => "audio/basic",
            Codec::Alaw => "audio/x-alaw-basic",
        }
    }
}

/// How long the simulated voice takes to say `text`: `per_char` for every character, divided
/// by `speed` and capped at [`MAX_CLIP`].
pub(crate) fn speech_duration(text: &str, per_char: Duration, speed: f64) -> Duration {
    let chars = text.chars().count() as f64;
    let speed = if speed.is_finite() && speed > 0.0 {
        speed
    } else {
        1.0
    };
    let secs = chars * per_char.as_secs_f64() / speed;
    Duration::try_from_secs_f64(secs)
        .unwrap_or(MAX_CLIP)
        .min(MAX_CLIP)
}

/// One rendered clip: its format, its length and how it is cut into chunks.
#[derive(Clone, Debug)]
pub(crate) struct Clip {
    format: AudioFormat,
    /// Samples of tone (PCM-like codecs) or frames (MP3).
    blocks: usize,
    /// Blocks per chunk, at least 1.
    blocks_per_chunk: usize,
}

impl Clip {
    /// A clip of `duration` (at least one sample or frame) cut into chunks of about `chunk`.
    pub(crate) fn new(format: AudioFormat, duration: Duration, chunk: Duration) -> Self {
        let rate = f64::from(format.rate);
        let samples = (duration.as_secs_f64() * rate).round().max(1.0);
        let chunk_samples = (chunk.as_secs_f64() * rate).round().max(1.0);
        let (blocks, blocks_per_chunk) = match format.codec {
            Codec::Mp3 { .. } => {
                let per_frame = mp3::samples_per_frame(format.rate) as f64;
                (
                    (samples / per_frame).ceil(),
                    (chunk_samples / per_frame).round().max(1.0),
                )
            }
            Codec::Pcm | Codec::Wav | Codec::Mulaw | Codec::Alaw => (samples, chunk_samples),
        };
        // Both are at most 600 s × 48 kHz, far inside usize.
        Self {
            format,
            blocks: blocks as usize,
            blocks_per_chunk: blocks_per_chunk as usize,
        }
    }

    /// The clip's format.
    pub(crate) fn format(&self) -> AudioFormat {
        self.format
    }

    /// Number of chunks, at least 1.
    pub(crate) fn chunk_count(&self) -> usize {
        self.blocks.div_ceil(self.blocks_per_chunk).max(1)
    }

    /// Bytes of chunk `index`; empty past the end. The WAV header travels in chunk 0.
    pub(crate) fn chunk(&self, index: usize) -> Bytes {
        let start = index.saturating_mul(self.blocks_per_chunk).min(self.blocks);
        let end = start.saturating_add(self.blocks_per_chunk).min(self.blocks);
        let mut out = BytesMut::new();
        if index == 0 && self.format.codec == Codec::Wav {
            wav_header(&mut out, self.format.rate, self.blocks);
        }
        self.render(start, end, &mut out);
        out.freeze()
    }

    /// The whole clip in one buffer.
    pub(crate) fn whole(&self) -> Bytes {
        let mut out = BytesMut::new();
        if self.format.codec == Codec::Wav {
            wav_header(&mut out, self.format.rate, self.blocks);
        }
        self.render(0, self.blocks, &mut out);
        out.freeze()
    }

    fn render(&self, start: usize, end: usize, out: &mut BytesMut) {
        let rate = self.format.rate;
        match self.format.codec {
            Codec::Pcm | Codec::Wav => {
                out.reserve((end - start) * 2);
                for n in start..end {
                    out.put_i16_le(tone(n, rate));
                }
            }
            Codec::Mulaw => out.extend((start..end).map(|n| g711::mulaw(tone(n, rate)))),
            Codec::Alaw => out.extend((start..end).map(|n| g711::alaw(tone(n, rate)))),
            Codec::Mp3 { kbps } => {
                if let Some(layout) = mp3::FrameLayout::new(rate, kbps) {
                    for _ in start..end {
                        layout.put_silent_frame(out);
                    }
                }
            }
        }
    }
}

/// Sample `n` of the tone; computed from the absolute index so chunks join without a click.
fn tone(n: usize, rate: u32) -> i16 {
    let t = n as f64 / f64::from(rate);
    // |TONE_PEAK × sin| ≤ 8192, well inside i16.
    (TONE_PEAK * (std::f64::consts::TAU * TONE_HZ * t).sin()).round() as i16
}

/// The canonical 44-byte header of a mono 16-bit PCM WAV file holding `samples` samples.
fn wav_header(out: &mut BytesMut, rate: u32, samples: usize) {
    let data_len = u32::try_from(samples * 2).unwrap_or(u32::MAX);
    out.reserve(WAV_HEADER_LEN);
    out.put_slice(b"RIFF");
    out.put_u32_le(data_len.saturating_add(36));
    out.put_slice(b"WAVE");
    out.put_slice(b"fmt ");
    out.put_u32_le(16); // fmt chunk size
    out.put_u16_le(1); // PCM
    out.put_u16_le(1); // mono
    out.put_u32_le(rate);
    out.put_u32_le(rate * 2); // byte rate
    out.put_u16_le(2); // block align
    out.put_u16_le(16); // bits per sample
    out.put_slice(b"data");
    out.put_u32_le(data_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    const PCM_24K: AudioFormat = AudioFormat {
        codec: Codec::Pcm,
        rate: 24_000,
    };

    #[test]
    fn duration_follows_the_text_and_the_speed() {
        let per_char = Duration::from_millis(60);
        assert_eq!(
            speech_duration("hello", per_char, 1.0),
            Duration::from_millis(300)
        );
        assert_eq!(
            speech_duration("hello", per_char, 2.0),
            Duration::from_millis(150)
        );
        assert_eq!(speech_duration("", per_char, 1.0), Duration::ZERO);
        let huge = "x".repeat(1_000_000);
        assert_eq!(speech_duration(&huge, per_char, 0.25), MAX_CLIP);
    }

    #[test]
    fn chunks_join_into_the_whole_clip() {
        for codec in [Codec::Pcm, Codec::Wav, Codec::Mulaw, Codec::Alaw] {
            let format = AudioFormat {
                codec,
                rate: 16_000,
            };
            let clip = Clip::new(
                format,
                Duration::from_millis(250),
                Duration::from_millis(100),
            );
            assert_eq!(clip.chunk_count(), 3, "{codec:?}");
            let joined: Vec<u8> = (0..clip.chunk_count())
                .flat_map(|i| clip.chunk(i).to_vec())
                .collect();
            assert_eq!(joined, clip.whole().to_vec(), "{codec:?}");
            assert!(clip.chunk(3).is_empty());
        }
        let mp3 = AudioFormat::mp3(24_000, 48).unwrap();
        let clip = Clip::new(mp3, Duration::from_millis(250), Duration::from_millis(100));
        let joined: Vec<u8> = (0..clip.chunk_count())
            .flat_map(|i| clip.chunk(i).to_vec())
            .collect();
        assert_eq!(joined, clip.whole().to_vec());
    }

    #[test]
    fn wav_header_matches_the_data() {
        let format = AudioFormat {
            codec: Codec::Wav,
            rate: 24_000,
        };
        let clip = Clip::new(
            format,
            Duration::from_millis(500),
            Duration::from_millis(100),
        );
        let bytes = clip.whole();
        assert_eq!(bytes.len(), WAV_HEADER_LEN + 12_000 * 2);
        assert_eq!(&bytes[0..4], b"RIFF");
        let riff_len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        assert_eq!(riff_len as usize, bytes.len() - 8);
        let data_len = u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]);
        assert_eq!(data_len as usize, 24_000);
    }

    #[test]
    fn at_least_one_sample_and_one_chunk() {
        let clip = Clip::new(PCM_24K, Duration::ZERO, Duration::ZERO);
        assert_eq!(clip.chunk_count(), 1);
        assert_eq!(clip.chunk(0).len(), 2);
    }

    #[test]
    fn the_tone_is_not_silence() {
        let clip = Clip::new(
            PCM_24K,
            Duration::from_millis(10),
            Duration::from_millis(10),
        );
        let bytes = clip.whole();
        let peak = bytes
            .chunks_exact(2)
            .map(|s| i16::from_le_bytes([s[0], s[1]]).unsigned_abs())
            .max();
        assert!(peak > Some(8000), "{peak:?}");
    }
}
