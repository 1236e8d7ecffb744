//! What node configuration needs to know about the machine. The binary gathers it (src/host/facts.rs) before a
//! workflow runs, so that every decision here is a pure function of plain data and testable without a machine.

use std::collections::BTreeMap;

/// Which cgroup hierarchy the machine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// Legacy hierarchies (possibly with a unified one beside them: "hybrid").
    V1,
    /// The unified hierarchy only.
    V2,
    #[default]
    Unknown,
}

/// What to gather.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactRequest {
    /// TCP ports whose local availability preflight checks.
    pub ports: Vec<u16>,
    /// Kernel parameters to read (`net.ipv4.ip_forward`).
    pub sysctls: Vec<String>,
    /// A host name to resolve.
    pub hostname: String,
}

/// Facts about the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeFacts {
    /// Whether facts were gathered at all (false in `Default`, so nothing is concluded from an empty value).
    pub gathered: bool,
    pub hostname: String,
    /// Effective user id 0.
    pub is_root: bool,
    pub cpus: u32,
    pub memory_mib: u64,
    /// Active swap in KiB (from /proc/swaps).
    pub swap_kib: u64,
    /// systemd is PID 1.
    pub systemd_is_init: bool,
    /// systemd-resolved's stub resolv.conf is in use.
    pub systemd_resolved: bool,
    pub cgroup_version: CgroupVersion,
    /// Controllers available (v2 `cgroup.controllers`, or the mounted v1 hierarchies).
    pub cgroup_controllers: Vec<String>,
    /// Values of the requested kernel parameters that exist.
    pub sysctls: BTreeMap<String, String>,
    /// Requested ports something already listens on.
    pub ports_in_use: Vec<u16>,
    /// Whether the requested host name resolved.
    pub hostname_resolves: bool,
    pub kernel_release: String,
    /// The `*_proxy` variables (either case) of bosun's environment, handed to the control-plane pods.
    pub proxy_env: Vec<(String, String)>,
}
