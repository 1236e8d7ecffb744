//! The join workflow's phases (see the table in the module documentation of [`super`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Secret};

use super::discovery::{self, Discovered};
use super::etcd::{self, EtcdTls};
use super::nested::run_init_phases;
use super::JoinData;
use crate::cluster::certs::{decrypt, uploaded_files, NAMESPACE, SECRET_NAME};
use crate::cluster::{api_error, with_retry};
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError, Workflow};
use crate::host::cluster::{self, ClusterApi};
use crate::host::{Host, Outcome};
use crate::init::InitData;
use crate::node::manifests::{self, ETCD, ETCD_CLIENT_URLS_ANNOTATION};
use crate::node::preflight::{self, Finding, PreflightInput, Severity};
use crate::paths::{self, NodePaths};
use crate::render::Templates;

/// The state artefact of a finished TLS bootstrap (the kubelet wrote kubelet.conf and registered its Node).
pub const TLS_BOOTSTRAP_STATE: &str = "kubelet TLS bootstrap";
/// The state artefact of this node's etcd member (added, started, voting).
pub const ETCD_MEMBER_STATE: &str = "etcd member";
/// The state artefact of a finished discovery.
pub const DISCOVERY_STATE: &str = "cluster discovered";

fn file(path: impl Into<PathBuf>) -> Artefact {
    Artefact::File(path.into())
}

/// Discovery and the cluster's configuration, run once per command (the `discovery` phase, or the first phase that
/// needs them when phases run alone).
fn discovered<'data>(
    ctx: &PhaseCtx<'data, JoinData>,
) -> Result<(&'data Discovered, &'data Arc<InitData>), PhaseError> {
    let data: &'data JoinData = ctx.data;
    if let (Some(found), Some(cluster)) = (data.discovered.get(), data.cluster.get()) {
        return Ok((found, cluster));
    }
    let (found, notes) = discovery::discover(data)?;
    for note in notes {
        ctx.warn(note);
    }
    let cluster = discovery::cluster_data(data, &found)?;
    let found = data.discovered.get_or_init(|| found);
    let cluster = data.cluster.get_or_init(|| Arc::new(cluster));
    Ok((found, cluster))
}

fn worker_reason(data: &JoinData) -> Option<String> {
    (!data.control_plane()).then(|| "this node joins as a worker (no --control-plane)".to_owned())
}

fn control_plane_phase(phase: Phase<JoinData>) -> Phase<JoinData> {
    phase.skip_if(worker_reason)
}

/// The init preflight checks that apply to a joining node (kubeadm's JoinNodeChecks, with the control-plane ones
/// for a control-plane join).
fn wanted_check(name: &str, control_plane: bool) -> bool {
    if name == "KubernetesVersion" {
        return false;
    }
    if control_plane {
        return true;
    }
    name.starts_with("FileContent-")
        || name.starts_with("FileExisting-")
        || name == format!("Port-{}", preflight::KUBELET_PORT)
        || [
            "IsPrivilegedUser",
            "SystemVerification",
            "CgroupDriver",
            "CRI",
            "Swap",
            "Hostname",
            "KubeletVersion",
        ]
        .contains(&name)
}

