//! `upload-certs`: the control-plane certificates and keys, encrypted with the certificate key, in the Secret
//! `kube-system/kubeadm-certs`, so that `bosun join --control-plane --certificate-key K` can fetch them
//! (kubeadm's phases/copycerts).
//!
//! Format (util/crypto in kubeadm): the certificate key is 32 random bytes written as 64 hex digits; each file is
//! sealed with AES-256-GCM under a fresh 12-byte nonce, no additional data, stored as `nonce ‖ ciphertext ‖ tag`
//! under the file's name with `/` replaced by `-`. The Secret is owned by a short-lived bootstrap token (TTL 2h), so
//! the garbage collector deletes it when the token expires.
//!
//! Guarantees: a re-run whose Secret still decrypts to the same files under the same key, and whose owner token still
//! exists, changes nothing. Caveats: anyone holding a bootstrap token of the default group and the certificate key
//! can read the CA keys for two hours; the key is printed once, by show-join-command.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use super::{api_error, api_timeout, apply_all, connect, rbac, with_retry};
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::host::cluster::{self, to_value, ClusterApi};
use crate::init::InitData;
use crate::token::{Token, TokenSpec};

pub const SECRET_NAME: &str = "kubeadm-certs";
pub const NAMESPACE: &str = "kube-system";
pub const OWNER_TOKEN_DESCRIPTION: &str = "Proxy for managing TTL for the kubeadm-certs secret";
pub const OWNER_TOKEN_TTL: Duration = Duration::from_secs(2 * 3600);
const KEY_LENGTH: usize = 32;

/// A certificate key that is not 64 hex digits, or data that does not decrypt.
#[derive(Debug, thiserror::Error)]
pub enum CertKeyError {
    #[error("the certificate key must be {} hex digits (32 bytes), not {length} characters", KEY_LENGTH * 2)]
    KeyLength { length: usize },
    #[error("the certificate key is not hexadecimal")]
    KeyNotHex,
    #[error(
        "{name} cannot be decrypted with this certificate key (wrong key, or the data was changed)"
    )]
    Decrypt { name: String },
    #[error("the operating system's random source failed")]
    Random,
}

/// A fresh certificate key: 32 random bytes as 64 lower-case hex digits.
pub fn generate_certificate_key() -> Result<String, PhaseError> {
    let mut key = [0u8; KEY_LENGTH];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| PhaseError::failed(CertKeyError::Random.to_string()))?;
    Ok(hex::encode(key))
}

fn parse_key(certificate_key: &str) -> Result<LessSafeKey, CertKeyError> {
    let text = certificate_key.trim();
    if text.len() != KEY_LENGTH * 2 {
        return Err(CertKeyError::KeyLength { length: text.len() });
    }
    let bytes = hex::decode(text).map_err(|_| CertKeyError::KeyNotHex)?;
    let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CertKeyError::KeyNotHex)?;
    Ok(LessSafeKey::new(unbound))
}

/// Seals `plaintext`: `nonce ‖ ciphertext ‖ tag`.
pub fn encrypt(plaintext: &[u8], certificate_key: &str) -> Result<Vec<u8>, CertKeyError> {
    let key = parse_key(certificate_key)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| CertKeyError::Random)?;
    let mut sealed = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut sealed,
    )
    .map_err(|_| CertKeyError::Random)?;
    let mut output = nonce.to_vec();
    output.extend_from_slice(&sealed);
    Ok(output)
}

/// Opens `nonce ‖ ciphertext ‖ tag`; `name` is what the error calls the data.
pub fn decrypt(sealed: &[u8], certificate_key: &str, name: &str) -> Result<Vec<u8>, CertKeyError> {
    let key = parse_key(certificate_key)?;
    let fail = || CertKeyError::Decrypt {
        name: name.to_owned(),
    };
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(fail());
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
    let mut buffer = rest.to_vec();
    let plaintext = key
        .open_in_place(nonce, Aad::empty(), &mut buffer)
        .map_err(|_| fail())?;
    Ok(plaintext.to_vec())
}

