//! The control-plane static pods as kubeadm builds them (phases/controlplane/manifests.go, volumes.go,
//! phases/etcd/local.go): flags, probes, volumes, environment and annotations, from the configuration and a few
//! facts about the node. The result is a [`StaticPod`] context for the `static-pod.yaml` template.

use std::net::IpAddr;

use bosun_config::{Arg, Config, ControlPlaneComponent, EnvVar as ConfigEnvVar, HostPathMount};

use super::args::{args, command_line, value_of};
use super::versions::{etcd_is_3_6_or_newer, images_for};
use super::NodeError;
use crate::paths;
use crate::render::{
    ContainerPort, EnvVar, HostPathVolume, NameValue, Probe, ProbeKind, Resources, StaticPod,
    VolumeMount,
};

/// kube-apiserver's static pod name.
pub const KUBE_APISERVER: &str = "kube-apiserver";
/// kube-controller-manager's static pod name.
pub const KUBE_CONTROLLER_MANAGER: &str = "kube-controller-manager";
/// kube-scheduler's static pod name.
pub const KUBE_SCHEDULER: &str = "kube-scheduler";
/// etcd's static pod name.
pub const ETCD: &str = "etcd";

/// Ports of the control plane (constants.go).
pub const KUBE_CONTROLLER_MANAGER_PORT: u16 = 10257;
pub const KUBE_SCHEDULER_PORT: u16 = 10259;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
pub const ETCD_METRICS_PORT: u16 = 2381;

/// The annotation that records the API server's advertised endpoint on its mirror pod.
pub const APISERVER_ENDPOINT_ANNOTATION: &str =
    "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint";
/// The annotation that records etcd's client URL on its mirror pod.
pub const ETCD_CLIENT_URLS_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";

/// The flexvolume plugin directory the controller-manager mounts (its `flex-volume-plugin-dir` default).
pub const FLEXVOLUME_DIR: &str = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec";

/// Directories with CA bundles that kubeadm mounts into the API server and controller-manager when the host has
/// them, with their volume names.
pub const CA_CERT_DIRS: [(&str, &str); 5] = [
    ("etc-pki-ca-trust", "/etc/pki/ca-trust"),
    ("etc-pki-tls-certs", "/etc/pki/tls/certs"),
    ("etc-ca-certificates", "/etc/ca-certificates"),
    ("usr-share-ca-certificates", "/usr/share/ca-certificates"),
    (
        "usr-local-share-ca-certificates",
        "/usr/local/share/ca-certificates",
    ),
];

/// What the manifests depend on besides the configuration: facts about the node, gathered by the phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestFacts {
    /// Which of [`CA_CERT_DIRS`] exist on the node.
    pub existing_ca_dirs: Vec<String>,
    /// `ca.crt` exists without `ca.key`: the controller-manager does not sign certificates.
    pub external_ca: bool,
    /// The `*_proxy` environment of the process running bosun, passed to the components as kubeadm does.
    pub proxy_env: Vec<(String, String)>,
}

/// The probe timings kubeadm uses; the startup probe's failure threshold follows the control-plane health timeout.
#[derive(Debug, Clone, Copy)]
struct ProbeTimings {
    startup_failure_threshold: u32,
}

impl ProbeTimings {
    fn from_config(config: &Config) -> Self {
        let timeout = config
            .init_timeouts()
            .control_plane_component_health_check
            .map(|duration| duration.as_std().as_secs())
            .unwrap_or(240);
        // ceil(timeout / period of 10 s)
        let threshold = timeout.div_ceil(10).max(1);
        ProbeTimings {
            startup_failure_threshold: u32::try_from(threshold).unwrap_or(u32::MAX),
        }
    }

