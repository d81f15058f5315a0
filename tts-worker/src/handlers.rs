//! The speech services' actions, one module per action family.

mod input;
pub mod listen;
pub mod speech;
pub mod transcribe;
