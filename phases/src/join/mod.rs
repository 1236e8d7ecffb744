//! The `join` workflow: the phases that make a host a worker or a further control-plane node of an existing
//! cluster, in kubeadm's order (cmd/join.go, cmd/phases/join/*).
//!
//! | phase | what it reads or makes |
//! |---|---|
//! | `preflight` | nothing: kubeadm's node checks, and refuses a node that already joined (`/etc/kubernetes/kubelet.conf`) |
//! | `container-runtime` | the runtime's configuration, as in `init` (bosun's addition) |
//! | `discovery` | nothing on the node: cluster-info read, its JWS signature checked with the token, the CA pinned; the cluster's `kubeadm-config` and `kubelet-config` read; a Node of the same name refused |
//! | `control-plane-prepare/download-certs` | the CAs, front-proxy CA, service-account keys and etcd CA from the `kubeadm-certs` Secret, decrypted with the certificate key |
//! | `control-plane-prepare/certs`, `…/kubeconfig`, `…/control-plane` | this node's certificates, admin/controller-manager/scheduler kubeconfigs and static-pod manifests (the `init` phases, run with the cluster's configuration) |
//! | `kubelet-start` | `ca.crt`, `bootstrap-kubelet.conf`, the kubelet's config and flags from the cluster; starts the kubelet and waits for its TLS bootstrap to write `kubelet.conf` and register the Node |
//! | `etcd-join` | this node's etcd member, added as a learner, its manifest (`initial-cluster-state=existing`), promoted once in sync |
//! | `control-plane-join/mark-control-plane` | the Node's control-plane labels and taints |
//!
//! Control-plane phases are skipped on workers. Nothing is written before `discovery` has proven the cluster's
//! identity, so a failed discovery leaves the node as it was. Every writing phase is idempotent: a join that failed
//! part-way is finished by running the same command again.
//!
//! [`JoinData`] is built once, before the run, from `--config` and the flags ([`resolve`]); what discovery learns is
//! kept in it behind a `OnceLock`, so any phase run alone (`join phase kubelet-start`) discovers first.

pub mod discovery;
pub mod etcd;
mod nested;
mod phases;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bosun_config::{Config, ConfigError, HostFacts, JoinConfiguration, JoinControlPlane};

use crate::engine::PhaseError;
use crate::host::cluster::ClusterConnector;
use crate::init::InitData;
use crate::node::LazyFacts;
use crate::paths::NodePaths;

pub use discovery::Discovered;
pub use phases::workflow;

/// The join settings the command line gives, recorded as typed, before anything is validated.
#[derive(Debug, Clone, Default)]
pub struct JoinFlags {
    /// The positional `API_SERVER_ENDPOINT` (`host:port`).
    pub api_server_endpoint: Option<String>,
    /// `--token`: both the discovery and the TLS bootstrap token unless those are given.
    pub token: Option<String>,
    pub discovery_token: Option<String>,
    pub discovery_token_ca_cert_hashes: Vec<String>,
    pub discovery_token_unsafe_skip_ca_verification: bool,
    pub discovery_file: Option<String>,
    pub tls_bootstrap_token: Option<String>,
    pub node_name: Option<String>,
    pub cri_socket: Option<String>,
    pub control_plane: bool,
    pub certificate_key: Option<String>,
    pub apiserver_advertise_address: Option<String>,
    pub apiserver_bind_port: Option<u16>,
    /// `--patches`: a directory of kubeadm-style patches (`kubeletconfiguration+strategic.yaml`, `etcd.yaml`, ...).
    pub patches: Option<String>,
}

