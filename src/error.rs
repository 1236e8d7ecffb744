//! The error a command returns to `main`: a message, its causes, an optional hint, and the exit code.

use std::fmt;

use bosun_phases::engine::{PhaseError, RunError};

use crate::exit;

/// An error on its way to the user.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
            causes: Vec::new(),
            hint: None,
        }
    }

    pub fn unexpected(message: impl Into<String>) -> Self {
        CliError::new(exit::UNEXPECTED, message)
    }

    pub fn invalid_config(message: impl Into<String>) -> Self {
        CliError::new(exit::INVALID_CONFIG, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An error whose message was already printed (clap's usage errors).
    pub fn silent(mut self) -> Self {
        self.message.clear();
        self
    }

    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    /// Writes `error: …`, `caused by: …` and `hint: …` lines to stderr.
    pub fn report(&self) {
        eprintln!("error: {}", self.message);
        for cause in &self.causes {
            eprintln!("  caused by: {cause}");
        }
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl From<RunError> for CliError {
    fn from(error: RunError) -> Self {
        match error {
            RunError::Select(select) => CliError::new(exit::USAGE, select.to_string()),
            RunError::UnmetNeeds(needs) => {
                let mut cli = CliError::new(
                    exit::PREFLIGHT_FAILED,
                    "the selected phases cannot run: something they need is missing; nothing was changed",
                );
                for need in &needs {
                    cli = cli.with_cause(need.to_string());
                }
                let makers: Vec<String> = needs
                    .iter()
                    .filter_map(|need| need.made_by.clone())
                    .collect();
                if let Some(maker) = makers.first() {
                    cli = cli.with_hint(format!(
                        "run phase {maker} first, or do not skip it (see `--skip-phases` and `phase --help`)"
                    ));
                }
                cli
            }
            RunError::Phase {
                phase,
                source,
                host_changed,
                ..
            } => {
                let code = match (&source, host_changed) {
                    (PhaseError::Preflight { .. }, _) => exit::PREFLIGHT_FAILED,
                    (PhaseError::Undeclared { .. }, _) => exit::UNEXPECTED,
                    (_, true) => exit::FAILED_AFTER_CHANGE,
                    (_, false) => exit::UNEXPECTED,
                };
                let hint = source.hint().map(str::to_owned).or_else(|| {
                    host_changed.then(|| "fix the cause and run the same command again; it continues where it stopped".to_owned())
                });
                let mut cli = CliError::new(code, format!("phase {phase} failed: {source}"));
                cli.hint = hint;
                cli
            }
            RunError::Host(host) => CliError::unexpected(host.to_string()),
        }
    }
}