fn preflight_phase() -> Phase<JoinData> {
    Phase::new("preflight", "Check that this host can join the cluster, before anything changes")
        .long_about(
            "Runs kubeadm's join checks (root, container runtime, kernel settings, cgroups, swap, the kubelet's \
             port and version; for a control-plane join also CPUs, memory, the control-plane ports, the manifests \
             and etcd directories) and refuses a node that has already joined (/etc/kubernetes/kubelet.conf exists). \
             Errors of the checks named in --ignore-preflight-errors (or all) are reported as warnings.",
        )
        .run(|ctx: &mut PhaseCtx<'_, JoinData>| {
            let data = ctx.data;
            if !data.node.get().gathered {
                return Err(PhaseError::failed(
                    "preflight has no facts about this host (a defect: the command did not gather them)",
                ));
            }
            let control_plane = data.control_plane();
            let files = ctx.host.files.as_ref();
            // A join that stopped after the kubelet-start phase left bootstrap-kubelet.conf: its own ports and
            // directories are in use by what it started, which a re-run must accept.
            let resuming = files.exists(Path::new(paths::BOOTSTRAP_KUBELET_CONF))?;
            let checks: Vec<_> = preflight::init_checks(&data.config)
                .into_iter()
                .filter(|check| wanted_check(&check.name, control_plane))
                .collect();
            let input = PreflightInput {
                config: &data.config,
                facts: data.node.get(),
                files,
                commands: ctx.host.commands.as_ref(),
            };
            let mut findings = preflight::run_checks(&checks, &input, |name| {
                data.ignores_preflight_error(name)
                    || (resuming && (name.starts_with("Port-") || name.starts_with("DirAvailable-")))
            })?;
            let joined_check = format!("FileAvailable-{}", preflight::path_name(paths::KUBELET_CONF));
            if files.exists(Path::new(paths::KUBELET_CONF))? {
                let unfinished_control_plane =
                    control_plane && resuming && !files.exists(&NodePaths::manifest(ETCD))?;
                let severity = if unfinished_control_plane || data.ignores_preflight_error(&joined_check) {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                findings.push(Finding {
                    check: joined_check,
                    severity,
                    message: if unfinished_control_plane {
                        "the kubelet has joined; continuing the interrupted control-plane join".to_owned()
                    } else {
                        format!("this node has already joined a cluster: {} exists", paths::KUBELET_CONF)
                    },
                    hint: (!unfinished_control_plane).then(|| {
                        "run `bosun reset` on this node first to join it again".to_owned()
                    }),
                });
            }
            report_findings(ctx, &findings)
        })
}

fn report_findings(ctx: &PhaseCtx<'_, JoinData>, findings: &[Finding]) -> Result<(), PhaseError> {
    for finding in findings
        .iter()
        .filter(|finding| finding.severity == Severity::Warning)
    {
        let mut text = format!("[WARNING {}]: {}", finding.check, finding.message);
        if let Some(hint) = &finding.hint {
            text.push_str(&format!(" (hint: {hint})"));
        }
        ctx.warn(text);
    }
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|finding| finding.severity == Severity::Error)
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let mut hints: Vec<String> = errors
        .iter()
        .filter_map(|finding| {
            finding
                .hint
                .as_ref()
                .map(|hint| format!("{}: {hint}", finding.check))
        })
        .collect();
    hints.push(format!(
        "to go ahead anyway, pass --ignore-preflight-errors={}",
        errors
            .iter()
            .map(|finding| finding.check.as_str())
            .collect::<Vec<_>>()
            .join(",")
    ));
    Err(PhaseError::Preflight {
        message: format!(
            "{} preflight check{} failed: {}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            errors
                .iter()
                .map(|finding| format!("[{}] {}", finding.check, finding.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        hint: Some(hints.join("\n")),
    })
}

fn discovery_phase() -> Phase<JoinData> {
    Phase::new("discovery", "Find the cluster and prove its identity; read its configuration")
        .long_about(
            "Reads kube-public/cluster-info from the API server, checks its JWS signature with the bootstrap token \
             and pins its CA with --discovery-token-ca-cert-hash (or trusts the CA of --discovery-file), then reads \
             the cluster's kubeadm-config and kubelet-config ConfigMaps with the TLS bootstrap credentials and \
             refuses a node name the cluster already has. Writes nothing on this node.",
        )
        .makes(|_| vec![Artefact::State(DISCOVERY_STATE.to_owned())])
        .run(|ctx: &mut PhaseCtx<'_, JoinData>| {
            let (found, cluster) = discovered(ctx)?;
            discovery::check_node_name(ctx.data, ctx.host, found)?;
            ctx.record_with_detail(
                format!("cluster-info of {}", found.server),
                Outcome::Unchanged,
                Some(found.trust.clone()),
            );
            ctx.record_with_detail(
                "cluster: ConfigMap kube-system/kubeadm-config",
                Outcome::Unchanged,
                Some(format!("Kubernetes {}", cluster.config.cluster.kubernetes_version)),
            );
            Ok(())
        })
}

fn container_runtime_phase() -> Phase<JoinData> {
    Phase::new(
        "container-runtime",
        "Configure the container runtime and the kernel settings Kubernetes needs",
    )
    .long_about(
        "The same phase as `bosun init phase container-runtime`, with the cluster's configuration.",
    )
    .makes(|_| {
        vec![Artefact::State(
            crate::node::phases::RUNTIME_STATE.to_owned(),
        )]
    })
    .run(|ctx: &mut PhaseCtx<'_, JoinData>| {
        let (_, cluster) = discovered(ctx)?;
        run_init_phases(
            ctx,
            cluster,
            vec![crate::node::container_runtime_phase()],
            &[],
        )
    })
}

