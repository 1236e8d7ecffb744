//! `bosun config`: print kubeadm-style defaults, validate a configuration file, migrate v1beta3 to v1beta4.

use std::path::{Path, PathBuf};

use bosun_config::print::{Component, DefaultsKind};
use bosun_config::{ConfigError, HostFacts};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::error::CliError;
use crate::host::{facts, local};
use crate::output::{print_data, print_document, OutputFormat};
use crate::settings::Settings;

/// Work with kubeadm configuration files (kubeadm.k8s.io/v1beta3 and v1beta4).
///
/// Example: `bosun config print init-defaults > cluster.yaml`, edit it, then `bosun config validate --config cluster.yaml`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the default configuration of a command, as v1beta4 documents.
    ///
    /// Example: `bosun config print init-defaults --component-configs KubeletConfiguration`.
    Print(PrintArgs),
    /// Check a configuration file: parse, convert, default and validate it; print nothing else on success.
    ///
    /// Example: `bosun config validate --config cluster.yaml` (exit code 3 and one line per problem if invalid).
    Validate(ValidateArgs),
    /// Rewrite a v1beta3 (or v1beta4) configuration file as v1beta4.
    ///
    /// Example: `bosun config migrate --old-config old.yaml --new-config new.yaml`.
    Migrate(MigrateArgs),
}

/// Which defaults to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DefaultsWhich {
    /// InitConfiguration and ClusterConfiguration (for `bosun init`).
    InitDefaults,
    /// JoinConfiguration (for `bosun join`).
    JoinDefaults,
    /// ResetConfiguration (for `bosun reset`).
    ResetDefaults,
    /// UpgradeConfiguration (for `bosun upgrade`).
    UpgradeDefaults,
}

#[derive(Debug, Args)]
pub struct PrintArgs {
    /// init-defaults, join-defaults, reset-defaults or upgrade-defaults.
    #[arg(value_enum)]
    pub which: DefaultsWhich,
    /// Also print these component configurations (init-defaults only): KubeletConfiguration,KubeProxyConfiguration.
    #[arg(long, value_delimiter = ',', value_name = "KINDS")]
    pub component_configs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The configuration file (a kubeadm YAML stream).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The configuration file to convert.
    #[arg(long, value_name = "FILE")]
    pub old_config: PathBuf,
    /// Where to write the v1beta4 file (written atomically, mode 0600); stdout when not given.
    #[arg(long, value_name = "FILE")]
    pub new_config: Option<PathBuf>,
}

pub fn run(settings: &Settings, arguments: &ConfigArgs) -> Result<(), CliError> {
    match &arguments.command {
        ConfigCommand::Print(print) => run_print(print),
        ConfigCommand::Validate(validate) => run_validate(settings, validate),
        ConfigCommand::Migrate(migrate) => run_migrate(migrate),
    }
}

fn run_print(arguments: &PrintArgs) -> Result<(), CliError> {
    let kind = match arguments.which {
        DefaultsWhich::InitDefaults => DefaultsKind::Init,
        DefaultsWhich::JoinDefaults => DefaultsKind::Join,
        DefaultsWhich::ResetDefaults => DefaultsKind::Reset,
        DefaultsWhich::UpgradeDefaults => DefaultsKind::Upgrade,
    };
    let components = arguments
        .component_configs
        .iter()
        .map(|name| Component::parse(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| {
            CliError::new(
                crate::exit::USAGE,
                format!("--component-configs: {message}"),
            )
        })?;
    if !components.is_empty() && kind != DefaultsKind::Init {
        return Err(CliError::new(
            crate::exit::USAGE,
            "--component-configs applies to init-defaults only",
        ));
    }
    let text = bosun_config::print::defaults(kind, &components).map_err(|error| {
        CliError::unexpected(format!("the defaults could not be written: {error}"))
    })?;
    print_data(&text);
    Ok(())
}

/// The machine facts that defaults depend on.
fn host_facts() -> HostFacts {
    let machine = facts::gather();
    HostFacts {
        hostname: machine.hostname,
        default_address: machine.default_ipv4.or(machine.default_ipv6),
    }
}

/// Reads a configuration file the user named (on the real machine, not under --root).
fn read_config(path: &Path) -> Result<String, CliError> {
    let bytes = local::read_user_file(path).map_err(|error| {
        CliError::invalid_config(format!("the configuration file cannot be read: {error}"))
            .with_hint("pass an existing kubeadm configuration file")
    })?;
    String::from_utf8(bytes).map_err(|_| {
        CliError::invalid_config(format!(
            "the configuration file {} is not UTF-8 text",
            path.display()
        ))
    })
}

fn config_error(error: &ConfigError) -> CliError {
    let mut problems = error.problems.iter();
    let mut cli = match problems.next() {
        Some(first) => CliError::invalid_config(first.to_string()),
        None => CliError::invalid_config(error.to_string()),
    };
    for problem in problems {
        cli = cli.with_cause(problem.to_string());
    }
    if let Some(hint) = error.hint() {
        cli = cli.with_hint(hint);
    }
    cli
}

/// The result of `config validate -o json`.
#[derive(Debug, Serialize)]
struct Validation<'a> {
    file: String,
    valid: bool,
    documents: Vec<&'a bosun_config::DocumentSource>,
    problems: &'a [bosun_config::Problem],
    warnings: &'a [bosun_config::Problem],
}

fn run_validate(settings: &Settings, arguments: &ValidateArgs) -> Result<(), CliError> {
    let text = read_config(&arguments.config)?;
    let name = arguments.config.display().to_string();
    let result = bosun_config::load(&name, &text, &host_facts());
    if settings.output != OutputFormat::Text {
        let no_problems = Vec::new();
        let (documents, problems, warnings) = match &result {
            Ok(config) => (
                config.source.documents.iter().collect(),
                no_problems.as_slice(),
                config.source.warnings.as_slice(),
            ),
            Err(error) => (
                Vec::new(),
                error.problems.as_slice(),
                no_problems.as_slice(),
            ),
        };
        let report = Validation {
            file: name,
            valid: result.is_ok(),
            documents,
            problems,
            warnings,
        };
        print_document(settings.output, &report).map_err(CliError::unexpected)?;
        return match &result {
            Ok(_) => Ok(()),
            Err(error) => Err(CliError::invalid_config(error.to_string()).silent()),
        };
    }
    match result {
        Ok(config) => {
            for warning in &config.source.warnings {
                eprintln!("warning: {warning}");
                if let Some(hint) = &warning.hint {
                    eprintln!("hint: {hint}");
                }
            }
            let kinds: Vec<&str> = config
                .source
                .documents
                .iter()
                .map(|document| document.kind.as_str())
                .collect();
            let described = if kinds.is_empty() {
                "no documents; the defaults apply".to_owned()
            } else {
                kinds.join(", ")
            };
            eprintln!("{name} is valid ({described})");
            Ok(())
        }
        Err(error) => Err(config_error(&error)),
    }
}

fn run_migrate(arguments: &MigrateArgs) -> Result<(), CliError> {
    let text = read_config(&arguments.old_config)?;
    let name = arguments.old_config.display().to_string();
    let migrated = bosun_config::print::migrate(&name, &text, &host_facts())
        .map_err(|error| config_error(&error))?;
    match &arguments.new_config {
        None => print_data(&migrated),
        Some(path) => {
            local::write_user_file(path, migrated.as_bytes(), 0o600).map_err(|error| {
                CliError::unexpected(format!(
                    "the migrated configuration cannot be written: {error}"
                ))
            })?;
            eprintln!("wrote {} (v1beta4) from {name}", path.display());
        }
    }
    Ok(())
}
