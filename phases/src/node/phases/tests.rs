use std::collections::BTreeMap;
use std::time::SystemTime;

use super::*;
use crate::engine::event::RecordingSink;
use crate::engine::{run, PhaseStatus, RunError, RunOptions, Workflow};
use crate::host::memory::{MemoryCommands, MemoryFiles, MemoryServices};
use crate::host::{Files, FixedClock, Services};
use crate::node::manifests::tests::config;
use crate::node::{CgroupVersion, LazyFacts};

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

struct Node {
    files: MemoryFiles,
    commands: MemoryCommands,
    services: MemoryServices,
}

impl Node {
    fn new() -> Self {
        let node = Node {
            files: MemoryFiles::default(),
            commands: MemoryCommands::default(),
            services: MemoryServices::default(),
        };
        for (binary, _) in preflight::BINARIES {
            node.commands.respond(binary, 0, "");
        }
        node.commands.respond("kubelet", 0, "Kubernetes v1.35.4\n");
        node.commands.respond(
            "containerd",
            0,
            "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n",
        );
        node.commands.respond(
            "ctr",
            0,
            "TYPE                                  ID                    PLATFORMS      STATUS\n\
             io.containerd.grpc.v1                 cri                   linux/amd64    ok\n",
        );
        node.commands.respond("systemctl", 0, "");
        for name in [
            "ca.crt",
            "ca.key",
            "apiserver.crt",
            "apiserver.key",
            "apiserver-kubelet-client.crt",
            "apiserver-kubelet-client.key",
            "front-proxy-ca.crt",
            "front-proxy-client.crt",
            "front-proxy-client.key",
            "sa.key",
            "sa.pub",
            "etcd/ca.crt",
            "etcd/server.crt",
            "etcd/server.key",
            "etcd/peer.crt",
            "etcd/peer.key",
            "apiserver-etcd-client.crt",
            "apiserver-etcd-client.key",
        ] {
            node.files
                .write_atomic(&Path::new("/etc/kubernetes/pki").join(name), b"pem", 0o600)
                .expect("write");
        }
        for path in [paths::CONTROLLER_MANAGER_CONF, paths::SCHEDULER_CONF] {
            node.files
                .write_atomic(Path::new(path), b"kubeconfig", 0o600)
                .expect("write");
        }
        node.files
            .write_atomic(Path::new("/run/containerd/containerd.sock"), b"", 0o600)
            .expect("write");
        node
    }

    fn host(&self) -> Host {
        Host {
            files: Box::new(self.files.clone()),
            commands: Box::new(self.commands.clone()),
            services: Box::new(self.services.clone()),
            clock: Box::new(FixedClock(SystemTime::UNIX_EPOCH)),
            description: "test node".to_owned(),
            dry_run: false,
        }
    }
}

fn facts() -> NodeFacts {
    NodeFacts {
        gathered: true,
        hostname: "cp-1".to_owned(),
        is_root: true,
        cpus: 2,
        memory_mib: 4096,
        systemd_is_init: false,
        cgroup_version: CgroupVersion::V2,
        cgroup_controllers: ["cpu", "memory", "pids"].map(str::to_owned).to_vec(),
        sysctls: BTreeMap::from([
            ("net.ipv4.ip_forward".to_owned(), "1".to_owned()),
            (
                "net.bridge.bridge-nf-call-iptables".to_owned(),
                "1".to_owned(),
            ),
        ]),
        hostname_resolves: true,
        ..NodeFacts::default()
    }
}

fn data(text: &str) -> InitData {
    let mut data = InitData::new(config(text));
    data.node = LazyFacts::ready(facts());
    data
}

fn workflow() -> Workflow<InitData> {
    Workflow::new("init")
        .phase(preflight_phase())
        .phase(container_runtime_phase())
        .phase(etcd_phase())
        .phase(control_plane_phase())
        .phase(kubelet_start_phase())
}

