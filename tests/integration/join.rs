//! `bosun join` against real parts: a control plane that bosun built (its certificates, kubeconfigs and manifests,
//! run by the tier-1 static-pod runner, then bosun's own cluster phases upload-config, upload-certs and
//! bootstrap-token) in one sandbox, and the joining node in another, connected through `harness::network`.
//!
//! - the network itself: two sandboxes reach each other on their own addresses and the host sees nothing of it;
//! - discovery with the real cluster-info that kube-controller-manager's bootstrap signer signed: the pin bosun init
//!   printed is accepted; a wrong hash, a changed cluster-info, an expired token, a wrong token format, an
//!   unreachable server and a Node name the cluster has are refused with one sentence, and the joining node's root
//!   holds nothing afterwards;
//! - a control-plane join with the printed command: the certificates `init --upload-certs` uploaded are downloaded
//!   and decrypted (a missing or wrong key changes nothing), this node's etcd member is added as a learner, run from
//!   the manifest bosun wrote, and promoted: real etcdctl then lists two voting members; a second run changes nothing;
//! - a worker join in a real node (`harness::node`) whose real kubelet does the TLS bootstrap: its CSR is approved
//!   and signed by the real kube-controller-manager, it writes kubelet.conf and its Node appears.
//!
//! Without the built binaries the tests are skipped loudly on a developer machine and fail in CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{assert_ok, Plane, CERTIFICATE_KEY, TOKEN};
use crate::harness::binaries::{Binaries, TIER1};
use crate::harness::network::{self, Network};
use crate::harness::node::{Node, NodeNetwork};
use crate::harness::sandbox::Sandbox;
use crate::harness::static_pods::StaticPods;
use crate::harness::{wait_for, wait_until};
use crate::support::TempRoot;
use crate::tier1::{bosun_writes_root, built_version};

const READY_TIMEOUT: Duration = Duration::from_secs(240);
/// The control plane's host number on the test network.
const CONTROL_PLANE: u8 = 10;

/// The first control plane's configuration: its own address on the network, which is also the
/// controlPlaneEndpoint (other control-plane nodes may join only a cluster that has one).
fn control_plane_config(version: &str, name: &str, address: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n\
         bootstrapTokens:\n- token: {TOKEN}\n  description: join test token\n\
         certificateKey: {CERTIFICATE_KEY}\n\
         localAPIEndpoint:\n  advertiseAddress: {address}\n  bindPort: 6443\n\
         nodeRegistration:\n  name: {name}\n\
         ---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
         kubernetesVersion: {version}\nclusterName: kubernetes\ncontrolPlaneEndpoint: {address}:6443\n\
         networking:\n  serviceSubnet: 10.96.0.0/12\n  podSubnet: 10.244.0.0/16\n  dnsDomain: cluster.local\n\
         ---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         cgroupDriver: cgroupfs\nfailCgroupV1: false\nfailSwapOn: false\nimageGCHighThresholdPercent: 100\n\
         evictionHard:\n  imagefs.available: \"0%\"\n  nodefs.available: \"0%\"\n  nodefs.inodesFree: \"0%\"\n"
    )
}

/// The join commands `bosun init` printed, as argument lists after `bosun join`.
struct JoinCommands {
    control_plane: Vec<String>,
    worker: Vec<String>,
}

/// Parses show-join-command's text: the command after "To add a control-plane node" and after "To add a worker".
fn parse_join_commands(text: &str) -> JoinCommands {
    let command_after = |marker: &str| -> Vec<String> {
        let start = text
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker:?} in:\n{text}"));
        let rest = &text[start..];
        let begin = rest.find("bosun join").expect("a bosun join command");
        let mut command = String::new();
        for line in rest[begin..].lines() {
            let line = line.trim();
            let continued = line.ends_with('\\');
            command.push_str(line.trim_end_matches('\\'));
            command.push(' ');
            if !continued {
                break;
            }
        }
        command
            .split_whitespace()
            .skip(2)
            .map(str::to_owned)
            .collect()
    };
    JoinCommands {
        control_plane: command_after("To add a control-plane node"),
        worker: command_after("To add a worker node"),
    }
}

/// A running control plane on the network, with bosun's cluster phases done.
struct ControlPlane<'a> {
    plane: Plane<'a>,
    commands: JoinCommands,
}

