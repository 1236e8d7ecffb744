//! Bootstrap tokens and the trust they carry, as pure functions (no cluster, no host):
//!
//! - [`format`]: the token string `[a-z0-9]{6}.[a-z0-9]{16}`, parsing and secure generation.
//! - [`secret`]: the `kube-system/bootstrap-token-<id>` Secret written for a token, and read back for listing.
//! - [`jws`]: the detached HS256 JWS with which kube-controller-manager signs `kube-public/cluster-info`, and its
//!   verification (ring HMAC-SHA256, constant-time).
//! - [`pin`]: CA pins (`sha256:` of the SubjectPublicKeyInfo) and checking a CA bundle against them.
//! - [`join`]: the `bosun join …` command text.
//! - [`list`]: `bosun token list`'s table, in kubeadm's columns.
//! - [`ops`]: create, list and delete tokens through [`crate::host::cluster::ClusterApi`].
//!
//! Files on a node: none.

pub mod format;
pub mod join;
pub mod jws;
pub mod list;
pub mod ops;
pub mod pin;
pub mod secret;

pub use format::{is_token_id, secret_name, Token};
pub use join::JoinCommand;
pub use pin::Pin;
pub use secret::TokenSpec;

/// What is wrong with a token, a token Secret, a signature or a pin.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token {given:?} is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")]
    Malformed { given: String },
    #[error("the operating system's random source failed")]
    Random,
    #[error("token field {field}: {reason}")]
    Field { field: String, reason: String },
    #[error("the bootstrap token Secret {name:?} is unusable: {reason}")]
    BadSecret { name: String, reason: String },
    #[error("the cluster-info signature for token {id:?} is invalid: {reason}")]
    BadSignature { id: String, reason: String },
    #[error("the CA pin {given:?} is not of the form sha256:<64 hex digits>")]
    BadPin { given: String },
    #[error("no CA certificate in {origin} matches the given pins; its pins are {}", actual.join(", "))]
    PinMismatch { origin: String, actual: Vec<String> },
    #[error(transparent)]
    Pki(#[from] bosun_pki::PkiError),
}
