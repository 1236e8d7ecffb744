//! The `init` phases `certs/*` and `kubeconfig/*`: the control-plane PKI under `certificatesDir` and the kubeconfig
//! files in /etc/kubernetes, made with kubeadm's rules (kubeadm-facts §1.4, §1.5, §2).
//!
//! Rules, per artefact:
//! - A CA whose certificate or key exists is loaded and reused: it must parse, be a CA, match its key and be in
//!   date. `ca.crt` without `ca.key` is external-CA mode: the CA is used to verify, never to sign.
//! - A leaf whose certificate or key exists is kept if its key matches, it chains to its CA, it is in date and covers
//!   every SAN and usage now required; otherwise the phase stops with an error saying why. Nothing is ever
//!   overwritten. A key left without its certificate (an interrupted run) is reused for a new certificate.
//! - A kubeconfig that exists is kept if it embeds the current CA; a different server URL is a warning.
//! - External etcd skips the etcd CA and its leaves.
//!
//! Modes: keys, `sa.pub` and kubeconfigs 0600 (as kubeadm), certificates 0644. Every artefact is reported as unchanged
//! ("using existing") or created ("generated").
//!
//! Files on a node: `<certificatesDir>/{ca,apiserver,apiserver-kubelet-client,front-proxy-ca,front-proxy-client,
//! apiserver-etcd-client}.{crt,key}`, `<certificatesDir>/etcd/{ca,server,peer,healthcheck-client}.{crt,key}`,
//! `<certificatesDir>/sa.{key,pub}`, `/etc/kubernetes/{admin,super-admin,kubelet,controller-manager,scheduler}.conf`.

mod keys;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bosun_config::Config;
use bosun_pki::kubeconfig::same_ca_bytes;
use bosun_pki::table::{KubeconfigSpec, KUBECONFIG_CA, SERVICE_ACCOUNT};
use bosun_pki::{
    cert::public_key_from_pem, issue, CertSpec, Certificate, KeyAlgorithm, Kubeconfig, PkiError,
    PkiInputs, PrivateKey, Validity, CERTIFICATES, KUBECONFIGS,
};

use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::host::Outcome;
use crate::init::InitData;
use crate::paths::KUBERNETES_DIR;

pub use keys::KeySupply;

/// Permission bits of private keys and kubeconfigs.
pub const KEY_MODE: u32 = 0o600;
/// Permission bits of certificates and the service-account public key.
pub const CERT_MODE: u32 = 0o644;

/// The key algorithm (`encryptionAlgorithm`, RSA-2048 when empty) and the validity periods the configuration asks
/// for; `Err` is a one-sentence message naming the field.
pub fn key_settings(config: &Config) -> Result<(KeyAlgorithm, Validity), String> {
    let cluster = &config.cluster;
    let key_algorithm = if cluster.encryption_algorithm.is_empty() {
        KeyAlgorithm::default()
    } else {
        cluster
            .encryption_algorithm
            .parse()
            .map_err(|error: PkiError| {
                format!("ClusterConfiguration encryptionAlgorithm: {error}")
            })?
    };
    let defaults = Validity::default();
    let validity = Validity {
        leaf: cluster
            .certificate_validity_period
            .as_ref()
            .map_or(defaults.leaf, |period| period.as_std()),
        ca: cluster
            .ca_certificate_validity_period
            .as_ref()
            .map_or(defaults.ca, |period| period.as_std()),
    };
    Ok((key_algorithm, validity))
}

