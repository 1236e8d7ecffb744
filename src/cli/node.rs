//! `bosun node`: maintenance of this node. `bosun node cgroup-driver` shows or migrates the cgroup driver.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bosun_phases::engine::RunOptions;
use bosun_phases::node::cgroup::CgroupDriver;
use bosun_phases::node::migrate::{self, drain::DrainOptions, Options};
use bosun_phases::node::{FactRequest, NodeError};
use bosun_phases::paths;
use clap::{Args, Subcommand, ValueEnum};

use crate::cli::workflow;
use crate::error::CliError;
use crate::exit;
use crate::output::{print_data, print_document, OutputFormat};
use crate::settings::Settings;

/// Maintain this node (its cgroup driver)
#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: NodeCommand,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    CgroupDriver(CgroupDriverArgs),
}

/// What to do with the cgroup driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    /// Switch to the systemd driver (hosts where systemd is PID 1).
    Systemd,
    /// Switch to the cgroupfs driver (hosts without systemd as PID 1).
    Cgroupfs,
    /// Show the host's, the kubelet's and the runtime's drivers (like --status).
    Status,
}

fn duration(text: &str) -> Result<Duration, String> {
    bosun_config::Duration::parse(text).map(|duration| duration.as_std())
}

/// Show or switch the cgroup driver of this node's kubelet and container runtime
///
/// A switch follows Kubernetes' migration order: drain, stop the kubelet and the runtime, set
/// both drivers (and the kubelet-config ConfigMap), start both, wait for Ready, uncordon.
/// Progress is kept in /var/lib/bosun/cgroup-driver-migration.json: after a failure, run the same
/// command again and it continues with the failed step. A node already on the driver is left alone.
/// See docs/node-cgroup-driver.md.
///
/// Examples:
///   bosun node cgroup-driver --status
///   bosun node cgroup-driver cgroupfs --dry-run
///   bosun node cgroup-driver systemd --drain-timeout 10m
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CgroupDriverArgs {
    /// The driver to switch to, or `status`.
    #[arg(value_enum, value_name = "DRIVER")]
    pub driver: Option<DriverArg>,
    /// Show the drivers and any migration in progress; change nothing.
    #[arg(long, conflicts_with_all = ["dry_run", "skip_phases"])]
    pub status: bool,
    /// Change nothing; show every file diff, service action and cluster change the migration would make.
    #[arg(long)]
    pub dry_run: bool,
    /// Steps to leave out (comma-separated: drain, stop-kubelet, ..., uncordon).
    #[arg(long, value_delimiter = ',', value_name = "PHASES")]
    pub skip_phases: Vec<String>,
    /// Do not talk to the API server: no drain, no kubelet-config ConfigMap, no Ready wait, no uncordon.
    #[arg(long)]
    pub no_drain: bool,
    /// The cluster's admin kubeconfig [default: /etc/kubernetes/admin.conf on the node].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The Node object's name [default: the kubelet's --hostname-override, else the hostname].
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// The runtime's CRI socket [default: the kubelet's --container-runtime-endpoint, else detected].
    #[arg(long, value_name = "URL")]
    pub cri_socket: Option<String>,
    /// Evict pods no controller manages (as kubectl drain --force).
    #[arg(long)]
    pub force: bool,
    /// Evict pods with emptyDir volumes; their data is lost (as kubectl drain --delete-emptydir-data).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// How long the drain may take, retrying evictions a PodDisruptionBudget refuses.
    #[arg(long, default_value = "5m", value_parser = duration, value_name = "DURATION")]
    pub drain_timeout: Duration,
    /// How long to wait for the node to be Ready after the kubelet started.
    #[arg(long, default_value = "5m", value_parser = duration, value_name = "DURATION")]
    pub ready_timeout: Duration,
    /// How long to wait for the restarted runtime to answer on its socket.
    #[arg(long, default_value = "1m", value_parser = duration, value_name = "DURATION")]
    pub runtime_timeout: Duration,
}

