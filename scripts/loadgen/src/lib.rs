//! Load generator and fault injector for the AI backend: the measurements behind
//! `scripts/bench` and `scripts/fault-suite` (see `docs/benchmarks.md` and `docs/faults.md`).
//!
//! Every subcommand talks to running services (the provider simulator, the gateway, chat-workers,
//! Redis), prints a human summary on stderr and one JSON object on stdout (also appended to
//! `--out`), and stops by itself: every loop is bounded in count and time.

pub mod bench;
pub mod chat;
pub mod context;
pub mod fault;
pub mod pool;
pub mod procs;
pub mod report;
pub mod sim;
pub mod stats;
pub mod ws;

use serde_json::Value;

/// What a subcommand found.
#[derive(Debug)]
pub struct Report {
    /// The machine-readable result.
    pub result: Value,
    /// Lines for people.
    pub summary: Vec<String>,
    /// False when a check of a fault scenario failed (the process then exits 1).
    pub passed: bool,
}

impl Report {
    /// A passing report.
    pub fn new(result: Value, summary: Vec<String>) -> Self {
        Self {
            result,
            summary,
            passed: true,
        }
    }
}