/// The PKI inputs of a configuration: the one place where configuration fields become certificate contents.
pub fn pki_inputs(config: &Config) -> Result<PkiInputs, PhaseError> {
    let invalid = |error: bosun_config::ConfigError| PhaseError::failed(error.to_string());
    let cluster = &config.cluster;
    let (key_algorithm, validity) = key_settings(config).map_err(PhaseError::failed)?;
    let local = cluster.etcd.local.as_ref();
    Ok(PkiInputs {
        node_name: config.node_registration().name.clone(),
        advertise_address: config.advertise_address().map_err(invalid)?,
        bind_port: config.bind_port(),
        service_vip: config.first_service_ip().map_err(invalid)?,
        dns_domain: cluster.networking.dns_domain.clone(),
        control_plane_endpoint: Some(cluster.control_plane_endpoint.clone())
            .filter(|endpoint| !endpoint.is_empty()),
        apiserver_cert_sans: cluster.api_server.cert_sans.clone(),
        etcd_server_cert_sans: local
            .map(|local| local.server_cert_sans.clone())
            .unwrap_or_default(),
        etcd_peer_cert_sans: local
            .map(|local| local.peer_cert_sans.clone())
            .unwrap_or_default(),
        cluster_name: if cluster.cluster_name.is_empty() {
            "kubernetes".to_owned()
        } else {
            cluster.cluster_name.clone()
        },
        key_algorithm,
        validity,
        external_etcd: config.external_etcd().is_some(),
    })
}

fn pki_file(data: &InitData, relative: &str) -> PathBuf {
    data.paths.pki(relative)
}

/// The node path of a kubeconfig file.
pub fn kubeconfig_path(spec: &KubeconfigSpec) -> PathBuf {
    Path::new(KUBERNETES_DIR).join(spec.file)
}

fn external_etcd_reason(data: &InitData) -> Option<String> {
    data.config
        .external_etcd()
        .map(|_| "etcd is external: its certificates come from the etcd operator".to_owned())
}

fn pki_error(error: PkiError) -> PhaseError {
    let hint = match &error {
        PkiError::MissingSans { .. } => Some(
            "the certificate was made for other addresses (apiServer.certSANs or the endpoints changed?); \
             remove the certificate and its key to have bosun make a new one",
        ),
        PkiError::NotSignedBy { .. } | PkiError::KeyMismatch { .. } => Some(
            "the files come from different PKIs; restore the matching pair or remove the leaf certificate and key",
        ),
        PkiError::Expired { .. } => Some("renew it with `bosun certs renew`, or remove it and run again"),
        PkiError::InvalidPem { .. } | PkiError::InvalidCertificate { .. } | PkiError::InvalidKey { .. } => {
            Some("restore the file from a backup, or remove it (and its pair) to have bosun make a new one")
        }
        _ => None,
    };
    let failed = PhaseError::failed(error.to_string());
    match hint {
        Some(hint) => failed.with_hint(hint),
        None => failed,
    }
}

fn now_of(ctx: &PhaseCtx<'_, InitData>) -> SystemTime {
    ctx.host.clock.now()
}

/// Writes a declared file that does not exist yet and reports it with `detail`.
fn create(
    ctx: &mut PhaseCtx<'_, InitData>,
    path: &Path,
    contents: &[u8],
    mode: u32,
    detail: &str,
) -> Result<(), PhaseError> {
    ctx.ensure_file_with_detail(path, contents, mode, Some(detail.to_owned()))?;
    Ok(())
}

fn keep(ctx: &mut PhaseCtx<'_, InitData>, path: &Path, detail: &str) {
    ctx.record_with_detail(
        path.display().to_string(),
        Outcome::Unchanged,
        Some(detail.to_owned()),
    );
}

fn read(ctx: &PhaseCtx<'_, InitData>, path: &Path) -> Result<Option<Vec<u8>>, PhaseError> {
    Ok(ctx.host.files.read(path)?)
}

/// A CA as found on the node.
struct LoadedCa {
    certificate: Certificate,
    /// `None` in external-CA mode.
    key: Option<PrivateKey>,
    key_path: PathBuf,
}

