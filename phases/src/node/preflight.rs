//! Preflight: kubeadm's checks (cmd/kubeadm/app/preflight/checks.go) as one table, run before anything on the node
//! changes. Every check has kubeadm's name, so `--ignore-preflight-errors=Port-6443,Swap` (or `all`) means the same
//! as with kubeadm: the check still runs and its errors are reported as warnings.
//!
//! All checks run; errors and warnings are reported together, each with a hint where one helps.

use std::path::{Path, PathBuf};

use bosun_config::Config;

use super::cgroup;
use super::facts::{CgroupVersion, NodeFacts};
use super::manifests::{
    ETCD, ETCD_CLIENT_PORT, ETCD_PEER_PORT, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER,
    KUBE_CONTROLLER_MANAGER_PORT, KUBE_SCHEDULER, KUBE_SCHEDULER_PORT,
};
use super::runtime::{present_sockets, socket_path, RuntimeKind};
use crate::host::{CommandSpec, Commands, Files, HostError};
use crate::paths;

/// The kubelet's port.
pub const KUBELET_PORT: u16 = 10250;
/// kubeadm's minimums.
pub const MIN_CPUS: u32 = 2;
pub const MIN_MEMORY_MIB: u64 = 1700;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem a check found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The check's kubeadm name (`Port-6443`).
    pub check: String,
    pub severity: Severity,
    pub message: String,
    pub hint: Option<String>,
}

/// What the checks look at.
pub struct PreflightInput<'a> {
    pub config: &'a Config,
    pub facts: &'a NodeFacts,
    pub files: &'a dyn Files,
    pub commands: &'a dyn Commands,
}

type CheckFn = fn(&PreflightInput<'_>, &mut Vec<Outcome>) -> Result<(), HostError>;

/// What one check reports (before ignoring).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub severity: Severity,
    pub message: String,
    pub hint: Option<String>,
}

fn error(message: impl Into<String>, hint: Option<&str>) -> Outcome {
    Outcome {
        severity: Severity::Error,
        message: message.into(),
        hint: hint.map(str::to_owned),
    }
}

fn warning(message: impl Into<String>, hint: Option<&str>) -> Outcome {
    Outcome {
        severity: Severity::Warning,
        message: message.into(),
        hint: hint.map(str::to_owned),
    }
}

/// A check: its name (computed from the configuration for ports and paths) and its test.
pub struct Check {
    pub name: String,
    run: CheckFn,
}

/// The name kubeadm gives a path check: `/etc/kubernetes/manifests` → `-etc-kubernetes-manifests`.
pub fn path_name(path: &str) -> String {
    path.replace('/', "-")
}

fn local_etcd(config: &Config) -> bool {
    config.external_etcd().is_none()
}

/// Every check for `bosun init` on this configuration, in kubeadm's order.
pub fn init_checks(config: &Config) -> Vec<Check> {
    let mut checks = vec![
        Check {
            name: "IsPrivilegedUser".to_owned(),
            run: is_privileged_user,
        },
        Check {
            name: "NumCPU".to_owned(),
            run: num_cpu,
        },
        Check {
            name: "Mem".to_owned(),
            run: memory,
        },
        Check {
            name: "KubernetesVersion".to_owned(),
            run: kubernetes_version,
        },
        Check {
            name: "SystemVerification".to_owned(),
            run: system_verification,
        },
        Check {
            name: "CgroupDriver".to_owned(),
            run: cgroup_driver,
        },
        Check {
            name: "CRI".to_owned(),
            run: container_runtime,
        },
        Check {
            name: "Swap".to_owned(),
            run: swap,
        },
        Check {
            name: "Hostname".to_owned(),
            run: hostname,
        },
        Check {
            name: "KubeletVersion".to_owned(),
            run: kubelet_version,
        },
        Check {
            name: format!("Port-{}", config.bind_port()),
            run: port_check,
        },
        Check {
            name: format!("Port-{KUBE_SCHEDULER_PORT}"),
            run: port_check,
        },
        Check {
            name: format!("Port-{KUBE_CONTROLLER_MANAGER_PORT}"),
            run: port_check,
        },
        Check {
            name: format!("Port-{KUBELET_PORT}"),
            run: port_check,
        },
    ];
    for component in [
        KUBE_APISERVER,
        KUBE_CONTROLLER_MANAGER,
        KUBE_SCHEDULER,
        ETCD,
    ] {
        if component == ETCD && !local_etcd(config) {
            continue;
        }
        checks.push(Check {
            name: format!(
                "FileAvailable-{}",
                path_name(&paths::NodePaths::manifest(component).display().to_string())
            ),
            run: file_available,
        });
    }
    checks.push(Check {
        name: format!("DirAvailable-{}", path_name(paths::MANIFESTS_DIR)),
        run: manifests_dir_available,
    });
    if local_etcd(config) {
        for port in [ETCD_CLIENT_PORT, ETCD_PEER_PORT] {
            checks.push(Check {
                name: format!("Port-{port}"),
                run: port_check,
            });
        }
        let data_dir = config
            .cluster
            .etcd
            .local
            .as_ref()
            .map(|local| local.data_dir.clone())
            .unwrap_or_default();
        checks.push(Check {
            name: format!("DirAvailable-{}", path_name(&data_dir)),
            run: etcd_data_dir_available,
        });
    } else {
        checks.push(Check {
            name: "ExternalEtcdVersion".to_owned(),
            run: external_etcd_files,
        });
    }
    checks.push(Check {
        name: "FileContent--proc-sys-net-ipv4-ip_forward".to_owned(),
        run: ip_forward,
    });
    checks.push(Check {
        name: "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables".to_owned(),
        run: bridge_netfilter,
    });
    for (binary, required) in BINARIES {
        checks.push(Check {
            name: format!("FileExisting-{binary}"),
            run: if required {
                binary_required
            } else {
                binary_optional
            },
        });
    }
    checks
}

