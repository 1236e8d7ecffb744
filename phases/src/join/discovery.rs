//! Discovery: how a joining node learns which cluster it joins and comes to trust it (kubeadm's discovery/token and
//! discovery/file), then reads the cluster's configuration with the TLS bootstrap credentials.
//!
//! Token discovery:
//! 1. Read `kube-public/cluster-info` anonymously, without verifying the server (its CA is not known yet), until
//!    the controller manager's bootstrap signer has added `jws-kubeconfig-<token id>` or discovery times out.
//! 2. Check that detached JWS (HS256, keyed with the token secret) over the `kubeconfig` value: only someone who knows
//!    the token could have made it, so a changed cluster-info is refused.
//! 3. Pin the CA it names with `--discovery-token-ca-cert-hash` (SHA-256 of the SubjectPublicKeyInfo); without a
//!    pin only `unsafeSkipCAVerification` lets the join go on.
//! 4. With a pin, read cluster-info again over TLS verified against that CA and require the same bytes.
//!
//! File discovery trusts the CA of a kubeconfig file (or of a kubeconfig at an https URL, fetched with the system's
//! trusted CAs) and refreshes its server and CA from cluster-info when the cluster serves one.
//!
//! Guarantees: nothing here writes to the node; every refusal is one sentence naming the server, the token or the
//! pin at fault.

use std::path::Path;
use std::time::{Duration, Instant};

use bosun_config::{BootstrapTokenDiscovery, Config};
use bosun_pki::Kubeconfig;
use k8s_openapi::api::core::v1::{ConfigMap, Node};

use super::JoinData;
use crate::cluster::bootstrap_token::{CLUSTER_INFO, CLUSTER_INFO_KEY, PUBLIC_NAMESPACE};
use crate::cluster::upload_config::{
    KUBEADM_CONFIG, KUBEADM_CONFIG_KEY, KUBELET_CONFIG, KUBELET_CONFIG_KEY,
};
use crate::cluster::{api_error, parse_kubeconfig};
use crate::engine::PhaseError;
use crate::host::cluster::{self, ClusterApi, ClusterConnector, ClusterError};
use crate::host::Host;
use crate::init::InitData;
use crate::paths;
use crate::token::{jws, pin, Pin, Token};

/// How often discovery asks again while the cluster is not ready (kubeadm waits 5 s).
const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// The user name of the TLS bootstrap credentials in bootstrap-kubelet.conf (kubeadm's TokenUser).
pub const TOKEN_USER: &str = "tls-bootstrap-token-user";
/// The cluster name in bootstrap-kubelet.conf, always `kubernetes` in kubeadm.
pub const BOOTSTRAP_CLUSTER_NAME: &str = "kubernetes";

/// What discovery established.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The API server every later connection uses (`https://host:port`, cluster-info's server).
    pub server: String,
    /// The cluster CA bundle (PEM), now trusted.
    pub ca_pem: Vec<u8>,
    /// The kubeconfig the kubelet bootstraps with: `bootstrap-kubelet.conf`.
    pub bootstrap_kubeconfig: String,
    /// How the CA came to be trusted, for the report.
    pub trust: String,
}

fn failed(message: impl Into<String>, hint: impl Into<String>) -> PhaseError {
    PhaseError::failed(message).with_hint(hint)
}

fn retryable(error: &ClusterError) -> bool {
    match error {
        ClusterError::Unreachable { .. } => true,
        ClusterError::Refused { code, .. } => matches!(code, 401 | 403 | 404 | 429) || *code >= 500,
        _ => false,
    }
}

/// The cluster-info ConfigMap's `kubeconfig` and, if the bootstrap signer made it, the signature for `token_id`.
fn read_cluster_info(
    api: &dyn ClusterApi,
    token_id: Option<&str>,
) -> Result<Option<(String, Option<String>)>, ClusterError> {
    let Some(config_map) = cluster::get::<ConfigMap>(api, Some(PUBLIC_NAMESPACE), CLUSTER_INFO)?
    else {
        return Ok(None);
    };
    let data = config_map.data.unwrap_or_default();
    let Some(kubeconfig) = data.get(CLUSTER_INFO_KEY).cloned() else {
        return Err(ClusterError::Invalid {
            reason: format!(
                "the ConfigMap {PUBLIC_NAMESPACE}/{CLUSTER_INFO} at {} has no {CLUSTER_INFO_KEY:?} key",
                api.server()
            ),
        });
    };
    let signature = token_id.and_then(|id| data.get(&jws::signature_key(id)).cloned());
    Ok(Some((kubeconfig, signature)))
}