/// Brings up the control plane in `sandbox` and runs `body`.
fn with_control_plane(
    binaries: &Binaries,
    sandbox: &Sandbox,
    body: impl FnOnce(&ControlPlane<'_>),
) {
    let root = TempRoot::new();
    let version = built_version(binaries);
    let address = network::address(CONTROL_PLANE);
    let config_text = control_plane_config(&version, sandbox.hostname(), &address);
    bosun_writes_root(sandbox, &root, &config_text);
    let mut pods = StaticPods::start(sandbox, root.path(), binaries);
    let started = Instant::now();
    pods.wait_ready(READY_TIMEOUT);
    eprintln!(
        "join: the control plane is ready in {:?}",
        started.elapsed()
    );
    let plane = Plane {
        binaries,
        root: &root,
        sandbox,
        config: root.join("/bosun.yaml"),
    };
    plane.init_phase(&["upload-config"], &[]);
    plane.init_phase(&["upload-certs"], &["--upload-certs"]);
    plane.init_phase(&["bootstrap-token"], &[]);
    let shown = plane.bosun(&[
        "init",
        "phase",
        "show-join-command",
        "--upload-certs",
        "--config",
        plane.config.to_str().expect("utf-8"),
    ]);
    assert_ok("bosun init phase show-join-command", &shown);
    let commands = parse_join_commands(&String::from_utf8_lossy(&shown.stdout));
    assert_eq!(
        commands.worker[0],
        format!("{address}:6443"),
        "{:?}",
        commands.worker
    );
    // The bootstrap signer of the real kube-controller-manager signs cluster-info for the token.
    wait_until(
        "the cluster-info signature of the token",
        READY_TIMEOUT,
        || {
            let data = config_map(&plane, "kube-public", "cluster-info");
            if data.get("jws-kubeconfig-abcdef").is_some() {
                Ok(())
            } else {
                Err(format!("{:?}", data.keys().collect::<Vec<_>>()))
            }
        },
    );
    body(&ControlPlane { plane, commands });
    drop(pods);
}

fn config_map(
    plane: &Plane<'_>,
    namespace: &str,
    name: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let value = plane.get_json(&["configmap", name, &format!("--namespace={namespace}")]);
    value["data"].as_object().cloned().unwrap_or_default()
}

/// Runs the real bosun in `sandbox` against `root` (the process service backend, as on a machine without systemd).
fn bosun_on(sandbox: &Sandbox, root: &TempRoot, arguments: &[&str]) -> Output {
    let mut all = vec!["--root", root.path().to_str().expect("utf-8 root")];
    all.extend_from_slice(arguments);
    sandbox
        .command(env!("CARGO_BIN_EXE_bosun"))
        .args(&all)
        .env_remove("BOSUN_ROOT")
        .env("BOSUN_SERVICE_BACKEND", "process")
        .stdin(Stdio::null())
        .output()
        .expect("run bosun in the sandbox")
}

fn strings(arguments: &[String]) -> Vec<&str> {
    arguments.iter().map(String::as_str).collect()
}

/// The files of a root apart from bosun's own lock and journal (which every run keeps).
fn node_files(root: &TempRoot) -> Vec<String> {
    root.listing()
        .into_iter()
        .filter(|entry| !entry.contains("var/lib/bosun"))
        .filter(|entry| {
            let trimmed = entry.trim_end_matches('/');
            !["var", "var/lib"].contains(&trimmed.split_whitespace().next().unwrap_or(trimmed))
        })
        .collect()
}

#[track_caller]
fn assert_refused(what: &str, output: &Output, expected: &[&str], root: &TempRoot) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "{what} was not refused:\n{stderr}"
    );
    for fragment in expected {
        assert!(
            stderr.contains(fragment),
            "{what}: {fragment:?} is not in:\n{stderr}"
        );
    }
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(
        error_lines.len(),
        1,
        "{what}: one error sentence expected:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}:\n{stderr}");
    let files = node_files(root);
    assert!(
        files.is_empty(),
        "{what} left files on the joining node: {files:?}"
    );
}

/// A JoinConfiguration for token discovery with a short discovery timeout (kubeadm's default is 5 minutes).
fn short_discovery_config(directory: &Path, endpoint: &str, token: &str, pin: &str) -> PathBuf {
    let path = directory.join(format!(
        "join-{}.yaml",
        token.split('.').next().unwrap_or("x")
    ));
    std::fs::write(
        &path,
        format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n\
             discovery:\n  bootstrapToken:\n    token: {token}\n    apiServerEndpoint: {endpoint}\n\
             \x20   caCertHashes:\n    - {pin}\n\
             timeouts:\n  discovery: 8s\n"
        ),
    )
    .expect("write the join configuration");
    path
}

