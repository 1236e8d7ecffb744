//! kubeadm's defaults (apis/kubeadm/v1beta4/defaults.go, the dynamic defaults of util/config, and the component
//! config defaults of componentconfigs/), applied to the internal form. Only unset fields are filled.

use crate::components::{KubeProxyConfiguration, KubeletConfiguration};
use crate::duration::Duration;
use crate::types::{
    BootstrapToken, ClusterConfiguration, Etcd, InitConfiguration, JoinConfiguration, LocalEtcd,
    NodeRegistration, ResetConfiguration, Taint, Timeouts, UpgradeConfiguration,
};
use crate::HostFacts;

/// The Kubernetes version used when `kubernetesVersion` is not set. kubeadm would resolve `stable-1` over the
/// network; bosun is pinned to the release line it is tested against.
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.35.4";
pub const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";
pub const DEFAULT_DNS_DOMAIN: &str = "cluster.local";
pub const DEFAULT_BIND_PORT: i32 = 6443;
pub const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";
pub const DEFAULT_CERTIFICATES_DIR: &str = "/etc/kubernetes/pki";
pub const DEFAULT_CLUSTER_NAME: &str = "kubernetes";
pub const DEFAULT_ETCD_DATA_DIR: &str = "/var/lib/etcd";
pub const DEFAULT_ENCRYPTION_ALGORITHM: &str = "RSA-2048";
pub const DEFAULT_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(8760 * 3600);
pub const DEFAULT_CA_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(87600 * 3600);
pub const DEFAULT_CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
pub const DEFAULT_IMAGE_PULL_POLICY: &str = "IfNotPresent";
pub const DEFAULT_CA_CERT_PATH: &str = "/etc/kubernetes/pki/ca.crt";
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_TOKEN_USAGES: [&str; 2] = ["signing", "authentication"];
pub const DEFAULT_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
pub const CONTROL_PLANE_TAINT_KEY: &str = "node-role.kubernetes.io/control-plane";
pub const DEFAULT_STATIC_POD_PATH: &str = "/etc/kubernetes/manifests";
pub const DEFAULT_CGROUP_DRIVER: &str = "systemd";
pub const DEFAULT_KUBELET_HEALTHZ_ADDRESS: &str = "127.0.0.1";
pub const DEFAULT_KUBELET_HEALTHZ_PORT: i32 = 10248;
pub const DEFAULT_KUBE_PROXY_KUBECONFIG: &str = "/var/lib/kube-proxy/kubeconfig.conf";
pub const DEFAULT_UPGRADE_DIFF_CONTEXT_LINES: i32 = 3;

/// The default timeouts: control-plane health 4m, kubelet health 4m, API call 1m, etcd API call 2m, TLS
/// bootstrap 5m, discovery 5m, upgrade manifests 5m.
pub fn default_timeouts() -> Timeouts {
    Timeouts {
        control_plane_component_health_check: Some(Duration::from_secs(4 * 60)),
        kubelet_health_check: Some(Duration::from_secs(4 * 60)),
        kubernetes_api_call: Some(Duration::from_secs(60)),
        etcd_api_call: Some(Duration::from_secs(2 * 60)),
        tls_bootstrap: Some(Duration::from_secs(5 * 60)),
        discovery: Some(Duration::from_secs(5 * 60)),
        upgrade_manifests: Some(Duration::from_secs(5 * 60)),
    }
}

/// `node-role.kubernetes.io/control-plane:NoSchedule`.
pub fn control_plane_taint() -> Taint {
    Taint {
        key: CONTROL_PLANE_TAINT_KEY.to_owned(),
        value: String::new(),
        effect: "NoSchedule".to_owned(),
        time_added: None,
    }
}

fn fill(field: &mut String, value: &str) {
    if field.is_empty() {
        *field = value.to_owned();
    }
}

fn fill_timeouts(timeouts: &mut Option<Timeouts>) {
    let defaults = default_timeouts();
    let current = timeouts.get_or_insert_with(Timeouts::default);
    current.control_plane_component_health_check = current
        .control_plane_component_health_check
        .or(defaults.control_plane_component_health_check);
    current.kubelet_health_check = current
        .kubelet_health_check
        .or(defaults.kubelet_health_check);
    current.kubernetes_api_call = current.kubernetes_api_call.or(defaults.kubernetes_api_call);
    current.etcd_api_call = current.etcd_api_call.or(defaults.etcd_api_call);
    current.tls_bootstrap = current.tls_bootstrap.or(defaults.tls_bootstrap);
    current.discovery = current.discovery.or(defaults.discovery);
    current.upgrade_manifests = current.upgrade_manifests.or(defaults.upgrade_manifests);
}