    fn probes(
        &self,
        host: Option<String>,
        scheme: &str,
        port: &str,
        paths: [Option<&str>; 3],
    ) -> Vec<Probe> {
        let [liveness, readiness, startup] = paths;
        let mut probes = Vec::new();
        let probe =
            |kind, path: &str, initial_delay_seconds, period_seconds, failure_threshold| Probe {
                kind,
                host: host.clone(),
                path: path.to_owned(),
                port: port.to_owned(),
                scheme: scheme.to_owned(),
                initial_delay_seconds,
                timeout_seconds: 15,
                period_seconds,
                failure_threshold,
            };
        if let Some(path) = liveness {
            probes.push(probe(ProbeKind::Liveness, path, 10, 10, 8));
        }
        if let Some(path) = readiness {
            probes.push(probe(ProbeKind::Readiness, path, 0, 1, 3));
        }
        if let Some(path) = startup {
            probes.push(probe(
                ProbeKind::Startup,
                path,
                10,
                10,
                self.startup_failure_threshold,
            ));
        }
        probes
    }
}

/// The name of kubeadm's named container port that the probes use.
pub const PROBE_PORT_NAME: &str = "probe-port";

fn image(repository: &str, name: &str, tag: &str) -> String {
    format!("{}/{name}:{tag}", repository.trim_end_matches('/'))
}

fn host_port(host: &str, port: u16) -> String {
    bosun_config::join_host_port(host, port)
}

fn pki(config: &Config, relative: &str) -> String {
    format!(
        "{}/{relative}",
        config.cluster.certificates_dir.trim_end_matches('/')
    )
}

fn volume(
    name: &str,
    path: &str,
    path_type: &str,
    read_only: bool,
) -> (HostPathVolume, VolumeMount) {
    (
        HostPathVolume {
            name: name.to_owned(),
            host_path: path.to_owned(),
            path_type: (!path_type.is_empty()).then(|| path_type.to_owned()),
        },
        VolumeMount {
            name: name.to_owned(),
            mount_path: path.to_owned(),
            read_only,
        },
    )
}

/// The host's CA bundle directories that exist, as volumes.
fn ca_dir_volumes(facts: &ManifestFacts) -> Vec<(HostPathVolume, VolumeMount)> {
    CA_CERT_DIRS
        .iter()
        .filter(|(_, path)| {
            facts
                .existing_ca_dirs
                .iter()
                .any(|existing| existing == path)
        })
        .map(|(name, path)| volume(name, path, "DirectoryOrCreate", true))
        .collect()
}

/// Adds the user's extra volumes (replacing same-named ones), then sorts volumes and mounts by name.
fn finish_volumes(
    mut volumes: Vec<(HostPathVolume, VolumeMount)>,
    extra: &[HostPathMount],
) -> (Vec<HostPathVolume>, Vec<VolumeMount>) {
    for mount in extra {
        volumes.retain(|(existing, _)| existing.name != mount.name);
        volumes.push((
            HostPathVolume {
                name: mount.name.clone(),
                host_path: mount.host_path.clone(),
                path_type: (!mount.path_type.is_empty()).then(|| mount.path_type.clone()),
            },
            VolumeMount {
                name: mount.name.clone(),
                mount_path: mount.mount_path.clone(),
                read_only: mount.read_only,
            },
        ));
    }
    volumes.sort_by(|left, right| left.0.name.cmp(&right.0.name));
    let (mut pod_volumes, mut mounts): (Vec<_>, Vec<_>) = volumes.into_iter().unzip();
    pod_volumes.dedup_by(|left, right| left.name == right.name);
    mounts.dedup_by(|left, right| left.name == right.name);
    (pod_volumes, mounts)
}

/// The proxy environment plus the user's extra environment (which wins by name), sorted by name.
fn environment(facts: &ManifestFacts, extra: &[ConfigEnvVar]) -> Result<Vec<EnvVar>, NodeError> {
    let mut variables: Vec<EnvVar> = facts
        .proxy_env
        .iter()
        .filter(|(name, _)| !extra.iter().any(|variable| &variable.name == name))
        .map(|(name, value)| EnvVar {
            name: name.clone(),
            value: Some(value.clone()),
            value_from_json: None,
        })
        .collect();
    for variable in extra {
        let value_from_json = variable
            .value_from
            .as_ref()
            .map(|source| {
                serde_json::to_string(source).map_err(|error| NodeError::Invalid {
                    what: format!("extraEnvs {}", variable.name),
                    reason: format!("its valueFrom cannot be written as JSON: {error}"),
                })
            })
            .transpose()?;
        variables.retain(|existing| existing.name != variable.name);
        variables.push(EnvVar {
            name: variable.name.clone(),
            value: Some(variable.value.clone()),
            value_from_json,
        });
    }
    variables.sort();
    Ok(variables)
}

