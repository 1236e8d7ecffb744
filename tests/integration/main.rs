//! bosun's integration tests: they run the real `bosun` binary against temporary roots and real components.
//!
//! Modules:
//! - `support`: the temporary root (prints its listing on failure) and the binary runner.
//! - `docs`: the pages in docs/ stay true to the code (exit codes, one page per command).
//! - `status`: the journal behind `bosun status`.
//! - `services`: the process service backend starting, restarting and stopping a real process.

#![expect(
    clippy::disallowed_methods,
    reason = "integration tests inspect the machine directly"
)]

mod docs;
mod services;
mod status;
mod support;
