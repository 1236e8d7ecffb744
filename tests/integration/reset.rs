//! `bosun reset` against real parts: a root written by `bosun init --offline` comes back to what bosun did not
//! write; a dry run changes nothing; a real supervised process standing in for the kubelet is stopped; a real
//! containerd's Kubernetes containers go; a real two-member etcd (the built etcd 3.6, bosun's certificates) keeps
//! one member; and `bosun init` works again on the reset root, up to a real tier-1 control plane.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bosun::host::local::LocalFiles;
use bosun::host::services::ProcessServices;
use bosun_phases::host::{CommandSpec, Files, ServiceSpec, ServiceState, Services};

use crate::harness::binaries::Binaries;
use crate::support::{assert_exit, assert_success, bosun_in, stderr, stdout, TempRoot};

/// `bosun init --offline` with `extra` arguments.
fn init(root: &TempRoot, extra: &[&str]) -> Output {
    let mut arguments = vec!["init", "--offline"];
    arguments.extend_from_slice(extra);
    bosun_in(root, &arguments)
}

/// `bosun reset --force` with `extra` arguments, stdin closed.
fn reset(root: &TempRoot, extra: &[&str]) -> Output {
    let mut arguments = vec!["reset", "--force"];
    arguments.extend_from_slice(extra);
    bosun_in(root, &arguments)
}

/// Files a node has that bosun did not write, and which reset must leave alone.
const NOT_BOSUNS: [(&str, &str); 5] = [
    ("/etc/containerd/config.toml", "version = 2\n"),
    ("/root/.kube/config", "apiVersion: v1\nkind: Config\n"),
    ("/etc/hosts", "127.0.0.1 localhost\n"),
    ("/etc/kubernetes/README.operator", "our notes\n"),
    ("/var/lib/cni/networks/cbr0/10.244.0.2", "container-id\n"),
];

/// Files a running node has besides those init wrote, and which reset removes.
const NODE_STATE: [&str; 4] = [
    "/var/lib/kubelet/config.yaml",
    "/var/lib/kubelet/pki/kubelet-client-current.pem",
    "/var/lib/kubelet/pods/0b7c/volumes/kubernetes.io~projected/token",
    "/etc/cni/net.d/10-bridge.conflist",
];

fn node_files(root: &TempRoot) -> Vec<String> {
    root.listing()
        .into_iter()
        .filter(|path| !path.starts_with("/var/lib/bosun/"))
        .collect()
}

#[test]
fn reset_removes_what_init_wrote_and_keeps_what_it_did_not() {
    let root = TempRoot::new();
    assert_success(&init(&root, &[]));
    for (path, contents) in NOT_BOSUNS {
        root.write(path, contents.as_bytes());
    }
    for path in NODE_STATE {
        root.write(path, b"state");
    }
    root.write("/var/lib/etcd/member/snap/db", b"bolt");
    assert!(node_files(&root).len() > 30, "{:#?}", root.listing());

    let output = reset(&root, &[]);
    assert_success(&output);
    let log = stderr(&output);
    let mut expected: Vec<String> = NOT_BOSUNS
        .iter()
        .map(|(path, _)| (*path).to_owned())
        .collect();
    expected.sort();
    assert_eq!(node_files(&root), expected, "{log}");
    for (path, contents) in NOT_BOSUNS {
        assert_eq!(root.read_string(path), contents, "{path} changed");
    }
    for directory in [
        "/etc/kubernetes/pki",
        "/etc/kubernetes/manifests",
        "/var/lib/kubelet",
        "/var/lib/etcd",
    ] {
        assert!(
            root.join(directory).is_dir(),
            "{directory} itself stays, emptied"
        );
    }
    assert!(
        log.contains("[preflight] this node (root ")
            && log.contains("a control-plane node with a local (stacked) etcd member"),
        "{log}"
    );
    assert!(
        log.contains("[cleanup-node/files] removed /etc/kubernetes/pki/ca.key"),
        "{log}"
    );
    assert!(
        log.contains("iptables"),
        "reset says what it leaves:\n{log}"
    );
    assert!(
        log.contains("$HOME/.kube/config"),
        "reset says what it leaves:\n{log}"
    );

    // A second reset finds nothing left to do and says so.
    let again = reset(&root, &[]);
    assert_success(&again);
    assert!(!stderr(&again).contains("] removed "), "{}", stderr(&again));
    assert_eq!(node_files(&root), expected);
}

