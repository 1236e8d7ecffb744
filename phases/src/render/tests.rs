use super::golden::assert_golden;
use super::*;
use crate::host::memory::MemoryFiles;

fn sample_containerd(systemd_cgroup: bool) -> ContainerdConfig {
    ContainerdConfig {
        address: "/run/containerd/containerd.sock".to_owned(),
        root: None,
        state: None,
        opt_path: None,
        netns_mounts_under_state_dir: false,
        sandbox_image: "registry.k8s.io/pause:3.10.1".to_owned(),
        systemd_cgroup,
        snapshotter: "overlayfs".to_owned(),
        cni_bin_dir: "/opt/cni/bin".to_owned(),
        cni_conf_dir: "/etc/cni/net.d".to_owned(),
    }
}

#[test]
fn every_embedded_template_parses() {
    let templates = Templates::embedded();
    for template in Template::ALL {
        assert_eq!(templates.origin(template), TemplateOrigin::Embedded);
    }
}

#[test]
fn yaml_scalars_are_quoted_only_when_plain_would_change_meaning() {
    for plain in [
        "--advertise-address=192.168.0.10",
        "kube-apiserver",
        "/etc/kubernetes/pki",
        "192.168.0.10",
        "10.96.0.0/12",
        "fd00::1",
        "registry.k8s.io/etcd:3.6.6-0",
        "250m",
    ] {
        assert_eq!(yaml_scalar(plain), plain, "{plain} should stay plain");
    }
    for quoted in [
        "", "true", "No", "on", "null", "~", "10", "1.5", "0x1f", "1:20", "1_000", "a b", "x: y",
        "*", "#c", "key:", "-",
    ] {
        assert!(
            yaml_scalar(quoted).starts_with('"'),
            "{quoted:?} should be quoted, got {}",
            yaml_scalar(quoted)
        );
    }
}

