//! Validation of a defaulted configuration (kubeadm's apis/kubeadm/validation): every problem found, each with
//! the kind and field path it belongs to. The loader adds the file, document, line and column.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::duration::Duration;
use crate::types::{
    ClusterConfiguration, InitConfiguration, JoinConfiguration, NodeRegistration, Timeouts,
};
use crate::version::KubernetesVersion;
use crate::Config;

/// A problem before it is placed in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub kind: &'static str,
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl FieldProblem {
    fn new(
        kind: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> FieldProblem {
        FieldProblem {
            kind,
            field: field.into(),
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> FieldProblem {
        self.hint = Some(hint.into());
        self
    }
}

pub const ENCRYPTION_ALGORITHMS: [&str; 5] = [
    "RSA-2048",
    "RSA-3072",
    "RSA-4096",
    "ECDSA-P256",
    "ECDSA-P384",
];

/// Splits a bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}` into id and secret.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let valid = |part: &str, length: usize| {
        part.len() == length
            && part
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
    };
    (valid(id, 6) && valid(secret, 16)).then_some((id, secret))
}

/// Parses a comma-separated list of CIDRs (dual-stack subnets).
pub fn parse_cidrs(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            part.parse::<IpNet>()
                .map_err(|_| format!("{part:?} is not a valid CIDR such as 10.96.0.0/12"))
        })
        .collect()
}

/// Checks every part of the configuration; an empty list means it is valid.
pub fn validate(config: &Config) -> Vec<FieldProblem> {
    validate_with_warnings(config).0
}

/// Checks every part of the configuration: the problems that make it invalid, and warnings about settings that
/// work but are likely mistakes.
pub fn validate_with_warnings(config: &Config) -> (Vec<FieldProblem>, Vec<FieldProblem>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    cluster(&config.cluster, &mut problems, &mut warnings);
    if config.source.has_kind("InitConfiguration") || config.join.is_none() {
        init(&config.init, &mut problems);
    }
    if let Some(join) = &config.join {
        join_configuration(join, &mut problems);
    }
    if let Some(reset) = &config.reset {
        if let Some(timeouts) = &reset.timeouts {
            timeouts_positive("ResetConfiguration", timeouts, &mut problems);
        }
        for (index, flag) in reset.unmount_flags.iter().enumerate() {
            if !["MNT_FORCE", "MNT_DETACH", "MNT_EXPIRE", "UMOUNT_NOFOLLOW"]
                .contains(&flag.as_str())
            {
                problems.push(
                    FieldProblem::new(
                        "ResetConfiguration",
                        format!("unmountFlags[{index}]"),
                        format!("{flag:?} is not an unmount flag"),
                    )
                    .hint("use MNT_FORCE, MNT_DETACH, MNT_EXPIRE or UMOUNT_NOFOLLOW"),
                );
            }
        }
    }
    if let Some(upgrade) = &config.upgrade {
        for (field, version) in [
            ("apply.kubernetesVersion", &upgrade.apply.kubernetes_version),
            ("plan.kubernetesVersion", &upgrade.plan.kubernetes_version),
            ("diff.kubernetesVersion", &upgrade.diff.kubernetes_version),
        ] {
            if !version.is_empty() {
                if let Err(message) = KubernetesVersion::parse(version) {
                    problems.push(FieldProblem::new("UpgradeConfiguration", field, message));
                }
            }
        }
        if upgrade.diff.context_lines < 0 {
            problems.push(FieldProblem::new(
                "UpgradeConfiguration",
                "diff.contextLines",
                "must not be negative",
            ));
        }
        if let Some(timeouts) = &upgrade.timeouts {
            timeouts_positive("UpgradeConfiguration", timeouts, &mut problems);
        }
    }
    kubelet(config, &mut problems);
    (problems, warnings)
}

