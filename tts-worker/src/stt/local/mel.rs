//! Whisper's input: the log-mel spectrogram of 30 s of 16 kHz audio, computed as OpenAI's
//! `whisper.audio.log_mel_spectrogram` does (a 400-point periodic Hann window every 160 samples,
//! reflect-padded, power spectrum, librosa's Slaney mel filters, log10, clamped to 8 below the
//! maximum, scaled by `(x + 4) / 4`).
//!
//! Written here rather than with ct2rs' `whisper` feature: that feature also builds
//! sentencepiece and the tokenizers, and its features cannot be given the start tokens an
//! English-only model expects.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// The FFT size (25 ms).
pub const N_FFT: usize = 400;
/// Samples between frames (10 ms).
pub const HOP: usize = 160;
/// Samples in one window the model reads (30 s).
pub const WINDOW_SAMPLES: usize = 480_000;
/// Frames of one window.
pub const FRAMES: usize = WINDOW_SAMPLES / HOP;

const SAMPLE_RATE: f64 = 16_000.0;
const BINS: usize = N_FFT / 2 + 1;

/// One mel band: its weights over consecutive FFT bins.
#[derive(Debug, Clone)]
struct Band {
    first_bin: usize,
    weights: Vec<f32>,
}

/// Computes spectrograms; built once per model (the filters and the FFT plan).
#[derive(Clone)]
pub struct MelSpectrogram {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    bands: Vec<Band>,
}

impl std::fmt::Debug for MelSpectrogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelSpectrogram")
            .field("mels", &self.bands.len())
            .finish()
    }
}

impl MelSpectrogram {
    /// For a model of `n_mels` bands (80 for every Whisper but large-v3's 128).
    pub fn new(n_mels: usize) -> Self {
        let window = (0..N_FFT)
            .map(|n| (0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / N_FFT as f64).cos()) as f32)
            .collect();
        Self {
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
            window,
            bands: slaney_filters(n_mels),
        }
    }

    /// Its number of bands.
    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }

    /// The features of up to 30 s of 16 kHz samples (longer input is cut), padded with silence:
    /// `n_mels × FRAMES` values, band after band.
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        let samples = &samples[..samples.len().min(WINDOW_SAMPLES)];
        // The 30 s window reflect-padded by half an FFT on both sides (torch.stft, center=True);
        // the zeros that pad the clip to 30 s are part of what is reflected at the end.
        let at = |i: isize| -> f32 {
            let n = WINDOW_SAMPLES as isize;
            let j = if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            };
            samples.get(j as usize).copied().unwrap_or(0.0)
        };
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut out = vec![0f32; self.bands.len() * FRAMES];
        let mut max = f32::NEG_INFINITY;
        // Frames past the audio hold only zeros: their log is the floor, no FFT needed.
        let last_sounding = (samples.len() + N_FFT / 2) / HOP;
        for frame in 0..FRAMES {
            let energies: Vec<f32> = if frame > last_sounding {
                vec![0.0; self.bands.len()]
            } else {
                let start = (frame * HOP) as isize - (N_FFT / 2) as isize;
                for (k, x) in input.iter_mut().enumerate() {
                    *x = at(start + k as isize) * self.window[k];
                }
                // Sizes match by construction: the buffers come from the plan.
                if self
                    .fft
                    .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                    .is_err()
                {
                    spectrum.iter_mut().for_each(|c| *c = Default::default());
                }
                self.bands
                    .iter()
                    .map(|band| {
                        band.weights
                            .iter()
                            .zip(&spectrum[band.first_bin..])
                            .map(|(w, c)| w * c.norm_sqr())
                            .sum()
                    })
                    .collect()
            };
            for (m, e) in energies.into_iter().enumerate() {
                let v = e.max(1e-10).log10();
                max = max.max(v);
                out[m * FRAMES + frame] = v;
            }
        }
        let floor = max - 8.0;
        for v in &mut out {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        out
    }
}

