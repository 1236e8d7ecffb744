//! Node configuration checked by real parts: the rendered static pods against the Kubernetes OpenAPI schema
//! (kubernetes-validate), etcd started with exactly the command line of bosun's etcd manifest, and a real
//! containerd loading bosun's config.toml.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bosun_phases::node::cgroup::CgroupDriver;
use bosun_phases::node::runtime;
use bosun_phases::render::Templates;

use crate::support::{assert_success, bosun_in, TempRoot};

/// A child process killed when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Runs `bosun init --offline` (certificates, kubeconfigs, manifests) with a configuration file.
fn init_offline(root: &TempRoot, config: &str) {
    let config_path = root.path().join("bosun-test-config.yaml");
    std::fs::write(&config_path, config).expect("write config");
    let output = bosun_in(
        root,
        &[
            "init",
            "--offline",
            "--config",
            config_path.to_str().expect("utf-8"),
        ],
    );
    assert_success(&output);
}

fn manifest_command(root: &TempRoot, component: &str) -> Vec<String> {
    let text = root.read_string(&format!("/etc/kubernetes/manifests/{component}.yaml"));
    let value = bosun_config::yaml::value_from_str(&text).expect("manifest is YAML");
    value["spec"]["containers"][0]["command"]
        .as_sequence()
        .expect("command list")
        .iter()
        .map(|word| word.as_str().expect("string").to_owned())
        .collect()
}

fn validator() -> PathBuf {
    which::which("kubernetes-validate").unwrap_or_else(|_| {
        panic!("kubernetes-validate is not installed; tests/install-deps installs it (pip install kubernetes-validate)")
    })
}

fn assert_valid_pods(root: &TempRoot) {
    let manifests: Vec<String> = [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    .iter()
    .map(|component| {
        root.join(&format!("/etc/kubernetes/manifests/{component}.yaml"))
            .display()
            .to_string()
    })
    .collect();
    let output = Command::new(validator())
        .args(["--kubernetes-version", "1.35.0", "--strict"])
        .args(&manifests)
        .output()
        .expect("run kubernetes-validate");
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubernetes-validate rejected a manifest:\n{report}"
    );
    assert_eq!(
        report.matches("passed for resource pod/").count(),
        4,
        "{report}"
    );
}

const IPV4: &str = "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
nodeRegistration:
  name: node-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
networking:
  podSubnet: 10.244.0.0/16
apiServer:
  extraArgs:
  - name: audit-log-path
    value: /var/log/kubernetes/audit.log
  extraVolumes:
  - name: audit
    hostPath: /var/log/kubernetes
    mountPath: /var/log/kubernetes
    pathType: DirectoryOrCreate
  extraEnvs:
  - name: GOMAXPROCS
    value: \"2\"
  - name: POD_IP
    valueFrom:
      fieldRef:
        fieldPath: status.podIP
";

#[test]
fn rendered_manifests_validate_against_the_kubernetes_openapi_schema() {
    let root = TempRoot::new();
    init_offline(&root, IPV4);
    assert_valid_pods(&root);
}

#[test]
fn dual_stack_ipv6_and_patched_manifests_validate_too() {
    let root = TempRoot::new();
    root.write(
        "/etc/bosun/patches/kube-apiserver+strategic.yaml",
        b"spec:\n  containers:\n  - name: kube-apiserver\n    resources:\n      limits:\n        memory: 2Gi\n",
    );
    root.write(
        "/etc/bosun/patches/etcd+json.yaml",
        b"- op: add\n  path: /metadata/labels/tuned\n  value: \"yes\"\n",
    );
    // The patches directory is a node path, like every path in the configuration.
    let patches = "/etc/bosun/patches";
    let config = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: fd00::10
patches:
  directory: {patches}
nodeRegistration:
  name: node-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
networking:
  serviceSubnet: fd00:10:96::/112,10.96.0.0/16
  podSubnet: fd00:10:244::/56,10.244.0.0/16
"
    );
    init_offline(&root, &config);
    assert_valid_pods(&root);
    let etcd = root.read_string("/etc/kubernetes/manifests/etcd.yaml");
    assert!(etcd.contains("tuned: \"yes\""), "{etcd}");
    assert!(
        etcd.contains("--listen-client-urls=https://[::1]:2379,https://[fd00::10]:2379"),
        "{etcd}"
    );
}

/// Rewrites the manifest's node paths to the test root and drops what etcd 3.4 lacks (see the test).
fn etcd_3_4_command_line(command: &[String], root: &TempRoot) -> Vec<String> {
    let under_root = |value: &str| {
        ["/etc/kubernetes", "/var/lib/etcd"]
            .iter()
            .fold(value.to_owned(), |text, prefix| {
                if text.starts_with(prefix) {
                    root.join(&text).display().to_string()
                } else {
                    text
                }
            })
    };
    command[1..]
        .iter()
        .map(|flag| {
            let (name, value) = flag.split_once('=').expect("--name=value");
            match (name, value) {
                // etcd 3.6 names; 3.4 spells them with the experimental- prefix and has no --feature-gates.
                ("--feature-gates", "InitialCorruptCheck=true") => {
                    "--experimental-initial-corrupt-check=true".to_owned()
                }
                ("--watch-progress-notify-interval", value) => {
                    format!("--experimental-watch-progress-notify-interval={value}")
                }
                (name, value) => format!("{name}={}", under_root(value)),
            }
        })
        .collect()
}

