//! Issuing: self-signed CAs, leaves signed by a CA, and CSRs for an external CA. The caller supplies the time, so
//! output is reproducible in tests; keys are generated elsewhere (see [`crate::key::generate_keys`]).

use std::time::SystemTime;

use rcgen::string::PrintableString;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, SanType, SerialNumber,
    SigningKey,
};
use time::OffsetDateTime;

use crate::cert::Certificate;
use crate::der;
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

/// Whether Go's encoding/asn1 writes `value` as a PrintableString (it falls back to UTF8String otherwise).
fn is_printable(value: &str) -> bool {
    value
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&byte))
}

fn dn_value(value: &str) -> DnValue {
    match PrintableString::try_from(value) {
        Ok(printable) if is_printable(value) => DnValue::PrintableString(printable),
        _ => DnValue::Utf8String(value.to_owned()),
    }
}

/// The subject for rcgen. rcgen holds one value per attribute type, so with several organisations this is not yet
/// the real subject: [`subject_der`] is, and [`with_names`] puts it in place.
fn distinguished_name(common_name: &str, organization: &[String]) -> DistinguishedName {
    // Go's pkix.Name writes O before CN; keep the same order so subjects compare equal byte for byte.
    let mut name = DistinguishedName::new();
    if let Some(first) = organization.first() {
        name.push(DnType::OrganizationName, dn_value(first));
    }
    name.push(DnType::CommonName, dn_value(common_name));
    name
}

fn attribute(oid: &[u8], value: &str) -> Vec<u8> {
    let tag = if is_printable(value) {
        der::TAG_PRINTABLE_STRING
    } else {
        der::TAG_UTF8_STRING
    };
    let mut body = der::write(der::TAG_OID, oid);
    body.extend(der::write(tag, value.as_bytes()));
    der::write(der::TAG_SEQUENCE, &body)
}

/// The subject Name as Go's crypto/x509 writes a pkix.Name with Organization and CommonName, which is what kubeadm
/// issues: first one relative name holding every organisation (a multi-valued RDN, `O = a + O = b`, its values in
/// DER order as a SET OF requires), then the common name.
pub(crate) fn subject_der(common_name: &str, organization: &[String]) -> Vec<u8> {
    let mut relative_names = Vec::new();
    if !organization.is_empty() {
        let mut values: Vec<Vec<u8>> = organization
            .iter()
            .map(|org| attribute(der::OID_ORGANIZATION, org))
            .collect();
        values.sort();
        relative_names.extend(der::write(der::TAG_SET, &values.concat()));
    }
    if !common_name.is_empty() {
        relative_names.extend(der::write(
            der::TAG_SET,
            &attribute(der::OID_COMMON_NAME, common_name),
        ));
    }
    der::write(der::TAG_SEQUENCE, &relative_names)
}

/// Which fields of a to-be-signed structure hold the names.
#[derive(Clone, Copy)]
enum Signed {
    /// A certificate: `issuer` and `subject` of its TBSCertificate.
    Certificate,
    /// A CSR: `subject` of its CertificationRequestInfo.
    Request,
}

