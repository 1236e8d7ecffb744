//! `bosun reset`: undo `bosun init` or `bosun join` on this node, phase by phase.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use bosun_phases::engine::RunOptions;
use bosun_phases::etcd::{EtcdClient, EtcdError};
use bosun_phases::reset::{
    self, Confirmation, EtcdConnection, EtcdConnector, ResetData, DEFAULT_CERTIFICATES_DIR,
    DEFAULT_ETCD_DATA_DIR,
};
use clap::{ArgMatches, Args};

use crate::cli::workflow;
use crate::error::CliError;
use crate::exit;
use crate::host::etcd::{LocalEtcd, TlsMaterial};
use crate::settings::Settings;

/// Undo `bosun init` or `bosun join` on this node: remove its etcd member, stop the kubelet
/// and the Kubernetes containers, and remove the manifests, kubelet state, certificates,
/// kubeconfigs, etcd data and CNI configuration.
///
/// Asks for confirmation unless --force is given, and refuses when stdin is not a terminal.
/// A failed reset is finished by running it again. iptables/nftables/IPVS rules, the CNI's own
/// state and $HOME/.kube/config stay; the end of the run says how to clean them (docs/reset.md).
///
/// Examples:
///   bosun reset --dry-run
///   bosun reset --force
///   bosun reset --force --skip-phases remove-etcd-member
///   bosun reset phase cleanup-node containers --force
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ResetArgs {
    /// A file with a ResetConfiguration (kubeadm.k8s.io/v1beta4; a ClusterConfiguration in it gives certificatesDir
    /// and the etcd data directory).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Change nothing; list what would be stopped and removed.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Reset without asking for confirmation.
    #[arg(short = 'f', long, global = true)]
    pub force: bool,
    /// Phases to leave out, with their sub-phases (comma-separated, e.g. `remove-etcd-member,cleanup-node/containers`).
    #[arg(long, global = true, value_delimiter = ',', value_name = "PHASES")]
    pub skip_phases: Vec<String>,
    /// Preflight checks whose errors become warnings (comma-separated check names, or `all`).
    #[arg(long, global = true, value_delimiter = ',', value_name = "CHECKS")]
    pub ignore_preflight_errors: Vec<String>,
    /// The certificates directory to clean (default: the API server manifest's, else /etc/kubernetes/pki).
    #[arg(long, global = true, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// The CRI socket whose Kubernetes containers are removed (default: the kubelet's, else the detected one).
    #[arg(long, global = true, value_name = "URL")]
    pub cri_socket: Option<String>,
    /// Also remove the contents of /etc/kubernetes/tmp (upgrade and restore backups).
    #[arg(long, global = true)]
    pub cleanup_tmp_dir: bool,
    /// Also delete this node's Node object through the API server (kubeadm leaves it).
    #[arg(long, global = true)]
    pub delete_node: bool,
    /// The Node object's name for --delete-node (default: kubelet.conf's system:node user, else the etcd member's).
    #[arg(long, global = true, value_name = "NAME")]
    pub node_name: Option<String>,
}

/// The generated `reset phase …` subcommands.
pub fn phase_command() -> clap::Command {
    workflow::phase_command(&reset::workflow())
}

/// etcd clients for `remove-etcd-member`, made with etcd-client.
struct EtcdClients;

