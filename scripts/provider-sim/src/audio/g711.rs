//! G.711 μ-law and A-law encoding of 16-bit samples (ITU-T G.711, as in the reference `g711.c`).

/// Offset added before the μ-law segment search.
const MULAW_BIAS: i32 = 0x84;
/// Largest magnitude μ-law encodes without overflow once the bias is added.
const MULAW_CLIP: i32 = 32_635;
/// Upper ends of the A-law segments, for 13-bit magnitudes.
const ALAW_SEGMENT_ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// One μ-law byte for `sample`.
pub(super) fn mulaw(sample: i16) -> u8 {
    let mut magnitude = i32::from(sample);
    let sign = if magnitude < 0 {
        magnitude = -magnitude;
        0x80
    } else {
        0
    };
    magnitude = magnitude.min(MULAW_CLIP) + MULAW_BIAS;
    // The segment is the position of the highest set bit among bits 7 to 14.
    let mut exponent = 7;
    while exponent > 0 && magnitude & (0x80 << exponent) == 0 {
        exponent -= 1;
    }
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    // The masks keep every part inside one byte.
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// One A-law byte for `sample`.
pub(super) fn alaw(sample: i16) -> u8 {
    let mut value = i32::from(sample) >> 3;
    let mask = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    let segment = ALAW_SEGMENT_ENDS
        .iter()
        .position(|&end| value <= end)
        .unwrap_or(ALAW_SEGMENT_ENDS.len());
    if segment >= ALAW_SEGMENT_ENDS.len() {
        return 0x7F ^ mask;
    }
    let segment = segment as i32;
    let quantized = if segment < 2 {
        (value >> 1) & 0x0F
    } else {
        (value >> segment) & 0x0F
    };
    ((segment << 4) | quantized) as u8 ^ mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mulaw_decode(byte: u8) -> i32 {
        let u = !byte;
        let mut t = ((i32::from(u) & 0x0F) << 3) + MULAW_BIAS;
        t <<= (i32::from(u) & 0x70) >> 4;
        if u & 0x80 != 0 {
            MULAW_BIAS - t
        } else {
            t - MULAW_BIAS
        }
    }

    fn alaw_decode(byte: u8) -> i32 {
        let a = byte ^ 0x55;
        let mut t = (i32::from(a) & 0x0F) << 4;
        let segment = (i32::from(a) & 0x70) >> 4;
        match segment {
            0 => t += 8,
            1 => t += 0x108,
            _ => {
                t += 0x108;
                t <<= segment - 1;
            }
        }
        if a & 0x80 != 0 { t } else { -t }
    }

    #[test]
    fn known_codes() {
        assert_eq!(mulaw(0), 0xFF);
        assert_eq!(mulaw(i16::MAX), 0x80);
        assert_eq!(mulaw(i16::MIN), 0x00);
        assert_eq!(alaw(0), 0xD5);
        assert_eq!(alaw(i16::MAX), 0xAA);
        assert_eq!(alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn round_trip_stays_within_a_quantization_step() {
        for sample in (-32_000_i32..32_000).step_by(97) {
            let s = sample as i16;
            // Steps grow with the magnitude: at most 1/16 of it plus the smallest step.
            let tolerance = sample.abs() / 16 + 16;
            let mu = mulaw_decode(mulaw(s));
            assert!((mu - sample).abs() <= tolerance, "μ-law {sample} -> {mu}");
            let a = alaw_decode(alaw(s));
            assert!((a - sample).abs() <= tolerance, "A-law {sample} -> {a}");
        }
    }
}
