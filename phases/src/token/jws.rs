//! Detached JWS signatures of the `kube-public/cluster-info` ConfigMap (cluster-bootstrap/token/jws).
//!
//! kube-controller-manager's bootstrapsigner signs the ConfigMap's `kubeconfig` value with every token that has the
//! usage `signing` and stores the result under `jws-kubeconfig-<token-id>`: a compact JWS with the payload removed,
//! `<base64url(header)>..<base64url(signature)>`, header `{"alg":"HS256","kid":"<token-id>"}`, key = the token
//! secret's bytes. A joining node that knows the token checks the signature before trusting the kubeconfig.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use serde::Deserialize;

use super::{Token, TokenError};

/// The ConfigMap key holding the signature made with token `id`.
pub fn signature_key(id: &str) -> String {
    format!("jws-kubeconfig-{id}")
}

fn signing_input(header_b64: &str, payload: &[u8]) -> String {
    format!("{header_b64}.{}", URL_SAFE_NO_PAD.encode(payload))
}

/// Signs `payload` as the bootstrapsigner does (used by tests and by `bosun` when no controller manager runs).
pub fn sign_detached(payload: &[u8], token: &Token) -> String {
    let header = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, token.id());
    let header_b64 = URL_SAFE_NO_PAD.encode(header.as_bytes());
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.secret().as_bytes());
    let tag = hmac::sign(&key, signing_input(&header_b64, payload).as_bytes());
    format!("{header_b64}..{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Checks that `signature` is a detached HS256 JWS of `payload` made with `token`.
///
/// The HMAC is compared in constant time. The header must say `HS256` and, when it names a key id, name this token.
pub fn verify_detached(payload: &[u8], signature: &str, token: &Token) -> Result<(), TokenError> {
    let invalid = |reason: &str| TokenError::BadSignature {
        id: token.id().to_owned(),
        reason: reason.to_owned(),
    };
    let (header_b64, signature_b64) = signature
        .trim()
        .split_once("..")
        .ok_or_else(|| invalid("it is not a detached compact JWS (<header>..<signature>)"))?;
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| invalid("its header is not base64url"))?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|_| invalid("its header is not JSON"))?;
    if header.alg != "HS256" {
        return Err(invalid(&format!(
            "its algorithm is {:?}, not HS256",
            header.alg
        )));
    }
    if header.kid.as_deref().is_some_and(|kid| kid != token.id()) {
        return Err(invalid("its key id names another token"));
    }
    let tag = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| invalid("its signature is not base64url"))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.secret().as_bytes());
    hmac::verify(&key, signing_input(header_b64, payload).as_bytes(), &tag)
        .map_err(|_| invalid("it does not match the kubeconfig and the token secret"))
}

#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "tests compare with OpenSSL and Python run as independent implementations"
)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    const PAYLOAD: &[u8] =
        b"apiVersion: v1\nclusters:\n- cluster:\n    server: https://10.0.0.1:6443\n  name: \"\"\n";

    fn token() -> Token {
        Token::parse("abcdef.0123456789abcdef").expect("valid")
    }

    /// The signature computed by OpenSSL, independently of ring and of this module's encoder.
    fn openssl_signature(header: &str, payload: &[u8], secret: &str) -> String {
        let header_b64 = URL_SAFE_NO_PAD.encode(header);
        let input = format!("{header_b64}.{}", URL_SAFE_NO_PAD.encode(payload));
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", secret, "-binary"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run openssl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("openssl output");
        assert!(output.status.success());
        assert_eq!(output.stdout.len(), 32);
        format!("{header_b64}..{}", URL_SAFE_NO_PAD.encode(output.stdout))
    }

    #[test]
    fn accepts_a_signature_computed_by_openssl() {
        let signature = openssl_signature(
            r#"{"alg":"HS256","kid":"abcdef"}"#,
            PAYLOAD,
            "0123456789abcdef",
        );
        verify_detached(PAYLOAD, &signature, &token()).expect("valid signature");
        assert_eq!(sign_detached(PAYLOAD, &token()), signature);
    }

    #[test]
    fn accepts_a_header_without_key_id() {
        let signature = openssl_signature(r#"{"alg":"HS256"}"#, PAYLOAD, "0123456789abcdef");
        verify_detached(PAYLOAD, &signature, &token()).expect("valid signature");
    }

    #[test]
    fn refuses_a_tampered_kubeconfig() {
        let signature = sign_detached(PAYLOAD, &token());
        let mut tampered = PAYLOAD.to_vec();
        tampered[40] ^= 1;
        let error = verify_detached(&tampered, &signature, &token()).expect_err("tampered");
        assert!(error.to_string().contains("abcdef"), "{error}");
    }

    #[test]
    fn refuses_another_tokens_secret() {
        let other = Token::parse("abcdef.ffffffffffffffff").expect("valid");
        let signature = sign_detached(PAYLOAD, &other);
        assert!(verify_detached(PAYLOAD, &signature, &token()).is_err());
    }

    #[test]
    fn refuses_other_algorithms_key_ids_and_shapes() {
        let none = format!("{}..", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert!(verify_detached(PAYLOAD, &none, &token())
            .expect_err("alg none")
            .to_string()
            .contains("HS256"));
        let other_kid = openssl_signature(
            r#"{"alg":"HS256","kid":"zzzzzz"}"#,
            PAYLOAD,
            "0123456789abcdef",
        );
        assert!(verify_detached(PAYLOAD, &other_kid, &token()).is_err());
        for shape in ["", "abc", "a.b.c", "!!..!!"] {
            assert!(
                verify_detached(PAYLOAD, shape, &token()).is_err(),
                "{shape}"
            );
        }
    }
}