fn cluster(
    cluster: &ClusterConfiguration,
    problems: &mut Vec<FieldProblem>,
    warnings: &mut Vec<FieldProblem>,
) {
    const KIND: &str = "ClusterConfiguration";
    if let Err(message) = KubernetesVersion::parse(&cluster.kubernetes_version) {
        problems.push(
            FieldProblem::new(KIND, "kubernetesVersion", message)
                .hint("write a release such as v1.35.4; labels like stable-1 need the network and are not resolved"),
        );
    }
    let services = match parse_cidrs(&cluster.networking.service_subnet) {
        Ok(subnets) => {
            subnet_shape(KIND, "networking.serviceSubnet", &subnets, problems);
            for subnet in &subnets {
                let host_bits = u32::from(subnet.max_prefix_len() - subnet.prefix_len());
                let too_small = host_bits < 4; // fewer than 10 addresses: the DNS service needs the 10th
                if too_small {
                    problems.push(
                        FieldProblem::new(
                            KIND,
                            "networking.serviceSubnet",
                            format!("{subnet} has fewer than 10 addresses"),
                        )
                        .hint("the DNS service takes the 10th address; use a /28 or larger"),
                    );
                }
                if host_bits > 20 {
                    problems.push(
                        FieldProblem::new(KIND, "networking.serviceSubnet", format!("{subnet} has more than 20 host bits"))
                            .hint("the API server allows at most 2^20 service addresses; use a /12 or smaller (IPv6: /108 or smaller)"),
                    );
                }
            }
            subnets
        }
        Err(message) => {
            problems.push(FieldProblem::new(KIND, "networking.serviceSubnet", message));
            Vec::new()
        }
    };
    if !cluster.networking.pod_subnet.is_empty() {
        match parse_cidrs(&cluster.networking.pod_subnet) {
            Ok(pods) => {
                subnet_shape(KIND, "networking.podSubnet", &pods, problems);
                for pod in &pods {
                    for service in &services {
                        // CIDRs either nest or are disjoint. Pods inside the service range would be given service
                        // addresses: always wrong. A service range inside the pod range is what kubeadm's own
                        // dual-stack example does; it works until a node's pod range reaches the service range,
                        // so it is a warning.
                        if service.contains(&pod.network()) {
                            problems.push(
                                FieldProblem::new(
                                    KIND,
                                    "networking.podSubnet",
                                    format!("pod subnet {pod} overlaps the service subnet {service}"),
                                )
                                .hint("choose a pod subnet outside the service subnet, e.g. 10.244.0.0/16 with the default 10.96.0.0/12"),
                            );
                        } else if pod.contains(&service.network()) {
                            warnings.push(
                                FieldProblem::new(
                                    KIND,
                                    "networking.podSubnet",
                                    format!("pod subnet {pod} contains the service subnet {service}"),
                                )
                                .hint("pods may be given addresses that services use; choose disjoint subnets"),
                            );
                        }
                    }
                }
            }
            Err(message) => problems.push(FieldProblem::new(KIND, "networking.podSubnet", message)),
        }
    }
    if !valid_dns_subdomain(&cluster.networking.dns_domain) {
        problems.push(FieldProblem::new(
            KIND,
            "networking.dnsDomain",
            format!("{:?} is not a DNS domain", cluster.networking.dns_domain),
        ));
    }
    match (&cluster.etcd.local, &cluster.etcd.external) {
        (Some(_), Some(_)) => problems.push(
            FieldProblem::new(KIND, "etcd", "both etcd.local and etcd.external are set")
                .hint("etcd is either local (a static pod) or external; remove one of them"),
        ),
        (None, Some(external)) => {
            if external.endpoints.is_empty() {
                problems.push(FieldProblem::new(
                    KIND,
                    "etcd.external.endpoints",
                    "an external etcd needs at least one endpoint",
                ));
            }
            for (index, endpoint) in external.endpoints.iter().enumerate() {
                if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                    problems.push(
                        FieldProblem::new(
                            KIND,
                            format!("etcd.external.endpoints[{index}]"),
                            format!("{endpoint:?} is not an http(s) URL"),
                        )
                        .hint("write endpoints as https://host:2379"),
                    );
                }
            }
            let tls = [&external.ca_file, &external.cert_file, &external.key_file];
            let set = tls.iter().filter(|value| !value.is_empty()).count();
            if set != 0 && set != 3 {
                problems.push(FieldProblem::new(
                    KIND,
                    "etcd.external",
                    "caFile, certFile and keyFile must be set together",
                ));
            }
        }
        (Some(local), None) => {
            if !local.data_dir.starts_with('/') {
                problems.push(FieldProblem::new(
                    KIND,
                    "etcd.local.dataDir",
                    format!("{:?} is not an absolute path", local.data_dir),
                ));
            }
            for (field, sans) in [
                ("etcd.local.serverCertSANs", &local.server_cert_sans),
                ("etcd.local.peerCertSANs", &local.peer_cert_sans),
            ] {
                sans_valid(KIND, field, sans, problems);
            }
        }
        (None, None) => problems.push(FieldProblem::new(
            KIND,
            "etcd",
            "neither etcd.local nor etcd.external is set",
        )),
    }
    sans_valid(
        KIND,
        "apiServer.certSANs",
        &cluster.api_server.cert_sans,
        problems,
    );
    if !cluster.control_plane_endpoint.is_empty()
        && split_host_port(&cluster.control_plane_endpoint).is_none()
    {
        problems.push(
            FieldProblem::new(
                KIND,
                "controlPlaneEndpoint",
                format!(
                    "{:?} is not a host or host:port",
                    cluster.control_plane_endpoint
                ),
            )
            .hint("write a DNS name or IP address with an optional port, e.g. cp.example.com:6443"),
        );
    }
    if !cluster.certificates_dir.starts_with('/') {
        problems.push(FieldProblem::new(
            KIND,
            "certificatesDir",
            format!("{:?} is not an absolute path", cluster.certificates_dir),
        ));
    }
    if !ENCRYPTION_ALGORITHMS.contains(&cluster.encryption_algorithm.as_str()) {
        problems.push(
            FieldProblem::new(
                KIND,
                "encryptionAlgorithm",
                format!(
                    "{:?} is not a supported algorithm",
                    cluster.encryption_algorithm
                ),
            )
            .hint(format!("use one of {}", ENCRYPTION_ALGORITHMS.join(", "))),
        );
    }
    for (field, period) in [
        (
            "certificateValidityPeriod",
            cluster.certificate_validity_period,
        ),
        (
            "caCertificateValidityPeriod",
            cluster.ca_certificate_validity_period,
        ),
    ] {
        if period == Some(Duration::default()) {
            problems.push(FieldProblem::new(KIND, field, "must be longer than zero"));
        }
    }
    if let (Some(leaf), Some(ca)) = (
        cluster.certificate_validity_period,
        cluster.ca_certificate_validity_period,
    ) {
        if leaf > ca {
            problems.push(
                FieldProblem::new(
                    KIND,
                    "certificateValidityPeriod",
                    format!("{leaf} is longer than caCertificateValidityPeriod {ca}"),
                )
                .hint("a certificate cannot outlive the CA that signs it"),
            );
        }
    }
    for (component, args) in [
        ("apiServer", &cluster.api_server.extra_args),
        ("controllerManager", &cluster.controller_manager.extra_args),
        ("scheduler", &cluster.scheduler.extra_args),
    ] {
        extra_args(KIND, &format!("{component}.extraArgs"), args, problems);
    }
    if let Some(local) = &cluster.etcd.local {
        extra_args(KIND, "etcd.local.extraArgs", &local.extra_args, problems);
    }
    for (component, volumes) in [
        ("apiServer", &cluster.api_server.extra_volumes),
        (
            "controllerManager",
            &cluster.controller_manager.extra_volumes,
        ),
        ("scheduler", &cluster.scheduler.extra_volumes),
    ] {
        for (index, volume) in volumes.iter().enumerate() {
            let field = format!("{component}.extraVolumes[{index}]");
            if volume.name.is_empty() {
                problems.push(FieldProblem::new(
                    KIND,
                    format!("{field}.name"),
                    "a volume needs a name",
                ));
            }
            if !volume.host_path.starts_with('/') {
                problems.push(FieldProblem::new(
                    KIND,
                    format!("{field}.hostPath"),
                    format!("{:?} is not an absolute path", volume.host_path),
                ));
            }
            if !volume.mount_path.starts_with('/') {
                problems.push(FieldProblem::new(
                    KIND,
                    format!("{field}.mountPath"),
                    format!("{:?} is not an absolute path", volume.mount_path),
                ));
            }
        }
    }
}

