use std::cell::RefCell;

use super::etcd::{ensure_member, promote_when_in_sync, EtcdMembership};
use super::*;
use crate::etcd::{EtcdError, Member};
use crate::host::Outcome;

const TOKEN: &str = "abcdef.0123456789abcdef";
const PIN: &str = "sha256:1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988";

fn worker_flags() -> JoinFlags {
    JoinFlags {
        api_server_endpoint: Some("10.0.0.10:6443".to_owned()),
        token: Some(TOKEN.to_owned()),
        discovery_token_ca_cert_hashes: vec![PIN.to_owned()],
        ..JoinFlags::default()
    }
}

#[test]
fn the_printed_worker_command_resolves_to_token_discovery() {
    let config = resolve(None, &worker_flags(), &test_facts()).expect("valid");
    let join = config.join.expect("join");
    let token = join.discovery.bootstrap_token.expect("token discovery");
    assert_eq!(token.token, TOKEN);
    assert_eq!(token.api_server_endpoint, "10.0.0.10:6443");
    assert_eq!(token.ca_cert_hashes, [PIN]);
    assert_eq!(join.discovery.tls_bootstrap_token, TOKEN);
    assert_eq!(join.node_registration.name, "worker-1");
    assert!(join.control_plane.is_none());
    assert_eq!(join.node_registration.taints, Some(Vec::new()));
}

#[test]
fn control_plane_flags_make_a_control_plane_join_with_its_taint() {
    let flags = JoinFlags {
        control_plane: true,
        certificate_key: Some("ab".repeat(32)),
        apiserver_advertise_address: Some("10.0.0.11".to_owned()),
        ..worker_flags()
    };
    let config = resolve(None, &flags, &test_facts()).expect("valid");
    let join = config.join.expect("join");
    let control_plane = join.control_plane.expect("control plane");
    assert_eq!(control_plane.certificate_key, "ab".repeat(32));
    assert_eq!(
        control_plane.local_api_endpoint.advertise_address,
        "10.0.0.11"
    );
    assert_eq!(control_plane.local_api_endpoint.bind_port, 6443);
    let taints = join.node_registration.taints.expect("taints");
    assert_eq!(taints.len(), 1);
    assert_eq!(taints[0].key, "node-role.kubernetes.io/control-plane");
}

#[test]
fn bad_flags_are_refused_naming_the_flag() {
    let cases: [(JoinFlags, &str); 4] = [
        (
            JoinFlags {
                token: Some("abcdef.short".to_owned()),
                ..worker_flags()
            },
            "--token",
        ),
        (
            JoinFlags {
                discovery_token_ca_cert_hashes: vec!["md5:00".to_owned()],
                ..worker_flags()
            },
            "--discovery-token-ca-cert-hash",
        ),
        (
            JoinFlags {
                certificate_key: Some("abc".to_owned()),
                ..worker_flags()
            },
            "--certificate-key",
        ),
        (
            JoinFlags {
                tls_bootstrap_token: Some("ABCDEF.0123456789abcdef".to_owned()),
                ..worker_flags()
            },
            "--tls-bootstrap-token",
        ),
    ];
    for (flags, flag) in cases {
        let error = resolve(None, &flags, &test_facts()).expect_err(flag);
        assert!(error.to_string().starts_with(flag), "{error}");
        assert!(error.hint().is_some(), "{flag} has no hint");
    }
}

#[test]
fn token_discovery_without_a_pin_is_refused_unless_skipped_on_purpose() {
    let flags = JoinFlags {
        discovery_token_ca_cert_hashes: Vec::new(),
        ..worker_flags()
    };
    let error = resolve(None, &flags, &test_facts()).expect_err("no pin");
    assert!(
        error
            .to_string()
            .starts_with("--discovery-token-ca-cert-hash"),
        "{error}"
    );
    assert!(error
        .hint()
        .is_some_and(|hint| hint.contains("--discovery-token-unsafe-skip-ca-verification")));
    let skipped = JoinFlags {
        discovery_token_unsafe_skip_ca_verification: true,
        ..flags
    };
    resolve(None, &skipped, &test_facts()).expect("skipping verification is allowed");
}

#[test]
fn a_discovery_file_replaces_token_discovery() {
    let flags = JoinFlags {
        discovery_file: Some("/etc/cluster-info.conf".to_owned()),
        tls_bootstrap_token: Some(TOKEN.to_owned()),
        ..JoinFlags::default()
    };
    let config = resolve(None, &flags, &test_facts()).expect("valid");
    let join = config.join.expect("join");
    assert!(join.discovery.bootstrap_token.is_none());
    assert_eq!(
        join.discovery.file.expect("file").kube_config_path,
        "/etc/cluster-info.conf"
    );
}

