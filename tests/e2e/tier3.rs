//! Tier 3 (docs/testing.md): several real nodes on one machine. Each is a [`Node`] of its own (namespaces, per-node
//! directories, its own containerd, kubelet and cgroup root) connected to the others through the bridge of a
//! [`Network`]; `bosun init` makes the first a control plane and `bosun join`, with what init printed, makes the
//! second a worker and the third a second control-plane node (a stacked etcd member).

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

/// The certificate key in the control-plane join command `bosun init --upload-certs` printed on stdout.
fn certificate_key(init_stdout: &str) -> String {
    let words: Vec<&str> = init_stdout.split_whitespace().collect();
    words
        .windows(2)
        .find(|pair| pair[0] == "--certificate-key")
        .map(|pair| pair[1].to_owned())
        .unwrap_or_else(|| panic!("no certificate key in init's join command:\n{init_stdout}"))
}

/// Writes a node's JoinConfiguration and its kubelet patch (its own cgroup root; the cluster's
/// KubeletConfiguration carries the first node's), and runs `bosun join` with `extra` arguments.
fn join(
    node: &Node,
    control_plane: &Node,
    binaries: &Binaries,
    hash: &str,
    extra: &[&str],
) -> std::process::Output {
    let join_path = "/etc/bosun-tier3/join.yaml";
    node.write(join_path, join_config(control_plane, node, hash).as_bytes());
    node.write(
        "/etc/bosun-tier3/patches/kubeletconfiguration+strategic.yaml",
        format!("cgroupRoot: {}\n", node.cgroup_root()).as_bytes(),
    );
    let mut arguments = vec![
        "join",
        "--config",
        join_path,
        "--ignore-preflight-errors=SystemVerification",
    ];
    arguments.extend_from_slice(extra);
    bosun(node, binaries, &arguments)
}