fn subnet_shape(
    kind: &'static str,
    field: &str,
    subnets: &[IpNet],
    problems: &mut Vec<FieldProblem>,
) {
    if subnets.len() > 2 {
        problems.push(
            FieldProblem::new(kind, field, "has more than two CIDRs")
                .hint("dual-stack takes one IPv4 and one IPv6 CIDR"),
        );
    }
    if subnets.len() == 2 && subnets[0].addr().is_ipv4() == subnets[1].addr().is_ipv4() {
        problems.push(
            FieldProblem::new(kind, field, "has two CIDRs of the same address family")
                .hint("dual-stack takes one IPv4 and one IPv6 CIDR"),
        );
    }
    for subnet in subnets {
        if subnet.trunc() != *subnet {
            problems.push(
                FieldProblem::new(kind, field, format!("{subnet} has host bits set"))
                    .hint(format!("did you mean {}?", subnet.trunc())),
            );
        }
    }
}

fn sans_valid(kind: &'static str, field: &str, sans: &[String], problems: &mut Vec<FieldProblem>) {
    for (index, san) in sans.iter().enumerate() {
        if san.parse::<IpAddr>().is_err() && !valid_dns_name(san) {
            problems.push(FieldProblem::new(
                kind,
                format!("{field}[{index}]"),
                format!("{san:?} is neither an IP address nor a DNS name"),
            ));
        }
    }
}

