//! Tier 3 (docs/testing.md): several real nodes on one machine. Each is a [`Node`] of its own (namespaces, per-node
//! directories, its own containerd, kubelet and cgroup root) connected to the others through the bridge of a
//! [`Network`]; `bosun init` makes the first a control plane and `bosun join`, with what init printed, makes the
//! second a worker and the third a second control-plane node (a stacked etcd member).
//! On those three nodes a kube-proxy image change then rolls out node by node, `bosun addon rollback` restores it
//! the same way, and `--kube-proxy-max-unavailable 2` replaces two nodes at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    let joins_checked = started.elapsed();
    eprintln!(
        "tier 3: runtimes and images {runtimes_ready:?}, init {init_done:?}, worker joined {worker_joined:?}, \
         control plane joined {second_joined:?}, three nodes Ready {nodes_ready:?}, kube-proxy on all and the \
         re-join refused {joins_checked:?}"
    );

    kube_proxy_rolls_out_node_by_node(&nodes, &binaries, config_path);
    eprintln!(
        "tier 3: kube-proxy rollouts and rollback took {:?} (total {:?})",
        started.elapsed() - joins_checked,
        started.elapsed()
    );
}

/// One kube-proxy pod as the control plane lists it.
#[derive(Debug, Clone)]
struct ProxyPod {
    node: String,
    pod: String,
    image: String,
    /// Ready and not terminating.
    ready: bool,
}

