//! `certs renew`: renew leaf certificates and the client certificates of kubeconfigs, then restart the control-plane
//! static pods that read them.
//!
//! The workflow `certs-renew` has one phase per requested certificate (`apiserver`, `etcd-server`, `admin.conf`, …),
//! then `restart/<component>` for each control-plane component whose certificates were renewed, in the order etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler.
//!
//! # Steps
//! 1. Plan (read-only, before the run): for each requested name, read the certificate and decide: renew, keep (it
//!    does not expire within `--if-expiring-within`), missing, or external CA. A name given explicitly that is missing
//!    or has an external CA stops the command before anything changes.
//! 2. Renew, per certificate: read the old certificate; generate a new key with the configured `encryptionAlgorithm`;
//!    issue a certificate with the old subject (CN and every O, so a pre-1.29 `system:masters` stays), the old DNS
//!    and IP SANs and extended key usages, a new random serial, `notBefore = now − 5 min` and
//!    `notAfter = now + certificateValidityPeriod`, signed by the CA on the node; write the key (0600), then the
//!    certificate (0644). A kubeconfig keeps everything but its embedded client certificate and key.
//! 3. Restart, one component at a time: add the annotation `bosun.dev/restarted-at: <RFC 3339>` to the pod
//!    metadata of `/etc/kubernetes/manifests/<component>.yaml` (the kubelet recreates a static pod whose manifest
//!    changed). When admin.conf reaches an API server that shows the component's mirror pod, wait until the kubelet
//!    reports a mirror pod with the new annotation whose containers run (the kubelet starts it only after the old
//!    one stopped), then until its health endpoint (from the manifest's flags) is healthy; without such an API
//!    server, wait until the health endpoint has gone down and is healthy again. Both within `--restart-timeout`,
//!    before the next component.
//!
//! # Guarantees
//! - Nothing changes before the plan is complete; an explicitly requested certificate that cannot be renewed stops the
//!   command with nothing changed.
//! - CAs and kubelet.conf are never renewed (the kubelet rotates its own client certificate).
//! - Every file is replaced atomically; keys are 0600. A component is restarted only after all certificates are
//!   written, and the next only after the previous one is healthy; a component that does not come back stops the run
//!   with an error naming it, leaving the others untouched.
//!
//! # Assumptions
//! - Idempotent and safe to re-run after an interruption: renewing again only makes yet another valid certificate;
//!   with `--if-expiring-within` a finished renewal is not repeated.
//! - The kubelet watches `/etc/kubernetes/manifests` (its `staticPodPath`) and the health endpoints are reachable
//!   from this host.
//!
//! # Caveats
//! - A certificate and its key are two files: an interruption between the two writes leaves a new key beside the old
//!   certificate until the next run (which renews that certificate again).
//! - The health endpoint does not tell which pod answers: on a real node the old API server answered /livez after
//!   etcd's restart made it fail for a moment, before the kubelet had replaced it (tests/e2e/renew.rs). So the
//!   mirror pod decides when there is one; only without an API server does bosun fall back to seeing the endpoint
//!   go down first (the kubelet notices a manifest change within its `fileCheckFrequency`, 20 s by default), and it
//!   warns if it never did.
//! - The restart annotation stays in the manifest; a later `init`/`upgrade` that renders the manifest again removes
//!   it, which restarts the component once more.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bosun_config::Config;
use bosun_pki::expiry::{format_expiry, short_human_duration};
use bosun_pki::table::{CertSpec, KubeconfigSpec, CERTIFICATES, KUBECONFIGS};
use bosun_pki::{issue, AltNames, CertRequest, Certificate, KeyAlgorithm, PrivateKey, Validity};
use time::OffsetDateTime;

use super::{
    kubeconfig_ca, kubeconfig_client_certificate, read_certificate, read_kubeconfig, CaOnNode,
    CertopsError, Locations,
};
use crate::certs::{CERT_MODE, KEY_MODE};
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError, Workflow};
use crate::host::cluster::ClusterConnector;
use crate::host::{Files, Outcome};
use crate::paths::{NodePaths, STATIC_POD_COMPONENTS};

