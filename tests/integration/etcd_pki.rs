//! An etcd PKI made by openssl: a CA, a server certificate (also used for peering) for the given addresses, and a
//! healthcheck client in `system:masters`. The member-replacement test in tests/integration/etcd.rs and the etcd
//! backup benchmark (benches/etcd_backup.rs, which includes this file) start etcd with it, so that bosun's etcd
//! client is tested against another implementation's certificates; the backup and restore tests use the PKI bosun
//! itself makes.

use std::path::Path;
use std::process::Command;

fn openssl(arguments: &[&str]) {
    let output = Command::new("openssl")
        .args(arguments)
        .output()
        .unwrap_or_else(|error| panic!("run openssl: {error}"));
    assert!(
        output.status.success(),
        "openssl {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes `ca.{crt,key}`, `server.{crt,key}` (SANs: localhost and `addresses`) and `healthcheck-client.{crt,key}`
/// into `directory`.
pub fn make(directory: &Path, addresses: &[&str]) {
    std::fs::create_dir_all(directory).expect("pki directory");
    let path = |name: &str| directory.join(name).display().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &path("ca.key"),
        "-out",
        &path("ca.crt"),
        "-days",
        "2",
        "-subj",
        "/CN=etcd-ca",
    ]);
    let sans: Vec<String> = addresses
        .iter()
        .map(|address| format!("IP:{address}"))
        .collect();
    let extensions = directory.join("extensions.cnf");
    std::fs::write(
        &extensions,
        format!(
            "[server]\nsubjectAltName=DNS:localhost,{}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n\
             [client]\nextendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
            sans.join(",")
        ),
    )
    .expect("extensions");
    for (name, section, subject) in [
        ("server", "server", "/CN=etcd-server"),
        (
            "healthcheck-client",
            "client",
            "/O=system:masters/CN=kube-etcd-healthcheck-client",
        ),
    ] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &path(&format!("{name}.key")),
            "-out",
            &path(&format!("{name}.csr")),
            "-subj",
            subject,
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &path(&format!("{name}.csr")),
            "-CA",
            &path("ca.crt"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-out",
            &path(&format!("{name}.crt")),
            "-days",
            "2",
            "-extfile",
            &extensions.display().to_string(),
            "-extensions",
            section,
        ]);
    }
}
