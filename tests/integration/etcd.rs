//! `bosun etcd` against real etcd: backup, status, restore through the etcd static-pod manifest, refusal of damaged
//! backups, and member replacement in a three-member cluster on loopback addresses.
//!
//! Backup and restore run twice, on Debian's etcd 3.4 (/usr/bin) and on the harness's etcd 3.6 (built with
//! Kubernetes by tests/e2e/build-kubernetes, found like every end-to-end test's binaries), each with the etcd PKI
//! the real bosun binary made (`bosun init phase certs etcd-ca|etcd-server|etcd-peer|etcd-healthcheck-client` from a
//! kubeadm configuration whose `serverCertSANs`/`peerCertSANs` hold the member's address): etcd serves bosun's
//! serving and peer certificates, bosun and the real etcdctl connect with bosun's healthcheck client certificate.
//!
//! The member-replacement test keeps a PKI made by openssl (tests/integration/etcd_pki.rs, shared with
//! benches/etcd_backup.rs): there bosun's etcd client talks to certificates of another implementation (one
//! serverAuth+clientAuth certificate for serving and peering, openssl's encoding), which bosun's own PKI cannot show.
//!
//! Restore needs something that plays the kubelet: [`ManifestRunner`] watches the node root's manifest directory and
//! runs etcd from `etcd.yaml`'s command while the manifest is there (restarting it when the manifest changes), with
//! every absolute path in a flag placed under the root, as hostPath volumes would. (The harness's `StaticPods` in
//! tests/e2e starts manifests once inside a sandbox and needs built Kubernetes binaries; restore needs a watcher that
//! stops and starts etcd as manifests move, with only Debian's etcd.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{assert_exit, assert_success, stderr, stdout, TempRoot};

#[path = "etcd_pki.rs"]
mod etcd_pki;

/// One etcd release: the directory holding its etcd and etcdctl (and etcdutl, for 3.5 and later).
struct EtcdBuild {
    bin: PathBuf,
}

impl EtcdBuild {
    /// Debian's etcd 3.4 (etcd-server and etcd-client in /usr/bin). In CI it must be there (tests/install-deps
    /// installs it); elsewhere the test is skipped loudly.
    fn debian(test: &str) -> Option<EtcdBuild> {
        let build = EtcdBuild {
            bin: PathBuf::from("/usr/bin"),
        };
        let (etcd, etcdctl) = (build.program("etcd"), build.program("etcdctl"));
        if Path::new(&etcd).is_file() && Path::new(&etcdctl).is_file() {
            return Some(build);
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{test} needs {etcd} and {etcdctl}: run tests/install-deps"
        );
        eprintln!(
            "!!!!!!!! SKIPPED {test}: {etcd} or {etcdctl} is missing (run tests/install-deps)"
        );
        None
    }

    /// The etcd 3.6 the harness built with Kubernetes (tests/e2e/build-kubernetes), found like every end-to-end
    /// test's binaries: missing fails in CI and skips loudly elsewhere.
    fn harness(test: &str) -> Option<EtcdBuild> {
        let binaries =
            crate::harness::binaries::Binaries::require(test, &["etcd", "etcdctl", "etcdutl"])?;
        let etcd = binaries.path("etcd");
        Some(EtcdBuild {
            bin: etcd.parent().expect("a directory holds etcd").to_path_buf(),
        })
    }

    fn program(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }

    fn has_etcdutl(&self) -> bool {
        Path::new(&self.program("etcdutl")).is_file()
    }
}