#[test]
fn a_dry_run_changes_nothing_and_lists_what_would_go() {
    let root = TempRoot::new();
    assert_success(&init(&root, &[]));
    for path in NODE_STATE {
        root.write(path, b"state");
    }
    let before = root.snapshot();
    // A dry run needs no confirmation, even without a terminal.
    let output = bosun_in(&root, &["reset", "--dry-run"]);
    assert_success(&output);
    assert_eq!(
        before,
        root.snapshot(),
        "a dry run changed bytes, modes or mtimes"
    );
    let log = stderr(&output);
    for line in [
        "would remove /etc/kubernetes/pki/ca.key",
        "would remove /etc/kubernetes/manifests/etcd.yaml",
        "would remove /var/lib/kubelet/pods",
        "would remove /etc/kubernetes/admin.conf",
        "would remove /etc/cni/net.d/10-bridge.conflist",
    ] {
        assert!(log.contains(line), "{line}\n{log}");
    }
    assert!(
        !log.contains("PRIVATE KEY"),
        "a dry run printed key material"
    );

    // -o json: the plan as one JSON event per line on stdout.
    let output = bosun_in(&root, &["reset", "--dry-run", "-o", "json"]);
    assert_success(&output);
    let planned: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event per line"))
        .filter(|event: &serde_json::Value| event["event"] == "planned")
        .collect();
    assert!(
        planned.iter().any(|event| {
            event["change"]["kind"] == "remove"
                && event["change"]["path"] == "/etc/kubernetes/pki/ca.key"
        }),
        "{}",
        stdout(&output)
    );
    assert_eq!(before, root.snapshot());
}

#[test]
fn without_a_terminal_and_without_force_reset_refuses_and_changes_nothing() {
    let root = TempRoot::new();
    assert_success(&init(&root, &[]));
    let before = node_files(&root);
    let output = bosun_in(&root, &["reset"]);
    assert_exit(&output, bosun::exit::PREFLIGHT_FAILED);
    let log = stderr(&output);
    assert!(log.contains("stdin is not a terminal"), "{log}");
    assert!(log.contains("hint: pass --force"), "{log}");
    assert_eq!(before, node_files(&root));
}

#[test]
fn a_custom_certificates_dir_from_a_reset_configuration_is_cleaned() {
    let root = TempRoot::new();
    let config = root.join("/cluster.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificatesDir: /srv/pki\n",
    )
    .expect("write config");
    assert_success(&init(&root, &["--config", config.to_str().expect("utf-8")]));
    assert!(root.join("/srv/pki/ca.crt").is_file());
    let reset_config = root.join("/reset.yaml");
    std::fs::write(
        &reset_config,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\ncertificatesDir: /srv/pki\ncleanupTmpDir: true\n",
    )
    .expect("write reset config");
    root.write(
        "/etc/kubernetes/tmp/kubeadm-backup-manifests-x/etcd.yaml",
        b"old",
    );
    let output = reset(&root, &["--config", reset_config.to_str().expect("utf-8")]);
    assert_success(&output);
    let log = stderr(&output);
    assert!(!root.join("/srv/pki/ca.crt").exists(), "{log}");
    assert!(
        !root
            .join("/etc/kubernetes/tmp/kubeadm-backup-manifests-x")
            .exists(),
        "{log}"
    );
    assert!(
        log.contains("not the default: /srv/pki"),
        "a non-default directory is worth a warning:\n{log}"
    );
}

