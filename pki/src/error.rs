//! Typed errors of the PKI crate. Every variant names the certificate, key or file at fault (`origin` is whatever
//! the caller called the bytes: a node path such as `/etc/kubernetes/pki/ca.crt`, or a table name).

/// What went wrong with a certificate, key or input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    #[error("{origin} is not valid PEM: {reason}")]
    InvalidPem { origin: String, reason: String },
    #[error("{origin} does not hold a valid X.509 certificate: {reason}")]
    InvalidCertificate { origin: String, reason: String },
    #[error("{origin} does not hold a usable private key: {reason}")]
    InvalidKey { origin: String, reason: String },
    #[error("{origin} does not hold a valid public key: {reason}")]
    InvalidPublicKey { origin: String, reason: String },
    #[error("{origin} does not hold a valid certificate signing request: {reason}")]
    InvalidCsr { origin: String, reason: String },
    #[error("{origin} is not a CA certificate (its basic constraints do not say CA:TRUE)")]
    NotCa { origin: String },
    #[error("the private key {key_origin} does not match the certificate {cert_origin}")]
    KeyMismatch {
        cert_origin: String,
        key_origin: String,
    },
    #[error("{origin} is not signed by the CA in {ca_origin}")]
    NotSignedBy { origin: String, ca_origin: String },
    #[error("{origin} does not cover the required subject alternative names {}", missing.join(", "))]
    MissingSans {
        origin: String,
        missing: Vec<String>,
    },
    #[error("{origin} lacks the extended key usage {usage}")]
    MissingUsage { origin: String, usage: String },
    #[error("{origin} expired on {not_after}")]
    Expired { origin: String, not_after: String },
    #[error("{origin} is not valid before {not_before}")]
    NotYetValid { origin: String, not_before: String },
    #[error("unknown encryption algorithm {value:?}; valid values are RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384")]
    UnknownAlgorithm { value: String },
    #[error("cannot generate a {algorithm} key: {reason}")]
    KeyGeneration { algorithm: String, reason: String },
    #[error("cannot sign the certificate {name}: {reason}")]
    Signing { name: String, reason: String },
    #[error("invalid input for {name}: {reason}")]
    InvalidInput { name: String, reason: String },
    #[error("{origin} holds no kubeconfig user {user:?} with a client certificate")]
    KubeconfigUser { origin: String, user: String },
}