/// A flag or configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JoinInputError {
    #[error("{flag}: {reason}")]
    Flag {
        flag: &'static str,
        reason: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl JoinInputError {
    pub fn hint(&self) -> Option<String> {
        match self {
            JoinInputError::Flag { hint, .. } => hint.clone(),
            JoinInputError::Config(error) => error.hint().map(str::to_owned),
        }
    }
}

fn flag_error(flag: &'static str, reason: impl Into<String>, hint: &str) -> JoinInputError {
    JoinInputError::Flag {
        flag,
        reason: reason.into(),
        hint: Some(hint.to_owned()),
    }
}

const TOKEN_HINT: &str =
    "copy the token from the join command `bosun init` printed, or make one with `bosun token create` on a control-plane node";

/// The configuration a join runs with: `--config`'s (a stream with a JoinConfiguration), or the defaults, with the
/// flags applied over it (a flag wins over the file), defaulted and validated.
pub fn resolve(
    file: Option<Config>,
    flags: &JoinFlags,
    facts: &HostFacts,
) -> Result<Config, JoinInputError> {
    for (flag, value) in [
        ("--token", &flags.token),
        ("--discovery-token", &flags.discovery_token),
        ("--tls-bootstrap-token", &flags.tls_bootstrap_token),
    ] {
        if let Some(text) = value {
            crate::token::Token::parse(text)
                .map_err(|error| flag_error(flag, error.to_string(), TOKEN_HINT))?;
        }
    }
    for hash in &flags.discovery_token_ca_cert_hashes {
        crate::token::Pin::parse(hash).map_err(|error| {
            flag_error(
                "--discovery-token-ca-cert-hash",
                error.to_string(),
                "copy the hash from the join command `bosun init` printed (`bosun token create --print-join-command` prints it again)",
            )
        })?;
    }
    if let Some(key) = &flags.certificate_key {
        let key = key.trim();
        if key.len() != 64 || !key.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(flag_error(
                "--certificate-key",
                format!("the certificate key must be 64 hex digits (32 bytes), not {} characters of that form", key.len()),
                "use the key `bosun init --upload-certs` printed, or upload again with `bosun init phase upload-certs --upload-certs`",
            ));
        }
    }
    let from_file = file.is_some();
    let mut config = file.unwrap_or_else(|| bosun_config::defaults(facts));
    let had_control_plane = config
        .join
        .as_ref()
        .is_some_and(|join| join.control_plane.is_some());
    if from_file && config.join.is_none() {
        return Err(JoinInputError::Config(ConfigError::single(
            bosun_config::Problem::new(
                config.source.name.clone(),
                "it has no JoinConfiguration document".to_owned(),
            ),
        )));
    }
    let mut join = config.join.take().unwrap_or_default();
    apply_flags(&mut join, flags);
    if join.control_plane.is_some() && !had_control_plane {
        // The worker default (no taints) was filled in before the flag made this a control-plane join.
        join.node_registration.taints = None;
    }
    if !from_file {
        if join.discovery.bootstrap_token.is_none() && join.discovery.file.is_none() {
            return Err(flag_error(
                "API_SERVER_ENDPOINT",
                "no API server endpoint and no --discovery-file was given, so there is no cluster to join",
                "run the join command `bosun init` printed (bosun join <host:port> --token … --discovery-token-ca-cert-hash …)",
            ));
        }
        if let Some(token) = &join.discovery.bootstrap_token {
            if token.api_server_endpoint.is_empty() {
                return Err(flag_error(
                    "API_SERVER_ENDPOINT",
                    "no API server endpoint (host:port) was given for token discovery",
                    "put the control plane's host:port first, as in the join command `bosun init` printed",
                ));
            }
            if token.ca_cert_hashes.is_empty() && !token.unsafe_skip_ca_verification {
                return Err(flag_error(
                    "--discovery-token-ca-cert-hash",
                    "no CA pin was given, and bosun does not trust a cluster it cannot verify",
                    "pass the hash from the join command `bosun init` printed, or --discovery-token-unsafe-skip-ca-verification if you accept any server",
                ));
            }
        }
    }
    bosun_config::defaults::join(&mut join, facts);
    config.join = Some(join);
    let problems = bosun_config::validate::validate(&config);
    if !problems.is_empty() {
        let origin = if from_file {
            config.source.name.clone()
        } else {
            "the command line".to_owned()
        };
        return Err(JoinInputError::Config(ConfigError {
            problems: bosun_config::load::place_problems(&origin, &Default::default(), problems),
        }));
    }
    Ok(config)
}

fn apply_flags(join: &mut JoinConfiguration, flags: &JoinFlags) {
    if let Some(path) = &flags.discovery_file {
        join.discovery.bootstrap_token = None;
        join.discovery.file = Some(bosun_config::FileDiscovery {
            kube_config_path: path.clone(),
        });
    }
    let discovery_token = flags.discovery_token.clone().or(flags.token.clone());
    let token_discovery = flags.api_server_endpoint.is_some()
        || discovery_token.is_some()
        || !flags.discovery_token_ca_cert_hashes.is_empty()
        || flags.discovery_token_unsafe_skip_ca_verification;
    if token_discovery && flags.discovery_file.is_none() {
        join.discovery.file = None;
        let token = join
            .discovery
            .bootstrap_token
            .get_or_insert_with(Default::default);
        if let Some(endpoint) = &flags.api_server_endpoint {
            token.api_server_endpoint = endpoint.clone();
        }
        if let Some(text) = &discovery_token {
            token.token = text.clone();
        }
        if !flags.discovery_token_ca_cert_hashes.is_empty() {
            token.ca_cert_hashes = flags.discovery_token_ca_cert_hashes.clone();
        }
        if flags.discovery_token_unsafe_skip_ca_verification {
            token.unsafe_skip_ca_verification = true;
        }
    }
    if let Some(text) = flags.tls_bootstrap_token.clone().or(flags.token.clone()) {
        join.discovery.tls_bootstrap_token = text;
    }
    if let Some(directory) = &flags.patches {
        join.patches = Some(bosun_config::Patches {
            directory: directory.clone(),
        });
    }
    if let Some(name) = &flags.node_name {
        join.node_registration.name = name.clone();
    }
    if let Some(socket) = &flags.cri_socket {
        join.node_registration.cri_socket = socket.clone();
    }
    let wants_control_plane = flags.control_plane
        || flags.certificate_key.is_some()
        || flags.apiserver_advertise_address.is_some()
        || flags.apiserver_bind_port.is_some();
    if wants_control_plane || join.control_plane.is_some() {
        let control_plane = join
            .control_plane
            .get_or_insert_with(JoinControlPlane::default);
        if let Some(key) = &flags.certificate_key {
            control_plane.certificate_key = key.trim().to_owned();
        }
        if let Some(address) = &flags.apiserver_advertise_address {
            control_plane.local_api_endpoint.advertise_address = address.clone();
        }
        if let Some(port) = flags.apiserver_bind_port {
            control_plane.local_api_endpoint.bind_port = i32::from(port);
        }
    }
}

