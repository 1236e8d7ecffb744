//! The cluster-side init phases against a real control plane (tier 1, docs/testing.md): real kubeadm writes the
//! node root (certificates, kubeconfigs, manifests), the harness runs etcd, kube-apiserver, kube-controller-manager
//! and kube-scheduler from it in a sandbox, and the real `bosun` binary runs `init phase …` inside the sandbox.
//! Results are read back with kubectl; the cryptography is checked with bosun's verifiers on what the real
//! components wrote (the cluster-info JWS is made by kube-controller-manager's bootstrapsigner, not by bosun).
//!
//! Without the built binaries the tests are skipped loudly on a developer machine and fail in CI
//! (`harness::binaries::Binaries::require`).

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use bosun_phases::token::{jws, pin, Token};

use crate::harness::binaries::{Binaries, TIER1};
use crate::harness::sandbox::{Sandbox, NODE_IP};
use crate::harness::static_pods::StaticPods;
use crate::harness::wait_for;
use crate::support::TempRoot;
use crate::tier1::{built_version, kubeadm_writes_root, kubectl};

const READY_TIMEOUT: Duration = Duration::from_secs(240);
pub const TOKEN: &str = "abcdef.0123456789abcdef";
pub const CERTIFICATE_KEY: &str =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A running control plane and the files around it.
pub struct Plane<'a> {
    pub binaries: &'a Binaries,
    pub root: &'a TempRoot,
    pub sandbox: &'a Sandbox,
    /// bosun's configuration for this node (a file on the real machine).
    pub config: PathBuf,
}

impl Plane<'_> {
    /// Runs the real bosun binary inside the sandbox against the root.
    pub fn bosun(&self, arguments: &[&str]) -> Output {
        let mut all = vec!["--root", self.root.path().to_str().expect("utf-8 root")];
        all.extend_from_slice(arguments);
        self.sandbox
            .command(env!("CARGO_BIN_EXE_bosun"))
            .args(&all)
            .env_remove("BOSUN_ROOT")
            .env("BOSUN_SERVICE_BACKEND", "process")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run bosun in the sandbox")
    }

    /// `bosun -o json init phase <phase…> --config …`, asserted to succeed; returns the artefact events.
    pub fn init_phase(&self, phase: &[&str], extra: &[&str]) -> Vec<(String, String)> {
        let config = self.config.to_str().expect("utf-8").to_owned();
        let mut arguments = vec!["-o", "json", "init", "phase"];
        arguments.extend_from_slice(phase);
        arguments.extend_from_slice(&["--config", &config]);
        arguments.extend_from_slice(extra);
        let output = self.bosun(&arguments);
        assert_ok(&format!("bosun init phase {}", phase.join(" ")), &output);
        artefacts(&output)
    }

    pub fn kubectl(&self, arguments: &[&str]) -> Output {
        kubectl(self.sandbox, self.binaries, self.root.path(), arguments)
    }

    /// `kubectl get … -o json`, asserted to succeed.
    pub fn get_json(&self, arguments: &[&str]) -> serde_json::Value {
        let mut all = vec!["get"];
        all.extend_from_slice(arguments);
        all.push("-o=json");
        let output = self.kubectl(&all);
        assert_ok(&format!("kubectl {}", all.join(" ")), &output);
        serde_json::from_slice(&output.stdout).expect("kubectl JSON")
    }
}