/// Loads the CA `spec` from the node and checks it; `Ok(None)` when its certificate does not exist.
fn load_ca(
    ctx: &PhaseCtx<'_, InitData>,
    spec: &CertSpec,
    now: SystemTime,
) -> Result<Option<LoadedCa>, PhaseError> {
    let cert_path = pki_file(ctx.data, &spec.cert_file());
    let key_path = pki_file(ctx.data, &spec.key_file());
    let cert_bytes = read(ctx, &cert_path)?;
    let key_bytes = read(ctx, &key_path)?;
    let Some(cert_bytes) = cert_bytes else {
        return Ok(None);
    };
    let origin = cert_path.display().to_string();
    let certificate = Certificate::from_pem(&origin, &cert_bytes).map_err(pki_error)?;
    certificate.check_is_ca().map_err(pki_error)?;
    certificate
        .check_validity(time::OffsetDateTime::from(now))
        .map_err(|error| {
            pki_error(error).with_hint(
                "a CA outside its validity period cannot vouch for any certificate; restore a valid CA \
                 or remove every file of this PKI to start a new one",
            )
        })?;
    let key = match key_bytes {
        None => None,
        Some(bytes) => {
            let key_origin = key_path.display().to_string();
            let key = PrivateKey::from_pem(&key_origin, &bytes).map_err(pki_error)?;
            certificate
                .check_key(&key, &key_origin)
                .map_err(pki_error)?;
            Some(key)
        }
    };
    Ok(Some(LoadedCa {
        certificate,
        key,
        key_path,
    }))
}

/// Loads the signing CA of a leaf, which an earlier phase (or the user) put on the node.
fn signing_ca(
    ctx: &PhaseCtx<'_, InitData>,
    ca_spec: &CertSpec,
    now: SystemTime,
) -> Result<LoadedCa, PhaseError> {
    load_ca(ctx, ca_spec, now)?.ok_or_else(|| {
        PhaseError::failed(format!(
            "the {} certificate {} does not exist",
            ca_spec.name,
            pki_file(ctx.data, &ca_spec.cert_file()).display()
        ))
        .with_hint(format!(
            "run `bosun init phase certs {}` first",
            ca_spec.name
        ))
    })
}

fn ca_key_or_external<'ca>(
    ca: &'ca LoadedCa,
    ca_spec: &CertSpec,
    missing: &Path,
) -> Result<&'ca PrivateKey, PhaseError> {
    ca.key.as_ref().ok_or_else(|| {
        PhaseError::failed(format!(
            "{} does not exist and cannot be made: {} is absent, so the {} is external",
            missing.display(),
            ca.key_path.display(),
            ca_spec.name
        ))
        .with_hint(format!(
            "with an external CA, provide {} signed by {} before running init",
            missing.display(),
            ca.certificate.origin
        ))
    })
}

fn ensure_ca(ctx: &mut PhaseCtx<'_, InitData>, spec: &'static CertSpec) -> Result<(), PhaseError> {
    let inputs = pki_inputs(&ctx.data.config)?;
    let now = now_of(ctx);
    let cert_path = pki_file(ctx.data, &spec.cert_file());
    let key_path = pki_file(ctx.data, &spec.key_file());
    match load_ca(ctx, spec, now) {
        Ok(Some(loaded)) => {
            keep(ctx, &cert_path, "using existing");
            if loaded.key.is_some() {
                keep(ctx, &key_path, "using existing");
            } else {
                ctx.info(format!(
                    "{} is absent: using the external {} in {}",
                    key_path.display(),
                    spec.name,
                    cert_path.display()
                ));
            }
            Ok(())
        }
        Ok(None) => {
            // A key without its certificate is what a run killed between the two writes leaves (the key is written
            // first). The certificate is made from that key: same key and subject, so anything the CA signed
            // before still verifies, and a re-run converges instead of stopping.
            let existing = read(ctx, &key_path)?;
            let key = match &existing {
                Some(bytes) => PrivateKey::from_pem(&key_path.display().to_string(), bytes)
                    .map_err(pki_error)?,
                None => ctx
                    .data
                    .keys
                    .take(inputs.key_algorithm)
                    .map_err(pki_error)?,
            };
            let (request, _) = inputs.cert_request(spec);
            let certificate =
                issue::issue_ca(&request, &key, now, inputs.validity.ca).map_err(pki_error)?;
            if existing.is_some() {
                keep(ctx, &key_path, "using existing");
                return create(
                    ctx,
                    &cert_path,
                    certificate.to_pem().as_bytes(),
                    CERT_MODE,
                    "generated from the existing key",
                );
            }
            create(
                ctx,
                &key_path,
                key.to_pem().as_bytes(),
                KEY_MODE,
                "generated",
            )?;
            create(
                ctx,
                &cert_path,
                certificate.to_pem().as_bytes(),
                CERT_MODE,
                "generated",
            )?;
            Ok(())
        }
        Err(error) => Err(error),
    }
}

