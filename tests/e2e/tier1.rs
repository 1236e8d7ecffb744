//! Tier 1 (docs/testing.md): a real control plane — etcd, kube-apiserver, kube-controller-manager and
//! kube-scheduler — run as processes in a sandbox from the static-pod manifests, certificates and kubeconfigs of a
//! node root, and driven with kubectl.
//!
//! `kubeadm_files_run_as_a_control_plane` runs real kubeadm's output: it proves the runner itself (and is the
//! reference half of the differential test). Tests of bosun's own files run the same runner on a root written by
//! `bosun init`.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::harness::binaries::{Binaries, TIER1};
use crate::harness::sandbox::{Sandbox, NODE_IP};
use crate::harness::static_pods::StaticPods;
use crate::harness::wait_until;
use crate::support::TempRoot;

/// How long a cold control plane may take to become ready on two busy cores.
const READY_TIMEOUT: Duration = Duration::from_secs(240);

/// The Kubernetes version the built binaries report (`kubeadm version -o short`).
pub fn built_version(binaries: &Binaries) -> String {
    let output = std::process::Command::new(binaries.path("kubeadm"))
        .args(["version", "-o", "short"])
        .output()
        .expect("run kubeadm version");
    assert!(output.status.success(), "kubeadm version failed");
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        version.starts_with("v1.")
            && !version.contains("placeholder")
            && !version.starts_with("v0"),
        "kubeadm reports {version:?}: the build is not version-stamped"
    );
    version
}

/// A kubeadm configuration for a single control-plane node in the sandbox.
pub fn kubeadm_config(version: &str, node_name: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\n\
         kind: InitConfiguration\n\
         localAPIEndpoint:\n  advertiseAddress: {NODE_IP}\n  bindPort: 6443\n\
         nodeRegistration:\n  name: {node_name}\n  criSocket: unix:///run/containerd/containerd.sock\n\
         ---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\n\
         kind: ClusterConfiguration\n\
         kubernetesVersion: {version}\n\
         clusterName: kubernetes\n\
         networking:\n  serviceSubnet: 10.96.0.0/12\n  podSubnet: 10.244.0.0/16\n  dnsDomain: cluster.local\n"
    )
}

/// Has real kubeadm write a control-plane node root: certificates, kubeconfigs, etcd and control-plane manifests.
pub fn kubeadm_writes_root(sandbox: &Sandbox, binaries: &Binaries, root: &TempRoot) {
    let version = built_version(binaries);
    // kubeadm chroots into --rootfs before it reads --config, so the file lives inside the root.
    root.write(
        "/kubeadm.yaml",
        kubeadm_config(&version, sandbox.hostname()).as_bytes(),
    );
    let kubeadm = binaries.path("kubeadm");
    let root_path = root.path().to_str().expect("utf-8 root");
    for phase in [
        &["certs", "all"][..],
        &["kubeconfig", "all"],
        &["etcd", "local"],
        &["control-plane", "all"],
    ] {
        let mut arguments = vec!["init", "phase"];
        arguments.extend_from_slice(phase);
        arguments.extend_from_slice(&["--config", "/kubeadm.yaml", "--rootfs", root_path]);
        let output = sandbox.output(&kubeadm, &arguments);
        assert_ok(&format!("kubeadm {}", arguments.join(" ")), &output);
    }
}