/// The workflow name, as the journal records it (`certs timer status` looks for it).
pub const WORKFLOW: &str = "certs-renew";
/// The pod annotation whose change makes the kubelet recreate a static pod.
pub const RESTART_ANNOTATION: &str = "bosun.dev/restarted-at";

/// Something `certs renew` can renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Certificate(&'static CertSpec),
    Kubeconfig(&'static KubeconfigSpec),
}

impl Target {
    /// The name users type (`apiserver`, `admin.conf`).
    pub fn name(&self) -> &'static str {
        match self {
            Target::Certificate(spec) => spec.name,
            Target::Kubeconfig(spec) => spec.file,
        }
    }

    pub fn long_name(&self) -> &'static str {
        match self {
            Target::Certificate(spec) => spec.long_name,
            Target::Kubeconfig(spec) => spec.long_name,
        }
    }

    /// The static-pod components that read this certificate.
    pub fn components(&self) -> &'static [&'static str] {
        match self.name() {
            "apiserver"
            | "apiserver-kubelet-client"
            | "front-proxy-client"
            | "apiserver-etcd-client" => &["kube-apiserver"],
            "etcd-server" | "etcd-peer" => &["etcd"],
            "controller-manager.conf" => &["kube-controller-manager"],
            "scheduler.conf" => &["kube-scheduler"],
            _ => &[],
        }
    }

    fn files(&self, locations: &Locations) -> Vec<PathBuf> {
        match self {
            Target::Certificate(spec) => vec![locations.key(spec), locations.cert(spec)],
            Target::Kubeconfig(spec) => vec![locations.kubeconfig(spec)],
        }
    }
}

/// Every renewable name, in kubeadm's order: the leaf certificates (without the etcd ones when etcd is external),
/// then admin.conf, super-admin.conf, controller-manager.conf and scheduler.conf. CAs and kubelet.conf are not
/// renewable.
pub fn targets(external_etcd: bool) -> Vec<Target> {
    CERTIFICATES
        .iter()
        .filter(|spec| !(spec.is_ca() || (spec.etcd && external_etcd)))
        .map(Target::Certificate)
        .chain(
            KUBECONFIGS
                .iter()
                .filter(|spec| spec.renewable)
                .map(Target::Kubeconfig),
        )
        .collect()
}

/// What the plan decided for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Renew {
        not_after: OffsetDateTime,
    },
    /// It does not expire within `--if-expiring-within`.
    Keep {
        not_after: OffsetDateTime,
    },
    Missing {
        path: PathBuf,
    },
    /// Its CA has a certificate but no key.
    External {
        ca: &'static str,
        message: String,
    },
}

/// The decisions of the plan, in target order, and the components to restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub items: Vec<(Target, Decision)>,
    /// Components to restart, in restart order, each with a reason when it cannot be (no manifest).
    pub restarts: Vec<(&'static str, Option<String>)>,
}

/// How the restart after renewal behaves.
#[derive(Clone)]
pub struct RestartSettings {
    /// `false` with `--no-restart`.
    pub enabled: bool,
    /// How long a component may take to be healthy again (`--restart-timeout`).
    pub timeout: Duration,
    /// How long to wait to see the component go down before assuming the kubelet already recreated it.
    pub settle: Duration,
    /// Time between health probes.
    pub interval: Duration,
    /// Makes the health GETs.
    pub connector: Option<Arc<dyn ClusterConnector>>,
}

impl Default for RestartSettings {
    fn default() -> Self {
        RestartSettings {
            enabled: true,
            timeout: Duration::from_secs(240),
            settle: Duration::from_secs(40),
            interval: Duration::from_secs(1),
            connector: None,
        }
    }
}