/// A probe host from a bind address: empty for the wildcard addresses (the pod IP is used), else the address.
fn probe_host_from_bind(bind_address: Option<&str>) -> Option<String> {
    match bind_address {
        None => Some("127.0.0.1".to_owned()),
        Some("0.0.0.0") | Some("::") | Some("") => None,
        Some(address) => Some(address.to_owned()),
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call per component, each argument a distinct part of the pod"
)]
fn pod(
    config: &Config,
    name: &str,
    image: String,
    command: Vec<String>,
    env: Vec<EnvVar>,
    probes: Vec<Probe>,
    port: u16,
    resources: Resources,
    annotations: Vec<NameValue>,
    (volumes, volume_mounts): (Vec<HostPathVolume>, Vec<VolumeMount>),
) -> StaticPod {
    let pull_policy = &config.node_registration().image_pull_policy;
    StaticPod {
        name: name.to_owned(),
        namespace: "kube-system".to_owned(),
        labels: vec![
            NameValue::new("component", name),
            NameValue::new("tier", "control-plane"),
        ],
        annotations,
        image,
        image_pull_policy: if pull_policy.is_empty() {
            "IfNotPresent".to_owned()
        } else {
            pull_policy.clone()
        },
        command,
        env,
        probes,
        ports: vec![ContainerPort {
            name: PROBE_PORT_NAME.to_owned(),
            container_port: port,
        }],
        resources,
        run_as_user: None,
        volumes,
        volume_mounts,
        priority: 2_000_001_000,
        priority_class_name: "system-node-critical".to_owned(),
    }
}

fn advertise_address(config: &Config) -> Result<IpAddr, NodeError> {
    config.advertise_address().map_err(NodeError::Config)
}

fn component_extra(
    component: &ControlPlaneComponent,
) -> (&[Arg], &[HostPathMount], &[ConfigEnvVar]) {
    (
        &component.extra_args,
        &component.extra_volumes,
        &component.extra_envs,
    )
}

/// The local etcd's client URL the API server uses: etcd's `advertise-client-urls` extra argument if set, else
/// the loopback address of the advertise address's family.
fn local_etcd_servers(config: &Config, advertise: IpAddr) -> String {
    if let Some(urls) = config
        .cluster
        .etcd
        .local
        .as_ref()
        .and_then(|local| value_of(&local.extra_args, "advertise-client-urls"))
    {
        return urls.to_owned();
    }
    let loopback = if advertise.is_ipv6() {
        "::1"
    } else {
        "127.0.0.1"
    };
    format!("https://{}", host_port(loopback, ETCD_CLIENT_PORT))
}

