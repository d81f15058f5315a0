//! Audio formats and the little the worker does to audio bytes: WAV headers (written, and fixed
//! once a streamed clip's length is known), durations, and text cut into pieces a provider takes.
//!
//! Hand-written rather than a decoder crate: only headers are read or written (44 bytes of WAV,
//! 4 bytes per MP3 frame), never samples.

use std::fmt;

/// An audio format a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// MPEG-1/2 Layer III.
    Mp3,
    /// RIFF WAVE, 16-bit PCM, mono.
    Wav,
    /// Raw 16-bit signed little-endian mono samples, no header.
    Pcm,
    /// Opus in Ogg.
    Opus,
    /// AAC in ADTS.
    Aac,
    /// FLAC.
    Flac,
}

impl AudioFormat {
    /// The format a name means (`mp3`, `wav`, `pcm`, `opus`, `aac`, `flac`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "mp3" => Self::Mp3,
            "wav" => Self::Wav,
            "pcm" => Self::Pcm,
            "opus" => Self::Opus,
            "aac" => Self::Aac,
            "flac" => Self::Flac,
            _ => return None,
        })
    }

    /// Its name and file extension.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mp3 => "mp3",
            Self::Wav => "wav",
            Self::Pcm => "pcm",
            Self::Opus => "opus",
            Self::Aac => "aac",
            Self::Flac => "flac",
        }
    }

    /// The MIME type a stored clip is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Mp3 => "audio/mpeg",
            Self::Wav => "audio/wav",
            Self::Pcm => "audio/pcm",
            Self::Opus => "audio/ogg",
            Self::Aac => "audio/aac",
            Self::Flac => "audio/flac",
        }
    }

    /// Whether clips of this format joined end to end are one valid clip (after
    /// [`strip_wav_header`] for WAV): what speaking a long text in pieces needs.
    pub fn joinable(self) -> bool {
        !matches!(self, Self::Flac)
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub use common::audio::{WAV_HEADER_LEN, wav_header};

/// Where the samples of a WAV clip start, with its byte rate: after the `data` chunk's header.
fn wav_data(bytes: &[u8]) -> Option<(usize, u32)> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut byte_rate = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        if id == b"fmt " && at + 20 <= bytes.len() {
            byte_rate = Some(u32::from_le_bytes(bytes[at + 16..at + 20].try_into().ok()?));
        }
        if id == b"data" {
            return Some((at + 8, byte_rate?));
        }
        at = at.checked_add(8 + size + (size & 1))?;
    }
    None
}

/// Sets the RIFF and `data` sizes of a WAV clip to its real length (a streamed clip carries
/// placeholders); false when the bytes are not WAV.
pub fn fix_wav_sizes(bytes: &mut [u8]) -> bool {
    let Some((start, _)) = wav_data(bytes) else {
        return false;
    };
    let total = u32::try_from(bytes.len() - 8).unwrap_or(u32::MAX);
    let data = u32::try_from(bytes.len() - start).unwrap_or(u32::MAX);
    bytes[4..8].copy_from_slice(&total.to_le_bytes());
    bytes[start - 4..start].copy_from_slice(&data.to_le_bytes());
    true
}

/// The samples of a WAV clip without its header (for the second and later pieces of a long
/// text); the bytes as they are when they are not WAV.
pub fn strip_wav_header(bytes: &[u8]) -> &[u8] {
    match wav_data(bytes) {
        Some((start, _)) => &bytes[start.min(bytes.len())..],
        None => bytes,
    }
}

/// How long a clip plays, in seconds, where its format tells: PCM and WAV from their sample
/// rate, MP3 from its frame headers.
pub fn duration_secs(format: AudioFormat, bytes: &[u8], pcm_rate: u32) -> Option<f64> {
    match format {
        AudioFormat::Pcm => Some(bytes.len() as f64 / (f64::from(pcm_rate) * 2.0)),
        AudioFormat::Wav => {
            let (start, byte_rate) = wav_data(bytes)?;
            (byte_rate > 0).then(|| (bytes.len() - start) as f64 / f64::from(byte_rate))
        }
        AudioFormat::Mp3 => mp3_duration(bytes),
        _ => None,
    }
}