/// The files uploaded: (Secret key, node path).
pub fn uploaded_files(data: &InitData) -> Vec<(String, PathBuf)> {
    let pki = |relative: &str| data.paths.pki(relative);
    let mut files = vec![
        ("ca.crt".to_owned(), pki("ca.crt")),
        ("ca.key".to_owned(), pki("ca.key")),
        ("front-proxy-ca.crt".to_owned(), pki("front-proxy-ca.crt")),
        ("front-proxy-ca.key".to_owned(), pki("front-proxy-ca.key")),
        ("sa.pub".to_owned(), pki("sa.pub")),
        ("sa.key".to_owned(), pki("sa.key")),
    ];
    match data.config.external_etcd() {
        Some(external) => {
            for (name, path) in [
                ("external-etcd-ca.crt", &external.ca_file),
                ("external-etcd.crt", &external.cert_file),
                ("external-etcd.key", &external.key_file),
            ] {
                if !path.is_empty() {
                    files.push((name.to_owned(), PathBuf::from(path)));
                }
            }
        }
        None => {
            files.push(("etcd-ca.crt".to_owned(), pki("etcd/ca.crt")));
            files.push(("etcd-ca.key".to_owned(), pki("etcd/ca.key")));
        }
    }
    files
}

/// Whether an existing Secret holds exactly `plaintexts` under `certificate_key`.
fn same_contents(
    secret: &Secret,
    plaintexts: &BTreeMap<String, Vec<u8>>,
    certificate_key: &str,
) -> bool {
    let Some(data) = &secret.data else {
        return false;
    };
    if data.len() != plaintexts.len() {
        return false;
    }
    plaintexts
        .iter()
        .all(|(name, plaintext)| match data.get(name) {
            Some(stored) if plaintext.is_empty() => stored.0.is_empty(),
            Some(stored) => {
                decrypt(&stored.0, certificate_key, name).is_ok_and(|opened| &opened == plaintext)
            }
            None => false,
        })
}

/// The Secret for `plaintexts`, owned by the token Secret `owner` (name, uid).
pub fn certs_secret(
    plaintexts: &BTreeMap<String, Vec<u8>>,
    certificate_key: &str,
    owner: (&str, &str),
) -> Result<Secret, CertKeyError> {
    let mut data = BTreeMap::new();
    for (name, plaintext) in plaintexts {
        // kubeadm stores an empty value for a file that does not exist; download skips it.
        let value = if plaintext.is_empty() {
            Vec::new()
        } else {
            encrypt(plaintext, certificate_key)?
        };
        data.insert(name.clone(), ByteString(value));
    }
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Secret".to_owned(),
                name: owner.0.to_owned(),
                uid: owner.1.to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    })
}

/// The owner token Secret of an existing kubeadm-certs Secret, if it still exists and has not expired.
fn live_owner(
    api: &dyn ClusterApi,
    secret: &Secret,
    data: &InitData,
    now: std::time::SystemTime,
) -> Option<(String, String)> {
    let owner = secret.metadata.owner_references.as_ref()?.first()?.clone();
    let timeout = api_timeout(data);
    let token_secret: Secret = with_retry(timeout, || {
        cluster::get::<Secret>(api, Some(NAMESPACE), &owner.name)
    })
    .ok()??;
    let spec = TokenSpec::from_secret(&token_secret).ok()?;
    // Keep a margin: a token about to expire would take the certificates with it mid-join.
    let soon = now + Duration::from_secs(15 * 60);
    (!spec.expired(soon) && token_secret.metadata.uid.as_deref() == Some(owner.uid.as_str()))
        .then_some((owner.name, owner.uid))
}

