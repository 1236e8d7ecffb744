//! Existing certificates: parsing (single certificates and chains, leaf first) and the checks kubeadm makes before
//! it reuses one: is a CA, matches its key, chains to its CA, covers the required SANs and usages, is in date.

use std::net::IpAddr;

use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::der;
use crate::error::PkiError;
use crate::expiry::format_expiry;
use crate::inputs::AltNames;
use crate::key::PrivateKey;
use crate::table::Usage;

/// A parsed certificate with the fields bosun looks at. `origin` names it in every error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub origin: String,
    der: Vec<u8>,
    pub common_name: String,
    pub organization: Vec<String>,
    pub issuer_common_name: String,
    /// Serial number, hex.
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    pub alt_names: AltNames,
    pub usages: Vec<Usage>,
    public_key: Vec<u8>,
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
}

fn invalid(origin: &str, reason: impl Into<String>) -> PkiError {
    PkiError::InvalidCertificate {
        origin: origin.to_owned(),
        reason: reason.into(),
    }
}

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(origin: &str, der_bytes: &[u8]) -> Result<Self, PkiError> {
        let (rest, parsed) = X509Certificate::from_der(der_bytes)
            .map_err(|error| invalid(origin, format!("it cannot be parsed ({error})")))?;
        if !rest.is_empty() {
            return Err(invalid(
                origin,
                "it has trailing bytes after the certificate",
            ));
        }
        let text_of = |attribute: &x509_parser::x509::AttributeTypeAndValue<'_>| {
            attribute.as_str().map(str::to_owned).unwrap_or_default()
        };
        let common_name = parsed
            .subject()
            .iter_common_name()
            .next()
            .map(text_of)
            .unwrap_or_default();
        let organization = parsed.subject().iter_organization().map(text_of).collect();
        let issuer_common_name = parsed
            .issuer()
            .iter_common_name()
            .next()
            .map(text_of)
            .unwrap_or_default();
        let mut alt_names = AltNames::default();
        if let Some(extension) = parsed
            .subject_alternative_name()
            .map_err(|error| invalid(origin, format!("its SAN extension is invalid ({error})")))?
        {
            for name in &extension.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => alt_names.dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        let address = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                            _ => None,
                        };
                        if let Some(address) = address {
                            alt_names.ip_addresses.push(address);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut usages = Vec::new();
        if let Some(extension) = parsed.extended_key_usage().map_err(|error| {
            invalid(
                origin,
                format!("its extended key usage is invalid ({error})"),
            )
        })? {
            if extension.value.server_auth {
                usages.push(Usage::ServerAuth);
            }
            if extension.value.client_auth {
                usages.push(Usage::ClientAuth);
            }
        }
        let is_ca = parsed
            .basic_constraints()
            .map_err(|error| {
                invalid(
                    origin,
                    format!("its basic constraints are invalid ({error})"),
                )
            })?
            .is_some_and(|extension| extension.value.ca);
        let timestamp = |time: x509_parser::time::ASN1Time| {
            OffsetDateTime::from_unix_timestamp(time.timestamp())
                .map_err(|_| invalid(origin, "its validity dates are out of range"))
        };
        Ok(Certificate {
            origin: origin.to_owned(),
            der: der_bytes.to_vec(),
            common_name,
            organization,
            issuer_common_name,
            serial: hex::encode(parsed.raw_serial()),
            not_before: timestamp(parsed.validity().not_before)?,
            not_after: timestamp(parsed.validity().not_after)?,
            is_ca,
            alt_names,
            usages,
            public_key: parsed.public_key().raw.to_vec(),
            subject_raw: parsed.subject().as_raw().to_vec(),
            issuer_raw: parsed.issuer().as_raw().to_vec(),
        })
    }

    /// Parses every `CERTIFICATE` block of a PEM file, leaf first. Other blocks are ignored.
    pub fn chain_from_pem(origin: &str, pem: &[u8]) -> Result<Vec<Self>, PkiError> {
        let blocks = der::pem_decode_all(pem).map_err(|reason| PkiError::InvalidPem {
            origin: origin.to_owned(),
            reason,
        })?;
        let certificates: Vec<Self> = blocks
            .iter()
            .filter(|block| block.label == "CERTIFICATE")
            .map(|block| Certificate::from_der(origin, &block.der))
            .collect::<Result<_, _>>()?;
        if certificates.is_empty() {
            return Err(PkiError::InvalidPem {
                origin: origin.to_owned(),
                reason: "no CERTIFICATE block found".to_owned(),
            });
        }
        Ok(certificates)
    }

    /// Parses the first certificate of a PEM file.
    pub fn from_pem(origin: &str, pem: &[u8]) -> Result<Self, PkiError> {
        let mut chain = Certificate::chain_from_pem(origin, pem)?;
        Ok(chain.remove(0))
    }

    /// The subject Name exactly as encoded (what a certificate it signs must carry as its issuer).
    pub(crate) fn subject_der(&self) -> &[u8] {
        &self.subject_raw
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn to_pem(&self) -> String {
        der::pem_encode("CERTIFICATE", &self.der)
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key
    }

    /// Fails unless the certificate is a CA.
    pub fn check_is_ca(&self) -> Result<(), PkiError> {
        if self.is_ca {
            Ok(())
        } else {
            Err(PkiError::NotCa {
                origin: self.origin.clone(),
            })
        }
    }

    /// Fails unless `key` is the private half of this certificate's public key.
    pub fn check_key(&self, key: &PrivateKey, key_origin: &str) -> Result<(), PkiError> {
        if key.public_key_der() == self.public_key {
            Ok(())
        } else {
            Err(PkiError::KeyMismatch {
                cert_origin: self.origin.clone(),
                key_origin: key_origin.to_owned(),
            })
        }
    }

    /// Fails unless `issuer` signed this certificate (issuer name and signature both checked).
    pub fn check_signed_by(&self, issuer: &Certificate) -> Result<(), PkiError> {
        let not_signed = || PkiError::NotSignedBy {
            origin: self.origin.clone(),
            ca_origin: issuer.origin.clone(),
        };
        if self.issuer_raw != issuer.subject_raw {
            return Err(not_signed());
        }
        let (_, parsed) = X509Certificate::from_der(&self.der)
            .map_err(|error| invalid(&self.origin, error.to_string()))?;
        let (_, issuer_parsed) = X509Certificate::from_der(&issuer.der)
            .map_err(|error| invalid(&issuer.origin, error.to_string()))?;
        parsed
            .verify_signature(Some(issuer_parsed.public_key()))
            .map_err(|_| not_signed())
    }

    /// Fails unless this certificate chains to `ca` through `intermediates` (the rest of its file, in order).
    pub fn check_chain(
        &self,
        intermediates: &[Certificate],
        ca: &Certificate,
    ) -> Result<(), PkiError> {
        let mut current = self;
        for intermediate in intermediates {
            if current.check_signed_by(ca).is_ok() {
                return Ok(());
            }
            current.check_signed_by(intermediate)?;
            current = intermediate;
        }
        current
            .check_signed_by(ca)
            .map_err(|_| PkiError::NotSignedBy {
                origin: self.origin.clone(),
                ca_origin: ca.origin.clone(),
            })
    }

    /// Fails when `now` is outside the validity period.
    pub fn check_validity(&self, now: OffsetDateTime) -> Result<(), PkiError> {
        if now > self.not_after {
            return Err(PkiError::Expired {
                origin: self.origin.clone(),
                not_after: format_expiry(self.not_after),
            });
        }
        if now < self.not_before {
            return Err(PkiError::NotYetValid {
                origin: self.origin.clone(),
                not_before: format_expiry(self.not_before),
            });
        }
        Ok(())
    }

    /// The required SANs this certificate does not carry, as OpenSSL prints them.
    pub fn missing_sans(&self, required: &AltNames) -> Vec<String> {
        let dns = required
            .dns_names
            .iter()
            .filter(|name| !self.alt_names.dns_names.contains(name))
            .map(|name| format!("DNS:{name}"));
        let ips = required
            .ip_addresses
            .iter()
            .filter(|address| !self.alt_names.ip_addresses.contains(address))
            .map(|address| format!("IP Address:{address}"));
        dns.chain(ips).collect()
    }

    /// Fails unless every required SAN is present.
    pub fn check_sans(&self, required: &AltNames) -> Result<(), PkiError> {
        let missing = self.missing_sans(required);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PkiError::MissingSans {
                origin: self.origin.clone(),
                missing,
            })
        }
    }

    /// Fails unless every required extended key usage is present.
    pub fn check_usages(&self, required: &[Usage]) -> Result<(), PkiError> {
        match required.iter().find(|usage| !self.usages.contains(usage)) {
            Some(usage) => Err(PkiError::MissingUsage {
                origin: self.origin.clone(),
                usage: usage.to_string(),
            }),
            None => Ok(()),
        }
    }
}

/// `sha256:<hex>` of the SubjectPublicKeyInfo: the CA pin `join --discovery-token-ca-cert-hash` expects.
pub fn ca_pin(certificate: &Certificate) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate.public_key_der());
    format!("sha256:{}", hex::encode(digest.as_ref()))
}

/// Parses a PKIX `PUBLIC KEY` PEM (sa.pub) and returns its SubjectPublicKeyInfo DER.
pub fn public_key_from_pem(origin: &str, pem: &[u8]) -> Result<Vec<u8>, PkiError> {
    let blocks = der::pem_decode_all(pem).map_err(|reason| PkiError::InvalidPem {
        origin: origin.to_owned(),
        reason,
    })?;
    let block = blocks
        .into_iter()
        .find(|block| block.label == "PUBLIC KEY")
        .ok_or_else(|| PkiError::InvalidPem {
            origin: origin.to_owned(),
            reason: "no PUBLIC KEY block found".to_owned(),
        })?;
    x509_parser::x509::SubjectPublicKeyInfo::from_der(&block.der).map_err(|error| {
        PkiError::InvalidPublicKey {
            origin: origin.to_owned(),
            reason: error.to_string(),
        }
    })?;
    Ok(block.der)
}
