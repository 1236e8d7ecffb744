//! `bosun node cgroup-driver` against real parts: a node root written by `bosun init --offline`, a kubelet
//! configuration and a containerd `config.toml` rendered by bosun for the systemd driver, Debian's containerd and a
//! long-running kubelet stand-in run by bosun's process service backend. The order of the service restarts is read
//! from the backend's pid files while the migration runs; containerd's own CRI status (over its socket) says which
//! driver it runs with.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun::host::local::LocalFiles;
use bosun::host::services::ProcessServices;
use bosun_phases::host::{CommandSpec, ServiceSpec, ServiceState, Services};
use bosun_phases::node::cgroup::CgroupDriver;
use bosun_phases::node::{kubelet, runtime, NodeFacts};
use bosun_phases::render::Templates;

use crate::cluster::{assert_ok, with_control_plane, Plane};
use crate::harness::wait_until;
use crate::node::cri_status_config;
use crate::support::{assert_exit, assert_success, bosun_in, stderr, stdout, TempRoot};
use crate::tier1::kubectl_as;

/// The API server endpoint of the test node: nothing listens on port 1, so the cluster steps are skipped.
const CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
  bindPort: 1
nodeRegistration:
  name: node-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
";

/// A site setting of the user's that the migration must keep.
const USER_CONTAINERD: &str = "# Site settings.\nversion = 2\noom_score = -999\n";

const MIGRATION_STATE: &str = "/var/lib/bosun/cgroup-driver-migration.json";

/// A node root whose kubelet and containerd are configured for the systemd driver, with both services installed in
/// the process backend (not started).
struct Node {
    root: TempRoot,
    runtime: RuntimeFiles,
    services: ProcessServices,
}

/// containerd's root, state and socket, outside the node root (a socket is no file a root listing can read) and
/// apart from any other containerd on the host.
pub struct RuntimeFiles {
    directory: tempfile::TempDir,
}

