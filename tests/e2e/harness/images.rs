//! Test workload images packed by the harness itself (the Kubernetes images come from tests/e2e/make-images):
//! a one-layer docker-archive, as `docker save` writes it, that `ctr images import` takes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The busybox image's name; pods use it with `imagePullPolicy: Never`.
pub const BUSYBOX: &str = "bosun.test/busybox:1";

/// The busybox applets the image links (a pod runs them as its command).
const APPLETS: [&str; 6] = ["sh", "nslookup", "sleep", "cat", "wget", "echo"];

fn sha256(path: &Path) -> String {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(output.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

/// A deterministic tar of `directory`'s contents.
fn tar(directory: &Path, output: &Path, entries: &[&str]) {
    let status = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
        ])
        .arg(directory)
        .arg("-cf")
        .arg(output)
        .args(entries)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar {}", directory.display());
}

/// Packs Debian's static busybox (`busybox-static`) into the image [`BUSYBOX`] under `directory`; returns the
/// archive's path.
pub fn busybox_archive(directory: &Path) -> PathBuf {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .expect("busybox (Debian package busybox-static, tests/install-deps) is installed");
    let work = directory.join("busybox-image");
    let rootfs = work.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).expect("rootfs");
    std::fs::copy(&busybox, rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in APPLETS {
        let link = rootfs.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).expect("applet link");
        }
    }
    let layer = work.join("layer.tar");
    tar(&rootfs, &layer, &["bin", "etc"]);
    let diff_id = sha256(&layer);
    let archive_root = work.join("archive");
    std::fs::create_dir_all(archive_root.join(&diff_id)).expect("archive directory");
    std::fs::rename(&layer, archive_root.join(&diff_id).join("layer.tar")).expect("layer");
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Entrypoint": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
    });
    let config_path = archive_root.join("config.json");
    std::fs::write(&config_path, config.to_string()).expect("image config");
    let config_id = sha256(&config_path);
    let config_name = format!("{config_id}.json");
    std::fs::rename(&config_path, archive_root.join(&config_name)).expect("config");
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [BUSYBOX],
        "Layers": [format!("{diff_id}/layer.tar")],
    }]);
    std::fs::write(archive_root.join("manifest.json"), manifest.to_string()).expect("manifest");
    let archive = directory.join("busybox.tar");
    tar(
        &archive_root,
        &archive,
        &["manifest.json", &config_name, &diff_id],
    );
    archive
}

/// Imports a docker-archive into the containerd at `socket`, namespace k8s.io (the CRI's).
pub fn import(socket: &Path, archive: &Path) {
    let output = Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["--namespace", "k8s.io", "images", "import"])
        .arg(archive)
        .output()
        .expect("run ctr images import");
    assert!(
        output.status.success(),
        "ctr could not import {}: {}",
        archive.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}
