//! `bosun join`: make this host a worker or a further control-plane node of an existing cluster, phase by phase.

use std::path::PathBuf;

use bosun_config::HostFacts;
use bosun_phases::engine::RunOptions;
use bosun_phases::join::{self, JoinData, JoinFlags};
use clap::{Arg, ArgMatches, Args};

use crate::cli::workflow;
use crate::error::CliError;
use crate::settings::Settings;

/// Join this host to a cluster as a worker, or with --control-plane as another control-plane node
///
/// Nothing is written before the cluster has proven its identity: cluster-info signed with the
/// bootstrap token, its CA pinned by --discovery-token-ca-cert-hash. Then the kubelet starts and its
/// TLS bootstrap writes /etc/kubernetes/kubelet.conf. A failed join is finished by running the same
/// command again. --config takes a JoinConfiguration; flags given as well win over it.
///
/// Examples:
///   bosun join 10.0.0.10:6443 --token abcdef.0123456789abcdef \
///       --discovery-token-ca-cert-hash sha256:<hash>
///   bosun join 10.0.0.10:6443 --token <token> --discovery-token-ca-cert-hash sha256:<hash> \
///       --control-plane --certificate-key <key>
///   bosun join --discovery-file cluster-info.conf --tls-bootstrap-token <token>
///   bosun join phase kubelet-start 10.0.0.10:6443 --token <token> --discovery-token-ca-cert-hash sha256:<hash>
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct JoinArgs {
    /// The control plane's API server, `host:port` (token discovery).
    #[arg(value_name = "API_SERVER_ENDPOINT")]
    pub api_server_endpoint: Option<String>,
    /// A kubeadm configuration file with a JoinConfiguration (kubeadm.k8s.io/v1beta3 or v1beta4).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The bootstrap token for both discovery and the TLS bootstrap, unless those are given apart.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The bootstrap token whose signature of cluster-info proves the cluster's identity.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub discovery_token: Option<String>,
    /// The cluster CA's public-key pin, `sha256:<hex>` (repeatable; any one may match).
    #[arg(long, global = true, value_name = "sha256:HASH")]
    pub discovery_token_ca_cert_hash: Vec<String>,
    /// Trust the cluster without a CA pin (anyone on the network path could impersonate it).
    #[arg(long, global = true)]
    pub discovery_token_unsafe_skip_ca_verification: bool,
    /// Discover the cluster from a kubeconfig file or an https URL instead of a token.
    #[arg(long, global = true, value_name = "FILE|URL")]
    pub discovery_file: Option<String>,
    /// The bootstrap token the kubelet authenticates with for its first certificate.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub tls_bootstrap_token: Option<String>,
    /// This node's name (default: the hostname).
    #[arg(long, global = true, value_name = "NAME")]
    pub node_name: Option<String>,
    /// The container runtime's CRI socket (default: unix:///run/containerd/containerd.sock).
    #[arg(long, global = true, value_name = "URL")]
    pub cri_socket: Option<String>,
    /// Join as a control-plane node: run an API server, controller manager, scheduler and etcd member here.
    #[arg(long, global = true)]
    pub control_plane: bool,
    /// The key that decrypts the certificates `bosun init --upload-certs` put in the kubeadm-certs Secret.
    #[arg(long, global = true, value_name = "KEY")]
    pub certificate_key: Option<String>,
    /// The address this control-plane node's API server advertises (default: the default route's address).
    #[arg(long, global = true, value_name = "IP")]
    pub apiserver_advertise_address: Option<String>,
    /// The port this control-plane node's API server binds (default: 6443).
    #[arg(long, global = true, value_name = "PORT")]
    pub apiserver_bind_port: Option<u16>,
    /// A directory of patches for this node's manifests and kubelet configuration, as kubeadm's (e.g.
    /// `kubeletconfiguration+strategic.yaml`).
    #[arg(long, global = true, value_name = "DIR")]
    pub patches: Option<String>,
    /// Preflight checks whose errors become warnings (comma-separated check names, or `all`).
    #[arg(long, global = true, value_delimiter = ',', value_name = "CHECKS")]
    pub ignore_preflight_errors: Vec<String>,
    /// Phases to leave out, with their sub-phases (comma-separated, e.g. `preflight,container-runtime`).
    #[arg(long, global = true, value_delimiter = ',', value_name = "PHASES")]
    pub skip_phases: Vec<String>,
    /// Change nothing; print a diff of every file that would be written (keys redacted). Discovery still runs.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// A directory of templates that replace the embedded ones (same file names as `templates/`).
    #[arg(long, global = true, value_name = "DIR")]
    pub templates_dir: Option<PathBuf>,
}