/// The only cluster of a cluster-info kubeconfig: (server, CA PEM).
fn cluster_of(kubeconfig: &Kubeconfig, origin: &str) -> Result<(String, Vec<u8>), PhaseError> {
    let [named] = kubeconfig.clusters.as_slice() else {
        return Err(PhaseError::failed(format!(
            "{origin} names {} clusters; discovery needs exactly one",
            kubeconfig.clusters.len()
        )));
    };
    let ca = named
        .cluster
        .certificate_authority_data
        .as_deref()
        .and_then(|data| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .ok()
        })
        .ok_or_else(|| {
            PhaseError::failed(format!(
                "{origin} has no usable certificate-authority-data for its cluster"
            ))
        })?;
    if named.cluster.server.is_empty() {
        return Err(PhaseError::failed(format!("{origin} names no server")));
    }
    Ok((named.cluster.server.clone(), ca))
}

fn bootstrap_with_token(server: &str, ca_pem: &[u8], token: &str) -> Result<String, PhaseError> {
    let kubeconfig = Kubeconfig::with_token(
        BOOTSTRAP_CLUSTER_NAME,
        server,
        &String::from_utf8_lossy(ca_pem),
        TOKEN_USER,
        token,
    );
    bosun_config::yaml::to_string(&kubeconfig).map_err(|error| {
        PhaseError::failed(format!("cannot write the bootstrap kubeconfig: {error}"))
    })
}

/// Token discovery (steps 1–4 of the module documentation).
pub fn token_discovery(
    connector: &dyn ClusterConnector,
    settings: &BootstrapTokenDiscovery,
    tls_bootstrap_token: &str,
    timeout: Duration,
) -> Result<Discovered, PhaseError> {
    let token = Token::parse(&settings.token).map_err(|error| {
        failed(
            error.to_string(),
            "copy the token from the join command `bosun init` printed",
        )
    })?;
    let pins = settings
        .ca_cert_hashes
        .iter()
        .map(|hash| Pin::parse(hash))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| PhaseError::failed(error.to_string()))?;
    if pins.is_empty() && !settings.unsafe_skip_ca_verification {
        return Err(failed(
            "refusing to trust the cluster without a CA pin: no --discovery-token-ca-cert-hash was given",
            "pass the hash from the join command `bosun init` printed, or --discovery-token-unsafe-skip-ca-verification if you accept any server",
        ));
    }
    let server = format!("https://{}", settings.api_server_endpoint);
    let insecure = connector.anonymous(&server, None).map_err(api_error)?;
    let deadline = Instant::now() + timeout;
    let (kubeconfig_text, signature) = loop {
        let seen = match read_cluster_info(insecure.as_ref(), Some(token.id())) {
            Ok(Some((kubeconfig, Some(signature)))) => break (kubeconfig, signature),
            Ok(Some((_, None))) => format!(
                "the cluster-info ConfigMap at {server} carries no signature for token {:?}: the token does not \
                 exist, has expired, or may not sign",
                token.id()
            ),
            Ok(None) => format!(
                "the API server {server} has no ConfigMap {PUBLIC_NAMESPACE}/{CLUSTER_INFO}: it was not made by \
                 `bosun init`, or its bootstrap-token phase has not run"
            ),
            Err(error) if retryable(&error) => match error {
                ClusterError::Unreachable { reason, .. } => {
                    format!("cannot reach the API server {server}: {reason}")
                }
                other => other.to_string(),
            },
            Err(error) => return Err(api_error(error)),
        };
        if Instant::now() >= deadline {
            let hint = if seen.starts_with("cannot reach") {
                format!(
                    "check the endpoint {} (the control plane's host:port) and that this host can reach it; \
                     discovery gave up after {}s (JoinConfiguration timeouts.discovery)",
                    settings.api_server_endpoint,
                    timeout.as_secs()
                )
            } else {
                "make a new token on a control-plane node with `bosun token create --print-join-command`"
                    .to_owned()
            };
            return Err(failed(seen, hint));
        }
        std::thread::sleep(RETRY_INTERVAL.min(deadline.saturating_duration_since(Instant::now())));
    };
    jws::verify_detached(kubeconfig_text.as_bytes(), &signature, &token).map_err(|_| {
        failed(
            format!(
                "the cluster-info ConfigMap from {server} does not match the signature of token {:?}: the token \
                 secret is wrong, or cluster-info was changed on its way here",
                token.id()
            ),
            "check the token; if it is right, something between this host and the API server altered the answer",
        )
    })?;
    let origin = format!("the cluster-info of {server}");
    let kubeconfig = parse_kubeconfig(kubeconfig_text.as_bytes(), &origin)?;
    let (cluster_server, ca_pem) = cluster_of(&kubeconfig, &origin)?;
    let trust = if pins.is_empty() {
        "CA not verified (--discovery-token-unsafe-skip-ca-verification)".to_owned()
    } else {
        let matched = pin::check_bundle(&origin, &ca_pem, &pins).map_err(|error| {
            failed(
                error.to_string(),
                "the --discovery-token-ca-cert-hash does not belong to this cluster; print the right one on a \
                 control-plane node with `bosun token create --print-join-command`",
            )
        })?;
        let verified = connector
            .anonymous(&server, Some(&ca_pem))
            .map_err(api_error)?;
        let again =
            crate::cluster::with_retry(timeout, || read_cluster_info(verified.as_ref(), None))
                .map_err(|error| {
                    failed(
                format!(
                    "cannot read cluster-info again over TLS verified with the pinned CA: {error}"
                ),
                "the server's certificate is not signed by the pinned CA: check the endpoint",
            )
                })?;
        if again.as_ref().map(|(text, _)| text) != Some(&kubeconfig_text) {
            return Err(PhaseError::failed(format!(
                "the cluster-info of {server} changed between the unverified and the verified read; refusing to join"
            )));
        }
        format!(
            "signature of token {} verified, CA pinned {matched}",
            token.id()
        )
    };
    Ok(Discovered {
        bootstrap_kubeconfig: bootstrap_with_token(&cluster_server, &ca_pem, tls_bootstrap_token)?,
        server: cluster_server,
        ca_pem,
        trust: trust.replace("  ", " "),
    })
}

