//! A network between sandboxes and nodes (tier 3, docs/testing.md): a Linux bridge that lives in a "switch" network
//! namespace of its own — never on the host — and one veth pair per attached namespace, its switch end enslaved to
//! the bridge and its other end moved into the attached namespace as `eth0` with the address the test chooses.
//!
//! The switch namespace is held by one process (`cat` reading a pipe from the test, PID 1 of a new PID namespace),
//! like [`super::sandbox::Sandbox`]: when the [`Network`] is dropped or the test process dies, the holder dies, the
//! namespace goes away and with it the bridge and every switch-side veth end (whose peers vanish with them). No
//! address is on the bridge, so nothing routes between the switch and the host.
//!
//! ```ignore
//! let network = Network::new();
//! let control_plane = Sandbox::on_network("cp-1", &network, "10.251.0.10");
//! let worker = Node::start("worker-1", NodeNetwork::External { address: "10.251.0.11".into() });
//! network.attach(worker.pid(), "10.251.0.11");
//! ```

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The subnet of every [`Network`] (each lives in its own namespace, so they never clash): /24.
pub const SUBNET_PREFIX: &str = "10.251.0";
/// The (absent) gateway of the attached namespaces' default route, so that "the address of the default route" is
/// the attached address, as on a real host.
pub const GATEWAY: &str = "10.251.0.1";

/// The bridge's name inside the switch namespace.
const BRIDGE: &str = "br0";

/// The `n`-th address of the subnet (`10.251.0.<n>`).
pub fn address(host: u8) -> String {
    format!("{SUBNET_PREFIX}.{host}")
}

pub struct Network {
    holder: Child,
    /// PID (host's view) of the switch namespace's first process.
    target: u32,
    /// Numbers the switch-side veth ends.
    ports: AtomicU32,
}

impl Network {
    /// A new switch namespace with a bridge that is up.
    pub fn new() -> Network {
        let (holder, target) = super::sandbox::hold_namespaces(&["--net", "--pid"], "the switch");
        let network = Network {
            holder,
            target,
            ports: AtomicU32::new(0),
        };
        network.in_switch(&format!(
            "set -e; ip link set lo up; ip link add {BRIDGE} type bridge; ip link set {BRIDGE} up"
        ));
        network
    }

    fn in_switch(&self, script: &str) {
        let output = Command::new("nsenter")
            .arg(format!("--target={}", self.target))
            .args(["--net", "--", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("run nsenter for the switch");
        assert!(
            output.status.success(),
            "the switch command {script:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Connects the network namespace of process `pid` (a sandbox's or node's PID 1): a veth whose end in that
    /// namespace is `eth0` with `address`/24, up, with a default route through [`GATEWAY`].
    pub fn attach(&self, pid: u32, address: &str) {
        let port = format!("port{}", self.ports.fetch_add(1, Ordering::SeqCst));
        self.in_switch(&format!(
            "set -e; ip link add {port} type veth peer name eth0 netns {pid}; \
             ip link set {port} master {BRIDGE}; ip link set {port} up"
        ));
        let output = Command::new("nsenter")
            .arg(format!("--target={pid}"))
            .args(["--net", "--", "sh", "-c"])
            .arg(format!(
                "set -e; ip link set lo up; ip address add {address}/24 dev eth0; ip link set eth0 up; \
                 ip route add default via {GATEWAY} dev eth0"
            ))
            .stdin(Stdio::null())
            .output()
            .expect("run nsenter for the attached namespace");
        assert!(
            output.status.success(),
            "configuring eth0 with {address} in the namespace of {pid} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Default for Network {
    fn default() -> Self {
        Network::new()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.target as i32), Signal::SIGKILL);
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
