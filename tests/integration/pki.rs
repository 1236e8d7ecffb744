//! The PKI and kubeconfigs `bosun init phase certs|kubeconfig` write, checked by other implementations: OpenSSL
//! verifies every chain and prints the subjects, SANs and usages asserted here; kubectl parses every kubeconfig; a
//! real etcd 3.4 serving with the etcd certificates accepts the apiserver and healthcheck clients and refuses a
//! client from another CA. Bad existing files stop the run without changing anything.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{assert_success, bosun_in, stderr, TempRoot};

const CONFIG: &str = "\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: node-a
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
  bindPort: 6443
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: bosun-test
controlPlaneEndpoint: lb.example.com:8443
networking:
  serviceSubnet: 10.96.0.0/12
  dnsDomain: cluster.local
apiServer:
  certSANs:
  - api.example.com
  - 10.0.0.9
etcd:
  local:
    serverCertSANs:
    - etcd.example.com
";

/// A root with a configuration file next to it.
fn root_with_config(extra: &str) -> (TempRoot, String) {
    let root = TempRoot::new();
    let path = root.path().join("cluster.yaml");
    std::fs::write(&path, format!("{CONFIG}{extra}")).expect("write config");
    (root, path.to_str().expect("utf-8").to_owned())
}

fn init_phase(root: &TempRoot, config: &str, phase: &str) -> Output {
    bosun_in(root, &["init", "phase", phase, "--config", config])
}

fn run(program: &str, arguments: &[&str]) -> Output {
    Command::new(program)
        .args(arguments)
        .output()
        .unwrap_or_else(|error| panic!("run {program}: {error}"))
}

#[track_caller]
fn run_ok(program: &str, arguments: &[&str]) -> String {
    let output = run(program, arguments);
    assert!(
        output.status.success(),
        "{program} {} failed:\n{}{}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn pki(root: &TempRoot, relative: &str) -> String {
    root.join(&format!("/etc/kubernetes/pki/{relative}"))
        .to_str()
        .expect("utf-8")
        .to_owned()
}

/// What `openssl x509 -text` says about a certificate.
struct OpensslView {
    subject: String,
    issuer: String,
    sans: String,
    extended_usage: String,
    key_usage: String,
    basic_constraints: String,
}

fn after_heading(text: &str, heading: &str) -> String {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with(heading) {
            return lines.next().unwrap_or_default().trim().to_owned();
        }
    }
    String::new()
}

fn openssl_view(file: &str) -> OpensslView {
    let text = run_ok(
        "openssl",
        &[
            "x509", "-in", file, "-noout", "-text", "-nameopt", "RFC2253",
        ],
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix).map(str::to_owned))
            .unwrap_or_default()
    };
    OpensslView {
        subject: field("Subject: "),
        issuer: field("Issuer: "),
        sans: after_heading(&text, "X509v3 Subject Alternative Name"),
        extended_usage: after_heading(&text, "X509v3 Extended Key Usage"),
        key_usage: after_heading(&text, "X509v3 Key Usage"),
        basic_constraints: after_heading(&text, "X509v3 Basic Constraints"),
    }
}

#[track_caller]
fn assert_signed_by(root: &TempRoot, ca: &str, leaf: &str) {
    let output = run_ok(
        "openssl",
        &["verify", "-CAfile", &pki(root, ca), &pki(root, leaf)],
    );
    assert!(output.trim().ends_with(": OK"), "{leaf}: {output}");
}

#[track_caller]
fn assert_key_matches(root: &TempRoot, cert: &str, key: &str) {
    let from_cert = run_ok(
        "openssl",
        &["x509", "-in", &pki(root, cert), "-noout", "-pubkey"],
    );
    let from_key = run_ok("openssl", &["pkey", "-in", &pki(root, key), "-pubout"]);
    assert_eq!(from_cert, from_key, "{key} is not the key of {cert}");
}

