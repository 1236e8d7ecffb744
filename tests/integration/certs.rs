//! `bosun certs` and `bosun kubeconfig user` against a PKI made by `bosun init phase certs|kubeconfig`, checked with
//! OpenSSL, kubectl and the real kubeadm (`kubeadm certs check-expiration --rootfs` on the same PKI).

use std::process::Command;

use crate::harness::binaries::Binaries;
use crate::support::{assert_exit, assert_success, bosun_in, stderr, stdout, TempRoot};

const CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 192.0.2.10
nodeRegistration:
  name: cp-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
encryptionAlgorithm: ECDSA-P256
apiServer:
  certSANs:
  - lb.example.com
  - 203.0.113.7
";

const PKI: &str = "/etc/kubernetes/pki";

/// A root with the whole PKI and the kubeconfigs, and the config file at `/cluster.yaml` inside it.
fn node_with_pki() -> (TempRoot, String) {
    let root = TempRoot::new();
    root.write("/cluster.yaml", CONFIG.as_bytes());
    let config = root.join("/cluster.yaml").display().to_string();
    assert_success(&bosun_in(
        &root,
        &["init", "phase", "certs", "all", "--config", &config],
    ));
    assert_success(&bosun_in(
        &root,
        &["init", "phase", "kubeconfig", "all", "--config", &config],
    ));
    (root, config)
}

