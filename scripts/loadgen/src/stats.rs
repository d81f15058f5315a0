//! Latency percentiles with HdrHistogram, reported in milliseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Highest value tracked, in microseconds (one hour); larger samples are clamped to it.
const MAX_US: u64 = 3_600_000_000;

/// A latency distribution, recorded in microseconds.
#[derive(Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latency")
            .field("count", &self.hist.len())
            .finish()
    }
}

impl Latency {
    /// An empty distribution (3 significant digits, 1 µs to 1 h).
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            hist: Histogram::new_with_bounds(1, MAX_US, 3)?,
        })
    }

    /// A distribution of the given samples.
    pub fn of(samples: impl IntoIterator<Item = Duration>) -> anyhow::Result<Self> {
        let mut l = Self::new()?;
        for s in samples {
            l.record(s);
        }
        Ok(l)
    }

    /// A distribution of samples given in (possibly negative, then clamped to 0) milliseconds.
    pub fn of_ms(samples: impl IntoIterator<Item = f64>) -> anyhow::Result<Self> {
        Self::of(
            samples
                .into_iter()
                .map(|ms| Duration::from_secs_f64((ms.max(0.0)) / 1000.0)),
        )
    }

    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(MAX_US).max(1);
        self.hist.saturating_record(us);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0..=1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// `{"count","mean_ms","min_ms","p50_ms","p90_ms","p95_ms","p99_ms","max_ms"}`; `null` when empty.
    pub fn summary(&self) -> Value {
        if self.hist.is_empty() {
            return Value::Null;
        }
        json!({
            "count": self.hist.len(),
            "mean_ms": round3(self.hist.mean() / 1000.0),
            "min_ms": round3(self.hist.min() as f64 / 1000.0),
            "p50_ms": round3(self.quantile_ms(0.50)),
            "p90_ms": round3(self.quantile_ms(0.90)),
            "p95_ms": round3(self.quantile_ms(0.95)),
            "p99_ms": round3(self.quantile_ms(0.99)),
            "max_ms": round3(self.hist.max() as f64 / 1000.0),
        })
    }

    /// A one-line human form: `p50 1.23 ms  p95 … p99 … (n=…)`.
    pub fn line(&self) -> String {
        if self.hist.is_empty() {
            return "no samples".into();
        }
        format!(
            "p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
            self.quantile_ms(0.5),
            self.quantile_ms(0.95),
            self.quantile_ms(0.99),
            self.hist.max() as f64 / 1000.0,
            self.hist.len()
        )
    }
}

/// Rounds to three decimals (µs resolution for milliseconds), keeping JSON short.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Mean of a list of numbers, `None` when empty.
pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_ms() {
        let l = Latency::of((1..=100).map(Duration::from_millis)).unwrap();
        assert_eq!(l.count(), 100);
        assert!((l.quantile_ms(0.5) - 50.0).abs() < 0.1);
        assert!((l.quantile_ms(0.99) - 99.0).abs() < 0.1);
        assert_eq!(Latency::new().unwrap().summary(), Value::Null);
    }
}