/// The members of the etcd cluster as the first control plane's etcd lists them: (name, is a learner).
fn etcd_members(control_plane: &Node, binaries: &Binaries) -> Result<Vec<(String, bool)>, String> {
    let output = control_plane.output(
        binaries.path("etcdctl"),
        &[
            "--endpoints=https://127.0.0.1:2379",
            "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
            "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
            "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
            "member",
            "list",
            "--write-out=json",
        ],
    );
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    let list: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|error| error.to_string())?;
    Ok(list["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|member| {
            (
                member["name"].as_str().unwrap_or_default().to_owned(),
                member["isLearner"].as_bool().unwrap_or(false),
            )
        })
        .collect())
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
fn a_worker_and_a_control_plane_node_join_with_bosun_join() {
    let Some(binaries) = Binaries::require(
        "tier3::a_worker_and_a_control_plane_node_join_with_bosun_join",
        &[TIER2, &["etcdctl"]].concat(),
    ) else {
        return;
    };
    let version = crate::tier1::built_version(&binaries);
    let started = Instant::now();
    let network = Network::new();
    let control_plane = node_on(&network, "tier3-cp", 10);
    let worker = node_on(&network, "tier3-worker", 11);
    let second = node_on(&network, "tier3-cp2", 12);
    let config_path = "/etc/bosun-tier3/kubeadm.yaml";
    for node in [&control_plane, &worker, &second] {
        // A cluster that other control-plane nodes may join has a stable controlPlaneEndpoint (here the first
        // node's address; a load balancer's in production).
        let config = node_config(&version, node).replace(
            "kind: ClusterConfiguration\n",
            &format!(
                "kind: ClusterConfiguration\ncontrolPlaneEndpoint: {}:6443\n",
                control_plane.address()
            ),
        );
        node.write(config_path, config.as_bytes());
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
            "--upload-certs",
            "--ignore-preflight-errors=SystemVerification",
        ],
    );
    assert_ok("bosun init on the control plane", &init);
    let init_done = started.elapsed();
    let printed = String::from_utf8_lossy(&init.stdout).into_owned();
    let hash = ca_hash(&printed);

    let joined = join(&worker, &control_plane, &binaries, &hash, &[]);
    assert_ok("bosun join on the worker", &joined);
    let worker_joined = started.elapsed();
    let kubelet_config = std::fs::read_to_string(worker.path("/var/lib/kubelet/config.yaml"))
        .expect("the worker's kubelet config");
    assert!(
        kubelet_config.contains(&format!("cgroupRoot: {}", worker.cgroup_root())),
        "the worker's kubelet patch was not applied:\n{kubelet_config}"
    );

    let key = certificate_key(&printed);
    let joined = join(
        &second,
        &control_plane,
        &binaries,
        &hash,
        &[
            "--control-plane",
            "--certificate-key",
            &key,
            "--apiserver-advertise-address",
            second.address(),
        ],
    );
    assert_ok(
        "bosun join --control-plane on the second control plane",
        &joined,
    );
    let second_joined = started.elapsed();
    let members = wait_until("two voting etcd members", STEP_TIMEOUT, || {
        let members = etcd_members(&control_plane, &binaries)?;
        (members.len() == 2 && members.iter().all(|(_, learner)| !learner))
            .then(|| members.clone())
            .ok_or_else(|| format!("{members:?}"))
    });
    assert!(
        members.iter().any(|(name, _)| name == second.name()),
        "{members:?}"
    );

    // Every node registers; with the pod network configured all become Ready, and kube-proxy runs on each.
    let nodes = [&control_plane, &worker, &second];
    configure_pod_network(&nodes, &binaries, &control_plane);
    for node in nodes {
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
    for (node, is_control_plane) in [(&worker, false), (&second, true)] {
        let object =
            kubectl_json(&control_plane, &binaries, &["get", "node", node.name()]).expect("node");
        assert_eq!(
            object["metadata"]["labels"]
                .get("node-role.kubernetes.io/control-plane")
                .is_some(),
            is_control_plane,
            "{}: {}",
            node.name(),
            object["metadata"]["labels"]
        );
    }
    // The second control plane's own API server serves, with the cluster's data.
    let server = format!("--server=https://{}:6443", second.address());
    wait_until(
        "the second control plane's API server",
        STEP_TIMEOUT,
        || {
            let listed = kubectl_json(&second, &binaries, &[&server, "get", "nodes"])?;
            let count = listed["items"].as_array().map(Vec::len).unwrap_or(0);
            if count == 3 {
                Ok(())
            } else {
                let readyz = second.output(
                    binaries.path("kubectl"),
                    &[
                        "--kubeconfig=/etc/kubernetes/admin.conf",
                        &server,
                        "get",
                        "--raw=/readyz?verbose",
                    ],
                );
                Err(format!(
                    "{count} nodes; readyz: {}",
                    String::from_utf8_lossy(&readyz.stdout)
                ))
            }
        },
    );
    let nodes_ready = started.elapsed();
    wait_until("kube-proxy on every node", STEP_TIMEOUT, || {
        running_pods(&control_plane, &binaries, "kube-proxy-", 3)
    });
    wait_until("the CoreDNS pods", STEP_TIMEOUT, || {
        running_pods(&control_plane, &binaries, "coredns-", 2)
    });
    // Joining an already joined node again is refused before anything changes (issue 6: an already-joined node
    // is a clear preflight error, as in kubeadm); its own kubelet's port is only a warning.
    let kubelet_conf =
        std::fs::read(worker.path("/etc/kubernetes/kubelet.conf")).expect("kubelet.conf");
    let again = join(&worker, &control_plane, &binaries, &hash, &[]);
    let again_text = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success()
            && again_text.contains("this node has already joined a cluster")
            && again_text.contains("[WARNING Port-10250]"),
        "the second join was not refused as an already joined node:\n{again_text}"
    );
    assert_eq!(
        std::fs::read(worker.path("/etc/kubernetes/kubelet.conf")).expect("kubelet.conf"),
        kubelet_conf,
        "the refused join changed kubelet.conf"
    );
    eprintln!(
        "tier 3: runtimes and images {runtimes_ready:?}, init {init_done:?}, worker joined {worker_joined:?}, \
         control plane joined {second_joined:?}, three nodes Ready {nodes_ready:?}, kube-proxy on all {:?}",
        started.elapsed()
    );
}
