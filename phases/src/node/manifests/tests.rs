use super::*;
use crate::node::phases::render_manifest;
use crate::render::golden::assert_golden;
use crate::render::Templates;

fn host() -> bosun_config::HostFacts {
    bosun_config::HostFacts {
        hostname: "cp-1".to_owned(),
        default_address: Some("192.0.2.10".parse().expect("ip")),
    }
}

pub(crate) fn config(text: &str) -> Config {
    bosun_config::load("test.yaml", text, &host())
        .unwrap_or_else(|error| panic!("config: {error:?}"))
}

fn debian_facts() -> ManifestFacts {
    ManifestFacts {
        existing_ca_dirs: vec![
            "/etc/ca-certificates".to_owned(),
            "/usr/share/ca-certificates".to_owned(),
            "/usr/local/share/ca-certificates".to_owned(),
        ],
        external_ca: false,
        proxy_env: Vec::new(),
    }
}

fn render(pod: &StaticPod) -> String {
    render_manifest(&Templates::embedded(), pod, None).expect("render")
}

fn command_of(pod: &StaticPod) -> &[String] {
    &pod.command[1..]
}

fn assert_flag(pod: &StaticPod, flag: &str) {
    assert!(
        pod.command.iter().any(|word| word == flag),
        "{} lacks {flag}: {:#?}",
        pod.name,
        pod.command
    );
}

const V1BETA4: &str = "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 192.0.2.10
nodeRegistration:
  name: cp-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
networking:
  podSubnet: 10.244.0.0/16
";

#[test]
fn default_manifests_match_the_golden_files() {
    let config = config(V1BETA4);
    let facts = debian_facts();
    assert_golden(
        "manifests/kube-apiserver.yaml",
        &render(&kube_apiserver(&config, &facts).expect("pod")),
    );
    assert_golden(
        "manifests/kube-controller-manager.yaml",
        &render(&kube_controller_manager(&config, &facts).expect("pod")),
    );
    assert_golden(
        "manifests/kube-scheduler.yaml",
        &render(&kube_scheduler(&config, &facts).expect("pod")),
    );
    assert_golden(
        "manifests/etcd.yaml",
        &render(&etcd(&config, &facts, &[]).expect("pod")),
    );
}

#[test]
fn flags_are_sorted_by_name() {
    let config = config(V1BETA4);
    for pod in [
        kube_apiserver(&config, &debian_facts()).expect("pod"),
        kube_controller_manager(&config, &debian_facts()).expect("pod"),
        kube_scheduler(&config, &debian_facts()).expect("pod"),
        etcd(&config, &debian_facts(), &[]).expect("pod"),
    ] {
        let flags = command_of(&pod).to_vec();
        let mut sorted = flags.clone();
        sorted.sort_by(|left, right| {
            let name = |flag: &String| flag.split('=').next().unwrap_or_default().to_owned();
            name(left).cmp(&name(right)).then(left.cmp(right))
        });
        assert_eq!(flags, sorted, "{}", pod.name);
    }
}

#[test]
fn v1beta4_extra_args_replace_defaults_by_name_and_may_repeat() {
    let config = config(&format!(
        "{V1BETA4}apiServer:
  extraArgs:
  - name: authorization-mode
    value: Node,RBAC,Webhook
  - name: tls-cipher-suites
    value: TLS_AES_128_GCM_SHA256
  - name: tls-cipher-suites
    value: TLS_AES_256_GCM_SHA384
  extraEnvs:
  - name: GOMAXPROCS
    value: \"2\"
  extraVolumes:
  - name: audit
    hostPath: /var/log/kubernetes/audit
    mountPath: /var/log/kubernetes/audit
    pathType: DirectoryOrCreate
"
    ));
    let pod = kube_apiserver(&config, &debian_facts()).expect("pod");
    assert_flag(&pod, "--authorization-mode=Node,RBAC,Webhook");
    assert!(!pod
        .command
        .iter()
        .any(|word| word == "--authorization-mode=Node,RBAC"));
    assert_flag(&pod, "--tls-cipher-suites=TLS_AES_128_GCM_SHA256");
    assert_flag(&pod, "--tls-cipher-suites=TLS_AES_256_GCM_SHA384");
    assert!(pod.env.iter().any(|variable| variable.name == "GOMAXPROCS"));
    assert!(pod.volumes.iter().any(|volume| volume.name == "audit"));
    assert!(pod
        .volume_mounts
        .iter()
        .any(|mount| mount.name == "audit" && !mount.read_only));
    assert_golden("manifests/kube-apiserver-extra-args.yaml", &render(&pod));
}

#[test]
fn v1beta3_extra_args_maps_give_the_same_flags() {
    let config = config(
        "apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 192.0.2.10
nodeRegistration:
  name: cp-1
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
controllerManager:
  extraArgs:
    bind-address: 0.0.0.0
    node-cidr-mask-size: \"24\"
scheduler:
  extraArgs:
    bind-address: 192.0.2.10
",
    );
    let manager = kube_controller_manager(&config, &debian_facts()).expect("pod");
    assert_flag(&manager, "--bind-address=0.0.0.0");
    assert_flag(&manager, "--node-cidr-mask-size=24");
    // A wildcard bind address makes the probe use the pod's IP.
    assert_eq!(manager.probes[0].host, None);
    let scheduler = kube_scheduler(&config, &debian_facts()).expect("pod");
    assert_eq!(scheduler.probes[0].host.as_deref(), Some("192.0.2.10"));
}

