use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::*;
use crate::engine::event::{Event, EventSink};
use crate::engine::{run, RunOptions};
use crate::etcd::{Alarm, EndpointStatus, Member};
use crate::host::memory::{MemoryCommands, MemoryFiles, MemoryServices};
use crate::host::{FixedClock, Host};

const ETCD_MANIFEST: &str = "apiVersion: v1
kind: Pod
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.0.1:2379
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://10.0.0.1:2380
    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.1:2379
    - --name=cp-1
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
";

struct Node {
    files: MemoryFiles,
    commands: MemoryCommands,
    services: MemoryServices,
}

impl Node {
    fn new() -> Node {
        Node {
            files: MemoryFiles::default(),
            commands: MemoryCommands::default(),
            services: MemoryServices::default(),
        }
    }

    fn write(&self, path: &str, contents: &str) {
        self.files
            .write_atomic(Path::new(path), contents.as_bytes(), 0o600)
            .expect("write");
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

    fn control_plane() -> Node {
        let node = Node::new();
        node.write("/etc/kubernetes/manifests/etcd.yaml", ETCD_MANIFEST);
        node.write(
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "    - --client-ca-file=/etc/kubernetes/pki/ca.crt\n    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt\n",
        );
        for file in [
            "/etc/kubernetes/pki/ca.crt",
            "/etc/kubernetes/pki/etcd/ca.crt",
            "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
            "/etc/kubernetes/pki/etcd/healthcheck-client.key",
            "/etc/kubernetes/admin.conf",
            "/var/lib/etcd/member/snap/db",
            "/var/lib/kubelet/config.yaml",
            "/etc/kubernetes/keep-me.txt",
        ] {
            node.write(file, "x");
        }
        node.write(
            "/var/lib/kubelet/kubeadm-flags.env",
            "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock --pod-infra-container-image=pause\"\n",
        );
        node
    }

    fn exists(&self, path: &str) -> bool {
        self.files.exists(Path::new(path)).expect("exists")
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl EventSink for Collect {
    fn emit(&self, event: Event) {
        let text = match event {
            Event::Message { phase, text, .. } => format!("[{phase}] {text}"),
            Event::Artefact {
                phase,
                artefact,
                outcome,
                ..
            } => format!("[{phase}] {outcome} {artefact}"),
            Event::PhaseSkipped { phase, reason } => format!("[{phase}] skipped: {reason}"),
            _ => return,
        };
        self.0.lock().expect("lock").push(text);
    }
}

impl Collect {
    fn text(&self) -> String {
        self.0.lock().expect("lock").join("\n")
    }
}

/// An etcd cluster in memory: its members, with every member healthy.
#[derive(Clone, Default)]
struct FakeEtcd {
    members: Arc<Mutex<Vec<Member>>>,
}

impl FakeEtcd {
    fn with(names: &[(&str, &str)]) -> FakeEtcd {
        let members = names
            .iter()
            .enumerate()
            .map(|(index, (name, peer))| Member {
                id: index as u64 + 1,
                name: (*name).to_owned(),
                peer_urls: vec![(*peer).to_owned()],
                client_urls: vec![format!("https://{name}:2379")],
                is_learner: false,
            })
            .collect();
        FakeEtcd {
            members: Arc::new(Mutex::new(members)),
        }
    }

    fn names(&self) -> Vec<String> {
        self.members
            .lock()
            .expect("lock")
            .iter()
            .map(|member| member.name.clone())
            .collect()
    }
}

impl EtcdClient for FakeEtcd {
    fn endpoints(&self) -> Vec<String> {
        vec!["https://127.0.0.1:2379".to_owned()]
    }
    fn snapshot(&self) -> Result<Box<dyn std::io::Read + Send + '_>, EtcdError> {
        Err(EtcdError {
            endpoint: "fake".to_owned(),
            message: "no snapshots here".to_owned(),
        })
    }
    fn status(&self, endpoint: &str) -> Result<EndpointStatus, EtcdError> {
        Ok(EndpointStatus {
            endpoint: endpoint.to_owned(),
            member_id: 0,
            leader: 1,
            version: "3.6.0".to_owned(),
            db_size: 1,
            db_size_in_use: 1,
            raft_term: 1,
            raft_index: 1,
            revision: 1,
            is_learner: false,
            errors: Vec::new(),
        })
    }
    fn health(&self, _endpoint: &str) -> Result<(), EtcdError> {
        Ok(())
    }
    fn members(&self) -> Result<Vec<Member>, EtcdError> {
        Ok(self.members.lock().expect("lock").clone())
    }
    fn remove_member(&self, id: u64) -> Result<(), EtcdError> {
        self.members
            .lock()
            .expect("lock")
            .retain(|member| member.id != id);
        Ok(())
    }
    fn add_member(&self, _peer_urls: &[String]) -> Result<(Member, Vec<Member>), EtcdError> {
        unreachable!("reset never adds members")
    }
    fn alarms(&self) -> Result<Vec<Alarm>, EtcdError> {
        Ok(Vec::new())
    }
    fn defragment(&self, _endpoint: &str) -> Result<(), EtcdError> {
        Ok(())
    }
}

/// Connects to the fake cluster, or fails like an unreachable endpoint when it is `None`.
struct Connector(Option<FakeEtcd>);

impl EtcdConnector for Connector {
    fn connect(&self, connection: &EtcdConnection) -> Result<Box<dyn EtcdClient>, EtcdError> {
        match &self.0 {
            Some(etcd) => Ok(Box::new(etcd.clone())),
            None => Err(EtcdError {
                endpoint: connection.endpoints.join(","),
                message: "connection refused".to_owned(),
            }),
        }
    }
}

fn data(node: &Node, etcd: Option<FakeEtcd>) -> ResetData {
    let survey = survey(&node.files, Path::new(DEFAULT_ETCD_DATA_DIR)).expect("survey");
    let mut data = ResetData::new(survey);
    data.confirmation = Confirmation::Forced;
    data.etcd = Some(Arc::new(Connector(etcd)));
    data
}

fn reset(node: &Node, data: &ResetData, skip: &[&str]) -> (Result<(), String>, String) {
    let sink = Collect::default();
    let options = RunOptions {
        target: None,
        skip: skip.iter().map(|name| (*name).to_owned()).collect(),
    };
    let result = run(&workflow(), data, &node.host(), &sink, &options)
        .map(|_| ())
        .map_err(|error| error.to_string());
    (result, sink.text())
}

#[test]
fn the_survey_tells_a_stacked_control_plane_from_a_worker() {
    let node = Node::control_plane();
    let found = survey(&node.files, Path::new(DEFAULT_ETCD_DATA_DIR)).expect("survey");
    assert_eq!(found.kind, NodeKind::ControlPlaneStackedEtcd);
    let member = found.etcd_member.expect("member");
    assert_eq!(member.name, "cp-1");
    assert_eq!(member.peer_urls, ["https://10.0.0.1:2380"]);
    assert_eq!(member.endpoints[0], "https://127.0.0.1:2379");
    assert_eq!(
        found.cri_socket_from_kubelet.as_deref(),
        Some("unix:///run/containerd/containerd.sock")
    );
    assert_eq!(
        found.certificates_dir_from_manifest,
        Some(PathBuf::from("/etc/kubernetes/pki"))
    );

    let worker = Node::new();
    worker.write("/etc/kubernetes/kubelet.conf", "x");
    let found = survey(&worker.files, Path::new(DEFAULT_ETCD_DATA_DIR)).expect("survey");
    assert_eq!(found.kind, NodeKind::Worker);
    assert!(found.etcd_member.is_none());
    assert_eq!(
        survey(&Node::new().files, Path::new("/var/lib/etcd"))
            .expect("survey")
            .kind,
        NodeKind::Clean
    );
}

#[test]
fn a_control_plane_reset_removes_its_member_and_its_files_and_keeps_the_rest() {
    let node = Node::control_plane();
    node.commands.respond("ctr", 0, "");
    let etcd = FakeEtcd::with(&[
        ("cp-1", "https://10.0.0.1:2380"),
        ("cp-2", "https://10.0.0.2:2380"),
    ]);
    let data = data(&node, Some(etcd.clone()));
    let (result, log) = reset(&node, &data, &[]);
    result.expect("reset");
    assert_eq!(etcd.names(), ["cp-2"], "{log}");
    for gone in [
        "/etc/kubernetes/manifests/etcd.yaml",
        "/etc/kubernetes/pki/ca.crt",
        "/etc/kubernetes/pki/etcd",
        "/etc/kubernetes/admin.conf",
        "/var/lib/etcd/member",
        "/var/lib/kubelet/config.yaml",
    ] {
        assert!(!node.exists(gone), "{gone} is still there\n{log}");
    }
    assert!(node.exists("/etc/kubernetes/keep-me.txt"), "{log}");
    assert!(
        node.exists("/etc/kubernetes/pki"),
        "the directory itself stays"
    );
    assert!(log.contains("removed etcd member cp-1 (1)"), "{log}");
}

#[test]
fn the_only_member_is_not_removed_and_an_unreachable_etcd_is_skipped() {
    let node = Node::control_plane();
    node.commands.respond("ctr", 0, "");
    let alone = FakeEtcd::with(&[("cp-1", "https://10.0.0.1:2380")]);
    let (result, log) = reset(&node, &data(&node, Some(alone.clone())), &[]);
    result.expect("reset");
    assert_eq!(alone.names(), ["cp-1"]);
    assert!(log.contains("is the only voting member"), "{log}");

    let node = Node::control_plane();
    node.commands.respond("ctr", 0, "");
    let (result, log) = reset(&node, &data(&node, None), &[]);
    result.expect("an unreachable etcd does not stop the reset");
    assert!(log.contains("etcd is not reachable"), "{log}");
    assert!(log.contains("bosun etcd member remove cp-1"), "{log}");
    assert!(!node.exists("/var/lib/etcd/member"), "{log}");
}

#[test]
fn without_confirmation_nothing_changes() {
    let node = Node::control_plane();
    let before = node.files.snapshot();
    let mut data = data(&node, None);
    data.confirmation = Confirmation::NotInteractive;
    let (result, _) = reset(&node, &data, &[]);
    let error = result.expect_err("refused");
    assert!(error.contains("stdin is not a terminal"), "{error}");
    assert_eq!(before, node.files.snapshot());
}

#[test]
fn containerd_containers_are_stopped_and_removed() {
    let node = Node::control_plane();
    node.commands.respond("ctr", 0, "abc\ndef\n");
    let data = data(&node, None);
    let (result, log) = reset(&node, &data, &["remove-etcd-member"]);
    result.expect("reset");
    let commands = node.commands.log();
    let address = "--address /run/containerd/containerd.sock --namespace k8s.io";
    for expected in [
        format!("ctr {address} tasks delete --force abc"),
        format!("ctr {address} containers delete def"),
    ] {
        assert!(commands.contains(&expected), "{expected}\n{commands:#?}");
    }
    assert!(log.contains("removed container abc"), "{log}");
    assert!(
        log.contains("is not run by the memory service backend: restart it"),
        "{log}"
    );
}

#[test]
fn a_containerd_the_service_backend_runs_is_restarted_after_the_removal() {
    use crate::host::{CommandSpec, ServiceSpec, Services};
    let node = Node::control_plane();
    node.commands.respond("ctr", 0, "abc\n");
    let spec = ServiceSpec {
        name: "containerd".to_owned(),
        description: "containerd".to_owned(),
        command: CommandSpec::new("/usr/bin/containerd"),
        environment_files: Vec::new(),
        restart_after_seconds: 5,
    };
    node.services.install(&spec).expect("install");
    node.services.start("containerd").expect("start");
    let (result, log) = reset(&node, &data(&node, None), &["remove-etcd-member"]);
    result.expect("reset");
    assert!(
        log.contains("[cleanup-node/containers] updated service containerd"),
        "{log}"
    );
}

#[test]
fn a_worker_keeps_an_unrelated_var_lib_etcd() {
    let node = Node::new();
    node.write("/etc/kubernetes/kubelet.conf", "x");
    node.write("/var/lib/etcd/notes.txt", "not etcd's");
    node.commands.respond("ctr", 0, "");
    let (result, log) = reset(&node, &data(&node, None), &[]);
    result.expect("reset");
    assert!(log.contains("[remove-etcd-member] skipped"), "{log}");
    assert!(node.exists("/var/lib/etcd/notes.txt"), "{log}");
    assert!(!node.exists("/etc/kubernetes/kubelet.conf"), "{log}");
}

#[test]
fn a_certificates_dir_like_etc_is_refused() {
    let node = Node::control_plane();
    node.commands.respond("ctr", 0, "");
    let mut data = data(&node, None);
    data.certificates_dir = PathBuf::from("/etc");
    let (result, _) = reset(&node, &data, &["remove-etcd-member"]);
    let error = result.expect_err("refused");
    assert!(error.contains("refusing to empty /etc"), "{error}");
}

#[test]
fn unmount_flags_are_kubeadms_names() {
    let flags =
        unmount_flags(&["MNT_DETACH".to_owned(), "UMOUNT_NOFOLLOW".to_owned()]).expect("flags");
    assert!(flags.detach && flags.no_follow && !flags.force && !flags.expire);
    assert!(unmount_flags(&["MNT_LAZY".to_owned()])
        .expect_err("unknown")
        .contains("MNT_LAZY"));
}

#[test]
fn every_need_is_made_by_an_earlier_phase() {
    let node = Node::control_plane();
    let violations = workflow().ordering_violations(&data(&node, None));
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn a_system_ca_bundle_in_the_api_server_manifest_is_not_taken_for_the_pki() {
    let node = Node::new();
    node.write(
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "    - --client-ca-file=/etc/ssl/certs/ca.crt\n    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt\n",
    );
    let found = survey(&node.files, Path::new(DEFAULT_ETCD_DATA_DIR)).expect("survey");
    assert_eq!(found.certificates_dir_from_manifest, None);
    assert_eq!(
        ResetData::new(found).certificates_dir,
        PathBuf::from(DEFAULT_CERTIFICATES_DIR)
    );
}

#[test]
fn credentials_without_manifests_are_a_partly_reset_control_plane() {
    let node = Node::new();
    node.write("/etc/kubernetes/kubelet.conf", "x");
    node.write("/etc/kubernetes/pki/ca.key", "x");
    let found = survey(&node.files, Path::new(DEFAULT_ETCD_DATA_DIR)).expect("survey");
    assert_eq!(found.kind, NodeKind::ControlPlanePartlyReset);
}