fn run(program: &str, arguments: &[&str]) -> std::process::Output {
    let output = Command::new(program)
        .args(arguments)
        .output()
        .unwrap_or_else(|error| panic!("run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// An etcd CA with server, peer and healthcheck-client certificates in `<root>/etc/kubernetes/pki/etcd`, and the
/// etcdctl of the etcd release under test to use them with.
struct Pki {
    directory: PathBuf,
    etcdctl: String,
}

impl Pki {
    /// Made by openssl (tests/integration/etcd_pki.rs); the server certificate is also the peer certificate.
    fn openssl(root: &TempRoot, etcd: &EtcdBuild, addresses: &[&str]) -> Pki {
        let directory = root.join("/etc/kubernetes/pki/etcd");
        etcd_pki::make(&directory, addresses);
        Pki {
            directory,
            etcdctl: etcd.program("etcdctl"),
        }
    }

    /// Made by the real bosun binary from a kubeadm configuration, one `init phase certs` phase at a time, as on a
    /// control-plane node: `etcd-ca`, `etcd-server`, `etcd-peer`, `etcd-healthcheck-client`.
    fn bosun(root: &TempRoot, etcd: &EtcdBuild, config: &str) -> Pki {
        root.write("/cluster.yaml", config.as_bytes());
        let config = root.join("/cluster.yaml").display().to_string();
        for phase in [
            "etcd-ca",
            "etcd-server",
            "etcd-peer",
            "etcd-healthcheck-client",
        ] {
            let output = crate::support::bosun_in(
                root,
                &["init", "phase", "certs", phase, "--config", &config],
            );
            assert_success(&output);
        }
        Pki {
            directory: root.join("/etc/kubernetes/pki/etcd"),
            etcdctl: etcd.program("etcdctl"),
        }
    }

    fn file(&self, name: &str) -> String {
        self.directory.join(name).display().to_string()
    }

    /// Every file of the etcd PKI with its contents, to show the restore left the certificates alone.
    fn contents(&self) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&self.directory)
            .expect("read the etcd pki")
            .map(|entry| {
                let path = entry.expect("entry").path();
                (
                    path.display().to_string(),
                    std::fs::read(&path).expect("read"),
                )
            })
            .collect();
        files.sort();
        files
    }

    /// The SHA-256 fingerprint of the certificate `endpoint` serves, fetched with openssl s_client presenting the
    /// healthcheck client certificate.
    fn served_fingerprint(&self, endpoint: &str) -> String {
        let address = endpoint.trim_start_matches("https://");
        let served = run(
            "openssl",
            &[
                "s_client",
                "-connect",
                address,
                "-CAfile",
                &self.file("ca.crt"),
                "-cert",
                &self.file("healthcheck-client.crt"),
                "-key",
                &self.file("healthcheck-client.key"),
                "-verify_ip",
                address.split(':').next().expect("host"),
                "-verify_return_error",
            ],
        );
        let pem = String::from_utf8_lossy(&served.stdout).into_owned();
        let begin = pem
            .find("-----BEGIN CERTIFICATE-----")
            .unwrap_or_else(|| panic!("no certificate served by {endpoint}:\n{pem}"));
        let end = pem[begin..]
            .find("-----END CERTIFICATE-----")
            .expect("end of certificate")
            + begin
            + "-----END CERTIFICATE-----".len();
        fingerprint(&format!("{}\n", &pem[begin..end]))
    }

    /// The SHA-256 fingerprint of one of the PKI's certificates.
    fn file_fingerprint(&self, name: &str) -> String {
        fingerprint(
            &String::from_utf8(std::fs::read(self.directory.join(name)).expect("read"))
                .expect("pem"),
        )
    }

    /// bosun's connection flags for an endpoint, with node paths.
    fn flags(endpoint: &str) -> Vec<String> {
        vec![
            "--endpoints".into(),
            endpoint.into(),
            "--cacert".into(),
            "/etc/kubernetes/pki/etcd/ca.crt".into(),
            "--cert".into(),
            "/etc/kubernetes/pki/etcd/healthcheck-client.crt".into(),
            "--key".into(),
            "/etc/kubernetes/pki/etcd/healthcheck-client.key".into(),
        ]
    }

    fn etcdctl(&self, endpoint: &str, arguments: &[&str]) -> String {
        let mut command = Command::new(&self.etcdctl);
        command
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                endpoint,
                "--cacert",
                &self.file("ca.crt"),
                "--cert",
                &self.file("healthcheck-client.crt"),
                "--key",
                &self.file("healthcheck-client.key"),
            ])
            .args(arguments);
        let output = command.output().expect("run etcdctl");
        assert!(
            output.status.success(),
            "etcdctl {arguments:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// openssl's SHA-256 fingerprint of a PEM certificate.
fn fingerprint(pem: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .expect("write the certificate");
    let output = child.wait_with_output().expect("openssl x509");
    assert!(
        output.status.success(),
        "openssl x509: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A kubeadm-shaped etcd manifest for one member, with `peer` the base name of its peer certificate (`peer` for
/// bosun's PKI, `server` for the openssl one).
fn etcd_manifest(
    name: &str,
    address: &str,
    initial_cluster: &str,
    state: &str,
    peer: &str,
) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://{address}:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://{address}:2380
    - --initial-cluster={initial_cluster}
    - --initial-cluster-state={state}
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://{address}:2379
    - --listen-peer-urls=https://{address}:2380
    - --name={name}
    - --peer-cert-file=/etc/kubernetes/pki/etcd/{peer}.crt
    - --peer-client-cert-auth=true
    - --peer-key-file=/etc/kubernetes/pki/etcd/{peer}.key
    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --snapshot-count=10000
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:3.5.21-0
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  hostNetwork: true
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
"
    )
}

/// The etcd command of a manifest, with absolute paths in flag values placed under `root`.
fn manifest_command(manifest: &str, root: &Path) -> Vec<String> {
    manifest
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("- --"))
        .map(|flag| match flag.split_once('=') {
            Some((name, value)) if value.starts_with('/') => {
                format!(
                    "--{name}={}",
                    root.join(value.trim_start_matches('/')).display()
                )
            }
            _ => format!("--{flag}"),
        })
        .collect()
}

/// Plays the kubelet for `<root>/etc/kubernetes/manifests/etcd.yaml`: runs etcd while the manifest is there,
/// restarts it when the manifest changes, stops it when the manifest goes away. Other manifests are ignored.
struct ManifestRunner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    starts: Arc<Mutex<Vec<String>>>,
    log: PathBuf,
}

