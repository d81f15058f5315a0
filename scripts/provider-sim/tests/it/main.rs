//! Integration tests: a real HTTP client against a simulator bound to port 0.

mod control;
mod failures;
mod stream;
mod support;