fn ensure_leaf(
    ctx: &mut PhaseCtx<'_, InitData>,
    spec: &'static CertSpec,
) -> Result<(), PhaseError> {
    let inputs = pki_inputs(&ctx.data.config)?;
    let now = now_of(ctx);
    let ca_spec = spec.ca().ok_or_else(|| {
        PhaseError::failed(format!("{} has no CA in the certificate table", spec.name))
    })?;
    let ca = signing_ca(ctx, ca_spec, now)?;
    let cert_path = pki_file(ctx.data, &spec.cert_file());
    let key_path = pki_file(ctx.data, &spec.key_file());
    let (request, dropped) = inputs.cert_request(spec);
    for warning in dropped {
        ctx.warn(warning.to_string());
    }
    let existing_cert = read(ctx, &cert_path)?;
    let existing_key = read(ctx, &key_path)?;
    let key_origin = key_path.display().to_string();
    match (existing_cert, existing_key) {
        (Some(cert_bytes), key_bytes) => {
            let origin = cert_path.display().to_string();
            let chain = Certificate::chain_from_pem(&origin, &cert_bytes).map_err(pki_error)?;
            let Some(key_bytes) = key_bytes else {
                return Err(PhaseError::failed(format!(
                    "{} exists but its key {} does not",
                    cert_path.display(),
                    key_path.display()
                ))
                .with_hint(
                    "restore the key, or remove the certificate to have bosun make a new pair",
                ));
            };
            let key = PrivateKey::from_pem(&key_origin, &key_bytes).map_err(pki_error)?;
            let leaf = &chain[0];
            leaf.check_key(&key, &key_origin).map_err(pki_error)?;
            leaf.check_chain(&chain[1..], &ca.certificate)
                .map_err(pki_error)?;
            leaf.check_validity(time::OffsetDateTime::from(now))
                .map_err(pki_error)?;
            leaf.check_sans(&request.alt_names).map_err(pki_error)?;
            leaf.check_usages(&request.usages).map_err(pki_error)?;
            keep(ctx, &cert_path, "using existing");
            keep(ctx, &key_path, "using existing");
        }
        (None, Some(key_bytes)) => {
            let ca_key = ca_key_or_external(&ca, ca_spec, &cert_path)?;
            let key = PrivateKey::from_pem(&key_origin, &key_bytes).map_err(pki_error)?;
            let certificate = issue::issue_leaf(
                &request,
                &key,
                &ca.certificate,
                ca_key,
                now,
                inputs.validity.leaf,
            )
            .map_err(pki_error)?;
            keep(ctx, &key_path, "using existing");
            create(
                ctx,
                &cert_path,
                certificate.to_pem().as_bytes(),
                CERT_MODE,
                "generated for the existing key",
            )?;
        }
        (None, None) => {
            let ca_key = ca_key_or_external(&ca, ca_spec, &cert_path)?;
            let key = ctx
                .data
                .keys
                .take(inputs.key_algorithm)
                .map_err(pki_error)?;
            let certificate = issue::issue_leaf(
                &request,
                &key,
                &ca.certificate,
                ca_key,
                now,
                inputs.validity.leaf,
            )
            .map_err(pki_error)?;
            create(
                ctx,
                &key_path,
                key.to_pem().as_bytes(),
                KEY_MODE,
                "generated",
            )?;
            create(
                ctx,
                &cert_path,
                certificate.to_pem().as_bytes(),
                CERT_MODE,
                "generated",
            )?;
        }
    }
    Ok(())
}