/// Programs kubeadm looks for, and whether a missing one is an error.
pub const BINARIES: [(&str, bool); 9] = [
    ("kubelet", true),
    ("ip", true),
    ("iptables", true),
    ("mount", true),
    ("nsenter", true),
    ("conntrack", false),
    ("ethtool", false),
    ("socat", false),
    ("tc", false),
];

/// The kernel parameters preflight reads.
pub const SYSCTLS: [&str; 2] = ["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"];

/// The ports preflight checks for a configuration.
pub fn ports(config: &Config) -> Vec<u16> {
    let mut ports = vec![
        config.bind_port(),
        KUBE_SCHEDULER_PORT,
        KUBE_CONTROLLER_MANAGER_PORT,
        KUBELET_PORT,
    ];
    if local_etcd(config) {
        ports.extend([ETCD_CLIENT_PORT, ETCD_PEER_PORT]);
    }
    ports
}

/// Runs every check, returning all findings (ignored errors already turned into warnings).
pub fn run_checks(
    checks: &[Check],
    input: &PreflightInput<'_>,
    ignores: impl Fn(&str) -> bool,
) -> Result<Vec<Finding>, HostError> {
    let mut findings = Vec::new();
    for check in checks {
        let mut outcomes = Vec::new();
        CURRENT_CHECK.with(|current| *current.borrow_mut() = check.name.clone());
        (check.run)(input, &mut outcomes)?;
        for outcome in outcomes {
            let severity = if outcome.severity == Severity::Error && ignores(&check.name) {
                Severity::Warning
            } else {
                outcome.severity
            };
            findings.push(Finding {
                check: check.name.clone(),
                severity,
                message: outcome.message,
                hint: outcome.hint,
            });
        }
    }
    Ok(findings)
}