/// Everything the `certs-renew` phases read.
pub struct RenewData {
    pub locations: Locations,
    pub key_algorithm: KeyAlgorithm,
    pub validity: Validity,
    pub restart: RestartSettings,
    /// `--if-expiring-within`.
    pub if_expiring_within: Option<Duration>,
    pub plan: Plan,
}

/// The key algorithm and validity the configuration asks for (the same rule as `bosun init`).
pub fn key_settings(config: &Config) -> Result<(KeyAlgorithm, Validity), CertopsError> {
    crate::certs::key_settings(config).map_err(CertopsError::failed)
}

/// Resolves the names on the command line (`all`, or renewable names) to targets; unknown names are an error that
/// lists the valid ones.
pub fn resolve(names: &[String], external_etcd: bool) -> Result<(Vec<Target>, bool), CertopsError> {
    let all = targets(external_etcd);
    if names.iter().any(|name| name == "all") {
        if names.len() > 1 {
            return Err(CertopsError::failed(
                "`all` cannot be combined with other certificate names",
            ));
        }
        return Ok((all, false));
    }
    if names.is_empty() {
        return Err(CertopsError::failed(
            "name the certificates to renew, or `all`",
        ));
    }
    let mut chosen = Vec::new();
    for name in names {
        let target = all
            .iter()
            .find(|target| target.name() == name)
            .ok_or_else(|| {
                let valid: Vec<&str> = all.iter().map(Target::name).collect();
                let why = if name == "kubelet.conf" {
                    " (the kubelet rotates its own client certificate)".to_owned()
                } else if CERTIFICATES
                    .iter()
                    .any(|spec| spec.is_ca() && spec.name == name)
                {
                    " (CAs are not renewed)".to_owned()
                } else {
                    String::new()
                };
                CertopsError::failed(format!(
                    "{name:?} cannot be renewed{why}; valid names are all, {}",
                    valid.join(", ")
                ))
            })?;
        if !chosen.contains(target) {
            chosen.push(*target);
        }
    }
    // Keep kubeadm's order whatever order the names came in.
    chosen.sort_by_key(|target| all.iter().position(|candidate| candidate == target));
    Ok((chosen, true))
}

fn signing_ca(target: Target) -> Result<&'static CertSpec, CertopsError> {
    match target {
        Target::Certificate(spec) => spec.ca().ok_or_else(|| {
            CertopsError::failed(format!("{} has no CA in the certificate table", spec.name))
        }),
        Target::Kubeconfig(_) => kubeconfig_ca(),
    }
}

/// The current certificate of a target; `Ok(None)` when its file is missing.
fn current_certificate(
    files: &dyn Files,
    locations: &Locations,
    target: Target,
) -> Result<Option<Certificate>, CertopsError> {
    match target {
        Target::Certificate(spec) => read_certificate(files, &locations.cert(spec)),
        Target::Kubeconfig(spec) => {
            let path = locations.kubeconfig(spec);
            match read_kubeconfig(files, &path)? {
                None => Ok(None),
                Some(kubeconfig) => Ok(Some(kubeconfig_client_certificate(
                    files,
                    &path,
                    &kubeconfig,
                )?)),
            }
        }
    }
}

