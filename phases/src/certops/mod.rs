//! `bosun certs` and `bosun kubeconfig user`: keeping the control-plane PKI alive after `init` made it.
//!
//! Map of the module:
//! - [`expiration`]: `certs check-expiration` — kubeadm's two tables (leaf certificates and the client certificates
//!   embedded in kubeconfigs, then the CAs) and its `CertificateExpirationInfo` output document. Read-only.
//! - [`renew`]: `certs renew` — a workflow with one phase per renewable certificate, then one phase per control-plane
//!   static pod to restart through its manifest, waiting for its health endpoint.
//! - [`csr`]: `certs generate-csr` — keys and CSRs for an external CA, and key-only kubeconfigs.
//! - [`timer`]: `certs timer install|remove|status` — a systemd timer or a cron entry that runs
//!   `bosun certs renew all --if-expiring-within 30d` daily, and the `init` phase `certs-timer`.
//! - [`user`]: `kubeconfig user` — a kubeconfig for a new user, signed by the cluster CA.
//! - [`certificate_key`]: `certs certificate-key` — 32 random bytes, hex.
//!
//! Files on a node: reads `<certificatesDir>/**/*.{crt,key}` and `/etc/kubernetes/*.conf`; `renew` rewrites the
//! renewed certificates, keys and kubeconfigs and adds a restart annotation to
//! `/etc/kubernetes/manifests/<component>.yaml`; `generate-csr` writes `<certificatesDir>/**/*.{key,csr}` and
//! `/etc/kubernetes/*.conf{,.csr}`; `timer` writes `/etc/systemd/system/bosun-certs-renew.{service,timer}` or
//! `/etc/cron.d/bosun-certs-renew`.

pub mod csr;
pub mod expiration;
pub mod renew;
pub mod timer;
pub mod user;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use bosun_config::Config;
use bosun_pki::table::{cert_spec, CertSpec, KubeconfigSpec, KUBECONFIG_CA};
use bosun_pki::{Certificate, Kubeconfig, PkiError, PrivateKey};

use crate::host::{Files, HostError};
use crate::paths::KUBERNETES_DIR;

/// Why a certificate operation could not be done. Every message names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum CertopsError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
}

impl CertopsError {
    pub fn failed(message: impl Into<String>) -> Self {
        CertopsError::Failed {
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            CertopsError::Failed { message, .. } => CertopsError::Failed {
                message,
                hint: Some(hint.into()),
            },
            other => other,
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            CertopsError::Failed { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}

impl From<CertopsError> for crate::engine::PhaseError {
    fn from(error: CertopsError) -> Self {
        match error {
            CertopsError::Host(host) => crate::engine::PhaseError::Host(host),
            CertopsError::Pki(pki) => crate::engine::PhaseError::failed(pki.to_string()),
            CertopsError::Failed { message, hint } => {
                crate::engine::PhaseError::Failed { message, hint }
            }
        }
    }
}

/// Where the PKI and the kubeconfig files are on the node (`--cert-dir`, `--kubeconfig-dir`, else the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    /// `certificatesDir` (default `/etc/kubernetes/pki`).
    pub cert_dir: PathBuf,
    /// The directory of admin.conf and friends (`/etc/kubernetes`).
    pub kubeconfig_dir: PathBuf,
}

impl Locations {
    /// The configured locations, overridden by the command-line values when given.
    pub fn new(config: &Config, cert_dir: Option<&Path>, kubeconfig_dir: Option<&Path>) -> Self {
        let configured = if config.cluster.certificates_dir.is_empty() {
            PathBuf::from("/etc/kubernetes/pki")
        } else {
            PathBuf::from(&config.cluster.certificates_dir)
        };
        Locations {
            cert_dir: cert_dir.map_or(configured, Path::to_path_buf),
            kubeconfig_dir: kubeconfig_dir
                .map_or_else(|| PathBuf::from(KUBERNETES_DIR), Path::to_path_buf),
        }
    }

    pub fn cert(&self, spec: &CertSpec) -> PathBuf {
        self.cert_dir.join(spec.cert_file())
    }

    pub fn key(&self, spec: &CertSpec) -> PathBuf {
        self.cert_dir.join(spec.key_file())
    }

    pub fn kubeconfig(&self, spec: &KubeconfigSpec) -> PathBuf {
        self.kubeconfig_dir.join(spec.file)
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Reads and parses the first certificate of a PEM file; `Ok(None)` when it does not exist.
pub(crate) fn read_certificate(
    files: &dyn Files,
    path: &Path,
) -> Result<Option<Certificate>, CertopsError> {
    match files.read(path)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(Certificate::from_pem(&display(path), &bytes)?)),
    }
}

/// Reads and parses a kubeconfig file; `Ok(None)` when it does not exist.
pub(crate) fn read_kubeconfig(
    files: &dyn Files,
    path: &Path,
) -> Result<Option<Kubeconfig>, CertopsError> {
    let Some(bytes) = files.read(path)? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| CertopsError::failed(format!("{} is not a text file", display(path))))?;
    crate::certs::parse_kubeconfig(&text)
        .map(Some)
        .map_err(|error| {
            CertopsError::failed(format!(
                "{} is not a valid kubeconfig: {error}",
                display(path)
            ))
        })
}

/// The client certificate a kubeconfig uses: embedded (`client-certificate-data`) or in the file it names.
pub(crate) fn kubeconfig_client_certificate(
    files: &dyn Files,
    path: &Path,
    kubeconfig: &Kubeconfig,
) -> Result<Certificate, CertopsError> {
    let origin = display(path);
    if let Some((_, user)) = kubeconfig.current_user() {
        if user.client_certificate_data.is_none() {
            if let Some(file) = user.client_certificate.as_deref() {
                let referenced = if Path::new(file).is_absolute() {
                    PathBuf::from(file)
                } else {
                    path.parent().unwrap_or(Path::new("/")).join(file)
                };
                return read_certificate(files, &referenced)?.ok_or_else(|| {
                    CertopsError::failed(format!(
                        "{origin} names the client certificate {}, which does not exist",
                        display(&referenced)
                    ))
                });
            }
        }
    }
    Ok(kubeconfig.client_certificate(&origin)?)
}

/// A CA as found on the node: its certificate and, unless it is external, its key.
pub(crate) struct CaOnNode {
    pub spec: &'static CertSpec,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub certificate: Option<Certificate>,
    /// Whether the key file exists (without reading it: check-expiration does not need it).
    pub key_present: bool,
}

impl CaOnNode {
    pub fn load(
        files: &dyn Files,
        locations: &Locations,
        spec: &'static CertSpec,
    ) -> Result<Self, CertopsError> {
        let cert_path = locations.cert(spec);
        let key_path = locations.key(spec);
        Ok(CaOnNode {
            spec,
            certificate: read_certificate(files, &cert_path)?,
            key_present: files.exists(&key_path)?,
            cert_path,
            key_path,
        })
    }