/// The kube-proxy pods of the cluster.
fn kube_proxy_pods(control_plane: &Node, binaries: &Binaries) -> Result<Vec<ProxyPod>, String> {
    let pods = kubectl_json(
        control_plane,
        binaries,
        &[
            "get",
            "pods",
            "--namespace=kube-system",
            "--selector=k8s-app=kube-proxy",
        ],
    )?;
    Ok(pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pod| ProxyPod {
            node: pod["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            pod: pod["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            image: pod["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            ready: pod["metadata"]["deletionTimestamp"].is_null()
                && pod["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|condition| condition["type"] == "Ready" && condition["status"] == "True"),
        })
        .collect())
}

/// Runs `run` while a thread lists the kube-proxy pods again and again; returns its result and every listing.
fn watching_kube_proxy<T>(
    control_plane: &Node,
    binaries: &Binaries,
    run: impl FnOnce() -> T,
) -> (T, Vec<Vec<ProxyPod>>) {
    let stop = AtomicBool::new(false);
    // The first listing is taken before `run` starts: every pod in it is an old one.
    let first = kube_proxy_pods(control_plane, binaries).expect("kube-proxy pods");
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut listings = vec![first];
            loop {
                let last = stop.load(Ordering::SeqCst);
                if let Ok(pods) = kube_proxy_pods(control_plane, binaries) {
                    listings.push(pods);
                }
                if last {
                    return listings;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let result = run();
        stop.store(true, Ordering::SeqCst);
        (result, watcher.join().expect("the kube-proxy watcher"))
    })
}

/// The text of every message event of a `-o json` run.
fn messages(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "message")
        .map(|event| event["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Checks one rollout to `image` on `nodes` from both sides: the watcher's listings (never more than
/// `max_unavailable` nodes without a ready kube-proxy, and at least one without; every node ends on a new pod with
/// the image) and bosun's messages (one line per node naming its new pod, in the order the watcher saw the nodes
/// finish, then "rolled out at revision `revision`: 3 of 3 nodes"). Returns the most nodes seen unavailable at once.
fn assert_rolled_out(
    what: &str,
    nodes: &[&Node],
    listings: &[Vec<ProxyPod>],
    said: &[String],
    image: &str,
    revision: i64,
    max_unavailable: usize,
) -> usize {
    let names: Vec<&str> = nodes.iter().map(|node| node.name()).collect();
    let first = listings.first().expect("a listing before the rollout");
    let last = listings.last().expect("a listing after the rollout");
    let old_pods: BTreeSet<&str> = first.iter().map(|pod| pod.pod.as_str()).collect();
    let mut most_unavailable = 0;
    let mut finished: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, listing) in listings.iter().enumerate() {
        let unavailable: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| !listing.iter().any(|pod| pod.node == *name && pod.ready))
            .collect();
        assert!(
            unavailable.len() <= max_unavailable,
            "{what}: {} nodes without a ready kube-proxy at once ({unavailable:?}; maxUnavailable {max_unavailable}): \
             {listing:?}",
            unavailable.len()
        );
        most_unavailable = most_unavailable.max(unavailable.len());
        for pod in listing {
            if pod.ready && pod.image == image && !old_pods.contains(pod.pod.as_str()) {
                finished.entry(pod.node.as_str()).or_insert(index);
            }
        }
    }
    assert!(
        most_unavailable >= 1,
        "{what}: the watcher never saw a node without a ready kube-proxy in {} listings",
        listings.len()
    );
    for name in &names {
        let now: Vec<&ProxyPod> = last.iter().filter(|pod| pod.node == *name).collect();
        assert!(
            now.len() == 1
                && now[0].ready
                && now[0].image == image
                && !old_pods.contains(now[0].pod.as_str()),
            "{what}: node {name} does not run a new ready kube-proxy with {image}: {last:?}"
        );
    }

    let prefix = "DaemonSet kube-system/kube-proxy: node ";
    let reported: Vec<(String, String)> = said
        .iter()
        .filter_map(|text| {
            let (node, pod) = text
                .strip_prefix(prefix)?
                .split_once(" updated and available (pod ")?;
            Some((node.to_owned(), pod.strip_suffix(')')?.to_owned()))
        })
        .collect();
    let mut reported_nodes: Vec<&str> = reported.iter().map(|(node, _)| node.as_str()).collect();
    reported_nodes.sort_unstable();
    let mut expected_nodes = names.clone();
    expected_nodes.sort_unstable();
    assert_eq!(
        reported_nodes, expected_nodes,
        "{what}: bosun's node lines: {said:#?}"
    );
    for (node, pod) in &reported {
        assert!(
            last.iter()
                .any(|running| &running.node == node && &running.pod == pod),
            "{what}: bosun named pod {pod} for node {node}, which runs {last:?}"
        );
    }
    // Nodes are reported in the order they finished, at bosun's resolution: it polls once a second
    // (phases/src/cluster/rollout.rs POLL_INTERVAL) and names the nodes one poll finds in name order, while the
    // watcher lists at least 200 ms apart. So two nodes the watcher saw finish more than 5 listings (over a second)
    // apart must be reported in that order; closer ones may share one of bosun's polls.
    const LISTINGS_PER_POLL: usize = 5;
    for (earlier, (node, _)) in reported.iter().enumerate() {
        for (later_node, _) in &reported[earlier + 1..] {
            let (seen, seen_later) = (
                finished.get(node.as_str()),
                finished.get(later_node.as_str()),
            );
            assert!(
                seen.zip(seen_later)
                    .is_none_or(|(seen, seen_later)| *seen <= seen_later + LISTINGS_PER_POLL),
                "{what}: bosun reported {node} before {later_node}, the watcher saw them finish the other way \
                 round ({finished:?}): {said:#?}"
            );
        }
    }
    let done = format!(
        "DaemonSet kube-system/kube-proxy rolled out at revision {revision}: 3 of 3 nodes updated and available"
    );
    let done_at = said.iter().position(|text| text.starts_with(&done));
    let last_node_line = said.iter().rposition(|text| text.starts_with(prefix));
    assert!(
        done_at.is_some() && last_node_line < done_at,
        "{what}: no \"{done}\" after the node lines: {said:#?}"
    );
    most_unavailable
}

/// kube-proxy's revisions as bosun and kubectl list them: (revision, image), oldest first; bosun's current one.
fn kube_proxy_history(
    control_plane: &Node,
    binaries: &Binaries,
) -> (Vec<(i64, String)>, Option<i64>) {
    let recorded = bosun(
        control_plane,
        binaries,
        &["-o", "json", "addon", "history", "kube-proxy"],
    );
    assert_ok("bosun addon history kube-proxy -o json", &recorded);
    let recorded: serde_json::Value =
        serde_json::from_slice(&recorded.stdout).expect("history JSON");
    let revisions = recorded["revisions"].as_array().expect("revisions");
    let ours: Vec<(i64, String)> = revisions
        .iter()
        .map(|revision| {
            (
                revision["revision"].as_i64().expect("a revision number"),
                revision["images"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let current = revisions
        .iter()
        .find(|revision| revision["current"] == true)
        .and_then(|revision| revision["revision"].as_i64());
    let kubectl = |extra: &[&str]| {
        let mut arguments = vec![
            "--kubeconfig=/etc/kubernetes/admin.conf",
            "rollout",
            "history",
            "daemonset",
            "kube-proxy",
            "--namespace=kube-system",
        ];
        arguments.extend_from_slice(extra);
        let output = control_plane.output(binaries.path("kubectl"), &arguments);
        assert_ok("kubectl rollout history daemonset kube-proxy", &output);
        output.stdout
    };
    let theirs: Vec<(i64, String)> = String::from_utf8_lossy(&kubectl(&[]))
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .map(|revision: i64| {
            let shown: serde_json::Value = serde_json::from_slice(&kubectl(&[
                &format!("--revision={revision}"),
                "-o",
                "json",
            ]))
            .expect("kubectl rollout history JSON");
            let image = shown["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (revision, image)
        })
        .collect();
    assert_eq!(
        ours, theirs,
        "bosun addon history and kubectl rollout history disagree"
    );
    (ours, current)
}

/// Issue 6: a kube-proxy image change rolls out node by node (maxUnavailable 1) on the three nodes and `bosun addon
/// rollback` restores the previous revision the same way; with `--kube-proxy-max-unavailable 2` two nodes go at
/// once.
fn kube_proxy_rolls_out_node_by_node(nodes: &[&Node], binaries: &Binaries, config_path: &str) {
    let control_plane = nodes[0];
    let before = kube_proxy_pods(control_plane, binaries).expect("kube-proxy pods");
    let old_image = before.first().expect("a kube-proxy pod").image.clone();
    // The same image under another repository name on every node, so the kubelets find it without a registry.
    let repository = "mirror.example/k8s";
    let new_image = old_image.replacen(
        old_image
            .rsplit_once("/kube-proxy:")
            .expect("an image name")
            .0,
        repository,
        1,
    );
    for node in nodes {
        let tagged = std::process::Command::new("ctr")
            .arg("--address")
            .arg(node.path("/run/containerd/containerd.sock"))
            .args([
                "--namespace",
                "k8s.io",
                "images",
                "tag",
                &old_image,
                &new_image,
            ])
            .output()
            .expect("run ctr");
        assert_ok(&format!("ctr images tag on {}", node.name()), &tagged);
    }
    // /etc is an overlay in the node: read the file through its mounts.
    let config = control_plane.output("cat", &[config_path]);
    assert_ok("reading the cluster's config", &config);
    let config = String::from_utf8_lossy(&config.stdout).into_owned();
    let mirror_path = "/etc/bosun-tier3/mirror.yaml";
    control_plane.write(
        mirror_path,
        config
            .replacen(
                "kind: ClusterConfiguration\n",
                &format!("kind: ClusterConfiguration\nimageRepository: {repository}\n"),
                1,
            )
            .as_bytes(),
    );
    let phase = |extra: &[&str]| {
        let mut arguments = vec![
            "-o",
            "json",
            "init",
            "phase",
            "addon",
            "kube-proxy",
            "--config",
            mirror_path,
        ];
        arguments.extend_from_slice(extra);
        bosun(control_plane, binaries, &arguments)
    };

    // Revision 2: the new image, one node at a time.
    let started = Instant::now();
    let (changed, listings) = watching_kube_proxy(control_plane, binaries, || phase(&[]));
    assert_ok("bosun init phase addon kube-proxy (new image)", &changed);
    let said = messages(&changed);
    eprintln!("tier 3: the rollout said {said:#?}");
    let most = assert_rolled_out("the new image", nodes, &listings, &said, &new_image, 2, 1);
    eprintln!(
        "tier 3: the watcher listed the kube-proxy pods {} times during the rollout, at most {most} node(s) without one ready",
        listings.len()
    );
    let rolled_out = started.elapsed();

    // The rollback: revision 1's template again, as revision 3, one node at a time.
    let started = Instant::now();
    let (rolled, listings) = watching_kube_proxy(control_plane, binaries, || {
        bosun(
            control_plane,
            binaries,
            &["-o", "json", "addon", "rollback", "kube-proxy"],
        )
    });
    assert_ok("bosun addon rollback kube-proxy", &rolled);
    let said = messages(&rolled);
    eprintln!("tier 3: the rollback said {said:#?}");
    let restored = format!("restored revision 1 (was revision 2): {old_image}");
    assert!(
        String::from_utf8_lossy(&rolled.stdout).contains(&restored),
        "the rollback does not say {restored:?}:\n{}",
        String::from_utf8_lossy(&rolled.stdout)
    );
    let most = assert_rolled_out("the rollback", nodes, &listings, &said, &old_image, 3, 1);
    eprintln!(
        "tier 3: the watcher listed the kube-proxy pods {} times during the rollback, at most {most} node(s) without one ready",
        listings.len()
    );
    let rolled_back = started.elapsed();
    let (history, current) = kube_proxy_history(control_plane, binaries);
    assert_eq!(
        history,
        [(2, new_image.clone()), (3, old_image.clone())],
        "revision 1 became revision 3"
    );
    assert_eq!(current, Some(3));

    // maxUnavailable 2: two of the three nodes are replaced at once (revision 2's template becomes revision 4).
    let started = Instant::now();
    let (wider, listings) = watching_kube_proxy(control_plane, binaries, || {
        phase(&["--kube-proxy-max-unavailable", "2"])
    });
    assert_ok(
        "bosun init phase addon kube-proxy --kube-proxy-max-unavailable 2",
        &wider,
    );
    let said = messages(&wider);
    let most = assert_rolled_out(
        "maxUnavailable 2",
        nodes,
        &listings,
        &said,
        &new_image,
        4,
        2,
    );
    eprintln!(
        "tier 3: the watcher listed the kube-proxy pods {} times with maxUnavailable 2, at most {most} nodes without one ready",
        listings.len()
    );
    assert_eq!(
        most, 2,
        "with maxUnavailable 2 the watcher never saw two nodes replaced at once"
    );
    let (history, current) = kube_proxy_history(control_plane, binaries);
    assert_eq!(history, [(3, old_image), (4, new_image)]);
    assert_eq!(current, Some(4));
    eprintln!(
        "tier 3: kube-proxy rolled out in {rolled_out:?}, rolled back in {rolled_back:?}, with maxUnavailable 2 in {:?}",
        started.elapsed()
    );
}
