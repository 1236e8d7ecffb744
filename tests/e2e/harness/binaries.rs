//! Where the Kubernetes binaries are: `BOSUN_E2E_BIN` (tests/run sets it from `tests/e2e/build-kubernetes
//! --print-bin`), or else the most recently built `kubernetes-*/bin` under `BOSUN_E2E_CACHE` (default
//! /var/cache/bosun-e2e) that holds every binary a test needs.
//!
//! A test that needs them must not pass without them in CI: when `CI` is set, a missing binary (or not being root)
//! panics; on a developer's machine the test returns early after saying loudly what it skipped and why.

use std::path::{Path, PathBuf};

/// What tier 1 runs: the control plane and the tools to drive and compare it.
pub const TIER1: &[&str] = &[
    "etcd",
    "etcdctl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubeadm",
];

/// A directory holding the built binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    directory: PathBuf,
}

impl Binaries {
    /// The binaries `names`, or `None` when they are missing on a developer's machine (after printing why the test
    /// `test` is skipped). Panics in CI, where a skipped end-to-end test would hide a broken harness.
    pub fn require(test: &str, names: &[&str]) -> Option<Binaries> {
        let problem = match find(names) {
            Ok(directory) if is_root() => return Some(Binaries { directory }),
            Ok(_) => "it must run as root (it creates namespaces and mounts)".to_owned(),
            Err(problem) => problem,
        };
        let message = format!(
            "end-to-end test {test} cannot run: {problem}\n\
             hint: build them with `tests/e2e/build-kubernetes --tier all` (or run tests/run, which does)"
        );
        if std::env::var_os("CI").is_some_and(|value| !value.is_empty() && value != "false") {
            panic!("{message}");
        }
        eprintln!("\n!!!!!!!! SKIPPED {message}\n");
        None
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.directory.join(name)
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .map(|line| line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn has_all(directory: &Path, names: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !directory.join(name).is_file())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} is missing from {}",
            missing.join(", "),
            directory.display()
        ))
    }
}

fn find(names: &[&str]) -> Result<PathBuf, String> {
    if let Some(directory) = std::env::var_os("BOSUN_E2E_BIN").filter(|value| !value.is_empty()) {
        let directory = PathBuf::from(directory);
        has_all(&directory, names).map_err(|problem| format!("{problem} (BOSUN_E2E_BIN)"))?;
        return Ok(directory);
    }
    let cache = std::env::var_os("BOSUN_E2E_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/bosun-e2e"));
    let entries = std::fs::read_dir(&cache).map_err(|error| {
        format!(
            "BOSUN_E2E_BIN is not set and the build cache {} cannot be read ({error})",
            cache.display()
        )
    })?;
    let mut candidates: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("kubernetes-")
        })
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| has_all(bin, names).is_ok())
        .filter_map(|bin| Some((bin.metadata().ok()?.modified().ok()?, bin)))
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "BOSUN_E2E_BIN is not set and no build under {} has all of {}",
            cache.display(),
            names.join(", ")
        )
    })
}
