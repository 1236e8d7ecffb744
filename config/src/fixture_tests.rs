//! The example configurations of kubeadm's documentation (tests/fixtures/config/): each loads, defaults and
//! round-trips, each v1beta3 file means the same as its v1beta4 twin, and `migrate` turns one into the other.

use crate::{load, print, Config, HostFacts};

const FIXTURES: &[(&str, &str)] = &[
    (
        "single-node.v1beta3.yaml",
        include_str!("../../tests/fixtures/config/single-node.v1beta3.yaml"),
    ),
    (
        "single-node.v1beta4.yaml",
        include_str!("../../tests/fixtures/config/single-node.v1beta4.yaml"),
    ),
    (
        "ha-control-plane-endpoint.v1beta3.yaml",
        include_str!("../../tests/fixtures/config/ha-control-plane-endpoint.v1beta3.yaml"),
    ),
    (
        "ha-control-plane-endpoint.v1beta4.yaml",
        include_str!("../../tests/fixtures/config/ha-control-plane-endpoint.v1beta4.yaml"),
    ),
    (
        "external-etcd.v1beta3.yaml",
        include_str!("../../tests/fixtures/config/external-etcd.v1beta3.yaml"),
    ),
    (
        "external-etcd.v1beta4.yaml",
        include_str!("../../tests/fixtures/config/external-etcd.v1beta4.yaml"),
    ),
    (
        "dual-stack.v1beta3.yaml",
        include_str!("../../tests/fixtures/config/dual-stack.v1beta3.yaml"),
    ),
    (
        "dual-stack.v1beta4.yaml",
        include_str!("../../tests/fixtures/config/dual-stack.v1beta4.yaml"),
    ),
    (
        "extra-args-volumes.v1beta3.yaml",
        include_str!("../../tests/fixtures/config/extra-args-volumes.v1beta3.yaml"),
    ),
    (
        "extra-args-volumes.v1beta4.yaml",
        include_str!("../../tests/fixtures/config/extra-args-volumes.v1beta4.yaml"),
    ),
    (
        "patches.v1beta3.yaml",
        include_str!("../../tests/fixtures/config/patches.v1beta3.yaml"),
    ),
    (
        "patches.v1beta4.yaml",
        include_str!("../../tests/fixtures/config/patches.v1beta4.yaml"),
    ),
    (
        "kubelet-cgroup-driver.v1beta3.yaml",
        include_str!("../../tests/fixtures/config/kubelet-cgroup-driver.v1beta3.yaml"),
    ),
    (
        "kubelet-cgroup-driver.v1beta4.yaml",
        include_str!("../../tests/fixtures/config/kubelet-cgroup-driver.v1beta4.yaml"),
    ),
    (
        "join.v1beta3.yaml",
        include_str!("../../tests/fixtures/config/join.v1beta3.yaml"),
    ),
    (
        "join.v1beta4.yaml",
        include_str!("../../tests/fixtures/config/join.v1beta4.yaml"),
    ),
    (
        "v1beta4-all-kinds.yaml",
        include_str!("../../tests/fixtures/config/v1beta4-all-kinds.yaml"),
    ),
];

fn facts() -> HostFacts {
    HostFacts {
        hostname: "CP-1".to_owned(),
        default_address: Some("10.0.0.11".parse().expect("ip")),
    }
}

fn fixture(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(fixture, _)| *fixture == name)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

fn load_fixture(name: &str) -> Config {
    load(name, fixture(name), &facts())
        .unwrap_or_else(|error| panic!("{name} does not load: {error:#?}"))
}

/// The meaning of a configuration, without where it came from.
fn meaning(mut config: Config) -> Config {
    config.source = crate::Source::default();
    config.kubelet.from_user = false;
    config.kube_proxy.from_user = false;
    config.kubelet.cgroup_driver_set_by_user = false;
    config
}