/// (Secret key, node path) of the files `download-certs` writes.
fn download_targets(data: &JoinData) -> Vec<(String, PathBuf)> {
    match data.cluster_data() {
        Some(cluster) => uploaded_files(cluster),
        None => {
            let pki = NodePaths::default();
            [
                ("ca.crt", "ca.crt"),
                ("ca.key", "ca.key"),
                ("front-proxy-ca.crt", "front-proxy-ca.crt"),
                ("front-proxy-ca.key", "front-proxy-ca.key"),
                ("sa.pub", "sa.pub"),
                ("sa.key", "sa.key"),
                ("etcd-ca.crt", "etcd/ca.crt"),
                ("etcd-ca.key", "etcd/ca.key"),
            ]
            .iter()
            .map(|(key, relative)| ((*key).to_owned(), pki.pki(relative)))
            .collect()
        }
    }
}

fn bootstrap_api(data: &JoinData, found: &Discovered) -> Result<Box<dyn ClusterApi>, PhaseError> {
    data.connector()?
        .connect(
            found.bootstrap_kubeconfig.as_bytes(),
            "the TLS bootstrap credentials",
        )
        .map_err(api_error)
}

fn api_timeout(data: &JoinData) -> Duration {
    data.timeout(
        |timeouts| timeouts.kubernetes_api_call,
        Duration::from_secs(60),
    )
}

fn download_certs(ctx: &mut PhaseCtx<'_, JoinData>) -> Result<(), PhaseError> {
    let (found, _) = discovered(ctx)?;
    let data = ctx.data;
    let targets = download_targets(data);
    let key = data
        .join()
        .control_plane
        .as_ref()
        .map(|control_plane| control_plane.certificate_key.clone())
        .unwrap_or_default();
    if key.is_empty() {
        let mut missing = Vec::new();
        for (name, path) in &targets {
            if !name.starts_with("external-") && !ctx.host.files.exists(path)? {
                missing.push(path.display().to_string());
            }
        }
        if missing.is_empty() {
            for (_, path) in &targets {
                ctx.record_with_detail(
                    path.display().to_string(),
                    Outcome::Unchanged,
                    Some("no --certificate-key: using the file on this node".to_owned()),
                );
            }
            return Ok(());
        }
        return Err(PhaseError::failed(format!(
            "no certificate key was given and this node lacks the cluster's certificates ({})",
            missing.join(", ")
        ))
        .with_hint(
            "pass --certificate-key with the key `bosun init --upload-certs` printed (or upload again on a control-plane \
             node with `bosun init phase upload-certs --upload-certs`), or copy the certificates here first",
        ));
    }
    let api = bootstrap_api(data, found)?;
    let secret = with_retry(api_timeout(data), || {
        cluster::get::<Secret>(api.as_ref(), Some(NAMESPACE), SECRET_NAME)
    })
    .map_err(|error| match error.code() {
        Some(401 | 403) => PhaseError::failed(format!(
            "the TLS bootstrap credentials may not read the Secret {NAMESPACE}/{SECRET_NAME}: {error}"
        ))
        .with_hint("the certificates may have expired with their 2-hour token; upload them again on a control-plane node with `bosun init phase upload-certs --upload-certs`"),
        _ => api_error(error),
    })?
    .ok_or_else(|| {
        PhaseError::failed(format!(
            "the cluster has no Secret {NAMESPACE}/{SECRET_NAME}: the control-plane certificates were not uploaded, or expired after 2 hours"
        ))
        .with_hint("on a control-plane node run `bosun init phase upload-certs --upload-certs` and join with the key it prints")
    })?;
    let sealed: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name, value.0))
        .collect();
    // Decrypt everything before writing anything: a wrong key leaves the node untouched.
    let mut opened = Vec::new();
    for (name, path) in &targets {
        let Some(value) = sealed.get(name).filter(|value| !value.is_empty()) else {
            continue;
        };
        let plain = decrypt(value, &key, name).map_err(|error| {
            PhaseError::failed(format!(
                "the certificate key does not open the Secret {NAMESPACE}/{SECRET_NAME}: {error}"
            ))
            .with_hint("use the certificate key printed by the `bosun init --upload-certs` (or `upload-certs`) run that made the Secret")
        })?;
        opened.push((path.clone(), plain, name.ends_with(".key")));
    }
    if opened.is_empty() {
        return Err(PhaseError::failed(format!(
            "the Secret {NAMESPACE}/{SECRET_NAME} holds none of the certificates a control-plane node needs"
        )));
    }
    for (path, plain, private) in opened {
        if let Some(parent) = path.parent() {
            ctx.host.files.create_dir_all(parent, 0o755)?;
        }
        let mode = if private { 0o600 } else { 0o644 };
        ctx.ensure_file_with_detail(
            &path,
            &plain,
            mode,
            Some(format!("downloaded from {NAMESPACE}/{SECRET_NAME}")),
        )?;
    }
    Ok(())
}

