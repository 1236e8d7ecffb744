//! Tier 2 (docs/testing.md), first step: a node's own containerd in a sandbox, with the locally built images that
//! kubeadm-style manifests name, runs them with runc; kube-proxy's image changes iptables only in the node.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::binaries::Binaries;
use crate::harness::containerd::Containerd;
use crate::harness::node::{Node, NodeNetwork};
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

/// What tier 2 runs: the whole node, and kubeadm for the image names.
pub const TIER2: &[&str] = &[
    "kubeadm",
    "kubelet",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "etcd",
    "coredns",
];

/// How long each step of a cold node may take on two busy cores.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// The bootstrap token of the test's configuration: a fixed one, so that a second `bosun init` has nothing to do.
pub const TOKEN: &str = "tier2a.0123456789abcdef";

/// The kubeadm configuration a user of a host like this one writes: the node's address and name, containerd's
/// socket, a fixed token, and a KubeletConfiguration with what a kubelet needs on a cgroup v1 host without
/// systemd that it shares with others (cgroupfs, its own cgroupRoot, cgroup v1 allowed, no eviction or image GC
/// since every node sees the machine's whole disk).
pub fn node_config(version: &str, node: &Node) -> String {
    let address = node.address();
    let name = node.name();
    let cgroup_root = node.cgroup_root();
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: {TOKEN}
  description: tier 2
localAPIEndpoint:
  advertiseAddress: {address}
  bindPort: 6443
nodeRegistration:
  name: {name}
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - name: node-ip
    value: {address}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {version}
networking:
  serviceSubnet: 10.96.0.0/12
  podSubnet: 10.244.0.0/16
  dnsDomain: cluster.local
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
failCgroupV1: false
failSwapOn: false
imageGCHighThresholdPercent: 100
evictionHard:
  imagefs.available: \"0%\"
  nodefs.available: \"0%\"
  nodefs.inodesFree: \"0%\"
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
conntrack:
  maxPerCore: 0
"
    )
}

/// A bridge CNI configuration for the node's pod subnet (bosun, like kubeadm, ships no network plugin).
pub fn bridge_conflist(subnet: &str) -> String {
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": "bosun-tier2",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{"subnet": "{subnet}"}}]],
        "routes": [{{"dst": "0.0.0.0/0"}}]
      }}
    }},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}},
    {{"type": "loopback"}}
  ]
}}
"#
    )
}

/// A pod that looks up `kubernetes.default.svc.cluster.local` with busybox's nslookup (which sends the name as
/// given: it does not apply the pod's search path, so `kubernetes.default` would be forwarded upstream). It
/// tolerates the control-plane taint, as kubeadm's addons do, so it runs on the single node.
fn dns_check_pod() -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: dns-check
  namespace: default
spec:
  restartPolicy: Never
  tolerations:
  - key: node-role.kubernetes.io/control-plane
    operator: Exists
    effect: NoSchedule
  containers:
  - name: nslookup
    image: {}
    imagePullPolicy: Never
    command: [nslookup, kubernetes.default.svc.cluster.local]
",
        crate::harness::images::BUSYBOX
    )
}

/// Runs the real `bosun` in the node with the process service backend, the built binaries first on PATH.
pub fn bosun(node: &Node, binaries: &Binaries, arguments: &[&str]) -> Output {
    bosun_command(node, binaries, arguments)
        .output()
        .expect("run bosun in the node")
}

/// The command [`bosun`] runs, to spawn it instead.
pub fn bosun_command(node: &Node, binaries: &Binaries, arguments: &[&str]) -> Command {
    let bin = binaries.path("kubelet");
    let bin = bin.parent().expect("bin directory");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = node.command(env!("CARGO_BIN_EXE_bosun"));
    command
        .args(arguments)
        .env("PATH", path)
        .env("BOSUN_SERVICE_BACKEND", "process")
        .stdin(std::process::Stdio::null());
    command
}

#[track_caller]
pub fn assert_ok(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// kubectl in the node with its admin.conf; the output as JSON.
pub fn kubectl_json(node: &Node, binaries: &Binaries, arguments: &[&str]) -> Result<Value, String> {
    let mut all = vec![
        "--kubeconfig=/etc/kubernetes/admin.conf",
        "--request-timeout=10s",
        "--output=json",
    ];
    all.extend_from_slice(arguments);
    let output = node.output(binaries.path("kubectl"), &all);
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|error| error.to_string())
}

/// The phase of every pod in kube-system whose name starts with `prefix`, or what was seen instead.
pub fn running_pods(
    node: &Node,
    binaries: &Binaries,
    prefix: &str,
    count: usize,
) -> Result<Vec<String>, String> {
    let pods = kubectl_json(node, binaries, &["get", "pods", "--namespace=kube-system"])?;
    let matching: Vec<(String, String)> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pod| {
            let name = pod["metadata"]["name"].as_str()?;
            name.starts_with(prefix).then(|| {
                let ready = pod["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|condition| condition["type"] == "Ready" && condition["status"] == "True");
                let phase = pod["status"]["phase"].as_str().unwrap_or("?");
                (
                    name.to_owned(),
                    if ready {
                        "Ready".to_owned()
                    } else {
                        phase.to_owned()
                    },
                )
            })
        })
        .collect();
    if matching.len() == count && matching.iter().all(|(_, state)| state == "Ready") {
        Ok(matching.into_iter().map(|(name, _)| name).collect())
    } else {
        Err(format!("{matching:?}"))
    }
}