/// Step 1: decides, read-only, what to do with each target.
pub fn plan(
    files: &dyn Files,
    locations: &Locations,
    chosen: &[Target],
    explicit: bool,
    if_expiring_within: Option<Duration>,
    now: SystemTime,
) -> Result<Plan, CertopsError> {
    let now = OffsetDateTime::from(now);
    let mut items = Vec::new();
    for target in chosen {
        let ca = CaOnNode::load(files, locations, signing_ca(*target)?)?;
        let decision = match current_certificate(files, locations, *target)? {
            None => Decision::Missing {
                path: match target {
                    Target::Certificate(spec) => locations.cert(spec),
                    Target::Kubeconfig(spec) => locations.kubeconfig(spec),
                },
            },
            Some(_) if ca.is_external() || ca.certificate.is_none() => Decision::External {
                ca: ca.spec.name,
                message: super::external_ca_error(&ca, target.name()).to_string(),
            },
            Some(certificate) => {
                let expiring = if_expiring_within.is_none_or(|window| {
                    i128::from((certificate.not_after - now).whole_seconds())
                        <= i128::from(window.as_secs())
                });
                if expiring {
                    Decision::Renew {
                        not_after: certificate.not_after,
                    }
                } else {
                    Decision::Keep {
                        not_after: certificate.not_after,
                    }
                }
            }
        };
        if explicit {
            match &decision {
                Decision::Missing { path } => {
                    return Err(CertopsError::failed(format!(
                        "cannot renew {}: {} does not exist",
                        target.name(),
                        path.display()
                    ))
                    .with_hint("make it first with `bosun init phase certs` or `bosun init phase kubeconfig`"));
                }
                Decision::External { .. } => {
                    return Err(super::external_ca_error(&ca, target.name()));
                }
                _ => {}
            }
        }
        items.push((*target, decision));
    }
    let renewed: BTreeSet<&str> = items
        .iter()
        .filter(|(_, decision)| matches!(decision, Decision::Renew { .. }))
        .flat_map(|(target, _)| target.components().iter().copied())
        .collect();
    let mut restarts = Vec::new();
    for component in STATIC_POD_COMPONENTS
        .iter()
        .copied()
        .filter(|component| renewed.contains(component))
    {
        let manifest = NodePaths::manifest(component);
        let reason = (!files.exists(&manifest)?).then(|| {
            format!("there is no static-pod manifest {}; restart {component} yourself if it runs elsewhere", manifest.display())
        });
        restarts.push((component, reason));
    }
    Ok(Plan { items, restarts })
}

fn decision_of(data: &RenewData, name: &str) -> Option<Decision> {
    data.plan
        .items
        .iter()
        .find(|(target, _)| target.name() == name)
        .map(|(_, decision)| decision.clone())
}

fn failed(error: CertopsError) -> PhaseError {
    error.into()
}

fn write(
    ctx: &mut PhaseCtx<'_, RenewData>,
    path: &std::path::Path,
    contents: &[u8],
    mode: u32,
    detail: &str,
) -> Result<(), PhaseError> {
    ctx.ensure_file_with_detail(path, contents, mode, Some(detail.to_owned()))?;
    Ok(())
}

/// The request that reproduces an old certificate's subject, SANs and usages.
pub fn request_like(name: &str, old: &Certificate) -> CertRequest {
    CertRequest {
        name: name.to_owned(),
        common_name: old.common_name.clone(),
        organization: old.organization.clone(),
        alt_names: AltNames {
            dns_names: old.alt_names.dns_names.clone(),
            ip_addresses: old.alt_names.ip_addresses.clone(),
        },
        usages: old.usages.clone(),
    }
}

/// Issues the renewed certificate for `old` with a fresh key.
pub fn reissue(
    name: &str,
    old: &Certificate,
    ca: &Certificate,
    ca_key: &PrivateKey,
    algorithm: KeyAlgorithm,
    lifetime: Duration,
    now: SystemTime,
) -> Result<(Certificate, PrivateKey), CertopsError> {
    let key = PrivateKey::generate(algorithm)?;
    let certificate = issue::issue_leaf(&request_like(name, old), &key, ca, ca_key, now, lifetime)?;
    Ok((certificate, key))
}