impl RuntimeFiles {
    pub fn new() -> RuntimeFiles {
        RuntimeFiles {
            directory: tempfile::Builder::new()
                .prefix("bosun-cgroup-containerd-")
                .tempdir()
                .expect("containerd directory"),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.directory.path().join("containerd.sock")
    }
}

/// Writes what a node set up for the systemd driver has into `root`: the kubelet's config.yaml rendered by bosun, its
/// flags, containerd's config.toml rendered by bosun over a user's file, a link to containerd under the root (so that
/// a test can take it away), and a kubelet stand-in running `standin_body` after logging the driver its config.yaml
/// names and whether the runtime answers, as the kubelet finds out at start. Installs both services (not started).
pub fn configure_node(
    root: &TempRoot,
    runtime_files: &RuntimeFiles,
    standin_body: &str,
) -> ProcessServices {
    let config = bosun_config::load(
        "test",
        CONFIG,
        &bosun_config::HostFacts {
            hostname: "node-1".to_owned(),
            default_address: None,
        },
    )
    .expect("config");
    let facts = NodeFacts {
        gathered: true,
        hostname: "node-1".to_owned(),
        ..NodeFacts::default()
    };
    let effective = kubelet::effective_configuration(&config, CgroupDriver::Systemd, &facts);
    let text =
        kubelet::config_file(&Templates::embedded(), &effective, None).expect("kubelet config");
    assert!(text.contains("cgroupDriver: systemd"), "{text}");
    root.write("/var/lib/kubelet/config.yaml", text.as_bytes());
    root.write(
        "/var/lib/kubelet/kubeadm-flags.env",
        b"KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock\"\n",
    );

    let base = runtime_files.directory.path();
    let socket = runtime_files.socket();
    let mut context = runtime::containerd_context(
        &format!("unix://{}", socket.display()),
        "registry.k8s.io/pause:3.10.1",
        CgroupDriver::Systemd,
    );
    context.root = Some(base.join("root").display().to_string());
    context.state = Some(base.join("state").display().to_string());
    context.opt_path = Some(base.join("opt").display().to_string());
    context.netns_mounts_under_state_dir = true;
    let merged = runtime::containerd_config_file(
        &Templates::embedded(),
        runtime::containerd_template(1),
        &context,
        Some(USER_CONTAINERD),
    )
    .expect("containerd config");
    root.write("/etc/containerd/config.toml", merged.as_bytes());

    let program = root.join("/usr/local/bin/containerd");
    std::fs::create_dir_all(program.parent().expect("parent")).expect("bin dir");
    std::os::unix::fs::symlink(
        which::which("containerd").expect("containerd is installed"),
        &program,
    )
    .expect("link containerd");
    let standin = root.join("/usr/local/bin/kubelet");
    std::fs::write(
        &standin,
        format!(
            "#!/bin/sh\n\
             driver=$(sed -n 's/^cgroupDriver: //p' {config})\n\
             if ctr --address {socket} version >/dev/null 2>&1; then runtime=answers; else runtime=down; fi\n\
             echo \"started driver=$driver runtime=$runtime\" >> {log}\n\
             {standin_body}\n",
            config = root.join("/var/lib/kubelet/config.yaml").display(),
            socket = socket.display(),
            log = root.join("/var/log/kubelet-standin.log").display(),
        ),
    )
    .expect("write the stand-in");
    std::fs::set_permissions(
        &standin,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");

    let services = ProcessServices::new(
        LocalFiles::new(root.path()),
        PathBuf::from(env!("CARGO_BIN_EXE_bosun")),
    );
    let config_toml = root.join("/etc/containerd/config.toml");
    for (name, program, arguments) in [
        (
            "containerd",
            program.display().to_string(),
            vec!["--config".to_owned(), config_toml.display().to_string()],
        ),
        ("kubelet", standin.display().to_string(), Vec::new()),
    ] {
        services
            .install(&ServiceSpec {
                name: name.to_owned(),
                description: format!("test {name}"),
                command: CommandSpec::new(program).args(arguments),
                environment_files: Vec::new(),
                restart_after_seconds: 1,
            })
            .expect("install");
    }
    services
}

impl Node {
    fn new() -> Node {
        assert!(
            !Path::new("/run/systemd/system").exists(),
            "these tests expect a host where systemd is not PID 1 (the migration target is cgroupfs)"
        );
        let root = TempRoot::new();
        root.write("/bosun-test-config.yaml", CONFIG.as_bytes());
        let config_path = root.join("/bosun-test-config.yaml");
        assert_success(&bosun_in(
            &root,
            &[
                "init",
                "--offline",
                "--config",
                config_path.to_str().expect("utf-8"),
            ],
        ));
        let runtime = RuntimeFiles::new();
        let services = configure_node(&root, &runtime, "exec sleep 1000000");
        Node {
            root,
            runtime,
            services,
        }
    }

    fn socket(&self) -> PathBuf {
        self.runtime.socket()
    }

    /// Starts containerd and the kubelet stand-in, as a running node has them.
    fn start(&self) {
        self.services.start("containerd").expect("start containerd");
        wait_for("containerd to answer", || {
            std::process::Command::new("ctr")
                .arg("--address")
                .arg(self.socket())
                .arg("version")
                .output()
                .is_ok_and(|output| output.status.success())
        });
        self.services
            .start("kubelet")
            .expect("start the kubelet stand-in");
    }

    /// The supervisor pid of a running service (from the process backend's pid file).
    fn pid(&self, name: &str) -> Option<u32> {
        running_pid(&self.root.join(&format!("/run/bosun/{name}.pid")))
    }

    fn migrate(&self, extra: &[&str]) -> Output {
        let mut arguments = vec!["--service-backend", "process", "node", "cgroup-driver"];
        arguments.extend_from_slice(extra);
        bosun_in(&self.root, &arguments)
    }

    /// The node's configuration files and the migration state: what a second run must leave byte for byte.
    fn configuration(&self) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
        let mut files = Vec::new();
        let mut pending = vec![self.root.join("/etc"), self.root.join("/var/lib/kubelet")];
        while let Some(directory) = pending.pop() {
            for entry in std::fs::read_dir(&directory).expect("read_dir") {
                let entry = entry.expect("entry");
                let meta = entry.metadata().expect("metadata");
                if meta.is_dir() {
                    pending.push(entry.path());
                } else if meta.is_file() {
                    files.push((
                        entry.path(),
                        std::fs::read(entry.path()).expect("read"),
                        meta.modified().expect("mtime"),
                    ));
                }
            }
        }
        let state = self.root.join(MIGRATION_STATE);
        let meta = std::fs::metadata(&state).expect("the migration state exists");
        files.push((
            state.clone(),
            std::fs::read(&state).expect("read"),
            meta.modified().expect("mtime"),
        ));
        files.sort();
        files
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&self.root.read(MIGRATION_STATE))
            .expect("the migration state is JSON")
    }