fn mode(path: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn openssl_verifies_every_certificate_and_sees_kubeadm_subjects_sans_and_usages() {
    let (root, config) = root_with_config("");
    assert_success(&init_phase(&root, &config, "certs"));

    let server = "TLS Web Server Authentication";
    let client = "TLS Web Client Authentication";
    let both = "TLS Web Server Authentication, TLS Web Client Authentication";
    // (files base, CA base, subject, SANs, extended usage)
    let expected: [(&str, &str, &str, &str, &str); 10] = [
        ("ca", "ca", "CN=kubernetes", "DNS:kubernetes", ""),
        (
            "apiserver",
            "ca",
            "CN=kube-apiserver",
            "DNS:api.example.com, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, \
             DNS:kubernetes.default.svc.cluster.local, DNS:lb.example.com, DNS:node-a, IP Address:10.96.0.1, \
             IP Address:127.0.0.1, IP Address:10.0.0.9",
            server,
        ),
        (
            "apiserver-kubelet-client",
            "ca",
            "CN=kube-apiserver-kubelet-client,O=kubeadm:cluster-admins",
            "",
            client,
        ),
        ("front-proxy-ca", "front-proxy-ca", "CN=front-proxy-ca", "DNS:front-proxy-ca", ""),
        ("front-proxy-client", "front-proxy-ca", "CN=front-proxy-client", "", client),
        ("etcd/ca", "etcd/ca", "CN=etcd-ca", "DNS:etcd-ca", ""),
        (
            "etcd/server",
            "etcd/ca",
            "CN=node-a",
            "DNS:etcd.example.com, DNS:localhost, DNS:node-a, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
            both,
        ),
        (
            "etcd/peer",
            "etcd/ca",
            "CN=node-a",
            "DNS:localhost, DNS:node-a, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
            both,
        ),
        ("etcd/healthcheck-client", "etcd/ca", "CN=kube-etcd-healthcheck-client", "", client),
        ("apiserver-etcd-client", "etcd/ca", "CN=kube-apiserver-etcd-client", "", client),
    ];
    for (base, ca, subject, sans, extended_usage) in expected {
        let cert = format!("{base}.crt");
        let key = format!("{base}.key");
        assert_signed_by(&root, &format!("{ca}.crt"), &cert);
        assert_key_matches(&root, &cert, &key);
        let view = openssl_view(&pki(&root, &cert));
        assert_eq!(view.subject, subject, "{base}");
        assert_eq!(view.sans, sans, "{base}");
        assert_eq!(view.extended_usage, extended_usage, "{base}");
        let is_ca = base == ca;
        if is_ca {
            assert_eq!(view.issuer, subject, "{base} is self-signed");
            assert_eq!(
                view.key_usage,
                "Digital Signature, Key Encipherment, Certificate Sign"
            );
            assert_eq!(view.basic_constraints, "CA:TRUE");
        } else {
            assert_eq!(
                view.key_usage, "Digital Signature, Key Encipherment",
                "{base}"
            );
            assert_eq!(view.basic_constraints, "CA:FALSE", "{base}");
        }
        assert_eq!(mode(&pki(&root, &cert)), 0o644, "{cert}");
        assert_eq!(mode(&pki(&root, &key)), 0o600, "{key}");
        let key_text = std::fs::read_to_string(pki(&root, &key)).expect("key");
        assert!(
            key_text.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
            "{key} is PKCS#1"
        );
        run_ok(
            "openssl",
            &["rsa", "-in", &pki(&root, &key), "-check", "-noout"],
        );
    }
    let from_key = run_ok(
        "openssl",
        &["pkey", "-in", &pki(&root, "sa.key"), "-pubout"],
    );
    let sa_pub = std::fs::read_to_string(pki(&root, "sa.pub")).expect("sa.pub");
    assert_eq!(from_key, sa_pub, "sa.pub is the PKIX public half of sa.key");
    assert_eq!(mode(&pki(&root, "sa.key")), 0o600);
    assert_eq!(
        mode(&pki(&root, "sa.pub")),
        0o600,
        "kubeadm writes sa.pub 0600"
    );

    // Validity: a year for leaves, ten for CAs, from five minutes ago.
    let dates = run_ok(
        "openssl",
        &[
            "x509",
            "-in",
            &pki(&root, "apiserver.crt"),
            "-noout",
            "-startdate",
            "-enddate",
        ],
    );
    assert!(
        dates.contains("notBefore=") && dates.contains("notAfter="),
        "{dates}"
    );
    let checks = |file: &str, seconds: &str| {
        run(
            "openssl",
            &[
                "x509",
                "-in",
                &pki(&root, file),
                "-noout",
                "-checkend",
                seconds,
            ],
        )
        .status
        .success()
    };
    assert!(checks("apiserver.crt", &(364 * 86400).to_string()));
    assert!(!checks("apiserver.crt", &(366 * 86400).to_string()));
    assert!(checks("ca.crt", &(3649 * 86400).to_string()));
    assert!(!checks("ca.crt", &(3651 * 86400).to_string()));
}

#[test]
fn kubectl_reads_every_kubeconfig_with_its_server_user_and_embedded_credentials() {
    let (root, config) = root_with_config("");
    assert_success(&init_phase(&root, &config, "certs"));
    assert_success(&init_phase(&root, &config, "kubeconfig"));
    let cases = [
        (
            "admin.conf",
            "kubernetes-admin",
            "O=kubeadm:cluster-admins",
            "https://lb.example.com:8443",
        ),
        (
            "super-admin.conf",
            "kubernetes-super-admin",
            "O=system:masters",
            "https://lb.example.com:8443",
        ),
        (
            "kubelet.conf",
            "system:node:node-a",
            "O=system:nodes",
            "https://lb.example.com:8443",
        ),
        (
            "controller-manager.conf",
            "system:kube-controller-manager",
            "",
            "https://127.0.0.1:6443",
        ),
        (
            "scheduler.conf",
            "system:kube-scheduler",
            "",
            "https://127.0.0.1:6443",
        ),
    ];
    let scratch = tempfile::tempdir().expect("scratch");
    for (file, user, organization, server) in cases {
        let path = root.join(&format!("/etc/kubernetes/{file}"));
        let path = path.to_str().expect("utf-8");
        assert_eq!(mode(path), 0o600, "{file}");
        let view = run_ok(
            "kubectl",
            &[
                "--kubeconfig",
                path,
                "config",
                "view",
                "--raw",
                "-o",
                "json",
            ],
        );
        let value: serde_json::Value = serde_json::from_str(&view).expect("kubectl JSON");
        assert_eq!(
            value["current-context"],
            format!("{user}@bosun-test"),
            "{file}"
        );
        assert_eq!(value["clusters"][0]["name"], "bosun-test");
        assert_eq!(value["clusters"][0]["cluster"]["server"], server, "{file}");
        assert_eq!(value["users"][0]["name"], user);
        let decode = |data: &serde_json::Value| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(data.as_str().expect("embedded data"))
                .expect("base64")
        };
        let ca = decode(&value["clusters"][0]["cluster"]["certificate-authority-data"]);
        assert_eq!(
            ca,
            std::fs::read(pki(&root, "ca.crt")).expect("ca.crt"),
            "{file} embeds ca.crt"
        );
        let certificate = scratch.path().join(format!("{file}.crt"));
        let key = scratch.path().join(format!("{file}.key"));
        std::fs::write(
            &certificate,
            decode(&value["users"][0]["user"]["client-certificate-data"]),
        )
        .expect("write");
        std::fs::write(&key, decode(&value["users"][0]["user"]["client-key-data"])).expect("write");
        let certificate = certificate.to_str().expect("utf-8");
        let verified = run_ok(
            "openssl",
            &["verify", "-CAfile", &pki(&root, "ca.crt"), certificate],
        );
        assert!(verified.trim().ends_with(": OK"), "{file}: {verified}");
        let view = openssl_view(certificate);
        let subject = if organization.is_empty() {
            format!("CN={user}")
        } else {
            format!("CN={user},{organization}")
        };
        assert_eq!(view.subject, subject, "{file}");
        assert_eq!(
            view.extended_usage, "TLS Web Client Authentication",
            "{file}"
        );
        let from_cert = run_ok(
            "openssl",
            &["x509", "-in", certificate, "-noout", "-pubkey"],
        );
        let from_key = run_ok(
            "openssl",
            &["pkey", "-in", key.to_str().expect("utf-8"), "-pubout"],
        );
        assert_eq!(from_cert, from_key, "{file}: embedded key matches");
    }
}

