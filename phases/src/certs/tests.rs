//! The certs and kubeconfig phases on an in-memory node: first run, idempotent re-run, each phase alone, external
//! CA mode, and every kind of bad existing file refused with nothing overwritten.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bosun_pki::{Certificate, PrivateKey};

use super::{certs_phase, kubeconfig_phase};
use crate::engine::event::{Event, EventSink, Level};
use crate::engine::{run, RunError, RunOptions, RunReport, Workflow};
use crate::host::memory::{MemoryCommands, MemoryFiles, MemoryServices};
use crate::host::{FixedClock, Host, Outcome};
use crate::init::InitData;

const PKI: &str = "/etc/kubernetes/pki";

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)
}

fn data() -> InitData {
    let mut config = bosun_config::defaults(&bosun_config::HostFacts {
        hostname: "cp-1".to_owned(),
        default_address: Some("192.0.2.10".parse().expect("ip")),
    });
    // ECDSA keeps the tests fast; RSA goes through the same code (see bosun-pki's tests and the integration tests).
    config.cluster.encryption_algorithm = "ECDSA-P256".to_owned();
    InitData::new(config)
}

fn host_at(files: &MemoryFiles, now: SystemTime) -> Host {
    Host {
        files: Box::new(files.clone()),
        commands: Box::new(MemoryCommands::default()),
        services: Box::new(MemoryServices::default()),
        clock: Box::new(FixedClock(now)),
        description: "memory".to_owned(),
        dry_run: false,
    }
}

fn workflow() -> Workflow<InitData> {
    Workflow::new("init")
        .phase(certs_phase())
        .phase(kubeconfig_phase())
}

#[derive(Default)]
struct Collect(std::sync::Mutex<Vec<Event>>);

impl EventSink for Collect {
    fn emit(&self, event: Event) {
        self.0.lock().expect("lock").push(event);
    }
}

impl Collect {
    fn warnings(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|event| match event {
                Event::Message {
                    level: Level::Warning,
                    text,
                    ..
                } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    fn details(&self) -> Vec<(String, Outcome, Option<String>)> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|event| match event {
                Event::Artefact {
                    artefact,
                    outcome,
                    detail,
                    ..
                } => Some((artefact.clone(), *outcome, detail.clone())),
                _ => None,
            })
            .collect()
    }
}

fn run_on(
    files: &MemoryFiles,
    data: &InitData,
    target: Option<&str>,
) -> Result<RunReport, RunError> {
    run_at(files, data, target, start(), &Collect::default())
}

fn run_at(
    files: &MemoryFiles,
    data: &InitData,
    target: Option<&str>,
    now: SystemTime,
    sink: &Collect,
) -> Result<RunReport, RunError> {
    run(
        &workflow(),
        data,
        &host_at(files, now),
        sink,
        &RunOptions {
            target: target.map(str::to_owned),
            skip: Vec::new(),
        },
    )
}

fn pki(relative: &str) -> PathBuf {
    Path::new(PKI).join(relative)
}

fn read(files: &MemoryFiles, path: &Path) -> Vec<u8> {
    use crate::host::Files;
    files
        .read(path)
        .expect("read")
        .unwrap_or_else(|| panic!("{} exists", path.display()))
}

fn write(files: &MemoryFiles, path: &Path, contents: &[u8]) {
    use crate::host::Files;
    files.write_atomic(path, contents, 0o600).expect("write");
}

fn remove(files: &MemoryFiles, path: &Path) {
    use crate::host::Files;
    assert!(
        files.remove_file(path).expect("remove"),
        "{} existed",
        path.display()
    );
}

fn mode(files: &MemoryFiles, path: &Path) -> u32 {
    use crate::host::Files;
    files
        .metadata(path)
        .expect("metadata")
        .expect("exists")
        .mode
}

/// Runs and expects a phase failure; returns the message (with its hint) and checks that nothing changed.
fn assert_refused(files: &MemoryFiles, data: &InitData, target: Option<&str>) -> String {
    let before = files.snapshot();
    let error = run_on(files, data, target).expect_err("the run should stop");
    assert_eq!(
        files.snapshot(),
        before,
        "a refused run must not change any file"
    );
    match error {
        RunError::Phase { source, .. } => {
            format!("{source} | hint: {}", source.hint().unwrap_or_default())
        }
        other => panic!("expected a phase failure, got {other}"),
    }
}