    fn standin_log(&self) -> String {
        std::fs::read_to_string(self.root.join("/var/log/kubelet-standin.log")).unwrap_or_default()
    }

    /// What containerd itself reports over its CRI socket: SystemdCgroup of its runc runtime.
    fn containerd_reports_systemd(&self) -> bool {
        let config = cri_status_config(&self.socket());
        config["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"]
            .as_bool()
            .unwrap_or_else(|| panic!("no SystemdCgroup in containerd's CRI status: {config:#}"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in ["containerd", "kubelet"] {
                eprintln!(
                    "--- /var/log/bosun/{name}.log ---\n{}",
                    std::fs::read_to_string(self.root.join(&format!("/var/log/bosun/{name}.log")))
                        .unwrap_or_default()
                );
            }
            eprintln!("--- kubelet stand-in ---\n{}", self.standin_log());
        }
        let _ = self.services.stop("kubelet");
        let _ = self.services.stop("containerd");
    }
}

/// The pid in a pid file if that process is alive (not a zombie).
fn running_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit(')').next()?.trim_start();
    (!state.starts_with('Z')).then_some(pid)
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Watches the process backend's pid files of the kubelet and containerd and records every change, in order, as
/// `kubelet stopped`, `containerd started` and so on.
struct ServiceWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl ServiceWatch {
    fn start(root: &TempRoot) -> ServiceWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let files: Vec<(String, PathBuf)> = ["kubelet", "containerd"]
            .iter()
            .map(|name| {
                (
                    (*name).to_owned(),
                    root.join(&format!("/run/bosun/{name}.pid")),
                )
            })
            .collect();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut current: Vec<Option<u32>> =
                files.iter().map(|(_, file)| running_pid(file)).collect();
            let mut events = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                for (index, (name, file)) in files.iter().enumerate() {
                    let now = running_pid(file);
                    if now != current[index] {
                        match (current[index], now) {
                            (Some(_), None) => events.push(format!("{name} stopped")),
                            (None, Some(_)) => events.push(format!("{name} started")),
                            // Both changes between two looks (a busy machine): the stop came first.
                            _ => {
                                events.push(format!("{name} stopped"));
                                events.push(format!("{name} started"));
                            }
                        }
                        current[index] = now;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            events
        });
        ServiceWatch {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().expect("thread").join().expect("watcher")
    }
}

#[test]
fn migrating_to_cgroupfs_switches_both_restarts_in_order_and_a_second_run_changes_nothing() {
    let node = Node::new();
    node.start();
    assert!(
        node.containerd_reports_systemd(),
        "containerd starts on the systemd driver"
    );
    let toml_before = node.root.read_string("/etc/containerd/config.toml");

    let status = node.migrate(&["--status", "-o", "json"]);
    assert_success(&status);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["host"], "cgroupfs", "{status:#}");
    assert_eq!(status["kubelet"], "systemd", "{status:#}");
    assert_eq!(status["runtime"]["driver"], "systemd", "{status:#}");
    assert_eq!(status["agree"], true, "{status:#}");

