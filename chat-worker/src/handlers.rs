//! The chat service's actions, one module per action family.

pub mod chat;
pub mod naming;
