//! bosun-config: kubeadm's configuration files (`kubeadm.k8s.io/v1beta3` and `v1beta4`, plus the
//! KubeletConfiguration and KubeProxyConfiguration documents of the same stream).
//!
//! This crate is pure: it parses text handed to it and never touches the filesystem or the network. Facts about
//! the machine that defaults depend on (hostname, default-route address) come in as [`HostFacts`].
//!
//! Map of the crate:
//! - [`types`]: the internal form, shaped like v1beta4 (serialising it gives v1beta4 documents).
//! - [`components`]: KubeletConfiguration and KubeProxyConfiguration (typed where bosun uses them, the rest kept).
//! - [`v1beta3`]: the v1beta3 documents and their conversion.
//! - [`load`](mod@load): cutting a stream into documents, identifying and strictly decoding each.
//! - [`defaults`]: kubeadm's defaults; [`validate`](mod@validate): kubeadm's validation.
//! - [`print`]: `config print …-defaults` and `config migrate` output.
//! - [`yaml`]: the one module that calls serde_yaml; everyone reads and writes YAML through it.
//! - [`duration`], [`version`]: Go durations and Kubernetes versions.
//! - [`error`]: [`ConfigError`] and its [`Problem`]s (file, document, kind, field, line, column, hint).

pub mod component_fields;
pub mod components;
pub mod defaults;
pub mod duration;
pub mod error;
#[cfg(test)]
mod fixture_tests;
pub mod load;
pub mod print;
pub mod suggest;
pub mod types;
pub mod v1beta3;
pub mod validate;
pub mod version;
pub mod yaml;

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

pub use components::{KubeProxyConfiguration, KubeletConfiguration};
pub use duration::Duration;
pub use error::{ConfigError, Problem};
pub use types::*;
pub use version::KubernetesVersion;

/// Facts about the machine bosun runs on that defaults depend on; gathered by the binary (src/host/facts.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// The hostname; the node name defaults to it, lower-cased.
    pub hostname: String,
    /// The address of the default-route interface; the advertise address defaults to it.
    pub default_address: Option<IpAddr>,
}

/// Where a document of the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentSource {
    /// 1-based document number in the stream.
    pub number: usize,
    pub api_version: String,
    pub kind: String,
    /// 1-based line where the document starts.
    pub first_line: usize,
}

/// What the configuration was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Source {
    /// The file name as given (`<embedded defaults>` for [`defaults`]).
    pub name: String,
    /// The documents the stream had, in order.
    pub documents: Vec<DocumentSource>,
    /// Settings that are valid but likely mistakes (placed in the file like errors).
    pub warnings: Vec<Problem>,
    /// A v1beta3 `apiServer.timeoutForControlPlane`, already moved into the init timeouts.
    #[serde(skip)]
    pub v1beta3_control_plane_timeout: Option<Duration>,
}

impl Source {
    /// Whether the stream had a document of this kind.
    pub fn has_kind(&self, kind: &str) -> bool {
        self.documents.iter().any(|document| document.kind == kind)
    }

    /// Whether any kubeadm document was v1beta3 (so `config migrate` has something to do).
    pub fn has_v1beta3(&self) -> bool {
        self.documents
            .iter()
            .any(|document| document.api_version == load::V1BETA3)
    }
}

/// The whole configuration, defaulted and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub init: InitConfiguration,
    pub cluster: ClusterConfiguration,
    pub join: Option<JoinConfiguration>,
    pub reset: Option<ResetConfiguration>,
    pub upgrade: Option<UpgradeConfiguration>,
    pub kubelet: KubeletConfiguration,
    pub kube_proxy: KubeProxyConfiguration,
    pub source: Source,
}

/// The name [`defaults`] reports as its source.
pub const EMBEDDED_DEFAULTS: &str = "<embedded defaults>";

