//! `bosun config` and configuration errors through the real binary: every kind of bad input gets one sentence
//! naming file, document, field, line and column, exit code 3 (invalid config), and changes nothing on the host.

use std::path::PathBuf;

use crate::support::*;

const INVALID_CONFIG: i32 = 3;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
        .display()
        .to_string()
}

/// A bad-input case: the fixture, what the error line must say, and the hint it must give (if any).
struct BadInput {
    fixture: &'static str,
    says: &'static [&'static str],
    hint: Option<&'static str>,
}

const BAD_INPUTS: &[BadInput] = &[
    BadInput {
        fixture: "malformed-yaml.yaml",
        says: &["document 1", "line 5 column 1", "the YAML is malformed"],
        hint: None,
    },
    BadInput {
        fixture: "wrong-kind.yaml",
        says: &[
            "document 1 (ClusterConfig)",
            "field kind",
            "line 2 column 7",
            "unknown kind \"ClusterConfig\"",
        ],
        hint: Some("did you mean `ClusterConfiguration`?"),
    },
    BadInput {
        fixture: "wrong-api-version.yaml",
        says: &[
            "field apiVersion",
            "line 1 column 13",
            "\"kubeadm.k8s.io/v1beta2\" is not supported for ClusterConfiguration",
        ],
        hint: Some("bosun reads kubeadm.k8s.io/v1beta3 and kubeadm.k8s.io/v1beta4"),
    },
    BadInput {
        fixture: "misspelt-field.yaml",
        says: &[
            "document 2 (ClusterConfiguration)",
            "field networking.podSubnt",
            "line 7 column 3",
            "unknown field `podSubnt`",
        ],
        hint: Some("did you mean `podSubnet`?"),
    },
    BadInput {
        fixture: "misspelt-kubelet-field.yaml",
        says: &[
            "(KubeletConfiguration)",
            "field maxPod",
            "line 4 column 1",
            "unknown field `maxPod`",
        ],
        hint: Some("did you mean `maxPods`?"),
    },
    BadInput {
        fixture: "invalid-cidr.yaml",
        says: &[
            "field networking.podSubnet",
            "line 4 column 14",
            "\"10.244.0.0/33\" is not a valid CIDR",
        ],
        hint: None,
    },
    BadInput {
        fixture: "overlapping-subnets.yaml",
        says: &[
            "field networking.podSubnet",
            "line 5 column 14",
            "pod subnet 10.96.0.0/16 overlaps the service subnet 10.96.0.0/12",
        ],
        hint: Some("choose a pod subnet outside the service subnet"),
    },
    BadInput {
        fixture: "small-service-subnet.yaml",
        says: &[
            "field networking.serviceSubnet",
            "line 4 column 18",
            "10.96.0.0/30 has fewer than 10 addresses",
        ],
        hint: Some("use a /28 or larger"),
    },
    BadInput {
        fixture: "large-service-subnet.yaml",
        says: &[
            "field networking.serviceSubnet",
            "10.0.0.0/8 has more than 20 host bits",
        ],
        hint: Some("use a /12 or smaller"),
    },
    BadInput {
        fixture: "map-extra-args-in-v1beta4.yaml",
        says: &[
            "field apiServer.extraArgs",
            "line 5 column 5",
            "invalid type: map, expected a sequence",
        ],
        hint: Some("in kubeadm.k8s.io/v1beta4 extraArgs is a list of name/value pairs"),
    },
    BadInput {
        fixture: "list-extra-args-in-v1beta3.yaml",
        says: &[
            "field apiServer.extraArgs",
            "line 5 column 3",
            "invalid type: sequence, expected a map",
        ],
        hint: Some("in kubeadm.k8s.io/v1beta3 extraArgs is a map"),
    },
    BadInput {
        fixture: "local-and-external-etcd.yaml",
        says: &[
            "field etcd",
            "line 4 column 3",
            "both etcd.local and etcd.external are set",
        ],
        hint: Some("remove one of them"),
    },
    BadInput {
        fixture: "bad-token.yaml",
        says: &[
            "(InitConfiguration)",
            "field bootstrapTokens[0].token",
            "line 4 column 10",
            "[a-z0-9]{6}.[a-z0-9]{16}",
        ],
        hint: Some("bosun token generate"),
    },
    BadInput {
        fixture: "bad-version.yaml",
        says: &[
            "field kubernetesVersion",
            "line 3 column 20",
            "\"stable-1\" is not a Kubernetes version",
        ],
        hint: Some("write a release such as v1.35.4"),
    },
    BadInput {
        fixture: "bad-encryption-algorithm.yaml",
        says: &[
            "field encryptionAlgorithm",
            "line 3 column 22",
            "\"RSA-1024\" is not a supported algorithm",
        ],
        hint: Some("RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384"),
    },
    BadInput {
        fixture: "bad-duration.yaml",
        says: &[
            "field timeouts.kubeletHealthCheck",
            "line 4 column 23",
            "duration \"4 minutes\" has an unknown unit",
        ],
        hint: None,
    },
    BadInput {
        fixture: "duplicate-kind.yaml",
        says: &[
            "document 2 (ClusterConfiguration)",
            "line 4",
            "ClusterConfiguration is given twice (first in document 1)",
        ],
        hint: Some("merge the two documents"),
    },
    BadInput {
        fixture: "reset-in-v1beta3.yaml",
        says: &[
            "(ResetConfiguration)",
            "ResetConfiguration does not exist in kubeadm.k8s.io/v1beta3",
        ],
        hint: Some("write apiVersion: kubeadm.k8s.io/v1beta4"),
    },
    BadInput {
        fixture: "no-kind.yaml",
        says: &["document 1", "line 1 column 1", "the document has no kind"],
        hint: Some("every document starts with apiVersion and kind"),
    },
];