fn extra_args(
    kind: &'static str,
    field: &str,
    args: &[crate::types::Arg],
    problems: &mut Vec<FieldProblem>,
) {
    for (index, arg) in args.iter().enumerate() {
        if arg.name.is_empty() {
            problems.push(FieldProblem::new(
                kind,
                format!("{field}[{index}].name"),
                "an argument needs a name",
            ));
        } else if arg.name.starts_with('-') {
            problems.push(
                FieldProblem::new(
                    kind,
                    format!("{field}[{index}].name"),
                    format!("{:?} starts with a dash", arg.name),
                )
                .hint(format!(
                    "write the flag name without dashes: {:?}",
                    arg.name.trim_start_matches('-')
                )),
            );
        } else if arg.name.contains('=') || arg.name.contains(char::is_whitespace) {
            problems.push(FieldProblem::new(
                kind,
                format!("{field}[{index}].name"),
                format!("{:?} is not a flag name", arg.name),
            ));
        }
    }
}

fn node_registration(
    kind: &'static str,
    registration: &NodeRegistration,
    problems: &mut Vec<FieldProblem>,
) {
    if registration.name.is_empty() {
        problems.push(
            FieldProblem::new(
                kind,
                "nodeRegistration.name",
                "the node has no name and the hostname is unknown",
            )
            .hint("set nodeRegistration.name"),
        );
    } else if !valid_dns_subdomain(&registration.name) {
        problems.push(
            FieldProblem::new(
                kind,
                "nodeRegistration.name",
                format!("{:?} is not a valid node name", registration.name),
            )
            .hint("node names are lower-case DNS subdomains (a-z, 0-9, '-', '.')"),
        );
    }
    if !(registration.cri_socket.starts_with("unix://")
        || registration.cri_socket.starts_with('/')
        || registration.cri_socket.starts_with("npipe://"))
    {
        problems.push(
            FieldProblem::new(
                kind,
                "nodeRegistration.criSocket",
                format!(
                    "{:?} is not a socket path or unix:// URL",
                    registration.cri_socket
                ),
            )
            .hint("write it as unix:///var/run/containerd/containerd.sock"),
        );
    }
    if !["Always", "IfNotPresent", "Never"].contains(&registration.image_pull_policy.as_str()) {
        problems.push(
            FieldProblem::new(
                kind,
                "nodeRegistration.imagePullPolicy",
                format!("{:?} is not a pull policy", registration.image_pull_policy),
            )
            .hint("use Always, IfNotPresent or Never"),
        );
    }
    for (index, taint) in registration.taints.iter().flatten().enumerate() {
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&taint.effect.as_str()) {
            problems.push(
                FieldProblem::new(
                    kind,
                    format!("nodeRegistration.taints[{index}].effect"),
                    format!("{:?} is not a taint effect", taint.effect),
                )
                .hint("use NoSchedule, PreferNoSchedule or NoExecute"),
            );
        }
        if taint.key.is_empty() {
            problems.push(FieldProblem::new(
                kind,
                format!("nodeRegistration.taints[{index}].key"),
                "a taint needs a key",
            ));
        }
    }
    extra_args(
        kind,
        "nodeRegistration.kubeletExtraArgs",
        &registration.kubelet_extra_args,
        problems,
    );
}

