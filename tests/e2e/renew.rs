//! Issue 3, `bosun certs renew` on a real node (tier 2, docs/certs.md): the certificates are renewed and the real
//! kubelet restarts etcd, kube-apiserver, kube-controller-manager and kube-scheduler one at a time, each healthy
//! before the next one is touched, after bosun changed the restart annotation in its static-pod manifest.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use bosun_phases::certops::renew::RESTART_ANNOTATION;

use crate::harness::binaries::Binaries;
use crate::harness::node::{Node, NodeNetwork};
use crate::tier2::{assert_ok, bosun, bosun_command, kubectl_json, node_config, STEP_TIMEOUT};

/// The restart order bosun promises (docs/certs.md).
const COMPONENTS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// The leaf certificates `renew all` renews, as files under /etc/kubernetes/pki.
const CERTIFICATES: [&str; 7] = [
    "apiserver",
    "apiserver-kubelet-client",
    "front-proxy-client",
    "etcd/server",
    "etcd/peer",
    "etcd/healthcheck-client",
    "apiserver-etcd-client",
];

/// The kubeconfigs whose client certificates `renew all` renews (kubelet.conf is not one of them).
const KUBECONFIGS: [&str; 4] = [
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
];

const CONFIG: &str = "/etc/bosun-tier2/kubeadm.yaml";

/// `openssl x509` on PEM text: (serial, notBefore).
fn serial_and_start(pem: &[u8]) -> (String, String) {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-startdate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pem)
        .expect("write the certificate to openssl");
    let output = child.wait_with_output().expect("openssl x509");
    assert_ok("openssl x509", &output);
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("openssl printed no {name}:\n{text}"))
            .to_owned()
    };
    (field("serial="), field("notBefore="))
}

