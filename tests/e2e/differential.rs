//! The differential test (docs/testing.md): real kubeadm and the real `bosun` binary, given the same kubeadm
//! configuration, write the same node files — the same certificate set (subjects, issuers, SANs, key usages, basic
//! constraints, key types), the same kubeconfigs (clusters, users and contexts, with the embedded credentials
//! compared by what they are), and the same static-pod manifests (flags, image, probes, volumes, mounts, resources,
//! as Kubernetes objects, so key order and list order do not matter where Kubernetes ignores them) — with the same
//! file modes.
//!
//! Every difference that remains is listed in [`KNOWN_DIFFERENCES`] with its reason, and in docs/testing.md. An
//! unlisted difference fails the test, and so does a listed one that no longer occurs, so the list stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use bosun_config::yaml::Value;

use crate::harness::binaries::Binaries;
use crate::harness::sandbox::Sandbox;
use crate::support::TempRoot;
use crate::tier1::{bosun_writes_root, built_version, kubeadm_config, kubeadm_writes_root};

/// Differences between kubeadm's files and bosun's that are known, each with its reason (also in docs/testing.md).
/// Keys are the difference lines [`compare_roots`] reports.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

#[test]
fn kubeadm_and_bosun_write_equivalent_files() {
    let Some(binaries) = Binaries::require(
        "differential::kubeadm_and_bosun_write_equivalent_files",
        &["kubeadm"],
    ) else {
        return;
    };
    let sandbox = Sandbox::new("differential");
    let kubeadm_root = TempRoot::new();
    let bosun_root = TempRoot::new();
    let version = built_version(&binaries);
    kubeadm_writes_root(&sandbox, &binaries, &kubeadm_root);
    bosun_writes_root(
        &sandbox,
        &bosun_root,
        &kubeadm_config(&version, sandbox.hostname()),
    );

    let differences = compare_roots(kubeadm_root.path(), bosun_root.path());
    let known: BTreeMap<&str, &str> = KNOWN_DIFFERENCES.iter().copied().collect();
    let unexpected: Vec<&String> = differences
        .iter()
        .filter(|difference| !known.contains_key(difference.as_str()))
        .collect();
    let gone: Vec<&&str> = known
        .keys()
        .filter(|known| !differences.iter().any(|difference| difference == *known))
        .collect();
    assert!(
        unexpected.is_empty() && gone.is_empty(),
        "kubeadm and bosun wrote different files.\n\
         Differences that are not listed in KNOWN_DIFFERENCES (fix them, or list them with the reason here and \
         in docs/testing.md):\n  {}\n\
         Listed differences that no longer occur (remove them from the list and the docs):\n  {}",
        unexpected
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        gone.iter().map(|s| **s).collect::<Vec<_>>().join("\n  ")
    );
}

/// Every difference between two node roots' /etc/kubernetes, one line each.
pub fn compare_roots(kubeadm: &Path, bosun: &Path) -> Vec<String> {
    let mut differences = Vec::new();
    let theirs = files(&kubeadm.join("etc/kubernetes"));
    let ours = files(&bosun.join("etc/kubernetes"));
    for path in theirs.keys().filter(|path| !ours.contains_key(*path)) {
        differences.push(format!("{path}: written by kubeadm only"));
    }
    for path in ours.keys().filter(|path| !theirs.contains_key(*path)) {
        differences.push(format!("{path}: written by bosun only"));
    }
    for (path, mode) in &theirs {
        let Some(our_mode) = ours.get(path) else {
            continue;
        };
        if mode != our_mode {
            differences.push(format!(
                "{path}: mode: kubeadm {mode:04o}, bosun {our_mode:04o}"
            ));
        }
        let kubeadm_file = kubeadm.join("etc/kubernetes").join(path);
        let bosun_file = bosun.join("etc/kubernetes").join(path);
        let (theirs, ours) = if path.ends_with(".crt") {
            (certificate(&kubeadm_file), certificate(&bosun_file))
        } else if path.ends_with(".key") {
            (private_key(&kubeadm_file), private_key(&bosun_file))
        } else if path.ends_with(".pub") {
            (public_key(&kubeadm_file), public_key(&bosun_file))
        } else if path.ends_with(".conf") {
            (kubeconfig(&kubeadm_file), kubeconfig(&bosun_file))
        } else if path.starts_with("manifests/") {
            (manifest(&kubeadm_file), manifest(&bosun_file))
        } else {
            differences.push(format!(
                "{path}: the differential test does not know this file"
            ));
            continue;
        };
        compare_values(path, "", &theirs, &ours, &mut differences);
    }
    differences.sort();
    differences
}

