use std::path::Path;
use std::time::{Duration, SystemTime};

use bosun_pki::table::cert_spec;
use bosun_pki::{issue, AltNames, CertRequest, Certificate, KeyAlgorithm, PrivateKey, Usage};

use super::expiration::tabwriter;
use super::renew::{annotate, health_url, reissue, resolve, RESTART_ANNOTATION};
use super::timer::{cron_file, parse_cron};
use super::*;

#[test]
fn durations_accept_days_and_go_units() {
    assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(
        parse_duration("2d12h"),
        Ok(Duration::from_secs(2 * 86_400 + 12 * 3600))
    );
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert!(parse_duration("30").is_err());
    assert!(parse_duration("3w").is_err());
    assert!(parse_duration("").is_err());
}

#[test]
fn tabwriter_aligns_each_table_separately_like_go() {
    let lines: Vec<String> = [
        "NAME\tEXPIRES\tX",
        "a\tlonger value\tno      ",
        "",
        "CA\tE\tY",
        "ca\tb\tyes     ",
    ]
    .iter()
    .map(|line| (*line).to_owned())
    .collect();
    let text = tabwriter(&lines, 10, 3);
    let expected = "NAME      EXPIRES        X\n\
                    a         longer value   no      \n\
                    \n\
                    CA        E         Y\n\
                    ca        b         yes     \n";
    assert_eq!(text, expected);
}

#[test]
fn a_missing_row_widens_the_first_column() {
    let lines: Vec<String> = ["CERTIFICATE\tEXPIRES\tZ", "!MISSING! super-admin.conf\t\t"]
        .iter()
        .map(|line| (*line).to_owned())
        .collect();
    let text = tabwriter(&lines, 10, 3);
    assert_eq!(
        text,
        "CERTIFICATE                  EXPIRES   Z\n!MISSING! super-admin.conf             \n"
    );
}

fn ca(now: SystemTime) -> (Certificate, PrivateKey) {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let request = CertRequest {
        name: "ca".to_owned(),
        common_name: "kubernetes".to_owned(),
        organization: Vec::new(),
        alt_names: AltNames {
            dns_names: vec!["kubernetes".to_owned()],
            ip_addresses: Vec::new(),
        },
        usages: Vec::new(),
    };
    let certificate =
        issue::issue_ca(&request, &key, now, Duration::from_secs(86_400 * 3650)).expect("ca");
    (certificate, key)
}

#[test]
fn reissue_keeps_the_old_subject_sans_and_usages_with_a_new_key_and_serial() {
    let now = SystemTime::now();
    let (ca_certificate, ca_key) = ca(now);
    let old_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let old_request = CertRequest {
        name: "apiserver-kubelet-client".to_owned(),
        common_name: "kube-apiserver-kubelet-client".to_owned(),
        // A pre-1.29 subject: the old O must survive renewal.
        organization: vec!["system:masters".to_owned()],
        alt_names: AltNames {
            dns_names: vec!["a.example".to_owned()],
            ip_addresses: vec!["10.0.0.1".parse().expect("ip")],
        },
        usages: vec![Usage::ClientAuth],
    };
    let old = issue::issue_leaf(
        &old_request,
        &old_key,
        &ca_certificate,
        &ca_key,
        now,
        Duration::from_secs(3600),
    )
    .expect("old");
    let later = now + Duration::from_secs(120);
    let (renewed, key) = reissue(
        "apiserver-kubelet-client",
        &old,
        &ca_certificate,
        &ca_key,
        KeyAlgorithm::Rsa2048,
        Duration::from_secs(8760 * 3600),
        later,
    )
    .expect("renew");
    assert_eq!(renewed.common_name, old.common_name);
    assert_eq!(renewed.organization, vec!["system:masters"]);
    assert_eq!(renewed.alt_names, old.alt_names);
    assert_eq!(renewed.usages, old.usages);
    assert_ne!(renewed.serial, old.serial);
    assert_ne!(renewed.public_key_der(), old.public_key_der());
    assert!(key.is_rsa());
    renewed.check_key(&key, "key").expect("the key matches");
    renewed
        .check_signed_by(&ca_certificate)
        .expect("signed by the CA");
    let lifetime = renewed.not_after - time::OffsetDateTime::from(later);
    assert!(
        (lifetime.whole_seconds() - 8760 * 3600).abs() <= 1,
        "{lifetime}"
    );
    let backdate = time::OffsetDateTime::from(later) - renewed.not_before;
    assert!((backdate.whole_seconds() - 300).abs() <= 1, "{backdate}");
}