/// The PEM of a kubeconfig's embedded client certificate, decoded by openssl.
fn kubeconfig_certificate(text: &str) -> Vec<u8> {
    let config: serde_yaml::Value = serde_yaml::from_str(text).expect("a kubeconfig");
    let data = config["users"][0]["user"]["client-certificate-data"]
        .as_str()
        .expect("an embedded client certificate")
        .to_owned();
    let mut child = Command::new("openssl")
        .args(["base64", "-d", "-A"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl base64");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data.as_bytes())
        .expect("write to openssl");
    child.wait_with_output().expect("openssl base64").stdout
}

/// Serial and notBefore of every certificate `renew all` renews, by name.
fn certificates(node: &Node) -> Vec<(String, (String, String))> {
    let read =
        |path: String| std::fs::read(node.path(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut all: Vec<(String, (String, String))> = CERTIFICATES
        .iter()
        .map(|name| {
            let pem = read(format!("/etc/kubernetes/pki/{name}.crt"));
            (name.to_string(), serial_and_start(&pem))
        })
        .collect();
    for name in KUBECONFIGS {
        let text = String::from_utf8(read(format!("/etc/kubernetes/{name}"))).expect("utf-8");
        all.push((
            name.to_owned(),
            serial_and_start(&kubeconfig_certificate(&text)),
        ));
    }
    all
}

/// Seconds since the epoch of an RFC 3339 time, by date(1).
fn epoch(stamp: &str) -> i64 {
    let output = Command::new("date")
        .args(["-u", "-d", stamp, "+%s"])
        .output()
        .expect("run date");
    assert_ok(&format!("date -d {stamp}"), &output);
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("seconds")
}

fn seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs_f64()
}

/// What the kubelet reports for a component's mirror pod: (pod UID, container ID, container start, restart
/// annotation, Ready since).
#[derive(Debug, Clone, PartialEq)]
struct Running {
    uid: String,
    container: String,
    started: String,
    annotation: Option<String>,
    ready_since: String,
}

fn running(node: &Node, binaries: &Binaries, component: &str) -> Result<Running, String> {
    let pod = kubectl_json(
        node,
        binaries,
        &[
            "get",
            "pod",
            "--namespace=kube-system",
            &format!("{component}-{}", node.name()),
        ],
    )?;
    let status = &pod["status"]["containerStatuses"][0];
    let started = status["state"]["running"]["startedAt"]
        .as_str()
        .ok_or_else(|| format!("{component} is not running: {status}"))?;
    let ready = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|condition| condition["type"] == "Ready" && condition["status"] == "True")
        .ok_or_else(|| format!("{component} is not Ready: {}", pod["status"]))?;
    Ok(Running {
        uid: pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        container: status["containerID"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        started: started.to_owned(),
        annotation: pod["metadata"]["annotations"][RESTART_ANNOTATION]
            .as_str()
            .map(str::to_owned),
        ready_since: ready["lastTransitionTime"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    })
}

/// The serial of the certificate the API server at the node's address serves, from openssl s_client in the node.
fn served_serial(node: &Node) -> String {
    let script = format!(
        "openssl s_client -connect {}:6443 </dev/null 2>/dev/null | openssl x509 -noout -serial",
        node.address()
    );
    let output = node.output("sh", &["-c", &script]);
    assert_ok("openssl s_client", &output);
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .strip_prefix("serial=")
        .expect("a serial")
        .to_owned()
}

#[test]
fn certs_renew_all_restarts_the_control_plane_one_at_a_time() {
    let Some(binaries) = Binaries::require(
        "renew::certs_renew_all_restarts_the_control_plane_one_at_a_time",
        crate::tier2::TIER2,
    ) else {
        return;
    };
    let version = crate::tier1::built_version(&binaries);
    let started = Instant::now();
    let node = Node::start("renew", NodeNetwork::Alone);
    node.write(CONFIG, node_config(&version, &node).as_bytes());
    crate::tier2::prepare_runtime(&node, &binaries, CONFIG);
    let init = bosun(
        &node,
        &binaries,
        &[
            "init",
            "--config",
            CONFIG,
            "--ignore-preflight-errors=SystemVerification",
        ],
    );
    assert_ok("bosun init", &init);
    // The static pods are host-network pods: they run without a network plugin.
    let before: Vec<Running> = COMPONENTS
        .iter()
        .map(|component| {
            crate::harness::wait_until(&format!("{component} Ready"), STEP_TIMEOUT, || {
                running(&node, &binaries, component)
            })
        })
        .collect();
    let brought_up = started.elapsed();
    let certificates_before = certificates(&node);
    let kubelet_conf =
        std::fs::read(node.path("/etc/kubernetes/kubelet.conf")).expect("kubelet.conf");

    // Renew, reading bosun's progress as it comes, with the time each line arrived.
    let mut renew = bosun_command(
        &node,
        &binaries,
        &["certs", "renew", "all", "--config", CONFIG],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start bosun certs renew");
    let stdout = renew.stdout.take().expect("stdout");
    let collect_stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut text);
        text
    });
    let mut lines: Vec<(SystemTime, String)> = Vec::new();
    for line in BufReader::new(renew.stderr.take().expect("stderr")).lines() {
        lines.push((SystemTime::now(), line.expect("bosun's output")));
    }
    let status = renew.wait().expect("bosun certs renew");
    let stdout = collect_stdout.join().expect("stdout reader");
    let text: String = lines.iter().map(|(_, line)| format!("{line}\n")).collect();
    assert!(
        status.success(),
        "bosun certs renew all failed ({status}):\n{stdout}\n{text}"
    );
    let renewed_at = started.elapsed();
    assert!(
        !text.contains("kubelet.conf") && !text.contains("stayed healthy"),
        "renew touched kubelet.conf or saw a component that was not restarted:\n{text}"
    );
    assert_eq!(
        std::fs::read(node.path("/etc/kubernetes/kubelet.conf")).expect("kubelet.conf"),
        kubelet_conf,
        "kubelet.conf changed"
    );

    // Every certificate has a new serial and a new notBefore (openssl's reading).
    let certificates_after = certificates(&node);
    for ((name, old), (_, new)) in certificates_before.iter().zip(&certificates_after) {
        assert!(
            old.0 != new.0 && old.1 != new.1,
            "{name} was not renewed: before {old:?}, after {new:?}\n{text}"
        );
    }

    // bosun's restarts, in its output: when it changed each manifest (the stamp it wrote) and when it said the
    // component was healthy (the moment the line arrived).
    let mut restarts = Vec::new();
    for component in COMPONENTS {
        let prefix = format!("[restart/{component}] ");
        let position = |what: &str| {
            lines
                .iter()
                .position(|(_, line)| line.starts_with(&prefix) && line.contains(what))
                .unwrap_or_else(|| panic!("bosun did not report {component} {what}:\n{text}"))
        };
        let updated = position(RESTART_ANNOTATION);
        let healthy = position("is healthy after");
        let stamp = lines[updated]
            .1
            .rsplit_once(": ")
            .map(|(_, stamp)| stamp.trim_end_matches(')').to_owned())
            .expect("a stamp");
        restarts.push((component, updated, healthy, stamp, lines[healthy].0));
    }
    for pair in restarts.windows(2) {
        assert!(
            pair[0].2 < pair[1].1,
            "{} was touched before {} was healthy:\n{text}",
            pair[1].0,
            pair[0].0
        );
    }

    // The real kubelet made a new pod for each, with bosun's annotation, whose container started after bosun
    // changed the manifest and before bosun called it healthy, and before the next component was touched.
    let after: Vec<Running> = COMPONENTS
        .iter()
        .map(|component| {
            crate::harness::wait_until(&format!("{component} Ready again"), STEP_TIMEOUT, || {
                running(&node, &binaries, component)
            })
        })
        .collect();
    let mut report = Vec::new();
    for (index, (component, _, _, stamp, healthy_at)) in restarts.iter().enumerate() {
        let (old, new) = (&before[index], &after[index]);
        assert!(
            old.uid != new.uid && old.container != new.container,
            "the kubelet did not recreate {component}: before {old:?}, after {new:?}"
        );
        assert_eq!(
            new.annotation.as_deref(),
            Some(stamp.as_str()),
            "{component}"
        );
        let touched = epoch(stamp);
        let container_started = epoch(&new.started);
        // startedAt has whole seconds: allow the second the manifest was written in.
        assert!(
            container_started >= touched,
            "{component}'s container started at {} before bosun changed its manifest at {stamp}:\n{text}",
            new.started
        );
        assert!(
            (container_started as f64) <= seconds(*healthy_at),
            "bosun called {component} healthy before its new container started ({}):\n{text}",
            new.started
        );
        if let Some((next, _, _, next_stamp, _)) = restarts.get(index + 1) {
            assert!(
                container_started <= epoch(next_stamp),
                "{next} was touched at {next_stamp} before {component}'s new container started at {}:\n{text}",
                new.started
            );
        }
        report.push(format!(
            "{component}: manifest {stamp}, container {} (+{}s), bosun healthy +{:.0}s, kubelet Ready {}",
            new.started,
            container_started - touched,
            seconds(*healthy_at) - touched as f64,
            new.ready_since
        ));
    }

    // The API server serves the renewed certificate, and the renewed admin.conf works.
    let file_serial = &certificates_after[0].1 .0;
    assert_eq!(
        &served_serial(&node),
        file_serial,
        "the served apiserver certificate"
    );
    let nodes = kubectl_json(&node, &binaries, &["get", "nodes"])
        .expect("kubectl with the renewed admin.conf");
    assert_eq!(nodes["items"][0]["metadata"]["name"], node.name());

    // Nothing is due within 30 days now: a second run renews and restarts nothing.
    let manifests_before: Vec<Vec<u8>> = COMPONENTS
        .iter()
        .map(|component| {
            std::fs::read(node.path(&format!("/etc/kubernetes/manifests/{component}.yaml")))
                .expect("manifest")
        })
        .collect();
    let again = bosun(
        &node,
        &binaries,
        &[
            "certs",
            "renew",
            "all",
            "--if-expiring-within",
            "30d",
            "--config",
            CONFIG,
        ],
    );
    assert_ok("bosun certs renew all --if-expiring-within 30d", &again);
    let again_text = String::from_utf8_lossy(&again.stderr);
    assert!(
        again_text.contains("nothing needed to change") && !again_text.contains("[restart"),
        "the second renew changed something:\n{again_text}"
    );
    assert_eq!(certificates(&node), certificates_after);
    for (index, component) in COMPONENTS.iter().enumerate() {
        assert_eq!(
            std::fs::read(node.path(&format!("/etc/kubernetes/manifests/{component}.yaml")))
                .expect("manifest"),
            manifests_before[index],
            "{component}'s manifest changed"
        );
        // A pod's Ready condition can stay False for a while after the API server's restart (seen in a full run:
        // Ready False while ContainersReady was True) until the kubelet's status reaches the API again. What matters
        // here is that the container is the same one, so wait for the condition rather than fail on it.
        let now =
            crate::harness::wait_until(&format!("{component} Ready again"), STEP_TIMEOUT, || {
                running(&node, &binaries, component)
            });
        assert_eq!(
            now.container, after[index].container,
            "{component} was restarted"
        );
    }
    eprintln!(
        "renew: node up {brought_up:?}, renew all done {renewed_at:?}, whole test {:?}\n{}",
        started.elapsed(),
        report.join("\n")
    );
}
