//! `certs generate-csr`: private keys and certificate signing requests for every leaf certificate and kubeconfig, for
//! a PKI whose CAs are kept elsewhere (kubeadm's external-CA flow).
//!
//! Writes `<certificatesDir>/<base>.key` + `<base>.csr` for each leaf (without the etcd ones when etcd is external),
//! and for admin, super-admin, kubelet, controller-manager and scheduler a kubeconfig with the embedded key but no CA
//! and no certificate, plus `<name>.conf.csr` beside it. The subjects and SANs are the ones `init` would use.
//!
//! Guarantees: like kubeadm, it never overwrites — if any of these files exists, the `check` phase stops the run
//! before anything is written and lists them. Keys, kubeconfigs and CSRs are written 0600, atomically.

use std::path::PathBuf;

use bosun_config::Config;
use bosun_pki::table::{CertSpec, KubeconfigSpec, CERTIFICATES, KUBECONFIGS};
use bosun_pki::{issue, Kubeconfig, PkiInputs, PrivateKey};

use super::Locations;
use crate::certs::{pki_inputs, KEY_MODE};
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError, Workflow};

/// What the `certs-generate-csr` phases read.
pub struct CsrData {
    pub config: Config,
    pub locations: Locations,
}

fn leaves(data: &CsrData) -> Vec<&'static CertSpec> {
    let external_etcd = data.config.external_etcd().is_some();
    CERTIFICATES
        .iter()
        .filter(|spec| !(spec.is_ca() || (spec.etcd && external_etcd)))
        .collect()
}

fn leaf_files(data: &CsrData, spec: &CertSpec) -> Vec<PathBuf> {
    vec![
        data.locations.key(spec),
        data.locations.cert_dir.join(spec.csr_file()),
    ]
}

fn kubeconfig_files(data: &CsrData, spec: &KubeconfigSpec) -> Vec<PathBuf> {
    let path = data.locations.kubeconfig(spec);
    let mut csr = path.clone().into_os_string();
    csr.push(".csr");
    vec![path, PathBuf::from(csr)]
}

/// Every file the command writes.
pub fn all_files(data: &CsrData) -> Vec<PathBuf> {
    leaves(data)
        .into_iter()
        .flat_map(|spec| leaf_files(data, spec))
        .chain(
            KUBECONFIGS
                .iter()
                .flat_map(|spec| kubeconfig_files(data, spec)),
        )
        .collect()
}

fn check(ctx: &mut PhaseCtx<'_, CsrData>) -> Result<(), PhaseError> {
    let mut existing = Vec::new();
    for path in all_files(ctx.data) {
        if ctx.host.files.exists(&path)? {
            existing.push(path.display().to_string());
        }
    }
    if existing.is_empty() {
        return Ok(());
    }
    Err(PhaseError::Preflight {
        message: format!("refusing to overwrite existing files: {}", existing.join(", ")),
        hint: Some(
            "generate-csr makes new keys; move the existing files away first if you really mean to replace them".to_owned(),
        ),
    })
}

fn write(
    ctx: &mut PhaseCtx<'_, CsrData>,
    path: &std::path::Path,
    contents: &[u8],
) -> Result<(), PhaseError> {
    ctx.check_declared(path)?;
    if ctx.host.files.exists(path)? {
        return Err(PhaseError::failed(format!(
            "refusing to overwrite {}",
            path.display()
        )));
    }
    ctx.ensure_file_with_detail(path, contents, KEY_MODE, Some("generated".to_owned()))?;
    Ok(())
}

fn inputs(ctx: &PhaseCtx<'_, CsrData>) -> Result<PkiInputs, PhaseError> {
    pki_inputs(&ctx.data.config)
}

fn pki(error: bosun_pki::PkiError) -> PhaseError {
    PhaseError::failed(error.to_string())
}

fn leaf(ctx: &mut PhaseCtx<'_, CsrData>, spec: &'static CertSpec) -> Result<(), PhaseError> {
    let inputs = inputs(ctx)?;
    let (request, dropped) = inputs.cert_request(spec);
    for warning in dropped {
        ctx.warn(warning.to_string());
    }
    let key = PrivateKey::generate(inputs.key_algorithm).map_err(pki)?;
    let csr = issue::create_csr(&request, &key).map_err(pki)?;
    let files = leaf_files(ctx.data, spec);
    write(ctx, &files[0], key.to_pem().as_bytes())?;
    write(ctx, &files[1], csr.as_bytes())
}

fn kubeconfig(
    ctx: &mut PhaseCtx<'_, CsrData>,
    spec: &'static KubeconfigSpec,
) -> Result<(), PhaseError> {
    let inputs = inputs(ctx)?;
    let request = inputs.kubeconfig_request(spec);
    let key = PrivateKey::generate(inputs.key_algorithm).map_err(pki)?;
    let csr = issue::create_csr(&request, &key).map_err(pki)?;
    let kubeconfig = Kubeconfig::with_client_certificate(
        &inputs.cluster_name,
        &inputs.kubeconfig_server(spec),
        "",
        &request.common_name,
        "",
        &key.to_pem(),
    );
    let files = kubeconfig_files(ctx.data, spec);
    let text = bosun_config::yaml::to_string(&kubeconfig).map_err(|error| {
        PhaseError::failed(format!("cannot write {}: {error}", files[0].display()))
    })?;
    write(ctx, &files[0], text.as_bytes())?;
    write(ctx, &files[1], csr.as_bytes())
}

/// The `certs-generate-csr` workflow: `check`, then one phase per leaf certificate and per kubeconfig.
pub fn workflow(data: &CsrData) -> Workflow<CsrData> {
    let mut workflow = Workflow::new("certs-generate-csr").phase(
        Phase::new(
            "check",
            "Refuse to overwrite existing keys, CSRs and kubeconfigs",
        )
        .run(check),
    );
    for spec in leaves(data) {
        workflow = workflow.phase(
            Phase::new(
                spec.name,
                format!("Generate a key and CSR for the {}", spec.long_name),
            )
            .makes(move |data: &CsrData| {
                leaf_files(data, spec)
                    .into_iter()
                    .map(Artefact::File)
                    .collect()
            })
            .run(move |ctx| leaf(ctx, spec)),
        );
    }
    for spec in KUBECONFIGS.iter() {
        workflow = workflow.phase(
            Phase::new(
                spec.file,
                format!("Generate a key-only {} and its CSR", spec.long_name),
            )
            .makes(move |data: &CsrData| {
                kubeconfig_files(data, spec)
                    .into_iter()
                    .map(Artefact::File)
                    .collect()
            })
            .run(move |ctx| kubeconfig(ctx, spec)),
        );
    }
    workflow
}