/// The (artefact, outcome) pairs of a `-o json` run's events.
pub fn artefacts(output: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "artefact")
        .map(|event| {
            (
                event["artefact"].as_str().unwrap_or_default().to_owned(),
                event["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[track_caller]
pub fn assert_ok(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[track_caller]
fn assert_all_unchanged(what: &str, artefacts: &[(String, String)]) {
    assert!(!artefacts.is_empty(), "{what} reported no artefacts");
    let changed: Vec<&(String, String)> = artefacts
        .iter()
        .filter(|(_, outcome)| outcome != "unchanged")
        .collect();
    assert!(
        changed.is_empty(),
        "{what} changed on a second run: {changed:?}"
    );
}

/// Starts a control plane from a kubeadm-written root and runs `test` against it; skips (or, in CI, fails) without
/// the binaries.
pub fn with_control_plane(test: &str, hostname: &str, body: impl FnOnce(&Plane<'_>)) {
    let Some(binaries) = Binaries::require(test, TIER1) else {
        return;
    };
    let root = TempRoot::new();
    let sandbox = Sandbox::new(hostname);
    kubeadm_writes_root(&sandbox, &binaries, &root);
    let version = built_version(&binaries);
    let config = root.path().join("bosun.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n\
             bootstrapTokens:\n- token: {TOKEN}\n  description: tier-1 token\n\
             certificateKey: {CERTIFICATE_KEY}\n\
             localAPIEndpoint:\n  advertiseAddress: {NODE_IP}\n  bindPort: 6443\n\
             nodeRegistration:\n  name: {hostname}\n\
             ---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
             kubernetesVersion: {version}\nclusterName: kubernetes\n\
             networking:\n  serviceSubnet: 10.96.0.0/12\n  podSubnet: 10.244.0.0/16\n  dnsDomain: cluster.local\n"
        ),
    )
    .expect("write bosun.yaml");
    let mut pods = StaticPods::start(&sandbox, root.path(), &binaries);
    pods.wait_ready(READY_TIMEOUT);
    let plane = Plane {
        binaries: &binaries,
        root: &root,
        sandbox: &sandbox,
        config,
    };
    body(&plane);
    drop(pods);
}

fn assert_decrypts(plane: &Plane<'_>, secret: &serde_json::Value, key: &str, node_path: &str) {
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(
            secret["data"][key]
                .as_str()
                .unwrap_or_else(|| panic!("kubeadm-certs has no {key}")),
        )
        .expect("base64");
    let plain = bosun_phases::cluster::certs::decrypt(&sealed, CERTIFICATE_KEY, key)
        .expect("decrypts with the key");
    assert_eq!(plain, plane.root.read(node_path), "{key} is {node_path}");
}

#[test]
fn cluster_phases_build_the_cluster_objects_on_a_real_control_plane() {
    with_control_plane(
        "cluster::cluster_phases_build_the_cluster_objects_on_a_real_control_plane",
        "tier1-cluster",
        |plane| {
            // upload-config: both ConfigMaps, readable by bootstrapping nodes; a second run changes nothing.
            let first = plane.init_phase(&["upload-config"], &[]);
            assert!(
                first.iter().any(|(artefact, outcome)| artefact
                    == "cluster: ConfigMap kube-system/kubeadm-config"
                    && outcome == "created"),
                "{first:?}"
            );
            assert_all_unchanged("upload-config", &plane.init_phase(&["upload-config"], &[]));
            let kubeadm_config =
                plane.get_json(&["configmap", "kubeadm-config", "--namespace=kube-system"]);
            let cluster_configuration = kubeadm_config["data"]["ClusterConfiguration"]
                .as_str()
                .expect("ClusterConfiguration");
            assert!(
                cluster_configuration.contains("kind: ClusterConfiguration"),
                "{cluster_configuration}"
            );
            assert!(
                cluster_configuration.contains("apiVersion: kubeadm.k8s.io/v1beta4"),
                "{cluster_configuration}"
            );
            let kubelet_config =
                plane.get_json(&["configmap", "kubelet-config", "--namespace=kube-system"]);
            assert!(kubelet_config["data"]["kubelet"]
                .as_str()
                .expect("kubelet")
                .contains("kind: KubeletConfiguration"));
            let can_read = plane.kubectl(&[
                "auth",
                "can-i",
                "get",
                "configmap/kubeadm-config",
                "--namespace=kube-system",
                "--as=system:bootstrap:abcdef",
                "--as-group=system:bootstrappers:kubeadm:default-node-token",
            ]);
            assert_eq!(String::from_utf8_lossy(&can_read.stdout).trim(), "yes");

            // bootstrap-token: the token Secret with kubeadm's keys, and the RBAC.
            plane.init_phase(&["bootstrap-token"], &[]);
            let secret = plane.get_json(&[
                "secret",
                "bootstrap-token-abcdef",
                "--namespace=kube-system",
            ]);
            assert_eq!(secret["type"], "bootstrap.kubernetes.io/token");
            let field = |key: &str| {
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(secret["data"][key].as_str().unwrap_or_default())
                        .expect("base64"),
                )
                .expect("utf-8")
            };
            assert_eq!(field("token-id"), "abcdef");
            assert_eq!(field("token-secret"), "0123456789abcdef");
            assert_eq!(field("usage-bootstrap-signing"), "true");
            assert_eq!(
                field("auth-extra-groups"),
                "system:bootstrappers:kubeadm:default-node-token"
            );
            for binding in [
                "kubeadm:kubelet-bootstrap",
                "kubeadm:node-autoapprove-bootstrap",
                "kubeadm:node-autoapprove-certificate-rotation",
                "kubeadm:get-nodes",
            ] {
                plane.get_json(&["clusterrolebinding", binding]);
            }
            let can_create_csr = plane.kubectl(&[
                "auth",
                "can-i",
                "create",
                "certificatesigningrequests.certificates.k8s.io",
                "--as=system:bootstrap:abcdef",
                "--as-group=system:bootstrappers:kubeadm:default-node-token",
                "--as-group=system:bootstrappers",
            ]);
            assert_eq!(
                String::from_utf8_lossy(&can_create_csr.stdout).trim(),
                "yes"
            );
            assert_all_unchanged(
                "bootstrap-token",
                &plane.init_phase(&["bootstrap-token"], &[]),
            );

            // cluster-info: kube-controller-manager's bootstrapsigner signs it; bosun's verifier accepts the real
            // signature, and refuses it for a changed kubeconfig.
            let token = Token::parse(TOKEN).expect("token");
            let (kubeconfig, signature) = wait_for(
                "the bootstrapsigner's jws-kubeconfig-abcdef",
                READY_TIMEOUT,
                || {
                    let info =
                        plane.get_json(&["configmap", "cluster-info", "--namespace=kube-public"]);
                    let kubeconfig = info["data"]["kubeconfig"].as_str()?.to_owned();
                    let signature = info["data"]["jws-kubeconfig-abcdef"].as_str()?.to_owned();
                    Some((kubeconfig, signature))
                },
            );
            jws::verify_detached(kubeconfig.as_bytes(), &signature, &token)
                .expect("the controller manager's signature verifies");
            assert!(jws::verify_detached(
                kubeconfig.replace(NODE_IP, "10.250.0.3").as_bytes(),
                &signature,
                &token
            )
            .is_err());
            assert_eq!(
                jws::sign_detached(kubeconfig.as_bytes(), &token),
                signature,
                "bosun signs as the bootstrapsigner does"
            );
            // Its CA is the root's CA, and the pin matches OpenSSL's view of ca.crt (unit-tested against OpenSSL).
            let info =
                bosun_phases::cluster::parse_kubeconfig(kubeconfig.as_bytes(), "cluster-info")
                    .expect("cluster-info kubeconfig");
            assert_eq!(info.clusters[0].name, "");
            assert_eq!(
                info.clusters[0].cluster.server,
                format!("https://{NODE_IP}:6443")
            );
            let ca = base64::engine::general_purpose::STANDARD
                .decode(
                    info.clusters[0]
                        .cluster
                        .certificate_authority_data
                        .as_deref()
                        .expect("CA data"),
                )
                .expect("base64 CA");
            let pins = pin::pins_of_bundle("cluster-info", &ca).expect("pins");
            pin::check_bundle(
                "ca.crt",
                &plane.root.read("/etc/kubernetes/pki/ca.crt"),
                &pins,
            )
            .expect("same CA");
            // Anonymous users may read it, and nothing else.
            // Anonymous users (curl without credentials) may read it, and nothing else.
            let anonymous_get = |path: &str| {
                let output = plane.sandbox.output(
                    "curl",
                    &[
                        "--silent",
                        "--insecure",
                        "--max-time",
                        "10",
                        "--write-out",
                        "\n%{http_code}",
                        &format!("https://{NODE_IP}:6443{path}"),
                    ],
                );
                let text = String::from_utf8_lossy(&output.stdout).into_owned();
                let (body, code) = text.rsplit_once('\n').expect("status line");
                (code.to_owned(), body.to_owned())
            };
            let (code, body) =
                anonymous_get("/api/v1/namespaces/kube-public/configmaps/cluster-info");
            assert_eq!(code, "200", "{body}");
            let anonymous: serde_json::Value = serde_json::from_str(&body).expect("ConfigMap JSON");
            assert_eq!(
                anonymous["data"]["kubeconfig"].as_str(),
                Some(kubeconfig.as_str())
            );
            let (code, body) =
                anonymous_get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config");
            assert_eq!(
                code, "403",
                "anonymous users must not read kubeadm-config: {body}"
            );

            // upload-certs: decryptable with the certificate key, owned by a 2h token.
            plane.init_phase(&["upload-certs"], &["--upload-certs"]);
            let certs = plane.get_json(&["secret", "kubeadm-certs", "--namespace=kube-system"]);
            for (key, node_path) in [
                ("ca.crt", "/etc/kubernetes/pki/ca.crt"),
                ("ca.key", "/etc/kubernetes/pki/ca.key"),
                ("sa.key", "/etc/kubernetes/pki/sa.key"),
                ("sa.pub", "/etc/kubernetes/pki/sa.pub"),
                (
                    "front-proxy-ca.key",
                    "/etc/kubernetes/pki/front-proxy-ca.key",
                ),
                ("etcd-ca.crt", "/etc/kubernetes/pki/etcd/ca.crt"),
                ("etcd-ca.key", "/etc/kubernetes/pki/etcd/ca.key"),
            ] {
                assert_decrypts(plane, &certs, key, node_path);
            }
            let owner = &certs["metadata"]["ownerReferences"][0];
            assert_eq!(owner["kind"], "Secret");
            let owner_name = owner["name"].as_str().expect("owner name");
            let owner_secret = plane.get_json(&["secret", owner_name, "--namespace=kube-system"]);
            assert_eq!(owner["uid"], owner_secret["metadata"]["uid"]);
            assert_all_unchanged(
                "upload-certs",
                &plane.init_phase(&["upload-certs"], &["--upload-certs"]),
            );

            // mark-control-plane on a Node the test registers (there is no kubelet in tier 1).
            let node = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "tier1-cluster"},
                "spec": {"taints": [{"key": "example.com/keep", "effect": "NoExecute"}]},
            })
            .to_string();
            let node_file = plane.root.path().join("node.json");
            std::fs::write(&node_file, node).expect("write node.json");
            assert_ok(
                "kubectl create node",
                &plane.kubectl(&["create", "-f", node_file.to_str().expect("utf-8")]),
            );
            plane.init_phase(&["mark-control-plane"], &[]);
            let marked = plane.get_json(&["node", "tier1-cluster"]);
            assert_eq!(
                marked["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
                ""
            );
            assert_eq!(
                marked["metadata"]["labels"]
                    ["node.kubernetes.io/exclude-from-external-load-balancers"],
                ""
            );
            let taints: Vec<String> = marked["spec"]["taints"]
                .as_array()
                .expect("taints")
                .iter()
                .map(|taint| {
                    format!(
                        "{}:{}",
                        taint["key"].as_str().unwrap_or_default(),
                        taint["effect"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            assert!(
                taints.contains(&"node-role.kubernetes.io/control-plane:NoSchedule".to_owned()),
                "{taints:?}"
            );
            assert!(
                taints.contains(&"example.com/keep:NoExecute".to_owned()),
                "other taints are kept: {taints:?}"
            );
            assert_all_unchanged(
                "mark-control-plane",
                &plane.init_phase(&["mark-control-plane"], &[]),
            );

            // addons: applied, valid for the real API server, idempotent.
            plane.init_phase(&["addon"], &[]);
            assert_all_unchanged("addon", &plane.init_phase(&["addon"], &[]));
            let daemon_set =
                plane.get_json(&["daemonset", "kube-proxy", "--namespace=kube-system"]);
            assert_eq!(
                daemon_set["spec"]["updateStrategy"]["type"],
                "RollingUpdate"
            );
            assert_eq!(
                daemon_set["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
                1
            );
            assert_eq!(
                daemon_set["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/os"],
                "linux"
            );
            let deployment = plane.get_json(&["deployment", "coredns", "--namespace=kube-system"]);
            assert_eq!(deployment["spec"]["replicas"], 2);
            let service = plane.get_json(&["service", "kube-dns", "--namespace=kube-system"]);
            assert_eq!(service["spec"]["clusterIP"], "10.96.0.10");
            // A changed rollout budget is an update of the DaemonSet, nothing else.
            let changed = plane.init_phase(
                &["addon", "kube-proxy"],
                &["--kube-proxy-max-unavailable", "25%"],
            );
            let updated: Vec<&(String, String)> = changed
                .iter()
                .filter(|(_, outcome)| outcome != "unchanged")
                .collect();
            assert_eq!(
                updated,
                [&(
                    "cluster: DaemonSet kube-system/kube-proxy".to_owned(),
                    "updated".to_owned()
                )]
            );

            // wait-control-plane: tier 1 has no kubelet, so the phase must give up after the configured kubelet
            // timeout and name the kubelet and the URL it polled.
            let impatient = plane.root.path().join("bosun-impatient.yaml");
            let text = std::fs::read_to_string(&plane.config)
                .expect("read bosun.yaml")
                .replacen(
                    "kind: InitConfiguration\n",
                    "kind: InitConfiguration\ntimeouts:\n  kubeletHealthCheck: 3s\n",
                    1,
                );
            std::fs::write(&impatient, text).expect("write bosun-impatient.yaml");
            let waited = plane.bosun(&[
                "init",
                "phase",
                "wait-control-plane",
                "--config",
                impatient.to_str().expect("utf-8"),
            ]);
            assert!(!waited.status.success(), "no kubelet runs in tier 1");
            let text = String::from_utf8_lossy(&waited.stderr);
            assert!(
                text.contains("kubelet is not healthy after 3s")
                    && text.contains("http://127.0.0.1:10248/healthz")
                    && text.contains("hint:"),
                "{text}"
            );

            // show-join-command: the printed pin is the CA's.
            let config = plane.config.to_str().expect("utf-8").to_owned();
            let shown = plane.bosun(&["init", "phase", "show-join-command", "--config", &config]);
            assert_ok("bosun init phase show-join-command", &shown);
            // The join commands are data: on stdout, apart from the log.
            let text = String::from_utf8_lossy(&shown.stdout).into_owned();
            assert!(
                text.contains(&format!("bosun join {NODE_IP}:6443 --token {TOKEN}")),
                "{text}"
            );
            assert!(text.contains(&pins[0].to_string()), "{text}");
        },
    );
}