/// File discovery: `bytes` is the kubeconfig read from `origin` (a path or an https URL).
pub fn file_discovery(
    connector: &dyn ClusterConnector,
    bytes: &[u8],
    origin: &str,
    tls_bootstrap_token: &str,
    timeout: Duration,
) -> Result<(Discovered, Option<String>), PhaseError> {
    let kubeconfig = parse_kubeconfig(bytes, origin)?;
    let cluster = kubeconfig
        .current_cluster()
        .or_else(|| kubeconfig.clusters.first().map(|named| &named.cluster))
        .ok_or_else(|| PhaseError::failed(format!("{origin} names no cluster")))?;
    let file_server = cluster.server.clone();
    let file_ca = kubeconfig
        .cluster_ca_pem()
        .or_else(|| {
            use base64::Engine as _;
            cluster
                .certificate_authority_data
                .as_deref()
                .and_then(|data| {
                    base64::engine::general_purpose::STANDARD
                        .decode(data.trim())
                        .ok()
                })
        })
        .ok_or_else(|| {
            failed(
                format!("{origin} has no embedded certificate-authority-data for its cluster"),
                "embed the cluster CA (kubectl config view --raw --flatten writes it inline)",
            )
        })?;
    let verified = connector
        .anonymous(&file_server, Some(&file_ca))
        .map_err(api_error)?;
    let deadline = Instant::now() + timeout;
    let mut warning = None;
    let (server, ca_pem) = loop {
        match read_cluster_info(verified.as_ref(), None) {
            Ok(Some((text, _))) => {
                let info_origin = format!("the cluster-info of {file_server}");
                let info = parse_kubeconfig(text.as_bytes(), &info_origin)?;
                break cluster_of(&info, &info_origin)?;
            }
            Ok(None) => {
                warning = Some(format!(
                    "{file_server} serves no cluster-info; using {origin} as it is"
                ));
                break (file_server.clone(), file_ca.clone());
            }
            Err(ClusterError::Refused {
                code: 401 | 403, ..
            }) => {
                warning = Some(format!(
                    "{file_server} does not let anonymous users read cluster-info; using {origin} as it is"
                ));
                break (file_server.clone(), file_ca.clone());
            }
            Err(error) if retryable(&error) && Instant::now() < deadline => {
                std::thread::sleep(RETRY_INTERVAL);
            }
            Err(error) => return Err(api_error(error)),
        }
    };
    let bootstrap_kubeconfig = match kubeconfig.current_user() {
        Some((_, user)) if user.token.is_some() || user.client_certificate_data.is_some() => {
            let mut credentials = kubeconfig.clone();
            for named in &mut credentials.clusters {
                use base64::Engine as _;
                named.cluster.server = server.clone();
                named.cluster.certificate_authority = None;
                named.cluster.certificate_authority_data =
                    Some(base64::engine::general_purpose::STANDARD.encode(&ca_pem));
            }
            bosun_config::yaml::to_string(&credentials).map_err(|error| {
                PhaseError::failed(format!("cannot write the bootstrap kubeconfig: {error}"))
            })?
        }
        _ if !tls_bootstrap_token.is_empty() => {
            bootstrap_with_token(&server, &ca_pem, tls_bootstrap_token)?
        }
        _ => return Err(failed(
            format!("{origin} carries no credentials and no TLS bootstrap token was given"),
            "pass --tls-bootstrap-token (or --token), or use a discovery file with a token user",
        )),
    };
    Ok((
        Discovered {
            server,
            ca_pem,
            bootstrap_kubeconfig,
            trust: format!("CA from {origin}"),
        },
        warning,
    ))
}

