//! kube-proxy rollouts and `bosun addon history|status|rollback` against a real control plane (tier 1,
//! docs/testing.md): real kube-apiserver, kube-controller-manager and scheduler, whose DaemonSet controller writes
//! the ControllerRevisions, even without nodes. The results are compared with the real kubectl's
//! `rollout history`.
//!
//! CoreDNS, a Deployment, rolls back through its ReplicaSets as `kubectl rollout undo deployment` does.
//!
//! Tier 1 has no kubelet: with no nodes a rollout is complete at once; a Node object registered with kubectl gets a
//! kube-proxy pod that stays Pending, so following that rollout must time out and name the node and the pod.

use std::process::Output;

use serde_json::Value;

use crate::cluster::{assert_ok, with_control_plane, Plane};

/// The (level, text) of every message event of a `-o json` run.
fn messages(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["event"] == "message")
        .map(|event| event["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The text of every progress event of a `-o json` run.
fn progress(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["event"] == "progress")
        .map(|event| {
            format!(
                "{} ({}/{})",
                event["text"].as_str().unwrap_or_default(),
                event["done"],
                event["total"]
            )
        })
        .collect()
}

/// A copy of the plane's configuration with `imageRepository` set, so the kube-proxy image changes.
fn config_with_repository(plane: &Plane<'_>, file: &str, repository: &str) -> String {
    let text = std::fs::read_to_string(&plane.config)
        .expect("read bosun.yaml")
        .replacen(
            "kind: ClusterConfiguration\n",
            &format!("kind: ClusterConfiguration\nimageRepository: {repository}\n"),
            1,
        );
    let path = plane.root.path().join(file);
    std::fs::write(&path, text).expect("write the changed configuration");
    path.to_str().expect("utf-8").to_owned()
}

/// `bosun -o json init phase addon kube-proxy --config <config> <extra…>`.
fn kube_proxy_phase(plane: &Plane<'_>, config: &str, extra: &[&str]) -> Output {
    let mut arguments = vec![
        "-o",
        "json",
        "init",
        "phase",
        "addon",
        "kube-proxy",
        "--config",
        config,
    ];
    arguments.extend_from_slice(extra);
    plane.bosun(&arguments)
}

fn image(daemon_set: &Value) -> String {
    daemon_set["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn daemon_set(plane: &Plane<'_>) -> Value {
    plane.get_json(&["daemonset", "kube-proxy", "--namespace=kube-system"])
}

/// The revision numbers kubectl's `rollout history` lists.
fn kubectl_revisions(plane: &Plane<'_>) -> Vec<i64> {
    let output = plane.kubectl(&[
        "rollout",
        "history",
        "daemonset",
        "kube-proxy",
        "--namespace=kube-system",
    ]);
    assert_ok("kubectl rollout history", &output);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect()
}

/// kubectl's view of one revision: the DaemonSet with that revision's template.
fn kubectl_revision_template(plane: &Plane<'_>, revision: i64) -> Value {
    let output = plane.kubectl(&[
        "rollout",
        "history",
        "daemonset",
        "kube-proxy",
        "--namespace=kube-system",
        &format!("--revision={revision}"),
        "-o",
        "json",
    ]);
    assert_ok("kubectl rollout history --revision -o json", &output);
    let document: Value = serde_json::from_slice(&output.stdout).expect("kubectl JSON");
    document["spec"]["template"].clone()
}

fn history(plane: &Plane<'_>) -> Value {
    history_of(plane, "kube-proxy")
}

fn history_of(plane: &Plane<'_>, addon: &str) -> Value {
    let output = plane.bosun(&["-o", "json", "addon", "history", addon]);
    assert_ok(&format!("bosun addon history {addon} -o json"), &output);
    serde_json::from_slice(&output.stdout).expect("history JSON")
}

fn revision_numbers(history: &Value) -> Vec<i64> {
    history["revisions"]
        .as_array()
        .expect("revisions")
        .iter()
        .filter_map(|revision| revision["revision"].as_i64())
        .collect()
}

fn current_revision(history: &Value) -> Option<i64> {
    history["revisions"]
        .as_array()?
        .iter()
        .find(|revision| revision["current"] == true)?["revision"]
        .as_i64()
}

#[test]
fn kube_proxy_rolls_out_and_rolls_back_through_its_controller_revisions_on_a_real_control_plane() {
    with_control_plane(
        "addon::kube_proxy_rolls_out_and_rolls_back_through_its_controller_revisions_on_a_real_control_plane",
        "tier1-addon",
        |plane| {
            let original = plane.config.to_str().expect("utf-8").to_owned();
            // Revision 1: created, and with no nodes the rollout is complete at once.
            let created = kube_proxy_phase(plane, &original, &[]);
            assert_ok("bosun init phase addon kube-proxy", &created);
            let said = messages(&created);
            assert!(
                said.iter().any(|text| text.starts_with(
                    "DaemonSet kube-system/kube-proxy rolled out at revision 1: 0 of 0 nodes"
                )),
                "{said:?}"
            );
            let first_image = image(&daemon_set(plane));
            assert!(
                first_image.starts_with("registry.k8s.io/kube-proxy:"),
                "{first_image}"
            );
            // Nothing changed: nothing is followed.
            let again = kube_proxy_phase(plane, &original, &[]);
            assert_ok("bosun init phase addon kube-proxy (again)", &again);
            assert!(
                !messages(&again).iter().any(|text| text.contains("rolled out")),
                "an unchanged DaemonSet is not waited for: {:?}",
                messages(&again)
            );

            // Revision 2: another image repository changes the template.
            let mirrored = config_with_repository(plane, "bosun-mirror.yaml", "mirror.example/k8s");
            let changed = kube_proxy_phase(plane, &mirrored, &[]);
            assert_ok("bosun init phase addon kube-proxy (new image)", &changed);
            assert!(
                messages(&changed)
                    .iter()
                    .any(|text| text.starts_with("DaemonSet kube-system/kube-proxy rolled out at revision 2")),
                "{:?}",
                messages(&changed)
            );
            let second_image = image(&daemon_set(plane));
            assert!(
                second_image.starts_with("mirror.example/k8s/kube-proxy:"),
                "{second_image}"
            );
            assert_eq!(kubectl_revisions(plane), [1, 2]);
            let recorded = history(plane);
            assert_eq!(revision_numbers(&recorded), [1, 2]);
            assert_eq!(current_revision(&recorded), Some(2));
            assert_eq!(recorded["revisions"][0]["images"][0], first_image.as_str());
            assert_eq!(recorded["revisions"][1]["images"][0], second_image.as_str());
            let table = plane.bosun(&["addon", "history", "kube-proxy"]);
            assert_ok("bosun addon history kube-proxy", &table);
            let table = String::from_utf8_lossy(&table.stdout).into_owned();
            assert!(table.contains("REVISION  CHANGE-CAUSE"), "{table}");
            assert!(table.contains("<none>"), "{table}");
            let revision_one = kubectl_revision_template(plane, 1);

            // A revision that does not exist is refused, and nothing changes.
            let generation = daemon_set(plane)["metadata"]["generation"].clone();
            let refused = plane.bosun(&["addon", "rollback", "kube-proxy", "--to-revision", "9"]);
            assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
            let text = stderr(&refused);
            assert!(
                text.contains("DaemonSet kube-system/kube-proxy has no revision 9 (its revisions: 1, 2)")
                    && text.contains("hint: `bosun addon history kube-proxy`"),
                "{text}"
            );
            assert_eq!(daemon_set(plane)["metadata"]["generation"], generation);

            // A dry run names the revision and shows the template diff, and changes nothing.
            let planned = plane.bosun(&["addon", "rollback", "kube-proxy", "--dry-run"]);
            assert_ok("bosun addon rollback kube-proxy --dry-run", &planned);
            let text = stderr(&planned);
            eprintln!("addon: dry run said:\n{text}");
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            assert!(
                text.contains(&format!(
                    "would restore revision 1 of DaemonSet kube-system/kube-proxy ({first_image}):"
                )) && lines
                    .iter()
                    .any(|line| line.starts_with('-') && line.contains(&second_image))
                    && lines
                        .iter()
                        .any(|line| line.starts_with('+') && line.contains(&first_image)),
                "{text}"
            );
            assert_eq!(daemon_set(plane)["metadata"]["generation"], generation);

            // The default rollback restores revision 1's template, exactly as kubectl records it, and the controller
            // renumbers it as revision 3 (kubectl's behaviour).
            let rolled = plane.bosun(&["addon", "rollback", "kube-proxy"]);
            assert_ok("bosun addon rollback kube-proxy", &rolled);
            let restored = daemon_set(plane);
            assert_eq!(image(&restored), first_image);
            assert_eq!(restored["spec"]["template"], revision_one);
            let said = stderr(&rolled);
            eprintln!("addon: rollback said:\n{said}");
            assert!(
                said.contains("[rollback] updated cluster: DaemonSet kube-system/kube-proxy (restored revision 1 (was revision 2)")
                    && said.contains("[rollback] DaemonSet kube-system/kube-proxy rolled out at revision 3"),
                "{said}"
            );
            assert_eq!(kubectl_revisions(plane), [2, 3]);
            assert_eq!(current_revision(&history(plane)), Some(3));
            // Rolling back to what already runs does nothing.
            let kept = plane.bosun(&["addon", "rollback", "kube-proxy", "--to-revision", "3"]);
            assert_ok("bosun addon rollback kube-proxy --to-revision 3", &kept);
            assert!(
                stderr(&kept).contains("current template already matches revision 3"),
                "{}",
                stderr(&kept)
            );
            assert_eq!(
                daemon_set(plane)["metadata"]["generation"],
                restored["metadata"]["generation"]
            );

            // A node without a kubelet: its kube-proxy pod never becomes ready, so following a rollout must time out
            // and name the node and the pod.
            let node = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "ghost-1", "labels": {"kubernetes.io/os": "linux"}},
            })
            .to_string();
            let node_file = plane.root.path().join("ghost-node.json");
            std::fs::write(&node_file, node).expect("write ghost-node.json");
            assert_ok(
                "kubectl create node ghost-1",
                &plane.kubectl(&["create", "-f", node_file.to_str().expect("utf-8")]),
            );
            // The DaemonSet controller makes a pod for it (bound or not: there is no kubelet to run it either way).
            crate::harness::wait_for("a kube-proxy pod for ghost-1", std::time::Duration::from_secs(60), || {
                let pods = plane.get_json(&["pods", "--namespace=kube-system", "--selector=k8s-app=kube-proxy"]);
                (!pods["items"].as_array()?.is_empty()).then_some(())
            });
            let impatient = kube_proxy_phase(
                plane,
                &mirrored,
                &["--kube-proxy-rollout-timeout", "8s"],
            );
            assert_eq!(impatient.status.code(), Some(5), "{}", stderr(&impatient));
            let text = stderr(&impatient);
            eprintln!("addon: the follow timed out as it should:\n{text}");
            assert!(
                text.contains("DaemonSet kube-system/kube-proxy did not finish rolling out within 8s")
                    && text.contains("node ghost-1 (pod kube-proxy-")
                    && text.contains("Pending")
                    && text.contains("hint: `bosun addon status kube-proxy`"),
                "{text}"
            );
            // The status names the same node, with the new pod (the old one was replaced on the update).
            let status = plane.bosun(&["-o", "json", "addon", "status", "kube-proxy"]);
            assert_ok("bosun addon status kube-proxy -o json", &status);
            let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
            assert_eq!(status["complete"], false);
            assert_eq!(status["desired"], 1);
            let ghost = &status["nodes"][0];
            assert_eq!(ghost["node"], "ghost-1");
            assert_eq!(ghost["ready"], false);
            assert!(ghost["reason"].as_str().is_some_and(|reason| reason.contains("Pending")), "{ghost}");
            let shown_pod = ghost["pod"].as_str().expect("a pod on ghost-1");
            assert!(text.contains(&format!("pod {shown_pod}")), "{text}");
            let table = plane.bosun(&["addon", "status", "kube-proxy"]);
            assert_ok("bosun addon status kube-proxy", &table);
            let table = String::from_utf8_lossy(&table.stdout).into_owned();
            eprintln!("addon: status:\n{table}");
            assert!(table.contains("NODE") && table.contains("ghost-1"), "{table}");
        },
    );
}