    let watch = ServiceWatch::start(&node.root);
    let output = node.migrate(&["cgroupfs"]);
    let order = watch.finish();
    assert_success(&output);
    let log = stderr(&output);
    // Without an API server the cluster steps are skipped, and the run says which.
    assert!(
        log.contains("the steps drain, kubelet-config-map, wait-ready, uncordon are skipped"),
        "{log}"
    );
    assert!(log.contains("[drain] skipped"), "{log}");

    assert_eq!(
        order,
        [
            "kubelet stopped",
            "containerd stopped",
            "containerd started",
            "kubelet started"
        ],
        "the services were not restarted in the documented order\n{log}"
    );

    // The files: one setting changed in each, everything else kept.
    let toml_after = node.root.read_string("/etc/containerd/config.toml");
    assert_eq!(
        toml_after,
        toml_before.replace("SystemdCgroup = true", "SystemdCgroup = false"),
        "containerd's config.toml changed beyond SystemdCgroup"
    );
    assert!(toml_after.contains("oom_score = -999"), "{toml_after}");
    let kubelet_config = node.root.read_string("/var/lib/kubelet/config.yaml");
    assert!(
        kubelet_config.contains("\ncgroupDriver: cgroupfs\n"),
        "{kubelet_config}"
    );

    // The restarted containerd runs with the new driver, and the kubelet came up after it, reading cgroupfs.
    assert!(
        !node.containerd_reports_systemd(),
        "containerd still reports SystemdCgroup"
    );
    let standin = node.standin_log();
    assert_eq!(
        standin.lines().collect::<Vec<_>>(),
        [
            "started driver=systemd runtime=answers",
            "started driver=cgroupfs runtime=answers"
        ],
        "{standin}"
    );

    let state = node.state();
    assert!(state["finished"].is_string(), "{state:#}");
    assert_eq!(state["target"], "cgroupfs");
    assert_eq!(state["kubeletBefore"], "systemd");
    assert_eq!(
        state["completed"],
        serde_json::json!([
            "stop-kubelet",
            "stop-runtime",
            "switch-runtime",
            "switch-kubelet",
            "start-runtime",
            "start-kubelet"
        ]),
        "{state:#}"
    );

    // A second run changes nothing: no file, no restart.
    let before = node.configuration();
    let pids = (node.pid("containerd"), node.pid("kubelet"));
    let again = node.migrate(&["cgroupfs"]);
    assert_success(&again);
    assert!(
        stderr(&again).contains(
            "nothing to do: the kubelet and containerd already use the cgroupfs cgroup driver"
        ),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        node.configuration(),
        before,
        "the second run changed a file"
    );
    assert_eq!(
        (node.pid("containerd"), node.pid("kubelet")),
        pids,
        "the second run restarted a service"
    );

    let status = node.migrate(&["status"]);
    assert_success(&status);
    let text = stdout(&status);
    assert!(text.contains("consistent and fits the host"), "{text}");
    assert!(text.contains("migration: to cgroupfs finished"), "{text}");
}

