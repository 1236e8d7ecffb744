//! Helpers shared by the integration tests: a temporary node root that prints its listing when a test fails, and a
//! runner for the real `bosun` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary node root. When the test panics, its file listing is printed to help diagnose the failure.
pub struct TempRoot {
    directory: tempfile::TempDir,
}

impl TempRoot {
    pub fn new() -> Self {
        TempRoot {
            directory: tempfile::Builder::new()
                .prefix("bosun-test-")
                .tempdir()
                .expect("create a temporary root"),
        }
    }

    pub fn path(&self) -> &Path {
        self.directory.path()
    }

    /// The real path of a node path (`/etc/kubernetes/admin.conf`).
    pub fn join(&self, node_path: &str) -> PathBuf {
        self.directory
            .path()
            .join(node_path.trim_start_matches('/'))
    }

    pub fn read(&self, node_path: &str) -> Vec<u8> {
        std::fs::read(self.join(node_path))
            .unwrap_or_else(|error| panic!("read {node_path}: {error}"))
    }

    pub fn read_string(&self, node_path: &str) -> String {
        String::from_utf8(self.read(node_path)).expect("utf-8")
    }

    pub fn write(&self, node_path: &str, contents: &[u8]) {
        let path = self.join(node_path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
        std::fs::write(path, contents).expect("write");
    }

    /// Every regular file under the root as (node path, bytes, mode, mtime), sorted.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>, u32, std::time::SystemTime)> {
        use std::os::unix::fs::PermissionsExt;
        let mut files = Vec::new();
        let mut pending = vec![self.path().to_path_buf()];
        while let Some(directory) = pending.pop() {
            for entry in std::fs::read_dir(&directory).expect("read_dir") {
                let entry = entry.expect("entry");
                let meta = entry.metadata().expect("metadata");
                if meta.is_dir() {
                    pending.push(entry.path());
                } else {
                    let node_path = entry
                        .path()
                        .strip_prefix(self.path())
                        .expect("under root")
                        .display()
                        .to_string();
                    files.push((
                        format!("/{node_path}"),
                        std::fs::read(entry.path()).expect("read"),
                        meta.permissions().mode() & 0o7777,
                        meta.modified().expect("mtime"),
                    ));
                }
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files
    }

    /// Node paths of every regular file, sorted.
    pub fn listing(&self) -> Vec<String> {
        self.snapshot().into_iter().map(|(path, ..)| path).collect()
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- files under the test root {} ---",
                self.path().display()
            );
            for (path, contents, mode, _) in self.snapshot() {
                eprintln!("{mode:04o} {:>8} {path}", contents.len());
            }
        }
    }
}

/// Runs the real bosun binary.
pub fn bosun(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bosun"))
        .args(arguments)
        .env_remove("BOSUN_ROOT")
        .output()
        .expect("run bosun")
}

/// Runs bosun against a root.
pub fn bosun_in(root: &TempRoot, arguments: &[&str]) -> Output {
    let mut all = vec!["--root", root.path().to_str().expect("utf-8 root")];
    all.extend_from_slice(arguments);
    bosun(&all)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the command succeeded, showing its output if not.
#[track_caller]
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "bosun failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
}

/// Asserts the command failed with `code`.
#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "unexpected exit\nstdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}