/// The host PIDs of processes in `sandbox` whose command starts with `program`.
fn processes_in(sandbox: &Sandbox, program: &str) -> Vec<i32> {
    let namespace =
        std::fs::read_link(format!("/proc/{}/ns/pid", sandbox.pid())).expect("pid namespace");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&namespace)
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|line| {
                    let first = line.split(|byte| *byte == 0).next().unwrap_or_default();
                    Path::new(&String::from_utf8_lossy(first).into_owned()).file_name()
                        == Some(std::ffi::OsStr::new(program))
                })
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn network_connects_sandboxes_and_stays_off_the_host() {
    let network = Network::new();
    let server = Sandbox::on_network("join-net-a", &network, &network::address(20));
    let client = Sandbox::on_network("join-net-b", &network, &network::address(21));
    let mut listener = server
        .command("python3")
        .args(["-m", "http.server", "--bind", &network::address(20), "8080"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    let reached = wait_until(
        "join-net-a's web server from join-net-b",
        Duration::from_secs(20),
        || {
            let output = client.output(
                "curl",
                &[
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("http://{}:8080/", network::address(20)),
                ],
            );
            let code = String::from_utf8_lossy(&output.stdout).into_owned();
            if code == "200" {
                Ok(code)
            } else {
                Err(String::from_utf8_lossy(&output.stderr).into_owned())
            }
        },
    );
    let _ = listener.kill();
    let _ = listener.wait();
    assert_eq!(reached, "200");
    let own = client.output("ip", &["-4", "-o", "address", "show", "dev", "eth0"]);
    assert!(
        String::from_utf8_lossy(&own.stdout).contains(&format!("{}/24", network::address(21))),
        "{}",
        String::from_utf8_lossy(&own.stdout)
    );
    let route = client.output("ip", &["route", "show", "default"]);
    assert!(String::from_utf8_lossy(&route.stdout).contains(network::GATEWAY));
    for arguments in [["-o", "address"], ["-o", "link"]] {
        let host = Command::new("ip")
            .args(arguments)
            .output()
            .expect("ip on the host");
        let host = String::from_utf8_lossy(&host.stdout);
        assert!(
            !host.contains(network::SUBNET_PREFIX),
            "the host has a test address:\n{host}"
        );
        assert!(
            !host.contains("br0"),
            "the switch's bridge is on the host:\n{host}"
        );
    }
}

#[test]
fn join_discovers_a_real_control_plane_and_joins_a_second_control_plane_node() {
    let Some(binaries) = Binaries::require(
        "join::join_discovers_a_real_control_plane_and_joins_a_second_control_plane_node",
        TIER1,
    ) else {
        return;
    };
    let network = Network::new();
    let first = Sandbox::on_network("join-cp-1", &network, &network::address(CONTROL_PLANE));
    with_control_plane(&binaries, &first, |cluster| {
        discovery_is_checked(&binaries, &network, cluster);
        control_plane_joins(&binaries, &network, cluster);
    });
}

fn discovery_is_checked(binaries: &Binaries, network: &Network, cluster: &ControlPlane<'_>) {
    let plane = &cluster.plane;
    let node = Sandbox::on_network("join-node-2", network, &network::address(11));
    let root = TempRoot::new();
    let scratch = tempfile::tempdir().expect("scratch directory");
    let worker = &cluster.commands.worker;
    let endpoint = worker[0].clone();
    let pin = worker
        .iter()
        .find(|argument| argument.starts_with("sha256:"))
        .expect("a CA pin in the printed command")
        .clone();

    // The printed command's discovery, as it is: the pin matches the real CA and the signature the real bootstrap
    // signer made verifies.
    let mut arguments = vec!["-o", "json", "join", "phase", "discovery"];
    arguments.extend(strings(worker));
    let good = bosun_on(&node, &root, &arguments);
    assert_ok("bosun join phase discovery (printed command)", &good);
    let events = String::from_utf8_lossy(&good.stdout);
    assert!(events.contains(&format!("CA pinned {pin}")), "{events}");
    assert!(
        events.contains("signature of token abcdef verified"),
        "{events}"
    );
    assert!(
        node_files(&root).is_empty(),
        "discovery wrote files: {:?}",
        node_files(&root)
    );

    // A dry run of the whole printed join: every file it would write is shown (the token redacted), none is written.
    let kubelet_dir = binaries.path("kubelet");
    let path = format!(
        "{}:{}",
        kubelet_dir.parent().expect("bin directory").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut arguments = vec!["--root", root.path().to_str().expect("utf-8"), "join"];
    arguments.extend(strings(worker));
    arguments.extend([
        "--dry-run",
        "--ignore-preflight-errors=all",
        "--skip-phases=container-runtime",
    ]);
    let dry = node
        .command(env!("CARGO_BIN_EXE_bosun"))
        .args(&arguments)
        .env_remove("BOSUN_ROOT")
        .env("BOSUN_SERVICE_BACKEND", "process")
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("run bosun join --dry-run");
    assert_ok("bosun join --dry-run", &dry);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&dry.stdout),
        String::from_utf8_lossy(&dry.stderr)
    );
    for expected in [
        "would write /etc/kubernetes/bootstrap-kubelet.conf",
        "would write /var/lib/kubelet/config.yaml",
        "token: <redacted>",
    ] {
        assert!(
            shown.contains(expected),
            "{expected:?} is not in the dry run:\n{shown}"
        );
    }
    assert!(
        !shown.contains("0123456789abcdef"),
        "the dry run shows the token secret:\n{shown}"
    );
    assert!(
        node_files(&root).is_empty(),
        "the dry run wrote files: {:?}",
        node_files(&root)
    );

    // File discovery: cluster-info's kubeconfig as a file, its CA trusted, the TLS bootstrap token given apart.
    let info = config_map(plane, "kube-public", "cluster-info");
    let discovery_file = scratch.path().join("cluster-info.conf");
    std::fs::write(
        &discovery_file,
        info["kubeconfig"].as_str().expect("kubeconfig"),
    )
    .expect("write the discovery file");
    let from_file = bosun_on(
        &node,
        &root,
        &[
            "-o",
            "json",
            "join",
            "phase",
            "discovery",
            "--discovery-file",
            discovery_file.to_str().expect("utf-8"),
            "--tls-bootstrap-token",
            TOKEN,
        ],
    );
    assert_ok("bosun join phase discovery --discovery-file", &from_file);
    assert!(
        String::from_utf8_lossy(&from_file.stdout).contains("CA from"),
        "{}",
        String::from_utf8_lossy(&from_file.stdout)
    );
    let no_credentials = bosun_on(
        &node,
        &root,
        &[
            "join",
            "phase",
            "discovery",
            "--discovery-file",
            discovery_file.to_str().expect("utf-8"),
        ],
    );
    // The default TLS bootstrap token is the discovery token; a file without credentials and no token is refused.
    assert_refused(
        "a discovery file without credentials",
        &no_credentials,
        &["carries no credentials"],
        &root,
    );

    // File discovery from an https URL: the server is verified with the system's trusted CAs (here a test CA named
    // by SSL_CERT_FILE), and refused when it is not trusted.
    https_discovery_file(plane, &node, &root, scratch.path(), &discovery_file);

    // A wrong hash, through the whole join: refused at discovery, before anything is written.
    let wrong_pin = format!("sha256:{}", "0".repeat(64));
    let refused = bosun_on(
        &node,
        &root,
        &[
            "join",
            &endpoint,
            "--token",
            TOKEN,
            "--discovery-token-ca-cert-hash",
            &wrong_pin,
            "--ignore-preflight-errors=all",
            "--skip-phases=container-runtime",
        ],
    );
    assert_refused(
        "a wrong CA hash",
        &refused,
        &["matches the given pins", &pin],
        &root,
    );

    // No pin at all: refused unless verification is skipped on purpose.
    let no_pin = bosun_on(
        &node,
        &root,
        &["join", "phase", "discovery", &endpoint, "--token", TOKEN],
    );
    assert_refused(
        "a join without a pin",
        &no_pin,
        &[
            "--discovery-token-ca-cert-hash",
            "--discovery-token-unsafe-skip-ca-verification",
        ],
        &root,
    );
    let unsafe_skip = bosun_on(
        &node,
        &root,
        &[
            "join",
            "phase",
            "discovery",
            &endpoint,
            "--token",
            TOKEN,
            "--discovery-token-unsafe-skip-ca-verification",
        ],
    );
    assert_ok(
        "discovery with --discovery-token-unsafe-skip-ca-verification",
        &unsafe_skip,
    );

    // A wrong token format: one sentence naming the flag, exit code 3 (invalid configuration).
    let malformed = bosun_on(
        &node,
        &root,
        &[
            "join",
            &endpoint,
            "--token",
            "abcdef.short",
            "--discovery-token-ca-cert-hash",
            &pin,
        ],
    );
    assert_refused(
        "a malformed token",
        &malformed,
        &["--token", "[a-z0-9]{6}.[a-z0-9]{16}"],
        &root,
    );
    assert_eq!(malformed.status.code(), Some(3));

    // An unreachable API server: refused when discovery times out, naming the server.
    let nowhere = format!("{}:6443", network::address(99));
    let config = short_discovery_config(scratch.path(), &nowhere, TOKEN, &pin);
    let started = Instant::now();
    let unreachable = bosun_on(
        &node,
        &root,
        &[
            "join",
            "phase",
            "discovery",
            "--config",
            config.to_str().expect("utf-8"),
        ],
    );
    assert_refused(
        "an unreachable API server",
        &unreachable,
        &[
            &format!("cannot reach the API server https://{nowhere}"),
            "timeouts.discovery",
        ],
        &root,
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "discovery took {:?}",
        started.elapsed()
    );

    // A changed cluster-info: with the controller manager (and its bootstrap signer) frozen, the kubeconfig in
    // cluster-info names another server; its signature no longer matches and the join is refused.
    let original = config_map(plane, "kube-public", "cluster-info");
    let original_kubeconfig = original["kubeconfig"]
        .as_str()
        .expect("kubeconfig")
        .to_owned();
    let controller_managers = processes_in(plane.sandbox, "kube-controller-manager");
    assert!(
        !controller_managers.is_empty(),
        "no kube-controller-manager runs in the control plane"
    );
    for pid in &controller_managers {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .expect("freeze");
    }
    let tampered =
        original_kubeconfig.replace(&endpoint, &format!("{}:6443", network::address(66)));
    assert_ne!(
        tampered, original_kubeconfig,
        "cluster-info names the endpoint {endpoint}"
    );
    let patch = serde_json::json!({"data": {"kubeconfig": tampered}}).to_string();
    assert_ok(
        "kubectl patch cluster-info",
        &plane.kubectl(&[
            "patch",
            "configmap",
            "cluster-info",
            "--namespace=kube-public",
            "--type=merge",
            "-p",
            &patch,
        ]),
    );
    let mut arguments = vec!["join", "phase", "discovery"];
    arguments.extend(strings(worker));
    let changed = bosun_on(&node, &root, &arguments);
    let restore = serde_json::json!({"data": {"kubeconfig": original_kubeconfig}}).to_string();
    assert_ok(
        "kubectl patch cluster-info back",
        &plane.kubectl(&[
            "patch",
            "configmap",
            "cluster-info",
            "--namespace=kube-public",
            "--type=merge",
            "-p",
            &restore,
        ]),
    );
    for pid in &controller_managers {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGCONT,
        )
        .expect("thaw");
    }
    assert_refused(
        "a changed cluster-info",
        &changed,
        &["does not match the signature of token \"abcdef\""],
        &root,
    );

    // An expired token: the real token cleaner deletes it and the signer drops its signature; discovery is refused.
    let expiring = "zz9yx8.0123456789abcdef";
    let created = plane.bosun(&["token", "create", expiring, "--ttl", "20s"]);
    assert_ok("bosun token create --ttl 20s", &created);
    wait_until("the expiring token's signature", READY_TIMEOUT, || {
        config_map(plane, "kube-public", "cluster-info")
            .get("jws-kubeconfig-zz9yx8")
            .map(|_| ())
            .ok_or_else(|| "not signed yet".to_owned())
    });
    wait_until(
        "the expired token's signature to go",
        READY_TIMEOUT,
        || match config_map(plane, "kube-public", "cluster-info").get("jws-kubeconfig-zz9yx8") {
            None => Ok(()),
            Some(_) => Err("still signed".to_owned()),
        },
    );
    let config = short_discovery_config(scratch.path(), &endpoint, expiring, &pin);
    let expired = bosun_on(
        &node,
        &root,
        &[
            "join",
            "phase",
            "discovery",
            "--config",
            config.to_str().expect("utf-8"),
        ],
    );
    assert_refused(
        "an expired token",
        &expired,
        &[
            "carries no signature for token \"zz9yx8\"",
            "bosun token create",
        ],
        &root,
    );

    // A node name the cluster already has: refused at discovery.
    let taken = r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"join-taken"}}"#;
    let taken_file = scratch.path().join("node.json");
    std::fs::write(&taken_file, taken).expect("write node.json");
    assert_ok(
        "kubectl create node",
        &plane.kubectl(&["create", "-f", taken_file.to_str().expect("utf-8")]),
    );
    let mut arguments = vec!["join", "phase", "discovery", "--node-name", "join-taken"];
    arguments.extend(strings(worker));
    let clash = bosun_on(&node, &root, &arguments);
    assert_refused(
        "a Node name that exists",
        &clash,
        &["a Node named \"join-taken\" already exists"],
        &root,
    );
    assert_ok(
        "kubectl delete node",
        &plane.kubectl(&["delete", "node", "join-taken"]),
    );

    // A node that has joined already (kubelet.conf exists) is refused by preflight.
    root.write(
        "/etc/kubernetes/kubelet.conf",
        b"apiVersion: v1\nkind: Config\n",
    );
    let mut arguments = vec!["join", "phase", "preflight"];
    arguments.extend(strings(worker));
    let joined = bosun_on(&node, &root, &arguments);
    let stderr = String::from_utf8_lossy(&joined.stderr);
    assert!(!joined.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "this node has already joined a cluster: /etc/kubernetes/kubelet.conf exists"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("bosun reset"), "{stderr}");
    let _ = binaries;
}