/// The `error:` line (exactly one), and the `hint:` line if any.
fn error_and_hint(text: &str) -> (String, Option<String>) {
    let errors: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "exactly one error line expected:\n{text}");
    let hint = text
        .lines()
        .find_map(|line| line.strip_prefix("hint: "))
        .map(str::to_owned);
    (errors[0].to_owned(), hint)
}

#[track_caller]
fn assert_reports(case: &BadInput, output: &std::process::Output) {
    assert_exit(output, INVALID_CONFIG);
    let text = stderr(output);
    assert!(!text.contains("panicked"), "{text}");
    let (error, hint) = error_and_hint(&text);
    let path = fixture(&format!("bad/{}", case.fixture));
    assert!(
        error.starts_with(&format!("error: {path}, ")),
        "{}: the error names the file: {error}",
        case.fixture
    );
    for part in case.says {
        assert!(
            error.contains(part),
            "{}: {part:?} missing from {error:?}",
            case.fixture
        );
    }
    if let Some(wanted) = case.hint {
        let hint = hint.unwrap_or_else(|| panic!("{}: no hint in\n{text}", case.fixture));
        assert!(
            hint.contains(wanted),
            "{}: hint {hint:?} lacks {wanted:?}",
            case.fixture
        );
    }
}

#[test]
fn every_kind_of_bad_input_is_one_located_sentence_with_exit_code_3() {
    for case in BAD_INPUTS {
        let path = fixture(&format!("bad/{}", case.fixture));
        let output = bosun(&["config", "validate", "--config", &path]);
        assert_reports(case, &output);
        assert!(
            stdout(&output).is_empty(),
            "{}: stdout carries only data",
            case.fixture
        );
    }
}

#[test]
fn bad_input_to_init_changes_nothing_on_the_host() {
    for case in BAD_INPUTS {
        let root = TempRoot::new();
        let before = root.snapshot();
        let path = fixture(&format!("bad/{}", case.fixture));
        let output = bosun_in(&root, &["init", "--config", &path]);
        assert_reports(case, &output);
        assert_eq!(
            root.snapshot(),
            before,
            "{}: init with a bad config changed the root",
            case.fixture
        );
        assert!(
            root.listing().is_empty(),
            "{}: {:?}",
            case.fixture,
            root.listing()
        );
    }
}

#[test]
fn a_missing_configuration_file_is_named() {
    let missing = fixture("does-not-exist.yaml");
    let output = bosun(&["config", "validate", "--config", &missing]);
    assert_exit(&output, INVALID_CONFIG);
    let (error, hint) = error_and_hint(&stderr(&output));
    assert!(error.contains(&missing), "{error}");
    assert!(error.contains("no such file or directory"), "{error}");
    assert!(!error.contains("os error"), "{error}");
    assert!(hint.is_some());
    let root = TempRoot::new();
    let output = bosun_in(&root, &["init", "--config", &missing]);
    assert_exit(&output, INVALID_CONFIG);
    assert!(root.listing().is_empty());
}

