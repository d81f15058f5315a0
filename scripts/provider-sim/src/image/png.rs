//! A PNG writer for the simulator's gradients, fast even in an unoptimised build.
//!
//! A gradient's rows differ from the row above by the same three bytes, so with PNG's `Up`
//! filter every row but the first is a filter byte and one RGB triple repeated. The writer
//! deflates that by hand with the fixed Huffman codes: the triple as literals, then copies of
//! 258 bytes from 3 back, about 13 bits per 258 bytes of pixels. It never looks at the pixels
//! of those rows, and the zlib checksum of a row is worked out in closed form, so a 4096×4096
//! image costs its first row and about 200 000 copy codes, not 48 MiB of byte work.

use super::Gradient;

const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
/// Base and extra bits of the deflate length symbols 257..=285.
const LENGTHS: [(u16, u8); 29] = [
    (3, 0),
    (4, 0),
    (5, 0),
    (6, 0),
    (7, 0),
    (8, 0),
    (9, 0),
    (10, 0),
    (11, 1),
    (13, 1),
    (15, 1),
    (17, 1),
    (19, 2),
    (23, 2),
    (27, 2),
    (31, 2),
    (35, 3),
    (43, 3),
    (51, 3),
    (59, 3),
    (67, 4),
    (83, 4),
    (99, 4),
    (115, 4),
    (131, 5),
    (163, 5),
    (195, 5),
    (227, 5),
    (258, 0),
];
/// The longest deflate copy.
const MAX_COPY: usize = 258;
/// Adler-32's modulus.
const ADLER: u128 = 65_521;
/// PNG filter types.
const FILTER_NONE: u8 = 0;
const FILTER_UP: u8 = 2;

/// The gradient as an 8-bit RGB PNG.
pub(super) fn encode(gradient: &Gradient) -> Vec<u8> {
    let zlib = zlib_stream(gradient);
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&gradient.width.to_be_bytes());
    header.extend_from_slice(&gradient.height.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = Vec::with_capacity(zlib.len() + 64);
    out.extend_from_slice(SIGNATURE);
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(crc32(u32::MAX, kind), data) ^ u32::MAX;
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Feeds `data` to a running CRC-32 (ISO-HDLC, as PNG uses) whose register is `crc`.
fn crc32(mut crc: u32, data: &[u8]) -> u32 {
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    crc
}

/// The filtered scanlines, deflated in one fixed-Huffman block inside a zlib stream.
fn zlib_stream(gradient: &Gradient) -> Vec<u8> {
    let mut bits = BitWriter::default();
    // Header: deflate with a 32 KiB window, no preset dictionary, check bits for 0x7801.
    bits.out.extend_from_slice(&[0x78, 0x01]);
    // BFINAL = 1, BTYPE = 01 (fixed Huffman codes).
    bits.write(1, 1);
    bits.write(1, 2);
    let mut adler = Adler::default();
    let base = gradient.base_row();
    if gradient.height > 0 {
        // The first row as it is.
        let mut row = Vec::with_capacity(base.len());
        gradient.row(&base, 0, &mut row);
        bits.literal(FILTER_NONE);
        adler.bytes(&[FILTER_NONE]);
        for &byte in &row {
            bits.literal(byte);
        }
        adler.bytes(&row);
    }
    let mut previous = gradient.vertical(0);
    for y in 1..gradient.height {
        let vertical = gradient.vertical(y);
        let delta: [u8; 3] = std::array::from_fn(|c| vertical[c].wrapping_sub(previous[c]));
        previous = vertical;
        repeated_row(&mut bits, delta, base.len());
        adler.repeated_row(FILTER_UP, delta, base.len() / 3);
    }
    // End of block.
    bits.symbol(256);
    let mut out = bits.finish();
    out.extend_from_slice(&adler.value().to_be_bytes());
    out
}

/// An `Up`-filtered row of `len` bytes that are `delta` over and over.
fn repeated_row(bits: &mut BitWriter, delta: [u8; 3], len: usize) {
    bits.literal(FILTER_UP);
    let literals = len.min(3);
    for &byte in delta.iter().take(literals) {
        bits.literal(byte);
    }
    let mut left = len - literals;
    while left >= 3 {
        let copy = left.min(MAX_COPY);
        // Keep the tail at 3 bytes or more, the shortest copy deflate has.
        let copy = if (1..3).contains(&(left - copy)) {
            copy - 3
        } else {
            copy
        };
        bits.copy_from_3_back(copy);
        left -= copy;
    }
    for i in 0..left {
        // The pattern continues where the copies stopped.
        let at = len - left + i;
        bits.literal(delta[at % 3]);
    }
}

/// Deflate's bit order: values from the least significant bit, Huffman codes from the most.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    buffer: u64,
    count: u32,
}

impl BitWriter {
    /// The `count` low bits of `value`, least significant first.
    fn write(&mut self, value: u32, count: u32) {
        self.buffer |= u64::from(value) << self.count;
        self.count += count;
        while self.count >= 8 {
            self.out.push((self.buffer & 0xff) as u8);
            self.buffer >>= 8;
            self.count -= 8;
        }
    }

