use std::collections::BTreeMap;

use super::*;
use crate::host::memory::{MemoryCommands, MemoryFiles};
use crate::node::manifests::tests::config;

const CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 192.0.2.10
nodeRegistration:
  name: cp-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
";

fn healthy_facts() -> NodeFacts {
    NodeFacts {
        gathered: true,
        hostname: "cp-1".to_owned(),
        is_root: true,
        cpus: 2,
        memory_mib: 24_000,
        swap_kib: 0,
        systemd_is_init: true,
        systemd_resolved: false,
        cgroup_version: CgroupVersion::V2,
        cgroup_controllers: ["cpuset", "cpu", "io", "memory", "pids"]
            .map(str::to_owned)
            .to_vec(),
        sysctls: BTreeMap::from([
            ("net.ipv4.ip_forward".to_owned(), "1".to_owned()),
            (
                "net.bridge.bridge-nf-call-iptables".to_owned(),
                "1".to_owned(),
            ),
        ]),
        ports_in_use: Vec::new(),
        hostname_resolves: true,
        kernel_release: "6.1.0".to_owned(),
        proxy_env: Vec::new(),
    }
}

fn healthy_commands() -> MemoryCommands {
    let commands = MemoryCommands::default();
    for (binary, _) in BINARIES {
        commands.respond(binary, 0, "");
    }
    commands.respond("kubelet", 0, "Kubernetes v1.35.4\n");
    commands
}

fn healthy_files() -> MemoryFiles {
    let files = MemoryFiles::default();
    files
        .write_atomic(Path::new("/run/containerd/containerd.sock"), b"", 0o600)
        .expect("socket");
    files
}

fn findings(
    facts: &NodeFacts,
    files: &MemoryFiles,
    commands: &MemoryCommands,
    ignored: &[&str],
) -> Vec<Finding> {
    let config = config(CONFIG);
    let checks = init_checks(&config);
    let input = PreflightInput {
        config: &config,
        facts,
        files,
        commands,
    };
    run_checks(&checks, &input, |name| {
        ignored.contains(&"all")
            || ignored
                .iter()
                .any(|ignored| ignored.eq_ignore_ascii_case(name))
    })
    .expect("checks run")
}

fn errors(findings: &[Finding]) -> Vec<&str> {
    findings
        .iter()
        .filter(|finding| finding.severity == Severity::Error)
        .map(|finding| finding.check.as_str())
        .collect()
}

#[test]
fn the_table_has_kubeadms_names() {
    let names: Vec<String> = init_checks(&config(CONFIG))
        .into_iter()
        .map(|check| check.name)
        .collect();
    for expected in [
        "IsPrivilegedUser",
        "NumCPU",
        "Mem",
        "Swap",
        "Port-6443",
        "Port-10259",
        "Port-10257",
        "Port-10250",
        "Port-2379",
        "Port-2380",
        "DirAvailable--etc-kubernetes-manifests",
        "DirAvailable--var-lib-etcd",
        "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
        "FileAvailable--etc-kubernetes-manifests-etcd.yaml",
        "FileContent--proc-sys-net-ipv4-ip_forward",
        "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
        "FileExisting-kubelet",
        "CRI",
        "Hostname",
        "KubeletVersion",
        "SystemVerification",
        "CgroupDriver",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "missing {expected} in {names:?}"
        );
    }
}

#[test]
fn a_healthy_host_passes() {
    let found = findings(&healthy_facts(), &healthy_files(), &healthy_commands(), &[]);
    assert!(errors(&found).is_empty(), "{found:#?}");
}

#[test]
fn every_problem_is_reported_together() {
    let facts = NodeFacts {
        is_root: false,
        cpus: 1,
        memory_mib: 1000,
        swap_kib: 4096,
        ports_in_use: vec![6443, 2379],
        cgroup_version: CgroupVersion::V1,
        sysctls: BTreeMap::from([("net.ipv4.ip_forward".to_owned(), "0".to_owned())]),
        ..healthy_facts()
    };
    let files = healthy_files();
    files
        .write_atomic(
            Path::new("/etc/kubernetes/manifests/other.yaml"),
            b"x",
            0o600,
        )
        .expect("write");
    let commands = healthy_commands();
    commands.respond("kubelet", 0, "Kubernetes v1.36.0\n");
    let found = findings(&facts, &files, &commands, &[]);
    assert_eq!(
        errors(&found),
        [
            "IsPrivilegedUser",
            "NumCPU",
            "Mem",
            "SystemVerification",
            "Swap",
            "KubeletVersion",
            "Port-6443",
            "DirAvailable--etc-kubernetes-manifests",
            "Port-2379",
            "FileContent--proc-sys-net-ipv4-ip_forward",
            "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
        ]
    );
    assert!(found.iter().all(|finding| !finding.message.is_empty()));
    let port = found
        .iter()
        .find(|finding| finding.check == "Port-6443")
        .expect("port");
    assert_eq!(port.message, "port 6443 is in use");
    assert!(port.hint.is_some());
}