fn init(init: &InitConfiguration, problems: &mut Vec<FieldProblem>) {
    const KIND: &str = "InitConfiguration";
    for (index, token) in init.bootstrap_tokens.iter().enumerate() {
        if !token.token.is_empty() && split_token(&token.token).is_none() {
            problems.push(
                FieldProblem::new(KIND, format!("bootstrapTokens[{index}].token"), "the token is not of the form [a-z0-9]{6}.[a-z0-9]{16}")
                    .hint("generate one with `bosun token generate`, or leave the token out and bosun creates one"),
            );
        }
        for (usage_index, usage) in token.usages.iter().enumerate() {
            if !["signing", "authentication"].contains(&usage.as_str()) {
                problems.push(
                    FieldProblem::new(
                        KIND,
                        format!("bootstrapTokens[{index}].usages[{usage_index}]"),
                        format!("{usage:?} is not a token usage"),
                    )
                    .hint("use signing and/or authentication"),
                );
            }
        }
        for (group_index, group) in token.groups.iter().enumerate() {
            if !group.starts_with("system:bootstrappers:") {
                problems.push(FieldProblem::new(
                    KIND,
                    format!("bootstrapTokens[{index}].groups[{group_index}]"),
                    format!("{group:?} does not start with system:bootstrappers:"),
                ));
            }
        }
    }
    let address = &init.local_api_endpoint.advertise_address;
    if address.is_empty() {
        problems.push(
            FieldProblem::new(
                KIND,
                "localAPIEndpoint.advertiseAddress",
                "no advertise address is set and the host has no default route to take one from",
            )
            .hint("set localAPIEndpoint.advertiseAddress to this node's IP address"),
        );
    } else if address.parse::<IpAddr>().is_err() {
        problems.push(FieldProblem::new(
            KIND,
            "localAPIEndpoint.advertiseAddress",
            format!("{address:?} is not an IP address"),
        ));
    }
    port(
        KIND,
        "localAPIEndpoint.bindPort",
        init.local_api_endpoint.bind_port,
        problems,
    );
    node_registration(KIND, &init.node_registration, problems);
    if !init.certificate_key.is_empty() && !valid_certificate_key(&init.certificate_key) {
        problems.push(FieldProblem::new(
            KIND,
            "certificateKey",
            "the certificate key is not 64 hexadecimal characters (32 bytes)",
        ));
    }
    if let Some(timeouts) = &init.timeouts {
        timeouts_positive(KIND, timeouts, problems);
    }
}

