//! The benchmark measurements (`scripts/bench` runs them; `docs/benchmarks.md` explains them).

pub mod actions;
pub mod cancel;
pub mod idle;
pub mod ingest;
pub mod relay;
pub mod soak;
pub mod speech;
pub mod ttft;