    /// A Huffman code of `len` bits, most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        let reversed = code.reverse_bits() >> (32 - len);
        self.write(reversed, len);
    }

    /// A literal/length symbol in the fixed code.
    fn symbol(&mut self, symbol: u16) {
        let symbol = u32::from(symbol);
        match symbol {
            0..=143 => self.code(0x30 + symbol, 8),
            144..=255 => self.code(0x190 + symbol - 144, 9),
            256..=279 => self.code(symbol - 256, 7),
            _ => self.code(0xc0 + symbol - 280, 8),
        }
    }

    fn literal(&mut self, byte: u8) {
        self.symbol(u16::from(byte));
    }

    /// A copy of `len` (3..=258) bytes from 3 bytes back.
    fn copy_from_3_back(&mut self, len: usize) {
        let len = u16::try_from(len.clamp(3, MAX_COPY)).unwrap_or(3);
        let index = LENGTHS
            .iter()
            .rposition(|&(base, _)| base <= len)
            .unwrap_or(0);
        let (base, extra) = LENGTHS.get(index).copied().unwrap_or((3, 0));
        self.symbol(257 + index as u16);
        if extra > 0 {
            self.write(u32::from(len - base), u32::from(extra));
        }
        // Distance 3 is distance code 2, with no extra bits.
        self.code(2, 5);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.count > 0 {
            self.write(0, 8 - self.count);
        }
        self.out
    }
}

/// Adler-32 of the uncompressed stream.
struct Adler {
    a: u128,
    b: u128,
}

impl Default for Adler {
    fn default() -> Self {
        Self { a: 1, b: 0 }
    }
}

impl Adler {
    fn bytes(&mut self, data: &[u8]) {
        for &byte in data {
            self.a = (self.a + u128::from(byte)) % ADLER;
            self.b = (self.b + self.a) % ADLER;
        }
    }

    /// A filter byte, then `pixels` copies of `delta`, without walking them: over bytes
    /// `x_1..x_m`, `a` grows by their sum and `b` by `m·a + Σ (m − i + 1)·x_i`.
    fn repeated_row(&mut self, filter: u8, delta: [u8; 3], pixels: usize) {
        let w = pixels as u128;
        let m = 1 + 3 * w;
        let filter = u128::from(filter);
        let mut sum = filter;
        let mut weighted = m * filter;
        for (c, &d) in delta.iter().enumerate() {
            let d = u128::from(d);
            // Byte 2 + 3j + c (1-based) weighs m − 1 − c − 3j, for j in 0..w.
            let weights = w * (m - 1 - c as u128) - 3 * w * w.saturating_sub(1) / 2;
            sum += w * d;
            weighted += d * (weights % ADLER);
        }
        self.b = (self.b + m % ADLER * self.a + weighted) % ADLER;
        self.a = (self.a + sum) % ADLER;
    }

    fn value(&self) -> u32 {
        u32::try_from((self.b << 16) | self.a).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Picture;
    use super::*;

    /// Every pixel of `bytes`, decoded by the `png` crate.
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        // Both checksums checked: the chunks' CRC-32 and the zlib stream's Adler-32.
        let mut options = ::png::DecodeOptions::default();
        options.set_ignore_checksums(false);
        let decoder = ::png::Decoder::new_with_options(std::io::Cursor::new(bytes), options);
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.color_type, ::png::ColorType::Rgb);
        pixels.truncate(info.buffer_size());
        (info.width, info.height, pixels)
    }

    fn expected(gradient: &Gradient) -> Vec<u8> {
        let base = gradient.base_row();
        let mut all = Vec::new();
        let mut row = Vec::new();
        for y in 0..gradient.height {
            gradient.row(&base, y, &mut row);
            all.extend_from_slice(&row);
        }
        all
    }

    #[test]
    fn decodes_to_the_gradient_at_every_size() {
        for (w, h) in [
            (1, 1),
            (1, 5),
            (2, 3),
            (3, 3),
            (86, 2),
            (87, 4),
            (88, 7),
            (100, 100),
            (333, 129),
        ] {
            for picture in [
                Picture::Gradient(42),
                Picture::Gradient(7),
                Picture::Blurred,
            ] {
                let gradient = Gradient::new(w, h, picture);
                let (width, height, pixels) = decode(&encode(&gradient));
                assert_eq!((width, height), (w, h));
                assert!(pixels == expected(&gradient), "{w}x{h} {picture:?}");
            }
        }
    }

    #[test]
    fn the_checksum_matches_walking_the_bytes() {
        let mut walked = Adler::default();
        let mut row = vec![FILTER_UP];
        for _ in 0..1000 {
            row.extend_from_slice(&[250, 7, 1]);
        }
        walked.bytes(&[9, 9]);
        walked.bytes(&row);
        let mut closed = Adler::default();
        closed.bytes(&[9, 9]);
        closed.repeated_row(FILTER_UP, [250, 7, 1], 1000);
        assert_eq!(closed.value(), walked.value());
    }

    #[test]
    fn crc_of_iend_is_the_known_one() {
        assert_eq!(crc32(u32::MAX, b"IEND") ^ u32::MAX, 0xae42_6082);
    }
}