fn control_plane_joins(binaries: &Binaries, network: &Network, cluster: &ControlPlane<'_>) {
    let plane = &cluster.plane;
    let address = network::address(12);
    let node = Sandbox::on_network("join-cp-2", network, &address);
    let root = TempRoot::new();
    let printed = &cluster.commands.control_plane;
    assert!(
        printed.iter().any(|argument| argument == "--control-plane"),
        "{printed:?}"
    );
    assert!(
        printed.iter().any(|argument| argument == CERTIFICATE_KEY),
        "{printed:?}"
    );
    // No kubelet runs in this sandbox: the static-pod runner stands in for it, so the kubelet phases are left out.
    let local = [
        "--apiserver-advertise-address",
        address.as_str(),
        "--skip-phases=preflight,container-runtime,kubelet-start,control-plane-join",
    ];
    let without_key: Vec<&str> = {
        let mut arguments = vec!["join"];
        let mut skip_next = false;
        for argument in printed {
            if skip_next {
                skip_next = false;
                continue;
            }
            if argument == "--certificate-key" {
                skip_next = true;
                continue;
            }
            arguments.push(argument.as_str());
        }
        arguments.extend(local);
        arguments
    };
    let missing = bosun_on(&node, &root, &without_key);
    assert_refused(
        "a control-plane join without a certificate key",
        &missing,
        &["no certificate key was given"],
        &root,
    );
    let mut wrong_key = without_key.clone();
    let other_key = "f".repeat(64);
    wrong_key.extend(["--certificate-key", other_key.as_str()]);
    let wrong = bosun_on(&node, &root, &wrong_key);
    assert_refused(
        "a wrong certificate key",
        &wrong,
        &["does not open the Secret kube-system/kubeadm-certs"],
        &root,
    );

    // The printed control-plane command, as it is, with this sandbox's address.
    let mut arguments = vec![
        "--root",
        root.path().to_str().expect("utf-8"),
        "-o",
        "json",
        "join",
    ];
    arguments.extend(strings(printed));
    arguments.extend(local);
    let join_log = tempfile::NamedTempFile::new().expect("log file");
    let mut join = node
        .command(env!("CARGO_BIN_EXE_bosun"))
        .args(&arguments)
        .env_remove("BOSUN_ROOT")
        .env("BOSUN_SERVICE_BACKEND", "process")
        .stdin(Stdio::null())
        .stdout(join_log.reopen().expect("log"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bosun join --control-plane");
    let manifest = root.join("/etc/kubernetes/manifests/etcd.yaml");
    wait_for("the joining node's etcd manifest", READY_TIMEOUT, || {
        manifest.exists().then_some(())
    });
    let text = std::fs::read_to_string(&manifest).expect("etcd.yaml");
    assert!(text.contains("--initial-cluster-state=existing"), "{text}");
    assert!(
        text.contains(&format!(
            "join-cp-1=https://{}:2380",
            network::address(CONTROL_PLANE)
        )) && text.contains(&format!("join-cp-2=https://{address}:2380")),
        "{text}"
    );
    // The learner exists before its etcd runs.
    let members = etcd_members(plane);
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(
        members.iter().any(|member| member["isLearner"] == true),
        "{members:?}"
    );
    // The kubelet's part: run the joining node's static pods.
    let mut pods = StaticPods::start(&node, root.path(), binaries);
    let deadline = Instant::now() + READY_TIMEOUT;
    let status = loop {
        if let Some(status) = join.try_wait().expect("wait for bosun join") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "bosun join --control-plane did not finish"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = join.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    let events = std::fs::read_to_string(join_log.path()).unwrap_or_default();
    assert!(
        status.success(),
        "bosun join --control-plane failed:\n{stderr}\n{events}"
    );
    assert!(events.contains("added as a learner"), "{events}");
    assert!(events.contains("promoted to a voting member"), "{events}");

    // Real etcdctl: two voting members.
    let members = etcd_members(plane);
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(
        members.iter().all(|member| member["isLearner"] != true),
        "a member is still a learner: {members:?}"
    );
    assert!(
        members.iter().any(|member| member["name"] == "join-cp-2"),
        "{members:?}"
    );
    // The downloaded certificates are the first node's, keys 0600.
    for file in [
        "ca.crt",
        "ca.key",
        "front-proxy-ca.key",
        "sa.key",
        "sa.pub",
        "etcd/ca.key",
    ] {
        let node_path = format!("/etc/kubernetes/pki/{file}");
        assert_eq!(
            root.read(&node_path),
            plane.root.read(&node_path),
            "{file} differs"
        );
        if file.ends_with(".key") {
            let mode = std::fs::metadata(root.join(&node_path))
                .expect("metadata")
                .permissions();
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
                0o600,
                "{file}"
            );
        }
    }
    for (file, ca) in [
        ("apiserver.crt", "ca.crt"),
        ("etcd/peer.crt", "etcd/ca.crt"),
        ("apiserver-etcd-client.crt", "etcd/ca.crt"),
    ] {
        let output = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(root.join(&format!("/etc/kubernetes/pki/{ca}")))
            .arg(root.join(&format!("/etc/kubernetes/pki/{file}")))
            .output()
            .expect("openssl verify");
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The same command again finishes with nothing to do.
    let mut again = vec!["-o", "json", "join"];
    again.extend(strings(printed));
    again.extend(local);
    let second = bosun_on(&node, &root, &again);
    assert_ok("bosun join --control-plane, again", &second);
    let changed: Vec<String> = String::from_utf8_lossy(&second.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "artefact" && event["outcome"] != "unchanged")
        .map(|event| event.to_string())
        .collect();
    assert!(changed.is_empty(), "a second join changed: {changed:#?}");
    // mark-control-plane: no kubelet runs here to register the Node, so the test registers it as the kubelet would
    // (a bare Node object), then the printed command's control-plane-join phase labels and taints it.
    let registered =
        serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "join-cp-2"}})
            .to_string();
    let registered_file = tempfile::NamedTempFile::new().expect("node file");
    std::fs::write(registered_file.path(), registered).expect("write node file");
    assert_ok(
        "kubectl create node join-cp-2",
        &plane.kubectl(&[
            "create",
            "-f",
            registered_file.path().to_str().expect("utf-8"),
        ]),
    );
    let mut mark = vec!["join", "phase", "control-plane-join"];
    mark.extend(strings(printed));
    mark.extend(["--apiserver-advertise-address", address.as_str()]);
    assert_ok(
        "bosun join phase control-plane-join",
        &bosun_on(&node, &root, &mark),
    );
    let marked = plane.get_json(&["node", "join-cp-2"]);
    assert_eq!(
        marked["metadata"]["labels"]["node-role.kubernetes.io/control-plane"], "",
        "{marked}"
    );
    assert_eq!(
        marked["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"], "",
        "{marked}"
    );
    let taints = marked["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        taints.iter().any(
            |taint| taint["key"] == "node-role.kubernetes.io/control-plane"
                && taint["effect"] == "NoSchedule"
        ),
        "{marked}"
    );
    pods.wait_ready(READY_TIMEOUT);
    drop(pods);
}

