//! `bosun __supervise NAME` (hidden): the process supervisor behind the process service backend.

use clap::Args;

use crate::error::CliError;
use crate::settings::Settings;

/// Run a service installed with the process backend, restarting it when it exits.
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The service name.
    pub name: String,
}

pub fn run(settings: &Settings, arguments: &SuperviseArgs) -> Result<(), CliError> {
    crate::host::services::supervise(&settings.root, &arguments.name)
        .map_err(|error| CliError::unexpected(error.to_string()))
}
