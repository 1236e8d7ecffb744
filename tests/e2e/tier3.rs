//! Tier 3 (docs/testing.md): several real nodes on one machine. Each is a [`Node`] of its own (namespaces, per-node
//! directories, its own containerd, kubelet and cgroup root) connected to the others through the bridge of a
//! [`Network`]; `bosun init` makes the first a control plane and `bosun join`, with the command init printed,
//! makes the second a worker.

use std::time::Instant;

use crate::harness::binaries::Binaries;
use crate::harness::network::{self, Network};
use crate::harness::node::{Node, NodeNetwork};
use crate::harness::wait_until;
use crate::tier2::{
    assert_ok, bosun, bridge_conflist, kubectl_json, node_condition, node_config, prepare_runtime,
    running_pods, STEP_TIMEOUT, TIER2, TOKEN,
};

/// A node on `network` at `10.251.0.<host>`.
fn node_on(network: &Network, name: &str, host: u8) -> Node {
    let address = network::address(host);
    let node = Node::start(
        name,
        NodeNetwork::External {
            address: address.clone(),
        },
    );
    network.attach(node.pid(), &address);
    node
}

/// The CA pin in the join command `bosun init` printed on stdout.
fn ca_hash(init_stdout: &str) -> String {
    init_stdout
        .split_whitespace()
        .find(|word| word.starts_with("sha256:") && word.len() == 7 + 64)
        .unwrap_or_else(|| panic!("no CA hash in init's join command:\n{init_stdout}"))
        .to_owned()
}

/// The JoinConfiguration a worker's administrator writes: the discovery from the printed join command, the node's
/// address for its kubelet, and a patches directory for this node's own kubelet settings.
fn join_config(control_plane: &Node, worker: &Node, hash: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: {}:6443
    token: {TOKEN}
    caCertHashes:
    - {hash}
nodeRegistration:
  name: {}
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - name: node-ip
    value: {}
patches:
  directory: /etc/bosun-tier3/patches
",
        control_plane.address(),
        worker.name(),
        worker.address()
    )
}

/// Each node's pod subnet as the controller manager allocated it, in a conflist, with routes to the other nodes'.
fn configure_pod_network(nodes: &[&Node], binaries: &Binaries, control_plane: &Node) {
    let mut subnets = Vec::new();
    for node in nodes {
        let subnet = wait_until(
            &format!("the pod subnet of {}", node.name()),
            STEP_TIMEOUT,
            || {
                let object = kubectl_json(control_plane, binaries, &["get", "node", node.name()])?;
                object["spec"]["podCIDR"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "no podCIDR yet".to_owned())
            },
        );
        subnets.push(subnet);
    }
    for (index, node) in nodes.iter().enumerate() {
        node.write(
            "/etc/cni/net.d/10-bridge.conflist",
            bridge_conflist(&subnets[index]).as_bytes(),
        );
        for (other, subnet) in nodes.iter().zip(&subnets) {
            if other.name() != node.name() {
                let route =
                    node.output("ip", &["route", "replace", subnet, "via", other.address()]);
                assert_ok(&format!("a route to {subnet} on {}", node.name()), &route);
            }
        }
    }
}

#[test]
fn a_worker_joins_with_bosun_join() {
    let Some(binaries) = Binaries::require("tier3::a_worker_joins_with_bosun_join", TIER2) else {
        return;
    };
    let version = crate::tier1::built_version(&binaries);
    let started = Instant::now();
    let network = Network::new();
    let control_plane = node_on(&network, "tier3-cp", 10);
    let worker = node_on(&network, "tier3-worker", 11);
    let config_path = "/etc/bosun-tier3/kubeadm.yaml";
    for node in [&control_plane, &worker] {
        node.write(config_path, node_config(&version, node).as_bytes());
        prepare_runtime(node, &binaries, config_path);
    }
    let runtimes_ready = started.elapsed();

    let init = bosun(
        &control_plane,
        &binaries,
        &[
            "init",
            "--config",
            config_path,
            "--ignore-preflight-errors=SystemVerification",
        ],
    );
    assert_ok("bosun init on the control plane", &init);
    let init_done = started.elapsed();

    // The worker joins with the pin init printed, and its own cgroup root through a kubelet patch (the cluster's
    // KubeletConfiguration carries the control plane's).
    let hash = ca_hash(&String::from_utf8_lossy(&init.stdout));
    let join_path = "/etc/bosun-tier3/join.yaml";
    worker.write(
        join_path,
        join_config(&control_plane, &worker, &hash).as_bytes(),
    );
    worker.write(
        "/etc/bosun-tier3/patches/kubeletconfiguration+strategic.yaml",
        format!("cgroupRoot: {}\n", worker.cgroup_root()).as_bytes(),
    );
    let join = bosun(
        &worker,
        &binaries,
        &[
            "join",
            "--config",
            join_path,
            "--ignore-preflight-errors=SystemVerification",
        ],
    );
    assert_ok("bosun join on the worker", &join);
    let join_done = started.elapsed();
    let kubelet_config = std::fs::read_to_string(worker.path("/var/lib/kubelet/config.yaml"))
        .expect("the worker's kubelet config");
    assert!(
        kubelet_config.contains(&format!("cgroupRoot: {}", worker.cgroup_root())),
        "the worker's kubelet patch was not applied:\n{kubelet_config}"
    );

    // Both nodes register; with the pod network configured both become Ready, and kube-proxy runs on each.
    configure_pod_network(&[&control_plane, &worker], &binaries, &control_plane);
    for node in [&control_plane, &worker] {
        wait_until(
            &format!("node {} to be Ready", node.name()),
            STEP_TIMEOUT,
            || {
                let object =
                    kubectl_json(&control_plane, &binaries, &["get", "node", node.name()])?;
                let ready = node_condition(&object, "Ready");
                (ready == "True").then_some(()).ok_or(ready)
            },
        );
    }
    let worker_object =
        kubectl_json(&control_plane, &binaries, &["get", "node", worker.name()]).expect("worker");
    assert!(
        worker_object["metadata"]["labels"]
            .get("node-role.kubernetes.io/control-plane")
            .is_none(),
        "the worker is marked as a control plane: {}",
        worker_object["metadata"]["labels"]
    );
    let nodes_ready = started.elapsed();
    wait_until("kube-proxy on both nodes", STEP_TIMEOUT, || {
        running_pods(&control_plane, &binaries, "kube-proxy-", 2)
    });
    wait_until("the CoreDNS pods", STEP_TIMEOUT, || {
        running_pods(&control_plane, &binaries, "coredns-", 2)
    });
    eprintln!(
        "tier 3: runtimes and images {runtimes_ready:?}, init {init_done:?}, join {join_done:?}, both nodes Ready \
         {nodes_ready:?}, kube-proxy on both {:?}",
        started.elapsed()
    );
}