#[test]
fn names_resolve_in_kubeadm_order_and_refuse_cas_and_kubelet_conf() {
    let (targets, explicit) =
        resolve(&["admin.conf".to_owned(), "apiserver".to_owned()], false).expect("resolve");
    assert!(explicit);
    let names: Vec<&str> = targets.iter().map(|target| target.name()).collect();
    assert_eq!(names, vec!["apiserver", "admin.conf"]);
    let (all, explicit) = resolve(&["all".to_owned()], true).expect("all");
    assert!(!explicit);
    assert_eq!(all.len(), 3 + 4, "without etcd: 3 leaves and 4 kubeconfigs");
    let error = resolve(&["kubelet.conf".to_owned()], false).expect_err("kubelet.conf");
    assert!(error.to_string().contains("rotates its own"), "{error}");
    let error = resolve(&["ca".to_owned()], false).expect_err("ca");
    assert!(error.to_string().contains("CAs are not renewed"), "{error}");
}

#[test]
fn the_restart_annotation_goes_into_pod_metadata_and_is_replaced_next_time() {
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-scheduler\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n    - kube-scheduler\n    - --bind-address=127.0.0.1\n    name: kube-scheduler\n";
    let once = annotate(manifest, "m.yaml", "2026-01-01T00:00:00Z").expect("annotate");
    let twice = annotate(&once, "m.yaml", "2026-01-02T00:00:00Z").expect("annotate");
    let value = bosun_config::yaml::value_from_str(&twice).expect("yaml");
    assert_eq!(
        value["metadata"]["annotations"][RESTART_ANNOTATION].as_str(),
        Some("2026-01-02T00:00:00Z")
    );
    assert_eq!(value["metadata"]["name"].as_str(), Some("kube-scheduler"));
    assert_eq!(
        value["spec"]["containers"][0]["command"][1].as_str(),
        Some("--bind-address=127.0.0.1")
    );
    assert!(annotate("- a list", "m.yaml", "x").is_err());
}

#[test]
fn health_urls_come_from_the_manifest_flags() {
    let apiserver = "    - --advertise-address=10.0.0.5\n    - --secure-port=6443\n";
    assert_eq!(
        health_url("kube-apiserver", apiserver).as_deref(),
        Some("https://10.0.0.5:6443/livez")
    );
    let scheduler = "    - --bind-address=127.0.0.1\n    - --secure-port=10300\n";
    assert_eq!(
        health_url("kube-scheduler", scheduler).as_deref(),
        Some("https://127.0.0.1:10300/livez")
    );
    assert_eq!(
        health_url("kube-controller-manager", "").as_deref(),
        Some("https://127.0.0.1:10257/healthz")
    );
    let etcd = "    - --listen-metrics-urls=http://127.0.0.1:2381\n";
    assert_eq!(
        health_url("etcd", etcd).as_deref(),
        Some("http://127.0.0.1:2381/health")
    );
}

#[test]
fn cron_entries_keep_their_time_when_read_back() {
    let text = cron_file("/usr/local/bin/bosun", 7, 23);
    let (minute, hour, command) = parse_cron(&text).expect("parse");
    assert_eq!((minute, hour), (7, 23));
    assert!(
        command.starts_with("/usr/local/bin/bosun certs renew all --if-expiring-within 30d"),
        "{command}"
    );
}