#[test]
fn validate_accepts_every_documented_example_and_reports_json() {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&directory).expect("fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|extension| extension.to_str()) != Some("yaml") {
            continue;
        }
        let output = bosun(&[
            "config",
            "validate",
            "--config",
            path.to_str().expect("utf-8"),
        ]);
        assert_success(&output);
        assert!(
            stderr(&output).contains("is valid ("),
            "{}",
            stderr(&output)
        );
        checked += 1;
    }
    assert!(checked >= 17, "only {checked} fixtures");

    let output = bosun(&[
        "config",
        "validate",
        "--config",
        &fixture("dual-stack.v1beta4.yaml"),
        "-o",
        "json",
    ]);
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(report["valid"], true);
    assert_eq!(report["documents"][0]["kind"], "ClusterConfiguration");
    assert_eq!(report["warnings"][0]["field"], "networking.podSubnet");

    let output = bosun(&[
        "config",
        "validate",
        "--config",
        &fixture("bad/misspelt-field.yaml"),
        "-o",
        "json",
    ]);
    assert_exit(&output, INVALID_CONFIG);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(report["valid"], false);
    assert_eq!(report["problems"][0]["line"], 7);
    assert_eq!(report["problems"][0]["column"], 3);
    assert_eq!(report["problems"][0]["hint"], "did you mean `podSubnet`?");
}

#[test]
fn printed_defaults_validate_again() {
    let directory = tempfile::tempdir().expect("tempdir");
    for (which, components) in [
        (
            "init-defaults",
            Some("KubeletConfiguration,KubeProxyConfiguration"),
        ),
        ("init-defaults", None),
        ("join-defaults", None),
        ("reset-defaults", None),
        ("upgrade-defaults", None),
    ] {
        let mut arguments = vec!["config", "print", which];
        if let Some(components) = components {
            arguments.extend(["--component-configs", components]);
        }
        let output = bosun(&arguments);
        assert_success(&output);
        let text = stdout(&output);
        assert!(
            text.starts_with("apiVersion: kubeadm.k8s.io/v1beta4\n")
                || text.contains("\napiVersion: kubeadm.k8s.io/v1beta4\n"),
            "{text}"
        );
        if components.is_some() {
            assert!(text.contains("kind: KubeletConfiguration\n"), "{text}");
            assert!(text.contains("cgroupDriver: systemd\n"), "{text}");
            assert!(text.contains("kind: KubeProxyConfiguration\n"), "{text}");
        }
        let path = directory.path().join(format!("{which}.yaml"));
        std::fs::write(&path, &text).expect("write");
        let output = bosun(&[
            "config",
            "validate",
            "--config",
            path.to_str().expect("utf-8"),
        ]);
        assert_success(&output);
    }
    let output = bosun(&[
        "config",
        "print",
        "init-defaults",
        "--component-configs",
        "KubeletConfig",
    ]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("KubeletConfiguration and/or KubeProxyConfiguration"));
}