/// Reads a configuration stream: parse, convert v1beta3, apply kubeadm's defaults, validate.
///
/// `name` is the file name used in errors. An empty stream gives the defaults.
pub fn load(name: &str, text: &str, facts: &HostFacts) -> Result<Config, ConfigError> {
    let decoded = load::decode_stream(name, text)?;
    let texts = decoded.texts.clone();
    let mut config = load::assemble(decoded, facts);
    let (problems, warnings) = validate::validate_with_warnings(&config);
    if problems.is_empty() {
        config.source.warnings = load::place_problems(name, &texts, warnings);
        Ok(config)
    } else {
        Err(ConfigError {
            problems: load::place_problems(name, &texts, problems),
        })
    }
}

/// The embedded default configuration: what `bosun init` uses without `--config`. Not validated: if the host has
/// no default route the advertise address is left empty, and [`Config::advertise_address`] says so.
pub fn defaults(facts: &HostFacts) -> Config {
    let mut decoded = load::Decoded::default();
    decoded.source.name = EMBEDDED_DEFAULTS.to_owned();
    load::assemble(decoded, facts)
}

fn invalid(kind: &str, field: &str, message: String) -> ConfigError {
    let mut problem = Problem::new("configuration", message);
    problem.kind = Some(kind.to_owned());
    problem.field = Some(field.to_owned());
    ConfigError::single(problem)
}

/// The `index`-th address of a subnet (1 = first usable), as kubeadm's `GetIndexedIP`.
pub fn indexed_ip(subnet: &IpNet, index: u128) -> Option<IpAddr> {
    match subnet {
        IpNet::V4(net) => {
            let base = u32::from(net.network()) as u128;
            let host_bits = 32 - u32::from(net.prefix_len());
            if host_bits < 128 && index >= (1u128 << host_bits) {
                return None;
            }
            Some(IpAddr::V4(std::net::Ipv4Addr::from((base + index) as u32)))
        }
        IpNet::V6(net) => {
            let base = u128::from(net.network());
            let host_bits = 128 - u32::from(net.prefix_len());
            if host_bits < 128 && index >= (1u128 << host_bits) {
                return None;
            }
            Some(IpAddr::V6(std::net::Ipv6Addr::from(
                base.checked_add(index)?,
            )))
        }
    }
}

impl Config {
    /// The service subnets (one, or two for dual-stack), in the order written.
    pub fn service_subnets(&self) -> Result<Vec<IpNet>, ConfigError> {
        validate::parse_cidrs(&self.cluster.networking.service_subnet)
            .map_err(|message| invalid("ClusterConfiguration", "networking.serviceSubnet", message))
    }

    /// The pod subnets; empty when none is set.
    pub fn pod_subnets(&self) -> Result<Vec<IpNet>, ConfigError> {
        if self.cluster.networking.pod_subnet.is_empty() {
            return Ok(Vec::new());
        }
        validate::parse_cidrs(&self.cluster.networking.pod_subnet)
            .map_err(|message| invalid("ClusterConfiguration", "networking.podSubnet", message))
    }

    /// The first address of the primary service subnet: the `kubernetes` Service's cluster IP (10.96.0.1).
    pub fn first_service_ip(&self) -> Result<IpAddr, ConfigError> {
        self.indexed_service_ip(1)
    }

    /// The tenth address of the primary service subnet: the cluster DNS service (10.96.0.10).
    pub fn dns_service_ip(&self) -> Result<IpAddr, ConfigError> {
        self.indexed_service_ip(10)
    }

    fn indexed_service_ip(&self, index: u128) -> Result<IpAddr, ConfigError> {
        let subnets = self.service_subnets()?;
        let primary = subnets.first().ok_or_else(|| {
            invalid(
                "ClusterConfiguration",
                "networking.serviceSubnet",
                "no service subnet is set".to_owned(),
            )
        })?;
        indexed_ip(primary, index).ok_or_else(|| {
            invalid(
                "ClusterConfiguration",
                "networking.serviceSubnet",
                format!("{primary} is too small to have an address number {index}"),
            )
        })
    }

