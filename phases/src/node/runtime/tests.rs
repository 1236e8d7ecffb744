use super::*;
use crate::host::memory::MemoryFiles;
use crate::render::golden::assert_golden;

const DEBIAN_STYLE: &str = r#"# The user's containerd configuration.
version = 2
oom_score = -999

[debug]
  level = "debug"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  enable_unprivileged_ports = true

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["https://mirror.example"]

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = true
    BinaryName = "/usr/sbin/runc"
"#;

fn context(driver: CgroupDriver) -> ContainerdConfig {
    containerd_context(
        "unix:///run/containerd/containerd.sock",
        "registry.k8s.io/pause:3.10.1",
        driver,
    )
}

#[test]
fn merging_keeps_the_users_settings_and_sets_bosuns() {
    let merged = containerd_config_file(
        &Templates::embedded(),
        Template::ContainerdV2,
        &context(CgroupDriver::Cgroupfs),
        Some(DEBIAN_STYLE),
    )
    .expect("merge");
    assert_golden("containerd-config-merged.toml", &merged);
    let parsed: toml::Table = toml::from_str(&merged).expect("valid TOML");
    assert_eq!(parsed["oom_score"].as_integer(), Some(-999));
    assert_eq!(parsed["debug"]["level"].as_str(), Some("debug"));
    let cri = &parsed["plugins"]["io.containerd.grpc.v1.cri"];
    assert_eq!(cri["enable_unprivileged_ports"].as_bool(), Some(true));
    assert_eq!(
        cri["sandbox_image"].as_str(),
        Some("registry.k8s.io/pause:3.10.1")
    );
    let runc = &cri["containerd"]["runtimes"]["runc"]["options"];
    assert_eq!(runc["SystemdCgroup"].as_bool(), Some(false));
    assert_eq!(runc["BinaryName"].as_str(), Some("/usr/sbin/runc"));
    assert!(merged.starts_with("# The user's containerd configuration."));
    assert_eq!(
        containerd_settings(&merged).expect("read"),
        (
            CgroupDriver::Cgroupfs,
            Some("registry.k8s.io/pause:3.10.1".to_owned())
        )
    );
}

/// Debian's own /etc/containerd/config.toml (package containerd 1.6.20): its CNI plugins are in /usr/lib/cni.
const DEBIAN_PACKAGE: &str = r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"#;

/// Found by tier 2 (a real kubelet on Debian): bosun replaced Debian's CNI `bin_dir` by /opt/cni/bin, where no
/// plugin is, so no pod could get a network.
#[test]
fn merging_keeps_the_cni_directories_the_host_already_has() {
    let merged = containerd_config_file(
        &Templates::embedded(),
        Template::ContainerdV2,
        &context(CgroupDriver::Cgroupfs),
        Some(DEBIAN_PACKAGE),
    )
    .expect("merge");
    assert!(merged.ends_with('\n'), "{merged}");
    let parsed: toml::Table = toml::from_str(&merged).expect("valid TOML");
    let cri = &parsed["plugins"]["io.containerd.grpc.v1.cri"];
    assert_eq!(cri["cni"]["bin_dir"].as_str(), Some("/usr/lib/cni"));
    assert_eq!(cri["cni"]["conf_dir"].as_str(), Some("/etc/cni/net.d"));
    assert_eq!(
        cri["sandbox_image"].as_str(),
        Some("registry.k8s.io/pause:3.10.1")
    );
    // Without a setting of the host's, bosun's defaults apply.
    let fresh = containerd_config_file(
        &Templates::embedded(),
        Template::ContainerdV2,
        &context(CgroupDriver::Cgroupfs),
        Some("version = 2\n"),
    )
    .expect("merge");
    let parsed: toml::Table = toml::from_str(&fresh).expect("valid TOML");
    assert_eq!(
        parsed["plugins"]["io.containerd.grpc.v1.cri"]["cni"]["bin_dir"].as_str(),
        Some(CNI_BIN_DIR)
    );
}

#[test]
fn merging_twice_changes_nothing() {
    let templates = Templates::embedded();
    let once = containerd_config_file(
        &templates,
        Template::ContainerdV2,
        &context(CgroupDriver::Systemd),
        Some(DEBIAN_STYLE),
    )
    .expect("merge");
    let twice = containerd_config_file(
        &templates,
        Template::ContainerdV2,
        &context(CgroupDriver::Systemd),
        Some(&once),
    )
    .expect("merge");
    assert_eq!(once, twice);
}