#[test]
fn the_init_defaults_are_kubeadms_shape() {
    let output = bosun(&["config", "print", "init-defaults"]);
    assert_success(&output);
    let text = stdout(&output);
    for line in [
        "  token: abcdef.0123456789abcdef\n",
        "  ttl: 24h0m0s\n",
        "  - system:bootstrappers:kubeadm:default-node-token\n",
        "  advertiseAddress: 1.2.3.4\n",
        "  bindPort: 6443\n",
        "  criSocket: unix:///var/run/containerd/containerd.sock\n",
        "  taints: null\n",
        "  controlPlaneComponentHealthCheck: 4m0s\n",
        "certificatesDir: /etc/kubernetes/pki\n",
        "imageRepository: registry.k8s.io\n",
        "    dataDir: /var/lib/etcd\n",
        "  serviceSubnet: 10.96.0.0/12\n",
        "  dnsDomain: cluster.local\n",
        "encryptionAlgorithm: RSA-2048\n",
        "caCertificateValidityPeriod: 87600h0m0s\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
}

#[test]
fn migrate_writes_a_v1beta4_file_that_validates() {
    let directory = tempfile::tempdir().expect("tempdir");
    let new = directory.path().join("new.yaml");
    let old = fixture("extra-args-volumes.v1beta3.yaml");
    let output = bosun(&[
        "config",
        "migrate",
        "--old-config",
        &old,
        "--new-config",
        new.to_str().expect("utf-8"),
    ]);
    assert_success(&output);
    assert!(stdout(&output).is_empty());
    let text = std::fs::read_to_string(&new).expect("new config");
    assert!(!text.contains("v1beta3"), "{text}");
    assert!(
        text.contains("  controlPlaneComponentHealthCheck: 6m0s\n"),
        "{text}"
    );
    assert!(
        text.contains("  - name: anonymous-auth\n    value: 'false'\n"),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&new)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let output = bosun(&[
        "config",
        "validate",
        "--config",
        new.to_str().expect("utf-8"),
    ]);
    assert_success(&output);
    // Without --new-config the result goes to stdout, and is the same.
    let output = bosun(&["config", "migrate", "--old-config", &old]);
    assert_success(&output);
    assert_eq!(stdout(&output), text);
    // A bad old config is reported like any other.
    let output = bosun(&[
        "config",
        "migrate",
        "--old-config",
        &fixture("bad/invalid-cidr.yaml"),
    ]);
    assert_exit(&output, INVALID_CONFIG);
}

/// kubeadm's own `config print` output: bosun prints the same documents (apart from the documented differences),
/// and loads whatever kubeadm prints, component configurations included.
#[test]
fn config_print_matches_real_kubeadm() {
    let Some(binaries) = crate::harness::binaries::Binaries::require(
        "config::config_print_matches_real_kubeadm",
        &["kubeadm"],
    ) else {
        return;
    };
    let kubeadm = binaries.path("kubeadm");
    let directory = tempfile::tempdir().expect("tempdir");
    let print = |program: &std::path::Path, arguments: &[&str]| {
        let output = std::process::Command::new(program)
            .args(arguments)
            .output()
            .expect("run");
        assert!(
            output.status.success(),
            "{program:?} {arguments:?}: {}",
            stderr(&output)
        );
        stdout(&output)
    };
    let bosun_binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_bosun"));
    for which in [
        "init-defaults",
        "join-defaults",
        "reset-defaults",
        "upgrade-defaults",
    ] {
        let theirs = print(&kubeadm, &["config", "print", which]);
        let ours = print(&bosun_binary, &["config", "print", which]);
        // Documented differences: kubeadm prints its own version as x.y.0, bosun its pinned release; kubeadm's
        // join defaults carry this machine's hostname where bosun prints the placeholder `node`.
        let normalise = |text: &str| -> String {
            text.lines()
                .filter(|line| !line.starts_with("kubernetesVersion: "))
                .map(|line| {
                    if which == "join-defaults" && line.starts_with("  name: ") {
                        "  name: <node>"
                    } else {
                        line
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            normalise(&ours),
            normalise(&theirs),
            "config print {which} differs from kubeadm's"
        );
        let path = directory.path().join(format!("kubeadm-{which}.yaml"));
        std::fs::write(&path, &theirs).expect("write");
        let output = bosun(&[
            "config",
            "validate",
            "--config",
            path.to_str().expect("utf-8"),
        ]);
        assert_success(&output);
    }
    let theirs = print(
        &kubeadm,
        &[
            "config",
            "print",
            "init-defaults",
            "--component-configs",
            "KubeletConfiguration,KubeProxyConfiguration",
        ],
    );
    let path = directory.path().join("kubeadm-components.yaml");
    std::fs::write(&path, &theirs).expect("write");
    let output = bosun(&[
        "config",
        "validate",
        "--config",
        path.to_str().expect("utf-8"),
    ]);
    assert_success(&output);
    // kubeadm's migrate output of a v1beta3 fixture loads in bosun too.
    let old = fixture("extra-args-volumes.v1beta3.yaml");
    let migrated = print(&kubeadm, &["config", "migrate", "--old-config", &old]);
    let path = directory.path().join("kubeadm-migrated.yaml");
    std::fs::write(&path, &migrated).expect("write");
    let output = bosun(&[
        "config",
        "validate",
        "--config",
        path.to_str().expect("utf-8"),
    ]);
    assert_success(&output);
}