/// A copy of the plane's configuration with `dns.imageTag` set, so the CoreDNS image changes.
fn config_with_dns_tag(plane: &Plane<'_>, file: &str, tag: &str) -> String {
    let text = std::fs::read_to_string(&plane.config)
        .expect("read bosun.yaml")
        .replacen(
            "kind: ClusterConfiguration\n",
            &format!("kind: ClusterConfiguration\ndns:\n  imageTag: {tag}\n"),
            1,
        );
    let path = plane.root.path().join(file);
    std::fs::write(&path, text).expect("write the changed configuration");
    path.to_str().expect("utf-8").to_owned()
}

/// A pod template without the `pod-template-hash` label the Deployment controller adds to ReplicaSets.
fn without_hash(template: &Value) -> Value {
    let mut template = template.clone();
    if let Some(Value::Object(labels)) = template.pointer_mut("/metadata/labels") {
        labels.remove("pod-template-hash");
    }
    template
}

/// Waits up to a minute until `bosun addon history coredns -o json` satisfies `wanted`.
fn wait_for_coredns_history(plane: &Plane<'_>, what: &str, wanted: impl Fn(&Value) -> bool) {
    crate::harness::wait_until(what, std::time::Duration::from_secs(60), || {
        let recorded = plane.bosun(&["-o", "json", "addon", "history", "coredns"]);
        let recorded: Value =
            serde_json::from_slice(&recorded.stdout).map_err(|error| error.to_string())?;
        if wanted(&recorded) {
            Ok(())
        } else {
            Err(recorded.to_string())
        }
    });
}

