//! The etcd static-pod manifest as bosun reads and edits it.
//!
//! Assumption: the manifest has kubeadm's shape, one flag per command line item (`- --data-dir=/var/lib/etcd`) and
//! the data directory as a `hostPath` volume. bosun edits it line by line, so comments, order and formatting are kept
//! and the diff shows exactly what a restore changed.

use std::path::PathBuf;

/// A flag of the etcd command line in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: String,
}

/// The etcd static-pod manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdManifest {
    pub text: String,
}

/// Where to reach the local member and how to prove who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub endpoints: Vec<String>,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

fn parse_flag_line(line: &str) -> Option<(usize, Flag)> {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    let item = trimmed.strip_prefix("- ")?.trim();
    let item = item.trim_matches(|c| c == '"' || c == '\'');
    let flag = item.strip_prefix("--")?;
    let (name, value) = flag.split_once('=').unwrap_or((flag, "true"));
    Some((
        indent,
        Flag {
            name: name.to_owned(),
            value: value.to_owned(),
        },
    ))
}

impl EtcdManifest {
    pub fn new(text: impl Into<String>) -> Self {
        EtcdManifest { text: text.into() }
    }

    /// Every `--name=value` item of the command, in order.
    pub fn flags(&self) -> Vec<Flag> {
        self.text
            .lines()
            .filter_map(parse_flag_line)
            .map(|(_, flag)| flag)
            .collect()
    }

    pub fn flag(&self, name: &str) -> Option<String> {
        self.flags()
            .into_iter()
            .find(|flag| flag.name == name)
            .map(|flag| flag.value)
    }

    /// The member's name (`--name`).
    pub fn member_name(&self) -> Option<String> {
        self.flag("name")
    }

