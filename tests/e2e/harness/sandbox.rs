//! A throw-away node for one test: new network, PID and UTS namespaces.
//!
//! The network namespace has `lo` and an `eth0` (one end of a veth pair whose other end stays in the namespace)
//! with [`NODE_IP`] and a default route, so the node has a real, non-loopback address to advertise — and several
//! sandboxes can use the same fixed ports (6443, 2379, ...) side by side. No traffic leaves the namespace.
//!
//! The namespaces are held by one process (`cat`, PID 1 of the new PID namespace) reading a pipe from the test.
//! Everything the test starts in the sandbox joins that PID namespace, so killing the holder — on drop, or by the
//! kernel closing the pipe when the test process dies — kills every process in it, and the network namespace
//! disappears with the last of them. Mounts are made only in per-process private mount namespaces, so nothing
//! leaks onto the host either.

use std::ffi::OsStr;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{child_of, wait_for};

/// The sandbox node's address on its `eth0`.
pub const NODE_IP: &str = "10.250.0.2";
/// The (absent) gateway of the default route, so that "the address of the default route" is [`NODE_IP`].
pub const GATEWAY: &str = "10.250.0.1";

pub struct Sandbox {
    holder: Child,
    /// PID (in the host's PID namespace) of the namespaces' first process.
    target: u32,
    hostname: String,
}

/// Starts a `cat` (reading a pipe from the test) as PID 1 of new `namespaces` (unshare's flags) and returns it with
/// the host PID of that first process. It dies with the test process, and every process in its PID namespace with it.
pub fn hold_namespaces(namespaces: &[&str], what: &str) -> (Child, u32) {
    let holder = Command::new("unshare")
        .args(namespaces)
        .args(["--fork", "--kill-child=SIGKILL", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("start unshare (util-linux) for {what}: {error}"));
    let parent = holder.id();
    let target = wait_for(
        &format!("{what}'s first process"),
        Duration::from_secs(10),
        || child_of(parent),
    );
    (holder, target)
}

impl Sandbox {
    /// A new sandbox whose hostname is `hostname`.
    pub fn new(hostname: &str) -> Sandbox {
        let (holder, target) = hold_namespaces(&["--net", "--pid", "--uts"], "the sandbox");
        let sandbox = Sandbox {
            holder,
            target,
            hostname: hostname.to_owned(),
        };
        let script = format!(
            "set -e; ip link set lo up; ip link add eth0 type veth peer name eth1; ip link set eth1 up; \
             ip address add {NODE_IP}/24 dev eth0; ip link set eth0 up; \
             ip route add default via {GATEWAY} dev eth0; hostname {hostname}"
        );
        let output = sandbox
            .command("sh")
            .args(["-c", &script])
            .output()
            .expect("run nsenter");
        assert!(
            output.status.success(),
            "setting up the sandbox's network failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        sandbox
    }

    /// A new sandbox whose hostname is `hostname`, connected to `network` with `address` on its `eth0` (instead of
    /// the private [`NODE_IP`] of [`Sandbox::new`]), so sandboxes and nodes on one network reach each other.
    pub fn on_network(hostname: &str, network: &super::network::Network, address: &str) -> Sandbox {
        let (holder, target) = hold_namespaces(&["--net", "--pid", "--uts"], "the sandbox");
        let sandbox = Sandbox {
            holder,
            target,
            hostname: hostname.to_owned(),
        };
        let output = sandbox
            .command("sh")
            .args(["-c", &format!("hostname {hostname}")])
            .output()
            .expect("run nsenter");
        assert!(
            output.status.success(),
            "naming the sandbox failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        network.attach(target, address);
        sandbox
    }

    /// The PID (host's view) of the sandbox's first process, for `nsenter --target`.
    pub fn pid(&self) -> u32 {
        self.target
    }

    /// A command that runs `program` inside the sandbox's namespaces (its mount namespace is the host's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.target))
            .args(["--net", "--pid", "--uts", "--"])
            .arg(program);
        command
    }

    /// Runs `program arguments` in the sandbox and returns its output (whatever the exit status).
    pub fn output(&self, program: impl AsRef<OsStr>, arguments: &[&str]) -> Output {
        self.command(program)
            .args(arguments)
            .stdin(Stdio::null())
            .output()
            .expect("run nsenter")
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Killing PID 1 of the namespace makes the kernel kill every other process in it.
        let _ = kill(Pid::from_raw(self.target as i32), Signal::SIGKILL);
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let target = self.target;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{target}")).exists()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