/// The kube-apiserver static pod.
pub fn kube_apiserver(config: &Config, facts: &ManifestFacts) -> Result<StaticPod, NodeError> {
    let advertise = advertise_address(config)?;
    let port = config.bind_port();
    let cluster = &config.cluster;
    let (extra_args, extra_volumes, extra_envs) = (
        &cluster.api_server.extra_args,
        &cluster.api_server.extra_volumes,
        &cluster.api_server.extra_envs,
    );
    let mut defaults = args([
        ("advertise-address", advertise.to_string()),
        ("allow-privileged", "true".to_owned()),
        ("client-ca-file", pki(config, "ca.crt")),
        ("enable-admission-plugins", "NodeRestriction".to_owned()),
        ("enable-bootstrap-token-auth", "true".to_owned()),
        (
            "kubelet-client-certificate",
            pki(config, "apiserver-kubelet-client.crt"),
        ),
        (
            "kubelet-client-key",
            pki(config, "apiserver-kubelet-client.key"),
        ),
        (
            "kubelet-preferred-address-types",
            "InternalIP,ExternalIP,Hostname".to_owned(),
        ),
        (
            "proxy-client-cert-file",
            pki(config, "front-proxy-client.crt"),
        ),
        (
            "proxy-client-key-file",
            pki(config, "front-proxy-client.key"),
        ),
        (
            "requestheader-allowed-names",
            "front-proxy-client".to_owned(),
        ),
        (
            "requestheader-client-ca-file",
            pki(config, "front-proxy-ca.crt"),
        ),
        (
            "requestheader-extra-headers-prefix",
            "X-Remote-Extra-".to_owned(),
        ),
        ("requestheader-group-headers", "X-Remote-Group".to_owned()),
        ("requestheader-username-headers", "X-Remote-User".to_owned()),
        ("secure-port", port.to_string()),
        (
            "service-account-issuer",
            format!(
                "https://kubernetes.default.svc.{}",
                cluster.networking.dns_domain
            ),
        ),
        ("service-account-key-file", pki(config, "sa.pub")),
        ("service-account-signing-key-file", pki(config, "sa.key")),
        (
            "service-cluster-ip-range",
            cluster.networking.service_subnet.clone(),
        ),
        ("tls-cert-file", pki(config, "apiserver.crt")),
        ("tls-private-key-file", pki(config, "apiserver.key")),
    ]);
    // With a structured authorization configuration the modes come from that file, not from the flag.
    if value_of(extra_args, "authorization-config").is_none() {
        defaults.push(Arg::new("authorization-mode", "Node,RBAC"));
    }
    let mut volumes = vec![
        volume("ca-certs", "/etc/ssl/certs", "DirectoryOrCreate", true),
        volume(
            "k8s-certs",
            &cluster.certificates_dir,
            "DirectoryOrCreate",
            true,
        ),
    ];
    volumes.extend(ca_dir_volumes(facts));
    match config.external_etcd() {
        Some(external) => {
            defaults.push(Arg::new("etcd-servers", external.endpoints.join(",")));
            let files = [
                ("etcd-cafile", &external.ca_file),
                ("etcd-certfile", &external.cert_file),
                ("etcd-keyfile", &external.key_file),
            ];
            let mut mounted: Vec<String> = volumes
                .iter()
                .map(|(volume, _)| volume.host_path.clone())
                .collect();
            let mut index = 0;
            for (flag, path) in files {
                if path.is_empty() {
                    continue;
                }
                defaults.push(Arg::new(flag, path.clone()));
                let directory = std::path::Path::new(path)
                    .parent()
                    .map(|parent| parent.display().to_string())
                    .unwrap_or_else(|| "/".to_owned());
                let covered = mounted.iter().any(|existing| {
                    directory == *existing
                        || directory.starts_with(&format!("{}/", existing.trim_end_matches('/')))
                });
                if !covered {
                    volumes.push(volume(
                        &format!("etcd-certs-{index}"),
                        &directory,
                        "DirectoryOrCreate",
                        true,
                    ));
                    mounted.push(directory);
                    index += 1;
                }
            }
        }
        None => {
            defaults.extend(args([
                ("etcd-cafile", pki(config, "etcd/ca.crt")),
                ("etcd-certfile", pki(config, "apiserver-etcd-client.crt")),
                ("etcd-keyfile", pki(config, "apiserver-etcd-client.key")),
                ("etcd-servers", local_etcd_servers(config, advertise)),
            ]));
        }
    }
    let timings = ProbeTimings::from_config(config);
    let probes = timings.probes(
        Some(advertise.to_string()),
        "HTTPS",
        PROBE_PORT_NAME,
        [Some("/livez"), Some("/readyz"), Some("/livez")],
    );
    let mut command = vec![KUBE_APISERVER.to_owned()];
    command.extend(command_line(&defaults, extra_args));
    Ok(pod(
        config,
        KUBE_APISERVER,
        image(
            &cluster.image_repository,
            KUBE_APISERVER,
            &cluster.kubernetes_version,
        ),
        command,
        environment(facts, extra_envs)?,
        probes,
        port,
        Resources {
            cpu: Some("250m".to_owned()),
            memory: None,
        },
        vec![NameValue::new(
            APISERVER_ENDPOINT_ANNOTATION,
            host_port(&advertise.to_string(), port),
        )],
        finish_volumes(volumes, extra_volumes),
    ))
}

