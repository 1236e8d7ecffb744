//! A real node on this machine (tier 2 and 3, docs/testing.md): network, mount, PID and UTS namespaces in which
//! `bosun` runs with the normal root `/` — so every path is the one a real host has — but everything bosun, its
//! process supervisor, containerd and the kubelet write lands in a per-node directory:
//!
//! - `/etc` and `/var/lib` are overlays whose lower layer is the host's (Debian's `/etc/containerd/config.toml`,
//!   `/etc/ssl`, ... are there, as on a real host) and whose upper layer is the node's, so a write anywhere under
//!   them (`/etc/sysctl.d`, `/etc/cron.d`, `/etc/crictl.yaml`, `/etc/bosun`, `/var/lib/bosun`, ...) stays in the
//!   node and mount points can be made without touching the host;
//! - fresh per-node directories are bind-mounted over `/etc/kubernetes`, `/etc/cni/net.d`, `/var/lib/kubelet`,
//!   `/var/lib/containerd` (the overlayfs snapshotter cannot sit on an overlay), `/var/lib/etcd`, `/var/lib/cni`,
//!   `/var/log` (pods, containers, `bosun/<service>.log`) and `/run` (containerd's socket, runc's state, the
//!   supervisor's pid files), so the test can read them from the host through [`Node::path`];
//! - `/sys` is a sysfs of the node's network namespace with the host's cgroup mounts bound back into it (plain
//!   `ip netns exec` drops them and runc then fails), `/proc` belongs to the node's PID namespace, and `/` is made
//!   rshared inside the node's (private) copy only, as the kubelet's mount propagation wants;
//! - the hostname is the node name, `/etc/hosts` names it, `/etc/resolv.conf` points at the node's gateway, and
//!   `net.ipv4.ip_forward` is on — what a real host's administrator sets up before `kubeadm init`.
//!
//! The kubelet's cgroups live under the node's own `cgroupRoot` (`/bosun-<node>-<pid>`), created here in every
//! cgroup v1 hierarchy with cpuset's `cpus`/`mems` copied from the parent (kind's entrypoint does the same), so
//! several nodes and test runs never share one.
//!
//! PID 1 of the node is catatonit (it reaps the orphans that bosun's supervisor, containerd's shims and the
//! kubelet leave) over a `cat` reading a pipe from the test: when the test process dies, the pipe closes, PID 1
//! exits and the kernel kills every process of the node. Dropping the [`Node`] does the same on purpose, then
//! removes the node's cgroups and directory, so a test can be re-run and CI's machine is left clean. When the test
//! is failing, the drop prints the ends of the kubelet's, containerd's and the static pods' logs first.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{child_of, tail};

/// The node's address on its `eth0` when it has no network of its own (see [`NodeNetwork::Alone`]).
pub const NODE_IP: &str = super::sandbox::NODE_IP;
/// The gateway of the node's default route (nothing answers there; it makes the node's address the one of its
/// default route, as on a real host).
pub const GATEWAY: &str = super::sandbox::GATEWAY;

/// The cgroup v1 hierarchies of this machine, where the kubelet's `cgroupRoot` is pre-created.
const CGROUP_MOUNTS: &str = "/sys/fs/cgroup";

/// How the node's network namespace is wired.
#[derive(Debug, Clone)]
pub enum NodeNetwork {
    /// `eth0` with [`NODE_IP`]/24 is one end of a veth pair whose other end stays in the node: the node has a real,
    /// non-loopback address, and nothing leaves it.
    Alone,
    /// The network is set up later by the caller (tier 3 connects nodes through a bridge); the node gets `lo` only
    /// and `address` is what its kubelet and API server advertise.
    External { address: String },
}

impl NodeNetwork {
    fn address(&self) -> &str {
        match self {
            NodeNetwork::Alone => NODE_IP,
            NodeNetwork::External { address } => address,
        }
    }
}

/// The per-node directories bind-mounted over node paths: (name under the node directory, path in the node).
const BINDS: [(&str, &str); 8] = [
    ("etc-kubernetes", "/etc/kubernetes"),
    ("cni-conf", "/etc/cni/net.d"),
    ("kubelet", "/var/lib/kubelet"),
    ("containerd", "/var/lib/containerd"),
    ("etcd", "/var/lib/etcd"),
    ("cni-state", "/var/lib/cni"),
    ("log", "/var/log"),
    ("run", "/run"),
];