fn assert_same_meaning(left: Config, right: Config, context: &str) {
    let (left, right) = (meaning(left), meaning(right));
    if left != right {
        panic!(
            "{context}: the configurations differ\n--- left\n{}\n--- right\n{}",
            print::full(&left).expect("print"),
            print::full(&right).expect("print")
        );
    }
}

#[test]
fn every_documented_example_loads_with_defaults() {
    for (name, _) in FIXTURES {
        let config = load_fixture(name);
        assert_eq!(config.cluster.kubernetes_version, "v1.35.4", "{name}");
        assert!(!config.cluster.certificates_dir.is_empty(), "{name}");
        assert!(config.init.timeouts.is_some(), "{name}");
        assert!(!config.kubelet.cluster_dns.is_empty(), "{name}");
    }
}

#[test]
fn every_example_round_trips_through_its_v1beta4_rendering() {
    for (name, _) in FIXTURES {
        let config = load_fixture(name);
        let printed = print::full(&config).expect("print");
        let reloaded = load("printed", &printed, &facts()).unwrap_or_else(|error| {
            panic!("the rendering of {name} does not load: {error}\n{printed}")
        });
        assert_same_meaning(config.clone(), reloaded.clone(), name);
        assert_eq!(
            print::full(&reloaded).expect("print"),
            printed,
            "{name}: printing is stable"
        );
    }
}

#[test]
fn each_v1beta3_example_means_the_same_as_its_v1beta4_twin() {
    for (name, _) in FIXTURES
        .iter()
        .filter(|(name, _)| name.ends_with(".v1beta3.yaml"))
    {
        let twin = name.replace(".v1beta3.", ".v1beta4.");
        assert_same_meaning(load_fixture(name), load_fixture(&twin), name);
    }
}

#[test]
fn migrating_each_v1beta3_example_gives_its_v1beta4_twin() {
    for (name, text) in FIXTURES
        .iter()
        .filter(|(name, _)| name.ends_with(".v1beta3.yaml"))
    {
        let migrated = print::migrate(name, text, &facts()).expect("migrate");
        assert!(!migrated.contains("v1beta3"), "{name}: {migrated}");
        let loaded = load("migrated", &migrated, &facts()).unwrap_or_else(|error| {
            panic!("the migration of {name} does not load: {error}\n{migrated}")
        });
        assert!(!loaded.source.has_v1beta3());
        let twin = name.replace(".v1beta3.", ".v1beta4.");
        assert_same_meaning(loaded, load_fixture(&twin), name);
    }
}

#[test]
fn v1beta3_maps_become_sorted_lists_and_timeouts_move() {
    let config = load_fixture("extra-args-volumes.v1beta3.yaml");
    let names: Vec<&str> = config
        .cluster
        .api_server
        .extra_args
        .iter()
        .map(|arg| arg.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "anonymous-auth",
            "audit-log-path",
            "enable-admission-plugins"
        ]
    );
    let timeouts = config.init.timeouts.expect("timeouts");
    assert_eq!(
        timeouts
            .control_plane_component_health_check
            .map(|timeout| timeout.to_string())
            .as_deref(),
        Some("6m0s")
    );
    let join = load_fixture("join.v1beta3.yaml").join.expect("join");
    assert_eq!(
        join.timeouts
            .and_then(|timeouts| timeouts.discovery)
            .map(|timeout| timeout.to_string())
            .as_deref(),
        Some("10m0s")
    );
}