/// The kube-controller-manager static pod.
pub fn kube_controller_manager(
    config: &Config,
    facts: &ManifestFacts,
) -> Result<StaticPod, NodeError> {
    let cluster = &config.cluster;
    let (extra_args, extra_volumes, extra_envs) = component_extra(&cluster.controller_manager);
    let kubeconfig = paths::CONTROLLER_MANAGER_CONF.to_owned();
    let (signing_cert, signing_key) = if facts.external_ca {
        (String::new(), String::new())
    } else {
        (pki(config, "ca.crt"), pki(config, "ca.key"))
    };
    let mut defaults = args([
        ("authentication-kubeconfig", kubeconfig.clone()),
        ("authorization-kubeconfig", kubeconfig.clone()),
        ("bind-address", "127.0.0.1".to_owned()),
        ("client-ca-file", pki(config, "ca.crt")),
        ("cluster-name", cluster.cluster_name.clone()),
        ("cluster-signing-cert-file", signing_cert),
        ("cluster-signing-key-file", signing_key),
        ("controllers", "*,bootstrapsigner,tokencleaner".to_owned()),
        ("kubeconfig", kubeconfig.clone()),
        ("leader-elect", "true".to_owned()),
        (
            "requestheader-client-ca-file",
            pki(config, "front-proxy-ca.crt"),
        ),
        ("root-ca-file", pki(config, "ca.crt")),
        ("service-account-private-key-file", pki(config, "sa.key")),
        ("use-service-account-credentials", "true".to_owned()),
    ]);
    if !cluster.networking.pod_subnet.is_empty() {
        defaults.extend(args([
            ("allocate-node-cidrs", "true".to_owned()),
            ("cluster-cidr", cluster.networking.pod_subnet.clone()),
            (
                "service-cluster-ip-range",
                cluster.networking.service_subnet.clone(),
            ),
        ]));
    }
    let flexvolume_dir = value_of(extra_args, "flex-volume-plugin-dir")
        .unwrap_or(FLEXVOLUME_DIR)
        .to_owned();
    let mut volumes = vec![
        volume("ca-certs", "/etc/ssl/certs", "DirectoryOrCreate", true),
        volume(
            "k8s-certs",
            &cluster.certificates_dir,
            "DirectoryOrCreate",
            true,
        ),
        volume("kubeconfig", &kubeconfig, "FileOrCreate", true),
        volume(
            "flexvolume-dir",
            &flexvolume_dir,
            "DirectoryOrCreate",
            false,
        ),
    ];
    volumes.extend(ca_dir_volumes(facts));
    let probe_host = probe_host_from_bind(value_of(extra_args, "bind-address"));
    let probes = ProbeTimings::from_config(config).probes(
        probe_host,
        "HTTPS",
        PROBE_PORT_NAME,
        [Some("/healthz"), None, Some("/healthz")],
    );
    let mut command = vec![KUBE_CONTROLLER_MANAGER.to_owned()];
    command.extend(command_line(&defaults, extra_args));
    Ok(pod(
        config,
        KUBE_CONTROLLER_MANAGER,
        image(
            &cluster.image_repository,
            KUBE_CONTROLLER_MANAGER,
            &cluster.kubernetes_version,
        ),
        command,
        environment(facts, extra_envs)?,
        probes,
        KUBE_CONTROLLER_MANAGER_PORT,
        Resources {
            cpu: Some("200m".to_owned()),
            memory: None,
        },
        Vec::new(),
        finish_volumes(volumes, extra_volumes),
    ))
}

