//! The real-Kubernetes harness shared by the end-to-end tiers (compiled into the integration test binary; see
//! tests/integration/main.rs and docs/testing.md).
//!
//! Modules:
//! - `binaries`: finds the Kubernetes binaries that tests/e2e/build-kubernetes built (`BOSUN_E2E_BIN`, or the
//!   newest matching build in the cache). In CI a missing binary fails the test; locally the test is skipped loudly.
//! - `sandbox`: a throw-away node: its own network, PID and UTS namespaces (an `eth0` with [`sandbox::NODE_IP`], a
//!   hostname), held by one process whose death kills everything started in it, even when the test process is
//!   killed.
//! - `containerd`: a node's own containerd in a sandbox (own root, state, socket, CNI directory) with the
//!   images of tests/e2e/make-images imported.
//! - `node`: a real node (tier 2 and 3): network, mount, PID and UTS namespaces where bosun runs with the normal
//!   root `/` over per-node overlays and directories, a cgroup root of its own, and a teardown that leaves nothing.
//! - `images`: test workload images the harness packs itself (busybox), imported with `ctr`.
//! - `network`: a bridge in a "switch" network namespace of its own connecting sandboxes and nodes, each with its
//!   own address (`Network::attach`, `Sandbox::on_network`), for multi-node tiers; nothing of it is on the host.
//! - `static_pods`: runs a node root's static-pod manifests the way the kubelet would, as processes in the sandbox:
//!   each container in its own mount namespace whose root holds only the image's binary and the pod's hostPath
//!   volumes (taken from the node root) at their mount paths; waits for the pods' probes; shows their logs when a
//!   test fails.

pub mod binaries;
pub mod containerd;
pub mod images;
pub mod network;
pub mod node;
pub mod sandbox;
pub mod static_pods;

use std::time::{Duration, Instant};

/// Polls `condition` every 250 ms until it returns `Some`, or panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    wait_until(what, timeout, || condition().ok_or_else(String::new))
}

/// Like [`wait_for`], for conditions that say what they saw instead (`Err`): the last one is in the panic message.
#[track_caller]
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match condition() {
            Ok(value) => return value,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}{}{seen}",
                if seen.is_empty() { "" } else { "; last seen: " }
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The last `lines` lines of a text.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The PID of a child of `parent` (from /proc), if it has one.
pub fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| parent_of(*pid) == Some(parent))
}

fn parent_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("PPid:"))?
        .trim()
        .parse()
        .ok()
}