/// librosa's `filters.mel(sr=16000, n_fft=400, n_mels, htk=False, norm="slaney")`, the filters
/// Whisper was trained with, kept as the non-zero run of each band.
fn slaney_filters(n_mels: usize) -> Vec<Band> {
    let fft_freqs: Vec<f64> = (0..BINS)
        .map(|i| i as f64 * SAMPLE_RATE / N_FFT as f64)
        .collect();
    let top = hz_to_mel(SAMPLE_RATE / 2.0);
    let mel_freqs: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(top * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            let (lo, mid, hi) = (mel_freqs[m], mel_freqs[m + 1], mel_freqs[m + 2]);
            let norm = 2.0 / (hi - lo);
            let weights: Vec<f64> = fft_freqs
                .iter()
                .map(|&f| {
                    let rising = (f - lo) / (mid - lo);
                    let falling = (hi - f) / (hi - mid);
                    rising.min(falling).max(0.0) * norm
                })
                .collect();
            let first_bin = weights.iter().position(|&w| w > 0.0).unwrap_or(0);
            let end = weights
                .iter()
                .rposition(|&w| w > 0.0)
                .map_or(first_bin, |i| i + 1);
            Band {
                first_bin,
                weights: weights[first_bin..end].iter().map(|&w| w as f32).collect(),
            }
        })
        .collect()
}

// The Slaney mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        mel * F_SP
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_features_have_whispers_shape() {
        let mel = MelSpectrogram::new(80);
        assert_eq!(FRAMES, 3000);
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (i as f32 * 1000.0 * std::f32::consts::TAU / 16_000.0).sin())
            .collect();
        let features = mel.compute(&tone);
        assert_eq!(features.len(), 80 * 3000);
        // Clamped to 8 below the maximum, then scaled: everything lies in [max - 2, max].
        let max = features.iter().copied().fold(f32::MIN, f32::max);
        assert!(features.iter().all(|&v| v >= max - 2.0 - 1e-6 && v <= max));
        // A 1 kHz tone is loudest in the band around 1 kHz, and the padding is the floor.
        let band_of = |frame: usize| {
            (0..80)
                .max_by(|&a, &b| {
                    features[a * FRAMES + frame].total_cmp(&features[b * FRAMES + frame])
                })
                .unwrap_or(0)
        };
        let loudest = band_of(50);
        assert!(
            (mel_to_hz_of_band(loudest) - 1000.0).abs() < 100.0,
            "{loudest}"
        );
        assert!((features[loudest * FRAMES + 2500] - (max - 2.0)).abs() < 1e-6);
        // Silence is all floor, not NaN.
        let silent = mel.compute(&[0.0; 1600]);
        assert!(silent.iter().all(|v| v.is_finite()));
    }

    fn mel_to_hz_of_band(m: usize) -> f64 {
        let top = hz_to_mel(8000.0);
        mel_to_hz(top * (m + 1) as f64 / 81.0)
    }

    #[test]
    fn the_filters_are_whispers() {
        // Rows of `mel_80` in openai-whisper's `whisper/assets/mel_filters.npz`: (band, first
        // non-zero bin, weights).
        let expected: [(usize, usize, &[f32]); 4] = [
            (0, 1, &[0.024_863]),
            (1, 1, &[0.001_991, 0.022_872]),
            (40, 42, &[0.005_411, 0.014_736, 0.006_518]),
            (79, 186, &[0.000_367, 0.000_833, 0.001_299]),
        ];
        let bands = slaney_filters(80);
        assert_eq!(bands.len(), 80);
        for (m, first_bin, weights) in expected {
            assert_eq!(bands[m].first_bin, first_bin, "band {m}");
            for (got, want) in bands[m].weights.iter().zip(weights) {
                assert!((got - want).abs() < 2e-6, "band {m}: {:?}", bands[m]);
            }
        }
        assert_eq!(bands[79].first_bin + bands[79].weights.len(), 200);
        assert!((hz_to_mel(mel_to_hz(33.3)) - 33.3).abs() < 1e-9);
    }
}
