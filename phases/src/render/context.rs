//! The typed contexts of the templates: plain data, one type per template, independent of the configuration types.

use serde::Serialize;

/// A name and a value (labels, annotations, environment variables, sysctls).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

impl NameValue {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        NameValue {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// An environment variable of a container: a value, or a `valueFrom` source given as JSON (a YAML flow mapping).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    pub value_from_json: Option<String>,
}

/// An HTTP(S) probe of a static pod's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// `livenessProbe`, `readinessProbe` or `startupProbe`.
    pub kind: ProbeKind,
    /// Empty means the pod's IP (for a host-network pod, the node).
    pub host: Option<String>,
    pub path: String,
    /// A port number or a named container port.
    pub port: String,
    /// `HTTP` or `HTTPS`.
    pub scheme: String,
    pub initial_delay_seconds: u32,
    pub timeout_seconds: u32,
    pub period_seconds: u32,
    pub failure_threshold: u32,
}

/// Which of a container's probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum ProbeKind {
    #[serde(rename = "livenessProbe")]
    Liveness,
    #[serde(rename = "readinessProbe")]
    Readiness,
    #[serde(rename = "startupProbe")]
    Startup,
}

/// A named container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerPort {
    pub name: String,
    pub container_port: u16,
}

/// CPU and memory requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    pub cpu: Option<String>,
    pub memory: Option<String>,
}

/// A hostPath volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPathVolume {
    pub name: String,
    pub host_path: String,
    /// `DirectoryOrCreate`, `FileOrCreate`, …; `None` for no check.
    pub path_type: Option<String>,
}

/// Where a volume is mounted in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
}

/// The user a rootless control-plane container runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunAs {
    pub user_id: u32,
    pub group_id: u32,
}

/// A control-plane static pod (template `static-pod.yaml`). Lists are rendered in the order given; the builder in
/// `node::manifests` sorts them as kubeadm does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticPod {
    pub name: String,
    pub namespace: String,
    pub labels: Vec<NameValue>,
    pub annotations: Vec<NameValue>,
    pub image: String,
    pub image_pull_policy: String,
    /// The program and its flags.
    pub command: Vec<String>,
    pub env: Vec<EnvVar>,
    /// In the order liveness, readiness, startup.
    pub probes: Vec<Probe>,
    pub ports: Vec<ContainerPort>,
    pub resources: Resources,
    pub run_as_user: Option<RunAs>,
    pub volumes: Vec<HostPathVolume>,
    pub volume_mounts: Vec<VolumeMount>,
    pub priority: i64,
    pub priority_class_name: String,
}

/// The kubelet's configuration file (template `kubelet-config.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeletConfigFile {
    /// Every field but `apiVersion` and `kind`, as YAML with sorted keys.
    pub body: String,
}

/// The kubelet's per-node flags (template `kubeadm-flags.env`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeletFlags {
    /// `--name=value` words, sorted.
    pub args: Vec<String>,
}

/// The kubelet's systemd drop-in (template `10-kubeadm.conf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeletDropIn {
    pub kubelet: String,
    pub bootstrap_kubeconfig: String,
    pub kubeconfig: String,
    pub config: String,
    pub flags_env: String,
    pub defaults_env: String,
}

/// containerd's settings that bosun manages (templates `containerd-config-v2.toml` and `-v3.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerdConfig {
    /// The gRPC socket path (not a URL).
    pub address: String,
    /// Top-level `root` and `state`, set only for a second instance on one host.
    pub root: Option<String>,
    pub state: Option<String>,
    /// The `opt` plugin's directory, likewise.
    pub opt_path: Option<String>,
    pub netns_mounts_under_state_dir: bool,
    pub sandbox_image: String,
    pub systemd_cgroup: bool,
    pub snapshotter: String,
    pub cni_bin_dir: String,
    pub cni_conf_dir: String,
}

/// CRI-O's settings that bosun manages (template `crio-kubernetes.conf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrioDropIn {
    /// `systemd` or `cgroupfs`.
    pub cgroup_manager: String,
    /// `pod` (with `cgroupfs`) or `system.slice` (with `systemd`).
    pub conmon_cgroup: String,
    pub sandbox_image: String,
    pub cni_bin_dir: String,
    pub cni_conf_dir: String,
}

/// crictl's configuration (template `crictl.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrictlConfig {
    /// A `unix://` URL.
    pub endpoint: String,
    pub timeout_seconds: u32,
}

/// Kernel parameters (template `sysctl-kubernetes.conf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sysctl {
    pub settings: Vec<NameValue>,
}

/// Kernel modules to load at boot (template `modules-kubernetes.conf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Modules {
    pub modules: Vec<String>,
}