#[test]
fn a_configuration_file_is_the_base_and_flags_win() {
    let text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\n\
         discovery:\n  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: 10.0.0.10:6443\n\
         \x20   caCertHashes: [{PIN}]\n  timeout: 10s\nnodeRegistration:\n  name: from-file\n"
    );
    let file = bosun_config::load("join.yaml", &text, &test_facts()).expect("v1beta3 loads");
    let flags = JoinFlags {
        node_name: Some("from-flag".to_owned()),
        ..JoinFlags::default()
    };
    let config = resolve(Some(file), &flags, &test_facts()).expect("valid");
    let join = config.join.expect("join");
    assert_eq!(join.node_registration.name, "from-flag");
    assert_eq!(
        join.timeouts
            .and_then(|timeouts| timeouts.discovery)
            .map(|timeout| timeout.as_std()),
        Some(std::time::Duration::from_secs(10))
    );
    let init_only = bosun_config::load(
        "init.yaml",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n",
        &test_facts(),
    )
    .expect("loads");
    let error = resolve(Some(init_only), &JoinFlags::default(), &test_facts())
        .expect_err("no JoinConfiguration");
    assert!(
        error.to_string().contains("no JoinConfiguration"),
        "{error}"
    );
}

#[test]
fn phases_follow_kubeadm_and_every_need_is_made_earlier() {
    for control_plane in [false, true] {
        let flags = JoinFlags {
            control_plane,
            ..worker_flags()
        };
        let data = JoinData::new(
            resolve(None, &flags, &test_facts()).expect("valid"),
            test_facts(),
        );
        let workflow = workflow();
        let violations = workflow.ordering_violations(&data);
        assert!(violations.is_empty(), "{violations:#?}");
        let top: Vec<&str> = workflow
            .top_phases()
            .iter()
            .map(|phase| phase.name())
            .collect();
        assert_eq!(
            top,
            [
                "preflight",
                "discovery",
                "container-runtime",
                "control-plane-prepare",
                "kubelet-start",
                "etcd-join",
                "control-plane-join"
            ]
        );
    }
}

/// An etcd cluster in memory: the membership rules `etcd-join` relies on (a learner is promoted only once in sync).
struct Cluster {
    members: RefCell<Vec<Member>>,
    refusals_before_sync: RefCell<u32>,
    adds: RefCell<u32>,
}

impl EtcdMembership for Cluster {
    fn members(&self) -> Result<Vec<Member>, EtcdError> {
        Ok(self.members.borrow().clone())
    }

    fn add_learner(&self, peer_urls: &[String]) -> Result<Vec<Member>, EtcdError> {
        *self.adds.borrow_mut() += 1;
        self.members.borrow_mut().push(Member {
            id: 0x22,
            name: String::new(),
            peer_urls: peer_urls.to_vec(),
            client_urls: Vec::new(),
            is_learner: true,
        });
        self.members()
    }

    fn promote(&self, id: u64) -> Result<(), EtcdError> {
        let mut refusals = self.refusals_before_sync.borrow_mut();
        if *refusals > 0 {
            *refusals -= 1;
            return Err(EtcdError {
                endpoint: "https://10.0.0.10:2379".to_owned(),
                message:
                    "etcdserver: can only promote a learner member which is in sync with leader"
                        .to_owned(),
            });
        }
        for member in self.members.borrow_mut().iter_mut() {
            if member.id == id {
                member.is_learner = false;
            }
        }
        Ok(())
    }
}

fn one_member_cluster(refusals: u32) -> Cluster {
    Cluster {
        members: RefCell::new(vec![Member {
            id: 0x11,
            name: "cp-1".to_owned(),
            peer_urls: vec!["https://10.0.0.10:2380".to_owned()],
            client_urls: vec!["https://10.0.0.10:2379".to_owned()],
            is_learner: false,
        }]),
        refusals_before_sync: RefCell::new(refusals),
        adds: RefCell::new(0),
    }
}

#[test]
fn a_new_member_is_added_once_as_a_learner_and_promoted_when_in_sync() {
    let cluster = one_member_cluster(2);
    let first = ensure_member(&cluster, "cp-2", "https://10.0.0.11:2380").expect("added");
    assert_eq!(first.outcome, Outcome::Created);
    assert!(!first.voting && !first.started);
    let names: Vec<(&str, &str)> = first
        .initial_cluster
        .iter()
        .map(|member| (member.name.as_str(), member.peer_url.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("cp-1", "https://10.0.0.10:2380"),
            ("cp-2", "https://10.0.0.11:2380")
        ]
    );
    // A re-run finds the learner and adds nothing.
    let again = ensure_member(&cluster, "cp-2", "https://10.0.0.11:2380").expect("found");
    assert_eq!(again.outcome, Outcome::Unchanged);
    assert_eq!(*cluster.adds.borrow(), 1);
    let promoted = promote_when_in_sync(
        &cluster,
        first.id,
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(1),
    )
    .expect("promoted after two refusals");
    assert_eq!(promoted, Outcome::Updated);
    let voting = promote_when_in_sync(
        &cluster,
        first.id,
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(1),
    )
    .expect("already voting");
    assert_eq!(voting, Outcome::Unchanged);
}

#[test]
fn a_learner_that_never_catches_up_is_reported_with_etcds_reason() {
    let cluster = one_member_cluster(u32::MAX);
    let membership = ensure_member(&cluster, "cp-2", "https://10.0.0.11:2380").expect("added");
    let error = promote_when_in_sync(
        &cluster,
        membership.id,
        std::time::Duration::from_millis(20),
        std::time::Duration::from_millis(5),
    )
    .expect_err("never in sync");
    assert!(error.message.contains("did not catch up"), "{error}");
    assert!(error.message.contains("in sync with leader"), "{error}");
}
