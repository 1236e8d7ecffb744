//! `bosun init` as a workflow: idempotence, dry runs, phase selection, the needs check, and atomic writes under a
//! killed run. These tests run the real binary against a temporary root on the embedded default configuration.

use std::time::Duration;

use crate::support::{assert_exit, assert_success, bosun_in, stderr, TempRoot};

/// `bosun init --offline`: a scratch root is not a live node, so the phases that need one (preflight, kubelet,
/// runtime, API server) skip themselves.
fn init(root: &TempRoot, extra: &[&str]) -> std::process::Output {
    let mut arguments = vec!["init", "--offline"];
    arguments.extend_from_slice(extra);
    bosun_in(root, &arguments)
}

/// The node's files, without bosun's own bookkeeping under /var/lib/bosun (the host lock and the journal).
fn node_files(root: &TempRoot) -> Vec<String> {
    root.listing()
        .into_iter()
        .filter(|path| !path.starts_with("/var/lib/bosun/"))
        .collect()
}

/// Lines of a run's log that report an artefact as created or updated.
fn changes(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains("] created ") || line.contains("] updated "))
        .collect()
}

#[test]
fn a_second_run_changes_nothing() {
    let root = TempRoot::new();
    let first = init(&root, &[]);
    assert_success(&first);
    assert!(
        !changes(&stderr(&first)).is_empty(),
        "the first run should create files:\n{}",
        stderr(&first)
    );
    let before = root.snapshot();
    assert!(
        before
            .iter()
            .any(|(path, ..)| path == "/etc/kubernetes/pki/ca.crt"),
        "{:#?}",
        root.listing()
    );

    let second = init(&root, &[]);
    assert_success(&second);
    let log = stderr(&second);
    assert!(
        changes(&log).is_empty(),
        "the second run changed something:\n{log}"
    );
    assert!(log.contains("] unchanged "), "{log}");
    let after = root.snapshot();
    let without_journal = |files: Vec<(String, Vec<u8>, u32, std::time::SystemTime)>| {
        files
            .into_iter()
            .filter(|(path, ..)| !path.starts_with("/var/lib/bosun/"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        without_journal(before),
        without_journal(after),
        "bytes, modes or mtimes changed on the second run"
    );
}

#[test]
fn a_dry_run_writes_nothing_and_shows_no_key_material() {
    let root = TempRoot::new();
    let output = init(&root, &["--dry-run"]);
    assert_success(&output);
    assert!(
        root.listing().is_empty(),
        "a dry run wrote files: {:#?}",
        root.listing()
    );
    let log = stderr(&output);
    assert!(
        log.contains("would write /etc/kubernetes/pki/ca.crt"),
        "{log}"
    );
    assert!(
        !log.contains("PRIVATE KEY-----\n    +M"),
        "a dry run printed key material:\n{log}"
    );
    assert!(
        !log.contains("BEGIN RSA PRIVATE KEY-----\n    +MII"),
        "{log}"
    );
}

#[test]
fn a_phase_subcommand_runs_exactly_its_subtree() {
    let root = TempRoot::new();
    let output = bosun_in(&root, &["init", "phase", "certs", "ca"]);
    assert_success(&output);
    assert_eq!(
        node_files(&root),
        ["/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.key"]
    );
    assert!(root.join("/var/lib/bosun/journal.json").is_file());
}

#[test]
fn skipped_phases_and_their_children_do_not_run() {
    let root = TempRoot::new();
    let output = init(&root, &["--skip-phases", "kubeconfig,certs/etcd-ca,certs/etcd-server,certs/etcd-peer,certs/etcd-healthcheck-client,certs/apiserver-etcd-client,etcd,control-plane"]);
    assert_success(&output);
    let listing = root.listing();
    assert!(
        listing.contains(&"/etc/kubernetes/pki/apiserver.crt".to_owned()),
        "{listing:#?}"
    );
    assert!(
        !listing.iter().any(|path| path.ends_with(".conf")
            || path.contains("/pki/etcd/")
            || path.contains("/manifests/")),
        "skipped phases ran: {listing:#?}"
    );
}

#[test]
fn a_missing_need_is_reported_before_anything_changes() {
    let root = TempRoot::new();
    let output = bosun_in(&root, &["init", "phase", "certs", "apiserver"]);
    assert_exit(&output, bosun::exit::PREFLIGHT_FAILED);
    let log = stderr(&output);
    assert!(log.contains("/etc/kubernetes/pki/ca.crt"), "{log}");
    assert!(
        log.contains("certs/ca"),
        "the error should name the phase that makes the CA:\n{log}"
    );
    assert!(node_files(&root).is_empty(), "{:#?}", root.listing());
}

#[test]
fn an_unknown_phase_name_is_a_usage_error() {
    let root = TempRoot::new();
    let output = init(&root, &["--skip-phases", "certs/no-such-cert"]);
    assert_exit(&output, bosun::exit::USAGE);
    assert!(
        stderr(&output).contains("no-such-cert"),
        "{}",
        stderr(&output)
    );
    assert!(node_files(&root).is_empty(), "{:#?}", root.listing());
}

/// Whether a file written by init is complete: PEM files end with their END line, YAML files parse.
fn is_complete(path: &str, contents: &[u8]) -> bool {
    let text = String::from_utf8_lossy(contents);
    if path.ends_with(".crt") || path.ends_with(".key") || path.ends_with(".pub") {
        let begins = text.matches("-----BEGIN ").count();
        let ends = text.matches("-----END ").count();
        return begins > 0 && begins == ends && text.trim_end().ends_with("-----");
    }
    if path.ends_with(".conf") || path.ends_with(".yaml") {
        return serde_yaml::from_str::<serde_yaml::Value>(&text).is_ok() && !text.is_empty();
    }
    true
}

#[test]
fn a_killed_run_leaves_whole_files_only() {
    let root = TempRoot::new();
    for delay_ms in [5_u64, 15, 30, 60, 120, 250] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bosun"))
            .args(["--root", root.path().to_str().expect("utf-8")])
            .args(["init", "--offline"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start bosun");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        for (path, contents, ..) in root.snapshot() {
            let name = path.rsplit('/').next().unwrap_or_default();
            if name.starts_with('.') && name.ends_with(".tmp") {
                continue;
            }
            assert!(
                is_complete(&path, &contents),
                "{path} is partial after a kill at {delay_ms} ms"
            );
        }
    }
    // A run to completion converges from whatever the killed runs left.
    let output = init(&root, &[]);
    assert_success(&output);
    let again = init(&root, &[]);
    assert_success(&again);
    assert!(changes(&stderr(&again)).is_empty(), "{}", stderr(&again));
}

#[test]
fn a_restart_stamp_from_certs_renew_survives_a_second_init() {
    let root = TempRoot::new();
    assert_success(&init(&root, &[]));
    let path = "/etc/kubernetes/manifests/kube-scheduler.yaml";
    let mut manifest: serde_yaml::Value =
        serde_yaml::from_str(&root.read_string(path)).expect("manifest parses");
    manifest["metadata"]["annotations"]["bosun.dev/restarted-at"] =
        serde_yaml::Value::from("2026-12-01T12:00:00Z");
    root.write(
        path,
        serde_yaml::to_string(&manifest).expect("yaml").as_bytes(),
    );

    assert_success(&init(&root, &[]));
    let again: serde_yaml::Value =
        serde_yaml::from_str(&root.read_string(path)).expect("manifest parses");
    assert_eq!(
        again["metadata"]["annotations"]["bosun.dev/restarted-at"].as_str(),
        Some("2026-12-01T12:00:00Z"),
        "init dropped the restart stamp, which would restart the scheduler again"
    );
    let third = init(&root, &[]);
    assert_success(&third);
    assert!(changes(&stderr(&third)).is_empty(), "{}", stderr(&third));
}
