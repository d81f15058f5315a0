//! Integration tests: a real HTTP client against a simulator bound to port 0.

mod anthropic;
mod control;
mod failures;
mod gemini;
mod stream;
mod support;
