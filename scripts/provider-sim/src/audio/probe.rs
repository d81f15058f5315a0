//! How long received audio lasts, read from its bytes the way a decoder starts: a WAV header, the
//! first MPEG audio frame, or a raw sample layout the request states.

use std::time::Duration;

use super::mp3::{MPEG1_KBPS, MPEG2_KBPS};

/// Bytes per second assumed for audio whose length its first bytes do not tell (Ogg, WebM, MP4,
/// FLAC, …): 128 kbit/s.
pub(crate) const NOMINAL_BYTE_RATE: u32 = 16_000;
/// Bytes of a RIFF/WAVE preamble (`RIFF`, size, `WAVE`) and of a chunk header (id, size).
const RIFF_PREAMBLE: usize = 12;
const CHUNK_HEADER: usize = 8;
/// Bytes of an ID3v2 tag header (and of its optional footer).
const ID3_HEADER: usize = 10;

/// Raw samples without a header: `rate` frames a second of `channels` samples of `sample_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawLayout {
    pub(crate) rate: u32,
    pub(crate) channels: u16,
    pub(crate) sample_bytes: u16,
}

/// What the first bytes of a clip say about how the rest of it plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Container {
    /// RIFF/WAVE: samples start after `header_len` bytes and play at `byte_rate`; `data_len` is
    /// the `data` chunk's declared size, unless it is 0 or `0xFFFFFFFF` (a streamed WAV).
    Wav {
        header_len: usize,
        byte_rate: u32,
        data_len: Option<usize>,
    },
    /// Constant-bitrate MPEG Layer III frames after an optional ID3v2 tag of `header_len` bytes.
    Mpeg { header_len: usize, byte_rate: u32 },
    /// Samples laid out as the request said (Deepgram's `encoding` and `sample_rate`, a Gemini
    /// `audio/L16;rate=…` or `audio/pcm` part).
    Raw(RawLayout),
    /// Anything else, taken to play at [`NOMINAL_BYTE_RATE`].
    Other,
}

/// The bytes claim to be a WAV file but its header cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) &'static str);

impl Container {
    /// Reads the container from a clip's first bytes; `raw` is the layout the request stated,
    /// which wins over the bytes as it does for the real APIs.
    pub(crate) fn sniff(bytes: &[u8], raw: Option<RawLayout>) -> Result<Self, Corrupt> {
        if let Some(raw) = raw {
            return Ok(Container::Raw(raw));
        }
        if bytes.starts_with(b"RIFF") {
            return wav(bytes);
        }
        Ok(mpeg(bytes).unwrap_or(Container::Other))
    }

    /// Bytes before the first sample.
    pub(crate) fn header_len(self) -> usize {
        match self {
            Container::Wav { header_len, .. } | Container::Mpeg { header_len, .. } => header_len,
            Container::Raw(_) | Container::Other => 0,
        }
    }

    /// Bytes of audio a second of it takes.
    fn byte_rate(self) -> u64 {
        match self {
            Container::Wav { byte_rate, .. } | Container::Mpeg { byte_rate, .. } => {
                u64::from(byte_rate)
            }
            Container::Raw(raw) => {
                u64::from(raw.rate) * u64::from(raw.channels) * u64::from(raw.sample_bytes)
            }
            Container::Other => u64::from(NOMINAL_BYTE_RATE),
        }
    }

