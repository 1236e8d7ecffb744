//! Settings resolved once, before a command runs: global flags and environment, turned into one value.

use std::path::{Path, PathBuf};

use bosun_config::{Config, HostFacts};

use bosun_phases::host::Host;

use crate::error::CliError;
use crate::exit;
use crate::host::{self, facts, lock, ServiceBackend};
use crate::output::{OutputFormat, Printer};

/// Everything a command needs to know about where and how to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The node's root directory (`/` on a real node).
    pub root: PathBuf,
    pub output: OutputFormat,
    pub quiet: bool,
    pub service_backend: ServiceBackend,
}

impl Settings {
    /// A host that will only be read.
    pub fn read_only_host(&self) -> Host {
        host::local(&self.root, false, self.service_backend)
    }

    /// The host a workflow changes (or, with `dry_run`, only plans to change).
    pub fn host(&self, dry_run: bool) -> Host {
        host::local(&self.root, dry_run, self.service_backend)
    }

    /// Takes the host lock; a dry run takes none because it changes nothing.
    pub fn lock(&self, dry_run: bool) -> Result<Option<lock::HostLock>, CliError> {
        if dry_run {
            return Ok(None);
        }
        if !self.root.is_dir() {
            return Err(CliError::new(
                exit::INVALID_CONFIG,
                format!(
                    "the root directory {} does not exist or is not a directory",
                    self.root.display()
                ),
            )
            .with_hint("create it, or pass an existing directory with --root"));
        }
        lock::acquire(&self.root)
            .map(Some)
            .map_err(|error| match error {
                lock::LockError::Held { .. } => CliError::new(exit::LOCKED, error.to_string())
                    .with_hint(
                    "wait for the other run to finish; a killed run releases the lock by itself",
                ),
                lock::LockError::Io { .. } => CliError::unexpected(error.to_string()),
            })
    }

    pub fn printer(&self) -> Printer {
        Printer::new(self.output, self.quiet)
    }
}

impl Settings {
    /// The configuration a command runs with: the file the user named (read from the real machine, not from
    /// under `--root`), or the embedded defaults; defaulted with this machine's facts and validated.
    pub fn load_config(&self, path: Option<&Path>) -> Result<Config, CliError> {
        let machine = facts::gather();
        let host_facts = HostFacts {
            hostname: machine.hostname.clone(),
            default_address: machine.default_ipv4.or(machine.default_ipv6),
        };
        let Some(path) = path else {
            return Ok(bosun_config::defaults(&host_facts));
        };
        let bytes = host::local::read_user_file(path).map_err(|error| {
            CliError::invalid_config(error.to_string())
                .with_hint("pass an existing kubeadm configuration file with --config")
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            CliError::invalid_config(format!(
                "the configuration file {} is not UTF-8 text",
                path.display()
            ))
        })?;
        bosun_config::load(&path.display().to_string(), &text, &host_facts).map_err(|error| {
            let mut cli = CliError::invalid_config(error.to_string());
            if let Some(hint) = error.hint() {
                cli = cli.with_hint(hint);
            }
            cli
        })
    }
}