fn openssl(arguments: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(arguments)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn x509(root: &TempRoot, node_path: &str, fields: &[&str]) -> String {
    let path = root.join(node_path).display().to_string();
    let mut arguments = vec!["x509", "-in", path.as_str(), "-noout"];
    arguments.extend_from_slice(fields);
    openssl(&arguments)
}

#[track_caller]
fn assert_verifies(root: &TempRoot, ca: &str, leaf: &str) {
    let ca = root.join(ca).display().to_string();
    let leaf = root.join(leaf).display().to_string();
    let text = openssl(&["verify", "-CAfile", &ca, &leaf]);
    assert!(text.trim().ends_with(": OK"), "{text}");
}

#[track_caller]
fn assert_key_matches(root: &TempRoot, cert: &str, key: &str) {
    let from_cert = x509(root, cert, &["-pubkey"]);
    let key_path = root.join(key).display().to_string();
    let from_key = openssl(&["pkey", "-in", &key_path, "-pubout"]);
    assert_eq!(from_cert, from_key, "{key} is not the key of {cert}");
}

fn mode(root: &TempRoot, node_path: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(root.join(node_path))
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn check_expiration_prints_both_tables_with_missing_and_external_rows() {
    let (root, config) = node_with_pki();
    std::fs::remove_file(root.join("/etc/kubernetes/super-admin.conf")).expect("remove");
    std::fs::remove_file(root.join("/etc/kubernetes/pki/front-proxy-ca.key")).expect("remove");
    let output = bosun_in(&root, &["certs", "check-expiration", "--config", &config]);
    assert_success(&output);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("CERTIFICATE "), "{text}");
    let names: Vec<&str> = lines[1..12]
        .iter()
        .map(|line| line.split("   ").next().unwrap_or("").trim())
        .collect();
    assert_eq!(
        names,
        vec![
            "admin.conf",
            "apiserver",
            "apiserver-etcd-client",
            "apiserver-kubelet-client",
            "controller-manager.conf",
            "etcd-healthcheck-client",
            "etcd-peer",
            "etcd-server",
            "front-proxy-client",
            "scheduler.conf",
            "!MISSING! super-admin.conf",
        ]
    );
    let front_proxy = lines
        .iter()
        .find(|line| line.starts_with("front-proxy-client"))
        .expect("row");
    assert!(
        front_proxy.contains("front-proxy-ca") && front_proxy.trim_end().ends_with("yes"),
        "{front_proxy}"
    );
    assert!(
        lines[1].contains(" 364d ") && lines[1].contains(" ca "),
        "{}",
        lines[1]
    );
    assert_eq!(lines[12], "");
    assert!(
        lines[13].starts_with("CERTIFICATE AUTHORITY   EXPIRES"),
        "{text}"
    );
    assert!(
        lines[14].starts_with("ca ") && lines[14].contains(" 9y "),
        "{}",
        lines[14]
    );

    let json = bosun_in(
        &root,
        &[
            "certs",
            "check-expiration",
            "--config",
            &config,
            "-o",
            "json",
        ],
    );
    assert_success(&json);
    let document: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("json");
    assert_eq!(document["kind"], "CertificateExpirationInfo");
    assert_eq!(document["apiVersion"], "output.kubeadm.k8s.io/v1alpha3");
    let missing = &document["certificates"][10];
    assert_eq!(missing["name"], "super-admin.conf");
    assert_eq!(missing["missing"], true);
    assert!(missing["expirationDate"].is_null());
    let residual = document["certificates"][1]["residualTime"]
        .as_i64()
        .expect("seconds");
    assert!(
        (364 * 86_400..=365 * 86_400).contains(&residual),
        "{residual}"
    );
}

#[test]
fn fail_within_exits_with_check_failed_when_something_expires_inside_the_window() {
    let (root, config) = node_with_pki();
    let inside = bosun_in(
        &root,
        &[
            "certs",
            "check-expiration",
            "--config",
            &config,
            "--fail-within",
            "400d",
        ],
    );
    assert_exit(&inside, 7);
    assert!(
        stderr(&inside).contains("expire within 400d"),
        "{}",
        stderr(&inside)
    );
    assert!(
        stdout(&inside).contains("CERTIFICATE AUTHORITY"),
        "the table is still printed"
    );
    let outside = bosun_in(
        &root,
        &[
            "certs",
            "check-expiration",
            "--config",
            &config,
            "--fail-within",
            "30d",
        ],
    );
    assert_success(&outside);
}

#[test]
fn check_expiration_matches_real_kubeadm_on_the_same_pki() {
    let Some(binaries) = Binaries::require(
        "check_expiration_matches_real_kubeadm_on_the_same_pki",
        &["kubeadm"],
    ) else {
        return;
    };
    let (root, config) = node_with_pki();
    // A missing row and an external CA (kubeadm's external mode needs the CA's leaves to exist, so the etcd CA
    // stays local and front-proxy-ca becomes external).
    std::fs::remove_file(root.join("/etc/kubernetes/super-admin.conf")).expect("remove");
    std::fs::remove_file(root.join("/etc/kubernetes/pki/front-proxy-ca.key")).expect("remove");
    let kubeadm = Command::new(binaries.path("kubeadm"))
        .args(["certs", "check-expiration", "--rootfs"])
        .arg(root.path())
        .args(["--config", "/cluster.yaml"])
        .output()
        .expect("run kubeadm");
    assert!(
        kubeadm.status.success(),
        "kubeadm: {}",
        String::from_utf8_lossy(&kubeadm.stderr)
    );
    let ours = bosun_in(&root, &["certs", "check-expiration", "--config", &config]);
    assert_success(&ours);
    // Same rows, same columns and alignment; the residual times may differ only if a minute boundary passed.
    let theirs = String::from_utf8_lossy(&kubeadm.stdout).into_owned();
    assert_eq!(stdout(&ours).lines().count(), theirs.lines().count());
    for (mine, kubeadm_line) in stdout(&ours).lines().zip(theirs.lines()) {
        assert_eq!(mine.len(), kubeadm_line.len(), "\n{mine}\n{kubeadm_line}");
        let words = |line: &str| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let (left, right) = (words(mine), words(kubeadm_line));
        // EXPIRES holds hour:minute, which can tick over between the two runs; everything else must be equal.
        let differing: Vec<_> = left.iter().zip(&right).filter(|(a, b)| a != b).collect();
        assert!(
            differing.len() <= 1 && differing.iter().all(|(a, _)| a.contains(':')),
            "\n{mine}\n{kubeadm_line}"
        );
    }
    let kubeadm_json = Command::new(binaries.path("kubeadm"))
        .args(["certs", "check-expiration", "-o", "json", "--rootfs"])
        .arg(root.path())
        .args(["--config", "/cluster.yaml"])
        .output()
        .expect("run kubeadm");
    let ours_json = bosun_in(
        &root,
        &[
            "certs",
            "check-expiration",
            "--config",
            &config,
            "-o",
            "json",
        ],
    );
    let theirs: serde_json::Value =
        serde_json::from_slice(&kubeadm_json.stdout).expect("kubeadm json");
    let mine: serde_json::Value = serde_json::from_str(&stdout(&ours_json)).expect("bosun json");
    for list in ["certificates", "certificateAuthorities"] {
        let (theirs, mine) = (
            theirs[list].as_array().expect("list"),
            mine[list].as_array().expect("list"),
        );
        assert_eq!(theirs.len(), mine.len());
        for (their_row, my_row) in theirs.iter().zip(mine) {
            for field in [
                "name",
                "expirationDate",
                "externallyManaged",
                "caName",
                "missing",
            ] {
                assert_eq!(
                    their_row[field], my_row[field],
                    "{list} {} {field}",
                    my_row["name"]
                );
            }
            let delta = their_row["residualTime"].as_i64().unwrap_or(0)
                - my_row["residualTime"].as_i64().unwrap_or(0);
            assert!(
                delta.abs() <= 60,
                "{} residual times differ by {delta}s",
                my_row["name"]
            );
        }
    }
}

#[test]
fn renew_makes_a_new_key_and_serial_with_the_same_subject_and_sans() {
    let (root, config) = node_with_pki();
    let cert = "/etc/kubernetes/pki/apiserver.crt";
    let subject_before = x509(
        &root,
        cert,
        &["-subject", "-ext", "subjectAltName,extendedKeyUsage"],
    );
    let serial_before = x509(&root, cert, &["-serial"]);
    let key_before = root.read("/etc/kubernetes/pki/apiserver.key");
    let kubeconfig_before = root.read_string("/etc/kubernetes/controller-manager.conf");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let output = bosun_in(
        &root,
        &[
            "certs",
            "renew",
            "apiserver",
            "controller-manager.conf",
            "--config",
            &config,
        ],
    );
    assert_success(&output);
    assert!(
        stderr(&output).contains("[apiserver] updated /etc/kubernetes/pki/apiserver.crt (renewed;"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        x509(
            &root,
            cert,
            &["-subject", "-ext", "subjectAltName,extendedKeyUsage"]
        ),
        subject_before
    );
    assert!(
        subject_before.contains("DNS:lb.example.com")
            && subject_before.contains("IP Address:203.0.113.7")
    );
    assert_ne!(x509(&root, cert, &["-serial"]), serial_before);
    assert_ne!(root.read("/etc/kubernetes/pki/apiserver.key"), key_before);
    assert_key_matches(&root, cert, "/etc/kubernetes/pki/apiserver.key");
    assert_verifies(&root, "/etc/kubernetes/pki/ca.crt", cert);
    assert_eq!(mode(&root, "/etc/kubernetes/pki/apiserver.key"), 0o600);
    assert_eq!(
        mode(&root, "/etc/kubernetes/controller-manager.conf"),
        0o600
    );
    // The kubeconfig changed only in its client credentials.
    let after = root.read_string("/etc/kubernetes/controller-manager.conf");
    assert_ne!(after, kubeconfig_before);
    let unchanged = |text: &str| {
        text.lines()
            .filter(|line| {
                !line.contains("client-certificate-data") && !line.contains("client-key-data")
            })
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(unchanged(&after), unchanged(&kubeconfig_before));
    // No manifests under this root: the restart is skipped with a reason, not failed.
    assert!(stderr(&output)
        .contains("[restart/kube-apiserver] skipped: there is no static-pod manifest"));
    // Untouched certificates stay as they were.
    assert_verifies(
        &root,
        "/etc/kubernetes/pki/etcd/ca.crt",
        "/etc/kubernetes/pki/etcd/server.crt",
    );
}

#[test]
fn renew_with_a_window_renews_only_what_expires_inside_it() {
    let (root, config) = node_with_pki();
    let before = root.snapshot();
    let output = bosun_in(
        &root,
        &[
            "certs",
            "renew",
            "all",
            "--config",
            &config,
            "--if-expiring-within",
            "30d",
        ],
    );
    assert_success(&output);
    assert!(
        stderr(&output).contains("not within 30d"),
        "{}",
        stderr(&output)
    );
    let after = root.snapshot();
    let changed: Vec<&String> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| &a.0)
        .filter(|path| !path.starts_with("/var/lib/bosun"))
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
    let all = bosun_in(
        &root,
        &[
            "certs",
            "renew",
            "all",
            "--config",
            &config,
            "--if-expiring-within",
            "400d",
            "--no-restart",
        ],
    );
    assert_success(&all);
    for (leaf, ca) in [
        ("apiserver", "ca"),
        ("apiserver-kubelet-client", "ca"),
        ("front-proxy-client", "front-proxy-ca"),
        ("etcd/server", "etcd/ca"),
        ("etcd/peer", "etcd/ca"),
        ("etcd/healthcheck-client", "etcd/ca"),
        ("apiserver-etcd-client", "etcd/ca"),
    ] {
        assert_verifies(
            &root,
            &format!("{PKI}/{ca}.crt"),
            &format!("{PKI}/{leaf}.crt"),
        );
        assert_key_matches(
            &root,
            &format!("{PKI}/{leaf}.crt"),
            &format!("{PKI}/{leaf}.key"),
        );
    }
    // CAs and kubelet.conf are never renewed.
    let latest = root.snapshot();
    for path in [
        "/etc/kubernetes/pki/ca.crt",
        "/etc/kubernetes/pki/ca.key",
        "/etc/kubernetes/kubelet.conf",
    ] {
        let now = latest
            .iter()
            .find(|entry| entry.0 == path)
            .map(|entry| &entry.1);
        assert_eq!(
            now,
            before
                .iter()
                .find(|entry| entry.0 == path)
                .map(|entry| &entry.1),
            "{path} changed"
        );
    }
    // The journal records the run for `certs timer status`.
    let status = bosun_in(&root, &["certs", "timer", "status", "-o", "json"]);
    assert_success(&status);
    let document: serde_json::Value = serde_json::from_str(&stdout(&status)).expect("json");
    let renewed = document["lastRun"]["renewed"].as_array().expect("renewed");
    assert_eq!(renewed.len(), 11, "{document}");
    assert_eq!(document["lastRun"]["ok"], true);
}

#[test]
fn renew_refuses_kubelet_conf_cas_and_external_cas() {
    let (root, config) = node_with_pki();
    let kubelet = bosun_in(
        &root,
        &["certs", "renew", "kubelet.conf", "--config", &config],
    );
    assert_exit(&kubelet, 2);
    assert!(
        stderr(&kubelet).contains("rotates its own client certificate"),
        "{}",
        stderr(&kubelet)
    );
    std::fs::remove_file(root.join("/etc/kubernetes/pki/etcd/ca.key")).expect("remove");
    let before = root.snapshot();
    let named = bosun_in(
        &root,
        &["certs", "renew", "etcd-server", "--config", &config],
    );
    assert_exit(&named, 4);
    assert!(
        stderr(&named).contains("the etcd-ca is external"),
        "{}",
        stderr(&named)
    );
    assert_eq!(root.snapshot(), before, "nothing changed");
    let all = bosun_in(
        &root,
        &["certs", "renew", "all", "--config", &config, "--no-restart"],
    );
    assert_success(&all);
    assert!(
        stderr(&all).contains("[etcd-server] skipped: detected external etcd-ca"),
        "{}",
        stderr(&all)
    );
}

#[test]
fn a_dry_run_renews_nothing_and_shows_no_key_material() {
    let (root, config) = node_with_pki();
    let before = root.snapshot();
    let output = bosun_in(
        &root,
        &["certs", "renew", "all", "--config", &config, "--dry-run"],
    );
    assert_success(&output);
    assert_eq!(root.snapshot(), before);
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        text.contains("would write /etc/kubernetes/pki/apiserver.key"),
        "{text}"
    );
    assert!(
        !text.contains("PRIVATE KEY-----"),
        "key material in the dry run: {text}"
    );
    assert!(text.contains("<private key would be replaced>"), "{text}");
}

#[test]
fn kubeconfig_user_is_signed_by_the_cluster_ca_and_parsed_by_kubectl() {
    let (root, config) = node_with_pki();
    let output = bosun_in(
        &root,
        &[
            "kubeconfig",
            "user",
            "--client-name",
            "alice",
            "--org",
            "dev",
            "--validity",
            "48h",
            "--config",
            &config,
        ],
    );
    assert_success(&output);
    let kubeconfig = root.join("/alice.conf");
    std::fs::write(&kubeconfig, stdout(&output)).expect("write");
    let certificate = {
        let value: serde_json::Value = {
            let output = bosun_in(
                &root,
                &[
                    "kubeconfig",
                    "user",
                    "--client-name",
                    "alice",
                    "--config",
                    &config,
                    "-o",
                    "json",
                ],
            );
            assert_success(&output);
            serde_json::from_str(&stdout(&output)).expect("json")
        };
        assert_eq!(value["users"][0]["name"], "alice");
        stdout(&output)
    };
    assert!(certificate.contains("client-certificate-data"));
    let Some(binaries) = Binaries::require(
        "kubeconfig_user_is_signed_by_the_cluster_ca_and_parsed_by_kubectl",
        &["kubectl"],
    ) else {
        return;
    };
    let view = Command::new(binaries.path("kubectl"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["config", "view", "--raw", "-o", "jsonpath={.current-context} {.clusters[0].cluster.server} {.users[0].user.client-certificate-data}"])
        .output()
        .expect("kubectl");
    assert!(
        view.status.success(),
        "{}",
        String::from_utf8_lossy(&view.stderr)
    );
    let text = String::from_utf8_lossy(&view.stdout).into_owned();
    let mut fields = text.split(' ');
    assert_eq!(fields.next(), Some("alice@kubernetes"));
    assert_eq!(fields.next(), Some("https://192.0.2.10:6443"));
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(fields.next().expect("data"))
        .expect("base64");
    root.write("/alice.crt", &pem);
    assert_verifies(&root, "/etc/kubernetes/pki/ca.crt", "/alice.crt");
    let subject = x509(
        &root,
        "/alice.crt",
        &["-subject", "-ext", "extendedKeyUsage"],
    );
    assert!(
        subject.contains("O = dev") && subject.contains("CN = alice"),
        "{subject}"
    );
    assert!(
        subject.contains("TLS Web Client Authentication"),
        "{subject}"
    );
}

/// The `client-certificate-data` of a kubeconfig, as PEM.
fn client_certificate_pem(kubeconfig: &str) -> Vec<u8> {
    use base64::Engine as _;
    let value: serde_yaml::Value = serde_yaml::from_str(kubeconfig).expect("kubeconfig YAML");
    let data = value["users"][0]["user"]["client-certificate-data"]
        .as_str()
        .expect("client-certificate-data");
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64")
}

#[test]
fn issue_3_kubeconfig_user_keeps_every_org_in_kubeadm_order() {
    let (root, config) = node_with_pki();
    let orgs = ["--org", "zeta", "--org", "b", "--org", "alpha"];
    let mut arguments = vec![
        "kubeconfig",
        "user",
        "--client-name",
        "alice",
        "--config",
        &config,
    ];
    arguments.extend_from_slice(&orgs);
    let output = bosun_in(&root, &arguments);
    assert_success(&output);
    root.write("/alice.crt", &client_certificate_pem(&stdout(&output)));
    assert_verifies(&root, "/etc/kubernetes/pki/ca.crt", "/alice.crt");
    let ours = x509(&root, "/alice.crt", &["-subject"]);
    // Go's crypto/x509 puts every organisation in one multi-valued RDN, in DER order (shorter encodings first).
    assert_eq!(
        ours.trim(),
        "subject=O = b + O = zeta + O = alpha, CN = alice"
    );
    let Some(binaries) = Binaries::require(
        "issue_3_kubeconfig_user_keeps_every_org_in_kubeadm_order",
        &["kubeadm"],
    ) else {
        return;
    };
    // The real kubeadm, given the same PKI, writes the same subject.
    let kubeadm_config = format!("{CONFIG}certificatesDir: {}\n", root.join(PKI).display());
    root.write("/kubeadm.yaml", kubeadm_config.as_bytes());
    let kubeadm = Command::new(binaries.path("kubeadm"))
        .args(["kubeconfig", "user", "--client-name", "alice", "--config"])
        .arg(root.join("/kubeadm.yaml"))
        .args(orgs)
        .output()
        .expect("run kubeadm");
    assert!(
        kubeadm.status.success(),
        "kubeadm: {}",
        String::from_utf8_lossy(&kubeadm.stderr)
    );
    root.write(
        "/alice-kubeadm.crt",
        &client_certificate_pem(&String::from_utf8_lossy(&kubeadm.stdout)),
    );
    assert_eq!(x509(&root, "/alice-kubeadm.crt", &["-subject"]), ours);
}

#[test]
fn generate_csr_writes_keys_and_csrs_and_never_overwrites() {
    let root = TempRoot::new();
    root.write("/cluster.yaml", CONFIG.as_bytes());
    let config = root.join("/cluster.yaml").display().to_string();
    assert_success(&bosun_in(
        &root,
        &["certs", "generate-csr", "--config", &config],
    ));
    let csr = root
        .join("/etc/kubernetes/pki/apiserver.csr")
        .display()
        .to_string();
    let text = openssl(&["req", "-in", &csr, "-noout", "-verify", "-subject", "-text"]);
    assert!(
        text.contains("CN = kube-apiserver") && text.contains("DNS:lb.example.com"),
        "{text}"
    );
    assert_eq!(mode(&root, "/etc/kubernetes/pki/apiserver.key"), 0o600);
    let admin = root.read_string("/etc/kubernetes/admin.conf");
    assert!(
        admin.contains("client-key-data") && !admin.contains("client-certificate-data"),
        "{admin}"
    );
    let admin_csr = root
        .join("/etc/kubernetes/admin.conf.csr")
        .display()
        .to_string();
    let text = openssl(&["req", "-in", &admin_csr, "-noout", "-subject"]);
    assert!(text.contains("kubernetes-admin"), "{text}");
    let node_files = || {
        root.snapshot()
            .into_iter()
            .filter(|entry| !entry.0.starts_with("/var/lib/bosun/"))
            .collect::<Vec<_>>()
    };
    let before = node_files();
    let again = bosun_in(&root, &["certs", "generate-csr", "--config", &config]);
    assert_exit(&again, 4);
    assert!(
        stderr(&again).contains("refusing to overwrite"),
        "{}",
        stderr(&again)
    );
    assert_eq!(node_files(), before, "nothing but the journal changed");
}

#[test]
fn certificate_key_is_64_hex_characters() {
    let root = TempRoot::new();
    let output = bosun_in(&root, &["certs", "certificate-key"]);
    assert_success(&output);
    let key = stdout(&output).trim().to_owned();
    assert_eq!(key.len(), 64);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn the_timer_is_a_cron_entry_without_systemd_and_is_kept_on_reinstall() {
    let root = TempRoot::new();
    let none = bosun_in(
        &root,
        &["--service-backend", "process", "certs", "timer", "status"],
    );
    assert_success(&none);
    assert!(stdout(&none).contains("installed: no"), "{}", stdout(&none));
    assert_success(&bosun_in(
        &root,
        &["--service-backend", "process", "certs", "timer", "install"],
    ));
    let cron = root.read_string("/etc/cron.d/bosun-certs-renew");
    assert!(
        cron.contains("root ") && cron.contains("certs renew all --if-expiring-within 30d"),
        "{cron}"
    );
    assert_eq!(mode(&root, "/etc/cron.d/bosun-certs-renew"), 0o644);
    let again = bosun_in(
        &root,
        &["--service-backend", "process", "certs", "timer", "install"],
    );
    assert_success(&again);
    assert!(
        stderr(&again).contains("unchanged /etc/cron.d/bosun-certs-renew"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        root.read_string("/etc/cron.d/bosun-certs-renew"),
        cron,
        "the random time is kept"
    );
    let status = bosun_in(
        &root,
        &[
            "--service-backend",
            "process",
            "certs",
            "timer",
            "status",
            "-o",
            "json",
        ],
    );
    let document: serde_json::Value = serde_json::from_str(&stdout(&status)).expect("json");
    assert_eq!(document["installed"], "cron");
    assert!(document["lastRun"].is_null());
    assert_success(&bosun_in(
        &root,
        &["--service-backend", "process", "certs", "timer", "remove"],
    ));
    assert!(!root.join("/etc/cron.d/bosun-certs-renew").exists());
}

/// Runs Debian's etcd from the node root's renewed certificates and restarts it whenever its manifest changes, as the
/// kubelet recreates a static pod (a small watcher stands in for the kubelet's manifest watch here; tier 1 runs the
/// real control plane).
struct ManifestWatchingEtcd {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ManifestWatchingEtcd {
    fn start(root: &TempRoot, client_port: u16, metrics_port: u16) -> Self {
        let pki = root.join(PKI);
        let manifest = root.join("/etc/kubernetes/manifests/etcd.yaml");
        let data_dir = root.join("/var/lib/etcd");
        let peer_port = client_port + 1;
        let spawn = move || {
            Command::new("/usr/bin/etcd")
                .args(["--name", "cp-1", "--data-dir"])
                .arg(&data_dir)
                .arg(format!(
                    "--listen-client-urls=https://127.0.0.1:{client_port}"
                ))
                .arg(format!(
                    "--advertise-client-urls=https://127.0.0.1:{client_port}"
                ))
                .arg(format!("--listen-peer-urls=https://127.0.0.1:{peer_port}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=https://127.0.0.1:{peer_port}"
                ))
                .arg(format!(
                    "--initial-cluster=cp-1=https://127.0.0.1:{peer_port}"
                ))
                .arg(format!(
                    "--listen-metrics-urls=http://127.0.0.1:{metrics_port}"
                ))
                .arg(format!(
                    "--cert-file={}",
                    pki.join("etcd/server.crt").display()
                ))
                .arg(format!(
                    "--key-file={}",
                    pki.join("etcd/server.key").display()
                ))
                .arg(format!(
                    "--trusted-ca-file={}",
                    pki.join("etcd/ca.crt").display()
                ))
                .arg("--client-cert-auth")
                .arg(format!(
                    "--peer-cert-file={}",
                    pki.join("etcd/peer.crt").display()
                ))
                .arg(format!(
                    "--peer-key-file={}",
                    pki.join("etcd/peer.key").display()
                ))
                .arg(format!(
                    "--peer-trusted-ca-file={}",
                    pki.join("etcd/ca.crt").display()
                ))
                .arg("--peer-client-cert-auth")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start etcd")
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut etcd = spawn();
            let mut seen = std::fs::read(&manifest).expect("manifest");
            while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(300));
                let now = std::fs::read(&manifest).unwrap_or_default();
                if now != seen {
                    seen = now;
                    let _ = etcd.kill();
                    let _ = etcd.wait();
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    etcd = spawn();
                }
            }
            let _ = etcd.kill();
            let _ = etcd.wait();
        });
        ManifestWatchingEtcd {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ManifestWatchingEtcd {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn etcdctl(root: &TempRoot, client_port: u16, arguments: &[&str]) -> std::process::Output {
    let pki = root.join(PKI);
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=https://127.0.0.1:{client_port}"))
        .arg(format!("--cacert={}", pki.join("etcd/ca.crt").display()))
        .arg(format!(
            "--cert={}",
            pki.join("apiserver-etcd-client.crt").display()
        ))
        .arg(format!(
            "--key={}",
            pki.join("apiserver-etcd-client.key").display()
        ))
        .args(arguments)
        .output()
        .expect("run etcdctl")
}

#[test]
fn renewal_restarts_etcd_through_its_manifest_and_etcd_serves_the_new_certificate() {
    let (root, config) = node_with_pki();
    let base = 24_000 + u16::try_from(std::process::id() % 1000).expect("port") * 4;
    let (client_port, metrics_port) = (base, base + 2);
    root.write(
        "/etc/kubernetes/manifests/etcd.yaml",
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n    - etcd\n    - --listen-metrics-urls=http://127.0.0.1:{metrics_port}\n    name: etcd\n"
        )
        .as_bytes(),
    );
    let _etcd = ManifestWatchingEtcd::start(&root, client_port, metrics_port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !etcdctl(&root, client_port, &["put", "before", "renewal"])
        .status
        .success()
    {
        assert!(std::time::Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let output = bosun_in(
        &root,
        &[
            "certs",
            "renew",
            "etcd-server",
            "etcd-peer",
            "apiserver-etcd-client",
            "--config",
            &config,
            "--restart-timeout",
            "60s",
        ],
    );
    assert_success(&output);
    let log = stderr(&output);
    assert!(
        log.contains("[restart/etcd] etcd is healthy after"),
        "{log}"
    );
    assert!(
        !log.contains("stayed healthy"),
        "the restart was seen: {log}"
    );
    let manifest = root.read_string("/etc/kubernetes/manifests/etcd.yaml");
    assert!(manifest.contains("bosun.dev/restarted-at:"), "{manifest}");
    // etcd serves the renewed certificate and accepts the renewed client certificate.
    let ca = root
        .join("/etc/kubernetes/pki/etcd/ca.crt")
        .display()
        .to_string();
    let served = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{client_port}"),
            "-CAfile",
            &ca,
            "-showcerts",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let served_text = String::from_utf8_lossy(&served.stdout).into_owned();
    let begin = served_text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a served certificate");
    let end = served_text.find("-----END CERTIFICATE-----").expect("end")
        + "-----END CERTIFICATE-----".len();
    root.write("/served.crt", &served_text.as_bytes()[begin..end]);
    assert_eq!(
        x509(&root, "/served.crt", &["-serial"]),
        x509(&root, "/etc/kubernetes/pki/etcd/server.crt", &["-serial"])
    );
    let read = etcdctl(&root, client_port, &["get", "before"]);
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert!(String::from_utf8_lossy(&read.stdout).contains("renewal"));
}
