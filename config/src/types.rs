//! The internal configuration types. They have the shape of `kubeadm.k8s.io/v1beta4` (the same field names, the
//! same `omitempty` behaviour), so serialising them gives v1beta4 documents; v1beta3 input is converted into them.
//!
//! Like kubeadm's Go types, "unset" is an empty string, a zero port or `None`; [`crate::defaults`] fills the
//! unset fields, so after [`crate::load`] every field bosun relies on has a value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::yaml::Value;

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero_i32(value: &i32) -> bool {
    *value == 0
}

/// One command-line argument of a component: `--name=value`. v1beta4 writes these as a list (names may repeat);
/// v1beta3's string map is converted to this list, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arg {
    pub name: String,
    pub value: String,
}

impl Arg {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Arg {
        Arg {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A hostPath volume mounted into a control-plane static pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HostPathMount {
    pub name: String,
    pub host_path: String,
    pub mount_path: String,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// A Kubernetes `HostPathType` (`DirectoryOrCreate`, `File`, ...); empty means no check.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path_type: String,
}

/// An environment variable for a control-plane container (a `corev1.EnvVar`); `valueFrom` is kept as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EnvVar {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<Value>,
}

/// Extra arguments, volumes and environment for one control-plane component.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ControlPlaneComponent {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_volumes: Vec<HostPathMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_envs: Vec<EnvVar>,
}

/// The API server's settings: a control-plane component plus extra certificate SANs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ApiServer {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_volumes: Vec<HostPathMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_envs: Vec<EnvVar>,
    #[serde(rename = "certSANs", skip_serializing_if = "Vec::is_empty")]
    pub cert_sans: Vec<String>,
}

impl ApiServer {
    /// The component part (extra args, volumes, envs), for code that treats all components alike.
    pub fn component(&self) -> ControlPlaneComponent {
        ControlPlaneComponent {
            extra_args: self.extra_args.clone(),
            extra_volumes: self.extra_volumes.clone(),
            extra_envs: self.extra_envs.clone(),
        }
    }
}

/// The repository and tag of an image; empty means "use the default".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ImageMeta {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_repository: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_tag: String,
}

/// CoreDNS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Dns {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_repository: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_tag: String,
    #[serde(skip_serializing_if = "is_false")]
    pub disabled: bool,
}

/// kube-proxy addon settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Proxy {
    #[serde(skip_serializing_if = "is_false")]
    pub disabled: bool,
}

/// etcd: either local (a static pod on each control-plane node) or external; exactly one is set after defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Etcd {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalEtcd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalEtcd>,
}

/// A local etcd run as a static pod.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LocalEtcd {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_repository: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_tag: String,
    pub data_dir: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_envs: Vec<EnvVar>,
    #[serde(rename = "serverCertSANs", skip_serializing_if = "Vec::is_empty")]
    pub server_cert_sans: Vec<String>,
    #[serde(rename = "peerCertSANs", skip_serializing_if = "Vec::is_empty")]
    pub peer_cert_sans: Vec<String>,
}

/// An external etcd cluster bosun connects to but does not run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExternalEtcd {
    pub endpoints: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key_file: String,
}

/// Cluster networking. Subnets may be dual-stack: two CIDRs separated by a comma.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Networking {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_subnet: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pod_subnet: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dns_domain: String,
}

/// `ClusterConfiguration`: settings shared by every node of the cluster (uploaded to the `kubeadm-config` ConfigMap).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClusterConfiguration {
    pub etcd: Etcd,
    pub networking: Networking,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kubernetes_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub control_plane_endpoint: String,
    pub api_server: ApiServer,
    pub controller_manager: ControlPlaneComponent,
    pub scheduler: ControlPlaneComponent,
    pub dns: Dns,
    pub proxy: Proxy,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub certificates_dir: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_repository: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster_name: String,
    /// `RSA-2048` (default), `RSA-3072`, `RSA-4096`, `ECDSA-P256` or `ECDSA-P384`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub encryption_algorithm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_validity_period: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificate_validity_period: Option<Duration>,
}

/// A node taint (`corev1.Taint`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Taint {
    pub key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub effect: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_added: Option<String>,
}

/// How the node registers itself with the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NodeRegistration {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cri_socket: String,
    /// `None` means "the default" (the control-plane taint on control-plane nodes); `Some(vec![])` means no taints.
    pub taints: Option<Vec<Taint>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubelet_extra_args: Vec<Arg>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore_preflight_errors: Vec<String>,
    /// `Always`, `IfNotPresent` (default) or `Never`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_pull_policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_serial: Option<bool>,
}

