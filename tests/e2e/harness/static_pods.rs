//! Runs the static-pod manifests of a node root (`<root>/etc/kubernetes/manifests/*.yaml`) as processes in a
//! [`Sandbox`], standing in for the kubelet (tier 1, see docs/testing.md).
//!
//! Each container runs like runc would run it, minus cgroups and capabilities: in a private mount namespace, chrooted
//! into a fresh tmpfs that holds only
//! - the "image": the component's static binary at `/usr/local/bin/<name>` (the name is the image repository's last
//!   element, so the manifest's `image` must name the component; etcd's image also carries etcdctl and etcdutl),
//! - `/dev/{null,zero,full,random,urandom}`, a fresh `/proc`, an empty `/tmp`, and the `/etc/hosts` and
//!   `/etc/resolv.conf` the kubelet gives host-network pods,
//! - every hostPath volume at its `mountPath` (read-only where the mount says so), taken from **the node root**:
//!   hostPath `/etc/kubernetes/pki` is `<root>/etc/kubernetes/pki`. `DirectoryOrCreate` and `FileOrCreate` paths are
//!   created in the root as the kubelet would; `Directory`, `File` and untyped paths must exist.
//!
//! The container's `command` + `args` and `env` are exactly the manifest's, so the flags, paths and certificates
//! under test are the ones the bootstrapper wrote. Readiness is the pod's own `readinessProbe` (else its
//! `startupProbe`, else its `livenessProbe`), polled from inside the sandbox.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Deserialize;

use super::binaries::Binaries;
use super::sandbox::{Sandbox, NODE_IP};
use super::{child_of, tail};

#[derive(Debug, Deserialize)]
pub struct Pod {
    pub metadata: Metadata,
    pub spec: PodSpec,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub host_network: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    pub readiness_probe: Option<Probe>,
    pub startup_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
}

#[derive(Debug, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub host_path: Option<HostPath>,
}

#[derive(Debug, Deserialize)]
pub struct HostPath {
    pub path: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub http_get: Option<HttpGet>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub container_port: u16,
    #[serde(default)]
    pub name: String,
}

/// A port by number or by the name of one of the container's ports.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

#[derive(Debug, Deserialize)]
pub struct HttpGet {
    pub host: Option<String>,
    pub port: PortRef,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub scheme: String,
}

impl Pod {
    /// Reads one manifest.
    pub fn load(path: &Path) -> Pod {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
        bosun_config::yaml::from_str(&text)
            .unwrap_or_else(|error| panic!("{} is not a pod manifest: {error}", path.display()))
    }

    fn container(&self) -> &Container {
        assert_eq!(
            self.spec.containers.len(),
            1,
            "static pod {} has {} containers; the harness runs one",
            self.metadata.name,
            self.spec.containers.len()
        );
        &self.spec.containers[0]
    }

    /// The URL of the probe that says the pod is ready.
    pub fn ready_url(&self) -> Option<String> {
        let container = self.container();
        let probe = [
            &container.readiness_probe,
            &container.startup_probe,
            &container.liveness_probe,
        ]
        .into_iter()
        .flatten()
        .find_map(|probe| probe.http_get.as_ref())?;
        let scheme = if probe.scheme.is_empty() {
            "http".to_owned()
        } else {
            probe.scheme.to_ascii_lowercase()
        };
        let host = probe.host.clone().unwrap_or_else(|| NODE_IP.to_owned());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let port = match &probe.port {
            PortRef::Number(number) => *number,
            PortRef::Name(name) => container
                .ports
                .iter()
                .find(|port| &port.name == name)
                .unwrap_or_else(|| {
                    panic!(
                        "a probe of static pod {} names port {name}, which its container does not declare",
                        self.metadata.name
                    )
                })
                .container_port,
        };
        Some(format!("{scheme}://{host}:{port}{}", probe.path))
    }
}