fn renew_target(ctx: &mut PhaseCtx<'_, RenewData>, target: Target) -> Result<(), PhaseError> {
    let data = ctx.data;
    let now = ctx.host.clock.now();
    match decision_of(data, target.name()) {
        Some(Decision::Renew { .. }) => {}
        Some(Decision::Keep { not_after }) => {
            let residual = (not_after - OffsetDateTime::from(now)).whole_seconds();
            let window = data.if_expiring_within.map(|window| {
                short_human_duration(i64::try_from(window.as_secs()).unwrap_or(i64::MAX))
            });
            for path in target.files(&data.locations) {
                ctx.record_with_detail(
                    path.display().to_string(),
                    Outcome::Unchanged,
                    Some(format!(
                        "expires {} (in {}), not within {}",
                        format_expiry(not_after),
                        short_human_duration(residual),
                        window.clone().unwrap_or_default()
                    )),
                );
            }
            return Ok(());
        }
        // Missing and external targets are skipped by their phase condition.
        _ => return Ok(()),
    }
    let files = ctx.host.files.as_ref();
    let ca = CaOnNode::load(files, &data.locations, signing_ca(target).map_err(failed)?)
        .map_err(failed)?;
    let (ca_certificate, ca_key) = ca.signer(files, target.name()).map_err(failed)?;
    let old = current_certificate(files, &data.locations, target)
        .map_err(failed)?
        .ok_or_else(|| {
            PhaseError::failed(format!("{} disappeared during the run", target.name()))
        })?;
    let (certificate, key) = reissue(
        target.name(),
        &old,
        &ca_certificate,
        &ca_key,
        data.key_algorithm,
        data.validity.leaf,
        now,
    )
    .map_err(failed)?;
    let detail = format!("renewed; expires {}", format_expiry(certificate.not_after));
    match target {
        Target::Certificate(spec) => {
            let key_path = data.locations.key(spec);
            let cert_path = data.locations.cert(spec);
            write(ctx, &key_path, key.to_pem().as_bytes(), KEY_MODE, "new key")?;
            write(
                ctx,
                &cert_path,
                certificate.to_pem().as_bytes(),
                CERT_MODE,
                &detail,
            )?;
        }
        Target::Kubeconfig(spec) => {
            let path = data.locations.kubeconfig(spec);
            let mut kubeconfig = read_kubeconfig(ctx.host.files.as_ref(), &path)
                .map_err(failed)?
                .ok_or_else(|| {
                    PhaseError::failed(format!("{} disappeared during the run", path.display()))
                })?;
            let user_name = kubeconfig
                .current_user()
                .map(|(name, _)| name.to_owned())
                .ok_or_else(|| {
                    PhaseError::failed(format!(
                        "{} has no user for its current context",
                        path.display()
                    ))
                })?;
            use base64::Engine as _;
            let encode =
                |pem: String| base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
            for named in kubeconfig
                .users
                .iter_mut()
                .filter(|named| named.name == user_name)
            {
                named.user.client_certificate = None;
                named.user.client_key = None;
                named.user.client_certificate_data = Some(encode(certificate.to_pem()));
                named.user.client_key_data = Some(encode(key.to_pem()));
            }
            let text = bosun_config::yaml::to_string(&kubeconfig).map_err(|error| {
                PhaseError::failed(format!("cannot write {}: {error}", path.display()))
            })?;
            write(ctx, &path, text.as_bytes(), KEY_MODE, &detail)?;
        }
    }
    ctx.info(format!("{} renewed", target.long_name()));
    Ok(())
}

fn target_phase(target: Target) -> Phase<RenewData> {
    Phase::new(target.name(), format!("Renew the {}", target.long_name()))
        .skip_if(
            move |data: &RenewData| match decision_of(data, target.name()) {
                Some(Decision::Missing { path }) => Some(format!(
                    "MISSING! {}: {} does not exist",
                    target.long_name(),
                    path.display()
                )),
                Some(Decision::External { ca, .. }) => Some(format!(
                    "detected external {ca}, {} can't be renewed",
                    target.long_name()
                )),
                _ => None,
            },
        )
        .makes(move |data: &RenewData| {
            target
                .files(&data.locations)
                .into_iter()
                .map(Artefact::File)
                .collect()
        })
        .run(move |ctx| renew_target(ctx, target))
}