#[test]
fn coredns_rolls_back_through_its_replica_sets_on_a_real_control_plane() {
    with_control_plane(
        "addon::coredns_rolls_back_through_its_replica_sets_on_a_real_control_plane",
        "tier1-coredns",
        |plane| {
            let deployment =
                || plane.get_json(&["deployment", "coredns", "--namespace=kube-system"]);
            // Revision 1 from the defaults, revision 2 from another image tag. init does not wait for CoreDNS (its
            // pods need a pod network, as with kubeadm), so neither run follows a rollout.
            plane.init_phase(&["addon", "coredns"], &[]);
            let first_image = image(&deployment());
            // Revision 1 exists only once the Deployment controller has made its ReplicaSet; a template changed
            // before that (a loaded machine) would become revision 1 itself.
            wait_for_coredns_history(plane, "coredns revision 1", |history| {
                revision_numbers(history) == [1]
            });
            let tagged = config_with_dns_tag(plane, "bosun-dns.yaml", "v1.11.3");
            let changed = plane.bosun(&[
                "-o", "json", "init", "phase", "addon", "coredns", "--config", &tagged,
            ]);
            assert_ok("bosun init phase addon coredns (new tag)", &changed);
            assert!(
                !messages(&changed)
                    .iter()
                    .any(|text| text.contains("rolled out")),
                "{:?}",
                messages(&changed)
            );
            assert_eq!(
                image(&deployment()),
                "registry.k8s.io/coredns/coredns:v1.11.3"
            );
            wait_for_coredns_history(plane, "coredns revision 2", |history| {
                revision_numbers(history) == [1, 2] && current_revision(history) == Some(2)
            });
            let kubectl_history = plane.kubectl(&[
                "rollout",
                "history",
                "deployment",
                "coredns",
                "--namespace=kube-system",
                "--revision=1",
                "-o",
                "json",
            ]);
            assert_ok(
                "kubectl rollout history deployment --revision 1",
                &kubectl_history,
            );
            let revision_one: Value =
                serde_json::from_slice(&kubectl_history.stdout).expect("kubectl JSON");
            let revision_one = without_hash(&revision_one["spec"]["template"]);

            let refused = plane.bosun(&["addon", "rollback", "coredns", "--to-revision", "9"]);
            assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
            assert!(
                stderr(&refused).contains(
                    "Deployment kube-system/coredns has no revision 9 (its revisions: 1, 2)"
                ),
                "{}",
                stderr(&refused)
            );

            // Without nodes CoreDNS never becomes available: restore without following.
            let rolled = plane.bosun(&["addon", "rollback", "coredns", "--timeout", "0s"]);
            assert_ok("bosun addon rollback coredns --timeout 0s", &rolled);
            assert!(
                stderr(&rolled).contains(&format!(
                    "restored revision 1 (was revision 2): {first_image}"
                )),
                "{}",
                stderr(&rolled)
            );
            let restored = deployment();
            assert_eq!(image(&restored), first_image);
            assert_eq!(restored["spec"]["template"], revision_one);
            crate::harness::wait_until(
                "coredns revision 3",
                std::time::Duration::from_secs(60),
                || {
                    let recorded = history_of(plane, "coredns");
                    if revision_numbers(&recorded) == [2, 3]
                        && current_revision(&recorded) == Some(3)
                    {
                        Ok(())
                    } else {
                        Err(recorded.to_string())
                    }
                },
            );

            // The status lists the replicas and why they do not run; a followed rollback names them on timeout.
            let status = plane.bosun(&["-o", "json", "addon", "status", "coredns"]);
            assert_ok("bosun addon status coredns -o json", &status);
            let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
            assert_eq!(status["kind"], "Deployment");
            assert_eq!(status["desired"], 2);
            assert_eq!(status["complete"], false);
            let followed = plane.bosun(&["addon", "rollback", "coredns", "--timeout", "5s"]);
            assert_eq!(followed.status.code(), Some(5), "{}", stderr(&followed));
            let text = stderr(&followed);
            eprintln!("addon: the coredns follow timed out as it should:\n{text}");
            assert!(
                text.contains(
                    "Deployment kube-system/coredns did not finish rolling out within 5s"
                ) && text.contains("pod coredns-")
                    && text.contains("Pending"),
                "{text}"
            );
            assert_eq!(
                image(&deployment()),
                "registry.k8s.io/coredns/coredns:v1.11.3"
            );
        },
    );
}