thread_local! {
    /// The name of the check being run, for checks shared by several names (ports, files).
    static CURRENT_CHECK: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn current_check() -> String {
    CURRENT_CHECK.with(|current| current.borrow().clone())
}

fn is_privileged_user(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    if !input.facts.is_root {
        out.push(error(
            "user is not running as root",
            Some("run bosun as root (sudo)"),
        ));
    }
    Ok(())
}

fn num_cpu(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    if input.facts.cpus < MIN_CPUS {
        out.push(error(
            format!(
                "the number of available CPUs {} is less than the required {MIN_CPUS}",
                input.facts.cpus
            ),
            None,
        ));
    }
    Ok(())
}

fn memory(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    if input.facts.memory_mib < MIN_MEMORY_MIB {
        out.push(error(
            format!(
                "the system RAM ({} MB) is less than the minimum {MIN_MEMORY_MIB} MB",
                input.facts.memory_mib
            ),
            None,
        ));
    }
    Ok(())
}

fn kubernetes_version(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    if let Err(problem) = input.config.kubernetes_version() {
        out.push(error(problem.to_string(), None));
    }
    Ok(())
}

fn system_verification(
    input: &PreflightInput<'_>,
    out: &mut Vec<Outcome>,
) -> Result<(), HostError> {
    let facts = input.facts;
    let minor = input
        .config
        .kubernetes_version()
        .map(|version| version.minor)
        .unwrap_or(0);
    match facts.cgroup_version {
        CgroupVersion::V1 if minor >= 35 => out.push(error(
            format!(
                "the host uses cgroup v1, which the kubelet of Kubernetes 1.{minor} refuses by default"
            ),
            Some(
                "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1); or ignore SystemVerification, and bosun \
                 sets failCgroupV1: false in the kubelet configuration",
            ),
        )),
        CgroupVersion::V1 => out.push(warning(
            "the host uses cgroup v1, which Kubernetes deprecates",
            Some("move the host to cgroup v2"),
        )),
        CgroupVersion::V2 | CgroupVersion::Unknown => {}
    }
    for controller in ["cpu", "memory", "pids"] {
        if facts.cgroup_version != CgroupVersion::Unknown
            && !facts
                .cgroup_controllers
                .iter()
                .any(|found| found == controller)
        {
            out.push(error(
                format!("the cgroup controller {controller} is not available"),
                Some("enable it on the kernel command line (cgroup_enable=...)"),
            ));
        }
    }
    Ok(())
}

fn cgroup_driver(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    let kubelet = &input.config.kubelet;
    if let Err(problem) = cgroup::decide(
        &kubelet.cgroup_driver,
        kubelet.cgroup_driver_set_by_user,
        input.facts,
    ) {
        out.push(Outcome {
            severity: Severity::Error,
            message: problem.to_string(),
            hint: problem.hint(),
        });
    }
    Ok(())
}

fn container_runtime(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    let configured = &input.config.node_registration().cri_socket;
    let present = present_sockets(input.files)?;
    let is_default = configured == bosun_config::defaults::DEFAULT_CRI_SOCKET;
    if is_default && present.len() > 1 {
        out.push(error(
            format!(
                "found several container runtimes ({}) and nodeRegistration.criSocket does not say which to use",
                present
                    .iter()
                    .map(|(kind, socket)| format!("{} at {socket}", kind.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some("set nodeRegistration.criSocket in the InitConfiguration"),
        ));
        return Ok(());
    }
    let path = PathBuf::from(socket_path(configured));
    let alternative = path
        .strip_prefix("/var")
        .map(|rest| Path::new("/").join(rest))
        .ok();
    let exists = input.files.exists(&path)?
        || alternative
            .map(|path| input.files.exists(&path))
            .transpose()?
            == Some(true);
    if exists {
        return Ok(());
    }
    let kind = RuntimeKind::of_socket(configured);
    let other = present.iter().find(|(other_kind, _)| *other_kind != kind);
    match other {
        Some((other_kind, socket)) if is_default => out.push(error(
            format!(
                "no container runtime answers at {configured}, but {} has a socket at {socket}",
                other_kind.name()
            ),
            Some("set nodeRegistration.criSocket to that socket"),
        )),
        _ => out.push(warning(
            format!(
                "the CRI socket {configured} does not exist yet; the container-runtime phase configures and starts {}",
                kind.name()
            ),
            Some("install the runtime's package if the container-runtime phase reports it missing"),
        )),
    }
    Ok(())
}

fn swap(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    if input.facts.swap_kib == 0 {
        return Ok(());
    }
    if input.config.kubelet.fail_swap_on == Some(false) {
        out.push(warning(
            "swap is on; the kubelet is configured to tolerate it (failSwapOn: false)",
            None,
        ));
    } else {
        out.push(error(
            "swap is on and the kubelet refuses to start with swap unless failSwapOn is false",
            Some("turn swap off (swapoff -a, and remove it from /etc/fstab), or set failSwapOn: false in the KubeletConfiguration"),
        ));
    }
    Ok(())
}

fn hostname(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    let name = &input.config.node_registration().name;
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|character| {
                    character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-'
                })
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        out.push(error(
            format!("the node name {name:?} is not a valid lower-case DNS name"),
            Some("set nodeRegistration.name"),
        ));
    }
    if !input.facts.hostname_resolves {
        out.push(warning(
            format!("hostname {:?} could not be reached", input.facts.hostname),
            Some("add it to /etc/hosts or to DNS"),
        ));
    }
    Ok(())
}

fn kubelet_version(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    if input.commands.find_program("kubelet").is_none() {
        // FileExisting-kubelet reports the missing binary.
        return Ok(());
    }
    let output = input
        .commands
        .run(&CommandSpec::new("kubelet").arg("--version").read_only())?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let Some(version) = text
        .split_whitespace()
        .find_map(|word| bosun_config::KubernetesVersion::parse(word).ok())
    else {
        out.push(error(
            format!("cannot read the kubelet's version from {:?}", text.trim()),
            None,
        ));
        return Ok(());
    };
    let Ok(control_plane) = input.config.kubernetes_version() else {
        return Ok(());
    };
    if (version.major, version.minor) > (control_plane.major, control_plane.minor) {
        out.push(error(
            format!(
                "the kubelet version {version} is newer than the control plane's {control_plane}"
            ),
            Some("install a kubelet of the control plane's minor version"),
        ));
    } else if version.minor + 3 < control_plane.minor {
        out.push(error(
            format!(
                "the kubelet version {version} is more than three minor versions older than the control plane's {control_plane}"
            ),
            Some("upgrade the kubelet"),
        ));
    }
    Ok(())
}

fn port_check(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    let name = current_check();
    let Some(port) = name
        .strip_prefix("Port-")
        .and_then(|port| port.parse::<u16>().ok())
    else {
        return Ok(());
    };
    if !input.facts.ports_in_use.contains(&port) {
        return Ok(());
    }
    let owner = match port_owner(input, port) {
        Some(owner) if input.files.exists(&owner)? => Some(owner),
        _ => None,
    };
    match owner {
        Some(owner) => out.push(warning(
            format!(
                "port {port} is in use, by this node's own {} ({} exists): a re-run",
                owner_name(&owner),
                owner.display()
            ),
            None,
        )),
        None => out.push(error(
            format!("port {port} is in use"),
            Some("stop what listens on it (ss -ltnp shows which process), or run `bosun reset` if it is a previous cluster"),
        )),
    }
    Ok(())
}

/// The file bosun writes for the component that listens on `port` in this configuration: when it exists, init
/// already ran here and the port is held by this node's own component (like the etcd data directory check, which
/// accepts a data directory that bosun's etcd manifest uses).
fn port_owner(input: &PreflightInput<'_>, port: u16) -> Option<PathBuf> {
    let component = if port == input.config.bind_port() {
        KUBE_APISERVER
    } else if port == KUBE_SCHEDULER_PORT {
        KUBE_SCHEDULER
    } else if port == KUBE_CONTROLLER_MANAGER_PORT {
        KUBE_CONTROLLER_MANAGER
    } else if port == KUBELET_PORT {
        return Some(PathBuf::from(paths::KUBELET_CONFIG));
    } else if local_etcd(input.config) && (port == ETCD_CLIENT_PORT || port == ETCD_PEER_PORT) {
        ETCD
    } else {
        return None;
    };
    Some(paths::NodePaths::manifest(component))
}

fn owner_name(owner: &Path) -> String {
    if owner == Path::new(paths::KUBELET_CONFIG) {
        return "kubelet".to_owned();
    }
    owner
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether a file is one of the manifests bosun writes.
fn is_our_manifest(path: &Path) -> bool {
    [
        ETCD,
        KUBE_APISERVER,
        KUBE_CONTROLLER_MANAGER,
        KUBE_SCHEDULER,
    ]
    .iter()
    .any(|component| paths::NodePaths::manifest(component) == path)
}

fn file_available(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    let name = current_check();
    let Some(path_part) = name.strip_prefix("FileAvailable-") else {
        return Ok(());
    };
    // The name encodes the path lossily (`/` and `-` both become `-`); find the manifest it was made from.
    let Some(path) = [
        ETCD,
        KUBE_APISERVER,
        KUBE_CONTROLLER_MANAGER,
        KUBE_SCHEDULER,
    ]
    .iter()
    .map(|component| paths::NodePaths::manifest(component))
    .find(|candidate| path_name(&candidate.display().to_string()) == path_part) else {
        return Ok(());
    };
    if input.files.exists(&path)? {
        out.push(warning(
            format!(
                "{} already exists; bosun replaces it if it differs",
                path.display()
            ),
            None,
        ));
    }
    Ok(())
}

fn manifests_dir_available(
    input: &PreflightInput<'_>,
    out: &mut Vec<Outcome>,
) -> Result<(), HostError> {
    let foreign: Vec<PathBuf> = input
        .files
        .list_dir(Path::new(paths::MANIFESTS_DIR))?
        .into_iter()
        .filter(|path| !is_our_manifest(path))
        .collect();
    if !foreign.is_empty() {
        out.push(error(
            format!(
                "{} holds files bosun did not write: {}",
                paths::MANIFESTS_DIR,
                foreign
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(
                "move them away (the kubelet would run them as static pods), or run `bosun reset`",
            ),
        ));
    }
    Ok(())
}

fn etcd_data_dir_available(
    input: &PreflightInput<'_>,
    out: &mut Vec<Outcome>,
) -> Result<(), HostError> {
    let Some(local) = input.config.cluster.etcd.local.as_ref() else {
        return Ok(());
    };
    let data_dir = Path::new(&local.data_dir);
    let entries = input.files.list_dir(data_dir)?;
    let rerun = input.files.exists(&paths::NodePaths::manifest(ETCD))?;
    if !entries.is_empty() && !rerun {
        out.push(error(
            format!(
                "{} is not empty and no etcd manifest uses it",
                data_dir.display()
            ),
            Some("remove the old etcd data (it belongs to another cluster), or run `bosun reset`"),
        ));
    }
    Ok(())
}

fn external_etcd_files(
    input: &PreflightInput<'_>,
    out: &mut Vec<Outcome>,
) -> Result<(), HostError> {
    let Some(external) = input.config.external_etcd() else {
        return Ok(());
    };
    for (field, path) in [
        ("caFile", &external.ca_file),
        ("certFile", &external.cert_file),
        ("keyFile", &external.key_file),
    ] {
        if !path.is_empty() && !input.files.exists(Path::new(path))? {
            out.push(error(
                format!("ClusterConfiguration etcd.external.{field} {path} does not exist"),
                None,
            ));
        }
    }
    Ok(())
}

fn ip_forward(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    match input.facts.sysctls.get("net.ipv4.ip_forward").map(String::as_str) {
        Some("1") => {}
        Some(value) => out.push(error(
            format!("/proc/sys/net/ipv4/ip_forward contents are not set to 1 (it is {value})"),
            Some("run `sysctl -w net.ipv4.ip_forward=1`; the container-runtime phase writes /etc/sysctl.d/99-kubernetes.conf to keep it after a reboot"),
        )),
        None => out.push(error(
            "/proc/sys/net/ipv4/ip_forward does not exist",
            None,
        )),
    }
    Ok(())
}

fn bridge_netfilter(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    match input
        .facts
        .sysctls
        .get("net.bridge.bridge-nf-call-iptables")
        .map(String::as_str)
    {
        Some("1") => {}
        Some(value) => out.push(error(
            format!("/proc/sys/net/bridge/bridge-nf-call-iptables contents are not set to 1 (it is {value})"),
            Some("run `sysctl -w net.bridge.bridge-nf-call-iptables=1`"),
        )),
        None => out.push(error(
            "/proc/sys/net/bridge/bridge-nf-call-iptables does not exist: the br_netfilter module is not loaded",
            Some("run `modprobe br_netfilter`; the container-runtime phase writes /etc/modules-load.d/kubernetes.conf to load it at boot"),
        )),
    }
    Ok(())
}

fn binary_name() -> String {
    current_check()
        .strip_prefix("FileExisting-")
        .unwrap_or_default()
        .to_owned()
}

fn binary_required(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    let binary = binary_name();
    if input.commands.find_program(&binary).is_none() {
        out.push(error(
            format!("{binary} not found in system path"),
            Some("install it (the kubelet from your Kubernetes packages, the others from the distribution)"),
        ));
    }
    Ok(())
}

fn binary_optional(input: &PreflightInput<'_>, out: &mut Vec<Outcome>) -> Result<(), HostError> {
    let binary = binary_name();
    if input.commands.find_program(&binary).is_none() {
        out.push(warning(format!("{binary} not found in system path"), None));
    }
    Ok(())
}

/// The findings as the user reads them: one line per finding.
pub fn describe(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|finding| {
            let level = match finding.severity {
                Severity::Error => "ERROR",
                Severity::Warning => "WARNING",
            };
            format!("[{level} {}]: {}", finding.check, finding.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests;
