//! The command line: one file per command, each with its clap structs (whose doc comments are the help) and one
//! `run` that delegates to the library crates.

pub mod addon;
pub mod certs;
pub mod config;
pub mod etcd;
pub mod init;
pub mod join;
pub mod kubeconfig;
pub mod node;
pub mod reset;
pub mod status;
pub mod supervise;
pub mod token;
pub mod workflow;

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::CliError;
use crate::exit;
use crate::host::ServiceBackend;
use crate::output::OutputFormat;
use crate::settings::Settings;

/// bosun builds and runs Kubernetes clusters from kubeadm configuration files.
///
/// Every command is a list of idempotent phases: a failed run is fixed by running it again.
#[derive(Debug, Parser)]
#[command(
    name = "bosun",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Commands,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The node's root directory; every path bosun reads or writes is placed under it.
    #[arg(
        long,
        global = true,
        default_value = "/",
        env = "BOSUN_ROOT",
        value_name = "DIR"
    )]
    pub root: PathBuf,
    /// Output format: text, or json/yaml for scripts.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Print only changes and problems.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// How services (kubelet, container runtime) are run: systemd, or bosun's process supervisor.
    #[arg(long, global = true, value_enum, default_value_t = ServiceBackend::Auto, env = "BOSUN_SERVICE_BACKEND")]
    pub service_backend: ServiceBackend,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    Addon(addon::AddonArgs),
    Certs(certs::CertsArgs),
    Config(config::ConfigArgs),
    Etcd(etcd::EtcdArgs),
    Init(init::InitArgs),
    Join(join::JoinArgs),
    Kubeconfig(kubeconfig::KubeconfigArgs),
    Reset(reset::ResetArgs),
    Node(node::NodeArgs),
    Status(status::StatusArgs),
    Token(token::TokenArgs),
    #[command(name = "__supervise", hide = true)]
    Supervise(supervise::SuperviseArgs),
}

/// The full command tree, with the generated `phase` subcommands attached.
pub fn command() -> clap::Command {
    Cli::command()
        .mut_subcommand("init", |command| command.subcommand(init::phase_command()))
        .mut_subcommand("join", |command| command.subcommand(join::phase_command()))
        .mut_subcommand("reset", |command| {
            command.subcommand(reset::phase_command())
        })
}

/// Parses the command line and runs the command.
pub fn main_with_args(arguments: Vec<std::ffi::OsString>) -> Result<(), CliError> {
    let matches = match command().try_get_matches_from(arguments) {
        Ok(matches) => matches,
        Err(error) => {
            let code = if error.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            };
            let _ = error.print();
            return if code == exit::SUCCESS {
                Ok(())
            } else {
                Err(CliError::new(exit::USAGE, "").silent())
            };
        }
    };
    let cli = Cli::from_arg_matches(&matches)
        .map_err(|error| CliError::new(exit::USAGE, error.to_string()))?;
    let settings = Settings {
        root: cli.global.root.clone(),
        output: cli.global.output,
        quiet: cli.global.quiet,
        service_backend: cli.global.service_backend,
    };
    let subcommand_matches = matches
        .subcommand()
        .map(|(_, sub)| sub.clone())
        .unwrap_or_default();
    match &cli.command {
        Commands::Addon(arguments) => addon::run(&settings, arguments),
        Commands::Certs(arguments) => certs::run(&settings, arguments),
        Commands::Config(arguments) => config::run(&settings, arguments),
        Commands::Etcd(arguments) => etcd::run(&settings, arguments),
        Commands::Init(arguments) => init::run(&settings, arguments, &subcommand_matches),
        Commands::Join(arguments) => join::run(&settings, arguments, &subcommand_matches),
        Commands::Kubeconfig(arguments) => kubeconfig::run(&settings, arguments),
        Commands::Reset(arguments) => reset::run(&settings, arguments, &subcommand_matches),
        Commands::Node(arguments) => node::run(&settings, arguments),
        Commands::Status(arguments) => status::run(&settings, arguments),
        Commands::Token(arguments) => token::run(&settings, arguments),
        Commands::Supervise(arguments) => supervise::run(&settings, arguments),
    }
}
