//! `bosun token`: local behaviour (generation, argument errors, an unreachable server) and, on a real control plane
//! (tier 1), create/list/delete compared with what kubectl and real kubeadm see.

use base64::Engine as _;
use bosun_phases::token::Token;

use crate::cluster::{assert_ok, with_control_plane};
use crate::support::{assert_exit, assert_success, bosun, bosun_in, stderr, stdout, TempRoot};

#[test]
fn generate_prints_a_fresh_well_formed_token() {
    let first = bosun(&["token", "generate"]);
    assert_success(&first);
    let second = bosun(&["token", "generate"]);
    let first = stdout(&first).trim().to_owned();
    Token::parse(&first).unwrap_or_else(|error| panic!("{first:?}: {error}"));
    assert_ne!(first, stdout(&second).trim());
    let json = bosun(&["-o", "json", "token", "generate"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert!(Token::parse(value["token"].as_str().expect("token")).is_ok());
}

#[test]
fn malformed_tokens_and_keys_are_usage_errors_that_touch_nothing() {
    let root = TempRoot::new();
    let output = bosun_in(&root, &["token", "create", "abcdef.tooshort"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("[a-z0-9]{6}.[a-z0-9]{16}"),
        "{}",
        stderr(&output)
    );
    let output = bosun_in(&root, &["token", "delete", "ABCDEF"]);
    assert_exit(&output, 2);
    let output = bosun_in(
        &root,
        &[
            "token",
            "create",
            "--print-join-command",
            "--certificate-key",
            "abc",
        ],
    );
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("64 hex digits"),
        "{}",
        stderr(&output)
    );
    let output = bosun_in(&root, &["token", "create", "--usages", "signin"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("signin"), "{}", stderr(&output));
    assert!(root.listing().is_empty(), "{:?}", root.listing());
}

#[test]
fn a_missing_kubeconfig_is_named() {
    let root = TempRoot::new();
    let output = bosun_in(&root, &["token", "list"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("/etc/kubernetes/admin.conf does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("hint:"), "{}", stderr(&output));
}

#[test]
fn an_unreachable_api_server_is_named_with_a_hint() {
    let root = TempRoot::new();
    let directory = tempfile::tempdir().expect("tempdir");
    let key = directory.path().join("ca.key");
    let cert = directory.path().join("ca.crt");
    let output = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=kubernetes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ca = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&cert).expect("ca"));
    root.write(
        "/etc/kubernetes/admin.conf",
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: https://127.0.0.1:9\n    certificate-authority-data: {ca}\n\
             contexts:\n- name: admin@kubernetes\n  context:\n    cluster: kubernetes\n    user: admin\ncurrent-context: admin@kubernetes\n\
             users:\n- name: admin\n  user:\n    token: abcdef.0123456789abcdef\n"
        )
        .as_bytes(),
    );
    let output = bosun_in(&root, &["token", "list"]);
    assert_exit(&output, 6);
    let text = stderr(&output);
    assert!(text.contains("https://127.0.0.1:9"), "{text}");
    assert!(text.contains("hint:"), "{text}");
}

/// The data row of `token list` for `id`, split into its columns (at runs of 3+ spaces, as tabwriter pads).
fn row(table: &str, id: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|line| line.starts_with(&format!("{id}.")))
        .unwrap_or_else(|| panic!("no row for {id} in\n{table}"));
    line.split("   ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn token_commands_work_against_a_real_control_plane() {
    with_control_plane(
        "token::token_commands_work_against_a_real_control_plane",
        "tier1-token",
        |plane| {
            plane.init_phase(&["bootstrap-token"], &[]);
            let created =
                plane.bosun(&["token", "create", "--ttl", "2h", "--description", "rack 4"]);
            assert_ok("bosun token create", &created);
            let token = Token::parse(stdout(&created).trim()).expect("a token");

            // kubectl sees the Secret bosun wrote.
            let secret =
                plane.get_json(&["secret", &token.secret_name(), "--namespace=kube-system"]);
            assert_eq!(secret["type"], "bootstrap.kubernetes.io/token");

            // bosun's table has kubeadm's columns and cells; compare with real kubeadm on the same cluster.
            let ours = plane.bosun(&["token", "list"]);
            assert_ok("bosun token list", &ours);
            let admin = plane.root.join("/etc/kubernetes/admin.conf");
            let theirs = plane.sandbox.output(
                plane.binaries.path("kubeadm"),
                &[
                    "token",
                    "list",
                    "--kubeconfig",
                    admin.to_str().expect("utf-8"),
                ],
            );
            assert_ok("kubeadm token list", &theirs);
            let ours = stdout(&ours);
            let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
            assert_eq!(
                ours.lines().next(),
                theirs.lines().next(),
                "header\nours:\n{ours}\ntheirs:\n{theirs}"
            );
            for id in [token.id(), "abcdef"] {
                let (mine, kubeadms) = (row(&ours, id), row(&theirs, id));
                // TTL may tick between the two commands; every other column must be identical.
                assert_eq!(mine[0], kubeadms[0]);
                assert_eq!(mine[2..], kubeadms[2..], "ours:\n{ours}\ntheirs:\n{theirs}");
            }
            assert_eq!(row(&ours, token.id())[1], "1h", "{ours}");

            // JSON for scripts.
            let json = plane.bosun(&["-o", "json", "token", "list"]);
            assert_ok("bosun -o json token list", &json);
            let rows: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
            let entry = rows
                .as_array()
                .expect("array")
                .iter()
                .find(|entry| entry["token"] == token.expose())
                .expect("the new token");
            assert_eq!(entry["description"], "rack 4");
            assert_eq!(
                entry["usages"],
                serde_json::json!(["authentication", "signing"])
            );

            // The join command carries the server and the CA pin.
            let join = plane.bosun(&["token", "create", "--print-join-command"]);
            assert_ok("bosun token create --print-join-command", &join);
            let line = stdout(&join);
            assert!(
                line.starts_with(&format!(
                    "bosun join {}:6443 --token ",
                    crate::harness::sandbox::NODE_IP
                )),
                "{line}"
            );
            assert!(
                line.contains("--discovery-token-ca-cert-hash sha256:"),
                "{line}"
            );
            let control_plane = plane.bosun(&[
                "token",
                "create",
                "--print-join-command",
                "--certificate-key",
                crate::cluster::CERTIFICATE_KEY,
            ]);
            assert_ok(
                "bosun token create --print-join-command --certificate-key",
                &control_plane,
            );
            assert!(stdout(&control_plane).trim_end().ends_with(&format!(
                "--control-plane --certificate-key {}",
                crate::cluster::CERTIFICATE_KEY
            )));

            // An existing id with other settings is refused; delete removes it; deleting again names it.
            let clash = plane.bosun(&["token", "create", &token.expose(), "--ttl", "5h"]);
            assert!(!clash.status.success());
            assert!(
                stderr(&clash).contains("already exists"),
                "{}",
                stderr(&clash)
            );
            let deleted = plane.bosun(&["token", "delete", &token.expose()]);
            assert_ok("bosun token delete", &deleted);
            let gone = plane.kubectl(&[
                "get",
                "secret",
                &token.secret_name(),
                "--namespace=kube-system",
            ]);
            assert!(!gone.status.success(), "the Secret is gone");
            let again = plane.bosun(&["token", "delete", token.id()]);
            assert!(!again.status.success());
            assert!(stderr(&again).contains(token.id()), "{}", stderr(&again));

            // A token kubeadm creates is listed by bosun.
            let by_kubeadm = plane.sandbox.output(
                plane.binaries.path("kubeadm"),
                &[
                    "token",
                    "create",
                    "--kubeconfig",
                    admin.to_str().expect("utf-8"),
                    "--ttl",
                    "30m",
                ],
            );
            assert_ok("kubeadm token create", &by_kubeadm);
            let kubeadm_token = Token::parse(String::from_utf8_lossy(&by_kubeadm.stdout).trim())
                .expect("kubeadm token");
            let listed = stdout(&plane.bosun(&["token", "list"]));
            let cells = row(&listed, kubeadm_token.id());
            assert!(["29m", "30m"].contains(&cells[1].as_str()), "{listed}");
        },
    );
}