#[test]
fn ipv6_advertise_addresses_use_brackets_and_the_ipv6_loopback() {
    let config = config(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: fd00::10
nodeRegistration:
  name: cp-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
networking:
  serviceSubnet: fd00:10:96::/112
  podSubnet: fd00:10:244::/56
",
    );
    let apiserver = kube_apiserver(&config, &debian_facts()).expect("pod");
    assert_flag(&apiserver, "--etcd-servers=https://[::1]:2379");
    assert_flag(&apiserver, "--advertise-address=fd00::10");
    assert_eq!(apiserver.annotations[0].value, "[fd00::10]:6443");
    let etcd_pod = etcd(&config, &debian_facts(), &[]).expect("pod");
    assert_flag(
        &etcd_pod,
        "--listen-client-urls=https://[::1]:2379,https://[fd00::10]:2379",
    );
    assert_flag(&etcd_pod, "--initial-cluster=cp-1=https://[fd00::10]:2380");
    assert_flag(&etcd_pod, "--listen-metrics-urls=http://[::1]:2381");
    assert_eq!(etcd_pod.probes[0].host.as_deref(), Some("::1"));
    assert_golden("manifests/etcd-ipv6.yaml", &render(&etcd_pod));
}

#[test]
fn dual_stack_subnets_pass_through() {
    let config = config(&V1BETA4.replace(
        "  podSubnet: 10.244.0.0/16\n",
        "  podSubnet: 10.244.0.0/16,fd00:10:244::/56\n  serviceSubnet: 10.96.0.0/16,fd00:10:96::/112\n",
    ));
    let apiserver = kube_apiserver(&config, &debian_facts()).expect("pod");
    assert_flag(
        &apiserver,
        "--service-cluster-ip-range=10.96.0.0/16,fd00:10:96::/112",
    );
    let manager = kube_controller_manager(&config, &debian_facts()).expect("pod");
    assert_flag(&manager, "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56");
    assert_flag(&manager, "--allocate-node-cidrs=true");
}

#[test]
fn external_etcd_uses_its_endpoints_and_mounts_the_certificate_directories() {
    let config = config(&format!(
        "{V1BETA4}etcd:
  external:
    endpoints:
    - https://10.0.0.1:2379
    - https://10.0.0.2:2379
    caFile: /etc/etcd/pki/ca.crt
    certFile: /etc/etcd/pki/client.crt
    keyFile: /etc/kubernetes/pki/etcd-client.key
"
    ));
    let apiserver = kube_apiserver(&config, &debian_facts()).expect("pod");
    assert_flag(
        &apiserver,
        "--etcd-servers=https://10.0.0.1:2379,https://10.0.0.2:2379",
    );
    assert_flag(&apiserver, "--etcd-cafile=/etc/etcd/pki/ca.crt");
    let etcd_volumes: Vec<_> = apiserver
        .volumes
        .iter()
        .filter(|volume| volume.name.starts_with("etcd-certs"))
        .map(|volume| volume.host_path.as_str())
        .collect();
    // /etc/kubernetes/pki is mounted already as k8s-certs.
    assert_eq!(etcd_volumes, ["/etc/etcd/pki"]);
    assert!(etcd(&config, &debian_facts(), &[]).is_err());
}

#[test]
fn etcd_3_5_images_get_the_experimental_flags() {
    let config = config(&format!(
        "{V1BETA4}etcd:\n  local:\n    imageTag: 3.5.24-0\n"
    ));
    let pod = etcd(&config, &debian_facts(), &[]).expect("pod");
    assert_flag(&pod, "--experimental-initial-corrupt-check=true");
    assert!(!pod
        .command
        .iter()
        .any(|word| word.starts_with("--feature-gates")));
    assert_eq!(pod.image, "registry.k8s.io/etcd:3.5.24-0");
}

#[test]
fn joining_etcd_lists_every_member_and_says_existing() {
    let config = config(V1BETA4);
    let members = [
        EtcdMember {
            name: "cp-0".to_owned(),
            peer_url: "https://192.0.2.9:2380".to_owned(),
        },
        EtcdMember {
            name: "cp-1".to_owned(),
            peer_url: "https://192.0.2.10:2380".to_owned(),
        },
    ];
    let pod = etcd(&config, &debian_facts(), &members).expect("pod");
    assert_flag(
        &pod,
        "--initial-cluster=cp-0=https://192.0.2.9:2380,cp-1=https://192.0.2.10:2380",
    );
    assert_flag(&pod, "--initial-cluster-state=existing");
}

#[test]
fn an_external_ca_leaves_the_signing_flags_empty_and_proxies_reach_the_pods() {
    let config = config(V1BETA4);
    let facts = ManifestFacts {
        external_ca: true,
        proxy_env: vec![("HTTPS_PROXY".to_owned(), "http://proxy:3128".to_owned())],
        ..debian_facts()
    };
    let pod = kube_controller_manager(&config, &facts).expect("pod");
    assert_flag(&pod, "--cluster-signing-cert-file=");
    assert_flag(&pod, "--cluster-signing-key-file=");
    assert_eq!(pod.env[0].name, "HTTPS_PROXY");
}

#[test]
fn the_startup_probe_follows_the_health_check_timeout() {
    let config = config(&V1BETA4.replace(
        "nodeRegistration:\n",
        "timeouts:\n  controlPlaneComponentHealthCheck: 5m\nnodeRegistration:\n",
    ));
    let pod = kube_apiserver(&config, &debian_facts()).expect("pod");
    let startup = pod
        .probes
        .iter()
        .find(|probe| probe.kind == ProbeKind::Startup)
        .expect("startup");
    assert_eq!(startup.failure_threshold, 30);
}