fn control_plane_prepare_phase() -> Phase<JoinData> {
    let nested =
        |name: &'static str, summary: &'static str, makes: fn(&JoinData) -> Vec<Artefact>| {
            Phase::new(name, summary).makes(makes)
        };
    control_plane_phase(
        Phase::new(
            "control-plane-prepare",
            "Prepare this node's control-plane files: certificates, kubeconfigs, manifests",
        )
        .child(
            Phase::new(
                "download-certs",
                "Download the cluster's CAs and service-account keys from the kubeadm-certs Secret",
            )
            .long_about(
                "Reads kube-system/kubeadm-certs with the TLS bootstrap credentials and decrypts every file with the \
                 certificate key (AES-256-GCM) before writing any. Without --certificate-key the certificates must \
                 already be on this node.",
            )
            .makes(|data: &JoinData| {
                download_targets(data)
                    .into_iter()
                    .map(|(_, path)| file(path))
                    .collect()
            })
            .run(download_certs),
        )
        .child(
            nested("certs", "Make this node's certificates, signed by the cluster's CAs", |data| {
                let paths = data.paths();
                [
                    "apiserver",
                    "apiserver-kubelet-client",
                    "front-proxy-client",
                    "etcd/server",
                    "etcd/peer",
                    "etcd/healthcheck-client",
                    "apiserver-etcd-client",
                ]
                .iter()
                .flat_map(|name| {
                    [
                        file(paths.pki(&format!("{name}.crt"))),
                        file(paths.pki(&format!("{name}.key"))),
                    ]
                })
                .collect()
            })
            .run(|ctx: &mut PhaseCtx<'_, JoinData>| {
                let (_, cluster) = discovered(ctx)?;
                run_init_phases(ctx, cluster, vec![crate::certs::certs_phase()], &[])
            }),
        )
        .child(
            nested(
                "kubeconfig",
                "Make the admin, controller-manager and scheduler kubeconfigs of this node",
                |_| {
                    [paths::ADMIN_CONF, paths::CONTROLLER_MANAGER_CONF, paths::SCHEDULER_CONF]
                        .into_iter()
                        .map(file)
                        .collect()
                },
            )
            .run(|ctx: &mut PhaseCtx<'_, JoinData>| {
                let (_, cluster) = discovered(ctx)?;
                // super-admin.conf belongs to the first node only; the kubelet's kubeconfig comes from its TLS bootstrap.
                run_init_phases(
                    ctx,
                    cluster,
                    vec![crate::certs::kubeconfig_phase()],
                    &["kubeconfig/super-admin", "kubeconfig/kubelet"],
                )
            }),
        )
        .child(
            nested(
                "control-plane",
                "Write the static-pod manifests of kube-apiserver, kube-controller-manager and kube-scheduler",
                |_| {
                    [
                        manifests::KUBE_APISERVER,
                        manifests::KUBE_CONTROLLER_MANAGER,
                        manifests::KUBE_SCHEDULER,
                    ]
                    .into_iter()
                    .map(|component| file(NodePaths::manifest(component)))
                    .collect()
                },
            )
            .run(|ctx: &mut PhaseCtx<'_, JoinData>| {
                let (_, cluster) = discovered(ctx)?;
                run_init_phases(ctx, cluster, vec![crate::node::control_plane_phase()], &[])
            }),
        ),
    )
}