#[test]
fn the_node_phases_are_ordered_by_their_needs() {
    let violations = workflow().ordering_violations(&data(CONFIG));
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn a_run_writes_every_node_file_and_a_second_run_changes_nothing() {
    let node = Node::new();
    let data = data(CONFIG);
    let report = run(
        &workflow(),
        &data,
        &node.host(),
        &RecordingSink::default(),
        &RunOptions::default(),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(report.changed());
    for component in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let path = NodePaths::manifest(component);
        let meta = node
            .files
            .metadata(&path)
            .expect("meta")
            .expect("manifest exists");
        assert_eq!(meta.mode, 0o600, "{}", path.display());
    }
    let kubelet_config = String::from_utf8(
        node.files
            .read(Path::new(paths::KUBELET_CONFIG))
            .expect("read")
            .expect("exists"),
    )
    .expect("utf-8");
    // systemd is not PID 1 in these facts: cgroupfs everywhere.
    assert!(
        kubelet_config.contains("cgroupDriver: cgroupfs"),
        "{kubelet_config}"
    );
    let containerd = String::from_utf8(
        node.files
            .read(Path::new(runtime::CONTAINERD_CONFIG))
            .expect("read")
            .expect("exists"),
    )
    .expect("utf-8");
    assert!(containerd.contains("SystemdCgroup = false"), "{containerd}");
    assert!(
        containerd.contains("sandbox_image = \"registry.k8s.io/pause:3.10.1\""),
        "{containerd}"
    );
    assert_eq!(
        node.services.state("kubelet").expect("state"),
        ServiceState::Active
    );
    assert_eq!(
        node.services.state("containerd").expect("state"),
        ServiceState::Active
    );
    // Not a systemd host: no drop-in.
    assert!(!node
        .files
        .exists(Path::new(paths::KUBELET_DROP_IN))
        .expect("exists"));

    let writes = node.files.write_count();
    let again = run(
        &workflow(),
        &data,
        &node.host(),
        &RecordingSink::default(),
        &RunOptions::default(),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(!again.changed(), "{again:#?}");
    assert_eq!(node.files.write_count(), writes);
}

#[test]
fn preflight_errors_stop_the_run_before_anything_changes() {
    let node = Node::new();
    let mut data = data(CONFIG);
    data.node = LazyFacts::ready(NodeFacts {
        ports_in_use: vec![6443],
        cpus: 1,
        ..facts()
    });
    let before = node.files.snapshot();
    let error = run(
        &workflow(),
        &data,
        &node.host(),
        &RecordingSink::default(),
        &RunOptions::default(),
    )
    .expect_err("preflight fails");
    match error {
        RunError::Phase {
            phase,
            source,
            host_changed,
            ..
        } => {
            assert_eq!(phase, "preflight");
            assert!(!host_changed);
            let message = source.to_string();
            assert!(
                message.starts_with("2 preflight checks failed"),
                "{message}"
            );
            assert!(
                message.contains("[Port-6443] port 6443 is in use"),
                "{message}"
            );
            let hint = source.hint().unwrap_or_default().to_owned();
            assert!(
                hint.contains("--ignore-preflight-errors=NumCPU,Port-6443"),
                "{hint}"
            );
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(node.files.snapshot(), before);

    data.ignore_preflight_errors = ["numcpu".to_owned(), "port-6443".to_owned()].into();
    run(
        &workflow(),
        &data,
        &node.host(),
        &RecordingSink::default(),
        &RunOptions::default(),
    )
    .unwrap_or_else(|error| panic!("{error}"));
}

#[test]
fn a_kubelet_config_that_forces_the_wrong_driver_is_refused() {
    let node = Node::new();
    let data = data(&format!(
        "{CONFIG}---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n"
    ));
    let error = run(
        &workflow(),
        &data,
        &node.host(),
        &RecordingSink::default(),
        &RunOptions::default(),
    )
    .expect_err("mismatch");
    let text = error.to_string();
    assert!(text.contains("CgroupDriver"), "{text}");
    assert!(text.contains("systemd is not PID 1"), "{text}");
}

#[test]
fn external_etcd_skips_the_local_etcd_phase_with_a_reason() {
    let node = Node::new();
    for file in [
        "/etc/etcd/ca.crt",
        "/etc/etcd/client.crt",
        "/etc/etcd/client.key",
    ] {
        node.files
            .write_atomic(Path::new(file), b"pem", 0o600)
            .expect("write");
    }
    let data = data(&format!(
        "{CONFIG}etcd:\n  external:\n    endpoints: [https://10.0.0.1:2379]\n    caFile: /etc/etcd/ca.crt\n    certFile: /etc/etcd/client.crt\n    keyFile: /etc/etcd/client.key\n"
    ));
    let report = run(
        &workflow(),
        &data,
        &node.host(),
        &RecordingSink::default(),
        &RunOptions::default(),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let local = report
        .phases
        .iter()
        .find(|phase| phase.phase == "etcd/local")
        .expect("etcd/local");
    assert!(
        matches!(&local.status, PhaseStatus::Skipped { reason } if reason.contains("external"))
    );
    assert!(!node
        .files
        .exists(&NodePaths::manifest("etcd"))
        .expect("exists"));
}

#[test]
fn patches_from_the_configured_directory_change_the_manifests() {
    let node = Node::new();
    node.files
        .write_atomic(
            Path::new("/etc/bosun/patches/kube-scheduler+json.yaml"),
            b"- op: add\n  path: /metadata/labels/patched\n  value: \"yes\"\n",
            0o644,
        )
        .expect("write");
    let data = data(&CONFIG.replace(
        "nodeRegistration:\n",
        "patches:\n  directory: /etc/bosun/patches\nnodeRegistration:\n",
    ));
    run(
        &workflow(),
        &data,
        &node.host(),
        &RecordingSink::default(),
        &RunOptions::default(),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let scheduler = String::from_utf8(
        node.files
            .read(&NodePaths::manifest("kube-scheduler"))
            .expect("read")
            .expect("exists"),
    )
    .expect("utf-8");
    assert!(scheduler.contains("patched: \"yes\""), "{scheduler}");
}

#[test]
fn a_template_override_with_an_unknown_variable_fails_naming_template_and_variable() {
    let node = Node::new();
    node.files
        .write_atomic(
            Path::new("/etc/bosun/templates/crictl.yaml"),
            b"runtime-endpoint: {{ sock }}\n",
            0o644,
        )
        .expect("write");
    let mut data = data(CONFIG);
    data.templates_dir = Some(PathBuf::from("/etc/bosun/templates"));
    let error = run(
        &workflow(),
        &data,
        &node.host(),
        &RecordingSink::default(),
        &RunOptions::default(),
    )
    .expect_err("bad template");
    let text = error.to_string();
    assert!(text.contains("crictl.yaml"), "{text}");
    assert!(text.contains("sock"), "{text}");
    // Everything is rendered before anything is written.
    assert!(!node
        .files
        .exists(Path::new(runtime::CONTAINERD_CONFIG))
        .expect("exists"));
}