fn join_configuration(join: &JoinConfiguration, problems: &mut Vec<FieldProblem>) {
    const KIND: &str = "JoinConfiguration";
    node_registration(KIND, &join.node_registration, problems);
    match (&join.discovery.bootstrap_token, &join.discovery.file) {
        (Some(_), Some(_)) => problems.push(
            FieldProblem::new(KIND, "discovery", "both discovery.bootstrapToken and discovery.file are set").hint("use one of them"),
        ),
        (None, None) => problems.push(
            FieldProblem::new(KIND, "discovery", "neither discovery.bootstrapToken nor discovery.file is set")
                .hint("set discovery.bootstrapToken (token, apiServerEndpoint, caCertHashes) or discovery.file.kubeConfigPath"),
        ),
        (Some(token), None) => {
            if split_token(&token.token).is_none() {
                problems.push(FieldProblem::new(KIND, "discovery.bootstrapToken.token", "the token is not of the form [a-z0-9]{6}.[a-z0-9]{16}"));
            }
            if token.api_server_endpoint.is_empty() || split_host_port(&token.api_server_endpoint).is_none() {
                problems.push(
                    FieldProblem::new(KIND, "discovery.bootstrapToken.apiServerEndpoint", format!("{:?} is not a host:port", token.api_server_endpoint))
                        .hint("write the control-plane endpoint, e.g. 10.0.0.10:6443"),
                );
            }
            if token.ca_cert_hashes.is_empty() && !token.unsafe_skip_ca_verification {
                problems.push(
                    FieldProblem::new(KIND, "discovery.bootstrapToken.caCertHashes", "no CA certificate hash is given and CA verification is not skipped")
                        .hint("add sha256:<hash> from `bosun token create --print-join-command`, or set unsafeSkipCAVerification: true"),
                );
            }
            for (index, hash) in token.ca_cert_hashes.iter().enumerate() {
                let valid = hash
                    .strip_prefix("sha256:")
                    .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()));
                if !valid {
                    problems.push(FieldProblem::new(KIND, format!("discovery.bootstrapToken.caCertHashes[{index}]"), format!("{hash:?} is not sha256:<64 hex digits>")));
                }
            }
        }
        (None, Some(file)) => {
            if file.kube_config_path.is_empty() {
                problems.push(FieldProblem::new(KIND, "discovery.file.kubeConfigPath", "the path is empty"));
            }
        }
    }
    if !join.discovery.tls_bootstrap_token.is_empty()
        && split_token(&join.discovery.tls_bootstrap_token).is_none()
    {
        problems.push(FieldProblem::new(
            KIND,
            "discovery.tlsBootstrapToken",
            "the token is not of the form [a-z0-9]{6}.[a-z0-9]{16}",
        ));
    }
    if let Some(control_plane) = &join.control_plane {
        let address = &control_plane.local_api_endpoint.advertise_address;
        if address.is_empty() {
            problems.push(
                FieldProblem::new(KIND, "controlPlane.localAPIEndpoint.advertiseAddress", "no advertise address is set and the host has no default route to take one from")
                    .hint("set controlPlane.localAPIEndpoint.advertiseAddress to this node's IP address"),
            );
        } else if address.parse::<IpAddr>().is_err() {
            problems.push(FieldProblem::new(
                KIND,
                "controlPlane.localAPIEndpoint.advertiseAddress",
                format!("{address:?} is not an IP address"),
            ));
        }
        port(
            KIND,
            "controlPlane.localAPIEndpoint.bindPort",
            control_plane.local_api_endpoint.bind_port,
            problems,
        );
        if !control_plane.certificate_key.is_empty()
            && !valid_certificate_key(&control_plane.certificate_key)
        {
            problems.push(FieldProblem::new(
                KIND,
                "controlPlane.certificateKey",
                "the certificate key is not 64 hexadecimal characters (32 bytes)",
            ));
        }
    }
    if let Some(timeouts) = &join.timeouts {
        timeouts_positive(KIND, timeouts, problems);
    }
}

fn kubelet(config: &Config, problems: &mut Vec<FieldProblem>) {
    const KIND: &str = "KubeletConfiguration";
    let kubelet = &config.kubelet;
    if !["systemd", "cgroupfs"].contains(&kubelet.cgroup_driver.as_str()) {
        problems.push(
            FieldProblem::new(
                KIND,
                "cgroupDriver",
                format!("{:?} is not a cgroup driver", kubelet.cgroup_driver),
            )
            .hint("use systemd or cgroupfs"),
        );
    }
    for (index, address) in kubelet.cluster_dns.iter().enumerate() {
        if address.parse::<IpAddr>().is_err() {
            problems.push(FieldProblem::new(
                KIND,
                format!("clusterDNS[{index}]"),
                format!("{address:?} is not an IP address"),
            ));
        }
    }
    if !["Webhook", "AlwaysAllow"].contains(&kubelet.authorization.mode.as_str()) {
        problems.push(
            FieldProblem::new(
                KIND,
                "authorization.mode",
                format!(
                    "{:?} is not an authorization mode",
                    kubelet.authorization.mode
                ),
            )
            .hint("use Webhook or AlwaysAllow"),
        );
    }
    const PROXY: &str = "KubeProxyConfiguration";
    let proxy = &config.kube_proxy;
    if proxy.bind_address.parse::<IpAddr>().is_err() {
        problems.push(FieldProblem::new(
            PROXY,
            "bindAddress",
            format!("{:?} is not an IP address", proxy.bind_address),
        ));
    }
    // A clusterCIDR copied from networking.podSubnet was already checked there.
    if proxy.from_user
        && !proxy.cluster_cidr.is_empty()
        && proxy.cluster_cidr != config.cluster.networking.pod_subnet
    {
        if let Err(message) = parse_cidrs(&proxy.cluster_cidr) {
            problems.push(FieldProblem::new(PROXY, "clusterCIDR", message));
        }
    }
    if !["", "iptables", "ipvs", "nftables", "kernelspace"].contains(&proxy.mode.as_str()) {
        problems.push(
            FieldProblem::new(
                PROXY,
                "mode",
                format!("{:?} is not a proxy mode", proxy.mode),
            )
            .hint("use iptables, ipvs or nftables"),
        );
    }
}