/// Runs the configured discovery. Returns what it found and notes for the report.
pub fn discover(data: &JoinData) -> Result<(Discovered, Vec<String>), PhaseError> {
    let join = data.join();
    let connector = data.connector()?;
    let timeout = data.timeout(|timeouts| timeouts.discovery, Duration::from_secs(300));
    let tls_token = &join.discovery.tls_bootstrap_token;
    if let Some(settings) = &join.discovery.bootstrap_token {
        let discovered = token_discovery(connector.as_ref(), settings, tls_token, timeout)?;
        return Ok((discovered, Vec::new()));
    }
    let Some(file) = &join.discovery.file else {
        return Err(failed(
            "no discovery is configured",
            "pass API_SERVER_ENDPOINT with --token and --discovery-token-ca-cert-hash, or --discovery-file",
        ));
    };
    let origin = file.kube_config_path.clone();
    let bytes = if origin.starts_with("https://") {
        let answer = connector
            .fetch(&origin, Duration::from_secs(30))
            .map_err(|error| {
                let reason = match error {
                    ClusterError::Unreachable { reason, .. } => reason,
                    other => other.to_string(),
                };
                failed(
                    format!("cannot fetch the discovery file {origin}: {reason}"),
                    "the URL must be https and its server's certificate trusted by this host (the system's CAs)",
                )
            })?;
        if answer.status != 200 {
            return Err(PhaseError::failed(format!(
                "the discovery file {origin} answered HTTP {}: {}",
                answer.status,
                answer.body.trim()
            )));
        }
        answer.body.into_bytes()
    } else {
        data.discovery_file.clone().ok_or_else(|| {
            PhaseError::failed(format!(
                "the discovery file {origin} was not read (a defect: the command did not load it)"
            ))
        })?
    };
    let (discovered, warning) =
        file_discovery(connector.as_ref(), &bytes, &origin, tls_token, timeout)?;
    Ok((discovered, warning.into_iter().collect()))
}

/// Reads a ConfigMap value with the bootstrap credentials.
fn config_map_value(
    api: &dyn ClusterApi,
    name: &str,
    key: &str,
    timeout: Duration,
) -> Result<String, PhaseError> {
    let config_map = crate::cluster::with_retry(timeout, || {
        cluster::get::<ConfigMap>(api, Some("kube-system"), name)
    })
    .map_err(|error| match error.code() {
        Some(401 | 403) => failed(
            format!("the TLS bootstrap credentials may not read the ConfigMap kube-system/{name}: {error}"),
            "the token must be in group system:bootstrappers:kubeadm:default-node-token (tokens made by `bosun init` or `bosun token create` are)",
        ),
        _ => api_error(error),
    })?
    .ok_or_else(|| {
        failed(
            format!("the cluster has no ConfigMap kube-system/{name}"),
            "run `bosun init phase upload-config` on a control-plane node",
        )
    })?;
    config_map
        .data
        .and_then(|mut data| data.remove(key))
        .ok_or_else(|| {
            PhaseError::failed(format!(
                "the ConfigMap kube-system/{name} has no {key:?} key"
            ))
        })
}