/// Relative path → mode of every file under `directory`.
fn files(directory: &Path) -> BTreeMap<String, u32> {
    let mut found = BTreeMap::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let metadata = entry.metadata().expect("metadata");
            if metadata.is_dir() {
                pending.push(path);
            } else {
                let relative = path
                    .strip_prefix(directory)
                    .expect("under the directory")
                    .display()
                    .to_string();
                found.insert(relative, metadata.permissions().mode() & 0o7777);
            }
        }
    }
    found
}

fn openssl(arguments: &[&str], input: Option<&[u8]>) -> String {
    use std::io::Write as _;
    let mut child = Command::new("openssl")
        .args(arguments)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run openssl");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(input) = input {
        stdin.write_all(input).expect("write to openssl");
    }
    drop(stdin);
    let output = child.wait_with_output().expect("openssl output");
    assert!(
        output.status.success(),
        "openssl {} failed: {}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a certificate is, field by field, as openssl reads it (validity dates and serials left out).
fn certificate_fields(pem: &[u8]) -> Value {
    let mut fields = bosun_config::yaml::Mapping::new();
    let mut put = |name: &str, value: String| {
        fields.insert(Value::String(name.to_owned()), Value::String(value));
    };
    let read = |arguments: &[&str]| {
        let mut all = vec!["x509", "-noout", "-nameopt", "RFC2253"];
        all.extend_from_slice(arguments);
        openssl(&all, Some(pem)).trim().to_owned()
    };
    put("subject", read(&["-subject"]));
    put("issuer", read(&["-issuer"]));
    for extension in [
        "subjectAltName",
        "keyUsage",
        "extendedKeyUsage",
        "basicConstraints",
    ] {
        let text = read(&["-ext", extension]);
        // "X509v3 Subject Alternative Name: critical\n    DNS:a, IP Address:1.2.3.4": order of entries ignored
        let (header, body) = text.split_once('\n').unwrap_or((&text, ""));
        let mut entries: Vec<&str> = body
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        entries.sort_unstable();
        let critical = if header.contains("critical") {
            " (critical)"
        } else {
            ""
        };
        put(
            extension,
            if text.is_empty() {
                "absent".to_owned()
            } else {
                format!("{}{critical}", entries.join(", "))
            },
        );
    }
    let text = openssl(&["x509", "-noout", "-text"], Some(pem));
    let key = text
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.starts_with("Public Key Algorithm:")
                || line.starts_with("Public-Key:")
                || line.starts_with("ASN1 OID:")
        })
        .collect::<Vec<_>>()
        .join("; ");
    put("public key", key);
    let signature = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("Signature Algorithm:"))
        .unwrap_or("")
        .to_owned();
    put("signature", signature);
    Value::Mapping(fields)
}

fn certificate(path: &Path) -> Value {
    certificate_fields(&std::fs::read(path).expect("read certificate"))
}

/// A private key by its type and size.
fn private_key_fields(pem: &[u8]) -> Value {
    let text = openssl(&["pkey", "-noout", "-text"], Some(pem));
    let first = text.lines().next().unwrap_or("").trim();
    // "Private-Key: (2048 bit, 2 primes)" or "Private-Key: (256 bit)" + "ASN1 OID: prime256v1"
    let curve = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("ASN1 OID:"))
        .unwrap_or("");
    Value::String(format!("{first} {curve}").trim().to_owned())
}

fn private_key(path: &Path) -> Value {
    private_key_fields(&std::fs::read(path).expect("read key"))
}

fn public_key(path: &Path) -> Value {
    let text = openssl(
        &["pkey", "-pubin", "-noout", "-text"],
        Some(&std::fs::read(path).expect("read public key")),
    );
    Value::String(text.lines().next().unwrap_or("").trim().to_owned())
}

/// A kubeconfig with its embedded credentials replaced by what they are.
fn kubeconfig(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read kubeconfig");
    let mut value = bosun_config::yaml::value_from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()));
    describe_credentials(&mut value);
    value
}

