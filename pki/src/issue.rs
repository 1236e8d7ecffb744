//! Issuing: self-signed CAs, leaves signed by a CA, and CSRs for an external CA. The caller supplies the time, so
//! output is reproducible in tests; keys are generated elsewhere (see [`crate::key::generate_keys`]).

use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::cert::Certificate;
use crate::error::PkiError;
use crate::inputs::{AltNames, CertRequest, BACKDATE};
use crate::key::PrivateKey;
use crate::table::Usage;

/// A random serial in [1, 2^63 − 1), as kubeadm draws them.
fn random_serial() -> Result<SerialNumber, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random number generator failed".to_owned())?;
    let span = (i64::MAX as u64) - 1;
    Ok(SerialNumber::from(u64::from_be_bytes(bytes) % span + 1))
}

fn distinguished_name(common_name: &str, organization: &[String]) -> DistinguishedName {
    // Go's pkix.Name writes O before CN; keep the same order so subjects compare equal byte for byte.
    let mut name = DistinguishedName::new();
    for org in organization {
        name.push(DnType::OrganizationName, org.as_str());
    }
    name.push(DnType::CommonName, common_name);
    name
}

fn alt_names(name: &str, alt: &AltNames) -> Result<Vec<SanType>, PkiError> {
    let mut sans = Vec::new();
    for dns in &alt.dns_names {
        let value = dns.clone().try_into().map_err(|_| PkiError::InvalidInput {
            name: name.to_owned(),
            reason: format!("{dns:?} is not a valid DNS name"),
        })?;
        sans.push(SanType::DnsName(value));
    }
    sans.extend(
        alt.ip_addresses
            .iter()
            .map(|address| SanType::IpAddress(*address)),
    );
    Ok(sans)
}

fn offset(time: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(time)
}

fn signing_error(name: &str, error: impl std::fmt::Display) -> PkiError {
    PkiError::Signing {
        name: name.to_owned(),
        reason: error.to_string(),
    }
}

/// Builds the common parameters: subject, SANs, dates, serial.
fn base_params(
    request: &CertRequest,
    now: SystemTime,
    lifetime: std::time::Duration,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&request.common_name, &request.organization);
    params.subject_alt_names = alt_names(&request.name, &request.alt_names)?;
    params.not_before = offset(now - BACKDATE);
    params.not_after = offset(now + lifetime);
    params.serial_number =
        Some(random_serial().map_err(|error| signing_error(&request.name, error))?);
    Ok(params)
}

/// A self-signed CA for `request` (its SANs should be its common name, see [`crate::inputs::PkiInputs::alt_names`]).
pub fn issue_ca(
    request: &CertRequest,
    key: &PrivateKey,
    now: SystemTime,
    lifetime: std::time::Duration,
) -> Result<Certificate, PkiError> {
    let mut params = base_params(request, now, lifetime)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    let certificate = params
        .self_signed(key.key_pair())
        .map_err(|error| signing_error(&request.name, error))?;
    Certificate::from_der(&request.name, certificate.der())
}

/// A leaf for `request`, for `key`, signed by `ca` with `ca_key`.
pub fn issue_leaf(
    request: &CertRequest,
    key: &PrivateKey,
    ca: &Certificate,
    ca_key: &PrivateKey,
    now: SystemTime,
    lifetime: std::time::Duration,
) -> Result<Certificate, PkiError> {
    if request.usages.is_empty() {
        return Err(PkiError::InvalidInput {
            name: request.name.clone(),
            reason: "a leaf certificate needs at least one extended key usage".to_owned(),
        });
    }
    let mut params = base_params(request, now, lifetime)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = request
        .usages
        .iter()
        .map(|usage| match usage {
            Usage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        })
        .collect();
    params.use_authority_key_identifier_extension = true;
    let issuer =
        Issuer::from_ca_cert_der(&ca.der().into(), ca_key.key_pair()).map_err(|error| {
            signing_error(
                &request.name,
                format!("cannot use the CA {} ({error})", ca.origin),
            )
        })?;
    let certificate = params
        .signed_by(key.key_pair(), &issuer)
        .map_err(|error| signing_error(&request.name, error))?;
    Certificate::from_der(&request.name, certificate.der())
}

/// A PEM certificate signing request for `request`, signed with `key` (subject and SANs only, as kubeadm's NewCSR).
pub fn create_csr(request: &CertRequest, key: &PrivateKey) -> Result<String, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&request.common_name, &request.organization);
    params.subject_alt_names = alt_names(&request.name, &request.alt_names)?;
    let csr = params
        .serialize_request(key.key_pair())
        .map_err(|error| signing_error(&request.name, error))?;
    csr.pem()
        .map_err(|error| signing_error(&request.name, error))
}

/// Checks a PEM CSR's signature and returns its subject common name.
pub fn verify_csr(origin: &str, pem: &[u8]) -> Result<String, PkiError> {
    use x509_parser::prelude::FromDer;
    let blocks = crate::der::pem_decode_all(pem).map_err(|reason| PkiError::InvalidPem {
        origin: origin.to_owned(),
        reason,
    })?;
    let block = blocks
        .iter()
        .find(|block| block.label == "CERTIFICATE REQUEST")
        .ok_or_else(|| PkiError::InvalidPem {
            origin: origin.to_owned(),
            reason: "no CERTIFICATE REQUEST block found".to_owned(),
        })?;
    let invalid = |reason: String| PkiError::InvalidCsr {
        origin: origin.to_owned(),
        reason,
    };
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.der)
            .map_err(|error| invalid(error.to_string()))?;
    csr.verify_signature()
        .map_err(|_| invalid("its signature does not verify".to_owned()))?;
    let common_name = csr
        .certification_request_info
        .subject
        .iter_common_name()
        .next()
        .and_then(|name| name.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(common_name)
}
