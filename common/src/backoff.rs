//! Exponential backoff with jitter for reconnect loops and retries.
//!
//! Written here rather than taken from `backon`: the loops need a backoff value they can hold
//! across iterations, `reset` after a good read and sleep on under `select!` with shutdown, which is
//! a dozen lines; `backon` wraps whole futures instead.

use std::time::Duration;

use rand::Rng;

/// Doubling delays from `base` up to `max`, each with "equal jitter" (half fixed, half random).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base` and capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The delay for a given attempt number (1-based), with jitter.
    pub fn delay_for(base: Duration, max: Duration, attempt: u32) -> Duration {
        let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(max);
        let half = capped / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// The next delay; each call doubles the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        Self::delay_for(self.base, self.max, self.attempt)
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps_with_jitter() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        let mut b = Backoff::new(base, max);
        let d1 = b.next_delay();
        assert!(d1 >= Duration::from_millis(50) && d1 <= base);
        for _ in 0..10 {
            assert!(b.next_delay() <= max);
        }
        let d = b.next_delay();
        assert!(d >= max / 2, "{d:?}");
        b.reset();
        assert!(b.next_delay() <= base);
    }
}