/// The health URL of a component, from the flags of its manifest (kubeadm's probe addresses).
pub fn health_url(component: &str, manifest: &str) -> Option<String> {
    use crate::cluster::wait::manifest_flag;
    let host = |address: Option<String>| {
        let address = match address.as_deref() {
            None | Some("") | Some("0.0.0.0") => "127.0.0.1".to_owned(),
            Some("::") => "::1".to_owned(),
            Some(other) => other.to_owned(),
        };
        if address.contains(':') {
            format!("[{address}]")
        } else {
            address
        }
    };
    match component {
        "etcd" => {
            let metrics = manifest_flag(manifest, "listen-metrics-urls")?;
            let first = metrics.split(',').next()?.trim_end_matches('/').to_owned();
            Some(format!("{first}/health"))
        }
        "kube-apiserver" => {
            let port = manifest_flag(manifest, "secure-port").unwrap_or_else(|| "6443".to_owned());
            Some(format!(
                "https://{}:{port}/livez",
                host(manifest_flag(manifest, "advertise-address"))
            ))
        }
        "kube-controller-manager" => {
            let port = manifest_flag(manifest, "secure-port").unwrap_or_else(|| "10257".to_owned());
            Some(format!(
                "https://{}:{port}/healthz",
                host(manifest_flag(manifest, "bind-address"))
            ))
        }
        "kube-scheduler" => {
            let port = manifest_flag(manifest, "secure-port").unwrap_or_else(|| "10259".to_owned());
            Some(format!(
                "https://{}:{port}/livez",
                host(manifest_flag(manifest, "bind-address"))
            ))
        }
        _ => None,
    }
}