#[test]
fn go_quote_escapes_like_go_percent_q() {
    assert_eq!(go_quote(r#"--a=1 --b="x\y""#), r#""--a=1 --b=\"x\\y\"""#);
    assert_eq!(go_quote("tab\there"), r#""tab\there""#);
}

#[test]
fn a_missing_variable_names_the_template_and_the_variable() {
    #[derive(serde::Serialize)]
    struct Partial {
        args: Vec<String>,
    }
    let templates = Templates::embedded();
    let error = templates
        .render(Template::KubeletDropIn, &Partial { args: Vec::new() })
        .expect_err("the drop-in needs more than args");
    let message = error.to_string();
    assert!(message.contains("10-kubeadm.conf"), "{message}");
    assert!(
        message.contains("`flags_env` not found in context"),
        "{message}"
    );
}

#[test]
fn an_override_that_uses_an_unknown_variable_is_reported_with_its_path() {
    let files = MemoryFiles::default();
    files
        .write_atomic(
            Path::new("/etc/bosun/templates/crictl.yaml"),
            b"runtime-endpoint: {{ socket }}\n",
            0o644,
        )
        .expect("write");
    let templates =
        Templates::with_overrides(&files, Path::new("/etc/bosun/templates")).expect("loads");
    assert_eq!(
        templates.origin(Template::Crictl),
        TemplateOrigin::Override(PathBuf::from("/etc/bosun/templates/crictl.yaml"))
    );
    assert_eq!(templates.origin(Template::Sysctl), TemplateOrigin::Embedded);
    let error = templates
        .render(
            Template::Crictl,
            &CrictlConfig {
                endpoint: "unix:///run/containerd/containerd.sock".to_owned(),
                timeout_seconds: 10,
            },
        )
        .expect_err("socket is not a variable of crictl.yaml");
    let message = error.to_string();
    assert!(
        message.contains("/etc/bosun/templates/crictl.yaml"),
        "{message}"
    );
    assert!(message.contains("socket"), "{message}");
    assert!(error.hint().is_some());
}

#[test]
fn an_override_with_a_misspelt_name_is_refused() {
    let files = MemoryFiles::default();
    files
        .write_atomic(Path::new("/templates/static-pods.yaml"), b"x", 0o644)
        .expect("write");
    let error =
        Templates::with_overrides(&files, Path::new("/templates")).expect_err("unknown file");
    assert!(
        error.to_string().contains("/templates/static-pods.yaml"),
        "{error}"
    );
    assert!(error.hint().unwrap_or_default().contains("static-pod.yaml"));
}

#[test]
fn an_override_that_is_not_valid_tera_names_the_file() {
    let error =
        Templates::from_texts(&[(Template::Sysctl, "{% for x in %}")]).expect_err("bad syntax");
    assert!(
        error.to_string().contains("sysctl-kubernetes.conf"),
        "{error}"
    );
}

#[test]
fn containerd_v2_config_renders_and_parses_as_toml() {
    let text = Templates::embedded()
        .render(Template::ContainerdV2, &sample_containerd(true))
        .expect("render");
    assert_golden("containerd-config-v2.toml", &text);
    let parsed: toml::Table = toml::from_str(&text).expect("valid TOML");
    let cri = &parsed["plugins"]["io.containerd.grpc.v1.cri"];
    assert_eq!(
        cri["sandbox_image"].as_str(),
        Some("registry.k8s.io/pause:3.10.1")
    );
    assert_eq!(
        cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"].as_bool(),
        Some(true)
    );
}

#[test]
fn containerd_v3_config_renders_and_parses_as_toml() {
    let mut context = sample_containerd(false);
    context.root = Some("/var/lib/containerd-2".to_owned());
    context.state = Some("/run/containerd-2".to_owned());
    context.opt_path = Some("/opt/containerd-2".to_owned());
    context.netns_mounts_under_state_dir = true;
    let text = Templates::embedded()
        .render(Template::ContainerdV3, &context)
        .expect("render");
    assert_golden("containerd-config-v3.toml", &text);
    let parsed: toml::Table = toml::from_str(&text).expect("valid TOML");
    assert_eq!(parsed["version"].as_integer(), Some(3));
    assert_eq!(
        parsed["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"].as_str(),
        Some("registry.k8s.io/pause:3.10.1")
    );
    assert_eq!(
        parsed["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
            ["options"]["SystemdCgroup"]
            .as_bool(),
        Some(false)
    );
}

#[test]
fn crio_drop_in_renders_and_parses_as_toml() {
    let text = Templates::embedded()
        .render(
            Template::CrioDropIn,
            &CrioDropIn {
                cgroup_manager: "systemd".to_owned(),
                conmon_cgroup: "system.slice".to_owned(),
                sandbox_image: "registry.k8s.io/pause:3.10.1".to_owned(),
                cni_bin_dir: "/opt/cni/bin".to_owned(),
                cni_conf_dir: "/etc/cni/net.d".to_owned(),
            },
        )
        .expect("render");
    assert_golden("crio-kubernetes.conf", &text);
    let parsed: toml::Table = toml::from_str(&text).expect("valid TOML");
    assert_eq!(
        parsed["crio"]["runtime"]["cgroup_manager"].as_str(),
        Some("systemd")
    );
}

#[test]
fn kubelet_flags_are_one_go_quoted_line() {
    let text = Templates::embedded()
        .render(
            Template::KubeletFlags,
            &KubeletFlags {
                args: vec![
                    "--container-runtime-endpoint=unix:///run/containerd/containerd.sock"
                        .to_owned(),
                    "--node-ip=10.0.0.5".to_owned(),
                ],
            },
        )
        .expect("render");
    assert_eq!(
        text,
        "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock --node-ip=10.0.0.5\"\n"
    );
}

#[test]
fn line_files_render_as_golden() {
    let templates = Templates::embedded();
    let sysctl = templates
        .render(
            Template::Sysctl,
            &Sysctl {
                settings: vec![
                    NameValue::new("net.bridge.bridge-nf-call-ip6tables", "1"),
                    NameValue::new("net.bridge.bridge-nf-call-iptables", "1"),
                    NameValue::new("net.ipv4.ip_forward", "1"),
                ],
            },
        )
        .expect("render");
    assert_golden("sysctl-kubernetes.conf", &sysctl);
    let modules = templates
        .render(
            Template::Modules,
            &Modules {
                modules: vec!["overlay".to_owned(), "br_netfilter".to_owned()],
            },
        )
        .expect("render");
    assert_golden("modules-kubernetes.conf", &modules);
    let drop_in = templates
        .render(
            Template::KubeletDropIn,
            &KubeletDropIn {
                kubelet: "/usr/bin/kubelet".to_owned(),
                bootstrap_kubeconfig: "/etc/kubernetes/bootstrap-kubelet.conf".to_owned(),
                kubeconfig: "/etc/kubernetes/kubelet.conf".to_owned(),
                config: "/var/lib/kubelet/config.yaml".to_owned(),
                flags_env: "/var/lib/kubelet/kubeadm-flags.env".to_owned(),
                defaults_env: "/etc/default/kubelet".to_owned(),
            },
        )
        .expect("render");
    assert_golden("10-kubeadm.conf", &drop_in);
}

#[test]
fn to_yaml_writes_block_yaml_that_reads_back_the_same() {
    let value = serde_json::json!({
        "b": {"list": [{"name": "x", "value": "yes"}, {"name": "y", "nested": {"k": 1}}], "empty": {}},
        "a": ["--flag=1", "10", true, null],
        "c": [],
        "d": [[1, 2], "x"],
    });
    let text = to_yaml(&value);
    assert_eq!(
        text,
        "a:\n- --flag=1\n- \"10\"\n- true\n- null\nb:\n  empty: {}\n  list:\n  - name: x\n    value: \"yes\"\n  - name: \"y\"\n    nested:\n      k: 1\nc: []\nd:\n- - 1\n  - 2\n- x\n"
    );
    let back: serde_json::Value =
        serde_json::to_value(bosun_config::yaml::value_from_str(&text).expect("yaml"))
            .expect("json");
    assert_eq!(back, value);
}