#[test]
fn ecdsa_keys_are_sec1_and_verify() {
    let (root, config) = root_with_config("encryptionAlgorithm: ECDSA-P256\n");
    assert_success(&init_phase(&root, &config, "certs"));
    for base in ["ca", "apiserver", "etcd/server", "sa"] {
        let key = pki(&root, &format!("{base}.key"));
        let text = std::fs::read_to_string(&key).expect("key");
        assert!(
            text.starts_with("-----BEGIN EC PRIVATE KEY-----\n"),
            "{base}.key is SEC1"
        );
        let parsed = run_ok("openssl", &["ec", "-in", &key, "-check", "-noout", "-text"]);
        assert!(parsed.contains("prime256v1"), "{base}: {parsed}");
    }
    assert_signed_by(&root, "ca.crt", "apiserver.crt");
    assert_signed_by(&root, "etcd/ca.crt", "etcd/server.crt");
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

struct Etcd {
    child: Child,
    _data: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_etcd(root: &TempRoot) -> (Etcd, String) {
    let data = tempfile::tempdir().expect("data dir");
    let client = format!("https://127.0.0.1:{}", free_port());
    let peer = format!("https://127.0.0.1:{}", free_port());
    let child = Command::new("/usr/bin/etcd")
        .args([
            "--name=node-a",
            &format!("--data-dir={}", data.path().display()),
            &format!("--listen-client-urls={client}"),
            &format!("--advertise-client-urls={client}"),
            &format!("--listen-peer-urls={peer}"),
            &format!("--initial-advertise-peer-urls={peer}"),
            &format!("--initial-cluster=node-a={peer}"),
            "--client-cert-auth=true",
            &format!("--trusted-ca-file={}", pki(root, "etcd/ca.crt")),
            &format!("--cert-file={}", pki(root, "etcd/server.crt")),
            &format!("--key-file={}", pki(root, "etcd/server.key")),
            "--peer-client-cert-auth=true",
            &format!("--peer-trusted-ca-file={}", pki(root, "etcd/ca.crt")),
            &format!("--peer-cert-file={}", pki(root, "etcd/peer.crt")),
            &format!("--peer-key-file={}", pki(root, "etcd/peer.key")),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd");
    (Etcd { child, _data: data }, client)
}

fn etcdctl(
    root: &TempRoot,
    ca_root: &TempRoot,
    endpoint: &str,
    client: &str,
    arguments: &[&str],
) -> Output {
    let mut all = vec![
        format!("--endpoints={endpoint}"),
        format!("--cacert={}", pki(ca_root, "etcd/ca.crt")),
        format!("--cert={}", pki(root, &format!("{client}.crt"))),
        format!("--key={}", pki(root, &format!("{client}.key"))),
        "--dial-timeout=3s".to_owned(),
        "--command-timeout=5s".to_owned(),
    ];
    all.extend(arguments.iter().map(|argument| (*argument).to_owned()));
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(&all)
        .output()
        .expect("run etcdctl")
}

#[test]
fn a_real_etcd_accepts_the_apiserver_and_healthcheck_clients_and_refuses_another_ca() {
    let (root, config) = root_with_config("");
    assert_success(&init_phase(&root, &config, "certs"));
    let (other, other_config) = root_with_config("");
    assert_success(&init_phase(&other, &other_config, "certs"));
    let (_etcd, endpoint) = start_etcd(&root);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = etcdctl(
            &root,
            &root,
            &endpoint,
            "etcd/healthcheck-client",
            &["endpoint", "health"],
        );
        if health.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "etcd did not become healthy: {}",
            String::from_utf8_lossy(&health.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let put = etcdctl(
        &root,
        &root,
        &endpoint,
        "apiserver-etcd-client",
        &["put", "/registry/bosun", "ok"],
    );
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let get = etcdctl(
        &root,
        &root,
        &endpoint,
        "apiserver-etcd-client",
        &["get", "/registry/bosun", "--print-value-only"],
    );
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "ok");

    // The other root's client certificate is issued by a different etcd CA: the TLS handshake fails.
    let refused = etcdctl(
        &other,
        &root,
        &endpoint,
        "apiserver-etcd-client",
        &["get", "/registry/bosun"],
    );
    assert!(
        !refused.status.success(),
        "a client from another CA was accepted"
    );
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        text.contains("bad certificate")
            || text.contains("deadline exceeded")
            || text.contains("context"),
        "{text}"
    );
    // etcd is still serving: the refusal was about the client certificate, not a dead server.
    let again = etcdctl(
        &root,
        &root,
        &endpoint,
        "etcd/healthcheck-client",
        &["endpoint", "health"],
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn a_leaf_without_the_new_sans_stops_the_run_and_nothing_is_overwritten() {
    let (root, config) = root_with_config("");
    assert_success(&init_phase(&root, &config, "certs"));
    let before = root.snapshot();
    let changed = std::fs::read_to_string(&config)
        .expect("config")
        .replace("  - 10.0.0.9\n", "  - 10.0.0.9\n  - new.example.com\n");
    std::fs::write(&config, changed).expect("rewrite config");
    let output = init_phase(&root, &config, "certs");
    assert!(!output.status.success());
    let log = stderr(&output);
    assert!(
        log.contains("/etc/kubernetes/pki/apiserver.crt does not cover the required subject alternative names DNS:new.example.com"),
        "{log}"
    );
    assert!(log.contains("hint:"), "{log}");
    let unchanged = |files: Vec<(String, Vec<u8>, u32, std::time::SystemTime)>| {
        files
            .into_iter()
            .filter(|(path, ..)| path.starts_with("/etc/"))
            .collect::<Vec<_>>()
    };
    assert_eq!(unchanged(before), unchanged(root.snapshot()));
}

#[test]
fn an_unwritable_certificate_directory_is_named() {
    let (root, config) = root_with_config("");
    // A regular file where the directory should be: even root cannot create files under it.
    root.write("/etc/kubernetes/pki", b"not a directory\n");
    let output = init_phase(&root, &config, "certs");
    assert!(!output.status.success());
    let log = stderr(&output);
    assert!(
        log.contains("/etc/kubernetes/pki/ca.crt: not a directory"),
        "the error names the file and the reason: {log}"
    );
    assert!(!log.contains("os error"), "{log}");
    assert_eq!(
        std::fs::read(root.join("/etc/kubernetes/pki")).expect("read"),
        b"not a directory\n"
    );
    assert!(!Path::new(&root.join("/etc/kubernetes/admin.conf")).exists());
}

/// Makes a directory immutable (even root cannot create files in it) until dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn new(path: std::path::PathBuf) -> Option<Immutable> {
        std::fs::create_dir_all(&path).expect("create dir");
        let status = Command::new("chattr").arg("+i").arg(&path).status().ok()?;
        status.success().then_some(Immutable(path))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_write_refused_by_the_filesystem_names_the_file_and_a_rerun_finishes_the_job() {
    let (root, config) = root_with_config("");
    let Some(immutable) = Immutable::new(root.join("/etc/kubernetes/pki/etcd")) else {
        eprintln!("skipped: this filesystem does not support chattr +i");
        return;
    };
    let output = init_phase(&root, &config, "certs");
    assert!(!output.status.success());
    let log = stderr(&output);
    assert!(log.contains("/etc/kubernetes/pki/etcd/ca.key"), "{log}");
    assert!(
        log.contains("operation not permitted") || log.contains("permission denied"),
        "{log}"
    );
    assert!(!log.contains("os error"), "{log}");
    assert!(
        root.join("/etc/kubernetes/pki/ca.crt").exists(),
        "phases before etcd-ca ran"
    );
    let ca = std::fs::read(root.join("/etc/kubernetes/pki/ca.crt")).expect("ca.crt");
    drop(immutable);
    assert_success(&init_phase(&root, &config, "certs"));
    assert_eq!(
        std::fs::read(root.join("/etc/kubernetes/pki/ca.crt")).expect("ca.crt"),
        ca,
        "the CA was reused"
    );
    assert_signed_by(&root, "etcd/ca.crt", "etcd/server.crt");
}