#[test]
fn a_migration_that_fails_at_the_runtime_start_continues_there_when_run_again() {
    let node = Node::new();
    node.start();
    let program = node.root.join("/usr/local/bin/containerd");
    let target = std::fs::read_link(&program).expect("link");
    // The runtime's binary is missing: containerd cannot start after the switch.
    std::fs::remove_file(&program).expect("remove the link");

    let failed = node.migrate(&["cgroupfs", "--no-drain", "--runtime-timeout", "3s"]);
    assert_exit(&failed, 5);
    let log = stderr(&failed);
    assert!(log.contains("phase start-runtime failed"), "{log}");
    assert!(log.contains("run the same command again"), "{log}");
    let state = node.state();
    assert!(state["finished"].is_null(), "{state:#}");
    assert_eq!(
        state["completed"].as_array().and_then(|steps| steps.last()),
        Some(&serde_json::json!("switch-kubelet")),
        "{state:#}"
    );
    assert_eq!(
        node.services.state("kubelet").expect("state"),
        ServiceState::Inactive,
        "the kubelet stays stopped"
    );

    let status = node.migrate(&["--status"]);
    assert!(
        stdout(&status).contains("to cgroupfs IN PROGRESS"),
        "{}",
        stdout(&status)
    );

    // Switching to systemd is refused while this migration is unfinished (and anyway on this host).
    std::os::unix::fs::symlink(&target, &program).expect("restore the link");
    let resumed = node.migrate(&["cgroupfs", "--no-drain"]);
    assert_success(&resumed);
    let log = stderr(&resumed);
    for done in [
        "stop-kubelet",
        "stop-runtime",
        "switch-runtime",
        "switch-kubelet",
    ] {
        assert!(
            log.contains(&format!(
                "[{done}] unchanged step {done} (done in an earlier run)"
            )),
            "{done} ran again:\n{log}"
        );
    }
    assert!(
        !node.containerd_reports_systemd(),
        "containerd runs with cgroupfs"
    );
    assert!(
        node.standin_log()
            .ends_with("started driver=cgroupfs runtime=answers\n"),
        "{}",
        node.standin_log()
    );
    let state = node.state();
    assert!(state["finished"].is_string(), "{state:#}");
}

#[test]
fn switching_to_systemd_on_a_host_without_systemd_is_refused_and_changes_nothing() {
    let node = Node::new();
    let before = node.root.snapshot();
    let output = node.migrate(&["systemd", "--no-drain"]);
    assert_exit(&output, 4);
    let log = stderr(&output);
    assert!(
        log.contains("cannot switch to the systemd cgroup driver: systemd is not PID 1"),
        "{log}"
    );
    assert!(
        log.contains("hint: this host calls for cgroupfs; nothing was changed"),
        "{log}"
    );
    assert_eq!(
        node.root.snapshot(),
        before,
        "a refused migration changed the node"
    );
}

/// Stops the services a test's migration started (they run in the host's PID namespace, not in the sandbox).
struct StopServices<'a>(&'a ProcessServices);

impl Drop for StopServices<'_> {
    fn drop(&mut self) {
        let _ = self.0.stop("kubelet");
        let _ = self.0.stop("containerd");
    }
}

/// A file for `kubectl create -f` in the root.
fn manifest(plane: &Plane<'_>, name: &str, object: serde_json::Value) -> String {
    let path = format!("/manifests/{name}.json");
    plane.root.write(&path, object.to_string().as_bytes());
    plane.root.join(&path).display().to_string()
}

fn kubectl_ok(plane: &Plane<'_>, arguments: &[&str]) -> Output {
    let output = plane.kubectl(arguments);
    assert_ok(&format!("kubectl {}", arguments.join(" ")), &output);
    output
}