/// The configuration this node runs with: the cluster's ClusterConfiguration and KubeletConfiguration, and this
/// node's JoinConfiguration (its registration and local API endpoint also stand in InitConfiguration's place, where
/// the `init` phases that join reuses read them).
pub fn cluster_config(
    data: &JoinData,
    cluster_text: &str,
    kubelet_text: &str,
) -> Result<Config, PhaseError> {
    let stream =
        bosun_config::yaml::join_documents(&[cluster_text.to_owned(), kubelet_text.to_owned()]);
    let origin = "the cluster's kubeadm-config and kubelet-config ConfigMaps";
    let mut config = bosun_config::load(origin, &stream, &data.host_facts)
        .map_err(|error| PhaseError::failed(format!("cannot use {origin}: {error}")))?;
    let join = data.join().clone();
    config.init.node_registration = join.node_registration.clone();
    config.init.timeouts = join.timeouts.clone();
    config.init.patches = join.patches.clone();
    if let Some(control_plane) = &join.control_plane {
        config.init.local_api_endpoint = control_plane.local_api_endpoint.clone();
        config.init.certificate_key = control_plane.certificate_key.clone();
    }
    config.join = Some(join);
    Ok(config)
}

/// The cluster's configuration, read with the TLS bootstrap credentials: the [`InitData`] the reused `init` phases
/// run with.
pub fn cluster_data(data: &JoinData, discovered: &Discovered) -> Result<InitData, PhaseError> {
    let connector = data.connector()?;
    let api = connector
        .connect(
            discovered.bootstrap_kubeconfig.as_bytes(),
            "the TLS bootstrap credentials",
        )
        .map_err(api_error)?;
    let timeout = data.timeout(
        |timeouts| timeouts.kubernetes_api_call,
        Duration::from_secs(60),
    );
    let cluster_text = config_map_value(api.as_ref(), KUBEADM_CONFIG, KUBEADM_CONFIG_KEY, timeout)?;
    let kubelet_text = config_map_value(api.as_ref(), KUBELET_CONFIG, KUBELET_CONFIG_KEY, timeout)?;
    let config = cluster_config(data, &cluster_text, &kubelet_text)?;
    if data.control_plane() && config.cluster.control_plane_endpoint.is_empty() {
        return Err(failed(
            "this cluster has no controlPlaneEndpoint, so another control-plane node cannot join it",
            "a cluster for several control-plane nodes is made with ClusterConfiguration controlPlaneEndpoint set \
             (a load-balanced or DNS name); join this node as a worker instead",
        ));
    }
    let mut init = InitData::new(config);
    init.templates_dir = data.templates_dir.clone();
    init.node = data.node.clone();
    init.ignore_preflight_errors = data.ignore_preflight_errors.clone();
    init.cluster.connector = Some(connector.clone());
    Ok(init)
}

/// Refuses a node name the cluster already has, unless this node is the one that registered it (its kubelet.conf
/// exists). Run by `discovery` (before anything is written) and by `kubelet-start`.
pub fn check_node_name(
    data: &JoinData,
    host: &Host,
    discovered: &Discovered,
) -> Result<(), PhaseError> {
    let connector = data.connector()?;
    let api = connector
        .connect(
            discovered.bootstrap_kubeconfig.as_bytes(),
            "the TLS bootstrap credentials",
        )
        .map_err(api_error)?;
    let timeout = data.timeout(
        |timeouts| timeouts.kubernetes_api_call,
        Duration::from_secs(60),
    );
    let name = data.node_name();
    let joined_here = host.files.exists(Path::new(paths::KUBELET_CONF))?;
    if !joined_here {
        match crate::cluster::with_retry(timeout, || cluster::get::<Node>(api.as_ref(), None, name)) {
            Ok(Some(_)) => {
                return Err(failed(
                    format!("a Node named {name:?} already exists in the cluster"),
                    "give this node another name with --node-name, or remove the old one with `kubectl delete node` \
                     (after `bosun reset` on it)",
                ))
            }
            Ok(None) => {}
            // Without the kubeadm:get-nodes binding the check cannot be made; the kubelet then reports the clash.
            Err(error) if matches!(error.code(), Some(401 | 403)) => {}
            Err(error) => return Err(api_error(error)),
        }
    }
    Ok(())
}