    /// This node's advertise address (InitConfiguration, or JoinConfiguration's control plane when joining).
    pub fn advertise_address(&self) -> Result<IpAddr, ConfigError> {
        let (kind, field, text) = match self
            .join
            .as_ref()
            .and_then(|join| join.control_plane.as_ref())
        {
            Some(control_plane) if !self.source.has_kind("InitConfiguration") => (
                "JoinConfiguration",
                "controlPlane.localAPIEndpoint.advertiseAddress",
                &control_plane.local_api_endpoint.advertise_address,
            ),
            _ => (
                "InitConfiguration",
                "localAPIEndpoint.advertiseAddress",
                &self.init.local_api_endpoint.advertise_address,
            ),
        };
        if text.is_empty() {
            let mut error = invalid(
                kind,
                field,
                "no advertise address is set and the host has no default route to take one from"
                    .to_owned(),
            );
            error.problems[0].hint = Some(format!("set {field} to this node's IP address"));
            return Err(error);
        }
        text.parse()
            .map_err(|_| invalid(kind, field, format!("{text:?} is not an IP address")))
    }

    /// The port the local API server binds.
    pub fn bind_port(&self) -> u16 {
        let port = match self
            .join
            .as_ref()
            .and_then(|join| join.control_plane.as_ref())
        {
            Some(control_plane) if !self.source.has_kind("InitConfiguration") => {
                control_plane.local_api_endpoint.bind_port
            }
            _ => self.init.local_api_endpoint.bind_port,
        };
        u16::try_from(port)
            .ok()
            .filter(|port| *port != 0)
            .unwrap_or(defaults::DEFAULT_BIND_PORT as u16)
    }

    /// `https://<advertise address>:<bind port>` (IPv6 in brackets): the local API server, used by the
    /// controller-manager and scheduler kubeconfigs.
    pub fn local_api_endpoint_url(&self) -> Result<String, ConfigError> {
        let address = self.advertise_address()?;
        Ok(format!(
            "https://{}",
            join_host_port(&address.to_string(), self.bind_port())
        ))
    }

    /// The control-plane endpoint as `https://host:port`: `controlPlaneEndpoint` (its port defaulting to the bind
    /// port) when set, otherwise the local API endpoint. admin.conf and kubelet.conf point here.
    pub fn control_plane_endpoint_url(&self) -> Result<String, ConfigError> {
        let endpoint = &self.cluster.control_plane_endpoint;
        if endpoint.is_empty() {
            return self.local_api_endpoint_url();
        }
        let (host, port) = validate::split_host_port(endpoint).ok_or_else(|| {
            invalid(
                "ClusterConfiguration",
                "controlPlaneEndpoint",
                format!("{endpoint:?} is not a host or host:port"),
            )
        })?;
        Ok(format!(
            "https://{}",
            join_host_port(&host, port.unwrap_or(self.bind_port()))
        ))
    }

    /// The host part of the control-plane endpoint (`controlPlaneEndpoint` or the advertise address).
    pub fn control_plane_endpoint_host(&self) -> Result<String, ConfigError> {
        let endpoint = &self.cluster.control_plane_endpoint;
        if endpoint.is_empty() {
            return Ok(self.advertise_address()?.to_string());
        }
        validate::split_host_port(endpoint)
            .map(|(host, _)| host)
            .ok_or_else(|| {
                invalid(
                    "ClusterConfiguration",
                    "controlPlaneEndpoint",
                    format!("{endpoint:?} is not a host or host:port"),
                )
            })
    }

    /// The parsed `kubernetesVersion`.
    pub fn kubernetes_version(&self) -> Result<KubernetesVersion, ConfigError> {
        KubernetesVersion::parse(&self.cluster.kubernetes_version)
            .map_err(|message| invalid("ClusterConfiguration", "kubernetesVersion", message))
    }