    /// How long a clip of `total` bytes (header included) in this container lasts.
    pub(crate) fn duration(self, total: usize) -> Duration {
        let mut payload = total.saturating_sub(self.header_len());
        if let Container::Wav {
            data_len: Some(data_len),
            ..
        } = self
        {
            // Chunks after `data` (LIST, id3) are not audio.
            payload = payload.min(data_len);
        }
        let byte_rate = self.byte_rate().max(1);
        let secs = payload as f64 / byte_rate as f64;
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Walks the RIFF chunks up to `data`, reading `fmt ` on the way.
fn wav(bytes: &[u8]) -> Result<Container, Corrupt> {
    if bytes.get(8..12) != Some(b"WAVE") {
        return Err(Corrupt("a RIFF file that is not WAVE"));
    }
    let mut at = RIFF_PREAMBLE;
    let mut byte_rate = None;
    loop {
        let (Some(id), Some(size)) = (bytes.get(at..at + 4), u32_at(bytes, at + 4)) else {
            return Err(Corrupt("no data chunk in the WAV header"));
        };
        let body = at + CHUNK_HEADER;
        match id {
            b"fmt " => {
                let channels = u16_at(bytes, body + 2).unwrap_or(0);
                let rate = u32_at(bytes, body + 4).unwrap_or(0);
                let rate_field = u32_at(bytes, body + 8).unwrap_or(0);
                if channels == 0 || rate == 0 || rate_field == 0 {
                    return Err(Corrupt("a WAV fmt chunk without channels or rate"));
                }
                byte_rate = Some(rate_field);
            }
            b"data" => {
                let Some(byte_rate) = byte_rate else {
                    return Err(Corrupt("a WAV data chunk before its fmt chunk"));
                };
                let data_len = match size {
                    0 | u32::MAX => None,
                    size => usize::try_from(size).ok(),
                };
                return Ok(Container::Wav {
                    header_len: body,
                    byte_rate,
                    data_len,
                });
            }
            _ => {}
        }
        // Chunk bodies are padded to an even length.
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        at = body.saturating_add(size).saturating_add(size & 1);
    }
}

/// An MPEG Layer III stream: its first frame's bitrate, after an ID3v2 tag if there is one.
fn mpeg(bytes: &[u8]) -> Option<Container> {
    let mut header_len = 0;
    if bytes.starts_with(b"ID3") {
        let flags = *bytes.get(5)?;
        // The tag size is "syncsafe": 7 bits per byte.
        let size = bytes
            .get(6..10)?
            .iter()
            .fold(0usize, |size, b| (size << 7) | usize::from(b & 0x7F));
        let footer = if flags & 0x10 != 0 { ID3_HEADER } else { 0 };
        header_len = ID3_HEADER + size + footer;
    }
    let frame = bytes.get(header_len..header_len + 4)?;
    if frame[0] != 0xFF || frame[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (frame[1] >> 3) & 0b11;
    let layer = (frame[1] >> 1) & 0b11;
    let bitrate_index = usize::from(frame[2] >> 4);
    let rate_index = (frame[2] >> 2) & 0b11;
    if layer != 0b01 || rate_index == 0b11 {
        return None;
    }
    let table = match version {
        0b11 => &MPEG1_KBPS,
        0b10 | 0b00 => &MPEG2_KBPS,
        _ => return None,
    };
    // Index 0 is "free format" and 15 is invalid; neither has a bitrate to go by.
    let kbps = table.get(bitrate_index.checked_sub(1)?)?;
    Some(Container::Mpeg {
        header_len,
        byte_rate: kbps * 1000 / 8,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{AudioFormat, Clip, Codec};
    use super::*;

    fn clip(codec: Codec, rate: u32, millis: u64) -> Vec<u8> {
        let format = AudioFormat { codec, rate };
        let duration = Duration::from_millis(millis);
        Clip::new(format, duration, duration).whole().to_vec()
    }

    fn duration_of(bytes: &[u8], raw: Option<RawLayout>) -> Result<Duration, Corrupt> {
        Ok(Container::sniff(bytes, raw)?.duration(bytes.len()))
    }

    fn millis(d: Result<Duration, Corrupt>) -> u128 {
        d.map(|d| d.as_millis()).unwrap_or(u128::MAX)
    }

    #[test]
    fn a_wav_lasts_what_its_header_says() {
        let wav = clip(Codec::Wav, 16_000, 1_500);
        assert_eq!(millis(duration_of(&wav, None)), 1_500);
        // Trailing chunks after the samples are not audio.
        let mut tagged = wav.clone();
        tagged.extend_from_slice(b"LIST\x04\x00\x00\x00INFO");
        assert_eq!(millis(duration_of(&tagged, None)), 1_500);
        // A streamed WAV declares no size: whatever follows the header counts.
        let mut streamed = wav.clone();
        streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        streamed.extend_from_slice(&[0; 32_000]);
        assert_eq!(millis(duration_of(&streamed, None)), 2_500);
        let container = Container::sniff(&wav[..44], None);
        assert!(matches!(
            container,
            Ok(Container::Wav {
                header_len: 44,
                byte_rate: 32_000,
                ..
            })
        ));
    }

    #[test]
    fn broken_wav_headers_are_corrupt() {
        let wav = clip(Codec::Wav, 16_000, 100);
        assert!(duration_of(&wav[..20], None).is_err());
        assert!(duration_of(b"RIFF\0\0\0\0AVI LIST", None).is_err());
        let mut no_rate = wav.clone();
        no_rate[24..32].fill(0);
        assert!(duration_of(&no_rate, None).is_err());
        // A huge chunk size runs off the end instead of overflowing.
        let mut huge = wav;
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(duration_of(&huge, None).is_err());
    }

    #[test]
    fn mp3_lasts_its_bytes_at_its_first_frames_bitrate() {
        let mp3 = clip(Codec::Mp3 { kbps: 128 }, 44_100, 2_000);
        let frames = mp3.len() / 417;
        let expected = frames as f64 * 417.0 * 8.0 / 128_000.0;
        let measured = duration_of(&mp3, None)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        assert!(
            (measured - expected).abs() < 1e-6,
            "{measured} vs {expected}"
        );
        // An ID3v2 tag in front is skipped.
        let mut tagged = b"ID3\x04\x00\x00\x00\x00\x00\x05hello".to_vec();
        tagged.extend_from_slice(&mp3);
        assert!(matches!(
            Container::sniff(&tagged, None),
            Ok(Container::Mpeg {
                header_len: 15,
                byte_rate: 16_000
            })
        ));
    }

    #[test]
    fn raw_layouts_and_unknown_bytes() {
        let raw = RawLayout {
            rate: 8_000,
            channels: 1,
            sample_bytes: 1,
        };
        assert_eq!(millis(duration_of(&[0; 4_000], Some(raw))), 500);
        // The stated layout wins over what the bytes look like.
        let wav = clip(Codec::Wav, 16_000, 100);
        assert_eq!(Container::sniff(&wav, Some(raw)), Ok(Container::Raw(raw)));
        assert_eq!(millis(duration_of(&[7; 8_000], None)), 500);
        assert_eq!(millis(duration_of(&[], None)), 0);
    }
}