/// The kube-scheduler static pod.
pub fn kube_scheduler(config: &Config, facts: &ManifestFacts) -> Result<StaticPod, NodeError> {
    let cluster = &config.cluster;
    let (extra_args, extra_volumes, extra_envs) = component_extra(&cluster.scheduler);
    let kubeconfig = paths::SCHEDULER_CONF.to_owned();
    let defaults = args([
        ("authentication-kubeconfig", kubeconfig.clone()),
        ("authorization-kubeconfig", kubeconfig.clone()),
        ("bind-address", "127.0.0.1".to_owned()),
        ("kubeconfig", kubeconfig.clone()),
        ("leader-elect", "true".to_owned()),
    ]);
    let volumes = vec![volume("kubeconfig", &kubeconfig, "FileOrCreate", true)];
    let probe_host = probe_host_from_bind(value_of(extra_args, "bind-address"));
    let probes = ProbeTimings::from_config(config).probes(
        probe_host,
        "HTTPS",
        PROBE_PORT_NAME,
        // kubeadm 1.35 probes the scheduler on /livez and /readyz (the controller-manager stays on /healthz).
        [Some("/livez"), Some("/readyz"), Some("/livez")],
    );
    let mut command = vec![KUBE_SCHEDULER.to_owned()];
    command.extend(command_line(&defaults, extra_args));
    Ok(pod(
        config,
        KUBE_SCHEDULER,
        image(
            &cluster.image_repository,
            KUBE_SCHEDULER,
            &cluster.kubernetes_version,
        ),
        command,
        environment(facts, extra_envs)?,
        probes,
        KUBE_SCHEDULER_PORT,
        Resources {
            cpu: Some("100m".to_owned()),
            memory: None,
        },
        Vec::new(),
        finish_volumes(volumes, extra_volumes),
    ))
}

/// Other members of an existing etcd cluster, for a joining control-plane node (`name=peerURL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    pub name: String,
    pub peer_url: String,
}

