//! Integration tests of the health-data-service against a real PostgreSQL (one database per test
//! run) and a real Redis (a stream prefix per test): imports, every endpoint's filters and
//! pagination, analyses against hand-computed values, isolation between users and tenants, and
//! the `health.*` actions over the bus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod actions;
mod analysis;
mod api;
mod blood;
mod garmin;
mod support;
mod ufc;
