//! Tier 2 (docs/testing.md), first step: a node's own containerd in a sandbox, with the locally built images that
//! kubeadm-style manifests name, runs them with runc; kube-proxy's image changes iptables only in the node.

use std::process::Command;

use crate::harness::binaries::Binaries;
use crate::harness::containerd::Containerd;
use crate::harness::sandbox::Sandbox;

#[test]
fn a_node_containerd_runs_the_built_images() {
    let Some(binaries) = Binaries::require(
        "tier2::a_node_containerd_runs_the_built_images",
        &["kubeadm", "kube-apiserver", "kube-proxy", "etcd", "coredns"],
    ) else {
        return;
    };
    let version = crate::tier1::built_version(&binaries);
    let listed = Command::new(binaries.path("kubeadm"))
        .args(["config", "images", "list", "--kubernetes-version", &version])
        .output()
        .expect("kubeadm config images list");
    let images: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let pause = images
        .iter()
        .find(|image| image.contains("/pause:"))
        .expect("kubeadm names a pause image");
    let proxy = images
        .iter()
        .find(|image| image.contains("/kube-proxy:"))
        .expect("kubeadm names a kube-proxy image");

    let sandbox = Sandbox::new("tier2-containerd");
    let containerd = Containerd::start(&sandbox, pause);
    let bin = binaries.path("kubeadm");
    containerd.import_images(bin.parent().expect("bin directory"));
    let ctr = |arguments: &[&str]| containerd.ctr(arguments);

    let present = ctr(&["images", "ls", "--quiet"]);
    let present = String::from_utf8_lossy(&present.stdout);
    for image in &images {
        assert!(
            present.lines().any(|line| line == image),
            "{image} is not in the node's containerd:\n{present}"
        );
    }

    let version_output = ctr(&[
        "run",
        "--rm",
        "--net-host",
        proxy,
        "tier2-version",
        "kube-proxy",
        "--version",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&version_output.stdout).trim(),
        format!("Kubernetes {version}"),
        "{}",
        String::from_utf8_lossy(&version_output.stderr)
    );

    let chain = ctr(&[
        "run",
        "--rm",
        "--net-host",
        "--privileged",
        proxy,
        "tier2-iptables",
        "iptables",
        "-t",
        "nat",
        "-N",
        "BOSUN-TIER2",
    ]);
    assert!(
        chain.status.success(),
        "iptables in the kube-proxy image failed: {}",
        String::from_utf8_lossy(&chain.stderr)
    );
    let in_node = sandbox.output("iptables-save", &["-t", "nat"]);
    assert!(
        String::from_utf8_lossy(&in_node.stdout).contains(":BOSUN-TIER2"),
        "the chain is not in the node's network namespace"
    );
    let on_host = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .expect("iptables-save on the host");
    assert!(
        !String::from_utf8_lossy(&on_host.stdout).contains(":BOSUN-TIER2"),
        "the kube-proxy image changed the host's iptables"
    );
}