fn stop_child(child: &mut Child) {
    // Quietly: the process may have exited already.
    let _ = Command::new("kill")
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl ManifestRunner {
    fn start(root: &TempRoot, etcd: &EtcdBuild) -> ManifestRunner {
        let program = etcd.program("etcd");
        let root_path = root.path().to_path_buf();
        let manifest = root.join("/etc/kubernetes/manifests/etcd.yaml");
        let log = root.path().join("etcd-runner.log");
        let stop = Arc::new(AtomicBool::new(false));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = stop.clone();
            let starts = starts.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                let mut running: Option<(Child, String)> = None;
                while !stop.load(Ordering::SeqCst) {
                    let current = std::fs::read_to_string(&manifest).ok();
                    let changed = match (&running, &current) {
                        (Some((_, text)), Some(now)) => text != now,
                        (Some(_), None) => true,
                        (None, Some(_)) => true,
                        (None, None) => false,
                    };
                    if changed {
                        if let Some((mut child, _)) = running.take() {
                            stop_child(&mut child);
                        }
                        if let Some(text) = current {
                            let arguments = manifest_command(&text, &root_path);
                            let output = std::fs::OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(&log)
                                .expect("log");
                            let child = Command::new(&program)
                                .args(&arguments)
                                .stdin(Stdio::null())
                                .stdout(output.try_clone().expect("log"))
                                .stderr(output)
                                .spawn()
                                .expect("start etcd");
                            starts.lock().expect("starts").push(arguments.join(" "));
                            running = Some((child, text));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                if let Some((mut child, _)) = running.take() {
                    stop_child(&mut child);
                }
            })
        };
        ManifestRunner {
            stop,
            thread: Some(thread),
            starts,
            log,
        }
    }

    fn starts(&self) -> Vec<String> {
        self.starts.lock().expect("starts").clone()
    }
}

impl Drop for ManifestRunner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- etcd log (last 40 lines) ---\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

fn bosun_etcd(root: &TempRoot, etcd: &EtcdBuild, arguments: &[&str]) -> std::process::Output {
    let mut all = vec!["etcd"];
    all.extend_from_slice(arguments);
    // bosun finds etcdutl/etcdctl for restores on the PATH, as on a node.
    let path = format!(
        "{}:{}",
        etcd.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_bosun"));
    command
        .env_remove("BOSUN_ROOT")
        .env("PATH", path)
        .arg("--root")
        .arg(root.path())
        .args(&all);
    command.output().expect("run bosun")
}

fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", stdout(output)))
}

/// Writes `count` keys `<prefix>NNNNNN` through bosun's own etcd client: [`WRITERS`] clients at once, each sending
/// transactions of 100 puts, so that etcd commits several transactions per disk sync.
fn write_keys(pki: &Pki, endpoint: &str, prefix: &str, count: usize) {
    const WRITERS: usize = 8;
    let read = |name: &str| std::fs::read(pki.directory.join(name)).expect("read pki");
    let tls = bosun::host::etcd::TlsMaterial {
        ca: read("ca.crt"),
        cert: read("healthcheck-client.crt"),
        key: read("healthcheck-client.key"),
    };
    let pairs: Vec<(String, Vec<u8>)> = (0..count)
        .map(|index| {
            (
                format!("{prefix}{index:06}"),
                format!("value of {prefix}{index:06}").into_bytes(),
            )
        })
        .collect();
    std::thread::scope(|scope| {
        for share in pairs.chunks(count.div_ceil(WRITERS).max(1)) {
            let tls = tls.clone();
            scope.spawn(move || {
                bosun::host::etcd::LocalEtcd::new(
                    vec![endpoint.to_owned()],
                    Some(tls),
                    Duration::from_secs(30),
                )
                .expect("client")
                .put_many(share)
                .expect("put keys");
            });
        }
    });
}

fn count_keys(pki: &Pki, endpoint: &str, prefix: &str) -> (u64, i64) {
    // The range response counts every match, whatever the limit.
    let output: serde_json::Value = serde_json::from_str(&pki.etcdctl(
        endpoint,
        &["get", prefix, "--prefix", "--limit", "1", "-w", "json"],
    ))
    .expect("json");
    (
        output["count"].as_u64().unwrap_or(0),
        output["header"]["revision"].as_i64().expect("revision"),
    )
}

/// Everything under /etc/kubernetes and the data dirs, with contents, to prove "nothing changed".
fn node_state(root: &TempRoot) -> Vec<(String, Vec<u8>)> {
    root.snapshot()
        .into_iter()
        .filter(|(path, ..)| {
            path.starts_with("/etc/kubernetes/") || path.starts_with("/var/lib/etcd-restored")
        })
        .map(|(path, contents, ..)| (path, contents))
        .collect()
}

fn assert_refused_and_unchanged(root: &TempRoot, etcd: &EtcdBuild, file: &str, expected: &str) {
    let before = node_state(root);
    let output = bosun_etcd(
        root,
        etcd,
        &[
            "restore",
            file,
            "--stop-timeout",
            "20",
            "--health-timeout",
            "30",
        ],
    );
    assert_exit(&output, bosun::exit::PREFLIGHT_FAILED);
    let message = stderr(&output);
    assert!(
        message.contains(expected),
        "expected {expected:?} in:\n{message}"
    );
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(
        node_state(root),
        before,
        "the node changed although the restore was refused"
    );
    assert!(
        !root
            .join("/var/lib/bosun")
            .read_dir()
            .map(|mut entries| entries.any(|entry| entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .starts_with("etcd-restore")))
            .unwrap_or(false),
        "a decrypted snapshot was left behind"
    );
}

/// The kubeadm configuration whose etcd certificates the backup and restore tests run etcd with: the node's
/// advertise address is elsewhere, so etcd's loopback address is in the serving and peer certificates only because
/// of `serverCertSANs` and `peerCertSANs`.
fn etcd_config(address: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 192.0.2.10
nodeRegistration:
  name: node-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
etcd:
  local:
    serverCertSANs:
    - {address}
    peerCertSANs:
    - {address}
"
    )
}

#[test]
fn etcd_3_4_backup_then_restore_brings_back_exactly_the_snapshot_and_damaged_backups_are_refused() {
    let test = "etcd_3_4_backup_then_restore";
    if let Some(etcd) = EtcdBuild::debian(test) {
        // Debian ships no etcdutl, so the default `--restore-tool auto` restores natively.
        backup_then_restore(&etcd, "127.0.41.1", "3.4.", &[]);
    }
}

#[test]
fn etcd_3_6_backup_then_restore_brings_back_exactly_the_snapshot_and_damaged_backups_are_refused() {
    let test = "etcd_3_6_backup_then_restore";
    if let Some(etcd) = EtcdBuild::harness(test) {
        // etcdutl is on the PATH here, so the native restore is asked for.
        backup_then_restore(&etcd, "127.0.41.2", "3.6.", &["--restore-tool", "native"]);
    }
}