fn all_files() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = bosun_pki::CERTIFICATES
        .iter()
        .flat_map(|spec| [pki(&spec.cert_file()), pki(&spec.key_file())])
        .collect();
    paths.extend([pki("sa.key"), pki("sa.pub")]);
    paths.extend(bosun_pki::KUBECONFIGS.iter().map(super::kubeconfig_path));
    paths
}

#[test]
fn first_run_creates_everything_with_kubeadm_modes_and_second_run_changes_nothing() {
    let files = MemoryFiles::default();
    let data = data();
    let sink = Collect::default();
    let report = run_at(&files, &data, None, start(), &sink).expect("first run");
    for path in all_files() {
        let expected = if path.extension().is_some_and(|ext| ext == "crt") {
            0o644
        } else {
            0o600
        };
        assert_eq!(mode(&files, &path), expected, "{}", path.display());
    }
    assert!(report.changed());
    assert!(sink
        .details()
        .iter()
        .all(|(_, outcome, detail)| *outcome == Outcome::Created && detail.is_some()));

    let writes = files.write_count();
    let before = files.snapshot();
    let sink = Collect::default();
    let again = run_at(&files, &data, None, start(), &sink).expect("second run");
    assert!(!again.changed(), "{again:#?}");
    assert_eq!(files.write_count(), writes);
    assert_eq!(files.snapshot(), before);
    let details = sink.details();
    assert_eq!(details.len(), all_files().len());
    assert!(details
        .iter()
        .all(|(_, outcome, detail)| *outcome == Outcome::Unchanged
            && detail.as_deref() == Some("using existing")));
}

#[test]
fn the_files_chain_and_kubeconfigs_embed_the_ca() {
    let files = MemoryFiles::default();
    let data = data();
    run_on(&files, &data, None).expect("run");
    let ca = Certificate::from_pem("ca.crt", &read(&files, &pki("ca.crt"))).expect("ca");
    let apiserver =
        Certificate::from_pem("apiserver.crt", &read(&files, &pki("apiserver.crt"))).expect("leaf");
    apiserver.check_signed_by(&ca).expect("chains");
    assert!(apiserver
        .alt_names
        .dns_names
        .contains(&"kubernetes.default.svc.cluster.local".to_owned()));
    assert!(apiserver
        .alt_names
        .ip_addresses
        .contains(&"10.96.0.1".parse().expect("ip")));
    let text =
        String::from_utf8(read(&files, Path::new("/etc/kubernetes/admin.conf"))).expect("utf-8");
    let admin: bosun_pki::Kubeconfig = super::parse_kubeconfig(&text).expect("kubeconfig");
    let client = admin.client_certificate("admin.conf").expect("client");
    client.check_signed_by(&ca).expect("client chains");
    assert_eq!(client.organization, vec!["kubeadm:cluster-admins"]);
    assert_eq!(
        admin.current_cluster().expect("cluster").server,
        "https://192.0.2.10:6443"
    );
}

#[test]
fn each_phase_works_alone_and_names_what_is_missing() {
    let files = MemoryFiles::default();
    let data = data();
    let error = run_on(&files, &data, Some("certs/apiserver")).expect_err("no CA yet");
    let message = error.to_string();
    assert!(
        message.contains("/etc/kubernetes/pki/ca.crt") && message.contains("certs/ca"),
        "{message}"
    );
    run_on(&files, &data, Some("certs/ca")).expect("ca alone");
    let report = run_on(&files, &data, Some("certs/apiserver")).expect("apiserver alone");
    assert_eq!(report.phases.len(), 1);
    assert_eq!(report.phases[0].artefacts.len(), 2);
    run_on(&files, &data, Some("kubeconfig/scheduler")).expect("scheduler alone");
    use crate::host::Files;
    assert!(!files.exists(&pki("front-proxy-ca.crt")).expect("exists"));
}

#[test]
fn external_ca_mode_uses_the_ca_without_its_key_and_refuses_to_make_leaves() {
    let files = MemoryFiles::default();
    let data = data();
    run_on(&files, &data, None).expect("run");
    remove(&files, &pki("ca.key"));
    let report = run_on(&files, &data, None).expect("external CA with every file present");
    assert!(!report.changed());
    remove(&files, &pki("apiserver.crt"));
    remove(&files, &pki("apiserver.key"));
    let message = assert_refused(&files, &data, None);
    assert!(
        message.contains("/etc/kubernetes/pki/apiserver.crt does not exist and cannot be made")
            && message.contains("/etc/kubernetes/pki/ca.key is absent"),
        "{message}"
    );
    remove(&files, Path::new("/etc/kubernetes/admin.conf"));
    let message = assert_refused(&files, &data, Some("kubeconfig/admin"));
    assert!(
        message.contains("/etc/kubernetes/admin.conf does not exist"),
        "{message}"
    );
}

