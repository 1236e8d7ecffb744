//! Private keys: generation (one key or many in parallel), the PEM forms kubeadm writes, and loading existing keys.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rcgen::{KeyPair, PublicKeyData};

use crate::der;
use crate::error::PkiError;

/// The key algorithm, from `clusterConfiguration.encryptionAlgorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyAlgorithm {
    #[default]
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcdsaP256,
    EcdsaP384,
}

impl KeyAlgorithm {
    /// Every value, in the order kubeadm documents them.
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
    ];

    /// The configuration spelling (`RSA-2048`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "RSA-2048",
            KeyAlgorithm::Rsa3072 => "RSA-3072",
            KeyAlgorithm::Rsa4096 => "RSA-4096",
            KeyAlgorithm::EcdsaP256 => "ECDSA-P256",
            KeyAlgorithm::EcdsaP384 => "ECDSA-P384",
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = PkiError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str() == value)
            .ok_or_else(|| PkiError::UnknownAlgorithm {
                value: value.to_owned(),
            })
    }
}

/// A private key that can sign. Its `Debug` output never shows key material.
pub struct PrivateKey {
    pair: KeyPair,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PrivateKey")
            .field("algorithm", &self.pair.algorithm())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generates a fresh key.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, PkiError> {
        let failed = |reason: String| PkiError::KeyGeneration {
            algorithm: algorithm.to_string(),
            reason,
        };
        let rsa = |bits: usize| {
            // bosun's own prime search (see the rsa module); aws-lc parses and checks the result.
            let pkcs8 = crate::rsa::generate_pkcs8(bits).map_err(|error| failed(error.0))?;
            KeyPair::try_from(pkcs8.0.as_slice()).map_err(|error| failed(error.to_string()))
        };
        let pair = match algorithm {
            KeyAlgorithm::Rsa2048 => rsa(2048)?,
            KeyAlgorithm::Rsa3072 => rsa(3072)?,
            KeyAlgorithm::Rsa4096 => rsa(4096)?,
            KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|error| failed(error.to_string()))?,
            KeyAlgorithm::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
                .map_err(|error| failed(error.to_string()))?,
        };
        Ok(PrivateKey { pair })
    }

    /// Loads a key from PEM: PKCS#1 (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`), RSA or
    /// ECDSA only, as kubeadm accepts. `origin` names the bytes in errors.
    pub fn from_pem(origin: &str, pem: &[u8]) -> Result<Self, PkiError> {
        let blocks = der::pem_decode_all(pem).map_err(|reason| PkiError::InvalidPem {
            origin: origin.to_owned(),
            reason,
        })?;
        let block = blocks
            .into_iter()
            .find(|block| block.label.ends_with("PRIVATE KEY"))
            .ok_or_else(|| PkiError::InvalidPem {
                origin: origin.to_owned(),
                reason: "no PRIVATE KEY block found".to_owned(),
            })?;
        let invalid = |reason: &str| PkiError::InvalidKey {
            origin: origin.to_owned(),
            reason: reason.to_owned(),
        };
        match block.label.as_str() {
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "PRIVATE KEY" => {}
            other => {
                return Err(invalid(&format!(
                    "a {other} block is neither an RSA nor an ECDSA key"
                )))
            }
        }
        let pair = KeyPair::try_from(block.der.as_slice())
            .map_err(|_| invalid("the key cannot be parsed as an RSA or ECDSA private key"))?;
        if pair.algorithm() == &rcgen::PKCS_ED25519 {
            return Err(invalid("Ed25519 keys are not supported; use RSA or ECDSA"));
        }
        Ok(PrivateKey { pair })
    }

    /// The key as kubeadm writes it: PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY` (with the curve named).
    pub fn to_pem(&self) -> String {
        let serialized = self.pair.serialized_der();
        match traditional_form(serialized, self.pair.der_bytes()) {
            Some((label, der)) => der::pem_encode(label, &der),
            // Already traditional (loaded from a PKCS#1 or SEC1 file): keep it as it came.
            None => der::pem_encode(self.traditional_label(), serialized),
        }
    }

    fn traditional_label(&self) -> &'static str {
        if self.is_rsa() {
            "RSA PRIVATE KEY"
        } else {
            "EC PRIVATE KEY"
        }
    }

    pub fn is_rsa(&self) -> bool {
        let algorithm = self.pair.algorithm();
        algorithm == &rcgen::PKCS_RSA_SHA256
            || algorithm == &rcgen::PKCS_RSA_SHA384
            || algorithm == &rcgen::PKCS_RSA_SHA512
    }

    /// The SubjectPublicKeyInfo DER of the public half.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// The public half as PKIX `PUBLIC KEY` PEM (kubeadm's `sa.pub`).
    pub fn public_key_pem(&self) -> String {
        der::pem_encode("PUBLIC KEY", &self.public_key_der())
    }

    pub(crate) fn key_pair(&self) -> &KeyPair {
        &self.pair
    }
}

