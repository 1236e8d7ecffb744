//! Cross-module tests: what the issuer makes passes the parser's checks, and what it should refuse it refuses.

use std::time::{Duration, SystemTime};

use crate::bundle::{generate_all, FileKind};
use crate::cert::{ca_pin, public_key_from_pem, Certificate};
use crate::error::PkiError;
use crate::inputs::tests::sample_inputs;
use crate::issue::{create_csr, issue_ca, issue_leaf, verify_csr};
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::table::{cert_spec, Usage, CERTIFICATES};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)
}

fn make_ca(name: &str) -> (Certificate, PrivateKey) {
    let inputs = sample_inputs();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let (request, _) = inputs.cert_request(cert_spec(name).expect("row"));
    let ca = issue_ca(&request, &key, now(), inputs.validity.ca).expect("ca");
    (ca, key)
}

fn make_leaf(name: &str, ca: &Certificate, ca_key: &PrivateKey) -> (Certificate, PrivateKey) {
    let inputs = sample_inputs();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let (request, _) = inputs.cert_request(cert_spec(name).expect("row"));
    let leaf = issue_leaf(&request, &key, ca, ca_key, now(), inputs.validity.leaf).expect("leaf");
    (leaf, key)
}

fn assert_signed_by(leaf: &Certificate, ca: &Certificate) {
    leaf.check_signed_by(ca)
        .unwrap_or_else(|error| panic!("{} should chain to {}: {error}", leaf.origin, ca.origin));
}

#[test]
fn full_set_chains_matches_its_keys_and_carries_kubeadm_subjects() {
    let inputs = sample_inputs();
    let generated = generate_all(&inputs, now()).expect("generate");
    let file = |relative: &str| {
        generated
            .files
            .iter()
            .find(|file| file.relative_path == relative)
            .unwrap_or_else(|| panic!("{relative} generated"))
    };
    for spec in &CERTIFICATES {
        let certificate_file = file(&spec.cert_file());
        assert_eq!(certificate_file.kind.mode(), 0o644);
        assert_eq!(file(&spec.key_file()).kind, FileKind::PrivateKey);
        let certificate = Certificate::from_pem(&spec.cert_file(), certificate_file.pem.as_bytes())
            .expect("parse");
        let key = PrivateKey::from_pem(&spec.key_file(), file(&spec.key_file()).pem.as_bytes())
            .expect("key");
        certificate
            .check_key(&key, &spec.key_file())
            .expect("key matches");
        let (request, _) = inputs.cert_request(spec);
        assert_eq!(certificate.common_name, request.common_name);
        assert_eq!(certificate.organization, request.organization);
        assert_eq!(certificate.alt_names, request.alt_names, "{}", spec.name);
        assert_eq!(certificate.usages, request.usages, "{}", spec.name);
        assert_eq!(certificate.is_ca, spec.is_ca());
        let now = time::OffsetDateTime::from(now());
        assert_eq!(certificate.not_before, now - time::Duration::minutes(5));
        let lifetime = if spec.is_ca() {
            inputs.validity.ca
        } else {
            inputs.validity.leaf
        };
        assert_eq!(certificate.not_after, now + lifetime);
        let serial = u64::from_str_radix(&certificate.serial, 16).expect("serial fits 64 bits");
        assert!((1..(1u64 << 63) - 1).contains(&serial), "{serial}");
        let ca_spec = spec.ca().unwrap_or(spec);
        let ca =
            Certificate::from_pem("ca", file(&ca_spec.cert_file()).pem.as_bytes()).expect("ca");
        assert_signed_by(&certificate, &ca);
    }
    let sa_public = public_key_from_pem("sa.pub", file("sa.pub").pem.as_bytes()).expect("sa.pub");
    let sa_key = PrivateKey::from_pem("sa.key", file("sa.key").pem.as_bytes()).expect("sa.key");
    assert_eq!(sa_public, sa_key.public_key_der());
    assert_eq!(generated.kubeconfigs.len(), 5);
    let ca = Certificate::from_pem("ca.crt", file("ca.crt").pem.as_bytes()).expect("ca");
    for (name, kubeconfig) in &generated.kubeconfigs {
        let client = kubeconfig
            .client_certificate(name)
            .expect("client certificate");
        assert_signed_by(&client, &ca);
        assert_eq!(client.usages, vec![Usage::ClientAuth]);
        let key_pem = kubeconfig.client_key_pem().expect("key");
        let key = PrivateKey::from_pem(name, &key_pem).expect("key parses");
        client.check_key(&key, name).expect("key matches");
        assert!(crate::kubeconfig::same_ca_bytes(
            &kubeconfig.cluster_ca_pem().expect("ca"),
            ca.to_pem().as_bytes()
        ));
        let (user, _) = kubeconfig.current_user().expect("user");
        assert_eq!(user, client.common_name);
        assert_eq!(kubeconfig.current_context, format!("{user}@kubernetes"));
    }
}

