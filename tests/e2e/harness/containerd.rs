//! A node's own containerd (tier 2 groundwork, docs/testing.md): Debian's containerd started inside a [`Sandbox`]
//! (so it and its shims die with the sandbox) in a private mount namespace made rshared, with a /proc of the
//! sandbox's PID namespace (runc and the shims look themselves up there) and a /run of its own (runc's state and the shims' sockets
//! would otherwise be shared with every containerd on the host), with its own root, state,
//! socket and CNI configuration directory, and the images of tests/e2e/make-images imported into namespace k8s.io.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use super::sandbox::Sandbox;
use super::wait_for;

pub struct Containerd {
    process: Child,
    directory: tempfile::TempDir,
}

impl Containerd {
    /// Starts containerd in `sandbox` with `sandbox_image` as the CRI's pause image.
    pub fn start(sandbox: &Sandbox, sandbox_image: &str) -> Containerd {
        let directory = tempfile::Builder::new()
            .prefix("bosun-containerd-")
            .tempdir()
            .expect("containerd directory");
        let base = directory.path().display().to_string();
        let config = format!(
            "version = 2\nroot = \"{base}/root\"\nstate = \"{base}/state\"\n\
             [grpc]\n  address = \"{base}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{base}/containerd.sock.ttrpc\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{base}/opt\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{sandbox_image}\"\n\
             \x20 netns_mounts_under_state_dir = true\n\
             \x20 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"/usr/lib/cni\"\n\
             \x20   conf_dir = \"{base}/cni\"\n"
        );
        std::fs::write(directory.path().join("config.toml"), config).expect("write config");
        let log = std::fs::File::create(directory.path().join("containerd.log")).expect("log");
        let process = sandbox
            .command("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg("mount --make-rshared / && mount -t proc proc /proc && mount -t tmpfs run /run && exec containerd --config \"$1\"")
            .arg("containerd")
            .arg(directory.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let containerd = Containerd { process, directory };
        let socket = containerd.socket();
        wait_for("containerd's socket", Duration::from_secs(30), || {
            socket.exists().then_some(())
        });
        containerd
    }

    /// Runs `ctr` against this containerd, in its namespaces (ctr makes the fifos of `ctr run` under /run, which
    /// must be containerd's).
    pub fn ctr(&self, arguments: &[&str]) -> std::process::Output {
        let pid = super::child_of(self.process.id()).expect("containerd runs");
        std::process::Command::new("nsenter")
            .arg(format!("--target={pid}"))
            .args([
                "--mount",
                "--net",
                "--pid",
                "--uts",
                "--",
                "ctr",
                "--address",
            ])
            .arg(self.socket())
            .args(["--namespace", "k8s.io"])
            .args(arguments)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    pub fn socket(&self) -> PathBuf {
        self.directory.path().join("containerd.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory.path().join("containerd.log")).unwrap_or_default()
    }

    /// Imports every image of tests/e2e/make-images built from `bin` (packing them first if needed).
    pub fn import_images(&self, bin: &Path) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/make-images");
        let output = std::process::Command::new(script)
            .arg("--bin")
            .arg(bin)
            .arg("--import")
            .arg(self.socket())
            .output()
            .expect("run tests/e2e/make-images");
        assert!(
            output.status.success(),
            "make-images --import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- end of containerd's log ---\n{}",
                super::tail(&self.log(), 30)
            );
        }
        if let Some(pid) = super::child_of(self.process.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.process.wait();
    }
}