fn ensure_service_account(ctx: &mut PhaseCtx<'_, InitData>) -> Result<(), PhaseError> {
    let inputs = pki_inputs(&ctx.data.config)?;
    let key_path = pki_file(ctx.data, SERVICE_ACCOUNT.private_key_file);
    let public_path = pki_file(ctx.data, SERVICE_ACCOUNT.public_key_file);
    let key = match read(ctx, &key_path)? {
        Some(bytes) => {
            let key =
                PrivateKey::from_pem(&key_path.display().to_string(), &bytes).map_err(pki_error)?;
            keep(ctx, &key_path, "using existing");
            key
        }
        None => {
            if external_ca(ctx)? {
                return Err(PhaseError::failed(format!(
                    "{} does not exist; with an external CA bosun does not make the service-account key",
                    key_path.display()
                ))
                .with_hint(format!(
                    "provide {} and {} (an RSA or ECDSA key pair) before running init",
                    key_path.display(),
                    public_path.display()
                )));
            }
            let key = ctx
                .data
                .keys
                .take(inputs.key_algorithm)
                .map_err(pki_error)?;
            create(
                ctx,
                &key_path,
                key.to_pem().as_bytes(),
                KEY_MODE,
                "generated",
            )?;
            key
        }
    };
    match read(ctx, &public_path)? {
        Some(bytes) => {
            let public = public_key_from_pem(&public_path.display().to_string(), &bytes)
                .map_err(pki_error)?;
            if public != key.public_key_der() {
                return Err(PhaseError::failed(format!(
                    "{} is not the public half of {}",
                    public_path.display(),
                    key_path.display()
                ))
                .with_hint("remove sa.pub to have bosun derive it from sa.key"));
            }
            keep(ctx, &public_path, "using existing");
        }
        None => create(
            ctx,
            &public_path,
            key.public_key_pem().as_bytes(),
            // kubeadm writes the service-account public key 0600, like its key.
            KEY_MODE,
            "derived from the key",
        )?,
    }
    Ok(())
}

/// Whether `ca.crt` exists without `ca.key`.
fn external_ca(ctx: &PhaseCtx<'_, InitData>) -> Result<bool, PhaseError> {
    let ca = bosun_pki::table::cert_spec(KUBECONFIG_CA)
        .ok_or_else(|| PhaseError::failed("the certificate table has no ca row"))?;
    let files = ctx.host.files.as_ref();
    Ok(files.exists(&pki_file(ctx.data, &ca.cert_file()))?
        && !files.exists(&pki_file(ctx.data, &ca.key_file()))?)
}

