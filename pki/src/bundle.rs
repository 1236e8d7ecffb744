//! The whole PKI of a first control-plane node made in memory at once: every key generated in parallel, then every
//! certificate and kubeconfig client certificate signed. The init phases make the same files one by one (so each
//! phase can run alone); this is the single-shot form used by the benchmark and by callers that want every file.

use std::time::SystemTime;

use crate::cert::Certificate;
use crate::error::PkiError;
use crate::inputs::{DroppedSan, PkiInputs};
use crate::issue::{issue_ca, issue_leaf};
use crate::key::{generate_keys, PrivateKey};
use crate::kubeconfig::Kubeconfig;
use crate::table::{KUBECONFIGS, KUBECONFIG_CA, SERVICE_ACCOUNT};

/// What a file is, so the caller can give it the right mode (keys 0600, certificates 0644, kubeconfigs 0600).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Certificate,
    PrivateKey,
    PublicKey,
    /// A kubeconfig value; the caller serialises it.
    Kubeconfig,
}

impl FileKind {
    /// The permission bits kubeadm gives the file.
    pub fn mode(self) -> u32 {
        match self {
            FileKind::Certificate | FileKind::PublicKey => 0o644,
            FileKind::PrivateKey | FileKind::Kubeconfig => 0o600,
        }
    }
}

/// One generated PKI file, relative to the certificate directory (or, for kubeconfigs, the file name in
/// /etc/kubernetes).
#[derive(Debug, Clone)]
pub struct PkiFile {
    pub relative_path: String,
    pub kind: FileKind,
    pub pem: String,
}

/// Everything [`generate_all`] made.
#[derive(Debug, Clone)]
pub struct GeneratedPki {
    pub files: Vec<PkiFile>,
    pub kubeconfigs: Vec<(String, Kubeconfig)>,
    pub dropped_sans: Vec<DroppedSan>,
}

/// How many keys a full PKI needs: every certificate, the service-account key and every kubeconfig.
pub fn key_count(inputs: &PkiInputs) -> usize {
    inputs.certificates().count() + 1 + KUBECONFIGS.len()
}

/// Makes every certificate, the service-account key pair and every kubeconfig for `inputs`, as of `now`.
pub fn generate_all(inputs: &PkiInputs, now: SystemTime) -> Result<GeneratedPki, PkiError> {
    let mut keys = generate_keys(inputs.key_algorithm, key_count(inputs))?;
    let mut take_key = move || {
        keys.pop().ok_or_else(|| PkiError::KeyGeneration {
            algorithm: inputs.key_algorithm.to_string(),
            reason: "fewer keys were generated than the PKI needs".to_owned(),
        })
    };
    let mut files = Vec::new();
    let mut dropped_sans = Vec::new();
    let mut authorities: Vec<(&str, Certificate, PrivateKey)> = Vec::new();
    for spec in inputs.certificates() {
        let key = take_key()?;
        let (request, dropped) = inputs.cert_request(spec);
        dropped_sans.extend(dropped);
        let certificate = match spec.ca() {
            None => issue_ca(&request, &key, now, inputs.validity.ca)?,
            Some(ca_spec) => {
                let (_, ca, ca_key) = authorities
                    .iter()
                    .find(|(name, _, _)| *name == ca_spec.name)
                    .ok_or_else(|| PkiError::InvalidInput {
                        name: spec.name.to_owned(),
                        reason: format!("its CA {} was not made first", ca_spec.name),
                    })?;
                issue_leaf(&request, &key, ca, ca_key, now, inputs.validity.leaf)?
            }
        };
        files.push(PkiFile {
            relative_path: spec.cert_file(),
            kind: FileKind::Certificate,
            pem: certificate.to_pem(),
        });
        files.push(PkiFile {
            relative_path: spec.key_file(),
            kind: FileKind::PrivateKey,
            pem: key.to_pem(),
        });
        if spec.is_ca() {
            authorities.push((spec.name, certificate, key));
        }
    }
    let service_account = take_key()?;
    files.push(PkiFile {
        relative_path: SERVICE_ACCOUNT.private_key_file.to_owned(),
        kind: FileKind::PrivateKey,
        pem: service_account.to_pem(),
    });
    files.push(PkiFile {
        relative_path: SERVICE_ACCOUNT.public_key_file.to_owned(),
        kind: FileKind::PublicKey,
        pem: service_account.public_key_pem(),
    });
    let (_, ca, ca_key) = authorities
        .iter()
        .find(|(name, _, _)| *name == KUBECONFIG_CA)
        .ok_or_else(|| PkiError::InvalidInput {
            name: "kubeconfig".to_owned(),
            reason: "the Kubernetes CA was not made".to_owned(),
        })?;
    let ca_pem = ca.to_pem();
    let mut kubeconfigs = Vec::new();
    for spec in &KUBECONFIGS {
        let key = take_key()?;
        let request = inputs.kubeconfig_request(spec);
        let certificate = issue_leaf(&request, &key, ca, ca_key, now, inputs.validity.leaf)?;
        kubeconfigs.push((
            spec.file.to_owned(),
            Kubeconfig::with_client_certificate(
                &inputs.cluster_name,
                &inputs.kubeconfig_server(spec),
                &ca_pem,
                &request.common_name,
                &certificate.to_pem(),
                &key.to_pem(),
            ),
        ));
    }
    Ok(GeneratedPki {
        files,
        kubeconfigs,
        dropped_sans,
    })
}