pub fn node_condition(node_object: &Value, kind: &str) -> String {
    node_object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|condition| condition["type"] == kind)
        .and_then(|condition| condition["status"].as_str())
        .unwrap_or("absent")
        .to_owned()
}

/// What a host needs before `bosun init` or `bosun join` here: the administrator's containerd configuration
/// (Debian's, see [`Node::containerd_config`]), bosun's container-runtime phase (it configures containerd and
/// starts it through the process backend), and the images — a real host pulls them (`kubeadm config images
/// pull`); this one, without a registry, imports them.
pub fn prepare_runtime(node: &Node, binaries: &Binaries, config_path: &str) {
    node.write(
        "/etc/containerd/config.toml",
        node.containerd_config().as_bytes(),
    );
    let runtime = bosun(
        node,
        binaries,
        &[
            "init",
            "phase",
            "container-runtime",
            "--config",
            config_path,
        ],
    );
    assert_ok("bosun init phase container-runtime", &runtime);
    let socket = node.path("/run/containerd/containerd.sock");
    crate::harness::wait_for("containerd's socket", STEP_TIMEOUT, || {
        socket.exists().then_some(())
    });
    let images = binaries.path("kubeadm");
    import_images(images.parent().expect("bin directory"), &socket);
}

#[test]
fn bosun_init_builds_a_ready_node() {
    let Some(binaries) = Binaries::require("tier2::bosun_init_builds_a_ready_node", TIER2) else {
        return;
    };
    let version = crate::tier1::built_version(&binaries);
    let started = Instant::now();
    let node = Node::start("tier2-init", NodeNetwork::Alone);
    let config_path = "/etc/bosun-tier2/kubeadm.yaml";
    node.write(config_path, node_config(&version, &node).as_bytes());
    let init = ["init", "--config", config_path];
    prepare_runtime(&node, &binaries, config_path);
    let runtime_ready = started.elapsed();

    let first = bosun(
        &node,
        &binaries,
        &[&init[..], &["--ignore-preflight-errors=SystemVerification"]].concat(),
    );
    assert_ok("bosun init", &first);
    let init_done = started.elapsed();

    // The kubelet runs bosun's static pods from the local images (mirror pods prove it is the kubelet).
    for component in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let pod = format!("{component}-{}", node.name());
        crate::harness::wait_until(&format!("static pod {pod}"), STEP_TIMEOUT, || {
            running_pods(&node, &binaries, &pod, 1)
        });
    }

    // The node registered with a client certificate from the TLS bootstrap, which kubelet-finalize points
    // kubelet.conf at; mark-control-plane labelled and tainted it.
    let kubelet_conf =
        std::fs::read_to_string(node.path("/etc/kubernetes/kubelet.conf")).expect("kubelet.conf");
    assert!(
        kubelet_conf.contains("/var/lib/kubelet/pki/kubelet-client-current.pem"),
        "kubelet.conf does not use the rotated client certificate:\n{kubelet_conf}"
    );
    // A link with an absolute target in the node, so it is looked at from inside.
    let pem = node.output(
        "test",
        &["-s", "/var/lib/kubelet/pki/kubelet-client-current.pem"],
    );
    assert!(
        pem.status.success(),
        "the kubelet has no rotated client certificate"
    );
    let node_object =
        kubectl_json(&node, &binaries, &["get", "node", node.name()]).expect("the node object");
    assert!(
        node_object["metadata"]["labels"]
            .get("node-role.kubernetes.io/control-plane")
            .is_some(),
        "{}",
        node_object["metadata"]["labels"]
    );
    let taints = node_object["spec"]["taints"].to_string();
    assert!(
        taints.contains("node-role.kubernetes.io/control-plane") && taints.contains("NoSchedule"),
        "{taints}"
    );

    // With a network plugin configured the node becomes Ready; kube-proxy and CoreDNS run on it.
    node.write(
        "/etc/cni/net.d/10-bridge.conflist",
        bridge_conflist("10.244.0.0/24").as_bytes(),
    );
    crate::harness::wait_until("the node to be Ready", STEP_TIMEOUT, || {
        let object = kubectl_json(&node, &binaries, &["get", "node", node.name()])?;
        let ready = node_condition(&object, "Ready");
        (ready == "True").then_some(()).ok_or(ready)
    });
    let node_ready = started.elapsed();
    crate::harness::wait_until("the kube-proxy pod", STEP_TIMEOUT, || {
        running_pods(&node, &binaries, "kube-proxy-", 1)
    });
    crate::harness::wait_until("the CoreDNS pods", STEP_TIMEOUT, || {
        running_pods(&node, &binaries, "coredns-", 2)
    });
    let addons_running = started.elapsed();

    // A pod resolves the API server's service name through CoreDNS: the pod's resolv.conf from the kubelet,
    // kube-proxy's rules for the kube-dns service, the bridge between the pods.
    let images = tempfile::tempdir().expect("image directory");
    crate::harness::images::import(
        &node.path("/run/containerd/containerd.sock"),
        &crate::harness::images::busybox_archive(images.path()),
    );
    let pod_path = "/etc/bosun-tier2/dns-check.yaml";
    node.write(pod_path, dns_check_pod().as_bytes());
    let applied = node.output(
        binaries.path("kubectl"),
        &[
            "--kubeconfig=/etc/kubernetes/admin.conf",
            "apply",
            "-f",
            pod_path,
        ],
    );
    assert_ok("kubectl apply the DNS check pod", &applied);
    let phase = crate::harness::wait_until("the DNS check pod to finish", STEP_TIMEOUT, || {
        let pod = kubectl_json(
            &node,
            &binaries,
            &["get", "pod", "dns-check", "--namespace=default"],
        )?;
        match pod["status"]["phase"].as_str() {
            Some(phase @ ("Succeeded" | "Failed")) => Ok(phase.to_owned()),
            other => Err(format!("{other:?}")),
        }
    });
    let logs = node.output(
        binaries.path("kubectl"),
        &[
            "--kubeconfig=/etc/kubernetes/admin.conf",
            "logs",
            "dns-check",
            "--namespace=default",
        ],
    );
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        phase == "Succeeded" && logs.contains("10.96.0.1"),
        "the pod did not resolve kubernetes.default.svc.cluster.local to 10.96.0.1 ({phase}):\n{logs}"
    );
    let dns_checked = started.elapsed();

    // A second init finds everything as it should be and changes nothing (the kubelet is not restarted).
    let second = bosun(
        &node,
        &binaries,
        &[&init[..], &["--ignore-preflight-errors=SystemVerification"]].concat(),
    );
    assert_ok("the second bosun init", &second);
    let second_text = String::from_utf8_lossy(&second.stderr);
    assert!(
        second_text.contains("[init] done; nothing needed to change"),
        "the second init changed something:\n{second_text}"
    );
    eprintln!(
        "tier 2: containerd and images {runtime_ready:?}, bosun init done {init_done:?}, node Ready {node_ready:?}, \
         kube-proxy and CoreDNS running {addons_running:?}, DNS from a pod {dns_checked:?}, second init {:?}",
        started.elapsed()
    );
}

