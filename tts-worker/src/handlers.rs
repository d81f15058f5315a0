//! The speech service's actions, one module per action family.

mod input;
pub mod speech;