/// Found by tier 2: a second `bosun init` on a working node failed preflight because the node's own control plane
/// and kubelet hold their ports. Ports held while bosun's file for that component exists are a re-run (a
/// warning); a port held with no such file stays an error.
#[test]
fn ports_held_by_this_nodes_own_components_are_a_rerun() {
    let facts = NodeFacts {
        ports_in_use: vec![6443, 10259, 10257, 10250, 2379, 2380],
        ..healthy_facts()
    };
    let files = healthy_files();
    for path in [
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "/etc/kubernetes/manifests/kube-scheduler.yaml",
        "/etc/kubernetes/manifests/etcd.yaml",
        "/var/lib/kubelet/config.yaml",
    ] {
        files
            .write_atomic(Path::new(path), b"x", 0o600)
            .expect("write");
    }
    let found = findings(&facts, &files, &healthy_commands(), &[]);
    assert_eq!(errors(&found), ["Port-10257"], "{found:#?}");
    let apiserver = found
        .iter()
        .find(|finding| finding.check == "Port-6443")
        .expect("port 6443");
    assert_eq!(apiserver.severity, Severity::Warning);
    assert!(
        apiserver.message.contains("kube-apiserver") && apiserver.message.contains("re-run"),
        "{}",
        apiserver.message
    );
}

#[test]
fn ignored_checks_become_warnings_and_all_ignores_everything() {
    let facts = NodeFacts {
        ports_in_use: vec![10250],
        cpus: 1,
        ..healthy_facts()
    };
    let found = findings(
        &facts,
        &healthy_files(),
        &healthy_commands(),
        &["port-10250"],
    );
    assert_eq!(errors(&found), ["NumCPU"]);
    assert!(found
        .iter()
        .any(|finding| finding.check == "Port-10250" && finding.severity == Severity::Warning));
    let found = findings(&facts, &healthy_files(), &healthy_commands(), &["all"]);
    assert!(errors(&found).is_empty());
}

#[test]
fn a_second_runtime_and_a_forced_cgroup_driver_are_errors() {
    let files = healthy_files();
    files
        .write_atomic(Path::new("/var/run/crio/crio.sock"), b"", 0o600)
        .expect("write");
    let mismatched = config(&format!(
        "{CONFIG}---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: cgroupfs\n"
    ));
    let facts = healthy_facts();
    let commands = healthy_commands();
    let checks = init_checks(&mismatched);
    let input = PreflightInput {
        config: &mismatched,
        facts: &facts,
        files: &files,
        commands: &commands,
    };
    let found = run_checks(&checks, &input, |_| false).expect("run");
    assert_eq!(errors(&found), ["CgroupDriver", "CRI"]);
    let cri = found
        .iter()
        .find(|finding| finding.check == "CRI")
        .expect("cri");
    assert!(cri.message.contains("CRI-O"), "{}", cri.message);
}

#[test]
fn a_rerun_over_bosuns_own_manifests_is_not_an_error() {
    let files = healthy_files();
    for component in ["etcd", "kube-apiserver"] {
        files
            .write_atomic(&paths::NodePaths::manifest(component), b"x", 0o600)
            .expect("write");
    }
    files
        .write_atomic(Path::new("/var/lib/etcd/member/snap/db"), b"x", 0o600)
        .expect("write");
    let found = findings(&healthy_facts(), &files, &healthy_commands(), &[]);
    assert!(errors(&found).is_empty(), "{found:#?}");
    assert!(found
        .iter()
        .any(|finding| finding.check == "FileAvailable--etc-kubernetes-manifests-etcd.yaml"));
}