/// Everything the `join` phases read.
pub struct JoinData {
    /// The resolved configuration on the joining side: its `join` is always set ([`resolve`]).
    pub config: Config,
    /// The bytes of `--discovery-file` when it names a local file (read by the binary, like `--config`).
    pub discovery_file: Option<Vec<u8>>,
    /// Preflight checks whose failures are warnings (`--ignore-preflight-errors`), lower-cased; `all` ignores all.
    pub ignore_preflight_errors: BTreeSet<String>,
    /// A directory whose templates replace the embedded ones (`--templates-dir`).
    pub templates_dir: Option<PathBuf>,
    /// Facts about the machine, gathered by the binary before the run.
    pub node: LazyFacts,
    /// This machine's hostname and default address (the defaults of the cluster's configuration on this node).
    pub host_facts: HostFacts,
    /// Makes API connections; the binary supplies the kube-rs one.
    pub connector: Option<Arc<dyn ClusterConnector>>,
    /// Makes etcd connections for `etcd-join`; the binary supplies the etcd-client one.
    pub etcd: Option<Arc<dyn etcd::EtcdConnector>>,
    discovered: OnceLock<Discovered>,
    cluster: OnceLock<Arc<InitData>>,
}

impl JoinData {
    /// The data for a join with a [`resolve`]d configuration.
    pub fn new(config: Config, host_facts: HostFacts) -> Self {
        JoinData {
            config,
            discovery_file: None,
            ignore_preflight_errors: BTreeSet::new(),
            templates_dir: None,
            node: LazyFacts::default(),
            host_facts,
            connector: None,
            etcd: None,
            discovered: OnceLock::new(),
            cluster: OnceLock::new(),
        }
    }

    /// The JoinConfiguration (always present after [`resolve`]).
    pub fn join(&self) -> &JoinConfiguration {
        static EMPTY: OnceLock<JoinConfiguration> = OnceLock::new();
        self.config
            .join
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(JoinConfiguration::default))
    }

    /// Whether this node joins as a control-plane node.
    pub fn control_plane(&self) -> bool {
        self.join().control_plane.is_some()
    }

    pub fn node_name(&self) -> &str {
        &self.join().node_registration.name
    }

    /// Whether the failure of the preflight check `name` is only a warning.
    pub fn ignores_preflight_error(&self, name: &str) -> bool {
        self.ignore_preflight_errors.contains("all")
            || self
                .ignore_preflight_errors
                .contains(&name.to_ascii_lowercase())
    }

    /// The paths of this node: the defaults until discovery has read the cluster's certificatesDir.
    pub fn paths(&self) -> NodePaths {
        self.cluster
            .get()
            .map(|cluster| cluster.paths.clone())
            .unwrap_or_default()
    }

    /// A timeout of the JoinConfiguration, or kubeadm's default.
    pub(crate) fn timeout(
        &self,
        pick: fn(&bosun_config::Timeouts) -> Option<bosun_config::Duration>,
        default: Duration,
    ) -> Duration {
        self.join()
            .timeouts
            .as_ref()
            .and_then(pick)
            .map(|timeout| timeout.as_std())
            .unwrap_or(default)
    }

    pub(crate) fn connector(&self) -> Result<&Arc<dyn ClusterConnector>, PhaseError> {
        self.connector.as_ref().ok_or_else(|| {
            PhaseError::failed("join needs the Kubernetes API, but this run has no API client")
        })
    }

    /// What discovery found, once it ran.
    pub fn discovered(&self) -> Option<&Discovered> {
        self.discovered.get()
    }

    /// The cluster's configuration as this node sees it, once discovery ran.
    pub fn cluster_data(&self) -> Option<&Arc<InitData>> {
        self.cluster.get()
    }
}

#[cfg(test)]
pub(crate) fn test_facts() -> HostFacts {
    HostFacts {
        hostname: "worker-1".to_owned(),
        default_address: Some("10.0.0.7".parse().expect("ip")),
    }
}