fn ensure_kubeconfig(
    ctx: &mut PhaseCtx<'_, InitData>,
    spec: &'static KubeconfigSpec,
) -> Result<(), PhaseError> {
    let inputs = pki_inputs(&ctx.data.config)?;
    let now = now_of(ctx);
    let ca_spec = bosun_pki::table::cert_spec(KUBECONFIG_CA)
        .ok_or_else(|| PhaseError::failed("the certificate table has no ca row"))?;
    let ca = signing_ca(ctx, ca_spec, now)?;
    let path = kubeconfig_path(spec);
    let server = inputs.kubeconfig_server(spec);
    let ca_pem = ca.certificate.to_pem();
    if let Some(bytes) = read(ctx, &path)? {
        let origin = path.display().to_string();
        let text = String::from_utf8(bytes)
            .map_err(|_| PhaseError::failed(format!("{origin} is not a text file")))?;
        let existing: Kubeconfig = parse_kubeconfig(&text).map_err(|error| {
            PhaseError::failed(format!("{origin} is not a valid kubeconfig: {error}"))
        })?;
        let embedded = existing.cluster_ca_pem().ok_or_else(|| {
            PhaseError::failed(format!(
                "{origin} does not embed the cluster CA (certificate-authority-data)"
            ))
        })?;
        // A file on disk may carry the certificate with different line endings; compare what it encodes too.
        let same = same_ca_bytes(&embedded, ca_pem.as_bytes())
            || Certificate::from_pem(&origin, &embedded)
                .is_ok_and(|embedded| embedded.der() == ca.certificate.der());
        if !same {
            return Err(PhaseError::failed(format!(
                "{origin} was made for a different CA than {}",
                ca.certificate.origin
            ))
            .with_hint(format!(
                "remove {origin} to have bosun make it again with the current CA"
            )));
        }
        if ca.key.is_none() {
            let client = existing.client_certificate(&origin).map_err(pki_error)?;
            client.check_signed_by(&ca.certificate).map_err(pki_error)?;
        }
        if let Some(cluster) = existing.current_cluster() {
            if cluster.server != server {
                ctx.warn(format!(
                    "{origin} points at {} instead of {server}; keeping it as it is",
                    cluster.server
                ));
            }
        }
        keep(ctx, &path, "using existing");
        return Ok(());
    }
    let ca_key = ca_key_or_external(&ca, ca_spec, &path)?;
    let request = inputs.kubeconfig_request(spec);
    let key = ctx
        .data
        .keys
        .take(inputs.key_algorithm)
        .map_err(pki_error)?;
    let certificate = issue::issue_leaf(
        &request,
        &key,
        &ca.certificate,
        ca_key,
        now,
        inputs.validity.leaf,
    )
    .map_err(pki_error)?;
    let kubeconfig = Kubeconfig::with_client_certificate(
        &inputs.cluster_name,
        &server,
        &ca_pem,
        &request.common_name,
        &certificate.to_pem(),
        &key.to_pem(),
    );
    let text = bosun_config::yaml::to_string(&kubeconfig)
        .map_err(|error| PhaseError::failed(format!("cannot write {}: {error}", path.display())))?;
    create(ctx, &path, text.as_bytes(), KEY_MODE, "generated")
}

/// Parses a kubeconfig file. `yaml::from_str` skips `apiVersion`/`kind` (it reads configuration bodies), and a
/// kubeconfig keeps them, so go through a generic value.
pub fn parse_kubeconfig(text: &str) -> Result<Kubeconfig, bosun_config::yaml::YamlError> {
    bosun_config::yaml::from_value(bosun_config::yaml::value_from_str(text)?)
}

/// How many keys the certs children would generate on this node now (reserved by the parent).
fn keys_needed_for_certs(
    ctx: &PhaseCtx<'_, InitData>,
    inputs: &PkiInputs,
) -> Result<usize, PhaseError> {
    let files = ctx.host.files.as_ref();
    let absent = |relative: &str| -> Result<bool, PhaseError> {
        Ok(!files.exists(&pki_file(ctx.data, relative))?)
    };
    let mut count = 0;
    for spec in inputs.certificates() {
        let signer_can_sign = match spec.ca() {
            None => true,
            Some(ca) => !absent(&ca.key_file())? || absent(&ca.cert_file())?,
        };
        if signer_can_sign && absent(&spec.cert_file())? && absent(&spec.key_file())? {
            count += 1;
        }
    }
    if absent(SERVICE_ACCOUNT.private_key_file)? && !external_ca(ctx)? {
        count += 1;
    }
    Ok(count)
}

fn keys_needed_for_kubeconfigs(ctx: &PhaseCtx<'_, InitData>) -> Result<usize, PhaseError> {
    if external_ca(ctx)? {
        return Ok(0);
    }
    let mut count = 0;
    for spec in &KUBECONFIGS {
        if !ctx.host.files.exists(&kubeconfig_path(spec))? {
            count += 1;
        }
    }
    Ok(count)
}

/// Which parent is reserving keys.
#[derive(Clone, Copy)]
enum Children {
    Certs,
    Kubeconfigs,
}