/// The node's setup, run by its PID 1's child in the new namespaces; `exec cat` keeps them alive.
const SETUP: &str = r#"set -eu
directory=$1 name=$2 address=$3 network=$4
# sysfs of this network namespace, with the host's cgroup mounts kept
mkdir -p "$directory/.cgroup"
mount --rbind /sys/fs/cgroup "$directory/.cgroup"
mount -t sysfs sysfs /sys
mount --rbind "$directory/.cgroup" /sys/fs/cgroup
umount -R "$directory/.cgroup"
mount -t proc proc /proc
for layer in etc var/lib; do
  mkdir -p "$directory/upper/$layer" "$directory/work/$layer"
  mount -t overlay overlay -o "lowerdir=/$layer,upperdir=$directory/upper/$layer,workdir=$directory/work/$layer" "/$layer"
done
while read -r source target; do
  mkdir -p "$directory/$source" "$target"
  mount --bind "$directory/$source" "$target"
done <<EOF
BINDS
EOF
mount --make-rshared /
hostname "$name"
printf '127.0.0.1 localhost\n%s %s\n' "$address" "$name" >/etc/hosts
ip link set lo up
if [ "$network" = alone ]; then
  ip link add eth0 type veth peer name eth1
  ip link set eth1 up
  ip address add "$address/24" dev eth0
  ip link set eth0 up
  ip route add default via GATEWAY dev eth0
  printf 'nameserver GATEWAY\n' >/etc/resolv.conf
fi
echo 1 >/proc/sys/net/ipv4/ip_forward
echo ready
exec cat
"#;

/// A runc wrapper for machines that withhold CAP_SYS_RESOURCE from root (this CI machine's sandbox does): the
/// kubelet asks for a negative `oom_score_adj` for pod sandboxes (-998) and critical pods (-997), which only that
/// capability may set, and runc then dies before the container starts ("can't get final child's PID from pipe").
/// The wrapper raises a negative score in the bundle's config.json to 0 and runs the real runc.
const RUNC_WRAPPER: &str = r#"#!/bin/sh
# Written by bosun's test harness (tests/e2e/harness/node.rs): this machine withholds CAP_SYS_RESOURCE, so runc
# cannot set a negative oom_score_adj; raise it to 0.
bundle='' previous=''
for argument in "$@"; do
  case $previous in --bundle|-b) bundle=$argument ;; esac
  case $argument in --bundle=*) bundle=${argument#--bundle=} ;; esac
  previous=$argument
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  sed -i -E 's/"oomScoreAdj": *-[0-9]+/"oomScoreAdj":0/' "$bundle/config.json"
fi
exec runc "$@"
"#;

/// Whether this process may lower an `oom_score_adj` (CAP_SYS_RESOURCE, capability 24, is effective).
fn has_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("CapEff:"))?;
            u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
        })
        .is_some_and(|capabilities| capabilities & (1 << 24) != 0)
}

/// A node: see the module documentation.
pub struct Node {
    holder: Child,
    /// The pipe whose closing ends the node (kept open for the node's lifetime).
    _lifeline: ChildStdin,
    /// PID (in the host's PID namespace) of the node's PID 1.
    target: u32,
    directory: Option<tempfile::TempDir>,
    name: String,
    address: String,
    cgroup_root: String,
}