/// On one member of `etcd` (whose version starts with `version`) listening on `address`, with certificates bosun
/// made: 100 000 keys, a backup, damaged copies refused, more writes, a restore through the manifest; afterwards the
/// keys and revision are the snapshot's and the member serves with the same certificates. The restore is bosun's
/// native one: afterwards the member list holds exactly the member with the ID bosun computed, raft takes writes,
/// and the member restarts cleanly from the WAL and database bosun wrote; the same snapshot restored by etcd's own
/// tool and by bosun gives the same IDs, WAL and keys ([`native_matches_etcds_restore`]).
fn backup_then_restore(etcd: &EtcdBuild, address: &str, version: &str, restore_flags: &[&str]) {
    let root = TempRoot::new();
    let endpoint = format!("https://{address}:2379");
    let pki = Pki::bosun(&root, etcd, &etcd_config(address));
    let certificates = pki.contents();
    root.write(
        "/etc/kubernetes/manifests/etcd.yaml",
        etcd_manifest(
            "node-1",
            address,
            &format!("node-1=https://{address}:2380"),
            "new",
            "peer",
        )
        .as_bytes(),
    );
    let apiserver_manifest = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n# not run by the test runner\n";
    root.write(
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        apiserver_manifest,
    );
    let runner = ManifestRunner::start(&root, etcd);
    wait_for("etcd to answer", Duration::from_secs(60), || {
        bosun_etcd(&root, etcd, &["check"]).status.success()
    });
    let served = pki.served_fingerprint(&endpoint);
    assert_eq!(
        served,
        pki.file_fingerprint("server.crt"),
        "etcd does not serve bosun's etcd-server certificate"
    );
    let versions: serde_json::Value =
        serde_json::from_str(&pki.etcdctl(&endpoint, &["endpoint", "status", "-w", "json"]))
            .expect("endpoint status json");
    let running = versions[0]["Status"]["version"]
        .as_str()
        .expect("version")
        .to_owned();
    assert!(
        running.starts_with(version),
        "{running} is not etcd {version}x"
    );

    // 100 000 keys, then a backup through the manifest's endpoint and certificates (no connection flags).
    let started = Instant::now();
    write_keys(&pki, &endpoint, "key/", 100_000);
    eprintln!(
        "[{running}] 100 000 keys written in {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let (count, revision_at_backup) = count_keys(&pki, &endpoint, "key/");
    assert_eq!(count, 100_000);
    let output = bosun_etcd(&root, etcd, &["backup", "--output-file", "/backups/"]);
    assert_success(&output);
    eprintln!("[{running}] backup in {:?}", started.elapsed());
    let backup_path = stdout(&output).trim().to_owned();
    assert!(
        backup_path.starts_with("/backups/etcd-kubernetes-")
            && backup_path.ends_with(".bosun-etcd"),
        "{backup_path}"
    );
    let meta = std::fs::metadata(root.join(&backup_path)).expect("backup exists");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "backup mode");
    assert_eq!(
        std::fs::metadata(root.join("/etc/bosun/etcd-backup.key"))
            .expect("key")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(
        stderr(&output).contains("created the backup key"),
        "{}",
        stderr(&output)
    );

    let status = json(&bosun_etcd(
        &root,
        etcd,
        &["backup", "status", &backup_path, "-o", "json"],
    ));
    assert_eq!(
        status["revision"].as_i64(),
        Some(revision_at_backup),
        "{status}"
    );
    assert!(
        status["totalKey"].as_u64().expect("keys") >= 100_000,
        "{status}"
    );
    assert_eq!(status["encrypted"], true);

    // bosun's reading of a plain snapshot agrees with etcdctl's on every figure.
    let plain = root.join("/backups/plain.db").display().to_string();
    pki.etcdctl(&endpoint, &["snapshot", "save", &plain]);
    let theirs: serde_json::Value = serde_json::from_str(
        &{
            // etcd 3.6 moved `snapshot status` from etcdctl to etcdutl.
            let tool = if etcd.has_etcdutl() {
                etcd.program("etcdutl")
            } else {
                etcd.program("etcdctl")
            };
            run(&tool, &["snapshot", "status", &plain, "-w", "json"])
        }
        .stdout
        .iter()
        .map(|&b| b as char)
        .collect::<String>(),
    )
    .expect("etcdctl json");
    let ours = json(&bosun_etcd(
        &root,
        etcd,
        &["backup", "status", "/backups/plain.db", "-o", "json"],
    ));
    // etcdutl (3.5+) counts the revisions in the `key` bucket; etcd 3.4's etcdctl counted every bucket's entries.
    let their_count = if etcd.has_etcdutl() {
        "totalKey"
    } else {
        "totalEntries"
    };
    for (field, ours_field) in [
        ("hash", "hash"),
        ("revision", "revision"),
        ("totalKey", their_count),
        ("totalSize", "totalSize"),
    ] {
        assert_eq!(
            ours[ours_field], theirs[field],
            "{field}: ours {ours}, etcd's {theirs}"
        );
    }

    // Damaged backups are refused before anything changes.
    let original = std::fs::read(root.join(&backup_path)).expect("read backup");
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x20;
    root.write("/backups/flipped.bosun-etcd", &flipped);
    assert_refused_and_unchanged(
        &root,
        etcd,
        "/backups/flipped.bosun-etcd",
        "fails AES-GCM authentication",
    );
    root.write(
        "/backups/truncated.bosun-etcd",
        &original[..original.len() - 100],
    );
    assert_refused_and_unchanged(&root, etcd, "/backups/truncated.bosun-etcd", "truncated");
    root.write("/etc/bosun/other.key", b"bosun-etcd-backup-key-v1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    std::fs::set_permissions(
        root.join("/etc/bosun/other.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let before = node_state(&root);
    let output = bosun_etcd(
        &root,
        etcd,
        &[
            "restore",
            &backup_path,
            "--encryption-key",
            "/etc/bosun/other.key",
        ],
    );
    assert_exit(&output, bosun::exit::PREFLIGHT_FAILED);
    assert!(
        stderr(&output).contains("encrypted with another key"),
        "{}",
        stderr(&output)
    );
    assert_eq!(node_state(&root), before);
    let output = bosun_etcd(
        &root,
        etcd,
        &["backup", "status", "/backups/flipped.bosun-etcd"],
    );
    assert_exit(&output, bosun::exit::CHECK_FAILED);
    // A restore tool that is asked for but missing is refused up front (Debian's 3.4 has no etcdutl).
    if !etcd.has_etcdutl() {
        let output = bosun_etcd(
            &root,
            etcd,
            &["restore", &backup_path, "--restore-tool", "etcdutl"],
        );
        assert_exit(&output, bosun::exit::PREFLIGHT_FAILED);
        assert!(
            stderr(&output)
                .contains("--restore-tool etcdutl was asked for, but etcdutl is not on the PATH"),
            "{}",
            stderr(&output)
        );
        assert_eq!(node_state(&root), before);
    }

    // More writes after the backup, which the restore must undo.
    write_keys(&pki, &endpoint, "later/", 500);
    pki.etcdctl(&endpoint, &["del", "key/000000"]);
    assert!(count_keys(&pki, &endpoint, "key/").1 > revision_at_backup);

    let started = Instant::now();
    let mut arguments = vec!["restore", &backup_path];
    arguments.extend_from_slice(&RESTORE_TIMEOUTS);
    arguments.extend_from_slice(restore_flags);
    let output = bosun_etcd(&root, etcd, &arguments);
    assert_success(&output);
    eprintln!("[{running}] native restore in {:?}", started.elapsed());
    assert!(
        stdout(&output).contains(" with native (revision "),
        "{}",
        stdout(&output)
    );
    let (count, revision) = count_keys(&pki, &endpoint, "key/");
    assert_eq!(
        (count, revision),
        (100_000, revision_at_backup),
        "keys and revision after the restore"
    );
    assert_eq!(
        count_keys(&pki, &endpoint, "later/").0,
        0,
        "keys written after the backup survived"
    );
    assert_eq!(
        pki.etcdctl(&endpoint, &["get", "key/000000", "--print-value-only"])
            .trim(),
        "value of key/000000"
    );
    // The restored member serves with the certificates bosun made, untouched by the restore.
    assert_eq!(
        pki.contents(),
        certificates,
        "the restore changed the etcd PKI"
    );
    assert_eq!(
        pki.served_fingerprint(&endpoint),
        served,
        "the restored member serves another certificate"
    );

    let manifest = root.read_string("/etc/kubernetes/manifests/etcd.yaml");
    let data_dir = manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("- --data-dir="))
        .expect("data dir")
        .to_owned();
    assert!(
        data_dir.starts_with("/var/lib/etcd-restored-"),
        "{manifest}"
    );
    assert!(
        manifest.contains(&format!("      path: {data_dir}\n")),
        "{manifest}"
    );
    assert!(
        manifest.contains("--initial-cluster-token=bosun-restore-"),
        "{manifest}"
    );
    assert!(
        root.join("/var/lib/etcd/member").is_dir(),
        "the old data directory must be kept"
    );
    assert_eq!(
        root.read("/etc/kubernetes/manifests/kube-apiserver.yaml"),
        apiserver_manifest
    );
    assert!(
        runner.starts().last().expect("started").contains(&data_dir),
        "etcd was not restarted on the new data dir"
    );
    let leftovers: Vec<String> = root
        .listing()
        .into_iter()
        .filter(|path| {
            path.starts_with("/etc/kubernetes/tmp")
                || path.starts_with("/var/lib/bosun/etcd-restore")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(
        stdout(&output).contains(&format!("(revision {revision_at_backup},")),
        "{}",
        stdout(&output)
    );

    // The member list is exactly the restored member, with the ID bosun computed.
    let members = assert_only_member(&pki, &endpoint, &stdout(&output));
    assert_eq!(members[0]["name"], "node-1", "{members:?}");
    assert_eq!(
        members[0]["peerURLs"],
        serde_json::json!([format!("https://{address}:2380")]),
        "{members:?}"
    );
    // Raft moves: a write after the restore is committed.
    pki.etcdctl(&endpoint, &["put", "after/one", "1"]);
    assert_eq!(count_keys(&pki, &endpoint, "").1, revision_at_backup + 1);

    // A second start reopens the WAL bosun wrote (now holding the write) and appends to it.
    let manifest_path = root.join("/etc/kubernetes/manifests/etcd.yaml");
    let aside = root.join("/etc/kubernetes/etcd.yaml.aside");
    std::fs::rename(&manifest_path, &aside).expect("move the manifest aside");
    wait_for("etcd to stop", Duration::from_secs(30), || {
        std::net::TcpStream::connect_timeout(
            &format!("{address}:2379").parse().expect("address"),
            Duration::from_millis(200),
        )
        .is_err()
    });
    let db = root.join(&format!("{data_dir}/member/snap/db"));
    bbolt_check(&db);
    std::fs::rename(&aside, &manifest_path).expect("move the manifest back");
    wait_for("etcd to answer again", Duration::from_secs(60), || {
        bosun_etcd(&root, etcd, &["check"]).status.success()
    });
    assert_eq!(
        pki.etcdctl(&endpoint, &["get", "after/one", "--print-value-only"])
            .trim(),
        "1"
    );
    pki.etcdctl(&endpoint, &["put", "after/two", "2"]);
    assert_eq!(
        count_keys(&pki, &endpoint, "").1,
        revision_at_backup + 2,
        "revision after two writes"
    );
    assert_eq!(count_keys(&pki, &endpoint, "key/").0, 100_000);

    native_matches_etcds_restore(&root, etcd, "/backups/plain.db", address, &running);

    // Where etcdutl is on the PATH, the default `--restore-tool auto` uses it, and the member it makes has the ID
    // bosun computed.
    if etcd.has_etcdutl() {
        let started = Instant::now();
        let mut arguments = vec!["restore", &backup_path];
        arguments.extend_from_slice(&RESTORE_TIMEOUTS);
        let output = bosun_etcd(&root, etcd, &arguments);
        assert_success(&output);
        eprintln!("[{running}] etcdutl restore in {:?}", started.elapsed());
        let text = stdout(&output);
        assert!(text.contains(" with etcdutl (revision "), "{text}");
        assert_only_member(&pki, &endpoint, &text);
        assert_eq!(
            count_keys(&pki, &endpoint, "key/"),
            (100_000, revision_at_backup)
        );
    }
}

/// How long the restore tests let bosun wait for etcd to stop and to be healthy again.
const RESTORE_TIMEOUTS: [&str; 4] = ["--stop-timeout", "30", "--health-timeout", "60"];

/// The member list holds exactly one member, whose ID is the one the restore's output names (`…, member <hex>,`);
/// returns the list.
#[track_caller]
fn assert_only_member(pki: &Pki, endpoint: &str, restore_output: &str) -> Vec<serde_json::Value> {
    let member_id = restore_output
        .split(", member ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the member ID in the output")
        .to_owned();
    let listed: serde_json::Value =
        serde_json::from_str(&pki.etcdctl(endpoint, &["member", "list", "-w", "json"]))
            .expect("member list json");
    let members = listed["members"].as_array().expect("members").clone();
    assert_eq!(members.len(), 1, "{listed}");
    assert_eq!(
        format!("{:x}", members[0]["ID"].as_u64().expect("ID")),
        member_id,
        "{listed}"
    );
    members
}

/// `bbolt check` (bbolt v1.4.3, built once from the Go module proxy and cached) on a database.
fn bbolt_check(db: &Path) {
    // The 3.4 and 3.6 tests run in parallel: one builds, the other waits for it.
    static BUILD: Mutex<()> = Mutex::new(());
    let _building = BUILD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let cache = Path::new("/var/cache/bosun-e2e/bbolt-v1.4.3");
    let program = cache.join("bbolt");
    if !program.is_file() {
        let module = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            module.path().join("go.mod"),
            "module bosun.invalid/bbolt-build\n\ngo 1.26.0\n\nrequire go.etcd.io/bbolt v1.4.3\n",
        )
        .expect("go.mod");
        std::fs::create_dir_all(cache).expect("cache dir");
        let partial = cache.join(format!("bbolt.{}.partial", std::process::id()));
        let built = Command::new("nice")
            .args(["-n", "19", "sh", "-c"])
            .arg(format!(
                "GOFLAGS=-mod=mod go get go.etcd.io/bbolt/cmd/bbolt@v1.4.3 && go build -o {} go.etcd.io/bbolt/cmd/bbolt",
                partial.display()
            ))
            .current_dir(module.path())
            .output();
        match built {
            Ok(output) if output.status.success() => {
                std::fs::rename(&partial, &program).expect("cache bbolt");
            }
            other => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "cannot build bbolt: {other:?}"
                );
                eprintln!(
                    "!!!!!!!! SKIPPED bbolt check of {}: cannot build bbolt: {other:?}",
                    db.display()
                );
                return;
            }
        }
    }
    let output = Command::new(&program)
        .arg("check")
        .arg(db)
        .output()
        .expect("run bbolt");
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("OK"),
        "bbolt check {}: {}{}",
        db.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every bucket of a bolt database: name, then each key and value, in order.
type BoltContents = std::collections::BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

fn bolt_contents(db: &Path) -> BoltContents {
    use bosun_phases::etcd::bolt::{self, ScanEvent};
    let mut file = std::fs::File::open(db).expect("open db");
    let length = file.metadata().expect("db metadata").len();
    let mut contents = std::collections::BTreeMap::new();
    let mut current = String::new();
    bolt::scan(&mut file, length, &mut |event| {
        match event {
            ScanEvent::Bucket { name, .. } => {
                current = String::from_utf8_lossy(name).into_owned();
                contents.insert(current.clone(), Vec::new());
            }
            ScanEvent::Entry { key, value, .. } => contents
                .get_mut(&current)
                .expect("bucket")
                .push((key.to_vec(), value.to_vec())),
            ScanEvent::EndBucket => {}
        }
        Ok(())
    })
    .expect("scan db");
    contents
}

/// The differential check: the same snapshot restored by etcd's own tool (etcdutl, or 3.4's etcdctl) and by
/// bosun's native restore, for the same name, peer URL and token, gives the same WAL (member ID, cluster ID,
/// the member's JSON, hard state), the same keys and values in every bucket but the membership ones etcd 3.4 leaves
/// behind, and a database `bbolt check` accepts.
fn native_matches_etcds_restore(
    root: &TempRoot,
    etcd: &EtcdBuild,
    snapshot: &str,
    address: &str,
    running: &str,
) {
    use bosun_phases::etcd::native_restore::{self, NewMember};
    use std::os::unix::fs::PermissionsExt;
    let peer_url = format!("https://{address}:2380");
    let token = "bosun-differential";
    let theirs = root.join("/differential/theirs");
    let (tool, extra_env) = if etcd.has_etcdutl() {
        (etcd.program("etcdutl"), None)
    } else {
        (etcd.program("etcdctl"), Some(("ETCDCTL_API", "3")))
    };
    let started = Instant::now();
    let mut command = Command::new(&tool);
    if let Some((name, value)) = extra_env {
        command.env(name, value);
    }
    let output = command
        .args(["snapshot", "restore"])
        .arg(root.join(snapshot))
        .arg("--data-dir")
        .arg(&theirs)
        .args(["--name", "node-1", "--initial-cluster"])
        .arg(format!("node-1={peer_url}"))
        .args([
            "--initial-cluster-token",
            token,
            "--initial-advertise-peer-urls",
        ])
        .arg(&peer_url)
        .output()
        .expect("run the restore tool");
    assert!(
        output.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let their_time = started.elapsed();

    let started = Instant::now();
    let made = native_restore::restore_data_dir(
        &bosun::host::etcd::RootStreams::new(root.path()),
        &bosun::host::local::LocalFiles::new(root.path()),
        Path::new(snapshot),
        Path::new("/differential/ours"),
        &NewMember {
            name: "node-1".to_owned(),
            peer_urls: vec![peer_url.clone()],
            cluster_token: token.to_owned(),
        },
    )
    .expect("native restore");
    let our_time = started.elapsed();
    eprintln!(
        "[{running}] restoring the 100 000-key snapshot: {tool} {their_time:?}, bosun native {our_time:?} ({} database)",
        made.db_bytes
    );
    let ours = root.join("/differential/ours");

    // The WAL: identical records up to the final snapshot record, which etcd 3.4 writes without the voters.
    let wal = "member/wal/0000000000000000-0000000000000000.wal";
    let our_wal = std::fs::read(ours.join(wal)).expect("our wal");
    let their_wal = std::fs::read(theirs.join(wal)).expect("their wal");
    assert_eq!(our_wal.len(), their_wal.len(), "WAL segment size");
    let records = native_restore::wal_records(
        made.member_id,
        made.cluster_id,
        &NewMember {
            name: "node-1".to_owned(),
            peer_urls: vec![peer_url.clone()],
            cluster_token: token.to_owned(),
        },
    );
    let compared = if etcd.has_etcdutl() {
        records.len()
    } else {
        records.len() - 40
    };
    assert_eq!(
        our_wal[..compared],
        their_wal[..compared],
        "the WAL records differ from {tool}'s"
    );
    // The v2 snapshot: etcd 3.4 renders the same store byte for byte (3.6 counts one more failed get).
    let snap = "member/snap/0000000000000001-0000000000000001.snap";
    let our_snap = std::fs::read(ours.join(snap)).expect("our snap");
    if !etcd.has_etcdutl() {
        assert_eq!(
            our_snap,
            std::fs::read(theirs.join(snap)).expect("their snap")
        );
    } else {
        assert!(theirs.join(snap).is_file());
    }

    // The database: the same buckets, keys and values.
    let mut our_db = bolt_contents(&ours.join("member/snap/db"));
    let mut their_db = bolt_contents(&theirs.join("member/snap/db"));
    if !etcd.has_etcdutl() {
        // etcd 3.4's etcdctl leaves the old membership in the v3 buckets (3.4 reads it from the v2 snapshot) and
        // writes no raft term.
        for bucket in ["members", "members_removed"] {
            our_db.remove(bucket);
            their_db.remove(bucket);
        }
        if let Some(meta) = our_db.get_mut("meta") {
            meta.retain(|(key, _)| key != b"term");
        }
    }
    assert_eq!(
        our_db.keys().collect::<Vec<_>>(),
        their_db.keys().collect::<Vec<_>>(),
        "buckets"
    );
    for (bucket, entries) in &their_db {
        assert!(
            our_db[bucket] == *entries,
            "the bucket {bucket} differs from {tool}'s restore ({} and {} entries)",
            our_db[bucket].len(),
            entries.len()
        );
    }
    bbolt_check(&ours.join("member/snap/db"));

    // Modes as etcd makes them: directories 0700, the database and WAL 0600.
    for (path, mode) in [
        ("", 0o700),
        ("member", 0o700),
        ("member/snap", 0o700),
        ("member/wal", 0o700),
        ("member/snap/db", 0o600),
        (wal, 0o600),
        (snap, 0o600),
    ] {
        let meta = std::fs::metadata(ours.join(path)).expect("metadata");
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{path}");
    }
}

/// One etcd member run directly as a process (the cluster test does not need manifests).
struct Member {
    child: Child,
}

impl Member {
    fn start(
        root: &TempRoot,
        etcd: &EtcdBuild,
        name: &str,
        address: &str,
        initial_cluster: &str,
        state: &str,
    ) -> Member {
        let text = etcd_manifest(name, address, initial_cluster, state, "server")
            .replace("/var/lib/etcd", &format!("/var/lib/etcd-{name}"));
        let log = std::fs::File::create(root.path().join(format!("{name}.log"))).expect("log");
        let child = Command::new(etcd.program("etcd"))
            .args(manifest_command(&text, root.path()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start etcd");
        Member { child }
    }

    fn stop(&mut self) {
        stop_child(&mut self.child);
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop();
    }
}

fn members_json(root: &TempRoot, etcd: &EtcdBuild, endpoint: &str) -> Vec<serde_json::Value> {
    let mut arguments: Vec<String> = vec!["members".into(), "-o".into(), "json".into()];
    arguments.extend(Pki::flags(endpoint));
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let output = bosun_etcd(root, etcd, &arguments);
    assert_success(&output);
    json(&output).as_array().expect("array").clone()
}

#[test]
fn a_stopped_member_is_replaced_and_removal_that_would_lose_quorum_is_refused() {
    let Some(debian) = EtcdBuild::debian("member_replace") else {
        return;
    };
    let etcd = &debian;
    let root = TempRoot::new();
    let addresses = ["127.0.42.1", "127.0.42.2", "127.0.42.3", "127.0.42.4"];
    let _pki = Pki::openssl(&root, etcd, &addresses);
    let cluster: Vec<String> = addresses[..3]
        .iter()
        .enumerate()
        .map(|(index, address)| format!("m{}=https://{address}:2380", index + 1))
        .collect();
    let cluster = cluster.join(",");
    let mut members: Vec<Member> = addresses[..3]
        .iter()
        .enumerate()
        .map(|(index, address)| {
            Member::start(
                &root,
                etcd,
                &format!("m{}", index + 1),
                address,
                &cluster,
                "new",
            )
        })
        .collect();
    let endpoint = "https://127.0.42.1:2379";
    wait_for("three healthy members", Duration::from_secs(40), || {
        let mut arguments: Vec<String> = vec!["check".into()];
        arguments.extend(Pki::flags(endpoint));
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        bosun_etcd(&root, etcd, &arguments).status.success()
    });
    let listed = members_json(&root, etcd, endpoint);
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed
            .iter()
            .filter(|member| member["isLeader"] == true)
            .count(),
        1,
        "{listed:?}"
    );

    members[2].stop();
    wait_for(
        "m3 to be reported unhealthy",
        Duration::from_secs(20),
        || {
            members_json(&root, etcd, endpoint)
                .iter()
                .any(|member| member["name"] == "m3" && member["healthy"] == false)
        },
    );

    // m1 is healthy, but with m3 down, removing it leaves one healthy of two voters.
    let mut arguments: Vec<String> = vec!["member".into(), "remove".into(), "m1".into()];
    arguments.extend(Pki::flags(endpoint));
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let output = bosun_etcd(&root, etcd, &arguments);
    assert_exit(&output, bosun::exit::PREFLIGHT_FAILED);
    assert!(
        stderr(&output).contains("would lose quorum"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        members_json(&root, etcd, endpoint).len(),
        3,
        "a refused removal changed the membership"
    );

    let mut arguments: Vec<String> = vec![
        "member".into(),
        "replace".into(),
        "m3".into(),
        "--on".into(),
        "m4".into(),
        "--peer-url".into(),
        "https://127.0.42.4:2380".into(),
        "-o".into(),
        "json".into(),
    ];
    arguments.extend(Pki::flags(endpoint));
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let output = bosun_etcd(&root, etcd, &arguments);
    assert_success(&output);
    let instructions = json(&output);
    assert_eq!(instructions["initialClusterState"], "existing");
    let initial_cluster = instructions["initialCluster"]
        .as_str()
        .expect("initial cluster")
        .to_owned();
    assert!(
        initial_cluster.contains("m4=https://127.0.42.4:2380") && !initial_cluster.contains("m3="),
        "{initial_cluster}"
    );
    let _fourth = Member::start(
        &root,
        etcd,
        "m4",
        addresses[3],
        &initial_cluster,
        "existing",
    );
    wait_for(
        "m4 to join and the cluster to be healthy",
        Duration::from_secs(40),
        || {
            let listed = members_json(&root, etcd, endpoint);
            listed.len() == 3
                && listed.iter().all(|member| member["healthy"] == true)
                && listed.iter().any(|member| member["name"] == "m4")
        },
    );
}

const INIT_CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 192.0.2.10
nodeRegistration:
  name: cp-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
";

/// `bosun init phase etcd-backup-schedule` in `root` with the process service backend (so cron) and `extra` flags.
fn init_backup_phase(root: &TempRoot, extra: &[&str]) -> std::process::Output {
    let config = root.join("/cluster.yaml").display().to_string();
    let mut arguments = vec![
        "--service-backend",
        "process",
        "init",
        "phase",
        "etcd-backup-schedule",
        "--config",
        &config,
    ];
    arguments.extend_from_slice(extra);
    crate::support::bosun_in(root, &arguments)
}

#[test]
fn issue_7_init_installs_scheduled_backups_only_when_asked() {
    let root = TempRoot::new();
    root.write("/cluster.yaml", INIT_CONFIG.as_bytes());
    let not_asked = init_backup_phase(&root, &[]);
    assert_success(&not_asked);
    assert!(
        stderr(&not_asked).contains("skipped: not asked for"),
        "{}",
        stderr(&not_asked)
    );
    assert!(!root.join("/etc/cron.d/bosun-etcd-backup").exists());

    let flags = [
        "--etcd-backup-every",
        "6h",
        "--etcd-backup-keep",
        "3",
        "--etcd-backup-dir",
        "/var/backups/etcd",
    ];
    let installed = init_backup_phase(&root, &flags);
    assert_success(&installed);
    let cron = root.read_string("/etc/cron.d/bosun-etcd-backup");
    assert!(
        cron.contains("0 */6 * * * root ")
            && cron.contains(" etcd backup --output-file /var/backups/etcd --keep 3"),
        "{cron}"
    );
    let key = std::fs::metadata(root.join("/etc/bosun/etcd-backup.key")).expect("key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert!(root.join("/var/backups/etcd").is_dir());
    // The standalone command reads back what init installed.
    let status = crate::support::bosun_in(
        &root,
        &[
            "etcd",
            "backup",
            "schedule",
            "status",
            "--dir",
            "/var/backups/etcd",
            "-o",
            "json",
        ],
    );
    assert_success(&status);
    let document: serde_json::Value = serde_json::from_str(&stdout(&status)).expect("json");
    assert_eq!(document["when"], "0 */6 * * *", "{document}");
    assert_eq!(document["installed"], true);

    let again = init_backup_phase(&root, &flags);
    assert_success(&again);
    assert!(
        stderr(&again).contains("unchanged /etc/cron.d/bosun-etcd-backup")
            && stderr(&again).contains("unchanged /etc/bosun/etcd-backup.key"),
        "{}",
        stderr(&again)
    );

    let bad = init_backup_phase(&root, &["--etcd-backup-every", "7h"]);
    assert_exit(&bad, 2);
    assert!(
        stderr(&bad).contains("--etcd-backup-every \"7h\" does not divide"),
        "{}",
        stderr(&bad)
    );
}

/// A native restore that fails half-way (here: a snapshot whose database is damaged past its first meta page, which
/// only the copy notices) leaves neither the data directory nor its `.partial` build behind.
#[test]
fn a_native_restore_that_fails_leaves_nothing_behind() {
    use bosun_phases::etcd::bolt_write::BoltWriter;
    use bosun_phases::etcd::native_restore::{self, NewMember};
    let root = TempRoot::new();
    // A real bolt database from bosun's writer, its root page then overwritten, and a 32-byte trailer in place of
    // etcd's SHA-256 (the restore trusts a snapshot that was verified before it).
    let mut writer = BoltWriter::new(std::io::Cursor::new(Vec::new()), 4096).expect("writer");
    writer.begin_bucket(b"key", 0).expect("bucket");
    for index in 0..2_000u32 {
        writer
            .put(format!("{index:08}").as_bytes(), &[7u8; 300])
            .expect("put");
    }
    writer.end_bucket().expect("end");
    let (cursor, size) = writer.finish().expect("finish");
    let mut database = cursor.into_inner();
    let root_page = u64::from_le_bytes(database[32..40].try_into().expect("root")) as usize;
    database[root_page * 4096 + 8..root_page * 4096 + 10].copy_from_slice(&0x40u16.to_le_bytes());
    database.extend_from_slice(&[0u8; 32]);
    assert_eq!(database.len() as u64, size + 32);
    root.write("/snapshots/damaged.db", &database);
    let error = native_restore::restore_data_dir(
        &bosun::host::etcd::RootStreams::new(root.path()),
        &bosun::host::local::LocalFiles::new(root.path()),
        Path::new("/snapshots/damaged.db"),
        Path::new("/var/lib/etcd-restored"),
        &NewMember {
            name: "node-1".to_owned(),
            peer_urls: vec!["https://127.0.0.1:2380".to_owned()],
            cluster_token: "t".to_owned(),
        },
    )
    .expect_err("a damaged database");
    assert!(
        error.to_string().contains("/snapshots/damaged.db")
            && error.to_string().contains("a tree page has flags 0x40"),
        "the error names the snapshot: {error}"
    );
    let left: Vec<String> = root
        .listing()
        .into_iter()
        .filter(|path| path.starts_with("/var/lib"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