fn run(ctx: &mut PhaseCtx<'_, InitData>) -> Result<(), PhaseError> {
    let certificate_key = ctx
        .data
        .cluster
        .certificate_key(&ctx.data.config.init.certificate_key)?;
    let mut plaintexts = BTreeMap::new();
    for (name, path) in uploaded_files(ctx.data) {
        let contents = ctx.host.files.read(&path)?.unwrap_or_default();
        plaintexts.insert(name, contents);
    }
    let role = rbac::role(
        NAMESPACE,
        "kubeadm:kubeadm-certs",
        vec![rbac::rule(&["get"], &["secrets"], &[SECRET_NAME])],
    );
    let binding = rbac::role_binding(
        NAMESPACE,
        "kubeadm:kubeadm-certs",
        "kubeadm:kubeadm-certs",
        &[rbac::group(rbac::DEFAULT_NODE_TOKEN_GROUP)],
    );
    let rbac_objects = [to_value(&role), to_value(&binding)];
    let Some(api) = connect(ctx)? else {
        ctx.info(format!(
            "would upload {} files encrypted to Secret {NAMESPACE}/{SECRET_NAME}",
            plaintexts.len()
        ));
        return apply_all(ctx, None, &rbac_objects);
    };
    let api = api.as_ref();
    let timeout = api_timeout(ctx.data);
    let now = ctx.host.clock.now();
    let existing = with_retry(timeout, || {
        cluster::get::<Secret>(api, Some(NAMESPACE), SECRET_NAME)
    })
    .map_err(api_error)?;
    let reusable = existing.as_ref().and_then(|secret| {
        if same_contents(secret, &plaintexts, &certificate_key) {
            live_owner(api, secret, ctx.data, now)
        } else {
            None
        }
    });
    let artefact = format!("cluster: Secret {NAMESPACE}/{SECRET_NAME}");
    if reusable.is_some() {
        ctx.record_with_detail(
            artefact,
            crate::host::Outcome::Unchanged,
            Some("holds these certificates under this key".to_owned()),
        );
    } else {
        let owner_token =
            Token::generate().map_err(|error| PhaseError::failed(error.to_string()))?;
        let spec = TokenSpec::new(
            owner_token,
            OWNER_TOKEN_DESCRIPTION,
            Some(OWNER_TOKEN_TTL),
            None,
            &[],
            &[],
            now,
        )
        .map_err(|error| PhaseError::failed(error.to_string()))?;
        let token_secret = spec.to_secret();
        apply_all(ctx, Some(api), &[to_value(&token_secret)])?;
        let stored = with_retry(timeout, || {
            cluster::get::<Secret>(api, Some(NAMESPACE), &spec.token.secret_name())
        })
        .map_err(api_error)?
        .ok_or_else(|| {
            PhaseError::failed(format!(
                "the token Secret {} vanished after it was created",
                spec.token.secret_name()
            ))
        })?;
        let uid = stored.metadata.uid.unwrap_or_default();
        let secret = certs_secret(
            &plaintexts,
            &certificate_key,
            (&spec.token.secret_name(), &uid),
        )
        .map_err(|error| PhaseError::failed(error.to_string()))?;
        apply_all(ctx, Some(api), &[to_value(&secret)])?;
    }
    apply_all(ctx, Some(api), &rbac_objects)?;
    Ok(())
}

pub fn phase() -> Phase<InitData> {
    Phase::new(
        "upload-certs",
        "Upload the control-plane certificates, encrypted, to the kubeadm-certs Secret",
    )
    .long_about(
        "Encrypts the cluster CAs, the front-proxy CA, the service-account key pair and the etcd CA with \
         AES-256-GCM under the certificate key (InitConfiguration certificateKey, or a generated one) and stores \
         them in kube-system/kubeadm-certs, owned by a bootstrap token that expires in 2 hours. Runs only with \
         --upload-certs.",
    )
    .skip_if(|data: &InitData| {
        if data.offline {
            Some("--offline: this phase needs a live node".to_owned())
        } else {
            (!data.cluster.upload_certs).then(|| "certificates are uploaded only with --upload-certs".to_owned())
        }
    })
    .needs(|data: &InitData| {
        let mut needs = vec![super::admin_conf()];
        needs.extend(
            uploaded_files(data)
                .into_iter()
                .filter(|(name, _)| !name.starts_with("external-"))
                .map(|(_, path)| Artefact::File(path)),
        );
        needs
    })
    .makes(|_| vec![Artefact::State(format!("cluster: Secret {NAMESPACE}/{SECRET_NAME}"))])
    .run(run)
}

#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "tests compare with OpenSSL and Python run as independent implementations"
)]
mod tests {
    use super::*;
    use std::process::Command;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    /// Decrypts with Python's `cryptography` (OpenSSL underneath), independently of ring.
    fn python_decrypt(sealed: &[u8], key: &str) -> Vec<u8> {
        let script = "import sys,binascii\nfrom cryptography.hazmat.primitives.ciphers.aead import AESGCM\n\
                      key=binascii.unhexlify(sys.argv[1]); data=binascii.unhexlify(sys.argv[2])\n\
                      sys.stdout.write(binascii.hexlify(AESGCM(key).decrypt(data[:12], data[12:], None)).decode())";
        let output = Command::new("python3")
            .args(["-c", script, key, &hex::encode(sealed)])
            .output()
            .expect("run python3");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        hex::decode(output.stdout).expect("hex")
    }