    /// The data directory (`--data-dir`, etcd's default `/var/lib/etcd` is kubeadm's too).
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(
            self.flag("data-dir")
                .unwrap_or_else(|| "/var/lib/etcd".to_owned()),
        )
    }

    /// The quota (`--quota-backend-bytes`), etcd's default of 2 GiB when not set.
    pub fn quota_bytes(&self) -> u64 {
        self.flag("quota-backend-bytes")
            .and_then(|value| value.parse().ok())
            .filter(|quota| *quota > 0)
            .unwrap_or(2 * 1024 * 1024 * 1024)
    }

    /// Client endpoints of the local member: loopback ones from `--listen-client-urls` first, then the advertised.
    pub fn client_endpoints(&self) -> Vec<String> {
        let mut endpoints: Vec<String> = Vec::new();
        let listen = self.flag("listen-client-urls").unwrap_or_default();
        let advertise = self.flag("advertise-client-urls").unwrap_or_default();
        let mut candidates: Vec<&str> = listen.split(',').collect();
        candidates.sort_by_key(|url| {
            !(url.contains("://127.") || url.contains("://[::1]") || url.contains("localhost"))
        });
        candidates.extend(advertise.split(','));
        for url in candidates {
            let url = url.trim();
            if !url.is_empty()
                && !url.contains("0.0.0.0")
                && !endpoints.iter().any(|known| known == url)
            {
                endpoints.push(url.to_owned());
            }
        }
        endpoints
    }

    /// The client settings kubeadm's layout implies: the CA from `--trusted-ca-file`, and the health-check client
    /// certificate next to it, or the API server's etcd client certificate in the PKI directory above.
    pub fn client_settings(
        &self,
        exists: &dyn Fn(&std::path::Path) -> bool,
    ) -> Option<ClientSettings> {
        let ca_file = PathBuf::from(self.flag("trusted-ca-file")?);
        let etcd_pki = ca_file.parent()?.to_path_buf();
        let pki = etcd_pki
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| etcd_pki.clone());
        let candidates = [
            (
                etcd_pki.join("healthcheck-client.crt"),
                etcd_pki.join("healthcheck-client.key"),
            ),
            (
                pki.join("apiserver-etcd-client.crt"),
                pki.join("apiserver-etcd-client.key"),
            ),
        ];
        let (cert_file, key_file) = candidates
            .iter()
            .find(|(cert, key)| exists(cert) && exists(key))
            .cloned()
            .unwrap_or_else(|| candidates[0].clone());
        Some(ClientSettings {
            endpoints: self.client_endpoints(),
            ca_file,
            cert_file,
            key_file,
        })
    }

    /// The manifest with `--flag` set to `value`: replaced where it is, or added after the last flag.
    pub fn with_flag(&self, name: &str, value: &str) -> EtcdManifest {
        let mut lines: Vec<String> = self.text.lines().map(str::to_owned).collect();
        let mut last_flag: Option<(usize, usize)> = None;
        let mut replaced = false;
        for (index, line) in lines.iter_mut().enumerate() {
            if let Some((indent, flag)) = parse_flag_line(line) {
                last_flag = Some((index, indent));
                if flag.name == name {
                    *line = format!("{}- --{name}={value}", " ".repeat(indent));
                    replaced = true;
                }
            }
        }
        if !replaced {
            if let Some((index, indent)) = last_flag {
                lines.insert(
                    index + 1,
                    format!("{}- --{name}={value}", " ".repeat(indent)),
                );
            }
        }
        let mut text = lines.join("\n");
        if self.text.ends_with('\n') {
            text.push('\n');
        }
        EtcdManifest { text }
    }

    /// The manifest with the data directory moved: `--data-dir`, and the `path:`/`mountPath:` lines naming it.
    pub fn with_data_dir(&self, new: &std::path::Path) -> EtcdManifest {
        let old = self.data_dir();
        let old_text = old.display().to_string();
        let new_text = new.display().to_string();
        let moved = self.with_flag("data-dir", &new_text);
        let mut lines: Vec<String> = Vec::new();
        for line in moved.text.lines() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let mut replaced = None;
            for key in ["path:", "mountPath:", "- path:", "- mountPath:"] {
                if let Some(rest) = trimmed.strip_prefix(key) {
                    let value = rest.trim().trim_matches(|c| c == '"' || c == '\'');
                    if value == old_text || value == format!("{old_text}/") {
                        replaced = Some(format!("{indent}{key} {new_text}"));
                    }
                }
            }
            lines.push(replaced.unwrap_or_else(|| line.to_owned()));
        }
        let mut text = lines.join("\n");
        if moved.text.ends_with('\n') {
            text.push('\n');
        }
        EtcdManifest { text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const KUBEADM_SHAPED: &str = "apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.0.5:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --data-dir=/var/lib/etcd
    - --initial-cluster=node-1=https://10.0.0.5:2380
    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.5:2379
    - --name=node-1
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:3.5.21-0
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
  volumes:
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
";

    #[test]
    fn flags_endpoints_and_certificates_come_from_a_kubeadm_manifest() {
        let manifest = EtcdManifest::new(KUBEADM_SHAPED);
        assert_eq!(manifest.member_name().as_deref(), Some("node-1"));
        assert_eq!(manifest.data_dir(), PathBuf::from("/var/lib/etcd"));
        assert_eq!(manifest.quota_bytes(), 2 << 30);
        assert_eq!(
            manifest.client_endpoints(),
            ["https://127.0.0.1:2379", "https://10.0.0.5:2379"]
        );
        let only_apiserver_client =
            |path: &Path| path.to_string_lossy().contains("apiserver-etcd-client");
        let settings = manifest
            .client_settings(&only_apiserver_client)
            .expect("settings");
        assert_eq!(
            settings.ca_file,
            PathBuf::from("/etc/kubernetes/pki/etcd/ca.crt")
        );
        assert_eq!(
            settings.cert_file,
            PathBuf::from("/etc/kubernetes/pki/apiserver-etcd-client.crt")
        );
        let everything = |_: &Path| true;
        assert_eq!(
            manifest
                .client_settings(&everything)
                .expect("settings")
                .cert_file,
            PathBuf::from("/etc/kubernetes/pki/etcd/healthcheck-client.crt")
        );
    }

    #[test]
    fn moving_the_data_dir_changes_only_the_lines_that_name_it() {
        let manifest = EtcdManifest::new(KUBEADM_SHAPED)
            .with_data_dir(Path::new("/var/lib/etcd-restored-1"))
            .with_flag("initial-cluster-token", "bosun-restore-abc");
        // Undoing the two edits by hand gives back the original byte for byte: nothing else was touched.
        let undone: Vec<&str> = manifest
            .text
            .lines()
            .filter(|line| !line.contains("initial-cluster-token"))
            .collect();
        let undone = undone
            .join("\n")
            .replace("/var/lib/etcd-restored-1", "/var/lib/etcd")
            + "\n";
        assert_eq!(undone, KUBEADM_SHAPED);
        assert!(manifest
            .text
            .contains("    - mountPath: /var/lib/etcd-restored-1\n"));
        assert!(manifest
            .text
            .contains("      path: /var/lib/etcd-restored-1\n"));
        assert_eq!(
            manifest.flag("initial-cluster-token").as_deref(),
            Some("bosun-restore-abc")
        );
        assert_eq!(
            manifest.text.lines().count(),
            KUBEADM_SHAPED.lines().count() + 1
        );
    }
}