    /// The timeouts that apply to `bosun init` (every field set after defaults).
    pub fn init_timeouts(&self) -> Timeouts {
        self.init
            .timeouts
            .clone()
            .unwrap_or_else(defaults::default_timeouts)
    }

    /// The node name (InitConfiguration's, or JoinConfiguration's when the stream is a join configuration).
    pub fn node_registration(&self) -> &NodeRegistration {
        match &self.join {
            Some(join) if !self.source.has_kind("InitConfiguration") => &join.node_registration,
            _ => &self.init.node_registration,
        }
    }

    /// Whether etcd is external.
    pub fn external_etcd(&self) -> Option<&ExternalEtcd> {
        self.cluster.etcd.external.as_ref()
    }
}

/// `host:port`, with an IPv6 host in brackets.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            hostname: "Node-1".to_owned(),
            default_address: Some("192.0.2.10".parse().expect("ip")),
        }
    }

    #[test]
    fn the_defaults_are_kubeadms() {
        let config = defaults(&facts());
        assert_eq!(config.cluster.networking.service_subnet, "10.96.0.0/12");
        assert_eq!(config.cluster.networking.dns_domain, "cluster.local");
        assert_eq!(config.init.local_api_endpoint.bind_port, 6443);
        assert_eq!(
            config.init.local_api_endpoint.advertise_address,
            "192.0.2.10"
        );
        assert_eq!(config.init.node_registration.name, "node-1");
        assert_eq!(
            config.first_service_ip().expect("svc1").to_string(),
            "10.96.0.1"
        );
        assert_eq!(
            config.dns_service_ip().expect("dns").to_string(),
            "10.96.0.10"
        );
        assert_eq!(
            config.control_plane_endpoint_url().expect("url"),
            "https://192.0.2.10:6443"
        );
        assert_eq!(
            config.kubernetes_version().expect("version").to_string(),
            defaults::DEFAULT_KUBERNETES_VERSION
        );
        assert_eq!(config.kubelet.cgroup_driver, "systemd");
        assert!(!config.kubelet.cgroup_driver_set_by_user);
        assert_eq!(config.kubelet.cluster_dns, vec!["10.96.0.10".to_owned()]);
        assert!(
            validate::validate(&config).is_empty(),
            "{:?}",
            validate::validate(&config)
        );
    }

    #[test]
    fn a_simple_v1beta4_stream_loads() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: cp.example.com\nnetworking:\n  podSubnet: 10.244.0.0/16\napiServer:\n  extraArgs:\n  - name: audit-log-maxage\n    value: \"30\"\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: cgroupfs\nmaxPods: 50\n";
        let config = load("cluster.yaml", text, &facts()).expect("loads");
        assert_eq!(
            config.control_plane_endpoint_url().expect("url"),
            "https://cp.example.com:6443"
        );
        assert_eq!(
            config.cluster.api_server.extra_args,
            vec![Arg::new("audit-log-maxage", "30")]
        );
        assert!(config.kubelet.cgroup_driver_set_by_user);
        assert_eq!(
            config.kubelet.rest.get("maxPods"),
            Some(&yaml::Value::from(50))
        );
        assert_eq!(config.kube_proxy.cluster_cidr, "10.244.0.0/16");
    }

    #[test]
    fn a_misspelt_field_names_file_document_line_and_suggestion() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnt: 10.244.0.0/16\n";
        let error = load("cluster.yaml", text, &facts()).expect_err("misspelt");
        let problem = &error.problems[0];
        assert_eq!(problem.document, Some(2));
        assert_eq!(problem.kind.as_deref(), Some("ClusterConfiguration"));
        assert_eq!(problem.field.as_deref(), Some("networking.podSubnt"));
        assert_eq!((problem.line, problem.column), (Some(7), Some(3)));
        assert_eq!(problem.hint.as_deref(), Some("did you mean `podSubnet`?"));
    }
}
