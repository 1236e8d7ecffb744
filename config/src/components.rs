//! The component configurations kubeadm carries in the same stream: `KubeletConfiguration`
//! (kubelet.config.k8s.io/v1beta1) and `KubeProxyConfiguration` (kubeproxy.config.k8s.io/v1alpha1).
//!
//! The fields bosun reads or defaults are typed; every other field is kept as written in `rest` and written back
//! unchanged, so a user's kubelet settings reach `/var/lib/kubelet/config.yaml` intact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::yaml::Value;

/// `authentication.x509`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeletX509Authentication {
    #[serde(rename = "clientCAFile", skip_serializing_if = "String::is_empty")]
    pub client_ca_file: String,
}

/// `authentication.webhook`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeletWebhookAuthentication {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(rename = "cacheTTL", skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<Duration>,
}

/// `authentication.anonymous`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeletAnonymousAuthentication {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The kubelet's `authentication` block.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeletAuthentication {
    pub x509: KubeletX509Authentication,
    pub webhook: KubeletWebhookAuthentication,
    pub anonymous: KubeletAnonymousAuthentication,
}

/// `authorization.webhook`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeletWebhookAuthorization {
    #[serde(rename = "cacheAuthorizedTTL", skip_serializing_if = "Option::is_none")]
    pub cache_authorized_ttl: Option<Duration>,
    #[serde(
        rename = "cacheUnauthorizedTTL",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_unauthorized_ttl: Option<Duration>,
}

/// The kubelet's `authorization` block.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeletAuthorization {
    /// `Webhook` (kubeadm's default) or `AlwaysAllow`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    pub webhook: KubeletWebhookAuthorization,
}

/// `KubeletConfiguration` (kubelet.config.k8s.io/v1beta1).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletConfiguration {
    /// `systemd` or `cgroupfs`. kubeadm defaults it to `systemd`; see [`Self::cgroup_driver_set_by_user`].
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroup_driver: String,
    #[serde(rename = "clusterDNS", skip_serializing_if = "Vec::is_empty")]
    pub cluster_dns: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster_domain: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub static_pod_path: String,
    pub authentication: KubeletAuthentication,
    pub authorization: KubeletAuthorization,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotate_certificates: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_tls_bootstrap: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_swap_on: Option<bool>,
    #[serde(rename = "failCgroupV1", skip_serializing_if = "Option::is_none")]
    pub fail_cgroup_v1: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_runtime_endpoint: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub healthz_bind_address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthz_port: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_port: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolv_conf: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroups_per_qos: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
    /// Every other field, as written.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
    /// Whether the user's document set `cgroupDriver` (the node phase then keeps it instead of matching the host).
    #[serde(skip)]
    pub cgroup_driver_set_by_user: bool,
    /// Whether the stream had a KubeletConfiguration document at all.
    #[serde(skip)]
    pub from_user: bool,
}

/// `clientConnection` of kube-proxy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeProxyClientConnection {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kubeconfig: String,
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// `KubeProxyConfiguration` (kubeproxy.config.k8s.io/v1alpha1).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeProxyConfiguration {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bind_address: String,
    #[serde(rename = "clusterCIDR", skip_serializing_if = "String::is_empty")]
    pub cluster_cidr: String,
    /// `iptables`, `ipvs`, `nftables` or empty (the platform default).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    pub client_connection: KubeProxyClientConnection,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
    /// Every other field, as written.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
    /// Whether the stream had a KubeProxyConfiguration document at all.
    #[serde(skip)]
    pub from_user: bool,
}