const ENDPOINT: &str = "phase_api_server_endpoint";

/// The generated `join phase …` subcommands; each takes the API server endpoint as kubeadm's do.
pub fn phase_command() -> clap::Command {
    fn with_endpoint(command: clap::Command) -> clap::Command {
        let names: Vec<String> = command
            .get_subcommands()
            .map(|sub| sub.get_name().to_owned())
            .collect();
        let mut command = command.arg(
            Arg::new(ENDPOINT)
                .value_name("API_SERVER_ENDPOINT")
                .help("The control plane's API server, host:port"),
        );
        for name in names {
            command = command.mut_subcommand(name, with_endpoint);
        }
        command
    }
    let phase = workflow::phase_command(&join::workflow());
    let names: Vec<String> = phase
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    names.into_iter().fold(phase, |phase, name| {
        phase.mut_subcommand(name, with_endpoint)
    })
}

/// The endpoint given after `join phase <name…>`, if any.
fn phase_endpoint(matches: &ArgMatches) -> Option<String> {
    let mut current = matches.subcommand()?.1;
    let mut found = None;
    while let Some((_, next)) = current.subcommand() {
        if let Ok(Some(value)) = next.try_get_one::<String>(ENDPOINT) {
            found = Some(value.clone());
        }
        current = next;
    }
    found
}

fn host_facts() -> HostFacts {
    let machine = crate::host::facts::gather();
    HostFacts {
        hostname: machine.hostname.clone(),
        default_address: machine.default_ipv4.or(machine.default_ipv6),
    }
}

pub fn run(
    settings: &Settings,
    arguments: &JoinArgs,
    matches: &ArgMatches,
) -> Result<(), CliError> {
    let file = arguments
        .config
        .as_deref()
        .map(|path| settings.load_config(Some(path)))
        .transpose()?;
    let flags = JoinFlags {
        api_server_endpoint: arguments
            .api_server_endpoint
            .clone()
            .or_else(|| phase_endpoint(matches)),
        token: arguments.token.clone(),
        discovery_token: arguments.discovery_token.clone(),
        discovery_token_ca_cert_hashes: arguments.discovery_token_ca_cert_hash.clone(),
        discovery_token_unsafe_skip_ca_verification: arguments
            .discovery_token_unsafe_skip_ca_verification,
        discovery_file: arguments.discovery_file.clone(),
        tls_bootstrap_token: arguments.tls_bootstrap_token.clone(),
        node_name: arguments.node_name.clone(),
        cri_socket: arguments.cri_socket.clone(),
        control_plane: arguments.control_plane,
        certificate_key: arguments.certificate_key.clone(),
        apiserver_advertise_address: arguments.apiserver_advertise_address.clone(),
        apiserver_bind_port: arguments.apiserver_bind_port,
        patches: arguments.patches.clone(),
    };
    let facts = host_facts();
    let config = join::resolve(file, &flags, &facts).map_err(|error| {
        let hint = error.hint();
        let cli = CliError::invalid_config(error.to_string());
        match hint {
            Some(hint) => cli.with_hint(hint),
            None => cli,
        }
    })?;
    let join_config = config.join.clone().unwrap_or_default();
    let mut skip = arguments.skip_phases.clone();
    if skip.is_empty() {
        skip = join_config.skip_phases.clone();
    }
    let discovery_file = match &join_config.discovery.file {
        Some(file) if !file.kube_config_path.starts_with("https://") => {
            let path = std::path::Path::new(&file.kube_config_path);
            Some(crate::host::local::read_user_file(path).map_err(|error| {
                CliError::invalid_config(error.to_string())
                    .with_hint("pass a kubeconfig file that exists with --discovery-file")
            })?)
        }
        _ => None,
    };
    let request = bosun_phases::node::fact_request(&config);
    let node = bosun_phases::node::LazyFacts::new(move || crate::host::facts::node_facts(&request));
    let mut data = JoinData::new(config, facts);
    data.discovery_file = discovery_file;
    data.ignore_preflight_errors = arguments
        .ignore_preflight_errors
        .iter()
        .chain(join_config.node_registration.ignore_preflight_errors.iter())
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    data.templates_dir = arguments.templates_dir.clone();
    data.node = node;
    data.connector = Some(std::sync::Arc::new(crate::host::kube::KubeConnector));
    data.etcd = Some(std::sync::Arc::new(crate::host::etcd::JoinEtcdConnector));
    let workflow = join::workflow();
    let options = RunOptions {
        target: workflow::chosen_phase(matches),
        skip,
    };
    workflow::execute(settings, &workflow, &data, &options, arguments.dry_run)?;
    Ok(())
}
