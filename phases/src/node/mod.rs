//! Node configuration: the control-plane static pods, the kubelet's files, the container runtime's configuration,
//! the cgroup driver, and preflight checks.
//!
//! Map of the module:
//! - [`args`]: kubeadm's flag rules (defaults, extraArgs replacing by name, sorted `--name=value`).
//! - [`manifests`]: the four static pods as [`crate::render::StaticPod`] contexts; [`patches`]: kubeadm's
//!   `--patches` directories (strategic merge, JSON merge, JSON patch); [`versions`]: etcd and pause per minor.
//! - [`kubelet`]: `/var/lib/kubelet/config.yaml`, `kubeadm-flags.env`, the systemd drop-in and the service.
//! - [`runtime`]: CRI socket detection, containerd's `config.toml` (v2/v3, preserving the user's settings), the
//!   CRI-O drop-in, `crictl.yaml`, sysctl and module-load files, and the check that the running runtime took them.
//! - [`cgroup`]: which cgroup driver the node must use, and refusing configurations that force a mismatch.
//! - [`facts`]: what these decisions need to know about the machine ([`NodeFacts`]), gathered by the binary.
//! - [`preflight`]: kubeadm's checks as a table, each ignorable by name.
//! - [`phases`]: the init workflow's `preflight`, `etcd/local`, `control-plane/*`, `kubelet-start` and
//!   `container-runtime` phases.
//!
//! Files on a node this module writes (through [`crate::host::Files`]): `/etc/kubernetes/manifests/*.yaml` (0600,
//! directory 0700), `/var/lib/kubelet/config.yaml` and `kubeadm-flags.env` (0644),
//! `/etc/systemd/system/kubelet.service.d/10-bosun.conf` (systemd hosts), `/etc/containerd/config.toml` or
//! `/etc/crio/crio.conf.d/10-bosun.conf`, `/etc/crictl.yaml`, `/etc/sysctl.d/99-kubernetes.conf`,
//! `/etc/modules-load.d/kubernetes.conf` (0644). It reads the patches directory and `/etc/containerd/config.toml`.

pub mod args;
pub mod cgroup;
pub mod facts;
pub mod kubelet;
pub mod manifests;
pub mod migrate;
pub mod patches;
pub mod phases;
pub mod preflight;
pub mod runtime;
pub mod versions;

use std::path::PathBuf;

use bosun_config::ConfigError;

use crate::host::HostError;
use crate::render::RenderError;

pub use facts::{CgroupVersion, FactRequest, LazyFacts, NodeFacts};
pub use phases::{
    container_runtime_phase, control_plane_phase, etcd_phase, fact_request, kubelet_start_phase,
    preflight_phase,
};

/// Why a node file could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Host(#[from] HostError),
    /// A patch file could not be read or applied.
    #[error("patch {path}: {reason}")]
    Patch { path: PathBuf, reason: String },
    /// A value in the configuration or on the node cannot be used.
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    /// A rendered file does not parse back (a defect in a template override, most likely).
    #[error("the rendered {what} is not valid {format}: {reason}")]
    Rendered {
        what: String,
        format: &'static str,
        reason: String,
    },
    /// The configuration and the node disagree about the cgroup driver.
    #[error("{message}")]
    CgroupDriver { message: String, hint: String },
}

impl NodeError {
    pub fn hint(&self) -> Option<String> {
        match self {
            NodeError::Render(error) => error.hint(),
            NodeError::CgroupDriver { hint, .. } => Some(hint.clone()),
            NodeError::Patch { .. } => Some(
                "patch file names are target[suffix][+strategic|merge|json].yaml|json, targets etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubeletconfiguration, corednsdeployment"
                    .to_owned(),
            ),
            NodeError::Rendered { .. } => Some(
                "a --templates-dir override produced this file; compare it with bosun's embedded template".to_owned(),
            ),
            _ => None,
        }
    }
}

impl From<NodeError> for crate::engine::PhaseError {
    fn from(error: NodeError) -> Self {
        match error {
            NodeError::Host(host) => crate::engine::PhaseError::Host(host),
            other => {
                let hint = other.hint();
                let failed = crate::engine::PhaseError::failed(other.to_string());
                match hint {
                    Some(hint) => failed.with_hint(hint),
                    None => failed,
                }
            }
        }
    }
}
