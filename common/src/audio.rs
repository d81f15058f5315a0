//! Audio container facts several services need: the canonical 16-bit mono PCM WAV header, and the
//! format of a recording told by its first bytes.

/// Size of the canonical WAV header [`wav_header`] writes.
pub const WAV_HEADER_LEN: usize = 44;

/// A 16-bit mono PCM WAV header for `data_len` bytes of samples; `None` writes the largest size,
/// the convention for a stream whose length is not known yet.
pub fn wav_header(sample_rate: u32, data_len: Option<u32>) -> [u8; WAV_HEADER_LEN] {
    let data_len = data_len.unwrap_or(u32::MAX - 36);
    let mut h = [0u8; WAV_HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(data_len.saturating_add(36)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&(sample_rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// 16-bit little-endian mono `pcm` at `sample_rate` as a WAV file.
pub fn wav(pcm: &[u8], sample_rate: u32) -> Vec<u8> {
    let len = u32::try_from(pcm.len()).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(WAV_HEADER_LEN + pcm.len());
    out.extend_from_slice(&wav_header(sample_rate, Some(len)));
    out.extend_from_slice(pcm);
    out
}

/// A recording's format told by its first bytes (`wav`, `mp3`, `ogg`, `flac`, `webm`), for audio
/// sent without a name.
pub fn sniff_format(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WAVE") {
        Some("wav")
    } else if bytes.starts_with(b"ID3") || bytes.first() == Some(&0xff) {
        Some("mp3")
    } else if bytes.starts_with(b"OggS") {
        Some("ogg")
    } else if bytes.starts_with(b"fLaC") {
        Some("flac")
    } else if bytes.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        Some("webm")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_is_its_header_then_its_samples_and_is_told_as_wav() {
        let file = wav(&[1, 0, 2, 0], 16_000);
        assert_eq!(file.len(), WAV_HEADER_LEN + 4);
        assert_eq!(&file[40..44], &4u32.to_le_bytes());
        assert_eq!(&file[24..28], &16_000u32.to_le_bytes());
        assert_eq!(sniff_format(&file), Some("wav"));
        assert_eq!(sniff_format(b"OggS...."), Some("ogg"));
        assert_eq!(sniff_format(b"plain"), None);
    }
}