/// Puts `subject` (and `issuer`, for certificates) into a DER certificate or CSR that rcgen made, and signs it again
/// with `signer` when that changed anything.
///
/// Why: rcgen's DistinguishedName keeps one value per attribute type, so it cannot write `O = a + O = b` (kubeadm's
/// `kubeconfig user --org a --org b`) and it rewrites a CA's subject from its parsed form, which loses a CA's repeated
/// or multi-valued attributes. The names are replaced as raw DER; everything else is rcgen's.
fn with_names(
    name: &str,
    signed: &[u8],
    kind: Signed,
    subject: &[u8],
    issuer: Option<&[u8]>,
    signer: &PrivateKey,
) -> Result<Vec<u8>, PkiError> {
    let malformed = || signing_error(name, "the signed structure it produced cannot be read back");
    let (outer, _) = der::read(signed).ok_or_else(malformed)?;
    let [body, algorithm, _signature] = der::children(outer.value)
        .ok_or_else(malformed)?
        .try_into()
        .map_err(|_| malformed())?;
    let fields = der::children(body.value).ok_or_else(malformed)?;
    // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, ...;
    // CertificationRequestInfo: version, subject, ...
    let (issuer_index, subject_index) = match kind {
        Signed::Certificate => {
            let version =
                usize::from(fields.first().map(|field| field.tag) == Some(der::TAG_CONTEXT_0));
            (Some(version + 2), version + 4)
        }
        Signed::Request => (None, 1),
    };
    if fields.len() <= subject_index {
        return Err(malformed());
    }
    let mut changed = fields[subject_index].raw != subject;
    if let (Some(index), Some(issuer)) = (issuer_index, issuer) {
        changed |= fields[index].raw != issuer;
    }
    if !changed {
        return Ok(signed.to_vec());
    }
    let mut rebuilt = Vec::with_capacity(body.raw.len() + subject.len());
    for (index, field) in fields.iter().enumerate() {
        match (index, issuer) {
            (index, _) if index == subject_index => rebuilt.extend_from_slice(subject),
            (index, Some(issuer)) if Some(index) == issuer_index => {
                rebuilt.extend_from_slice(issuer)
            }
            _ => rebuilt.extend_from_slice(field.raw),
        }
    }
    let body = der::write(der::TAG_SEQUENCE, &rebuilt);
    let signature = signer
        .key_pair()
        .sign(&body)
        .map_err(|error| signing_error(name, error))?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0);
    bits.extend(signature);
    let mut whole = body;
    whole.extend_from_slice(algorithm.raw);
    whole.extend(der::write(der::TAG_BIT_STRING, &bits));
    Ok(der::write(der::TAG_SEQUENCE, &whole))
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
    let subject = subject_der(&request.common_name, &request.organization);
    let signed = with_names(
        &request.name,
        certificate.der(),
        Signed::Certificate,
        &subject,
        Some(&subject),
        key,
    )?;
    Certificate::from_der(&request.name, &signed)
}

/// The rcgen issuer of `ca`: its key identifier (for the leaf's authority key identifier) and a stand-in name.
///
/// Not rcgen's `Issuer::from_ca_cert_der`: that refuses a CA whose subject has a multi-valued RDN and re-encodes the
/// rest; [`with_names`] puts the CA's subject into the leaf exactly as the CA encodes it. The stand-in is the CA's
/// name as bosun and kubeadm write it, so for their CAs nothing needs replacing.
fn issuer_of<'key>(
    ca: &Certificate,
    ca_key: &'key PrivateKey,
) -> Result<Issuer<'static, &'key rcgen::KeyPair>, String> {
    use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(ca.der())
        .map_err(|error| format!("it cannot be parsed: {error}"))?;
    let subject_key_id =
        parsed
            .extensions()
            .iter()
            .find_map(|extension| match extension.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&ca.common_name, &ca.organization);
    params.key_identifier_method = match subject_key_id {
        Some(id) => KeyIdMethod::PreSpecified(id),
        None => KeyIdMethod::Sha256,
    };
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    Ok(Issuer::new(params, ca_key.key_pair()))
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
    let issuer = issuer_of(ca, ca_key).map_err(|error| {
        signing_error(
            &request.name,
            format!("cannot use the CA {} ({error})", ca.origin),
        )
    })?;
    let certificate = params
        .signed_by(key.key_pair(), &issuer)
        .map_err(|error| signing_error(&request.name, error))?;
    let signed = with_names(
        &request.name,
        certificate.der(),
        Signed::Certificate,
        &subject_der(&request.common_name, &request.organization),
        Some(ca.subject_der()),
        ca_key,
    )?;
    Certificate::from_der(&request.name, &signed)
}

/// A PEM certificate signing request for `request`, signed with `key` (subject and SANs only, as kubeadm's NewCSR).
pub fn create_csr(request: &CertRequest, key: &PrivateKey) -> Result<String, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&request.common_name, &request.organization);
    params.subject_alt_names = alt_names(&request.name, &request.alt_names)?;
    let csr = params
        .serialize_request(key.key_pair())
        .map_err(|error| signing_error(&request.name, error))?;
    let signed = with_names(
        &request.name,
        csr.der(),
        Signed::Request,
        &subject_der(&request.common_name, &request.organization),
        None,
        key,
    )?;
    Ok(der::pem_encode("CERTIFICATE REQUEST", &signed))
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