fn describe_credentials(value: &mut Value) {
    match value {
        Value::Mapping(mapping) => {
            for (key, entry) in mapping.iter_mut() {
                let key = key.as_str().unwrap_or("");
                let data = entry.as_str().map(|data| {
                    openssl(&["base64", "-d", "-A"], Some(data.as_bytes())).into_bytes()
                });
                match (key, data) {
                    ("certificate-authority-data" | "client-certificate-data", Some(pem)) => {
                        *entry = certificate_fields(&pem);
                    }
                    ("client-key-data", Some(pem)) => *entry = private_key_fields(&pem),
                    _ => describe_credentials(entry),
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(describe_credentials),
        _ => {}
    }
}

/// A static-pod manifest, with the container command's flags made a mapping (kubeadm sorts them; their order has
/// no meaning to the components).
fn manifest(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read manifest");
    let mut value = bosun_config::yaml::value_from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()));
    if let Some(containers) = value
        .get_mut("spec")
        .and_then(|spec| spec.get_mut("containers"))
        .and_then(Value::as_sequence_mut)
    {
        for container in containers {
            let Some(command) = container.get("command").and_then(Value::as_sequence) else {
                continue;
            };
            let mut flags = bosun_config::yaml::Mapping::new();
            for (index, word) in command.iter().enumerate() {
                let word = word.as_str().unwrap_or("");
                let (name, value) = if index == 0 {
                    ("(program)", word)
                } else {
                    word.split_once('=').unwrap_or((word, "(no value)"))
                };
                flags.insert(
                    Value::String(name.to_owned()),
                    Value::String(value.to_owned()),
                );
            }
            container["command"] = Value::Mapping(flags);
        }
    }
    value
}

/// Lists of objects that Kubernetes keys by name, whose order does not matter.
fn keyed_by_name(items: &[Value]) -> Option<BTreeMap<String, &Value>> {
    items
        .iter()
        .map(|item| Some((item.get("name")?.as_str()?.to_owned(), item)))
        .collect()
}

fn compare_values(file: &str, path: &str, theirs: &Value, ours: &Value, out: &mut Vec<String>) {
    match (theirs, ours) {
        (Value::Mapping(theirs), Value::Mapping(ours)) => {
            let keys: BTreeSet<String> = theirs
                .keys()
                .chain(ours.keys())
                .map(|key| {
                    key.as_str()
                        .map_or_else(|| format!("{key:?}"), str::to_owned)
                })
                .collect();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (theirs.get(key.as_str()), ours.get(key.as_str())) {
                    (Some(a), Some(b)) => compare_values(file, &child, a, b, out),
                    (Some(a), None) => out.push(format!(
                        "{file}: {child}: kubeadm {}, bosun absent",
                        show(a)
                    )),
                    (None, Some(b)) => out.push(format!(
                        "{file}: {child}: kubeadm absent, bosun {}",
                        show(b)
                    )),
                    (None, None) => {}
                }
            }
        }
        (Value::Sequence(theirs_items), Value::Sequence(ours_items)) => {
            if let (Some(theirs), Some(ours)) =
                (keyed_by_name(theirs_items), keyed_by_name(ours_items))
            {
                let names: BTreeSet<&String> = theirs.keys().chain(ours.keys()).collect();
                for name in names {
                    let child = format!("{path}[{name}]");
                    match (theirs.get(name), ours.get(name)) {
                        (Some(a), Some(b)) => compare_values(file, &child, a, b, out),
                        (Some(a), None) => out.push(format!(
                            "{file}: {child}: kubeadm {}, bosun absent",
                            show(a)
                        )),
                        (None, Some(b)) => out.push(format!(
                            "{file}: {child}: kubeadm absent, bosun {}",
                            show(b)
                        )),
                        (None, None) => {}
                    }
                }
            } else if theirs_items.len() != ours_items.len() {
                out.push(format!(
                    "{file}: {path}: kubeadm {}, bosun {}",
                    show(theirs),
                    show(ours)
                ));
            } else {
                for (index, (a, b)) in theirs_items.iter().zip(ours_items).enumerate() {
                    compare_values(file, &format!("{path}[{index}]"), a, b, out);
                }
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!(
            "{file}: {path}: kubeadm {}, bosun {}",
            show(a),
            show(b)
        )),
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        other => bosun_config::yaml::to_string(other)
            .map(|text| text.trim().replace('\n', " "))
            .unwrap_or_else(|_| format!("{other:?}")),
    }
}