/// Debian's etcd is 3.4 and the manifest targets etcd 3.6 (kubeadm 1.35). The test runs etcd with exactly the
/// manifest's command line, translating only the two flags 3.4 spells differently (--feature-gates=
/// InitialCorruptCheck=true and --watch-progress-notify-interval), and with node paths placed under the test root.
#[test]
fn etcd_started_with_the_manifests_command_line_serves_tls_with_bosuns_certificates() {
    let etcd_binary = which::which("etcd").expect("etcd is installed by tests/install-deps");
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let root = TempRoot::new();
    let config = format!(
        "{}---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
etcd:
  local:
    extraArgs:
    - name: listen-client-urls
      value: https://127.0.0.1:{client}
    - name: advertise-client-urls
      value: https://127.0.0.1:{client}
    - name: listen-peer-urls
      value: https://127.0.0.1:{peer}
    - name: initial-advertise-peer-urls
      value: https://127.0.0.1:{peer}
    - name: initial-cluster
      value: node-1=https://127.0.0.1:{peer}
    - name: listen-metrics-urls
      value: http://127.0.0.1:{metrics}
",
        IPV4.split("---").next().expect("init document")
    );
    init_offline(&root, &config);
    let command = manifest_command(&root, "etcd");
    assert_eq!(command[0], "etcd");
    let arguments = etcd_3_4_command_line(&command, &root);
    std::fs::create_dir_all(root.join("/var/lib/etcd")).expect("data dir");
    let log_path = root.join("/var/log/etcd.log");
    std::fs::create_dir_all(log_path.parent().expect("parent")).expect("log dir");
    let log = std::fs::File::create(&log_path).expect("log");
    let _etcd = Running(
        Command::new(etcd_binary)
            .args(&arguments)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start etcd"),
    );
    let pki = |name: &str| {
        root.join(&format!("/etc/kubernetes/pki/{name}"))
            .display()
            .to_string()
    };
    let etcdctl = |extra: &[&str]| {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                &format!("--endpoints=https://127.0.0.1:{client}"),
                &format!("--cacert={}", pki("etcd/ca.crt")),
                &format!("--cert={}", pki("apiserver-etcd-client.crt")),
                &format!("--key={}", pki("apiserver-etcd-client.key")),
                "--dial-timeout=2s",
            ])
            .args(extra)
            .output()
            .expect("run etcdctl")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if etcdctl(&["endpoint", "health"]).status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "etcd did not become healthy; its log:\n{}\narguments: {arguments:#?}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_success_output(&etcdctl(&["put", "/bosun/test", "value"]));
    let got = etcdctl(&["get", "/bosun/test", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "value");
    // The client port demands a certificate signed by bosun's etcd CA: the healthcheck client's works too.
    let healthcheck = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            &format!("--endpoints=https://127.0.0.1:{client}"),
            &format!("--cacert={}", pki("etcd/ca.crt")),
            &format!("--cert={}", pki("etcd/healthcheck-client.crt")),
            &format!("--key={}", pki("etcd/healthcheck-client.key")),
            "endpoint",
            "health",
        ])
        .output()
        .expect("etcdctl");
    assert_success_output(&healthcheck);
    // Without a client certificate the TLS handshake is refused.
    let anonymous = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{client}"),
            "-CAfile",
            &pki("etcd/ca.crt"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let handshake = String::from_utf8_lossy(&anonymous.stdout).into_owned()
        + &String::from_utf8_lossy(&anonymous.stderr);
    assert!(
        handshake.contains("CN = node-1") || handshake.contains("CN=node-1"),
        "the server certificate is bosun's etcd/server.crt:\n{handshake}"
    );
    // The probe endpoint of the manifest is plain HTTP on the metrics URL (3.4 has /health, 3.6 adds /livez).
    let probe = Command::new("curl")
        .args(["-fsS", &format!("http://127.0.0.1:{metrics}/health")])
        .output()
        .expect("curl");
    assert_success_output(&probe);
}