impl Node {
    /// Starts a node named `name` (its hostname and Kubernetes node name).
    pub fn start(name: &str, network: NodeNetwork) -> Node {
        let directory = tempfile::Builder::new()
            .prefix(&format!("bosun-node-{name}-"))
            .tempdir()
            .expect("node directory");
        let cgroup_root = format!("/bosun-{name}-{}", std::process::id());
        create_cgroup_root(&cgroup_root);
        let binds: Vec<String> = BINDS
            .iter()
            .map(|(source, target)| format!("{source} {target}"))
            .collect();
        let script = SETUP
            .replace("BINDS", &binds.join("\n"))
            .replace("GATEWAY", GATEWAY);
        let address = network.address().to_owned();
        let setup_log = std::fs::File::create(directory.path().join("setup.log")).expect("log");
        let mut holder = Command::new("unshare")
            .args([
                "--net",
                "--pid",
                "--uts",
                "--mount",
                "--propagation",
                "private",
                "--fork",
                "--kill-child=SIGKILL",
                "--",
                "catatonit",
                "--",
                "sh",
                "-c",
                &script,
                "setup",
            ])
            .arg(directory.path())
            .args([
                name,
                &address,
                match network {
                    NodeNetwork::Alone => "alone",
                    NodeNetwork::External { .. } => "external",
                },
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(setup_log)
            .spawn()
            .expect("start unshare (util-linux) and catatonit for the node");
        let lifeline = holder.stdin.take().expect("piped stdin");
        let mut ready = String::new();
        let stdout = holder.stdout.take().expect("piped stdout");
        let _ = BufReader::new(stdout).read_line(&mut ready);
        let parent = holder.id();
        let target = child_of(parent);
        let mut node = Node {
            holder,
            _lifeline: lifeline,
            target: target.unwrap_or(0),
            directory: Some(directory),
            name: name.to_owned(),
            address,
            cgroup_root,
        };
        assert!(
            ready.trim() == "ready" && target.is_some(),
            "setting up node {name} failed:\n{}",
            std::fs::read_to_string(node.directory().join("setup.log")).unwrap_or_default()
        );
        let _ = node.holder.stdout.take();
        node
    }

    /// A command that runs `program` in the node (all its namespaces), with the built binaries' directory `bin`
    /// first on PATH when given.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.target))
            .args(["--mount", "--net", "--pid", "--uts", "--"])
            .arg(program);
        command
    }

    /// Runs `program arguments` in the node and returns its output (whatever the exit status).
    pub fn output(&self, program: impl AsRef<OsStr>, arguments: &[&str]) -> Output {
        self.command(program)
            .args(arguments)
            .stdin(Stdio::null())
            .output()
            .expect("run nsenter")
    }

    /// Writes `contents` to `path` in the node (through its mounts, so overlay paths work too).
    pub fn write(&self, path: &str, contents: &[u8]) {
        let mut child = self
            .command("sh")
            .args([
                "-c",
                "mkdir -p \"$(dirname \"$1\")\" && cat >\"$1\"",
                "write",
                path,
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run nsenter");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(contents)
            .expect("write to the node");
        let status = child.wait().expect("wait for nsenter");
        assert!(
            status.success(),
            "writing {path} in node {} failed",
            self.name
        );
    }

    /// The containerd configuration this host's administrator would start from: Debian's package default (the
    /// host's `/etc/containerd/config.toml`), plus, on a machine without CAP_SYS_RESOURCE, the runc wrapper above
    /// as the runtime's `BinaryName`. bosun merges its own settings into it.
    pub fn containerd_config(&self) -> String {
        let mut config = std::fs::read_to_string("/etc/containerd/config.toml")
            .unwrap_or_else(|_| "version = 2\n".to_owned());
        if !has_sys_resource() {
            let wrapper = self.directory().join("runc-wrapper");
            std::fs::write(&wrapper, RUNC_WRAPPER).expect("write the runc wrapper");
            let mut permissions = std::fs::metadata(&wrapper).expect("wrapper").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
            std::fs::set_permissions(&wrapper, permissions)
                .expect("make the runc wrapper executable");
            config.push_str(&format!(
                "\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  BinaryName = \"{}\"\n",
                wrapper.display()
            ));
        }
        config
    }

    /// Where a node path bind-mounted from the node directory (see the module documentation) is on the host.
    pub fn path(&self, node_path: &str) -> PathBuf {
        let (source, target) = BINDS
            .iter()
            .filter(|(_, target)| Path::new(node_path).starts_with(target))
            .max_by_key(|(_, target)| target.len())
            .unwrap_or_else(|| {
                panic!("{node_path} is not under a node directory bound from the host")
            });
        let rest = Path::new(node_path)
            .strip_prefix(target)
            .expect("prefix checked");
        self.directory().join(source).join(rest)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address the node's kubelet and API server advertise.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The kubelet's `cgroupRoot` for this node (already present in every hierarchy).
    pub fn cgroup_root(&self) -> &str {
        &self.cgroup_root
    }

    /// The PID (host's view) of the node's PID 1, for `nsenter --target` or `ip link set ... netns`.
    pub fn pid(&self) -> u32 {
        self.target
    }

    fn directory(&self) -> &Path {
        self.directory
            .as_ref()
            .expect("the node directory lives as long as the node")
            .path()
    }

    /// The output of a process-backend service (`/var/log/bosun/<service>.log`).
    pub fn service_log(&self, service: &str) -> String {
        std::fs::read_to_string(self.path(&format!("/var/log/bosun/{service}.log")))
            .unwrap_or_default()
    }

    /// The ends of the kubelet's, containerd's and every container's logs (`/var/log/pods`).
    pub fn log_tails(&self, lines: usize) -> String {
        let mut report = String::new();
        for service in ["containerd", "kubelet"] {
            report.push_str(&format!(
                "--- end of node {}'s {service} log ---\n{}\n",
                self.name,
                tail(&self.service_log(service), lines)
            ));
        }
        let mut logs = Vec::new();
        collect_files(&self.path("/var/log/pods"), &mut logs);
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            report.push_str(&format!(
                "--- end of {} ---\n{}\n",
                log.strip_prefix(self.path("/var/log/pods"))
                    .unwrap_or(&log)
                    .display(),
                tail(&text, lines)
            ));
        }
        report
    }
}

fn collect_files(directory: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "log") {
            found.push(path);
        }
    }
}

/// The cgroup hierarchies mounted under /sys/fs/cgroup (v1 controllers, name=systemd, the unified one).
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, target, kind) = (fields.next()?, fields.next()?, fields.next()?);
            (matches!(kind, "cgroup" | "cgroup2") && target.starts_with(CGROUP_MOUNTS))
                .then(|| PathBuf::from(target))
        })
        .collect()
}