/// The duration of an MP3 stream: the sum over its frames (an ID3v2 tag at the start is skipped).
fn mp3_duration(bytes: &[u8]) -> Option<f64> {
    let mut at = 0;
    if bytes.len() >= 10 && &bytes[0..3] == b"ID3" {
        let size = bytes[6..10]
            .iter()
            .fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7f));
        at = 10 + size;
    }
    let mut seconds = 0.0;
    let mut frames = 0;
    while at + 4 <= bytes.len() {
        let Some((len, samples, rate)) = mp3_frame(&bytes[at..at + 4]) else {
            at += 1;
            continue;
        };
        seconds += f64::from(samples) / f64::from(rate);
        frames += 1;
        at += len;
    }
    (frames > 0).then_some(seconds)
}

/// An MP3 frame header: the frame's length in bytes, its samples and its sample rate.
fn mp3_frame(h: &[u8]) -> Option<(usize, u32, u32)> {
    if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    let layer = (h[1] >> 1) & 3; // 1: Layer III
    if version == 1 || layer != 1 {
        return None;
    }
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 3);
    let padding = usize::from((h[2] >> 1) & 1);
    const V1: [u32; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const V2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    const RATES: [[u32; 3]; 3] = [
        [11_025, 12_000, 8000],
        [22_050, 24_000, 16_000],
        [44_100, 48_000, 32_000],
    ];
    if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let (bitrate, rate, samples, coefficient) = match version {
        3 => (V1[bitrate_index], RATES[2][rate_index], 1152, 144),
        2 => (V2[bitrate_index], RATES[1][rate_index], 576, 72),
        _ => (V2[bitrate_index], RATES[0][rate_index], 576, 72),
    };
    let len = (coefficient * bitrate as usize * 1000) / rate as usize + padding;
    (len >= 4).then_some((len, samples, rate))
}

/// `text` cut into pieces of at most `max` characters, at the end of a sentence where one is
/// near, else at a space, else anywhere.
pub fn pieces(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut out = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > max {
        let cut_at = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let head = &rest[..cut_at];
        let end = head
            .rfind(['.', '!', '?', '\n'])
            .map(|i| i + 1)
            .filter(|i| *i > cut_at / 2)
            .or_else(|| head.rfind(' ').filter(|i| *i > 0))
            .unwrap_or(cut_at);
        out.push(rest[..end].trim().to_owned());
        rest = rest[end..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out.retain(|p| !p.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_wav_gets_its_real_sizes() {
        let mut clip = wav_header(22_050, None).to_vec();
        clip.extend(vec![0u8; 44_100]);
        assert!(fix_wav_sizes(&mut clip));
        assert_eq!(&clip[40..44], &44_100u32.to_le_bytes());
        assert_eq!(&clip[4..8], &(44_100u32 + 36).to_le_bytes());
        assert_eq!(duration_secs(AudioFormat::Wav, &clip, 0), Some(1.0));
        assert_eq!(strip_wav_header(&clip).len(), 44_100);
        assert!(!fix_wav_sizes(&mut [1, 2, 3]));
        assert_eq!(
            duration_secs(AudioFormat::Pcm, &[0u8; 48_000], 24_000),
            Some(1.0)
        );
    }

    #[test]
    fn mp3_frames_add_up_to_the_duration() {
        // MPEG-1 Layer III, 128 kb/s, 44.1 kHz, no padding: 417 bytes, 1152 samples.
        let mut frame = vec![0u8; 417];
        frame[..4].copy_from_slice(&[0xff, 0xfb, 0x90, 0x00]);
        let clip: Vec<u8> = frame.iter().copied().cycle().take(417 * 100).collect();
        let d = duration_secs(AudioFormat::Mp3, &clip, 0).unwrap_or_default();
        assert!((d - 100.0 * 1152.0 / 44_100.0).abs() < 1e-9, "{d}");
        assert_eq!(duration_secs(AudioFormat::Mp3, b"not audio", 0), None);
    }

    #[test]
    fn long_texts_are_cut_at_sentences() {
        let text = "One two three. Four five six. Seven eight nine.";
        let p = pieces(text, 20);
        assert_eq!(p, ["One two three.", "Four five six.", "Seven eight nine."]);
        assert!(pieces(&"x".repeat(25), 10).iter().all(|p| p.len() <= 10));
        assert_eq!(pieces(&"x".repeat(25), 10).concat().len(), 25);
        assert_eq!(pieces("héllo wörld", 5), ["héllo", "wörld"]);
        assert!(pieces("   ", 5).is_empty());
    }
}