/// The local etcd static pod. `members` is empty for the first node; on join it lists the existing members (this
/// node included) and the pod gets `--initial-cluster-state=existing`.
pub fn etcd(
    config: &Config,
    facts: &ManifestFacts,
    members: &[EtcdMember],
) -> Result<StaticPod, NodeError> {
    let cluster = &config.cluster;
    let local = cluster
        .etcd
        .local
        .as_ref()
        .ok_or_else(|| NodeError::Invalid {
            what: "ClusterConfiguration etcd".to_owned(),
            reason: "etcd is external, so bosun runs no local etcd".to_owned(),
        })?;
    let advertise = advertise_address(config)?;
    let node_name = config.node_registration().name.clone();
    let advertise_host = advertise.to_string();
    let loopback = if advertise.is_ipv6() {
        "::1"
    } else {
        "127.0.0.1"
    };
    let client_url = format!("https://{}", host_port(&advertise_host, ETCD_CLIENT_PORT));
    let peer_url = format!("https://{}", host_port(&advertise_host, ETCD_PEER_PORT));
    let metrics_url = format!("http://{}", host_port(loopback, ETCD_METRICS_PORT));
    let images = images_for(&config.kubernetes_version().map_err(NodeError::Config)?);
    let tag = if local.image_tag.is_empty() {
        images.etcd.to_owned()
    } else {
        local.image_tag.clone()
    };
    let repository = if local.image_repository.is_empty() {
        &cluster.image_repository
    } else {
        &local.image_repository
    };
    let initial_cluster = if members.is_empty() {
        format!("{node_name}={peer_url}")
    } else {
        members
            .iter()
            .map(|member| format!("{}={}", member.name, member.peer_url))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut defaults = args([
        ("advertise-client-urls", client_url.clone()),
        ("cert-file", pki(config, "etcd/server.crt")),
        ("client-cert-auth", "true".to_owned()),
        ("data-dir", local.data_dir.clone()),
        ("initial-advertise-peer-urls", peer_url.clone()),
        ("initial-cluster", initial_cluster),
        ("key-file", pki(config, "etcd/server.key")),
        (
            "listen-client-urls",
            listen_client_urls(loopback, &advertise_host, &client_url),
        ),
        ("listen-metrics-urls", metrics_url),
        ("listen-peer-urls", peer_url),
        ("name", node_name),
        ("peer-cert-file", pki(config, "etcd/peer.crt")),
        ("peer-client-cert-auth", "true".to_owned()),
        ("peer-key-file", pki(config, "etcd/peer.key")),
        ("peer-trusted-ca-file", pki(config, "etcd/ca.crt")),
        ("snapshot-count", "10000".to_owned()),
        ("trusted-ca-file", pki(config, "etcd/ca.crt")),
    ]);
    if !members.is_empty() {
        defaults.push(Arg::new("initial-cluster-state", "existing"));
    }
    if etcd_is_3_6_or_newer(&tag) {
        defaults.extend(args([
            ("feature-gates", "InitialCorruptCheck=true"),
            ("watch-progress-notify-interval", "5s"),
        ]));
    } else {
        defaults.extend(args([
            ("experimental-initial-corrupt-check", "true"),
            ("experimental-watch-progress-notify-interval", "5s"),
        ]));
    }
    // The probes go to the first metrics URL (plain HTTP), whatever the user set it to.
    let metrics = value_of(&local.extra_args, "listen-metrics-urls")
        .or_else(|| value_of(&defaults, "listen-metrics-urls"))
        .unwrap_or_default()
        .split(',')
        .next()
        .unwrap_or_default()
        .to_owned();
    let (probe_scheme, probe_host, probe_port) =
        split_url(&metrics).ok_or_else(|| NodeError::Invalid {
            what: "ClusterConfiguration etcd.local.extraArgs listen-metrics-urls".to_owned(),
            reason: format!("{metrics:?} is not a URL with a host and a port"),
        })?;
    let probes = ProbeTimings::from_config(config).probes(
        Some(probe_host),
        &probe_scheme,
        PROBE_PORT_NAME,
        [Some("/livez"), Some("/readyz"), Some("/readyz")],
    );
    let volumes = vec![
        volume("etcd-data", &local.data_dir, "DirectoryOrCreate", false),
        volume(
            "etcd-certs",
            &pki(config, "etcd"),
            "DirectoryOrCreate",
            false,
        ),
    ];
    let mut command = vec![ETCD.to_owned()];
    command.extend(command_line(&defaults, &local.extra_args));
    Ok(pod(
        config,
        ETCD,
        image(repository, ETCD, &tag),
        command,
        environment(facts, &local.extra_envs)?,
        probes,
        probe_port,
        Resources {
            cpu: Some("100m".to_owned()),
            memory: Some("100Mi".to_owned()),
        },
        vec![NameValue::new(ETCD_CLIENT_URLS_ANNOTATION, client_url)],
        finish_volumes(volumes, &[]),
    ))
}

/// The loopback client URL and the advertised one; once when they are the same (a loopback advertise address), so
/// that etcd does not try to listen twice on one socket.
fn listen_client_urls(loopback: &str, advertise_host: &str, client_url: &str) -> String {
    let loopback_url = format!("https://{}", host_port(loopback, ETCD_CLIENT_PORT));
    if advertise_host == loopback {
        loopback_url
    } else {
        format!("{loopback_url},{client_url}")
    }
}

/// Splits `scheme://host:port[/path]` into (`HTTP`/`HTTPS`, host without brackets, port).
fn split_url(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, port) = bracketed.split_once("]:")?;
        (host, port)
    } else {
        authority.rsplit_once(':')?
    };
    Some((
        scheme.to_ascii_uppercase(),
        host.to_owned(),
        port.parse().ok()?,
    ))
}

#[cfg(test)]
pub(crate) mod tests;
