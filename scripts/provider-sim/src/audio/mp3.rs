//! Silent MPEG Layer III frames: a valid header, all-zero side information and no main data, which
//! every decoder plays as silence of exactly one frame's length.

use bytes::{BufMut, BytesMut};

/// Layer III bitrates (kbit/s) for bitrate indexes 1 to 14, MPEG-1.
pub(super) const MPEG1_KBPS: [u32; 14] = [
    32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
/// Layer III bitrates (kbit/s) for bitrate indexes 1 to 14, MPEG-2 (the half sample rates).
pub(super) const MPEG2_KBPS: [u32; 14] =
    [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/// Samples one frame decodes to: 1152 for MPEG-1, 576 for MPEG-2.
pub(super) fn samples_per_frame(rate: u32) -> usize {
    if rate >= 32_000 { 1152 } else { 576 }
}

/// The fixed bytes of every frame of one stream.
#[derive(Clone, Copy, Debug)]
pub(super) struct FrameLayout {
    header: [u8; 4],
    frame_len: usize,
}

impl FrameLayout {
    /// The layout for mono frames at `rate` Hz and `kbps`; `None` if MPEG Layer III has no such
    /// combination.
    pub(super) fn new(rate: u32, kbps: u32) -> Option<Self> {
        // (version bits, sample-rate index): MPEG-1 is 0b11, MPEG-2 is 0b10.
        let (version, rate_index, table, slot_factor) = match rate {
            44_100 => (0b11, 0, &MPEG1_KBPS, 144),
            48_000 => (0b11, 1, &MPEG1_KBPS, 144),
            32_000 => (0b11, 2, &MPEG1_KBPS, 144),
            22_050 => (0b10, 0, &MPEG2_KBPS, 72),
            24_000 => (0b10, 1, &MPEG2_KBPS, 72),
            16_000 => (0b10, 2, &MPEG2_KBPS, 72),
            _ => return None,
        };
        let bitrate_index = table.iter().position(|&k| k == kbps)? as u8 + 1;
        // Sync (11 bits), version, layer III (0b01), no CRC (protection bit set).
        let byte1 = 0xE0 | (version << 3) | (0b01 << 1) | 1;
        // Bitrate, sample rate, no padding, private bit clear.
        let byte2 = (bitrate_index << 4) | (rate_index << 2);
        // Single channel (mono), no mode extension, not copyrighted, original, no emphasis.
        let byte3 = 0b1100_0100;
        // Without padding a frame is floor(slots × bitrate / rate) bytes long.
        let frame_len = (slot_factor * kbps * 1000 / rate) as usize;
        Some(Self {
            header: [0xFF, byte1, byte2, byte3],
            frame_len,
        })
    }

    /// Appends one silent frame: zero side information means zero bits of main data.
    pub(super) fn put_silent_frame(&self, out: &mut BytesMut) {
        out.reserve(self.frame_len);
        out.put_slice(&self.header);
        out.put_bytes(0, self.frame_len.saturating_sub(self.header.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_lengths_of_common_streams() {
        let mp3_44k = FrameLayout::new(44_100, 128).unwrap();
        assert_eq!(mp3_44k.header, [0xFF, 0xFB, 0x90, 0xC4]);
        assert_eq!(mp3_44k.frame_len, 417);
        let mp3_24k = FrameLayout::new(24_000, 48).unwrap();
        assert_eq!(mp3_24k.header, [0xFF, 0xF3, 0x64, 0xC4]);
        assert_eq!(mp3_24k.frame_len, 144);
        let mp3_22k = FrameLayout::new(22_050, 32).unwrap();
        assert_eq!(mp3_22k.frame_len, 104);
        assert!(FrameLayout::new(44_100, 8).is_none());
        assert!(FrameLayout::new(8_000, 8).is_none());
    }
}