/// Pids of `sleep` processes whose command line contains `marker`.
fn sleepers(marker: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc") {
        let entry = entry.expect("entry");
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(command_line) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let command_line = String::from_utf8_lossy(&command_line).replace('\0', " ");
            if command_line.starts_with("sleep ") && command_line.contains(marker) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

#[test]
fn the_kubelet_service_under_the_process_backend_is_stopped_and_removed() {
    let root = TempRoot::new();
    assert_success(&init(&root, &[]));
    let files = LocalFiles::new(root.path());
    let services = ProcessServices::new(files.clone(), PathBuf::from(env!("CARGO_BIN_EXE_bosun")));
    // A real long-running program under bosun's supervisor, installed under the kubelet's service name.
    let marker = format!(
        "{}.{}",
        4000 + std::process::id() % 1000,
        std::process::id()
    );
    let spec = ServiceSpec {
        name: "kubelet".to_owned(),
        description: "kubelet stand-in".to_owned(),
        command: CommandSpec::new("sleep").arg(&marker),
        environment_files: Vec::new(),
        restart_after_seconds: 1,
    };
    services.install(&spec).expect("install");
    services.start("kubelet").expect("start");
    wait_for(
        "the kubelet stand-in to run",
        Duration::from_secs(15),
        || !sleepers(&marker).is_empty(),
    );

    let output = reset(&root, &["--service-backend", "process"]);
    assert_success(&output);
    let log = stderr(&output);
    assert!(
        log.contains("[cleanup-node/kubelet] updated service kubelet (stopped (process))"),
        "{log}"
    );
    assert!(
        log.contains("[cleanup-node/kubelet] removed service definition kubelet (process)"),
        "{log}"
    );
    // The supervisor restarts the program after a second; none comes back.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        sleepers(&marker).is_empty(),
        "the kubelet stand-in still runs\n{log}"
    );
    assert_eq!(
        services.state("kubelet").expect("state"),
        ServiceState::Unknown
    );
    assert!(!files
        .exists(Path::new("/etc/bosun/services/kubelet.json"))
        .expect("exists"));
}

#[test]
fn a_real_containerd_has_no_kubernetes_containers_left() {
    use crate::harness::containerd::Containerd;
    use crate::harness::sandbox::Sandbox;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("!!!!!!!! SKIPPED reset::a_real_containerd_has_no_kubernetes_containers_left: needs root");
        return;
    }
    let root = TempRoot::new();
    assert_success(&init(&root, &[]));
    let sandbox = Sandbox::new("reset-containerd");
    let containerd = Containerd::start(&sandbox, "registry.k8s.io/pause:3.10");
    // A root filesystem with a static busybox: no image needed.
    let rootfs = tempfile::tempdir().expect("rootfs");
    std::fs::create_dir_all(rootfs.path().join("bin")).expect("bin");
    std::fs::copy("/usr/bin/busybox", rootfs.path().join("bin/busybox")).expect("busybox");
    let rootfs_path = rootfs.path().to_str().expect("utf-8");
    let running = containerd.ctr(&[
        "run",
        "--detach",
        "--rootfs",
        rootfs_path,
        "reset-running",
        "/bin/busybox",
        "sleep",
        "600",
    ]);
    assert!(
        running.status.success(),
        "ctr run: {}",
        String::from_utf8_lossy(&running.stderr)
    );
    let created = containerd.ctr(&[
        "containers",
        "create",
        "--rootfs",
        rootfs_path,
        "reset-created",
        "/bin/busybox",
        "true",
    ]);
    assert!(
        created.status.success(),
        "ctr containers create: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let listed = |what: &str| -> Vec<String> {
        let output = containerd.ctr(&[what, "list", "--quiet"]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(listed("containers").len(), 2);
    assert_eq!(listed("tasks"), ["reset-running"]);

    let socket = format!("unix://{}", containerd.socket().display());
    let output = reset(&root, &["--cri-socket", &socket]);
    assert_success(&output);
    let log = stderr(&output);
    assert!(
        log.contains("[cleanup-node/containers] removed container reset-running"),
        "{log}"
    );
    assert!(
        log.contains("[cleanup-node/containers] removed container reset-created"),
        "{log}"
    );
    assert!(listed("containers").is_empty(), "{log}");
    assert!(listed("tasks").is_empty(), "{log}");

    // Nothing left: a second reset finds no container.
    let again = reset(&root, &["--cri-socket", &socket]);
    assert_success(&again);
    assert!(
        stderr(&again).contains("containers in containerd namespace k8s.io (none)"),
        "{}",
        stderr(&again)
    );
}

/// A kubeadm configuration for a control-plane node `name` advertising `address`.
fn node_config(name: &str, address: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: {address}\n\
         nodeRegistration:\n  name: {name}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
    )
}