/// `etcdctl member list` against the first control plane's etcd, with its healthcheck client certificate.
fn etcd_members(plane: &Plane<'_>) -> Vec<serde_json::Value> {
    let pki = plane.root.join("/etc/kubernetes/pki/etcd");
    let output = plane.sandbox.output(
        plane.binaries.path("etcdctl"),
        &[
            &format!(
                "--endpoints=https://{}:2379",
                network::address(CONTROL_PLANE)
            ),
            &format!("--cacert={}", pki.join("ca.crt").display()),
            &format!("--cert={}", pki.join("healthcheck-client.crt").display()),
            &format!("--key={}", pki.join("healthcheck-client.key").display()),
            "member",
            "list",
            "-w",
            "json",
        ],
    );
    assert_ok("etcdctl member list", &output);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("etcdctl JSON");
    value["members"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_worker_joins_with_the_printed_command_and_its_real_kubelet_bootstraps() {
    let Some(binaries) = Binaries::require(
        "join::a_worker_joins_with_the_printed_command_and_its_real_kubelet_bootstraps",
        crate::tier2::TIER2,
    ) else {
        return;
    };
    let network = Network::new();
    let first = Sandbox::on_network("join-kcp-1", &network, &network::address(CONTROL_PLANE));
    with_control_plane(&binaries, &first, |cluster| {
        let plane = &cluster.plane;
        let address = network::address(13);
        let worker = Node::start(
            "join-worker",
            NodeNetwork::External {
                address: address.clone(),
            },
        );
        network.attach(worker.pid(), &address);
        worker.write(
            "/etc/containerd/config.toml",
            worker.containerd_config().as_bytes(),
        );
        // This node's own kubelet settings, the kubeadm way: a patch over the cluster's KubeletConfiguration.
        worker.write(
            "/etc/bosun-join/patches/kubeletconfiguration+strategic.yaml",
            format!("cgroupRoot: {}\n", worker.cgroup_root()).as_bytes(),
        );
        let local = [
            "--patches",
            "/etc/bosun-join/patches",
            "--ignore-preflight-errors=SystemVerification",
        ];
        let started = Instant::now();
        // The runtime first, as a real host has it before `kubeadm join`; then the printed command, as it is.
        let mut runtime = vec!["join", "phase", "container-runtime"];
        runtime.extend(strings(&cluster.commands.worker));
        runtime.extend(local);
        assert_ok(
            "bosun join phase container-runtime",
            &crate::tier2::bosun(&worker, &binaries, &runtime),
        );
        let mut join = vec!["-o", "json", "join"];
        join.extend(strings(&cluster.commands.worker));
        join.extend(local);
        // A join that fails part-way (no kubelet on this host's PATH yet) has written the cluster CA and the
        // bootstrap credentials; the same command, once the kubelet is installed, continues from there.
        let mut without_kubelet = join.clone();
        without_kubelet.push("--ignore-preflight-errors=FileExisting-kubelet,KubeletVersion");
        let failed = worker
            .command(env!("CARGO_BIN_EXE_bosun"))
            .args(&without_kubelet)
            .env("BOSUN_SERVICE_BACKEND", "process")
            .stdin(Stdio::null())
            .output()
            .expect("run bosun join without a kubelet");
        let failed_stderr = String::from_utf8_lossy(&failed.stderr);
        assert_eq!(failed.status.code(), Some(5), "{failed_stderr}");
        assert!(
            failed_stderr.contains("kubelet is not installed"),
            "{failed_stderr}"
        );
        assert!(worker
            .path("/etc/kubernetes/bootstrap-kubelet.conf")
            .exists());
        assert!(!worker.path("/etc/kubernetes/kubelet.conf").exists());
        let joined = crate::tier2::bosun(&worker, &binaries, &join);
        assert!(
            joined.status.success(),
            "bosun join failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&joined.stderr),
            String::from_utf8_lossy(&joined.stdout),
            worker.log_tails(40)
        );
        eprintln!("join: the worker joined in {:?}", started.elapsed());
        let events = String::from_utf8_lossy(&joined.stdout);
        assert!(
            events.contains("written by the kubelet's TLS bootstrap"),
            "{events}"
        );
        let resumed: Vec<serde_json::Value> = events
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["artefact"] == "/etc/kubernetes/bootstrap-kubelet.conf")
            .collect();
        assert!(
            !resumed.is_empty() && resumed.iter().all(|event| event["outcome"] == "unchanged"),
            "the re-run did not find the bootstrap credentials in place: {resumed:?}"
        );

        // The kubelet's CSR, made with the bootstrap token, was approved and signed by the real controller manager.
        let csrs = plane.get_json(&["csr"]);
        let ours: Vec<&serde_json::Value> = csrs["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|csr| csr["spec"]["username"] == "system:bootstrap:abcdef")
            .collect();
        assert!(!ours.is_empty(), "no CSR of the bootstrap token: {csrs}");
        let csr = ours[0];
        assert_eq!(
            csr["spec"]["signerName"],
            "kubernetes.io/kube-apiserver-client-kubelet"
        );
        let conditions = csr["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|condition| condition["type"] == "Approved" && condition["status"] == "True"),
            "{csr}"
        );
        assert!(
            csr["status"]["certificate"]
                .as_str()
                .is_some_and(|pem| !pem.is_empty()),
            "{csr}"
        );
        // kubelet.conf points at the kubelet's own certificate, which the cluster CA signed for this node.
        let kubelet_conf = std::fs::read_to_string(worker.path("/etc/kubernetes/kubelet.conf"))
            .expect("kubelet.conf");
        assert!(
            kubelet_conf.contains(&format!("https://{}:6443", network::address(CONTROL_PLANE))),
            "{kubelet_conf}"
        );
        // kubelet-client-current.pem is a symbolic link to an absolute node path: follow it inside the node.
        let link = worker.path("/var/lib/kubelet/pki/kubelet-client-current.pem");
        let current = match std::fs::read_link(&link) {
            Ok(target) if target.is_absolute() => worker.path(target.to_str().expect("utf-8")),
            Ok(target) => link.parent().expect("pki directory").join(target),
            Err(_) => link,
        };
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(plane.root.join("/etc/kubernetes/pki/ca.crt"))
            .arg(&current)
            .output()
            .expect("openssl verify");
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let subject = Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(&current)
            .output()
            .expect("openssl x509");
        assert!(
            String::from_utf8_lossy(&subject.stdout).contains("system:node:join-worker"),
            "{}",
            String::from_utf8_lossy(&subject.stdout)
        );
        // The Node object is there.
        let node = plane.get_json(&["node", "join-worker"]);
        assert_eq!(node["metadata"]["name"], "join-worker");
        // The same command again: this node has joined, so preflight refuses it.
        let mut again = vec!["join"];
        again.extend(strings(&cluster.commands.worker));
        again.extend(local);
        let second = crate::tier2::bosun(&worker, &binaries, &again);
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(
            !second.status.success(),
            "a second join was not refused:\n{stderr}"
        );
        assert!(
            stderr.contains("this node has already joined a cluster"),
            "{stderr}"
        );
    });
}

/// Serves `file` over https from the control plane's sandbox with a certificate of a throw-away CA, and discovers
/// from its URL: trusted through SSL_CERT_FILE it works; with the system's usual trust it is refused.
fn https_discovery_file(
    plane: &Plane<'_>,
    node: &Sandbox,
    root: &TempRoot,
    scratch: &Path,
    file: &Path,
) {
    let address = network::address(CONTROL_PLANE);
    let script = format!(
        "set -e; cd {dir}; \
         openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=join-test-ca 2>/dev/null; \
         openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN={address} 2>/dev/null; \
         printf 'subjectAltName=IP:{address}\\n' > san.ext; \
         openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 \
           -extfile san.ext 2>/dev/null",
        dir = scratch.display()
    );
    let made = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("openssl");
    assert_ok("making the test CA and server certificate", &made);
    let server = format!(
        "import http.server, ssl\n\
         server = http.server.HTTPServer(('{address}', 8443), http.server.SimpleHTTPRequestHandler)\n\
         context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         context.load_cert_chain('server.crt', 'server.key')\n\
         server.socket = context.wrap_socket(server.socket, server_side=True)\n\
         server.serve_forever()\n"
    );
    let mut https = plane
        .sandbox
        .command("python3")
        .args(["-c", &server])
        .current_dir(scratch)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 https server");
    let name = file
        .file_name()
        .expect("file name")
        .to_str()
        .expect("utf-8");
    let url = format!("https://{address}:8443/{name}");
    let ca = scratch.join("ca.crt");
    let discover = |trusted: bool| {
        let mut command = node.command(env!("CARGO_BIN_EXE_bosun"));
        command
            .args([
                "--root",
                root.path().to_str().expect("utf-8"),
                "-o",
                "json",
                "join",
                "phase",
                "discovery",
            ])
            .args(["--discovery-file", &url, "--tls-bootstrap-token", TOKEN])
            .env_remove("BOSUN_ROOT")
            .env("BOSUN_SERVICE_BACKEND", "process")
            .stdin(Stdio::null());
        if trusted {
            command.env("SSL_CERT_FILE", &ca);
        }
        command.output().expect("run bosun join phase discovery")
    };
    let trusted = wait_until("the https discovery file", Duration::from_secs(30), || {
        let output = discover(true);
        if output.status.success() {
            Ok(output)
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    });
    assert!(
        String::from_utf8_lossy(&trusted.stdout).contains(&format!("CA from {url}")),
        "{}",
        String::from_utf8_lossy(&trusted.stdout)
    );
    let untrusted = discover(false);
    let _ = https.kill();
    let _ = https.wait();
    assert_refused(
        "a discovery URL whose server is not trusted",
        &untrusted,
        &[&format!("cannot fetch the discovery file {url}")],
        root,
    );
}