    fn python_encrypt(plaintext: &[u8], key: &str) -> Vec<u8> {
        let script = "import sys,os,binascii\nfrom cryptography.hazmat.primitives.ciphers.aead import AESGCM\n\
                      key=binascii.unhexlify(sys.argv[1]); nonce=os.urandom(12)\n\
                      sys.stdout.write(binascii.hexlify(nonce+AESGCM(key).encrypt(nonce, binascii.unhexlify(sys.argv[2]), None)).decode())";
        let output = Command::new("python3")
            .args(["-c", script, key, &hex::encode(plaintext)])
            .output()
            .expect("run python3");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        hex::decode(output.stdout).expect("hex")
    }

    #[test]
    fn sealed_data_is_nonce_ciphertext_tag_and_opens_elsewhere() {
        let plaintext = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let sealed = encrypt(plaintext, KEY).expect("encrypt");
        assert_eq!(sealed.len(), 12 + plaintext.len() + 16);
        assert_eq!(python_decrypt(&sealed, KEY), plaintext);
        let from_python = python_encrypt(plaintext, KEY);
        assert_eq!(
            decrypt(&from_python, KEY, "ca.key").expect("decrypt"),
            plaintext
        );
    }

    #[test]
    fn opens_the_gcm_specification_vector() {
        // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 14 (AES-256, zero key, zero IV).
        let key = "0".repeat(64);
        let sealed = hex::decode(
            "000000000000000000000000cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
        )
        .expect("hex");
        assert_eq!(
            decrypt(&sealed, &key, "vector").expect("decrypt"),
            vec![0u8; 16]
        );
    }

    #[test]
    fn wrong_keys_and_tampering_are_refused() {
        let sealed = encrypt(b"secret", KEY).expect("encrypt");
        let other = "ff".repeat(32);
        let error = decrypt(&sealed, &other, "sa.key").expect_err("wrong key");
        assert!(error.to_string().contains("sa.key"), "{error}");
        let mut tampered = sealed.clone();
        tampered[14] ^= 1;
        assert!(decrypt(&tampered, KEY, "sa.key").is_err());
        assert!(decrypt(&sealed[..20], KEY, "sa.key").is_err());
        assert!(matches!(
            parse_key("abcd"),
            Err(CertKeyError::KeyLength { length: 4 })
        ));
        assert!(matches!(
            parse_key(&"zz".repeat(32)),
            Err(CertKeyError::KeyNotHex)
        ));
    }

    #[test]
    fn generated_keys_are_64_hex_digits() {
        let key = generate_certificate_key().expect("key");
        assert_eq!(key.len(), 64);
        assert!(parse_key(&key).is_ok());
        assert_ne!(key, generate_certificate_key().expect("key"));
    }

    #[test]
    fn secret_is_owned_by_the_token_and_keyed_with_dashes() {
        let data = crate::cluster::test_data();
        let names: Vec<String> = uploaded_files(&data)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            names,
            [
                "ca.crt",
                "ca.key",
                "front-proxy-ca.crt",
                "front-proxy-ca.key",
                "sa.pub",
                "sa.key",
                "etcd-ca.crt",
                "etcd-ca.key"
            ]
        );
        let plaintexts: BTreeMap<String, Vec<u8>> = [
            ("ca.crt".to_owned(), b"cert".to_vec()),
            ("sa.pub".to_owned(), Vec::new()),
        ]
        .into_iter()
        .collect();
        let secret =
            certs_secret(&plaintexts, KEY, ("bootstrap-token-abcdef", "uid-1")).expect("secret");
        let owner = &secret.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Secret", "bootstrap-token-abcdef", "uid-1")
        );
        assert_eq!(owner.controller, Some(true));
        let stored = secret.data.as_ref().expect("data");
        assert!(stored["sa.pub"].0.is_empty());
        assert_eq!(
            decrypt(&stored["ca.crt"].0, KEY, "ca.crt").expect("decrypt"),
            b"cert"
        );
        assert!(same_contents(&secret, &plaintexts, KEY));
        let changed: BTreeMap<String, Vec<u8>> = [
            ("ca.crt".to_owned(), b"other".to_vec()),
            ("sa.pub".to_owned(), Vec::new()),
        ]
        .into_iter()
        .collect();
        assert!(!same_contents(&secret, &changed, KEY));
        assert!(!same_contents(&secret, &plaintexts, &"ff".repeat(32)));
    }
}