#[track_caller]
fn assert_ok(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs kubectl in the sandbox with the root's `/etc/kubernetes/<kubeconfig>`.
pub fn kubectl_as(
    sandbox: &Sandbox,
    binaries: &Binaries,
    root: &Path,
    kubeconfig: &str,
    arguments: &[&str],
) -> Output {
    let kubeconfig = root.join("etc/kubernetes").join(kubeconfig);
    let mut all = vec![
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--request-timeout=10s",
    ];
    all.extend_from_slice(arguments);
    sandbox.output(binaries.path("kubectl"), &all)
}

/// Runs kubectl in the sandbox with the root's admin.conf.
pub fn kubectl(sandbox: &Sandbox, binaries: &Binaries, root: &Path, arguments: &[&str]) -> Output {
    kubectl_as(sandbox, binaries, root, "admin.conf", arguments)
}

/// What every tier-1 control plane must do once its pods are ready: serve kubectl with admin.conf, and run the
/// controller manager and scheduler, which prove their own kubeconfigs by taking their leader-election leases.
pub fn assert_control_plane_works(sandbox: &Sandbox, binaries: &Binaries, root: &Path) {
    assert_control_plane_works_as(sandbox, binaries, root, "admin.conf");
}

/// [`assert_control_plane_works`] with another kubeconfig of the root (`super-admin.conf`).
pub fn assert_control_plane_works_as(
    sandbox: &Sandbox,
    binaries: &Binaries,
    root: &Path,
    kubeconfig: &str,
) {
    let kubectl = |sandbox: &Sandbox, binaries: &Binaries, root: &Path, arguments: &[&str]| {
        kubectl_as(sandbox, binaries, root, kubeconfig, arguments)
    };
    let readyz = kubectl(sandbox, binaries, root, &["get", "--raw", "/readyz"]);
    assert_ok("kubectl get --raw /readyz", &readyz);
    assert_eq!(String::from_utf8_lossy(&readyz.stdout).trim(), "ok");

    let version = kubectl(sandbox, binaries, root, &["version", "-o", "json"]);
    assert_ok("kubectl version", &version);
    let version: serde_json::Value = serde_json::from_slice(&version.stdout).expect("version JSON");
    assert_eq!(
        version["serverVersion"]["gitVersion"], version["clientVersion"]["gitVersion"],
        "the apiserver and kubectl were built from one version"
    );

    for lease in ["kube-controller-manager", "kube-scheduler"] {
        wait_until(
            &format!("the {lease} leader-election lease"),
            READY_TIMEOUT,
            || {
                let output = kubectl(
                    sandbox,
                    binaries,
                    root,
                    &[
                        "get",
                        "lease",
                        "--namespace=kube-system",
                        lease,
                        "--output=jsonpath={.spec.holderIdentity}",
                    ],
                );
                let holder = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                if output.status.success() && holder.starts_with(sandbox.hostname()) {
                    Ok(())
                } else {
                    Err(format!(
                        "holder {holder:?}, kubectl: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ))
                }
            },
        );
    }

    // The controller manager's service-account token controller works with the root's sa.key: the default
    // namespace gets its `default` service account.
    wait_until("the default service account", READY_TIMEOUT, || {
        let output = kubectl(
            sandbox,
            binaries,
            root,
            &["get", "serviceaccount", "default", "--namespace=default"],
        );
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    });
}

#[test]
fn kubeadm_files_run_as_a_control_plane() {
    let Some(binaries) = Binaries::require("tier1::kubeadm_files_run_as_a_control_plane", TIER1)
    else {
        return;
    };
    let root = TempRoot::new();
    let sandbox = Sandbox::new("tier1-kubeadm");
    kubeadm_writes_root(&sandbox, &binaries, &root);
    let mut pods = StaticPods::start(&sandbox, root.path(), &binaries);
    assert_eq!(
        pods.names(),
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler"
        ]
    );
    let started = std::time::Instant::now();
    pods.wait_ready(READY_TIMEOUT);
    eprintln!(
        "tier 1: kubeadm's control plane ready in {:?}",
        started.elapsed()
    );
    // `kubeadm init` binds admin.conf's group to cluster-admin through super-admin.conf in its kubeconfig phase;
    // the single phases run here do not, so do what it does.
    let binding = kubectl_as(
        &sandbox,
        &binaries,
        root.path(),
        "super-admin.conf",
        &[
            "create",
            "clusterrolebinding",
            "kubeadm:cluster-admins",
            "--clusterrole=cluster-admin",
            "--group=kubeadm:cluster-admins",
        ],
    );
    assert_ok(
        "kubectl create clusterrolebinding kubeadm:cluster-admins",
        &binding,
    );
    let can = kubectl(
        &sandbox,
        &binaries,
        root.path(),
        &["auth", "can-i", "*", "*"],
    );
    assert_eq!(
        String::from_utf8_lossy(&can.stdout).trim(),
        "yes",
        "admin.conf is a cluster admin once its group is bound"
    );
    assert_control_plane_works(&sandbox, &binaries, root.path());
    eprintln!(
        "tier 1: kubeadm's control plane checked in {:?}",
        started.elapsed()
    );
}

/// Has the real `bosun` binary write a control-plane node root from `config` (run in the sandbox, so the host facts
/// it gathers are the sandbox node's): the same phases as [`kubeadm_writes_root`].
pub fn bosun_writes_root(sandbox: &Sandbox, root: &TempRoot, config: &str) {
    root.write("/bosun.yaml", config.as_bytes());
    let config_path = root.join("/bosun.yaml");
    let root_path = root.path().to_str().expect("utf-8 root");
    for phase in ["certs", "kubeconfig", "etcd", "control-plane"] {
        let arguments = [
            "--root",
            root_path,
            "init",
            "phase",
            phase,
            "--config",
            config_path.to_str().expect("utf-8"),
        ];
        let output = sandbox.output(env!("CARGO_BIN_EXE_bosun"), &arguments);
        assert_ok(&format!("bosun {}", arguments.join(" ")), &output);
    }
}

#[test]
fn bosun_files_run_as_a_control_plane() {
    let Some(binaries) = Binaries::require("tier1::bosun_files_run_as_a_control_plane", TIER1)
    else {
        return;
    };
    let root = TempRoot::new();
    let sandbox = Sandbox::new("tier1-bosun");
    let version = built_version(&binaries);
    bosun_writes_root(
        &sandbox,
        &root,
        &kubeadm_config(&version, sandbox.hostname()),
    );
    let mut pods = StaticPods::start(&sandbox, root.path(), &binaries);
    assert_eq!(
        pods.names(),
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler"
        ]
    );
    let started = std::time::Instant::now();
    pods.wait_ready(READY_TIMEOUT);
    eprintln!(
        "tier 1: bosun's control plane ready in {:?}",
        started.elapsed()
    );
    // admin.conf's group is bound by bosun's cluster phases (tested in tests/integration/cluster.rs); the
    // certificates and kubeconfigs written here are proven through super-admin.conf and the components' own.
    assert_control_plane_works_as(&sandbox, &binaries, root.path(), "super-admin.conf");
    assert_every_org_is_a_group(&sandbox, &binaries, &root);
    eprintln!(
        "tier 1: bosun's control plane checked in {:?}",
        started.elapsed()
    );
}

/// Issue 3: `bosun kubeconfig user` with several `--org` gives a client certificate whose every organisation the real
/// kube-apiserver maps to a group (in the certificate's order, which is DER order, as kubeadm's).
fn assert_every_org_is_a_group(sandbox: &Sandbox, binaries: &Binaries, root: &TempRoot) {
    let root_path = root.path().to_str().expect("utf-8 root");
    let config = root.join("/bosun.yaml");
    let arguments = [
        "--root",
        root_path,
        "kubeconfig",
        "user",
        "--client-name",
        "alice",
        "--org",
        "zeta",
        "--org",
        "b",
        "--org",
        "alpha",
        "--config",
        config.to_str().expect("utf-8"),
    ];
    let user = sandbox.output(env!("CARGO_BIN_EXE_bosun"), &arguments);
    assert_ok("bosun kubeconfig user", &user);
    root.write("/etc/kubernetes/alice.conf", &user.stdout);
    let whoami = kubectl_as(
        sandbox,
        binaries,
        root.path(),
        "alice.conf",
        &["auth", "whoami", "-o", "json"],
    );
    assert_ok("kubectl auth whoami", &whoami);
    let review: serde_json::Value = serde_json::from_slice(&whoami.stdout).expect("JSON");
    assert_eq!(review["status"]["userInfo"]["username"], "alice");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["b", "zeta", "alpha", "system:authenticated"]),
        "{review}"
    );
}
