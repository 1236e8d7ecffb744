//! bosun-pki: the Kubernetes control-plane PKI as kubeadm makes it.
//!
//! This crate is pure: bytes in, bytes out. It never touches the filesystem, the clock or the environment; the
//! caller passes the time and names each input (`origin`, usually its node path) so that errors say which file is
//! at fault.
//!
//! Map of the crate:
//! - [`table`]: the certificate table (name, file base, signer, subject, usages, SAN rule; CA or leaf decides the
//!   validity) and the kubeconfig table (file, client name, organisation, endpoint), declared once.
//! - [`inputs`]: [`PkiInputs`], the configuration values the PKI depends on, and kubeadm's subject and SAN rules
//!   (sorted DNS names, IPs in first-seen order, extra SANs classified or dropped with a warning), endpoint URLs.
//! - [`key`]: key algorithms, generation (one, or many in parallel), PEM as kubeadm writes it (PKCS#1, SEC1, PKIX),
//!   loading existing keys.
//! - [`issue`]: self-signed CAs, CA-signed leaves, CSRs.
//! - [`cert`]: parsing existing certificates (and chains) and the reuse checks; CA pins.
//! - [`kubeconfig`]: kubeconfig files as serde types.
//! - [`expiry`]: residual-time and date formatting of `certs check-expiration`.
//! - [`bundle`]: the whole PKI in one call, keys generated in parallel.
//! - [`error`]: [`PkiError`], the one error type.
//!
//! Files on a node this crate reads or writes: none (the phases in bosun-phases write what it returns).

pub mod bundle;
pub mod cert;
mod der;
pub mod error;
pub mod expiry;
pub mod inputs;
pub mod issue;
pub mod key;
pub mod kubeconfig;
mod rsa;
pub mod table;

pub use cert::{ca_pin, Certificate};
pub use error::PkiError;
pub use inputs::{AltNames, CertRequest, DroppedSan, PkiInputs, Validity};
pub use key::{generate_keys, KeyAlgorithm, PrivateKey};
pub use kubeconfig::Kubeconfig;
pub use table::{CertSpec, KubeconfigSpec, Usage, CERTIFICATES, KUBECONFIGS};

#[cfg(test)]
mod tests;