/// Starts generating, on every core, the keys the PKI still lacks on this node: the `certs` parent reserves its
/// children's keys and those of the kubeconfig files that the next phase will make, so that both batches run as
/// one; the `kubeconfig` parent reserves its own when it runs alone. Children take the keys as they finish.
fn reserve_keys(ctx: &mut PhaseCtx<'_, InitData>, children: Children) -> Result<(), PhaseError> {
    let inputs = pki_inputs(&ctx.data.config)?;
    let wanted = match children {
        Children::Certs => keys_needed_for_certs(ctx, &inputs)? + keys_needed_for_kubeconfigs(ctx)?,
        Children::Kubeconfigs => keys_needed_for_kubeconfigs(ctx)?,
    };
    if wanted > 1 {
        let algorithm = inputs.key_algorithm;
        let added = ctx.data.keys.reserve(algorithm, wanted);
        if added > 0 {
            ctx.progress(
                0,
                added as u64,
                format!("generating {added} {algorithm} keys in the background"),
            );
        }
    }
    Ok(())
}

fn cert_phase(spec: &'static CertSpec) -> Phase<InitData> {
    let mut phase =
        Phase::new(spec.name, format!("Make or reuse the {}", spec.long_name)).makes(move |data| {
            vec![
                Artefact::File(pki_file(data, &spec.cert_file())),
                Artefact::File(pki_file(data, &spec.key_file())),
            ]
        });
    phase = match spec.ca() {
        None => phase.run(move |ctx| ensure_ca(ctx, spec)),
        Some(ca) => phase
            .needs(move |data| vec![Artefact::File(pki_file(data, &ca.cert_file()))])
            .run(move |ctx| ensure_leaf(ctx, spec)),
    };
    if spec.etcd {
        phase = phase.skip_if(external_etcd_reason);
    }
    phase
}

fn service_account_phase() -> Phase<InitData> {
    Phase::new(
        SERVICE_ACCOUNT.name,
        format!("Make or reuse the {}", SERVICE_ACCOUNT.long_name),
    )
    .makes(|data| {
        vec![
            Artefact::File(pki_file(data, SERVICE_ACCOUNT.private_key_file)),
            Artefact::File(pki_file(data, SERVICE_ACCOUNT.public_key_file)),
        ]
    })
    .run(ensure_service_account)
}

/// `certs`: every certificate and the service-account key pair, in kubeadm's order. The parent starts generating the
/// keys its children (and the kubeconfig phase) will need on every core; each child also works alone.
pub fn certs_phase() -> Phase<InitData> {
    Phase::new("certs", "Make or reuse the cluster certificates and keys")
        .long_about(
            "Make the control-plane PKI under certificatesDir: the Kubernetes, front-proxy and etcd CAs, the leaf \
             certificates signed by them and the service-account key pair. Existing valid files are reused; an \
             existing certificate that does not fit the configuration stops the run; nothing is overwritten.",
        )
        .run(|ctx| reserve_keys(ctx, Children::Certs))
        .children(CERTIFICATES.iter().map(cert_phase))
        .child(service_account_phase())
}

fn kubeconfig_child(spec: &'static KubeconfigSpec) -> Phase<InitData> {
    Phase::new(spec.name, format!("Make or reuse the {}", spec.long_name))
        .needs(|data| vec![Artefact::File(pki_file(data, "ca.crt"))])
        .makes(move |_| vec![Artefact::File(kubeconfig_path(spec))])
        .run(move |ctx| ensure_kubeconfig(ctx, spec))
}

/// `kubeconfig`: the kubeconfig files of the admin, super-admin, kubelet, controller-manager and scheduler.
pub fn kubeconfig_phase() -> Phase<InitData> {
    Phase::new("kubeconfig", "Make or reuse the kubeconfig files of the administrator and the control-plane components")
        .long_about(
            "Write /etc/kubernetes/{admin,super-admin,kubelet,controller-manager,scheduler}.conf with client \
             certificates signed by the Kubernetes CA. An existing file is kept if it embeds the current CA.",
        )
        .run(|ctx| reserve_keys(ctx, Children::Kubeconfigs))
        .children(KUBECONFIGS.iter().map(kubeconfig_child))
}
