//! bosun: the command-line edge.
//!
//! Map of the crate:
//! - [`cli`]: one file per command (clap structs whose doc comments are the help, and one `run` each), and the
//!   binder that turns workflows into `phase` subcommands.
//! - [`settings`]: flags and environment resolved into one value before a command runs.
//! - [`output`]: the printer (indicatif on a terminal, plain lines elsewhere, `-o json`).
//! - [`error`] and [`exit`]: how failures reach the user, and the documented exit codes.
//! - [`host`]: the only code that touches the real machine (files under `--root`, programs, services, the lock).

pub mod cli;
pub mod error;
pub mod exit;
pub mod host;
pub mod output;
pub mod settings;

/// Runs bosun with the process arguments and returns the exit code.
pub fn run() -> i32 {
    match cli::main_with_args(std::env::args_os().collect()) {
        Ok(()) => exit::SUCCESS,
        Err(error) => {
            if !error.message.is_empty() {
                error.report();
            }
            error.code
        }
    }
}