#[test]
fn external_etcd_set_has_no_etcd_files() {
    let mut inputs = sample_inputs();
    inputs.external_etcd = true;
    let generated = generate_all(&inputs, now()).expect("generate");
    assert!(generated
        .files
        .iter()
        .all(|file| !file.relative_path.starts_with("etcd/")
            && !file.relative_path.starts_with("apiserver-etcd")));
    assert_eq!(generated.files.len(), 5 * 2 + 2);
}

#[test]
fn a_leaf_from_another_ca_is_refused() {
    let (ca, ca_key) = make_ca("ca");
    let (other_ca, other_key) = make_ca("ca");
    let (leaf, _) = make_leaf("apiserver", &other_ca, &other_key);
    assert_signed_by(&leaf, &other_ca);
    let error = leaf.check_signed_by(&ca).expect_err("other CA");
    assert!(matches!(error, PkiError::NotSignedBy { .. }), "{error:?}");
    let (good, _) = make_leaf("apiserver", &ca, &ca_key);
    good.check_chain(&[], &ca).expect("direct chain");
}

#[test]
fn a_mismatched_key_is_refused() {
    let (ca, _) = make_ca("ca");
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let error = ca.check_key(&other, "/pki/ca.key").expect_err("mismatch");
    assert_eq!(
        error.to_string(),
        "the private key /pki/ca.key does not match the certificate ca"
    );
}

#[test]
fn a_leaf_is_not_a_ca_and_sans_and_usages_are_checked() {
    let (ca, ca_key) = make_ca("ca");
    let (leaf, _) = make_leaf("apiserver-kubelet-client", &ca, &ca_key);
    assert!(matches!(leaf.check_is_ca(), Err(PkiError::NotCa { .. })));
    ca.check_is_ca().expect("ca");
    let mut inputs = sample_inputs();
    inputs.apiserver_cert_sans = vec!["extra.example.com".to_owned(), "10.9.9.9".to_owned()];
    let (server, _) = make_leaf("apiserver", &ca, &ca_key);
    let (request, _) = inputs.cert_request(cert_spec("apiserver").expect("row"));
    let error = server.check_sans(&request.alt_names).expect_err("missing");
    assert_eq!(
        error.to_string(),
        "apiserver does not cover the required subject alternative names DNS:extra.example.com, IP Address:10.9.9.9"
    );
    let error = leaf.check_usages(&[Usage::ServerAuth]).expect_err("usage");
    assert!(error.to_string().contains("server auth"), "{error}");
}

#[test]
fn expiry_is_checked_against_the_given_time() {
    let (ca, _) = make_ca("ca");
    let later = time::OffsetDateTime::from(now() + Duration::from_secs(87601 * 3600));
    let error = ca.check_validity(later).expect_err("expired");
    assert!(error.to_string().starts_with("ca expired on "), "{error}");
    let earlier = time::OffsetDateTime::from(now() - Duration::from_secs(3600));
    assert!(matches!(
        ca.check_validity(earlier),
        Err(PkiError::NotYetValid { .. })
    ));
    ca.check_validity(time::OffsetDateTime::from(now()))
        .expect("valid");
}