/// The drain, the kubelet-config ConfigMap, the Ready wait and uncordon against a real control plane (tier 1): a Node
/// object with a bare pod guarded by a PodDisruptionBudget and a DaemonSet's pod bound to it, the kubelet stand-in
/// posting the Node's Ready condition as a kubelet does, and bosun run inside the control plane's sandbox.
#[test]
fn the_drain_respects_budgets_spares_daemonset_pods_and_the_migration_uncordons_a_ready_node() {
    with_control_plane(
        "cgroup::the_drain_respects_budgets_spares_daemonset_pods_and_the_migration_uncordons_a_ready_node",
        "tier1-cgroup",
        |plane| {
            let node = plane.sandbox.hostname().to_owned();
            // kubeadm's single phases do not bind admin.conf's group; `kubeadm init` does it with super-admin.conf.
            let binding = kubectl_as(
                plane.sandbox,
                plane.binaries,
                plane.root.path(),
                "super-admin.conf",
                &["create", "clusterrolebinding", "kubeadm:cluster-admins", "--clusterrole=cluster-admin", "--group=kubeadm:cluster-admins"],
            );
            assert_ok("kubectl create clusterrolebinding", &binding);
            plane.init_phase(&["upload-config", "kubelet"], &[]);
            let config_map = plane.get_json(&["configmap", "kubelet-config", "--namespace=kube-system"]);
            assert!(
                config_map["data"]["kubelet"].as_str().unwrap_or_default().contains("cgroupDriver: systemd"),
                "{config_map:#}"
            );

            let runtime_files = RuntimeFiles::new();
            let kubectl = plane.binaries.path("kubectl");
            let admin = plane.root.join("/etc/kubernetes/admin.conf");
            // The stand-in posts Ready with a fresh heartbeat every 2 s, as the kubelet's status updates do.
            let heartbeat = format!(
                "while true; do\n\
                 now=$(date -u +%Y-%m-%dT%H:%M:%SZ)\n\
                 {kubectl} --kubeconfig {admin} patch node {node} --subresource=status --type=merge -p \
                 \"{{\\\"status\\\":{{\\\"conditions\\\":[{{\\\"type\\\":\\\"Ready\\\",\\\"status\\\":\\\"True\\\",\\\"reason\\\":\\\"KubeletReady\\\",\\\"message\\\":\\\"stand-in\\\",\\\"lastHeartbeatTime\\\":\\\"$now\\\",\\\"lastTransitionTime\\\":\\\"$now\\\"}}]}}}}\" >/dev/null\n\
                 sleep 2\n\
                 done",
                kubectl = kubectl.display(),
                admin = admin.display(),
            );
            configure_node(plane.root, &runtime_files, &heartbeat);

            let pod = |name: &str, labels: serde_json::Value| {
                serde_json::json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "default", "labels": labels},
                    "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                             "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10.1"}]}
                })
            };
            let files = [
                manifest(plane, "node", serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": {"bosun-test": "cgroup"}}})),
                manifest(plane, "web", pod("web", serde_json::json!({"app": "web"}))),
                manifest(plane, "agent", pod("agent-1", serde_json::json!({"app": "bosun-agent"}))),
                manifest(plane, "budget", serde_json::json!({
                    "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                    "metadata": {"name": "web", "namespace": "default"},
                    "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
                })),
                // Adopts agent-1 (same labels, a node it should run on); OnDelete, so it never replaces it.
                manifest(plane, "daemonset", serde_json::json!({
                    "apiVersion": "apps/v1", "kind": "DaemonSet",
                    "metadata": {"name": "bosun-agent", "namespace": "default"},
                    "spec": {
                        "selector": {"matchLabels": {"app": "bosun-agent"}},
                        "updateStrategy": {"type": "OnDelete"},
                        "template": {
                            "metadata": {"labels": {"app": "bosun-agent"}},
                            "spec": {"nodeSelector": {"bosun-test": "cgroup"}, "terminationGracePeriodSeconds": 0,
                                     "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10.1"}]}
                        }
                    }
                })),
            ];
            // The service-account controller makes `default` in the cluster's namespaces a moment after it starts
            // (longer on a loaded machine); until then the API server refuses pods.
            wait_until("the default service account", Duration::from_secs(60), || {
                let accounts = plane.get_json(&["serviceaccounts", "--namespace=default"]);
                let names: Vec<&str> = accounts["items"]
                    .as_array()
                    .map(|items| items.iter().filter_map(|item| item["metadata"]["name"].as_str()).collect())
                    .unwrap_or_default();
                if names.contains(&"default") {
                    Ok(())
                } else {
                    Err(format!("service accounts in default: {names:?}"))
                }
            });
            for file in &files {
                kubectl_ok(plane, &["create", "-f", file]);
            }
            // A running pod is what a budget protects (the Eviction API lets pending pods go).
            kubectl_ok(plane, &["patch", "pod", "web", "--subresource=status", "--type=merge", "-p", r#"{"status":{"phase":"Running"}}"#]);
            wait_until("the DaemonSet to adopt agent-1", Duration::from_secs(60), || {
                let agent = plane.get_json(&["pod", "agent-1"]);
                match agent["metadata"]["ownerReferences"][0]["kind"].as_str() {
                    Some("DaemonSet") => Ok(()),
                    _ => Err(agent["metadata"].to_string()),
                }
            });

            // bosun runs in the sandbox's network (to reach its API server) but the host's PID namespace: the process
            // backend's pid files must mean the same processes as the host's /proc, which the sandbox shares.
            let services = ProcessServices::new(
                LocalFiles::new(plane.root.path()),
                PathBuf::from(env!("CARGO_BIN_EXE_bosun")),
            );
            let _stop = StopServices(&services);
            let migrate = |extra: &[&str]| {
                let mut command = std::process::Command::new("nsenter");
                command
                    .arg(format!("--target={}", plane.sandbox.pid()))
                    .args(["--net", "--uts", "--"])
                    .arg(env!("CARGO_BIN_EXE_bosun"))
                    .args(["--root", plane.root.path().to_str().expect("utf-8")])
                    .args(["--service-backend", "process", "node", "cgroup-driver", "cgroupfs", "--force"])
                    .args(["--runtime-timeout", "30s", "--ready-timeout", "60s"])
                    .args(extra)
                    .env_remove("BOSUN_ROOT")
                    .stdin(std::process::Stdio::null());
                command.output().expect("run bosun in the sandbox's network")
            };
            // The budget refuses the eviction until the drain timeout: the node stays cordoned, nothing local changed.
            let refused = migrate(&["--drain-timeout", "8s"]);
            assert_exit(&refused, 5);
            let log = stderr(&refused);
            assert!(log.contains("pod default/web was not evicted within 8s: a PodDisruptionBudget keeps refusing it"), "{log}");
            assert!(log.contains("leaving pod default/agent-1 on the node: managed by DaemonSet bosun-agent"), "{log}");
            assert_eq!(plane.get_json(&["node", &node])["spec"]["unschedulable"], true, "the node is cordoned");
            assert!(plane.root.read_string("/var/lib/kubelet/config.yaml").contains("cgroupDriver: systemd"));

            // Without the budget, the same command continues with the drain and finishes the migration.
            kubectl_ok(plane, &["delete", "pdb", "web"]);
            let finished = migrate(&[]);
            assert_ok("bosun node cgroup-driver cgroupfs", &finished);
            let log = stderr(&finished);
            assert!(log.contains(&format!("[drain] removed cluster: pods on node {node} (1 evicted)")), "{log}");
            assert!(log.contains("[kubelet-config-map] updated cluster: ConfigMap kube-system/kubelet-config"), "{log}");
            assert!(log.contains(&format!("[uncordon] updated cluster: Node {node} (uncordoned)")), "{log}");

            let pods = kubectl_ok(plane, &["get", "pods", "--namespace=default", "-o=jsonpath={.items[*].metadata.name}"]);
            assert_eq!(String::from_utf8_lossy(&pods.stdout).trim(), "agent-1", "web is evicted, the DaemonSet's pod stays");
            let node_object = plane.get_json(&["node", &node]);
            assert!(node_object["spec"]["unschedulable"].is_null(), "{node_object:#}");
            let config_map = plane.get_json(&["configmap", "kubelet-config", "--namespace=kube-system"]);
            let kubelet = config_map["data"]["kubelet"].as_str().unwrap_or_default();
            assert!(kubelet.contains("cgroupDriver: cgroupfs"), "{kubelet}");
            assert!(kubelet.contains("kind: KubeletConfiguration"), "the rest of the document stays: {kubelet}");
            let state: serde_json::Value = serde_json::from_slice(&plane.root.read(MIGRATION_STATE)).expect("state");
            assert!(state["finished"].is_string(), "{state:#}");
            assert_eq!(state["completed"].as_array().map(Vec::len), Some(10), "{state:#}");
        },
    );
}
