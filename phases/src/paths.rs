//! Well-known paths on a node, declared once (STYLE habit 4). Every path is a node path (absolute, as on the node);
//! the host implementation places it under `--root`.
//!
//! Paths that depend on the configuration (the certificate directory, the etcd data directory) are methods of
//! [`NodePaths`], built from the configured values; the rest are constants.

use std::path::{Path, PathBuf};

/// `/etc/kubernetes`: kubeconfig files, manifests, and (by default) the PKI.
pub const KUBERNETES_DIR: &str = "/etc/kubernetes";
/// Static-pod manifests the kubelet runs (directory 0700, files 0600).
pub const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";
/// Backups and staging of manifests during upgrades and restores.
pub const KUBERNETES_TMP_DIR: &str = "/etc/kubernetes/tmp";
/// The kubelet's state directory.
pub const KUBELET_DIR: &str = "/var/lib/kubelet";
/// The kubelet's configuration file (KubeletConfiguration).
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
/// Dynamic kubelet flags written at init and join (kubeadm's `kubeadm-flags.env`).
pub const KUBELET_FLAGS_ENV: &str = "/var/lib/kubelet/kubeadm-flags.env";
/// The kubelet's own rotated client certificate.
pub const KUBELET_CLIENT_CURRENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
/// The systemd drop-in that starts the kubelet with kubeadm's flags.
pub const KUBELET_DROP_IN: &str = "/etc/systemd/system/kubelet.service.d/10-bosun.conf";
/// bosun's own state: the journal and the host lock.
pub const BOSUN_STATE_DIR: &str = "/var/lib/bosun";
/// bosun's own configuration (timers, backup keys).
pub const BOSUN_CONFIG_DIR: &str = "/etc/bosun";

/// The kubeconfig files in [`KUBERNETES_DIR`].
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
pub const SUPER_ADMIN_CONF: &str = "/etc/kubernetes/super-admin.conf";
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
pub const BOOTSTRAP_KUBELET_CONF: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
pub const CONTROLLER_MANAGER_CONF: &str = "/etc/kubernetes/controller-manager.conf";
pub const SCHEDULER_CONF: &str = "/etc/kubernetes/scheduler.conf";

/// The control-plane components that run as static pods, in the order upgrade replaces them.
pub const STATIC_POD_COMPONENTS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Paths that depend on the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    /// `certificatesDir` (default `/etc/kubernetes/pki`).
    pub certificates_dir: PathBuf,
    /// `etcd.local.dataDir` (default `/var/lib/etcd`).
    pub etcd_data_dir: PathBuf,
}

impl NodePaths {
    pub fn new(certificates_dir: impl Into<PathBuf>, etcd_data_dir: impl Into<PathBuf>) -> Self {
        NodePaths {
            certificates_dir: certificates_dir.into(),
            etcd_data_dir: etcd_data_dir.into(),
        }
    }

    /// A file in the certificate directory (`ca.crt`, `etcd/server.key`).
    pub fn pki(&self, relative: &str) -> PathBuf {
        self.certificates_dir.join(relative)
    }

    /// The static-pod manifest of a component (`kube-apiserver` → `/etc/kubernetes/manifests/kube-apiserver.yaml`).
    pub fn manifest(component: &str) -> PathBuf {
        Path::new(MANIFESTS_DIR).join(format!("{component}.yaml"))
    }
}

impl Default for NodePaths {
    fn default() -> Self {
        NodePaths::new("/etc/kubernetes/pki", "/var/lib/etcd")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_named_after_their_component() {
        assert_eq!(
            NodePaths::manifest("kube-apiserver"),
            PathBuf::from("/etc/kubernetes/manifests/kube-apiserver.yaml")
        );
    }

    #[test]
    fn pki_files_follow_the_configured_directory() {
        let paths = NodePaths::new("/srv/pki", "/var/lib/etcd");
        assert_eq!(
            paths.pki("etcd/ca.crt"),
            PathBuf::from("/srv/pki/etcd/ca.crt")
        );
    }
}