#[test]
fn corrupt_pem_names_its_origin() {
    let error = Certificate::from_pem(
        "/etc/kubernetes/pki/ca.crt",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect_err("corrupt");
    assert!(
        error.to_string().starts_with("/etc/kubernetes/pki/ca.crt "),
        "{error}"
    );
    let error = Certificate::from_pem("/x.crt", b"").expect_err("empty");
    assert_eq!(
        error.to_string(),
        "/x.crt is not valid PEM: no CERTIFICATE block found"
    );
}

#[test]
fn chains_in_one_file_are_read_leaf_first() {
    let (ca, ca_key) = make_ca("ca");
    let (leaf, _) = make_leaf("front-proxy-client", &ca, &ca_key);
    let bundle = format!("{}{}", leaf.to_pem(), ca.to_pem());
    let chain = Certificate::chain_from_pem("bundle.crt", bundle.as_bytes()).expect("chain");
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0].common_name, "front-proxy-client");
    chain[0]
        .check_chain(&chain[1..], &ca)
        .expect("chain verifies");
}

#[test]
fn csrs_carry_the_subject_and_verify() {
    let inputs = sample_inputs();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let (request, _) = inputs.cert_request(cert_spec("apiserver").expect("row"));
    let csr = create_csr(&request, &key).expect("csr");
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    assert_eq!(
        verify_csr("apiserver.csr", csr.as_bytes()).expect("verify"),
        "kube-apiserver"
    );
}

#[test]
fn ca_pins_hash_the_public_key_info() {
    let (ca, key) = make_ca("ca");
    let pin = ca_pin(&ca);
    assert_eq!(pin.len(), "sha256:".len() + 64);
    let expected = ring::digest::digest(&ring::digest::SHA256, &key.public_key_der());
    assert_eq!(pin, format!("sha256:{}", hex::encode(expected.as_ref())));
    assert_ne!(
        pin,
        format!(
            "sha256:{}",
            hex::encode(ring::digest::digest(&ring::digest::SHA256, ca.der()).as_ref())
        )
    );
}

#[test]
fn rsa_certificates_sign_and_verify() {
    let inputs = sample_inputs();
    let ca_key = PrivateKey::generate(KeyAlgorithm::Rsa2048).expect("key");
    let (request, _) = inputs.cert_request(cert_spec("etcd-ca").expect("row"));
    let ca = issue_ca(&request, &ca_key, now(), inputs.validity.ca).expect("ca");
    let leaf_key = PrivateKey::generate(KeyAlgorithm::Rsa2048).expect("key");
    let (request, _) = inputs.cert_request(cert_spec("etcd-server").expect("row"));
    let leaf = issue_leaf(
        &request,
        &leaf_key,
        &ca,
        &ca_key,
        now(),
        inputs.validity.leaf,
    )
    .expect("leaf");
    assert_signed_by(&leaf, &ca);
    // A reloaded PKCS#1 CA key signs as well as the generated one.
    let reloaded = PrivateKey::from_pem("etcd/ca.key", ca_key.to_pem().as_bytes()).expect("reload");
    let again = issue_leaf(
        &request,
        &leaf_key,
        &ca,
        &reloaded,
        now(),
        inputs.validity.leaf,
    )
    .expect("leaf");
    assert_signed_by(&again, &ca);
}

#[test]
fn kubeconfigs_round_trip_through_serde_with_kubectl_field_names() {
    let inputs = sample_inputs();
    let generated = generate_all(&inputs, now()).expect("generate");
    let (_, admin) = &generated.kubeconfigs[0];
    let value = serde_json::to_value(admin).expect("serialise");
    let keys: Vec<&String> = value.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        vec![
            "apiVersion",
            "clusters",
            "contexts",
            "current-context",
            "kind",
            "users"
        ],
        "kubeadm 1.35 writes no empty `preferences`"
    );
    assert!(value["clusters"][0]["cluster"]["certificate-authority-data"].is_string());
    assert_eq!(
        value["clusters"][0]["cluster"]["server"],
        "https://192.168.10.5:6443"
    );
    assert!(value["users"][0]["user"]["client-key-data"].is_string());
    let back: crate::Kubeconfig = serde_json::from_value(value).expect("parse");
    assert_eq!(&back, admin);
}