#[test]
fn a_config_in_another_format_version_is_refused_with_the_migration_command() {
    let error = containerd_config_file(
        &Templates::embedded(),
        Template::ContainerdV3,
        &context(CgroupDriver::Systemd),
        Some(DEBIAN_STYLE),
    )
    .expect_err("v2 file for containerd 2");
    let message = error.to_string();
    assert!(message.contains("/etc/containerd/config.toml"), "{message}");
    assert!(message.contains("containerd config migrate"), "{message}");
}

#[test]
fn a_broken_user_config_is_reported_with_its_path() {
    let error = containerd_config_file(
        &Templates::embedded(),
        Template::ContainerdV2,
        &context(CgroupDriver::Systemd),
        Some("version = 2\n[plugins\n"),
    )
    .expect_err("bad toml");
    assert!(
        error
            .to_string()
            .contains("/etc/containerd/config.toml is not valid")
            || error
                .to_string()
                .contains("/etc/containerd/config.toml: it is not valid TOML"),
        "{error}"
    );
}

#[test]
fn the_cgroup_driver_is_read_from_v3_and_crio_configs() {
    let v3 = Templates::embedded()
        .render(Template::ContainerdV3, &context(CgroupDriver::Systemd))
        .expect("render");
    assert_eq!(
        containerd_settings(&v3).expect("read").0,
        CgroupDriver::Systemd
    );
    assert_eq!(
        containerd_settings("version = 2\n").expect("read").0,
        CgroupDriver::Cgroupfs
    );
    let crio = vec![
        (
            PathBuf::from("/etc/crio/crio.conf"),
            "[crio.runtime]\ncgroup_manager = \"cgroupfs\"\n".to_owned(),
        ),
        (
            PathBuf::from("/etc/crio/crio.conf.d/20-x.conf"),
            "[crio.image]\npause_image = \"x\"\n".to_owned(),
        ),
    ];
    assert_eq!(
        crio_cgroup_driver(&crio).expect("read"),
        CgroupDriver::Cgroupfs
    );
    assert_eq!(
        crio_cgroup_driver(&[]).expect("read"),
        CgroupDriver::Systemd
    );
}

#[test]
fn sockets_are_detected_as_kubeadm_does() {
    let files = MemoryFiles::default();
    assert_eq!(
        detect_socket(&files).expect("none"),
        "unix:///var/run/containerd/containerd.sock"
    );
    files
        .write_atomic(Path::new("/run/crio/crio.sock"), b"", 0o600)
        .expect("write");
    assert_eq!(
        detect_socket(&files).expect("one"),
        "unix:///var/run/crio/crio.sock"
    );
    files
        .write_atomic(Path::new("/var/run/containerd/containerd.sock"), b"", 0o600)
        .expect("write");
    let error = detect_socket(&files).expect_err("two");
    assert!(
        error.to_string().contains("nodeRegistration.criSocket"),
        "{error}"
    );
}

#[test]
fn containerd_versions_are_read_from_its_version_line() {
    assert_eq!(
        parse_containerd_version(
            "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3"
        ),
        Some((1, 6))
    );
    assert_eq!(
        parse_containerd_version("containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7"),
        Some((2, 1))
    );
    assert_eq!(containerd_template(2), Template::ContainerdV3);
    assert_eq!(containerd_template(1), Template::ContainerdV2);
}

#[test]
fn crictl_and_kernel_files_render() {
    let templates = Templates::embedded();
    let crictl =
        crictl_config(&templates, "unix:///run/containerd/containerd.sock").expect("render");
    assert_golden("crictl.yaml", &crictl);
    assert!(sysctl_file(&templates, true)
        .expect("render")
        .contains("net.ipv6.conf.all.forwarding = 1"));
    assert!(modules_file(&templates)
        .expect("render")
        .contains("br_netfilter"));
    let crio = crio_drop_in(
        &templates,
        "registry.k8s.io/pause:3.10.1",
        CgroupDriver::Cgroupfs,
    )
    .expect("render");
    assert!(crio.contains("conmon_cgroup = \"pod\""), "{crio}");
}