/// The binaries an image stands for.
fn image_binaries(image: &str) -> Vec<String> {
    let repository = image.rsplit_once(':').map_or(image, |(name, _)| name);
    let name = repository.rsplit('/').next().unwrap_or(repository);
    match name {
        "etcd" => vec!["etcd".into(), "etcdctl".into(), "etcdutl".into()],
        other => vec![other.to_owned()],
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

struct Running {
    name: String,
    nsenter: Child,
    log: PathBuf,
    ready_url: Option<String>,
}

/// The static pods of one node root, running in a sandbox. Dropping it stops them; when the test is failing, the
/// end of every pod's log is printed first.
pub struct StaticPods<'sandbox> {
    sandbox: &'sandbox Sandbox,
    pods: Vec<Running>,
    _staging: tempfile::TempDir,
    logs: tempfile::TempDir,
}

impl<'sandbox> StaticPods<'sandbox> {
    /// Starts every manifest in `<root>/etc/kubernetes/manifests` (etcd first, then by name), as the kubelet would.
    pub fn start(sandbox: &'sandbox Sandbox, root: &Path, binaries: &Binaries) -> Self {
        let manifests = root.join("etc/kubernetes/manifests");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&manifests)
            .unwrap_or_else(|error| panic!("read {}: {error}", manifests.display()))
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "yaml")
            })
            .collect();
        paths.sort_by_key(|path| {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            (stem.as_deref() != Some("etcd"), stem)
        });
        assert!(!paths.is_empty(), "no manifests in {}", manifests.display());
        let staging = tempfile::Builder::new()
            .prefix("bosun-pods-")
            .tempdir()
            .expect("staging directory");
        let logs = tempfile::Builder::new()
            .prefix("bosun-pod-logs-")
            .tempdir()
            .expect("log directory");
        let mut pods = StaticPods {
            sandbox,
            pods: Vec::new(),
            _staging: staging,
            logs,
        };
        for path in paths {
            let pod = Pod::load(&path);
            let running = pods.launch(&pod, root, binaries);
            pods.pods.push(running);
        }
        pods
    }

    fn launch(&self, pod: &Pod, root: &Path, binaries: &Binaries) -> Running {
        let container = pod.container();
        assert!(
            pod.spec.host_network,
            "static pod {} is not hostNetwork; the harness runs only host-network pods",
            pod.metadata.name
        );
        let volumes: BTreeMap<&str, &Volume> = pod
            .spec
            .volumes
            .iter()
            .map(|volume| (volume.name.as_str(), volume))
            .collect();
        let staging = self._staging.path().join(&pod.metadata.name);
        std::fs::create_dir_all(&staging).expect("staging directory");
        let s = shell_quote(&staging.display().to_string());
        let mut script = vec![
            "set -e".to_owned(),
            format!("mount -t tmpfs -o mode=0755 pod {s}"),
            format!("cd {s}"),
            "mkdir -p usr/local/bin etc dev proc tmp sys run var/run".to_owned(),
            "for device in null zero full random urandom; do touch dev/$device; mount --bind /dev/$device dev/$device; done"
                .to_owned(),
            "mount -t proc proc proc".to_owned(),
            format!(
                "printf '127.0.0.1 localhost\\n::1 localhost\\n%s %s\\n' {} {} > etc/hosts",
                NODE_IP,
                shell_quote(self.sandbox.hostname())
            ),
            "cp /etc/resolv.conf etc/resolv.conf 2>/dev/null || : > etc/resolv.conf".to_owned(),
        ];
        for binary in image_binaries(&container.image) {
            let source = binaries.path(&binary);
            assert!(
                source.is_file(),
                "image {} of container {} in pod {} needs {}, which is not built",
                container.image,
                container.name,
                pod.metadata.name,
                source.display()
            );
            let target = shell_quote(&format!("usr/local/bin/{binary}"));
            script.push(format!(
                "touch {target}; mount --bind -o ro {} {target}",
                shell_quote(&source.display().to_string())
            ));
        }
        for mount in &container.volume_mounts {
            let volume = volumes.get(mount.name.as_str()).unwrap_or_else(|| {
                panic!(
                    "pod {} mounts volume {} which it does not declare",
                    pod.metadata.name, mount.name
                )
            });
            let host_path = volume.host_path.as_ref().unwrap_or_else(|| {
                panic!(
                    "volume {} of pod {} is not a hostPath; the harness runs only hostPath volumes",
                    mount.name, pod.metadata.name
                )
            });
            let source = root.join(host_path.path.trim_start_matches('/'));
            match host_path.kind.as_str() {
                "DirectoryOrCreate" => {
                    std::fs::create_dir_all(&source).expect("create hostPath directory");
                }
                "FileOrCreate" => {
                    std::fs::create_dir_all(source.parent().expect("parent"))
                        .expect("create hostPath parent");
                    if !source.exists() {
                        File::create(&source).expect("create hostPath file");
                    }
                }
                _ => assert!(
                    source.exists(),
                    "hostPath {} (volume {} of pod {}) does not exist in the node root",
                    host_path.path,
                    mount.name,
                    pod.metadata.name
                ),
            }
            let target = shell_quote(mount.mount_path.trim_start_matches('/'));
            let make_target = if source.is_dir() {
                format!("mkdir -p {target}")
            } else {
                format!("mkdir -p \"$(dirname {target})\"; touch {target}")
            };
            script.push(make_target);
            script.push(format!(
                "mount --bind {} {target}",
                shell_quote(&source.display().to_string())
            ));
            if mount.read_only {
                script.push(format!("mount -o remount,bind,ro {target}"));
            }
        }
        let mut environment = vec![
            "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            format!("HOSTNAME={}", self.sandbox.hostname()),
        ];
        environment.extend(
            container
                .env
                .iter()
                .map(|variable| format!("{}={}", variable.name, variable.value)),
        );
        let environment: Vec<String> = environment.iter().map(|e| shell_quote(e)).collect();
        script.push(format!(
            "exec env -i {} chroot {s} \"$@\"",
            environment.join(" ")
        ));
        let log = self.logs.path().join(format!("{}.log", pod.metadata.name));
        let log_file = File::create(&log).expect("create pod log");
        let mut command = self.sandbox.command("unshare");
        command
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(script.join("\n"))
            .arg(&pod.metadata.name)
            .args(&container.command)
            .args(&container.args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file);
        let nsenter = command.spawn().expect("start nsenter");
        Running {
            name: pod.metadata.name.clone(),
            nsenter,
            log,
            ready_url: pod.ready_url(),
        }
    }

    /// Waits until every pod's probe succeeds; panics with the pod's log when a pod exits or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for index in 0..self.pods.len() {
            let Some(url) = self.pods[index].ready_url.clone() else {
                continue;
            };
            loop {
                if let Some(status) = self.pods[index].nsenter.try_wait().expect("try_wait") {
                    panic!(
                        "static pod {} exited ({status}) before it was ready; its log:\n{}",
                        self.pods[index].name,
                        self.log_tail(index, 60)
                    );
                }
                if self.probe(&url) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "static pod {} was not ready ({url}) after {timeout:?}; its log:\n{}",
                    self.pods[index].name,
                    self.log_tail(index, 60)
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }

    /// Whether a probe URL answers with a status the kubelet counts as success (200-399).
    pub fn probe(&self, url: &str) -> bool {
        let output = self.sandbox.output(
            "curl",
            &[
                "--insecure",
                "--silent",
                "--max-time",
                "3",
                "--output",
                "/dev/null",
                "--write-out",
                "%{http_code}",
                url,
            ],
        );
        let code: u16 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        (200..400).contains(&code)
    }

    /// The names of the pods, in start order.
    pub fn names(&self) -> Vec<&str> {
        self.pods.iter().map(|pod| pod.name.as_str()).collect()
    }

    fn log_tail(&self, index: usize, lines: usize) -> String {
        tail(
            &std::fs::read_to_string(&self.pods[index].log).unwrap_or_default(),
            lines,
        )
    }
}

impl Drop for StaticPods<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for index in 0..self.pods.len() {
                eprintln!(
                    "--- end of the log of static pod {} ---\n{}",
                    self.pods[index].name,
                    self.log_tail(index, 30)
                );
            }
        }
        for pod in &mut self.pods {
            // nsenter's child is the container process itself (unshare, sh, env and chroot exec into it).
            if let Some(process) = child_of(pod.nsenter.id()) {
                let _ = kill(Pid::from_raw(process as i32), Signal::SIGKILL);
            }
            let _ = pod.nsenter.kill();
            let _ = pod.nsenter.wait();
        }
    }
}