/// The static defaults of ClusterConfiguration.
pub fn cluster(cluster: &mut ClusterConfiguration) {
    fill(&mut cluster.kubernetes_version, DEFAULT_KUBERNETES_VERSION);
    fill(
        &mut cluster.networking.service_subnet,
        DEFAULT_SERVICE_SUBNET,
    );
    fill(&mut cluster.networking.dns_domain, DEFAULT_DNS_DOMAIN);
    fill(&mut cluster.certificates_dir, DEFAULT_CERTIFICATES_DIR);
    fill(&mut cluster.image_repository, DEFAULT_IMAGE_REPOSITORY);
    fill(&mut cluster.cluster_name, DEFAULT_CLUSTER_NAME);
    fill(
        &mut cluster.encryption_algorithm,
        DEFAULT_ENCRYPTION_ALGORITHM,
    );
    if cluster.etcd.local.is_none() && cluster.etcd.external.is_none() {
        cluster.etcd = Etcd {
            local: Some(LocalEtcd::default()),
            external: None,
        };
    }
    if let Some(local) = cluster.etcd.local.as_mut() {
        fill(&mut local.data_dir, DEFAULT_ETCD_DATA_DIR);
    }
    cluster.certificate_validity_period = cluster
        .certificate_validity_period
        .or(Some(DEFAULT_CERTIFICATE_VALIDITY));
    cluster.ca_certificate_validity_period = cluster
        .ca_certificate_validity_period
        .or(Some(DEFAULT_CA_CERTIFICATE_VALIDITY));
}

/// The default bootstrap token fields (the token string itself is generated when the token is created).
pub fn bootstrap_token(token: &mut BootstrapToken) {
    if token.ttl.is_none() && token.expires.is_none() {
        token.ttl = Some(DEFAULT_TOKEN_TTL);
    }
    if token.usages.is_empty() {
        token.usages = DEFAULT_TOKEN_USAGES
            .iter()
            .map(|usage| usage.to_string())
            .collect();
    }
    if token.groups.is_empty() {
        token.groups = vec![DEFAULT_TOKEN_GROUP.to_owned()];
    }
}

fn node_registration(registration: &mut NodeRegistration, facts: &HostFacts, control_plane: bool) {
    fill(&mut registration.name, &facts.hostname.to_lowercase());
    fill(&mut registration.cri_socket, DEFAULT_CRI_SOCKET);
    fill(
        &mut registration.image_pull_policy,
        DEFAULT_IMAGE_PULL_POLICY,
    );
    registration.image_pull_serial = registration.image_pull_serial.or(Some(true));
    if registration.taints.is_none() {
        registration.taints = Some(if control_plane {
            vec![control_plane_taint()]
        } else {
            Vec::new()
        });
    }
}

fn advertise_address(address: &mut String, facts: &HostFacts) {
    if address.is_empty() {
        if let Some(default) = facts.default_address {
            *address = default.to_string();
        }
    }
}

/// Static and host-derived defaults of InitConfiguration.
pub fn init(init: &mut InitConfiguration, facts: &HostFacts) {
    if init.bootstrap_tokens.is_empty() {
        init.bootstrap_tokens.push(BootstrapToken::default());
    }
    init.bootstrap_tokens.iter_mut().for_each(bootstrap_token);
    if init.local_api_endpoint.bind_port == 0 {
        init.local_api_endpoint.bind_port = DEFAULT_BIND_PORT;
    }
    advertise_address(&mut init.local_api_endpoint.advertise_address, facts);
    node_registration(&mut init.node_registration, facts, true);
    fill_timeouts(&mut init.timeouts);
}

/// Static and host-derived defaults of JoinConfiguration.
pub fn join(join: &mut JoinConfiguration, facts: &HostFacts) {
    fill(&mut join.ca_cert_path, DEFAULT_CA_CERT_PATH);
    if join.discovery.tls_bootstrap_token.is_empty() {
        if let Some(token) = &join.discovery.bootstrap_token {
            join.discovery.tls_bootstrap_token = token.token.clone();
        }
    }
    if let Some(file) = join.discovery.file.as_mut() {
        if let Some(path) = file.kube_config_path.strip_prefix("file://") {
            file.kube_config_path = path.to_owned();
        }
    }
    let control_plane = join.control_plane.is_some();
    if let Some(control_plane) = join.control_plane.as_mut() {
        if control_plane.local_api_endpoint.bind_port == 0 {
            control_plane.local_api_endpoint.bind_port = DEFAULT_BIND_PORT;
        }
        advertise_address(
            &mut control_plane.local_api_endpoint.advertise_address,
            facts,
        );
    }
    node_registration(&mut join.node_registration, facts, control_plane);
    fill_timeouts(&mut join.timeouts);
}