#[track_caller]
fn assert_success_output(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Asks containerd's CRI service for its verbose status over gRPC (crictl is not packaged in bookworm) and returns
/// the `config` entry of its info map as JSON.
pub(crate) fn cri_status_config(socket: &Path) -> serde_json::Value {
    const CLIENT: &str = r#"
import sys, grpc
channel = grpc.insecure_channel("unix://" + sys.argv[1])
status = channel.unary_unary("/runtime.v1.RuntimeService/Status",
    request_serializer=lambda body: body, response_deserializer=lambda body: body)
reply = status(b"\x08\x01", timeout=10)  # StatusRequest{verbose: true}
def varint(data, at):
    shift = value = 0
    while True:
        byte = data[at]; at += 1
        value |= (byte & 0x7F) << shift; shift += 7
        if byte < 0x80: return value, at
def fields(data):
    at = 0
    while at < len(data):
        key, at = varint(data, at)
        if key & 7 == 2:
            length, at = varint(data, at)
            yield key >> 3, data[at:at + length]; at += length
        elif key & 7 == 0:
            _, at = varint(data, at)
        else:
            raise SystemExit("unexpected wire type")
for number, entry in fields(reply):
    if number == 2:  # map<string, string> info
        pair = dict(fields(entry))
        if pair.get(1) == b"config":
            sys.stdout.write(pair[2].decode())
"#;
    let output = Command::new("python3")
        .args(["-c", CLIENT, socket.to_str().expect("utf-8")])
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "the CRI status call failed (tests/install-deps installs grpcio): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("CRI config is JSON")
}

const USER_CONTAINERD_CONFIG: &str = r#"# Site settings that bosun must keep.
version = 2
oom_score = -999

[debug]
  level = "debug"

[plugins."io.containerd.grpc.v1.cri"]
  enable_unprivileged_ports = true
  sandbox_image = "registry.k8s.io/pause:3.6"

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["https://mirror.example.invalid"]

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    BinaryName = "/usr/sbin/runc"
    SystemdCgroup = false
"#;

#[test]
fn containerd_loads_bosuns_config_and_its_cri_status_reports_bosuns_settings() {
    let containerd =
        which::which("containerd").expect("containerd is installed by tests/install-deps");
    let root = TempRoot::new();
    let socket = root.join("/run/containerd/containerd.sock");
    std::fs::create_dir_all(socket.parent().expect("parent")).expect("run dir");
    // A second instance on this host: its own root, state, opt directory and socket.
    let mut context = runtime::containerd_context(
        &format!("unix://{}", socket.display()),
        "registry.k8s.io/pause:3.10.1",
        // systemd, although containerd's default is cgroupfs: the CRI status must show bosun's value, not a default.
        CgroupDriver::Systemd,
    );
    context.root = Some(root.join("/var/lib/containerd").display().to_string());
    context.state = Some(root.join("/run/containerd/state").display().to_string());
    context.opt_path = Some(root.join("/opt/containerd").display().to_string());
    context.netns_mounts_under_state_dir = true;
    let merged = runtime::containerd_config_file(
        &Templates::embedded(),
        runtime::containerd_template(1),
        &context,
        Some(USER_CONTAINERD_CONFIG),
    )
    .expect("merge");
    let config_path = root.join("/etc/containerd/config.toml");
    std::fs::create_dir_all(config_path.parent().expect("parent")).expect("etc");
    std::fs::write(&config_path, &merged).expect("write config");

    // containerd's own reading of the file: the user's settings are all there.
    let dump = Command::new(&containerd)
        .args([
            "--config",
            config_path.to_str().expect("utf-8"),
            "config",
            "dump",
        ])
        .output()
        .expect("containerd config dump");
    assert_success_output(&dump);
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    for kept in [
        "oom_score = -999",
        "level = \"debug\"",
        "https://mirror.example.invalid",
        "enable_unprivileged_ports = true",
        "BinaryName = \"/usr/sbin/runc\"",
    ] {
        assert!(
            dump.contains(kept),
            "containerd lost the user's {kept}:\n{dump}"
        );
    }

    let log_path = root.join("/var/log/containerd.log");
    std::fs::create_dir_all(log_path.parent().expect("parent")).expect("log dir");
    let mut log = std::fs::File::create(&log_path).expect("log");
    writeln!(log, "--- config.toml ---\n{merged}").expect("log");
    let _daemon = Running(
        Command::new(&containerd)
            .args(["--config", config_path.to_str().expect("utf-8")])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let plugins = loop {
        let output = Command::new("ctr")
            .args([
                "--address",
                socket.to_str().expect("utf-8"),
                "plugins",
                "ls",
            ])
            .output()
            .expect("ctr");
        if output.status.success() {
            break String::from_utf8_lossy(&output.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "containerd did not answer; its log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let cri = plugins
        .lines()
        .find(|line| {
            line.starts_with("io.containerd.grpc.v1")
                && line.split_whitespace().nth(1) == Some("cri")
        })
        .unwrap_or_else(|| panic!("no CRI plugin:\n{plugins}"));
    assert_eq!(cri.split_whitespace().last(), Some("ok"), "{plugins}");

    let config = cri_status_config(&socket);
    assert_eq!(
        config["sandboxImage"], "registry.k8s.io/pause:3.10.1",
        "{config:#}"
    );
    let runc = &config["containerd"]["runtimes"]["runc"];
    assert_eq!(runc["options"]["SystemdCgroup"], true, "{config:#}");
    assert_eq!(
        runc["options"]["BinaryName"], "/usr/sbin/runc",
        "{config:#}"
    );
    assert_eq!(config["enableUnprivilegedPorts"], true, "{config:#}");
    assert_eq!(config["cni"]["binDir"], "/opt/cni/bin", "{config:#}");
}