fn timeouts_positive(kind: &'static str, timeouts: &Timeouts, problems: &mut Vec<FieldProblem>) {
    for (field, value) in [
        (
            "controlPlaneComponentHealthCheck",
            timeouts.control_plane_component_health_check,
        ),
        ("kubeletHealthCheck", timeouts.kubelet_health_check),
        ("kubernetesAPICall", timeouts.kubernetes_api_call),
        ("etcdAPICall", timeouts.etcd_api_call),
        ("tlsBootstrap", timeouts.tls_bootstrap),
        ("discovery", timeouts.discovery),
        ("upgradeManifests", timeouts.upgrade_manifests),
    ] {
        if value == Some(Duration::default()) {
            problems.push(FieldProblem::new(
                kind,
                format!("timeouts.{field}"),
                "a timeout must be longer than zero",
            ));
        }
    }
}

fn port(kind: &'static str, field: &str, port: i32, problems: &mut Vec<FieldProblem>) {
    if !(1..=65535).contains(&port) {
        problems.push(FieldProblem::new(
            kind,
            field,
            format!("{port} is not a port number (1-65535)"),
        ));
    }
}

fn valid_certificate_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// `host` or `host:port`, with IPv6 in brackets when a port is given.
pub fn split_host_port(endpoint: &str) -> Option<(String, Option<u16>)> {
    if let Ok(ip) = endpoint.parse::<IpAddr>() {
        return Some((ip.to_string(), None));
    }
    if let Some(rest) = endpoint.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port.parse::<u16>().ok().filter(|port| *port != 0)?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    let (host, port) = match endpoint.rsplit_once(':') {
        Some((host, port)) => (
            host,
            Some(port.parse::<u16>().ok().filter(|port| *port != 0)?),
        ),
        None => (endpoint, None),
    };
    (host.parse::<IpAddr>().is_ok() || valid_dns_name(host)).then(|| (host.to_owned(), port))
}

/// A DNS name (labels of letters, digits and '-', optionally a leading `*.` wildcard).
pub fn valid_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A lower-case RFC 1123 subdomain (node names, DNS domains).
pub fn valid_dns_subdomain(name: &str) -> bool {
    valid_dns_name(name)
        && !name.starts_with("*.")
        && name.bytes().all(|byte| !byte.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_a_six_character_id_and_a_sixteen_character_secret() {
        assert_eq!(
            split_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(split_token("ABCDEF.0123456789abcdef"), None);
        assert_eq!(split_token("abcdef0123456789abcdef"), None);
        assert_eq!(split_token("abcde.0123456789abcdefg"), None);
    }

    #[test]
    fn endpoints_are_host_or_host_port() {
        assert_eq!(
            split_host_port("cp.example.com:6443"),
            Some(("cp.example.com".to_owned(), Some(6443)))
        );
        assert_eq!(
            split_host_port("10.0.0.1"),
            Some(("10.0.0.1".to_owned(), None))
        );
        assert_eq!(
            split_host_port("[fd00::1]:6443"),
            Some(("fd00::1".to_owned(), Some(6443)))
        );
        assert_eq!(
            split_host_port("fd00::1"),
            Some(("fd00::1".to_owned(), None))
        );
        assert_eq!(split_host_port("cp:port"), None);
        assert_eq!(split_host_port("bad host"), None);
    }
}