/// Adds or replaces the restart annotation in a static-pod manifest's pod metadata.
pub fn annotate(manifest: &str, origin: &str, stamp: &str) -> Result<String, CertopsError> {
    use bosun_config::yaml::{self, Mapping, Value};
    let invalid = |why: String| {
        CertopsError::failed(format!(
            "{origin} is not a pod manifest bosun can annotate: {why}"
        ))
    };
    let mut document =
        yaml::value_from_str(manifest).map_err(|error| invalid(error.to_string()))?;
    let pod = document
        .as_mapping_mut()
        .ok_or_else(|| invalid("it is not a YAML mapping".to_owned()))?;
    let metadata = pod
        .entry(Value::from("metadata"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    let metadata = metadata
        .as_mapping_mut()
        .ok_or_else(|| invalid("metadata is not a mapping".to_owned()))?;
    let annotations = metadata
        .entry(Value::from("annotations"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if annotations.is_null() {
        *annotations = Value::Mapping(Mapping::new());
    }
    let annotations = annotations
        .as_mapping_mut()
        .ok_or_else(|| invalid("metadata.annotations is not a mapping".to_owned()))?;
    annotations.insert(Value::from(RESTART_ANNOTATION), Value::from(stamp));
    yaml::to_string(&document).map_err(|error| invalid(error.to_string()))
}

fn rfc3339(time: SystemTime) -> String {
    OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn restart_component(
    ctx: &mut PhaseCtx<'_, RenewData>,
    component: &'static str,
) -> Result<(), PhaseError> {
    let manifest_path = NodePaths::manifest(component);
    let origin = manifest_path.display().to_string();
    let text = ctx
        .host
        .files
        .read(&manifest_path)?
        .ok_or_else(|| PhaseError::failed(format!("{origin} disappeared during the run")))?;
    let text = String::from_utf8(text)
        .map_err(|_| PhaseError::failed(format!("{origin} is not a text file")))?;
    let url = health_url(component, &text);
    let mirror_api = if ctx.host.dry_run || url.is_none() {
        None
    } else {
        mirror_pods_api(ctx, component)
    };
    let stamp = rfc3339(ctx.host.clock.now());
    let annotated = annotate(&text, &origin, &stamp).map_err(failed)?;
    ctx.ensure_file_with_detail(
        &manifest_path,
        annotated.as_bytes(),
        0o600,
        Some(format!("{RESTART_ANNOTATION}: {stamp}")),
    )?;
    if ctx.host.dry_run {
        return Ok(());
    }
    let Some(url) = url else {
        ctx.warn(format!(
            "{origin} gives no health endpoint for {component}; not waiting for it"
        ));
        return Ok(());
    };
    let settings = ctx.data.restart.clone();
    let connector = settings.connector.clone().ok_or_else(|| {
        PhaseError::failed(format!(
            "cannot check {component}'s health: no HTTP client was configured"
        ))
    })?;
    let probe = |url: &str| -> Result<(), String> {
        match connector.probe(url, Duration::from_secs(5)) {
            Ok(answer) if answer.status == 200 => Ok(()),
            Ok(answer) => Err(format!("HTTP {}: {}", answer.status, answer.body.trim())),
            Err(error) => Err(error.to_string()),
        }
    };
    let started = Instant::now();
    // With the API server, wait for the kubelet's own word that it replaced the pod: a health endpoint does not say
    // which instance answers, and the old one (or a blip caused by the previous restart) would pass for the new.
    if let Some((api, admin)) = mirror_api {
        ctx.info(format!(
            "waiting for the kubelet to run a new {component} pod with {RESTART_ANNOTATION}: {stamp} (up to {}s)",
            settings.timeout.as_secs()
        ));
        let mut seen;
        loop {
            match api.list("v1", "Pod", Some("kube-system"), None) {
                Ok(pods) => match restarted_pod(&pods, component, &stamp) {
                    Ok(name) => {
                        ctx.info(format!(
                            "the kubelet runs {name} with the new annotation after {}s",
                            started.elapsed().as_secs()
                        ));
                        break;
                    }
                    Err(why) => seen = why,
                },
                Err(error) => seen = format!("the API server (as {admin}) answered: {error}"),
            }
            if started.elapsed() >= settings.timeout {
                return Err(PhaseError::failed(format!(
                    "the kubelet did not run a new {component} pod within {}s after its manifest {origin} changed ({seen})",
                    settings.timeout.as_secs()
                ))
                .with_hint(
                    "look at the kubelet's log and `crictl ps -a`; the renewed certificates are in place, and `bosun certs \
                     renew` can be run again",
                ));
            }
            std::thread::sleep(settings.interval);
        }
        return wait_healthy(ctx, component, &url, &origin, started, &probe);
    }
    let mut went_down = false;
    let settle = settings.settle.min(settings.timeout);
    while started.elapsed() < settle {
        if probe(&url).is_err() {
            went_down = true;
            break;
        }
        std::thread::sleep(settings.interval);
    }
    if !went_down {
        ctx.warn(format!(
            "{component} stayed healthy for {}s after its manifest changed; the kubelet may not have restarted it (is it \
             watching {}?)",
            settle.as_secs(),
            crate::paths::MANIFESTS_DIR
        ));
    }
    wait_healthy(ctx, component, &url, &origin, started, &probe)
}

/// Probes `url` until it answers 200, within the restart timeout counted from `started`.
fn wait_healthy(
    ctx: &mut PhaseCtx<'_, RenewData>,
    component: &str,
    url: &str,
    origin: &str,
    started: Instant,
    probe: &dyn Fn(&str) -> Result<(), String>,
) -> Result<(), PhaseError> {
    let settings = ctx.data.restart.clone();
    ctx.info(format!(
        "waiting for {component} to be healthy at {url} (up to {}s)",
        settings.timeout.as_secs()
    ));
    let mut last_error;
    loop {
        match probe(url) {
            Ok(()) => {
                ctx.info(format!(
                    "{component} is healthy after {}s",
                    started.elapsed().as_secs()
                ));
                return Ok(());
            }
            Err(error) => last_error = error,
        }
        if started.elapsed() >= settings.timeout {
            return Err(PhaseError::failed(format!(
                "{component} did not become healthy at {url} within {}s after its manifest {origin} changed (last answer: {last_error})",
                settings.timeout.as_secs()
            ))
            .with_hint(format!(
                "look at the {component} container's log (crictl ps -a; crictl logs …); the renewed certificates are in \
                 place, and `bosun certs renew` can be run again"
            )));
        }
        std::thread::sleep(settings.interval);
    }
}

/// A connection as admin.conf when it shows a mirror pod of `component` before the restart (the kubelet runs it
/// and reports to this API server); `None` otherwise (no admin.conf, no API server, or not a kubelet's static pod),
/// and the restart is judged by the health endpoint alone.
fn mirror_pods_api(
    ctx: &mut PhaseCtx<'_, RenewData>,
    component: &str,
) -> Option<(Box<dyn crate::host::cluster::ClusterApi>, String)> {
    let connector = ctx.data.restart.connector.clone()?;
    let admin = KUBECONFIGS.iter().find(|spec| spec.file == "admin.conf")?;
    let path = ctx.data.locations.kubeconfig(admin);
    let origin = path.display().to_string();
    let kubeconfig = ctx.host.files.read(&path).ok()??;
    let api = connector.connect(&kubeconfig, &origin).ok()?;
    let pods = api.list("v1", "Pod", Some("kube-system"), None).ok()?;
    mirror_pods(&pods, component).next()?;
    Some((api, origin))
}

/// The mirror pods (the kubelet's reflection of a static pod) of a control-plane component, by kubeadm's
/// `component` label.
fn mirror_pods<'a>(
    pods: &'a [serde_json::Value],
    component: &'a str,
) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
    pods.iter().filter(move |pod| {
        pod["metadata"]["labels"]["component"] == component
            && pod["metadata"]["annotations"]
                .get("kubernetes.io/config.mirror")
                .is_some()
    })
}

/// The name of the mirror pod of `component` that carries the restart annotation `stamp` and whose containers all
/// run (the kubelet starts a static pod whose manifest changed only after the old one has stopped), or what was
/// seen instead.
pub fn restarted_pod(
    pods: &[serde_json::Value],
    component: &str,
    stamp: &str,
) -> Result<String, String> {
    let mut seen = Vec::new();
    for pod in mirror_pods(pods, component) {
        let name = pod["metadata"]["name"].as_str().unwrap_or("?");
        if pod["metadata"]["annotations"][RESTART_ANNOTATION] != stamp {
            seen.push(format!("{name} is the old pod"));
            continue;
        }
        let statuses = pod["status"]["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !statuses.is_empty()
            && statuses
                .iter()
                .all(|status| status["state"].get("running").is_some())
        {
            return Ok(name.to_owned());
        }
        seen.push(format!("{name} has containers that do not run yet"));
    }
    if seen.is_empty() {
        seen.push(format!("no mirror pod of {component}"));
    }
    Err(seen.join("; "))
}

fn restart_phase(component: &'static str) -> Phase<RenewData> {
    Phase::new(
        component,
        format!(
            "Restart the {component} static pod through its manifest and wait until it is healthy"
        ),
    )
    .skip_if(move |data: &RenewData| {
        if !data.restart.enabled {
            return Some(format!(
                "--no-restart: restart {component} yourself so that it loads the new certificates"
            ));
        }
        data.plan
            .restarts
            .iter()
            .find(|(name, _)| *name == component)
            .and_then(|(_, reason)| reason.clone())
    })
    .makes(move |_| vec![Artefact::File(NodePaths::manifest(component))])
    .run(move |ctx| restart_component(ctx, component))
}

/// The `certs-renew` workflow for a plan: one phase per planned target, then `restart/<component>`.
pub fn workflow(plan: &Plan) -> Workflow<RenewData> {
    let mut workflow = Workflow::new(WORKFLOW);
    for (target, _) in &plan.items {
        workflow = workflow.phase(target_phase(*target));
    }
    if !plan.restarts.is_empty() {
        let restart = Phase::new(
            "restart",
            "Restart the control-plane components whose certificates were renewed, one at a time",
        )
        .children(
            plan.restarts
                .iter()
                .map(|(component, _)| restart_phase(component)),
        );
        workflow = workflow.phase(restart);
    }
    workflow
}