/// The images of the kube-proxy pods on a tier-2 node, by pod name.
fn kube_proxy_pods(
    node: &crate::harness::node::Node,
    binaries: &crate::harness::binaries::Binaries,
) -> Vec<(String, String)> {
    let pods = crate::tier2::kubectl_json(
        node,
        binaries,
        &[
            "get",
            "pods",
            "--namespace=kube-system",
            "--selector=k8s-app=kube-proxy",
        ],
    )
    .expect("kube-proxy pods");
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pod| {
            (
                pod["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                pod["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// Tier 2 (a real node: kubelet, containerd, runc): init follows kube-proxy's first rollout until its pod runs;
/// an image change replaces the pod, reported when the new one is available; a rollback replaces it again.
#[test]
fn kube_proxy_rolls_out_pod_by_pod_on_a_real_node_and_rolls_back() {
    use crate::harness::binaries::Binaries;
    use crate::harness::node::{Node, NodeNetwork};
    use crate::tier2::{bosun, node_config, prepare_runtime, TIER2};

    let Some(binaries) = Binaries::require(
        "addon::kube_proxy_rolls_out_pod_by_pod_on_a_real_node_and_rolls_back",
        TIER2,
    ) else {
        return;
    };
    let version = crate::tier1::built_version(&binaries);
    let node = Node::start("tier2-rollout", NodeNetwork::Alone);
    let config_path = "/etc/bosun-tier2/kubeadm.yaml";
    let config = node_config(&version, &node);
    node.write(config_path, config.as_bytes());
    prepare_runtime(&node, &binaries, config_path);

    let init = bosun(
        &node,
        &binaries,
        &[
            "-o",
            "json",
            "init",
            "--config",
            config_path,
            "--ignore-preflight-errors=SystemVerification",
        ],
    );
    assert_ok("bosun init", &init);
    let node_name = node.name().to_owned();
    let said = messages(&init);
    assert!(
        said.iter().any(|text| text.starts_with(
            "DaemonSet kube-system/kube-proxy rolled out at revision 1: 1 of 1 nodes updated and available"
        )),
        "init follows kube-proxy until it runs on the node: {said:?}"
    );
    let before = kube_proxy_pods(&node, &binaries);
    assert_eq!(before.len(), 1, "{before:?}");
    let (old_pod, old_image) = before[0].clone();

    // The same image under another repository name, so the kubelet finds it without a registry.
    let repository = "mirror.example/k8s";
    let new_image = old_image.replacen(
        old_image
            .rsplit_once("/kube-proxy:")
            .expect("an image name")
            .0,
        repository,
        1,
    );
    let tagged = std::process::Command::new("ctr")
        .arg("--address")
        .arg(node.path("/run/containerd/containerd.sock"))
        .args([
            "--namespace",
            "k8s.io",
            "images",
            "tag",
            &old_image,
            &new_image,
        ])
        .output()
        .expect("run ctr");
    assert_ok("ctr images tag", &tagged);
    let mirror_path = "/etc/bosun-tier2/mirror.yaml";
    node.write(
        mirror_path,
        config
            .replacen(
                "kind: ClusterConfiguration\n",
                &format!("kind: ClusterConfiguration\nimageRepository: {repository}\n"),
                1,
            )
            .as_bytes(),
    );
    let changed = bosun(
        &node,
        &binaries,
        &[
            "-o",
            "json",
            "init",
            "phase",
            "addon",
            "kube-proxy",
            "--config",
            mirror_path,
        ],
    );
    assert_ok("bosun init phase addon kube-proxy (new image)", &changed);
    let said = messages(&changed);
    eprintln!(
        "addon: tier-2 rollout said: {said:#?}\nprogress: {:#?}",
        progress(&changed)
    );
    let after = kube_proxy_pods(&node, &binaries);
    assert_eq!(after.len(), 1, "{after:?}");
    let (new_pod, running_image) = after[0].clone();
    assert_ne!(new_pod, old_pod, "the rolling update replaces the pod");
    assert_eq!(running_image, new_image);
    let node_line = format!(
        "DaemonSet kube-system/kube-proxy: node {node_name} updated and available (pod {new_pod})"
    );
    let node_done = said.iter().position(|text| text == &node_line);
    let rolled_out = said.iter().position(|text| {
        text.starts_with("DaemonSet kube-system/kube-proxy rolled out at revision 2: 1 of 1 nodes")
    });
    assert!(
        node_done.is_some() && rolled_out.is_some() && node_done < rolled_out,
        "the node is reported when its new pod is available, then the rollout: {said:?}"
    );

    // The rollback replaces the pod again, with the first image, as revision 3.
    let rolled = bosun(
        &node,
        &binaries,
        &["-o", "json", "addon", "rollback", "kube-proxy"],
    );
    assert_ok("bosun addon rollback kube-proxy", &rolled);
    let said = messages(&rolled);
    let restored = kube_proxy_pods(&node, &binaries);
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_ne!(restored[0].0, new_pod);
    assert_eq!(restored[0].1, old_image);
    assert!(
        said.iter().any(|text| text
            == &format!(
                "DaemonSet kube-system/kube-proxy: node {node_name} updated and available (pod {})",
                restored[0].0
            ))
            && said.iter().any(|text| text.starts_with(
                "DaemonSet kube-system/kube-proxy rolled out at revision 3: 1 of 1 nodes"
            )),
        "{said:?}"
    );
}

/// Bad input is refused before any cluster is contacted, in one sentence with a hint.
#[test]
fn addon_commands_refuse_bad_input_without_a_cluster() {
    use crate::support::{assert_exit, bosun_in, TempRoot};

    let root = TempRoot::new();
    let missing = bosun_in(&root, &["addon", "status", "kube-proxy"]);
    assert_exit(&missing, 1);
    let text = stderr(&missing);
    assert!(
        text.contains("error: the kubeconfig /etc/kubernetes/admin.conf does not exist")
            && text.contains(
                "hint: run this on a control-plane node after `bosun init`, or pass --kubeconfig"
            ),
        "{text}"
    );
    let unknown = bosun_in(&root, &["addon", "history", "flannel"]);
    assert_exit(&unknown, 2);
    assert!(
        stderr(&unknown).contains("invalid value 'flannel'"),
        "{}",
        stderr(&unknown)
    );
    let timeout = bosun_in(
        &root,
        &["addon", "rollback", "kube-proxy", "--timeout", "soon"],
    );
    assert_exit(&timeout, 2);
    assert!(
        stderr(&timeout).contains("--timeout \"soon\""),
        "{}",
        stderr(&timeout)
    );
    let negative = bosun_in(
        &root,
        &["addon", "rollback", "kube-proxy", "--to-revision", "0"],
    );
    assert_exit(&negative, 2);
    // An API server that does not answer: exit code 6, naming the server.
    root.write(
        "/etc/kubernetes/admin.conf",
        b"apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\n\
          contexts:\n- name: k\n  context:\n    cluster: k\n    user: u\ncurrent-context: k\nusers:\n- name: u\n  user:\n    token: t\n",
    );
    let unreachable = bosun_in(&root, &["addon", "history", "coredns"]);
    assert_exit(&unreachable, 6);
    assert!(
        stderr(&unreachable).contains("cannot reach the API server https://127.0.0.1:1"),
        "{}",
        stderr(&unreachable)
    );
    assert!(
        !root.join("/var/lib/bosun/journal.json").exists(),
        "nothing ran"
    );
}