    /// kubeadm's external-CA mode: the certificate is there, its key is not.
    pub fn is_external(&self) -> bool {
        self.certificate.is_some() && !self.key_present
    }

    /// The CA certificate and key, ready to sign; a clear error when the CA is missing or external.
    pub fn signer(
        &self,
        files: &dyn Files,
        for_what: &str,
    ) -> Result<(Certificate, PrivateKey), CertopsError> {
        let Some(certificate) = self.certificate.clone() else {
            return Err(CertopsError::failed(format!(
                "cannot sign {for_what}: the {} certificate {} does not exist",
                self.spec.name,
                display(&self.cert_path)
            ))
            .with_hint("make the PKI first with `bosun init phase certs all`"));
        };
        let Some(key_bytes) = files.read(&self.key_path)? else {
            return Err(external_ca_error(self, for_what));
        };
        let key_origin = display(&self.key_path);
        let key = PrivateKey::from_pem(&key_origin, &key_bytes)?;
        certificate.check_key(&key, &key_origin)?;
        certificate.check_is_ca()?;
        Ok((certificate, key))
    }
}

pub(crate) fn external_ca_error(ca: &CaOnNode, for_what: &str) -> CertopsError {
    CertopsError::failed(format!(
        "{for_what} cannot be renewed or signed by bosun: the {} is external ({} exists without {})",
        ca.spec.name,
        display(&ca.cert_path),
        display(&ca.key_path)
    ))
    .with_hint(format!(
        "have the owner of the external {} sign a new certificate (see `bosun certs generate-csr`)",
        ca.spec.name
    ))
}

/// The CA that signs kubeconfig client certificates.
pub(crate) fn kubeconfig_ca() -> Result<&'static CertSpec, CertopsError> {
    cert_spec(KUBECONFIG_CA)
        .ok_or_else(|| CertopsError::failed("the certificate table has no `ca` row"))
}

/// `bosun certs certificate-key`: 32 random bytes from the system's secure generator, hex-encoded (the key that
/// encrypts the certificates `init --upload-certs` uploads).
pub fn certificate_key() -> Result<String, CertopsError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CertopsError::failed("the system random number generator failed"))?;
    Ok(hex::encode(bytes))
}

/// Parses a duration as the certs commands take it: Go's syntax (`720h`, `1h30m`, `90s`) plus days (`30d`), e.g.
/// `--fail-within 30d`, `--if-expiring-within 2d12h`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let trimmed = text.trim();
    let invalid = || format!("{text:?} is not a duration such as 30d, 720h or 1h30m");
    if trimmed.is_empty() {
        return Err(invalid());
    }
    if trimmed == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(invalid()),
        };
        total = number
            .checked_mul(seconds)
            .and_then(|value| total.checked_add(value))
            .ok_or_else(invalid)?;
        rest = &rest[unit_end..];
    }
    Ok(std::time::Duration::from_secs(total))
}