#[test]
fn the_documented_values_arrive_where_phases_read_them() {
    let ha = load_fixture("ha-control-plane-endpoint.v1beta4.yaml");
    assert_eq!(
        ha.control_plane_endpoint_url().expect("url"),
        "https://k8s-api.example.com:6443"
    );
    assert_eq!(
        ha.local_api_endpoint_url().expect("url"),
        "https://10.0.0.11:6443"
    );
    let dual = load_fixture("dual-stack.v1beta4.yaml");
    assert_eq!(dual.service_subnets().expect("subnets").len(), 2);
    assert_eq!(
        dual.dns_service_ip().expect("dns").to_string(),
        "10.96.0.10"
    );
    assert_eq!(
        dual.kube_proxy.cluster_cidr,
        "10.244.0.0/16,2001:db8:42:0::/56"
    );
    let external = load_fixture("external-etcd.v1beta4.yaml");
    assert_eq!(
        external.external_etcd().expect("external").endpoints.len(),
        3
    );
    assert!(external.cluster.etcd.local.is_none());
    let kubelet = load_fixture("kubelet-cgroup-driver.v1beta4.yaml");
    assert_eq!(kubelet.kubelet.cgroup_driver, "cgroupfs");
    assert!(kubelet.kubelet.cgroup_driver_set_by_user);
    assert!(kubelet.kubelet.rest.contains_key("evictionHard"));
    assert_eq!(kubelet.kube_proxy.mode, "ipvs");
    let single = load_fixture("single-node.v1beta4.yaml");
    assert_eq!(
        single.init.node_registration.taints.as_ref().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        single
            .init
            .node_registration
            .taints
            .as_ref()
            .expect("taints")[0]
            .key,
        "kubeadmNode"
    );
    let join = load_fixture("join.v1beta4.yaml").join.expect("join");
    assert_eq!(
        join.discovery.tls_bootstrap_token,
        "abcdef.0123456789abcdef"
    );
    assert_eq!(
        join.node_registration.taints.as_ref().expect("taints")[0].key,
        "node-role.kubernetes.io/control-plane"
    );
}

#[test]
fn every_printed_default_loads_back() {
    use print::{Component, DefaultsKind};
    for kind in [
        DefaultsKind::Init,
        DefaultsKind::Join,
        DefaultsKind::Reset,
        DefaultsKind::Upgrade,
    ] {
        let text = print::defaults(
            kind,
            &[Component::Kubelet, Component::KubeProxy]
                [..if kind == DefaultsKind::Init { 2 } else { 0 }],
        )
        .expect("defaults");
        load("defaults", &text, &facts())
            .unwrap_or_else(|error| panic!("{kind:?} defaults do not load: {error}\n{text}"));
    }
}

/// A cheap, deterministic stand-in for the fuzz target (fuzz/fuzz_targets/config_load.rs) that runs on stable in
/// every test run: small edits of every fixture never panic, errors always name the file, and whatever loads
/// round-trips.
#[test]
fn edited_fixtures_never_panic_and_whatever_loads_round_trips() {
    let edits: [fn(&str, usize) -> String; 5] = [
        |text, at| format!("{}{}", &text[..at], &text[at + 1..]),
        |text, at| format!("{}:{}", &text[..at], &text[at..]),
        |text, at| format!("{}\n{}", &text[..at], &text[at..]),
        |text, at| format!("{}[{}", &text[..at], &text[at..]),
        |text, at| format!("{}  {}", &text[..at], &text[at..]),
    ];
    let mut loaded = 0;
    let mut rejected = 0;
    for (name, text) in FIXTURES {
        let boundaries: Vec<usize> = (0..text.len())
            .filter(|at| text.is_char_boundary(*at) && text.is_char_boundary(at + 1))
            .step_by(11)
            .collect();
        for at in boundaries {
            for edit in &edits {
                let edited = edit(text, at);
                match load("edited.yaml", &edited, &facts()) {
                    Ok(config) => {
                        loaded += 1;
                        let printed = print::full(&config).expect("print");
                        let reloaded =
                            load("printed", &printed, &facts()).unwrap_or_else(|error| {
                                panic!("{name} edited at {at}: {error}\n{edited}")
                            });
                        assert_same_meaning(config, reloaded, name);
                    }
                    Err(error) => {
                        rejected += 1;
                        assert!(!error.problems.is_empty());
                        for problem in &error.problems {
                            assert_eq!(problem.file, "edited.yaml");
                            assert!(!problem.message.is_empty());
                        }
                    }
                }
            }
        }
    }
    assert!(
        loaded > 100 && rejected > 100,
        "loaded {loaded}, rejected {rejected}"
    );
}