/// Defaults of ResetConfiguration.
pub fn reset(reset: &mut ResetConfiguration) {
    fill(&mut reset.certificates_dir, DEFAULT_CERTIFICATES_DIR);
    fill(&mut reset.cri_socket, DEFAULT_CRI_SOCKET);
    fill_timeouts(&mut reset.timeouts);
}

/// Defaults of UpgradeConfiguration.
pub fn upgrade(upgrade: &mut UpgradeConfiguration) {
    let apply = &mut upgrade.apply;
    apply.certificate_renewal = apply.certificate_renewal.or(Some(true));
    apply.etcd_upgrade = apply.etcd_upgrade.or(Some(true));
    fill(&mut apply.image_pull_policy, DEFAULT_IMAGE_PULL_POLICY);
    apply.image_pull_serial = apply.image_pull_serial.or(Some(true));
    let node = &mut upgrade.node;
    node.certificate_renewal = node.certificate_renewal.or(Some(true));
    node.etcd_upgrade = node.etcd_upgrade.or(Some(true));
    fill(&mut node.image_pull_policy, DEFAULT_IMAGE_PULL_POLICY);
    node.image_pull_serial = node.image_pull_serial.or(Some(true));
    upgrade.plan.etcd_upgrade = upgrade.plan.etcd_upgrade.or(Some(true));
    // diff.contextLines stays 0 in the file, as kubeadm leaves it; `upgrade diff` uses
    // DEFAULT_UPGRADE_DIFF_CONTEXT_LINES when it is 0.
    fill_timeouts(&mut upgrade.timeouts);
}

/// kubeadm's defaults for the kubelet (componentconfigs/kubelet.go): the fields that tie the kubelet to the
/// cluster (DNS, CA, static pods) and its secure-by-default settings.
pub fn kubelet(
    kubelet: &mut KubeletConfiguration,
    cluster: &ClusterConfiguration,
    dns_ip: Option<String>,
) {
    fill(&mut kubelet.static_pod_path, DEFAULT_STATIC_POD_PATH);
    fill(&mut kubelet.cluster_domain, &cluster.networking.dns_domain);
    if kubelet.cluster_dns.is_empty() {
        if let Some(ip) = dns_ip {
            kubelet.cluster_dns = vec![ip];
        }
    }
    let ca_file = format!("{}/ca.crt", cluster.certificates_dir.trim_end_matches('/'));
    fill(&mut kubelet.authentication.x509.client_ca_file, &ca_file);
    kubelet.authentication.anonymous.enabled =
        kubelet.authentication.anonymous.enabled.or(Some(false));
    kubelet.authentication.webhook.enabled = kubelet.authentication.webhook.enabled.or(Some(true));
    fill(&mut kubelet.authorization.mode, "Webhook");
    fill(
        &mut kubelet.healthz_bind_address,
        DEFAULT_KUBELET_HEALTHZ_ADDRESS,
    );
    kubelet.healthz_port = kubelet.healthz_port.or(Some(DEFAULT_KUBELET_HEALTHZ_PORT));
    // kubeadm forces certificate rotation on; the kubelet's client certificate would expire otherwise.
    kubelet.rotate_certificates = Some(true);
    kubelet.cgroup_driver_set_by_user = !kubelet.cgroup_driver.is_empty();
    fill(&mut kubelet.cgroup_driver, DEFAULT_CGROUP_DRIVER);
}

/// kubeadm's defaults for kube-proxy (componentconfigs/kubeproxy.go).
pub fn kube_proxy(proxy: &mut KubeProxyConfiguration, cluster: &ClusterConfiguration, ipv6: bool) {
    fill(&mut proxy.bind_address, if ipv6 { "::" } else { "0.0.0.0" });
    fill(&mut proxy.cluster_cidr, &cluster.networking.pod_subnet);
    fill(
        &mut proxy.client_connection.kubeconfig,
        DEFAULT_KUBE_PROXY_KUBECONFIG,
    );
}