#[test]
fn a_leaf_without_a_new_san_is_refused_and_kept() {
    let files = MemoryFiles::default();
    let mut data = data();
    run_on(&files, &data, None).expect("run");
    data.config.cluster.api_server.cert_sans =
        vec!["api.example.com".to_owned(), "203.0.113.7".to_owned()];
    let message = assert_refused(&files, &data, None);
    assert!(
        message.contains("/etc/kubernetes/pki/apiserver.crt does not cover the required subject alternative names DNS:api.example.com, IP Address:203.0.113.7"),
        "{message}"
    );
    assert!(message.contains("hint: "), "{message}");
}

#[test]
fn invalid_extra_sans_are_dropped_with_a_warning() {
    let files = MemoryFiles::default();
    let mut data = data();
    data.config.cluster.api_server.cert_sans = vec!["Bad_Name".to_owned()];
    let sink = Collect::default();
    run_at(&files, &data, None, start(), &sink).expect("run");
    let warnings = sink.warnings();
    assert!(
        warnings
            .iter()
            .any(|warning| warning.contains("\"Bad_Name\"")),
        "{warnings:?}"
    );
}

#[test]
fn corrupt_pem_is_refused_naming_the_file() {
    let files = MemoryFiles::default();
    let data = data();
    run_on(&files, &data, None).expect("run");
    write(
        &files,
        &pki("ca.crt"),
        b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    let message = assert_refused(&files, &data, None);
    assert!(
        message.starts_with("/etc/kubernetes/pki/ca.crt is not valid PEM"),
        "{message}"
    );
}

#[test]
fn a_mismatched_key_is_refused() {
    let files = MemoryFiles::default();
    let data = data();
    run_on(&files, &data, None).expect("run");
    let other = PrivateKey::generate(bosun_pki::KeyAlgorithm::EcdsaP256).expect("key");
    write(
        &files,
        &pki("front-proxy-client.key"),
        other.to_pem().as_bytes(),
    );
    let message = assert_refused(&files, &data, None);
    assert!(
        message.starts_with("the private key /etc/kubernetes/pki/front-proxy-client.key does not match the certificate /etc/kubernetes/pki/front-proxy-client.crt"),
        "{message}"
    );
}

#[test]
fn a_ca_that_is_not_a_ca_is_refused() {
    let files = MemoryFiles::default();
    let data = data();
    run_on(&files, &data, None).expect("run");
    let leaf = read(&files, &pki("etcd/server.crt"));
    let leaf_key = read(&files, &pki("etcd/server.key"));
    write(&files, &pki("etcd/ca.crt"), &leaf);
    write(&files, &pki("etcd/ca.key"), &leaf_key);
    let message = assert_refused(&files, &data, None);
    assert!(
        message.starts_with("/etc/kubernetes/pki/etcd/ca.crt is not a CA certificate"),
        "{message}"
    );
}

#[test]
fn a_leaf_from_another_ca_is_refused() {
    let data = data();
    let ours = MemoryFiles::default();
    let theirs = MemoryFiles::default();
    run_on(&ours, &data, None).expect("ours");
    run_on(&theirs, &data, None).expect("theirs");
    for relative in ["apiserver-etcd-client.crt", "apiserver-etcd-client.key"] {
        write(&ours, &pki(relative), &read(&theirs, &pki(relative)));
    }
    let message = assert_refused(&ours, &data, None);
    assert!(
        message.starts_with("/etc/kubernetes/pki/apiserver-etcd-client.crt is not signed by the CA in /etc/kubernetes/pki/etcd/ca.crt"),
        "{message}"
    );
}

#[test]
fn an_expired_ca_is_refused() {
    let files = MemoryFiles::default();
    let data = data();
    run_on(&files, &data, None).expect("run");
    let eleven_years = Duration::from_secs(11 * 365 * 24 * 3600);
    let before = files.snapshot();
    let error = run_at(
        &files,
        &data,
        None,
        start() + eleven_years,
        &Collect::default(),
    )
    .expect_err("expired");
    assert_eq!(files.snapshot(), before);
    let message = error.to_string();
    assert!(
        message.contains("/etc/kubernetes/pki/ca.crt expired on "),
        "{message}"
    );
}

#[test]
fn a_kubeconfig_for_another_ca_is_refused_and_another_server_only_warns() {
    let data = data();
    let ours = MemoryFiles::default();
    let theirs = MemoryFiles::default();
    run_on(&ours, &data, None).expect("ours");
    run_on(&theirs, &data, None).expect("theirs");
    let path = Path::new("/etc/kubernetes/scheduler.conf");
    let original = read(&ours, path);
    write(&ours, path, &read(&theirs, path));
    let message = assert_refused(&ours, &data, None);
    assert!(
        message.starts_with("/etc/kubernetes/scheduler.conf was made for a different CA"),
        "{message}"
    );

    let moved = String::from_utf8(original)
        .expect("utf-8")
        .replace("https://192.0.2.10:6443", "https://192.0.2.99:6443");
    write(&ours, path, moved.as_bytes());
    let sink = Collect::default();
    run_at(&ours, &data, None, start(), &sink).expect("another server is kept");
    assert!(sink
        .warnings()
        .iter()
        .any(|warning| warning.contains("https://192.0.2.99:6443")));
}

#[test]
fn a_key_left_by_an_interrupted_run_gets_its_certificate() {
    let files = MemoryFiles::default();
    let data = data();
    run_on(&files, &data, None).expect("run");
    let key = read(&files, &pki("apiserver-kubelet-client.key"));
    remove(&files, &pki("apiserver-kubelet-client.crt"));
    let sink = Collect::default();
    run_at(&files, &data, None, start(), &sink).expect("re-run");
    assert_eq!(read(&files, &pki("apiserver-kubelet-client.key")), key);
    let certificate =
        Certificate::from_pem("c", &read(&files, &pki("apiserver-kubelet-client.crt")))
            .expect("cert");
    certificate
        .check_key(&PrivateKey::from_pem("k", &key).expect("key"), "k")
        .expect("the new certificate is for the kept key");
}

#[test]
fn external_etcd_skips_the_etcd_pki() {
    let files = MemoryFiles::default();
    let mut data = data();
    data.config.cluster.etcd.local = None;
    data.config.cluster.etcd.external = Some(bosun_config::ExternalEtcd {
        endpoints: vec!["https://10.0.0.5:2379".to_owned()],
        ..Default::default()
    });
    let report = run_on(&files, &data, None).expect("run");
    use crate::host::Files;
    assert!(!files.exists(&pki("etcd/ca.crt")).expect("exists"));
    assert!(!files
        .exists(&pki("apiserver-etcd-client.crt"))
        .expect("exists"));
    let skipped = report
        .phases
        .iter()
        .filter(|phase| matches!(phase.status, crate::engine::PhaseStatus::Skipped { .. }))
        .count();
    assert_eq!(skipped, 5);
}

#[test]
fn every_need_is_made_earlier() {
    assert!(workflow().ordering_violations(&data()).is_empty());
}

#[test]
fn a_ca_key_without_its_certificate_gets_a_certificate_from_that_key() {
    // What a run killed between writing ca.key and ca.crt leaves behind: the whole run then converges.
    let files = MemoryFiles::default();
    let data = data();
    run_on(&files, &data, Some("certs/ca")).expect("certs/ca");
    let key = read(&files, &pki("ca.key"));
    remove(&files, &pki("ca.crt"));
    run_on(&files, &data, None).expect("the re-run converges");
    assert_eq!(read(&files, &pki("ca.key")), key, "the CA key was replaced");
    assert_eq!(mode(&files, &pki("ca.crt")), 0o644);

    // Certificates the CA signed before still chain to the certificate made again from its key.
    remove(&files, &pki("ca.crt"));
    run_on(&files, &data, Some("certs")).expect("certs again");
    let ca = Certificate::from_pem("ca.crt", &read(&files, &pki("ca.crt"))).expect("ca");
    let apiserver =
        Certificate::from_pem("apiserver.crt", &read(&files, &pki("apiserver.crt"))).expect("leaf");
    apiserver
        .check_signed_by(&ca)
        .expect("a leaf of the first run chains to the new CA certificate");
}
