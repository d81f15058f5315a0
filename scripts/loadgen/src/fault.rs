//! The fault scenarios (`scripts/fault-suite` runs them; `docs/faults.md` explains them).

pub mod abuse;
pub mod kill;
pub mod redis;
