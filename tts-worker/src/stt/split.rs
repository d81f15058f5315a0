//! Silence, and where to cut speech longer than a model's window: both from the energy of
//! 20 ms frames of 16 kHz samples.
//!
//! Whisper reads 30 s at a time. Cutting long audio every 30 s cuts words (a probe lost a whole
//! sentence at a fixed cut), so each window ends at the quietest stretch of its last third.

use std::ops::Range;

/// Samples per energy frame (20 ms at 16 kHz).
pub const FRAME: usize = 320;
/// The loudest frame of audio that counts as silence, as an RMS level of samples in [-1, 1]
/// (about -50 dBFS: below a quiet room's noise in most recordings; speech is -30 to -10).
pub const SILENCE_RMS: f32 = 0.003;
/// The quiet stretch a cut looks for, in frames (300 ms: a pause between words or sentences).
const PAUSE_FRAMES: usize = 15;

/// The RMS level of each 20 ms frame (a shorter last frame included).
pub fn frame_levels(samples: &[f32]) -> Vec<f32> {
    samples
        .chunks(FRAME)
        .map(|f| (f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32).sqrt())
        .collect()
}

/// Whether the audio holds nothing to transcribe: no 20 ms frame above [`SILENCE_RMS`] (true
/// for empty audio).
pub fn is_silent(samples: &[f32]) -> bool {
    frame_levels(samples).iter().all(|&l| l < SILENCE_RMS)
}

/// The audio cut into windows of at most `max` samples, each ending (but the last) at the
/// quietest 300 ms of its last third, so no window cuts through a word when the speaker pauses
/// at all. Together the windows cover the audio exactly, in order.
pub fn windows(samples: &[f32], max: usize) -> Vec<Range<usize>> {
    let max = max.max(FRAME * PAUSE_FRAMES * 3);
    let levels = frame_levels(samples);
    let mut out = Vec::new();
    let mut start = 0;
    while samples.len() - start > max {
        // Frames whose whole pause fits between 2/3 of the window and its end.
        let first = (start + max * 2 / 3) / FRAME;
        let last = (start + max) / FRAME - PAUSE_FRAMES;
        let quietest = (first..=last)
            .min_by(|&a, &b| {
                let sum = |f: usize| levels[f..f + PAUSE_FRAMES].iter().sum::<f32>();
                sum(a).total_cmp(&sum(b))
            })
            .unwrap_or(last);
        let cut = (quietest + PAUSE_FRAMES / 2) * FRAME;
        out.push(start..cut);
        start = cut;
    }
    if start < samples.len() || out.is_empty() {
        out.push(start..samples.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(seconds: f32) -> Vec<f32> {
        (0..(seconds * 16_000.0) as usize)
            .map(|i| (i as f32 * 0.05).sin() * 0.3)
            .collect()
    }

    #[test]
    fn silence_is_told_from_sound() {
        assert!(is_silent(&[]));
        assert!(is_silent(&[0.0; 16_000]));
        // Faint noise (-60 dBFS) is silence; one loud 20 ms frame is not.
        let faint: Vec<f32> = (0..16_000)
            .map(|i| if i % 2 == 0 { 0.001 } else { -0.001 })
            .collect();
        assert!(is_silent(&faint));
        let mut blip = faint.clone();
        blip[8_000..8_320].iter_mut().for_each(|s| *s = 0.2);
        assert!(!is_silent(&blip));
        assert!(!is_silent(&tone(0.1)));
    }

    #[test]
    fn short_audio_is_one_window() {
        assert_eq!(
            windows(&tone(10.0), 480_000),
            vec![Range {
                start: 0,
                end: 160_000
            }]
        );
        assert_eq!(windows(&[], 480_000), vec![Range { start: 0, end: 0 }]);
    }

    #[test]
    fn long_audio_is_cut_in_its_pauses() {
        // Speech-like bursts of 7 s with 1 s pauses: 0-7 sound, 7-8 pause, 8-15, 15-16, ...
        let mut samples = Vec::new();
        for _ in 0..9 {
            samples.extend(tone(7.0));
            samples.extend(vec![0.0; 16_000]);
        }
        let w = windows(&samples, 480_000);
        assert!(w.len() >= 3, "{w:?}");
        assert_eq!(w[0].start, 0);
        assert_eq!(w.last().map(|r| r.end), Some(samples.len()));
        for pair in w.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        for r in &w {
            assert!(r.len() <= 480_000, "{r:?}");
            // Every cut is in a pause: the samples around it are silent.
            if r.end < samples.len() {
                assert!(
                    is_silent(&samples[r.end - 1_600..r.end + 1_600]),
                    "{r:?} cuts through sound"
                );
            }
        }
    }
}