pub fn run(settings: &Settings, arguments: &NodeArgs) -> Result<(), CliError> {
    match &arguments.command {
        NodeCommand::CgroupDriver(arguments) => cgroup_driver(settings, arguments),
    }
}

fn refused(error: NodeError) -> CliError {
    let mut cli = CliError::new(exit::PREFLIGHT_FAILED, error.to_string());
    cli.hint = error.hint();
    cli
}

fn cgroup_driver(settings: &Settings, arguments: &CgroupDriverArgs) -> Result<(), CliError> {
    let facts = crate::host::facts::node_facts(&FactRequest::default());
    let host = settings.read_only_host();
    let inspection = migrate::inspect(host.files.as_ref(), &facts, arguments.cri_socket.as_deref())
        .map_err(refused)?;
    let target = match arguments.driver {
        _ if arguments.status => None,
        None | Some(DriverArg::Status) => None,
        Some(DriverArg::Systemd) => Some(CgroupDriver::Systemd),
        Some(DriverArg::Cgroupfs) => Some(CgroupDriver::Cgroupfs),
    };
    let Some(target) = target else {
        if arguments.driver.is_none() && !arguments.status {
            return Err(CliError::new(
                exit::USAGE,
                "name the driver to switch to (systemd or cgroupfs), or pass --status",
            )
            .with_hint("`bosun node cgroup-driver --status` shows what the node uses"));
        }
        if settings.output != OutputFormat::Text {
            return print_document(settings.output, &inspection).map_err(CliError::unexpected);
        }
        print_data(&migrate::status_text(&inspection));
        return Ok(());
    };
    let node_name = match &arguments.node_name {
        Some(name) => name.clone(),
        None => migrate::node_name(host.files.as_ref(), &facts.hostname).map_err(refused)?,
    };
    let kubeconfig_flag = arguments.kubeconfig.clone();
    let no_drain = arguments.no_drain;
    let files = host.files.as_ref();
    let node = node_name.clone();
    let cluster = move || -> Result<_, NodeError> {
        if no_drain {
            return Ok(Err("--no-drain".to_owned()));
        }
        let kubeconfig = match &kubeconfig_flag {
            Some(path) => match crate::host::local::read_user_file(path) {
                Ok(bytes) => Some((bytes, path.display().to_string())),
                Err(error) => return Ok(Err(error.to_string())),
            },
            None => files
                .read(Path::new(paths::ADMIN_CONF))?
                .map(|bytes| (bytes, paths::ADMIN_CONF.to_owned())),
        };
        let connection =
            migrate::connect_cluster(&crate::host::kube::KubeConnector, kubeconfig, &node)?;
        if let Err(reason) = &connection {
            eprintln!(
                "warning: without the API server ({reason}) the steps {} are skipped: the node is not drained or \
                 uncordoned, and the kubelet-config ConfigMap keeps its cgroupDriver",
                migrate::CLUSTER_STEPS.join(", ")
            );
        }
        Ok(connection)
    };
    let options = Options {
        node_name,
        skip: arguments.skip_phases.clone(),
        drain: DrainOptions {
            force: arguments.force,
            delete_emptydir_data: arguments.delete_emptydir_data,
        },
        drain_timeout: arguments.drain_timeout,
        ready_timeout: arguments.ready_timeout,
        runtime_timeout: arguments.runtime_timeout,
    };
    let data = migrate::prepare(
        target,
        inspection,
        options,
        cluster,
        &facts.hostname,
        host.clock.now(),
    )
    .map_err(refused)?;
    if let Some(reason) = &data.noop {
        eprintln!("nothing to do: {reason}");
    }
    let run_options = RunOptions {
        target: None,
        skip: arguments.skip_phases.clone(),
    };
    workflow::execute(
        settings,
        &migrate::workflow(),
        &data,
        &run_options,
        arguments.dry_run,
    )?;
    Ok(())
}
