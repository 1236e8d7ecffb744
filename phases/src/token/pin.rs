//! CA pins for discovery (`--discovery-token-ca-cert-hash sha256:<hex>`): SHA-256 over the CA certificate's DER
//! SubjectPublicKeyInfo (util/pubkeypin). A joining node trusts the cluster-info kubeconfig only when one of the CA
//! certificates in it matches one of the pins it was given.

use bosun_pki::{ca_pin, Certificate};

use super::TokenError;

/// A parsed pin: the lower-case hex SHA-256 of a public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    /// Parses `sha256:<64 hex digits>`; the `sha256` prefix and the digits may be of any case.
    pub fn parse(text: &str) -> Result<Pin, TokenError> {
        let malformed = || TokenError::BadPin {
            given: text.to_owned(),
        };
        let (format, digest) = text.trim().split_once(':').ok_or_else(malformed)?;
        if !format.eq_ignore_ascii_case("sha256")
            || digest.len() != 64
            || !digest.bytes().all(|byte| byte.is_ascii_hexdigit())
        {
            return Err(malformed());
        }
        Ok(Pin(digest.to_ascii_lowercase()))
    }

    /// The pin of a certificate.
    pub fn of(certificate: &Certificate) -> Pin {
        let text = ca_pin(certificate);
        Pin(text.trim_start_matches("sha256:").to_owned())
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "sha256:{}", self.0)
    }
}

/// The pins of every certificate in a CA bundle (PEM), in order.
pub fn pins_of_bundle(origin: &str, ca_pem: &[u8]) -> Result<Vec<Pin>, TokenError> {
    let certificates = Certificate::chain_from_pem(origin, ca_pem)?;
    Ok(certificates.iter().map(Pin::of).collect())
}

/// Succeeds when a certificate of the bundle matches one of `pins`; the error lists what the bundle's pins are, so
/// the user can compare them with what they were given out of band.
pub fn check_bundle(origin: &str, ca_pem: &[u8], pins: &[Pin]) -> Result<Pin, TokenError> {
    let actual = pins_of_bundle(origin, ca_pem)?;
    actual
        .iter()
        .find(|pin| pins.contains(pin))
        .cloned()
        .ok_or_else(|| TokenError::PinMismatch {
            origin: origin.to_owned(),
            actual: actual.iter().map(ToString::to_string).collect(),
        })
}

#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "tests compare with OpenSSL and Python run as independent implementations"
)]
mod tests {
    use super::*;
    use std::process::Command;

    fn openssl(arguments: &[&str]) -> Vec<u8> {
        let output = Command::new("openssl")
            .args(arguments)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// A self-signed CA made by OpenSSL and its pin computed by the pipeline the kubeadm docs give:
    /// `openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum`.
    fn openssl_ca(directory: &std::path::Path, name: &str, key_type: &str) -> (Vec<u8>, String) {
        let key = directory.join(format!("{name}.key"));
        let cert = directory.join(format!("{name}.crt"));
        let der = directory.join(format!("{name}.pub.der"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            key_type,
            "-nodes",
            "-keyout",
            key.to_str().expect("utf-8"),
            "-out",
            cert.to_str().expect("utf-8"),
            "-days",
            "1",
            "-subj",
            "/CN=kubernetes",
        ]);
        let public_pem = openssl(&[
            "x509",
            "-in",
            cert.to_str().expect("utf-8"),
            "-pubkey",
            "-noout",
        ]);
        std::fs::write(directory.join(format!("{name}.pub.pem")), public_pem).expect("write");
        openssl(&[
            "pkey",
            "-pubin",
            "-in",
            directory
                .join(format!("{name}.pub.pem"))
                .to_str()
                .expect("utf-8"),
            "-outform",
            "der",
            "-out",
            der.to_str().expect("utf-8"),
        ]);
        let sum = Command::new("sha256sum")
            .arg(&der)
            .output()
            .expect("sha256sum");
        let hex = String::from_utf8(sum.stdout).expect("utf-8");
        let hex = hex.split_whitespace().next().expect("digest").to_owned();
        (
            std::fs::read(cert).expect("read cert"),
            format!("sha256:{hex}"),
        )
    }

    #[test]
    fn pins_match_openssl_for_rsa_and_ecdsa() {
        let directory = tempfile::tempdir().expect("tempdir");
        for (name, key_type) in [("rsa", "rsa:2048"), ("ec", "ec:/dev/null")] {
            let key_type = if name == "ec" {
                let parameters = directory.path().join("p256.pem");
                openssl(&[
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-out",
                    parameters.to_str().expect("utf-8"),
                ]);
                format!("ec:{}", parameters.display())
            } else {
                key_type.to_owned()
            };
            let (pem, expected) = openssl_ca(directory.path(), name, &key_type);
            let pins = pins_of_bundle("ca.crt", &pem).expect("pins");
            assert_eq!(pins.len(), 1);
            assert_eq!(pins[0].to_string(), expected, "{name}");
            let given = Pin::parse(&expected.to_uppercase().replacen("SHA256", "sha256", 1))
                .expect("parse");
            assert_eq!(
                check_bundle("ca.crt", &pem, &[given]).expect("match"),
                pins[0]
            );
        }
    }

    #[test]
    fn any_certificate_of_a_bundle_may_match() {
        let directory = tempfile::tempdir().expect("tempdir");
        let (first, _) = openssl_ca(directory.path(), "one", "rsa:2048");
        let (second, second_pin) = openssl_ca(directory.path(), "two", "rsa:2048");
        let bundle = [first.clone(), second].concat();
        let pin = Pin::parse(&second_pin).expect("parse");
        check_bundle("cluster-info", &bundle, &[pin]).expect("second matches");
        let wrong = Pin::parse(&format!("sha256:{}", "0".repeat(64))).expect("parse");
        let error = check_bundle("cluster-info", &first, &[wrong]).expect_err("mismatch");
        assert!(error.to_string().contains("cluster-info"), "{error}");
        assert!(error.to_string().contains("sha256:"), "{error}");
    }

    #[test]
    fn malformed_pins_are_refused() {
        for bad in [
            "",
            "sha256",
            "sha256:abc",
            "md5:".to_owned().as_str(),
            &format!("sha1:{}", "a".repeat(64)),
            &format!("sha256:{}", "g".repeat(64)),
        ] {
            assert!(Pin::parse(bad).is_err(), "{bad}");
        }
        assert!(Pin::parse(&format!("SHA256:{}", "A".repeat(64))).is_ok());
    }
}