fn ca_cert_path(data: &JoinData) -> PathBuf {
    let configured = &data.join().ca_cert_path;
    if configured.is_empty() {
        data.paths().pki("ca.crt")
    } else {
        PathBuf::from(configured)
    }
}

/// Polls `condition` every second until it gives `Some`, or `timeout` passes.
fn poll<T>(
    timeout: Duration,
    mut condition: impl FnMut() -> Result<Option<T>, PhaseError>,
) -> Result<Option<T>, PhaseError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition()? {
            return Ok(Some(value));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn kubelet_start(ctx: &mut PhaseCtx<'_, JoinData>) -> Result<(), PhaseError> {
    let (found, cluster) = discovered(ctx)?;
    let data = ctx.data;
    let host = ctx.host;
    let kubelet_conf = Path::new(paths::KUBELET_CONF);
    let bootstrapped = host.files.exists(kubelet_conf)?;
    if !bootstrapped {
        discovery::check_node_name(data, host, found)?;
    }
    let ca_path = ca_cert_path(data);
    let existing_ca = host.files.read(&ca_path)?;
    match existing_ca {
        Some(bytes) if bosun_pki::kubeconfig::same_ca_bytes(&bytes, &found.ca_pem) => ctx
            .record_with_detail(
                ca_path.display().to_string(),
                Outcome::Unchanged,
                Some("the cluster CA".to_owned()),
            ),
        _ => {
            if let Some(parent) = ca_path.parent() {
                host.files.create_dir_all(parent, 0o755)?;
            }
            ctx.ensure_file_with_detail(
                &ca_path,
                &found.ca_pem,
                0o644,
                Some("the cluster CA".to_owned()),
            )?;
        }
    }
    if !bootstrapped {
        ctx.ensure_file_with_detail(
            Path::new(paths::BOOTSTRAP_KUBELET_CONF),
            found.bootstrap_kubeconfig.as_bytes(),
            0o600,
            Some(format!("TLS bootstrap credentials for {}", found.server)),
        )?;
    }
    run_init_phases(ctx, cluster, vec![crate::node::kubelet_start_phase()], &[])?;
    if host.dry_run {
        ctx.info(
            "would wait for the kubelet's TLS bootstrap to write /etc/kubernetes/kubelet.conf",
        );
        return Ok(());
    }
    let timeout = data.timeout(|timeouts| timeouts.tls_bootstrap, Duration::from_secs(300));
    if bootstrapped {
        ctx.record_with_detail(
            paths::KUBELET_CONF,
            Outcome::Unchanged,
            Some("the kubelet's TLS bootstrap is done".to_owned()),
        );
    } else {
        ctx.progress(
            0,
            2,
            "waiting for the kubelet's TLS bootstrap (its CSR approved and signed)",
        );
        let written = poll(timeout, || {
            Ok(host.files.exists(kubelet_conf)?.then_some(()))
        })?;
        if written.is_none() {
            return Err(PhaseError::failed(format!(
                "the kubelet did not finish its TLS bootstrap within {}s: {} was not written",
                timeout.as_secs(),
                paths::KUBELET_CONF
            ))
            .with_hint(
                "read the kubelet's log (/var/log/bosun/kubelet.log, or `journalctl -u kubelet`); on a control-plane node \
                 `kubectl get csr` shows whether its certificate request was approved",
            ));
        }
        ctx.record_with_detail(
            paths::KUBELET_CONF,
            Outcome::Created,
            Some("written by the kubelet's TLS bootstrap".to_owned()),
        );
    }
    let name = data.node_name().to_owned();
    ctx.progress(
        1,
        2,
        format!("waiting for the kubelet to register Node {name}"),
    );
    let api = bootstrap_api(data, found)?;
    let registered = poll(timeout, || {
        match cluster::get::<Node>(api.as_ref(), None, &name) {
            Ok(node) => Ok(node.map(|_| true)),
            // Without the kubeadm:get-nodes binding the token cannot look; kubelet.conf is proof enough then.
            Err(error) if matches!(error.code(), Some(401 | 403)) => Ok(Some(false)),
            Err(crate::host::cluster::ClusterError::Unreachable { .. }) => Ok(None),
            Err(error) => Err(api_error(error)),
        }
    })?;
    let Some(seen) = registered else {
        return Err(PhaseError::failed(format!(
            "the kubelet has its credentials but did not register Node {name} within {}s",
            timeout.as_secs()
        ))
        .with_hint(
            "read the kubelet's log (/var/log/bosun/kubelet.log, or `journalctl -u kubelet`)",
        ));
    };
    ctx.progress(2, 2, format!("Node {name} registered"));
    ctx.record_with_detail(
        format!("cluster: Node {name}"),
        Outcome::Unchanged,
        Some(
            if seen {
                "registered by the kubelet"
            } else {
                "not checked: the bootstrap token may not read Nodes"
            }
            .to_owned(),
        ),
    );
    Ok(())
}

fn kubelet_start_phase() -> Phase<JoinData> {
    Phase::new(
        "kubelet-start",
        "Write the kubelet's bootstrap credentials and the cluster's kubelet settings, start it, wait for its TLS bootstrap",
    )
    .long_about(
        "Writes the cluster CA (caCertPath), /etc/kubernetes/bootstrap-kubelet.conf with the TLS bootstrap token, \
         /var/lib/kubelet/config.yaml from the cluster's kubelet-config ConfigMap and kubeadm-flags.env, (re)starts \
         the kubelet through the service backend, and waits (timeouts.tlsBootstrap, 5m) until the kubelet's CSR is \
         approved and signed, it has written /etc/kubernetes/kubelet.conf and its Node is registered.",
    )
    .makes(|data: &JoinData| {
        vec![
            file(ca_cert_path(data)),
            file(paths::BOOTSTRAP_KUBELET_CONF),
            file(paths::KUBELET_CONFIG),
            file(paths::KUBELET_FLAGS_ENV),
            file(paths::KUBELET_DROP_IN),
            Artefact::State(crate::node::phases::KUBELET_STATE.to_owned()),
            Artefact::State(TLS_BOOTSTRAP_STATE.to_owned()),
        ]
    })
    .run(kubelet_start)
}

fn templates(host: &Host, data: &InitData) -> Result<Templates, PhaseError> {
    match &data.templates_dir {
        Some(directory) => Templates::with_overrides(host.files.as_ref(), directory)
            .map_err(|error| PhaseError::from(crate::node::NodeError::from(error))),
        None => Ok(Templates::embedded()),
    }
}

/// The client URLs of the existing etcd members: the annotations of the etcd pods (kubeadm's way), else port 2379
/// of the API server discovery found (stacked etcd runs beside it).
fn etcd_endpoints(api: &dyn ClusterApi, found: &Discovered) -> Vec<String> {
    let mut endpoints: Vec<String> = cluster::list::<Pod>(api, Some("kube-system"), None)
        .unwrap_or_default()
        .into_iter()
        .filter(|pod| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get("component"))
                .is_some_and(|component| component == ETCD)
        })
        .filter_map(|pod| {
            pod.metadata
                .annotations
                .and_then(|annotations| annotations.get(ETCD_CLIENT_URLS_ANNOTATION).cloned())
        })
        .flat_map(|urls| urls.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    if endpoints.is_empty() {
        let host = crate::token::JoinCommand::endpoint_of(&found.server);
        let host = host
            .rsplit_once(':')
            .map(|(host, _)| host.to_owned())
            .unwrap_or(host);
        endpoints.push(format!("https://{host}:{}", manifests::ETCD_CLIENT_PORT));
    }
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

fn read_pki(
    ctx: &PhaseCtx<'_, JoinData>,
    init: &InitData,
    relative: &str,
) -> Result<Vec<u8>, PhaseError> {
    let path = init.paths.pki(relative);
    ctx.host.files.read(&path)?.ok_or_else(|| {
        PhaseError::failed(format!("{} does not exist", path.display()))
            .with_hint("run `bosun join phase control-plane-prepare` first (or the whole `bosun join --control-plane`)")
    })
}

fn etcd_join(ctx: &mut PhaseCtx<'_, JoinData>) -> Result<(), PhaseError> {
    let (found, cluster) = discovered(ctx)?;
    let data = ctx.data;
    let init: &InitData = cluster;
    let config = &init.config;
    let connector = data.connector()?;
    let admin = ctx
        .host
        .files
        .read(Path::new(paths::ADMIN_CONF))?
        .ok_or_else(|| {
            PhaseError::failed(format!("{} does not exist", paths::ADMIN_CONF))
                .with_hint("run `bosun join phase control-plane-prepare kubeconfig` first")
        })?;
    let api = connector
        .connect(&admin, paths::ADMIN_CONF)
        .map_err(api_error)?;
    let endpoints = etcd_endpoints(api.as_ref(), found);
    let tls = EtcdTls {
        ca: read_pki(ctx, init, "etcd/ca.crt")?,
        cert: read_pki(ctx, init, "apiserver-etcd-client.crt")?,
        key: read_pki(ctx, init, "apiserver-etcd-client.key")?,
    };
    let timeout = data.timeout(|timeouts| timeouts.etcd_api_call, Duration::from_secs(120));
    let etcd_connector = data.etcd.as_ref().ok_or_else(|| {
        PhaseError::failed("etcd-join needs etcd, but this run has no etcd client")
    })?;
    let etcd_error = |error: crate::etcd::EtcdError| {
        PhaseError::failed(error.to_string()).with_hint(format!(
            "check that the etcd members at {} are healthy (`bosun etcd status` on a control-plane node)",
            endpoints.join(", ")
        ))
    };
    let client = etcd_connector
        .connect(&endpoints, &tls, timeout)
        .map_err(etcd_error)?;
    let advertise = config
        .advertise_address()
        .map_err(|error| PhaseError::failed(error.to_string()))?;
    let peer_url = format!(
        "https://{}",
        bosun_config::join_host_port(&advertise.to_string(), manifests::ETCD_PEER_PORT)
    );
    let name = data.node_name().to_owned();
    let artefact = format!("etcd member {name} ({peer_url})");
    let membership = if ctx.host.dry_run {
        let members = client.members().map_err(etcd_error)?;
        ctx.info(format!(
            "would add {peer_url} as a learner to the etcd cluster of {} members",
            members.len()
        ));
        let mut initial: Vec<manifests::EtcdMember> = members
            .iter()
            .filter(|member| !member.name.is_empty())
            .filter_map(|member| {
                Some(manifests::EtcdMember {
                    name: member.name.clone(),
                    peer_url: member.peer_urls.first()?.clone(),
                })
            })
            .collect();
        initial.push(manifests::EtcdMember {
            name: name.clone(),
            peer_url: peer_url.clone(),
        });
        initial.sort_by(|left, right| left.name.cmp(&right.name));
        etcd::Membership {
            id: 0,
            outcome: Outcome::Created,
            voting: false,
            started: false,
            initial_cluster: initial,
            unnamed: Vec::new(),
        }
    } else {
        let membership =
            etcd::ensure_member(client.as_ref(), &name, &peer_url).map_err(etcd_error)?;
        let detail = match (membership.outcome, membership.voting) {
            (Outcome::Created, _) => "added as a learner".to_owned(),
            (_, true) => "a voting member".to_owned(),
            _ => "a learner".to_owned(),
        };
        ctx.record_with_detail(artefact.clone(), membership.outcome, Some(detail));
        if !membership.unnamed.is_empty() {
            ctx.warn(format!(
                "members {} were added but have not started; they are left out of --initial-cluster",
                membership.unnamed.join(", ")
            ));
        }
        membership
    };
    let manifest_path = NodePaths::manifest(ETCD);
    if membership.started && ctx.host.files.exists(&manifest_path)? {
        ctx.record_with_detail(
            manifest_path.display().to_string(),
            Outcome::Unchanged,
            Some("the member has started from it".to_owned()),
        );
    } else {
        let facts = crate::node::phases::manifest_facts(ctx.host, config, init.node.get())?;
        let pod = manifests::etcd(config, &facts, &membership.initial_cluster)?;
        let patch_set = match config
            .init
            .patches
            .as_ref()
            .filter(|patches| !patches.directory.is_empty())
        {
            Some(patches) => Some(crate::node::patches::load(
                ctx.host.files.as_ref(),
                Path::new(&patches.directory),
            )?),
            None => None,
        };
        let text = crate::node::phases::render_manifest(
            &templates(ctx.host, init)?,
            &pod,
            patch_set.as_ref(),
        )?;
        ctx.host
            .files
            .create_dir_all(&init.paths.etcd_data_dir, 0o700)?;
        ctx.host
            .files
            .create_dir_all(Path::new(paths::MANIFESTS_DIR), 0o700)?;
        ctx.ensure_file(&manifest_path, text.as_bytes(), 0o600)?;
    }
    if ctx.host.dry_run {
        ctx.info("would promote the learner once it has caught up with the leader");
        return Ok(());
    }
    if membership.voting {
        return Ok(());
    }
    ctx.progress(
        0,
        1,
        "waiting for the etcd learner to catch up, then promoting it",
    );
    let outcome = etcd::promote_when_in_sync(client.as_ref(), membership.id, timeout, Duration::from_secs(2))
        .map_err(|error| {
            PhaseError::failed(error.to_string()).with_hint(
                "the kubelet runs etcd from /etc/kubernetes/manifests/etcd.yaml: read the etcd container's log; \
                 run the same join again once it runs",
            )
        })?;
    ctx.progress(1, 1, "etcd member promoted");
    ctx.record_with_detail(
        artefact,
        outcome,
        Some("promoted to a voting member".to_owned()),
    );
    Ok(())
}

fn etcd_join_phase() -> Phase<JoinData> {
    control_plane_phase(
        Phase::new(
            "etcd-join",
            "Add this node's etcd member as a learner, write its manifest, promote it once in sync",
        )
        .long_about(
            "Adds https://<advertise address>:2380 as an etcd learner (through the existing members, with the \
             apiserver-etcd-client certificate), writes /etc/kubernetes/manifests/etcd.yaml with every member in \
             --initial-cluster and --initial-cluster-state=existing, and promotes the learner to a voting member as \
             soon as it has caught up with the leader (timeouts.etcdAPICall, 2m).",
        )
        .skip_if(|data: &JoinData| {
            data.cluster_data()
                .and_then(|cluster| cluster.config.external_etcd().map(|_| ()))
                .map(|()| "etcd is external (ClusterConfiguration etcd.external)".to_owned())
        })
        .needs(|data: &JoinData| {
            let paths = data.paths();
            vec![
                file(paths.pki("etcd/ca.crt")),
                file(paths.pki("etcd/server.crt")),
                file(paths.pki("etcd/peer.crt")),
                file(paths.pki("apiserver-etcd-client.crt")),
                file(paths.pki("apiserver-etcd-client.key")),
                file(paths::ADMIN_CONF),
            ]
        })
        .makes(|_| {
            vec![
                file(NodePaths::manifest(ETCD)),
                Artefact::State(ETCD_MEMBER_STATE.to_owned()),
            ]
        })
        .run(etcd_join),
    )
}

fn control_plane_join_phase() -> Phase<JoinData> {
    control_plane_phase(
        Phase::new(
            "control-plane-join",
            "Make this node a control-plane node of the cluster",
        )
        .child(
            Phase::new(
                "mark-control-plane",
                "Label and taint this node as a control-plane node",
            )
            .needs(|_| vec![file(paths::ADMIN_CONF)])
            .makes(|data: &JoinData| {
                vec![Artefact::State(format!(
                    "cluster: Node {} (labels, taints)",
                    data.node_name()
                ))]
            })
            .run(|ctx: &mut PhaseCtx<'_, JoinData>| {
                let (_, cluster) = discovered(ctx)?;
                run_init_phases(ctx, cluster, vec![crate::cluster::mark::phase()], &[])
            }),
        ),
    )
}

/// The `join` workflow.
pub fn workflow() -> Workflow<JoinData> {
    Workflow::new("join")
        .phase(preflight_phase())
        .phase(discovery_phase())
        .phase(container_runtime_phase())
        .phase(control_plane_prepare_phase())
        .phase(kubelet_start_phase())
        .phase(etcd_join_phase())
        .phase(control_plane_join_phase())
}