/// Issue 6: an init killed in the middle (here while it waits for the control plane the kubelet is starting) is
/// finished by running the same command again.
#[test]
fn a_killed_init_converges_when_run_again() {
    let Some(binaries) = Binaries::require("tier2::a_killed_init_converges_when_run_again", TIER2)
    else {
        return;
    };
    let version = crate::tier1::built_version(&binaries);
    let node = Node::start("tier2-killed", NodeNetwork::Alone);
    let config_path = "/etc/bosun-tier2/kubeadm.yaml";
    node.write(config_path, node_config(&version, &node).as_bytes());
    prepare_runtime(&node, &binaries, config_path);
    let init = [
        "init",
        "--config",
        config_path,
        "--ignore-preflight-errors=SystemVerification",
    ];

    let mut first = bosun_command(&node, &binaries, &init)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start bosun init");
    let stderr = first.stderr.take().expect("piped stderr");
    let mut seen = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let line = line.expect("init's output");
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("[wait-control-plane]") {
            break;
        }
    }
    assert!(
        seen.contains("[kubelet-start]") && seen.contains("[wait-control-plane]"),
        "init ended before waiting for the control plane:\n{seen}"
    );
    // nsenter forked bosun into the node's PID namespace: kill bosun itself, as a crash or a power cut would.
    let bosun_pid = crate::harness::child_of(first.id()).expect("bosun runs under nsenter");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bosun_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill bosun init");
    let _ = first.wait();

    let second = bosun(&node, &binaries, &init);
    assert_ok("bosun init after the killed one", &second);
    let text = String::from_utf8_lossy(&second.stderr);
    assert!(
        text.contains("[kubelet-start] unchanged"),
        "the re-run did not find the kubelet as the killed run left it:\n{text}"
    );
    let node_object =
        kubectl_json(&node, &binaries, &["get", "node", node.name()]).expect("the node object");
    assert!(
        node_object["spec"]["taints"]
            .to_string()
            .contains("node-role.kubernetes.io/control-plane"),
        "{node_object}"
    );
    kubectl_json(
        &node,
        &binaries,
        &["get", "daemonset", "kube-proxy", "--namespace=kube-system"],
    )
    .expect("the kube-proxy DaemonSet");
}

/// Serialises make-images runs of this test binary: with a cold cache, two would pack the same archives at once.
static MAKE_IMAGES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Imports the images of tests/e2e/make-images into the containerd at `socket`.
fn import_images(bin: &std::path::Path, socket: &std::path::Path) {
    let _only_one = MAKE_IMAGES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/make-images");
    let output = Command::new(script)
        .arg("--bin")
        .arg(bin)
        .arg("--import")
        .arg(socket)
        .output()
        .expect("run tests/e2e/make-images");
    assert_ok("make-images --import", &output);
}