/// A bootstrap token for joining nodes (`bootstraptokenv1.BootstrapToken`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BootstrapToken {
    /// `[a-z0-9]{6}.[a-z0-9]{16}`; empty means "generate one at run time".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// An RFC 3339 time; when set it wins over `ttl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl BootstrapToken {
    /// The token id (the part before the dot), if the token is set and well formed.
    pub fn id(&self) -> Option<&str> {
        crate::validate::split_token(&self.token).map(|(id, _)| id)
    }
}

/// An address and port an API server listens on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ApiEndpoint {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub advertise_address: String,
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub bind_port: i32,
}

/// Where kubeadm-style patches (`target[suffix][+patchtype].extension`) are read from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Patches {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub directory: String,
}

/// How long bosun waits for each kind of thing. Every field is set after defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Timeouts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane_component_health_check: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet_health_check: Option<Duration>,
    #[serde(rename = "kubernetesAPICall", skip_serializing_if = "Option::is_none")]
    pub kubernetes_api_call: Option<Duration>,
    #[serde(rename = "etcdAPICall", skip_serializing_if = "Option::is_none")]
    pub etcd_api_call: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_bootstrap: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_manifests: Option<Duration>,
}

/// `InitConfiguration`: settings for the node `bosun init` runs on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct InitConfiguration {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bootstrap_tokens: Vec<BootstrapToken>,
    #[serde(skip_serializing_if = "is_false")]
    pub dry_run: bool,
    pub node_registration: NodeRegistration,
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub certificate_key: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip_phases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patches: Option<Patches>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
}

/// Token-based discovery of the cluster a node joins.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BootstrapTokenDiscovery {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_server_endpoint: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ca_cert_hashes: Vec<String>,
    #[serde(rename = "unsafeSkipCAVerification", skip_serializing_if = "is_false")]
    pub unsafe_skip_ca_verification: bool,
}

/// File-based discovery: a kubeconfig path or https URL.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FileDiscovery {
    pub kube_config_path: String,
}

/// How a joining node finds and trusts the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Discovery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<BootstrapTokenDiscovery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileDiscovery>,
    #[serde(rename = "tlsBootstrapToken", skip_serializing_if = "String::is_empty")]
    pub tls_bootstrap_token: String,
}

/// Extra settings when the joining node becomes a control-plane node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub certificate_key: String,
}

/// `JoinConfiguration`: settings for `bosun join`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JoinConfiguration {
    #[serde(skip_serializing_if = "is_false")]
    pub dry_run: bool,
    pub node_registration: NodeRegistration,
    #[serde(rename = "caCertPath", skip_serializing_if = "String::is_empty")]
    pub ca_cert_path: String,
    pub discovery: Discovery,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<JoinControlPlane>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip_phases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patches: Option<Patches>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
}

/// `ResetConfiguration`: settings for `bosun reset`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResetConfiguration {
    #[serde(skip_serializing_if = "is_false")]
    pub cleanup_tmp_dir: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub certificates_dir: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cri_socket: String,
    #[serde(skip_serializing_if = "is_false")]
    pub dry_run: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub force: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore_preflight_errors: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip_phases: Vec<String>,
    /// `MNT_FORCE`, `MNT_DETACH`, `MNT_EXPIRE`, `UMOUNT_NOFOLLOW`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmount_flags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
}

/// `upgrade apply` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct UpgradeApplyConfiguration {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kubernetes_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_experimental_upgrades: Option<bool>,
    #[serde(rename = "allowRCUpgrades", skip_serializing_if = "Option::is_none")]
    pub allow_rc_upgrades: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_renewal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_upgrade: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_upgrade: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore_preflight_errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patches: Option<Patches>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub print_config: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip_phases: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_pull_policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_serial: Option<bool>,
}

/// `upgrade diff` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct UpgradeDiffConfiguration {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kubernetes_version: String,
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub context_lines: i32,
}

/// `upgrade node` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct UpgradeNodeConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_renewal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_upgrade: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore_preflight_errors: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip_phases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patches: Option<Patches>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_pull_policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_serial: Option<bool>,
}

/// `upgrade plan` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct UpgradePlanConfiguration {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kubernetes_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_experimental_upgrades: Option<bool>,
    #[serde(rename = "allowRCUpgrades", skip_serializing_if = "Option::is_none")]
    pub allow_rc_upgrades: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_upgrade: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore_preflight_errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub print_config: Option<bool>,
}

/// `UpgradeConfiguration`: settings for `bosun upgrade apply|diff|node|plan`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct UpgradeConfiguration {
    pub apply: UpgradeApplyConfiguration,
    pub diff: UpgradeDiffConfiguration,
    pub node: UpgradeNodeConfiguration,
    pub plan: UpgradePlanConfiguration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
}
