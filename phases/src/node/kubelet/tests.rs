use super::*;
use crate::node::manifests::tests::config;
use crate::render::golden::assert_golden;

fn facts(systemd: bool, cgroup_version: CgroupVersion) -> NodeFacts {
    NodeFacts {
        gathered: true,
        hostname: "cp-1".to_owned(),
        systemd_is_init: systemd,
        cgroup_version,
        ..NodeFacts::default()
    }
}

const CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: cp-1
  kubeletExtraArgs:
  - name: node-ip
    value: 192.0.2.10
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
evictionHard:
  nodefs.available: 0%
";

#[test]
fn the_kubelet_config_keeps_user_fields_and_takes_the_hosts_driver() {
    let config = config(CONFIG);
    let effective = effective_configuration(
        &config,
        CgroupDriver::Cgroupfs,
        &facts(false, CgroupVersion::V1),
    );
    let text = config_file(&Templates::embedded(), &effective, None).expect("render");
    assert_golden("kubelet-config-cgroupfs-v1.yaml", &text);
    let value: serde_json::Value =
        serde_json::to_value(bosun_config::yaml::value_from_str(&text).expect("yaml"))
            .expect("json");
    assert_eq!(value["kind"], "KubeletConfiguration");
    assert_eq!(value["cgroupDriver"], "cgroupfs");
    assert_eq!(value["maxPods"], 50);
    assert_eq!(value["failCgroupV1"], false);
    assert_eq!(value["rotateCertificates"], true);
    assert_eq!(value["staticPodPath"], "/etc/kubernetes/manifests");
}

#[test]
fn kubeletconfiguration_patches_apply() {
    let files = crate::host::memory::MemoryFiles::default();
    crate::host::Files::write_atomic(
        &files,
        Path::new("/patches/kubeletconfiguration+merge.yaml"),
        b"maxPods: 110\nserializeImagePulls: false\n",
        0o644,
    )
    .expect("write");
    let set = patches::load(&files, Path::new("/patches")).expect("patches");
    let config = config(CONFIG);
    let effective = effective_configuration(
        &config,
        CgroupDriver::Systemd,
        &facts(true, CgroupVersion::V2),
    );
    let text = config_file(&Templates::embedded(), &effective, Some(&set)).expect("render");
    assert!(text.contains("maxPods: 110"), "{text}");
    assert!(text.contains("serializeImagePulls: false"), "{text}");
    assert!(!text.contains("failCgroupV1"), "{text}");
}

#[test]
fn flags_carry_the_cri_socket_and_extra_args() {
    let config = config(CONFIG);
    let flags = flags(
        &config,
        "unix:///run/containerd/containerd.sock",
        &facts(true, CgroupVersion::V2),
    );
    assert_eq!(
        flags,
        [
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
            "--node-ip=192.0.2.10"
        ]
    );
    let other_host = NodeFacts {
        hostname: "localhost".to_owned(),
        ..facts(true, CgroupVersion::V2)
    };
    assert!(flags_file(
        &Templates::embedded(),
        super::flags(&config, "unix:///x", &other_host)
    )
    .expect("render")
    .contains("--hostname-override=cp-1"));
}

#[test]
fn the_service_runs_the_same_command_line_as_the_drop_in() {
    let binary = Path::new("/usr/bin/kubelet");
    let drop_in = drop_in(&Templates::embedded(), binary).expect("render");
    let spec = service(binary);
    assert!(drop_in.contains("--config=/var/lib/kubelet/config.yaml"));
    assert!(spec
        .command
        .args
        .contains(&"--config=/var/lib/kubelet/config.yaml".to_owned()));
    assert!(drop_in.contains("EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env"));
    assert_eq!(
        spec.environment_files[0],
        Path::new(paths::KUBELET_FLAGS_ENV)
    );
}