#[test]
fn certificate_keys_are_32_random_bytes_in_hex() {
    let first = certificate_key().expect("key");
    let second = certificate_key().expect("key");
    assert_eq!(first.len(), 64);
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(first, second);
}

#[test]
fn locations_follow_the_configuration_unless_overridden() {
    let config = bosun_config::defaults(&bosun_config::HostFacts {
        hostname: "node-1".to_owned(),
        default_address: Some("192.0.2.10".parse().expect("ip")),
    });
    let locations = Locations::new(&config, None, None);
    let apiserver = cert_spec("apiserver").expect("row");
    assert_eq!(
        locations.cert(apiserver),
        Path::new("/etc/kubernetes/pki/apiserver.crt")
    );
    let overridden = Locations::new(
        &config,
        Some(Path::new("/srv/pki")),
        Some(Path::new("/srv/kube")),
    );
    assert_eq!(
        overridden.key(apiserver),
        Path::new("/srv/pki/apiserver.key")
    );
}

#[test]
fn only_the_mirror_pod_with_the_new_annotation_and_running_containers_counts_as_restarted() {
    use super::renew::restarted_pod;
    use serde_json::json;
    let pod = |name: &str, component: &str, stamp: Option<&str>, state: serde_json::Value| {
        let mut annotations = json!({"kubernetes.io/config.mirror": "hash"});
        if let Some(stamp) = stamp {
            annotations[RESTART_ANNOTATION] = json!(stamp);
        }
        json!({
            "metadata": {"name": name, "labels": {"component": component}, "annotations": annotations},
            "status": {"containerStatuses": [{"name": component, "state": state}]}
        })
    };
    let running = json!({"running": {"startedAt": "2026-12-01T20:03:13Z"}});
    let new = "2026-12-01T20:03:03.5Z";
    // The old pod still runs (the old API server answers /livez): not restarted yet.
    let old = pod("kube-apiserver-n", "kube-apiserver", None, running.clone());
    let error = restarted_pod(std::slice::from_ref(&old), "kube-apiserver", new)
        .expect_err("the old pod is not the restarted one");
    assert!(error.contains("kube-apiserver-n is the old pod"), "{error}");
    // An earlier restart's stamp is old too.
    let earlier = pod(
        "kube-apiserver-n",
        "kube-apiserver",
        Some("2026-11-01T00:00:00Z"),
        running.clone(),
    );
    assert!(restarted_pod(&[earlier], "kube-apiserver", new).is_err());
    // The new pod whose container is still being created.
    let waiting = pod(
        "kube-apiserver-n",
        "kube-apiserver",
        Some(new),
        json!({"waiting": {"reason": "ContainerCreating"}}),
    );
    let error = restarted_pod(&[waiting], "kube-apiserver", new)
        .expect_err("a pod whose container waits is not restarted yet");
    assert!(error.contains("do not run yet"), "{error}");
    // Another component's pod, and a non-mirror pod with the label, do not count.
    let other = pod("etcd-n", "etcd", Some(new), running.clone());
    let mut not_mirror = pod(
        "kube-apiserver-x",
        "kube-apiserver",
        Some(new),
        running.clone(),
    );
    not_mirror["metadata"]["annotations"] = json!({});
    not_mirror["metadata"]["annotations"][RESTART_ANNOTATION] = json!(new);
    let error = restarted_pod(&[other, not_mirror], "kube-apiserver", new)
        .expect_err("neither is a mirror pod of kube-apiserver");
    assert_eq!(error, "no mirror pod of kube-apiserver");
    // The kubelet runs the new pod.
    let restarted = pod("kube-apiserver-n", "kube-apiserver", Some(new), running);
    assert_eq!(
        restarted_pod(&[restarted], "kube-apiserver", new).as_deref(),
        Ok("kube-apiserver-n")
    );
}