/// Converts a PKCS#8 PrivateKeyInfo to PKCS#1 or SEC1; `None` when `serialized` is not PKCS#8.
fn traditional_form(serialized: &[u8], public_key: &[u8]) -> Option<(&'static str, Vec<u8>)> {
    let (outer, _) = der::read(serialized)?;
    if outer.tag != der::TAG_SEQUENCE {
        return None;
    }
    let fields = der::children(outer.value)?;
    let [version, algorithm, private_key, ..] = fields.as_slice() else {
        return None;
    };
    if version.tag != der::TAG_INTEGER
        || algorithm.tag != der::TAG_SEQUENCE
        || private_key.tag != der::TAG_OCTET_STRING
    {
        return None;
    }
    let algorithm_fields = der::children(algorithm.value)?;
    let oid = algorithm_fields.first()?;
    if oid.tag != der::TAG_OID {
        return None;
    }
    if oid.value == der::OID_RSA_ENCRYPTION {
        return Some(("RSA PRIVATE KEY", private_key.value.to_vec()));
    }
    if oid.value != der::OID_EC_PUBLIC_KEY {
        return None;
    }
    // SEC1 inside PKCS#8 usually omits the curve; Go's MarshalECPrivateKey names it, so rebuild the structure as
    // version, privateKey, [0] namedCurve, [1] publicKey.
    let curve = algorithm_fields.get(1)?;
    let (inner, _) = der::read(private_key.value)?;
    let inner_fields = der::children(inner.value)?;
    let [inner_version, secret, ..] = inner_fields.as_slice() else {
        return None;
    };
    let mut body = Vec::new();
    body.extend_from_slice(inner_version.raw);
    body.extend_from_slice(secret.raw);
    body.extend(der::write(der::TAG_CONTEXT_0, curve.raw));
    match inner_fields
        .iter()
        .find(|field| field.tag == der::TAG_CONTEXT_1)
    {
        Some(public) => body.extend_from_slice(public.raw),
        None => {
            let mut bits = vec![0u8];
            bits.extend_from_slice(public_key);
            body.extend(der::write(
                der::TAG_CONTEXT_1,
                &der::write(der::TAG_BIT_STRING, &bits),
            ));
        }
    }
    Some(("EC PRIVATE KEY", der::write(der::TAG_SEQUENCE, &body)))
}

/// Generates `count` keys of one algorithm on every available core.
///
/// Key generation dominates the cost of a PKI (an RSA-2048 key costs about as much CPU as signing a thousand
/// certificates), and keys are independent, so they are made in parallel before any certificate is signed.
pub fn generate_keys(algorithm: KeyAlgorithm, count: usize) -> Result<Vec<PrivateKey>, PkiError> {
    if count <= 1 {
        return (0..count)
            .map(|_| PrivateKey::generate(algorithm))
            .collect();
    }
    let workers = std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .min(count);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<PrivateKey, PkiError>>>> =
        Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    break;
                }
                let key = PrivateKey::generate(algorithm);
                let mut slots = results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                slots[index] = Some(key);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .map(|slot| {
            slot.unwrap_or_else(|| {
                Err(PkiError::KeyGeneration {
                    algorithm: algorithm.to_string(),
                    reason: "a worker thread stopped before making its key".to_owned(),
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_and_unknown_is_an_error() {
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(algorithm.as_str().parse::<KeyAlgorithm>(), Ok(algorithm));
        }
        let error = "RSA-1024".parse::<KeyAlgorithm>().expect_err("unknown");
        assert!(error.to_string().contains("\"RSA-1024\""), "{error}");
    }

    #[test]
    fn ecdsa_keys_are_written_as_sec1_with_the_curve_and_load_back() {
        for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
            let key = PrivateKey::generate(algorithm).expect("generate");
            let pem = key.to_pem();
            assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{pem}");
            let block = &der::pem_decode_all(pem.as_bytes()).expect("pem")[0];
            let (outer, _) = der::read(&block.der).expect("der");
            let fields = der::children(outer.value).expect("fields");
            assert_eq!(fields.len(), 4, "version, key, curve, public key");
            assert_eq!(fields[2].tag, der::TAG_CONTEXT_0);
            assert_eq!(fields[3].tag, der::TAG_CONTEXT_1);
            let loaded = PrivateKey::from_pem("test.key", pem.as_bytes()).expect("load");
            assert_eq!(loaded.public_key_der(), key.public_key_der());
            assert_eq!(loaded.to_pem(), pem);
        }
    }

    #[test]
    fn rsa_keys_are_written_as_pkcs1_and_load_back() {
        let key = PrivateKey::generate(KeyAlgorithm::Rsa2048).expect("generate");
        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let loaded = PrivateKey::from_pem("test.key", pem.as_bytes()).expect("load");
        assert_eq!(loaded.public_key_der(), key.public_key_der());
        assert!(loaded.is_rsa());
        assert!(key
            .public_key_pem()
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("generate");
        let debug = format!("{key:?}");
        let body: String = key.to_pem().lines().nth(1).unwrap_or_default().to_owned();
        assert!(!debug.contains(&body[..20]));
    }

    #[test]
    fn corrupt_keys_name_their_origin() {
        let error = PrivateKey::from_pem("/pki/ca.key", b"garbage").expect_err("no block");
        assert!(error.to_string().starts_with("/pki/ca.key "), "{error}");
        let corrupt = der::pem_encode("RSA PRIVATE KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]);
        let error = PrivateKey::from_pem("/pki/ca.key", corrupt.as_bytes()).expect_err("bad der");
        assert!(matches!(error, PkiError::InvalidKey { .. }), "{error:?}");
    }

    #[test]
    fn parallel_generation_makes_distinct_keys() {
        let keys = generate_keys(KeyAlgorithm::EcdsaP256, 5).expect("generate");
        assert_eq!(keys.len(), 5);
        let mut publics: Vec<Vec<u8>> = keys.iter().map(PrivateKey::public_key_der).collect();
        publics.sort();
        publics.dedup();
        assert_eq!(publics.len(), 5);
    }
}