/// Creates `root` in every hierarchy; in cpuset, with the parent's cpus and mems (an empty cpuset refuses tasks).
fn create_cgroup_root(root: &str) {
    for hierarchy in cgroup_hierarchies() {
        let directory = hierarchy.join(root.trim_start_matches('/'));
        std::fs::create_dir_all(&directory)
            .unwrap_or_else(|error| panic!("create cgroup {}: {error}", directory.display()));
        for setting in ["cpuset.cpus", "cpuset.mems"] {
            let parent = hierarchy.join(setting);
            if let Ok(value) = std::fs::read_to_string(&parent) {
                std::fs::write(directory.join(setting), value.trim())
                    .unwrap_or_else(|error| panic!("copy {}: {error}", parent.display()));
            }
        }
    }
}

/// Removes `directory` and every cgroup below it, deepest first; retries while the kernel is still reaping tasks.
fn remove_cgroup_tree(directory: &Path, deadline: Instant) -> Result<(), String> {
    if !directory.exists() {
        return Ok(());
    }
    if let Ok(entries) = std::fs::read_dir(directory) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_cgroup_tree(&entry.path(), deadline)?;
            }
        }
    }
    loop {
        match std::fs::remove_dir(directory) {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => return Err(format!("{}: {error}", directory.display())),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(40));
        }
        // Killing PID 1 of the node makes the kernel kill every other process in it (shims and containers too).
        if self.target != 0 {
            let _ = kill(Pid::from_raw(self.target as i32), Signal::SIGKILL);
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let target = self.target;
        let deadline = Instant::now() + Duration::from_secs(20);
        while target != 0
            && Path::new(&format!("/proc/{target}")).exists()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for hierarchy in cgroup_hierarchies() {
            let directory = hierarchy.join(self.cgroup_root.trim_start_matches('/'));
            if let Err(problem) = remove_cgroup_tree(&directory, deadline) {
                eprintln!(
                    "node {}: a cgroup could not be removed: {problem}",
                    self.name
                );
            }
        }
        if let Some(directory) = self.directory.take() {
            let path = directory.path().to_owned();
            if let Err(error) = directory.close() {
                eprintln!(
                    "node {}: its directory {} could not be removed: {error}",
                    self.name,
                    path.display()
                );
            }
        }
    }
}