impl EtcdConnector for EtcdClients {
    fn connect(&self, connection: &EtcdConnection) -> Result<Box<dyn EtcdClient>, EtcdError> {
        let tls = match (&connection.ca, &connection.cert, &connection.key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsMaterial {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        Ok(Box::new(LocalEtcd::new(
            connection.endpoints.clone(),
            tls,
            connection.timeout,
        )?))
    }
}

/// Asks on the terminal; `true` for yes.
fn ask(question: &str) -> bool {
    eprint!("{question} [y/N]: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// A `unix://` socket URL (or bare path) of the node, as a path on this machine.
fn under_root(root: &std::path::Path, socket: &str) -> String {
    if root == std::path::Path::new("/") {
        return socket.to_owned();
    }
    let path = socket.strip_prefix("unix://").unwrap_or(socket);
    let real = crate::host::local::LocalFiles::new(root).real_path(std::path::Path::new(path));
    format!("unix://{}", real.display())
}

fn non_empty(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|text| !text.is_empty())
}

pub fn run(
    settings: &Settings,
    arguments: &ResetArgs,
    matches: &ArgMatches,
) -> Result<(), CliError> {
    let config = match &arguments.config {
        Some(path) => Some(settings.load_config(Some(path))?),
        None => None,
    };
    let reset_config = config
        .as_ref()
        .and_then(|config| config.reset.clone())
        .unwrap_or_default();
    let dry_run = arguments.dry_run || reset_config.dry_run;
    let force = arguments.force || reset_config.force;
    let mut skip = arguments.skip_phases.clone();
    if skip.is_empty() {
        skip = reset_config.skip_phases.clone();
    }

    let host = settings.read_only_host();
    let files = host.files.as_ref();
    let configured_data_dir = config
        .as_ref()
        .and_then(|config| config.cluster.etcd.local.as_ref())
        .map(|local| PathBuf::from(&local.data_dir))
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ETCD_DATA_DIR));
    let survey = reset::survey(files, &configured_data_dir)
        .map_err(|error| CliError::unexpected(format!("cannot look at the node: {error}")))?;
    let mut data = ResetData::new(survey);

    let configured_cert_dir = config
        .as_ref()
        .map(|config| config.cluster.certificates_dir.clone())
        .filter(|dir| !dir.is_empty() && dir != DEFAULT_CERTIFICATES_DIR);
    if let Some(dir) = arguments
        .cert_dir
        .clone()
        .or_else(|| non_empty(&reset_config.certificates_dir).map(PathBuf::from))
        .or_else(|| configured_cert_dir.map(PathBuf::from))
    {
        if !dir.is_absolute() {
            return Err(CliError::invalid_config(format!(
                "the certificates directory {} is not an absolute path",
                dir.display()
            )));
        }
        data.certificates_dir = dir;
    }
    if let Some(socket) = non_empty(&reset_config.cri_socket) {
        data.cri_socket = socket.to_owned();
    } else if data.survey.cri_socket_from_kubelet.is_none() {
        data.cri_socket = bosun_phases::node::runtime::detect_socket(files).map_err(|error| {
            CliError::invalid_config(error.to_string()).with_hint("pass --cri-socket")
        })?;
    }
    // The runtime's socket is a node path, and `ctr` runs on this machine: under a scratch --root it is the root's
    // socket, never the machine's own runtime. --cri-socket is used as given.
    data.cri_socket = match &arguments.cri_socket {
        Some(socket) => socket.clone(),
        None => under_root(&settings.root, &data.cri_socket),
    };
    data.cleanup_tmp_dir = arguments.cleanup_tmp_dir || reset_config.cleanup_tmp_dir;
    data.unmount_flags = reset::unmount_flags(&reset_config.unmount_flags).map_err(|message| {
        CliError::invalid_config(format!("ResetConfiguration unmountFlags: {message}"))
    })?;
    data.ignore_preflight_errors = arguments
        .ignore_preflight_errors
        .iter()
        .chain(reset_config.ignore_preflight_errors.iter())
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    data.running_as_root = nix::unistd::geteuid().is_root();
    data.etcd = Some(std::sync::Arc::new(EtcdClients));
    data.delete_node = arguments.delete_node;
    if let Some(name) = &arguments.node_name {
        data.node_name = Some(name.clone());
    }
    data.cluster = Some(std::sync::Arc::new(crate::host::kube::KubeConnector));
    data.etcd_timeout = reset_config
        .timeouts
        .as_ref()
        .and_then(|timeouts| timeouts.etcd_api_call)
        .map(|timeout| timeout.0)
        .unwrap_or(Duration::from_secs(30));

    let workflow = reset::workflow();
    let options = RunOptions {
        target: workflow::chosen_phase(matches),
        skip,
    };
    let selected: Vec<String> = workflow
        .select(options.target.as_deref(), &options.skip)
        .map_err(|error| CliError::new(exit::USAGE, error.to_string()))?
        .into_iter()
        .map(|selected| selected.full_name)
        .collect();
    data.confirmation = if dry_run {
        Confirmation::DryRun
    } else if force {
        Confirmation::Forced
    } else if !selected.iter().any(|name| name == "preflight") {
        // `reset phase cleanup-node` and friends do not ask, as kubeadm's do not.
        Confirmation::Forced
    } else if std::io::stdin().is_terminal() {
        let question = format!(
            "bosun reset: this node is {}; its etcd member, kubelet, Kubernetes containers, manifests, certificates, \
             kubeconfigs and etcd data on {} will go. Continue?",
            data.survey.kind.describe(),
            host.description
        );
        if !ask(&question) {
            return Err(CliError::new(
                exit::PREFLIGHT_FAILED,
                "reset cancelled at the confirmation prompt; nothing was changed",
            ));
        }
        Confirmation::Confirmed
    } else {
        Confirmation::NotInteractive
    };
    drop(host);

    workflow::execute(settings, &workflow, &data, &options, dry_run)?;
    if selected.iter().any(|name| name.starts_with("cleanup-node")) && !settings.quiet {
        eprintln!("{}", reset::LEFT_BEHIND);
    }
    Ok(())
}