/// etcd's command line from a root's manifest, with absolute paths placed under the root (as hostPath volumes
/// would) and `overrides` replacing flags of the same name.
fn etcd_command(root: &TempRoot, overrides: &[(&str, String)]) -> Vec<String> {
    let manifest = root.read_string("/etc/kubernetes/manifests/etcd.yaml");
    let mut flags: Vec<(String, String)> = manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- --"))
        .filter_map(|flag| flag.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    for (name, value) in overrides {
        match flags.iter_mut().find(|(flag, _)| flag == name) {
            Some(existing) => existing.1 = value.clone(),
            None => flags.push(((*name).to_owned(), value.clone())),
        }
    }
    flags
        .into_iter()
        .map(|(name, value)| {
            let value = if value.starts_with('/') {
                root.join(&value).display().to_string()
            } else {
                value
            };
            format!("--{name}={value}")
        })
        .collect()
}

struct Etcd(std::process::Child);

impl Etcd {
    fn start(binaries: &Binaries, root: &TempRoot, arguments: Vec<String>) -> Etcd {
        let log = std::fs::File::create(root.join("/etcd.log")).expect("log");
        Etcd(
            Command::new(binaries.path("etcd"))
                .args(arguments)
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start etcd"),
        )
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Real etcdctl with a root's health-check client certificate.
fn etcdctl(binaries: &Binaries, root: &TempRoot, endpoint: &str, arguments: &[&str]) -> Output {
    let pki = |name: &str| root.join(&format!("/etc/kubernetes/pki/etcd/{name}"));
    Command::new(binaries.path("etcdctl"))
        .arg(format!("--endpoints={endpoint}"))
        .arg(format!("--cacert={}", pki("ca.crt").display()))
        .arg(format!(
            "--cert={}",
            pki("healthcheck-client.crt").display()
        ))
        .arg(format!("--key={}", pki("healthcheck-client.key").display()))
        .args(arguments)
        .output()
        .expect("run etcdctl")
}

#[test]
fn a_control_plane_reset_leaves_its_etcd_cluster_with_the_other_member() {
    let Some(binaries) = Binaries::require(
        "reset::a_control_plane_reset_leaves_its_etcd_cluster_with_the_other_member",
        &["etcd", "etcdctl"],
    ) else {
        return;
    };
    let (address_a, address_b) = ("127.0.43.1", "127.0.43.2");
    let (root_a, root_b) = (TempRoot::new(), TempRoot::new());
    let config_a = root_a.join("/bosun.yaml");
    std::fs::write(&config_a, node_config("cp-a", address_a)).expect("config");
    assert_success(&init(
        &root_a,
        &["--config", config_a.to_str().expect("utf-8")],
    ));
    // One etcd CA for both members, as a control-plane join would bring it.
    for name in ["ca.crt", "ca.key"] {
        root_b.write(
            &format!("/etc/kubernetes/pki/etcd/{name}"),
            &root_a.read(&format!("/etc/kubernetes/pki/etcd/{name}")),
        );
    }
    let config_b = root_b.join("/bosun.yaml");
    std::fs::write(&config_b, node_config("cp-b", address_b)).expect("config");
    assert_success(&init(
        &root_b,
        &["--config", config_b.to_str().expect("utf-8")],
    ));

    // Loopback listeners would collide between the two members: each listens on its own address only.
    let own = |address: &str| {
        vec![
            ("listen-client-urls", format!("https://{address}:2379")),
            ("listen-metrics-urls", format!("http://{address}:2381")),
        ]
    };
    let endpoint_a = format!("https://{address_a}:2379");
    let endpoint_b = format!("https://{address_b}:2379");
    let _etcd_a = Etcd::start(&binaries, &root_a, etcd_command(&root_a, &own(address_a)));
    wait_for("etcd cp-a to answer", Duration::from_secs(30), || {
        etcdctl(&binaries, &root_a, &endpoint_a, &["endpoint", "health"])
            .status
            .success()
    });
    let added = etcdctl(
        &binaries,
        &root_a,
        &endpoint_a,
        &[
            "member",
            "add",
            "cp-b",
            &format!("--peer-urls=https://{address_b}:2380"),
        ],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let mut overrides_b = own(address_b);
    overrides_b.push((
        "initial-cluster",
        format!("cp-a=https://{address_a}:2380,cp-b=https://{address_b}:2380"),
    ));
    overrides_b.push(("initial-cluster-state", "existing".to_owned()));
    let _etcd_b = Etcd::start(&binaries, &root_b, etcd_command(&root_b, &overrides_b));
    let members = |endpoint: &str| -> String {
        let output = etcdctl(&binaries, &root_b, endpoint, &["member", "list"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    wait_for("two started members", Duration::from_secs(40), || {
        let listed = members(&endpoint_b);
        listed.lines().count() == 2 && listed.contains("cp-a") && listed.contains(", cp-b,")
    });

    let output = reset(&root_a, &[]);
    assert_success(&output);
    let log = stderr(&output);
    assert!(
        log.contains("[remove-etcd-member] removed etcd member cp-a"),
        "{log}"
    );
    let listed = members(&endpoint_b);
    assert_eq!(listed.lines().count(), 1, "{listed}\n{log}");
    assert!(
        listed.contains("cp-b") && !listed.contains("cp-a"),
        "{listed}"
    );
    assert!(
        root_a
            .listing()
            .iter()
            .all(|path| !path.starts_with("/var/lib/etcd/")),
        "cp-a's etcd data is gone\n{log}"
    );

    // cp-b is now the only member: its reset removes nothing from etcd and says the data goes with it.
    let output = reset(&root_b, &["--dry-run"]);
    assert_success(&output);
    assert!(
        stderr(&output).contains("cp-b is the only voting member of its etcd cluster"),
        "{}",
        stderr(&output)
    );
    assert_eq!(members(&endpoint_b).lines().count(), 1);
}

#[test]
fn an_unreachable_etcd_is_skipped_with_the_way_to_remove_the_member_later() {
    let root = TempRoot::new();
    let config = root.join("/bosun.yaml");
    // Nothing listens on this address: the member cannot be reached.
    std::fs::write(&config, node_config("cp-gone", "127.0.44.1")).expect("config");
    assert_success(&init(&root, &["--config", config.to_str().expect("utf-8")]));
    let output = reset(&root, &[]);
    assert_success(&output);
    let log = stderr(&output);
    assert!(log.contains("etcd is not reachable at https://"), "{log}");
    assert!(log.contains("connection refused"), "{log}");
    assert!(log.contains("bosun etcd member remove cp-gone"), "{log}");
    assert!(
        !log.contains("Os {"),
        "no debug output reaches the user:\n{log}"
    );
}

#[test]
fn init_after_reset_builds_a_fresh_node() {
    let root = TempRoot::new();
    assert_success(&init(&root, &[]));
    let first_ca = root.read("/etc/kubernetes/pki/ca.crt");
    let files_after_init = node_files(&root);
    assert_success(&reset(&root, &[]));
    let output = init(&root, &[]);
    assert_success(&output);
    assert_eq!(node_files(&root), files_after_init, "{}", stderr(&output));
    assert_ne!(
        root.read("/etc/kubernetes/pki/ca.crt"),
        first_ca,
        "a new cluster gets a new CA"
    );
    let verified = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(root.join("/etc/kubernetes/pki/ca.crt"))
        .arg(root.join("/etc/kubernetes/pki/apiserver.crt"))
        .output()
        .expect("openssl");
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

/// Runs bosun on a pseudo-terminal (util-linux `script`), typing `answer` at the prompt.
fn bosun_on_a_terminal(root: &TempRoot, arguments: &str, answer: &str) -> Output {
    use std::io::Write;
    let command = format!(
        "{} --root {} {arguments}",
        env!("CARGO_BIN_EXE_bosun"),
        root.path().display()
    );
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answer.as_bytes())
        .expect("type the answer");
    child.wait_with_output().expect("script")
}

#[test]
fn on_a_terminal_reset_asks_and_no_means_nothing_changes() {
    let root = TempRoot::new();
    assert_success(&init(&root, &[]));
    let before = root.snapshot();
    let output = bosun_on_a_terminal(&root, "reset", "n\n");
    assert_exit(&output, bosun::exit::PREFLIGHT_FAILED);
    let text = stdout(&output);
    assert!(
        text.contains("a control-plane node with a local (stacked) etcd member")
            && text.contains("Continue? [y/N]"),
        "{text}"
    );
    assert!(text.contains("reset cancelled"), "{text}");
    assert_eq!(before, root.snapshot(), "a refused reset changed the root");

    let output = bosun_on_a_terminal(&root, "reset", "y\n");
    assert_success(&output);
    assert!(
        stdout(&output).contains("[preflight] confirmed"),
        "{}",
        stdout(&output)
    );
    assert!(!root.join("/etc/kubernetes/pki/ca.key").exists());
}

/// Runs `script` with `sh` in a private mount namespace, so that the test's mounts never leak onto the machine.
fn in_private_mounts(script: &str) -> Output {
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("run unshare (util-linux)")
}

#[test]
fn kubelet_mounts_are_unmounted_before_their_directory_goes() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("!!!!!!!! SKIPPED reset::kubelet_mounts_are_unmounted_before_their_directory_goes: needs root");
        return;
    }
    let root = TempRoot::new();
    assert_success(&init(&root, &[]));
    let volume = root.join("/var/lib/kubelet/pods/0b7c/volumes/kubernetes.io~empty-dir/cache");
    std::fs::create_dir_all(&volume).expect("volume directory");
    let bosun = env!("CARGO_BIN_EXE_bosun");
    let base = root.path().display();
    let volume = volume.display();
    let output = in_private_mounts(&format!(
        "set -e; mount -t tmpfs volume '{volume}'; echo data > '{volume}/file'; \
         '{bosun}' --root '{base}' reset --force 2>&1; \
         if grep -q ' {base}/var/lib/kubelet/' /proc/self/mountinfo; then echo STILL-MOUNTED; fi"
    ));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains(
            "[cleanup-node/unmount] removed mount /var/lib/kubelet/pods/0b7c/volumes/kubernetes.io~empty-dir/cache"
        ),
        "{text}"
    );
    assert!(!text.contains("STILL-MOUNTED"), "{text}");
    assert!(!root.join("/var/lib/kubelet/pods").exists(), "{text}");
}

#[test]
fn a_mount_left_under_the_kubelet_directory_stops_the_reset_which_a_rerun_finishes() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("!!!!!!!! SKIPPED reset::a_mount_left_under_the_kubelet_directory_stops_the_reset_which_a_rerun_finishes: needs root");
        return;
    }
    let root = TempRoot::new();
    assert_success(&init(&root, &[]));
    let volume = root.join("/var/lib/kubelet/pods/1d2e/volumes/kubernetes.io~nfs/data");
    std::fs::create_dir_all(&volume).expect("volume directory");
    let bosun = env!("CARGO_BIN_EXE_bosun");
    let base = root.path().display();
    let volume = volume.display();
    let output = in_private_mounts(&format!(
        "mount -t tmpfs volume '{volume}'; echo precious > '{volume}/file'; \
         '{bosun}' --root '{base}' reset --force --skip-phases cleanup-node/unmount 2>&1; echo \"exit=$?\"; \
         cat '{volume}/file'; echo RERUN; '{bosun}' --root '{base}' reset --force 2>&1; echo \"exit=$?\""
    ));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        text.contains("a filesystem is mounted there; unmount it first"),
        "{text}"
    );
    assert!(
        text.contains(&format!("exit={}", bosun::exit::FAILED_AFTER_CHANGE)),
        "{text}"
    );
    assert!(
        text.contains("precious"),
        "the mounted volume lost its contents:\n{text}"
    );
    // Run again with the unmount phase: the reset continues and finishes.
    let (_, rerun) = text.split_once("RERUN").expect("the second run");
    assert!(
        rerun.contains("[cleanup-node/unmount] removed mount /var/lib/kubelet/pods/1d2e/volumes/kubernetes.io~nfs/data"),
        "{rerun}"
    );
    assert!(rerun.contains("exit=0"), "{rerun}");
    assert!(
        !rerun.contains("removed /etc/kubernetes/manifests/")
            && rerun.contains("removed /etc/kubernetes/pki/ca.key"),
        "the re-run goes on from the kubelet directory, where the first run stopped:\n{rerun}"
    );
    assert!(!root.join("/var/lib/kubelet/pods").exists(), "{rerun}");
}

#[test]
fn reset_then_init_runs_a_real_control_plane_again() {
    use crate::harness::binaries::TIER1;
    use crate::harness::sandbox::Sandbox;
    use crate::harness::static_pods::StaticPods;
    use crate::tier1::{
        assert_control_plane_works_as, bosun_writes_root, built_version, kubeadm_config, kubectl_as,
    };
    let Some(binaries) = Binaries::require(
        "reset::reset_then_init_runs_a_real_control_plane_again",
        TIER1,
    ) else {
        return;
    };
    let ready_timeout = Duration::from_secs(240);
    let root = TempRoot::new();
    let sandbox = Sandbox::new("reset-tier1");
    let config = kubeadm_config(&built_version(&binaries), sandbox.hostname());
    bosun_writes_root(&sandbox, &root, &config);
    let first_ca = root.read("/etc/kubernetes/pki/ca.crt");
    {
        let mut pods = StaticPods::start(&sandbox, root.path(), &binaries);
        pods.wait_ready(ready_timeout);
        // The Node object --delete-node deletes (no kubelet runs in tier 1, so the test registers it).
        root.write(
            "/node.json",
            format!(
                "{{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{{\"name\":\"{}\"}}}}",
                sandbox.hostname()
            )
            .as_bytes(),
        );
        let node_file = root.join("/node.json");
        let created = kubectl_as(
            &sandbox,
            &binaries,
            root.path(),
            "super-admin.conf",
            &["create", "-f", node_file.to_str().expect("utf-8")],
        );
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        // A copy of super-admin.conf outside the root, to look at the cluster after reset removed the root's.
        let outside = tempfile::tempdir().expect("tempdir");
        let kubeconfig = outside.path().join("super-admin.conf");
        std::fs::copy(root.join("/etc/kubernetes/super-admin.conf"), &kubeconfig).expect("copy");

        // Reset while the control plane runs: its etcd answers, and as the only member it stays in place.
        let output = sandbox.output(
            env!("CARGO_BIN_EXE_bosun"),
            &[
                "--root",
                root.path().to_str().expect("utf-8"),
                "reset",
                "--force",
                "--delete-node",
            ],
        );
        assert_success(&output);
        let log = stderr(&output);
        assert!(
            log.contains("is the only voting member of its etcd cluster"),
            "{log}"
        );
        assert!(
            log.contains(&format!(
                "[delete-node] removed Node {}",
                sandbox.hostname()
            )),
            "{log}"
        );
        let after = sandbox.output(
            binaries.path("kubectl"),
            &[
                "--kubeconfig",
                kubeconfig.to_str().expect("utf-8"),
                "get",
                "node",
                sandbox.hostname(),
            ],
        );
        assert!(
            String::from_utf8_lossy(&after.stderr).contains("NotFound"),
            "the Node object is still there: {}{}",
            String::from_utf8_lossy(&after.stdout),
            String::from_utf8_lossy(&after.stderr)
        );
    }
    assert!(
        root.listing()
            .iter()
            .all(|path| !path.starts_with("/etc/kubernetes/pki/")
                && !path.starts_with("/etc/kubernetes/manifests/")
                && !path.starts_with("/var/lib/etcd/")),
        "{:#?}",
        root.listing()
    );

    bosun_writes_root(&sandbox, &root, &config);
    assert_ne!(root.read("/etc/kubernetes/pki/ca.crt"), first_ca);
    let mut pods = StaticPods::start(&sandbox, root.path(), &binaries);
    pods.wait_ready(ready_timeout);
    assert_control_plane_works_as(&sandbox, &binaries, root.path(), "super-admin.conf");
}