fn client_request(common_name: &str, organization: &[&str]) -> crate::CertRequest {
    crate::CertRequest {
        name: format!("the kubeconfig of {common_name}"),
        common_name: common_name.to_owned(),
        organization: organization.iter().map(|org| (*org).to_owned()).collect(),
        alt_names: crate::AltNames::default(),
        usages: vec![Usage::ClientAuth],
    }
}

/// The subject kubeadm 1.35 wrote for `kubeadm kubeconfig user --client-name alice --org zeta --org b --org alpha`
/// (read from its certificate with `openssl asn1parse`): one RDN holding the three O values in DER order, then CN.
const KUBEADM_ALICE_SUBJECT: &str = "303731253008060355040a130162300b060355040a13047a657461300c060355040a1305616c706861310e300c06035504031305616c696365";

#[test]
fn issue_3_every_organisation_is_kept_in_one_rdn_as_kubeadm_writes_it() {
    let (ca, ca_key) = make_ca("ca");
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let request = client_request("alice", &["zeta", "b", "alpha"]);
    let leaf = issue_leaf(
        &request,
        &key,
        &ca,
        &ca_key,
        now(),
        Duration::from_secs(3600),
    )
    .expect("leaf");
    assert_eq!(hex::encode(leaf.subject_der()), KUBEADM_ALICE_SUBJECT);
    assert_eq!(leaf.organization, vec!["b", "zeta", "alpha"]);
    assert_eq!(leaf.common_name, "alice");
    assert_signed_by(&leaf, &ca);
    leaf.check_key(&key, "alice.key").expect("key matches");
}

#[test]
fn issue_3_a_ca_with_several_organisations_signs_leaves_that_chain_to_it() {
    let key = PrivateKey::generate(KeyAlgorithm::Rsa2048).expect("key");
    let mut request = client_request("external-root", &["platform", "security"]);
    request.usages.clear();
    let ca = issue_ca(&request, &key, now(), Duration::from_secs(86_400)).expect("ca");
    assert_eq!(ca.organization, vec!["platform", "security"]);
    let leaf_key = PrivateKey::generate(KeyAlgorithm::Rsa2048).expect("key");
    let leaf = issue_leaf(
        &client_request("bob", &["dev"]),
        &leaf_key,
        &ca,
        &key,
        now(),
        Duration::from_secs(3600),
    )
    .expect("leaf");
    assert_signed_by(&leaf, &ca);
    assert_eq!(leaf.issuer_common_name, "external-root");
}

#[test]
fn issue_3_csrs_keep_every_organisation_and_verify() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let csr = create_csr(&client_request("alice", &["zeta", "b", "alpha"]), &key).expect("csr");
    assert_eq!(
        verify_csr("alice.csr", csr.as_bytes()).expect("verify"),
        "alice"
    );
    let block = &crate::der::pem_decode_all(csr.as_bytes()).expect("pem")[0];
    assert!(hex::encode(&block.der).contains(KUBEADM_ALICE_SUBJECT));
}

#[test]
fn single_organisation_subjects_need_no_second_signature_and_use_printable_strings() {
    let (ca, ca_key) = make_ca("ca");
    let (leaf, _) = make_leaf("apiserver-kubelet-client", &ca, &ca_key);
    let expected = crate::issue::subject_der(&leaf.common_name, &leaf.organization);
    assert_eq!(leaf.subject_der(), expected.as_slice());
    assert!(expected.contains(&crate::der::TAG_PRINTABLE_STRING));
    assert_signed_by(&leaf, &ca);
}
