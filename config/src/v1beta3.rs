//! `kubeadm.k8s.io/v1beta3` documents and their conversion to the internal (v1beta4-shaped) form.
//!
//! What differs from v1beta4: `extraArgs` and `kubeletExtraArgs` are string maps (converted to name/value lists
//! sorted by name); `apiServer.timeoutForControlPlane` becomes `timeouts.controlPlaneComponentHealthCheck` of
//! InitConfiguration; `discovery.timeout` becomes `timeouts.discovery` of JoinConfiguration; there are no
//! `extraEnvs`, `dryRun`, `timeouts`, `imagePullSerial`, `encryptionAlgorithm`, validity periods, `dns.disabled`
//! or `proxy`, and no ResetConfiguration or UpgradeConfiguration kinds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::types::{
    self, Arg, BootstrapToken, Etcd as InternalEtcd, ExternalEtcd, HostPathMount, Networking,
    Patches, Taint,
};

/// v1beta3's argument map.
pub type ArgMap = BTreeMap<String, String>;

/// Converts a v1beta3 argument map to the v1beta4 list (sorted by name, as the map's keys are).
pub fn args_from_map(map: ArgMap) -> Vec<Arg> {
    map.into_iter()
        .map(|(name, value)| Arg { name, value })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ControlPlaneComponent {
    pub extra_args: ArgMap,
    pub extra_volumes: Vec<HostPathMount>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ApiServer {
    pub extra_args: ArgMap,
    pub extra_volumes: Vec<HostPathMount>,
    #[serde(rename = "certSANs")]
    pub cert_sans: Vec<String>,
    pub timeout_for_control_plane: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Dns {
    pub image_repository: String,
    pub image_tag: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LocalEtcd {
    pub image_repository: String,
    pub image_tag: String,
    pub data_dir: String,
    pub extra_args: ArgMap,
    #[serde(rename = "serverCertSANs")]
    pub server_cert_sans: Vec<String>,
    #[serde(rename = "peerCertSANs")]
    pub peer_cert_sans: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Etcd {
    pub local: Option<LocalEtcd>,
    pub external: Option<ExternalEtcd>,
}

/// v1beta3 ClusterConfiguration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClusterConfiguration {
    pub etcd: Etcd,
    pub networking: Networking,
    pub kubernetes_version: String,
    pub control_plane_endpoint: String,
    pub api_server: ApiServer,
    pub controller_manager: ControlPlaneComponent,
    pub scheduler: ControlPlaneComponent,
    pub dns: Dns,
    pub certificates_dir: String,
    pub image_repository: String,
    pub feature_gates: BTreeMap<String, bool>,
    pub cluster_name: String,
}

impl ClusterConfiguration {
    /// The internal form, and `apiServer.timeoutForControlPlane` (which moves to InitConfiguration's timeouts).
    pub fn into_internal(self) -> (types::ClusterConfiguration, Option<Duration>) {
        let component = |component: ControlPlaneComponent| types::ControlPlaneComponent {
            extra_args: args_from_map(component.extra_args),
            extra_volumes: component.extra_volumes,
            extra_envs: Vec::new(),
        };
        let cluster = types::ClusterConfiguration {
            etcd: InternalEtcd {
                local: self.etcd.local.map(|local| types::LocalEtcd {
                    image_repository: local.image_repository,
                    image_tag: local.image_tag,
                    data_dir: local.data_dir,
                    extra_args: args_from_map(local.extra_args),
                    extra_envs: Vec::new(),
                    server_cert_sans: local.server_cert_sans,
                    peer_cert_sans: local.peer_cert_sans,
                }),
                external: self.etcd.external,
            },
            networking: self.networking,
            kubernetes_version: self.kubernetes_version,
            control_plane_endpoint: self.control_plane_endpoint,
            api_server: types::ApiServer {
                extra_args: args_from_map(self.api_server.extra_args),
                extra_volumes: self.api_server.extra_volumes,
                extra_envs: Vec::new(),
                cert_sans: self.api_server.cert_sans,
            },
            controller_manager: component(self.controller_manager),
            scheduler: component(self.scheduler),
            dns: types::Dns {
                image_repository: self.dns.image_repository,
                image_tag: self.dns.image_tag,
                disabled: false,
            },
            proxy: types::Proxy::default(),
            certificates_dir: self.certificates_dir,
            image_repository: self.image_repository,
            feature_gates: self.feature_gates,
            cluster_name: self.cluster_name,
            encryption_algorithm: String::new(),
            certificate_validity_period: None,
            ca_certificate_validity_period: None,
        };
        (cluster, self.api_server.timeout_for_control_plane)
    }
}

/// v1beta3 NodeRegistrationOptions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NodeRegistration {
    pub name: String,
    pub cri_socket: String,
    pub taints: Option<Vec<Taint>>,
    pub kubelet_extra_args: ArgMap,
    pub ignore_preflight_errors: Vec<String>,
    pub image_pull_policy: String,
}

impl From<NodeRegistration> for types::NodeRegistration {
    fn from(registration: NodeRegistration) -> Self {
        types::NodeRegistration {
            name: registration.name,
            cri_socket: registration.cri_socket,
            taints: registration.taints,
            kubelet_extra_args: args_from_map(registration.kubelet_extra_args),
            ignore_preflight_errors: registration.ignore_preflight_errors,
            image_pull_policy: registration.image_pull_policy,
            image_pull_serial: None,
        }
    }
}

/// v1beta3 InitConfiguration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct InitConfiguration {
    pub bootstrap_tokens: Vec<BootstrapToken>,
    pub node_registration: NodeRegistration,
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: types::ApiEndpoint,
    pub certificate_key: String,
    pub skip_phases: Vec<String>,
    pub patches: Option<Patches>,
}

impl From<InitConfiguration> for types::InitConfiguration {
    fn from(init: InitConfiguration) -> Self {
        types::InitConfiguration {
            bootstrap_tokens: init.bootstrap_tokens,
            dry_run: false,
            node_registration: init.node_registration.into(),
            local_api_endpoint: init.local_api_endpoint,
            certificate_key: init.certificate_key,
            skip_phases: init.skip_phases,
            patches: init.patches,
            timeouts: None,
        }
    }
}

/// v1beta3 Discovery (with `timeout`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Discovery {
    pub bootstrap_token: Option<types::BootstrapTokenDiscovery>,
    pub file: Option<types::FileDiscovery>,
    #[serde(rename = "tlsBootstrapToken")]
    pub tls_bootstrap_token: String,
    pub timeout: Option<Duration>,
}

/// v1beta3 JoinConfiguration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JoinConfiguration {
    pub node_registration: NodeRegistration,
    #[serde(rename = "caCertPath")]
    pub ca_cert_path: String,
    pub discovery: Discovery,
    pub control_plane: Option<types::JoinControlPlane>,
    pub skip_phases: Vec<String>,
    pub patches: Option<Patches>,
}

impl From<JoinConfiguration> for types::JoinConfiguration {
    fn from(join: JoinConfiguration) -> Self {
        let timeouts = join.discovery.timeout.map(|timeout| types::Timeouts {
            discovery: Some(timeout),
            ..types::Timeouts::default()
        });
        types::JoinConfiguration {
            dry_run: false,
            node_registration: join.node_registration.into(),
            ca_cert_path: join.ca_cert_path,
            discovery: types::Discovery {
                bootstrap_token: join.discovery.bootstrap_token,
                file: join.discovery.file,
                tls_bootstrap_token: join.discovery.tls_bootstrap_token,
            },
            control_plane: join.control_plane,
            skip_phases: join.skip_phases,
            patches: join.patches,
            timeouts,
        }
    }
}
