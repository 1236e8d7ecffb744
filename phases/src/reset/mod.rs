//! The `reset` workflow: undo what `bosun init` and `bosun join` did to a node, phase by phase.
//!
//! Phases, in order:
//! - `preflight`: what kind of node this is (control plane with a stacked etcd member, control plane with external
//!   etcd, worker, or nothing left to reset), and the user's confirmation (`--force` skips it; a dry run needs none).
//! - `delete-node` (only with `--delete-node`): delete this node's Node object through the API ([`node`]).
//! - `remove-etcd-member`: on a node with a local etcd member, remove that member from its cluster through the etcd
//!   API ([`member`]).
//! - `cleanup-node`: `kubelet` (stop it, remove the service bosun installed), `containers` (stop and remove the
//!   Kubernetes containers of the runtime), `unmount` (mounts under `/var/lib/kubelet`), `files` (etcd data,
//!   static-pod manifests, kubelet state, PKI, kubeconfigs, CNI configuration) and `schedules` (the certificate
//!   renewal timer and the etcd backup schedule). See [`cleanup`].
//!
//! Files on a node this module removes: the contents of `/etc/kubernetes/manifests`, `/var/lib/kubelet`, the
//! certificates directory (`certificatesDir`, default `/etc/kubernetes/pki`), the etcd data directory (from the etcd
//! manifest), `/etc/cni/net.d` and, with `--cleanup-tmp-dir`, `/etc/kubernetes/tmp`; the kubeconfigs
//! `/etc/kubernetes/{admin,super-admin,kubelet,bootstrap-kubelet,controller-manager,scheduler}.conf`; the kubelet
//! service definition and drop-in; `/etc/systemd/system/bosun-certs-renew.{service,timer}`,
//! `/etc/cron.d/bosun-certs-renew`, `/etc/systemd/system/bosun-etcd-backup.{service,timer}`,
//! `/etc/cron.d/bosun-etcd-backup`. It reads the static-pod manifests and `/var/lib/kubelet/kubeadm-flags.env`
//! before the run ([`survey`]).
//!
//! Guarantees: nothing changes before the confirmation; a dry run changes nothing on the node nor in etcd. Each
//! phase removes only what is there and reports it, so a reset that failed half-way is finished by running it again.
//! The etcd member is removed before the files that identify it (its manifest and certificates) go.
//! Assumptions: the node was set up with kubeadm's layout (bosun's or kubeadm's own). Caveats: iptables, nftables
//! and IPVS rules, the CNI plugin's own state (`/var/lib/cni`, network interfaces), `$HOME/.kube/config`, the Node
//! object and other cluster-side objects stay; [`LEFT_BEHIND`] says how to clean them.

pub mod cleanup;
pub mod member;
pub mod node;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError, Workflow};
use crate::etcd::manifest::EtcdManifest;
use crate::etcd::{EtcdClient, EtcdError};
use crate::host::{Files, HostError, UnmountFlags};
use crate::paths::{self, NodePaths};

/// kubeadm's default certificates directory; cleaning another one is worth a warning.
pub const DEFAULT_CERTIFICATES_DIR: &str = "/etc/kubernetes/pki";
/// The default etcd data directory.
pub const DEFAULT_ETCD_DATA_DIR: &str = "/var/lib/etcd";

/// What reset leaves on the node, and how to clean it; printed at the end of a reset.
pub const LEFT_BEHIND: &str = "\
The reset leaves what bosun did not make or cannot know about; clean it by hand if you need to:
  - iptables, nftables and IPVS rules of kube-proxy and the CNI plugin:
      iptables-save | grep -v KUBE- | grep -v CNI- | iptables-restore
      nft flush ruleset    (only if nothing else on the node uses nftables)
      ipvsadm --clear      (if kube-proxy ran in IPVS mode)
  - the CNI plugin's own state, IP allocations and interfaces:
      rm -rf /var/lib/cni; ip link delete cni0
  - the kubeconfig of anyone who copied admin.conf:
      rm $HOME/.kube/config
  - the runtime's configuration (/etc/containerd/config.toml, /etc/crictl.yaml) and the kernel settings
    (/etc/sysctl.d/99-kubernetes.conf, /etc/modules-load.d/kubernetes.conf), ready for the next init or join
  - bosun's journal, logs and etcd backups: /var/lib/bosun, /var/log/bosun
  - the Node object and this node's other objects in the cluster, from another node:
      kubectl delete node <name>";

/// How the user agreed to the reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// `--force` (or `force: true` in the ResetConfiguration).
    Forced,
    /// The user answered yes at the prompt.
    Confirmed,
    /// A dry run changes nothing and needs no confirmation.
    DryRun,
    /// Nobody could be asked: stdin is not a terminal and there is no `--force`.
    NotInteractive,
}

/// What kind of node this is, judged from the files init and join leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// Static-pod manifests of the control plane with an etcd manifest: a stacked etcd member.
    ControlPlaneStackedEtcd,
    /// Control-plane manifests without an etcd manifest: external etcd.
    ControlPlaneExternalEtcd,
    /// Control-plane credentials (admin.conf, the CA key) without manifests: a control-plane node whose reset
    /// stopped half-way, or whose manifests were removed by hand.
    ControlPlanePartlyReset,
    /// A kubelet configuration or kubeconfig but no control-plane manifests or credentials.
    Worker,
    /// None of the files init or join write: nothing left but perhaps leftovers of an interrupted reset.
    Clean,
}

impl NodeKind {
    pub fn describe(self) -> &'static str {
        match self {
            NodeKind::ControlPlaneStackedEtcd => {
                "a control-plane node with a local (stacked) etcd member"
            }
            NodeKind::ControlPlaneExternalEtcd => "a control-plane node with external etcd",
            NodeKind::ControlPlanePartlyReset => {
                "a control-plane node partly reset (credentials left, no static-pod manifests)"
            }
            NodeKind::Worker => "a worker node",
            NodeKind::Clean => "not set up (no manifests, kubelet settings or kubeconfigs)",
        }
    }
}

/// The local etcd member, as its static-pod manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalMember {
    /// `--name`.
    pub name: String,
    /// `--initial-advertise-peer-urls`: how the cluster knows this member.
    pub peer_urls: Vec<String>,
    /// Where to reach the member (loopback first).
    pub endpoints: Vec<String>,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// What the node has, read before the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSurvey {
    pub kind: NodeKind,
    /// The static-pod manifests present.
    pub manifests: Vec<PathBuf>,
    /// The local etcd member, when there is an etcd manifest.
    pub etcd_member: Option<LocalMember>,
    /// The etcd data directory: the manifest's `--data-dir`, else the configuration's.
    pub etcd_data_dir: PathBuf,
    /// The certificates directory the API server's manifest uses (`--client-ca-file`'s directory), if it says.
    pub certificates_dir_from_manifest: Option<PathBuf>,
    /// The CRI socket the kubelet was started with (`--container-runtime-endpoint` in kubeadm-flags.env), if any.
    pub cri_socket_from_kubelet: Option<String>,
    /// The node's name: kubelet.conf's `system:node:NAME` user, else the etcd member's name.
    pub node_name: Option<String>,
}

/// The value of `--name=value` in a manifest's or flags file's text.
fn flag_value(text: &str, name: &str) -> Option<String> {
    let prefix = format!("--{name}=");
    text.split(|c: char| c.is_whitespace() || c == '"')
        .find_map(|word| word.strip_prefix(&prefix).map(str::to_owned))
        .filter(|value| !value.is_empty())
}

/// Reads what the node has: manifests, the etcd member, kubelet settings. Changes nothing.
pub fn survey(files: &dyn Files, configured_etcd_data_dir: &Path) -> Result<NodeSurvey, HostError> {
    let mut manifests = Vec::new();
    for component in paths::STATIC_POD_COMPONENTS {
        let path = NodePaths::manifest(component);
        if files.exists(&path)? {
            manifests.push(path);
        }
    }
    let etcd_manifest = files
        .read(&NodePaths::manifest("etcd"))?
        .map(|bytes| EtcdManifest::new(String::from_utf8_lossy(&bytes).into_owned()));
    let exists = |path: &Path| files.exists(path).unwrap_or(false);
    let etcd_member = etcd_manifest.as_ref().map(|manifest| {
        let settings = manifest.client_settings(&exists);
        let pki = PathBuf::from(DEFAULT_CERTIFICATES_DIR).join("etcd");
        LocalMember {
            name: manifest.member_name().unwrap_or_default(),
            peer_urls: manifest
                .flag("initial-advertise-peer-urls")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect(),
            endpoints: manifest.client_endpoints(),
            ca_file: settings
                .as_ref()
                .map(|settings| settings.ca_file.clone())
                .unwrap_or_else(|| pki.join("ca.crt")),
            cert_file: settings
                .as_ref()
                .map(|settings| settings.cert_file.clone())
                .unwrap_or_else(|| pki.join("healthcheck-client.crt")),
            key_file: settings
                .as_ref()
                .map(|settings| settings.key_file.clone())
                .unwrap_or_else(|| pki.join("healthcheck-client.key")),
        }
    });
    let etcd_data_dir = etcd_manifest
        .as_ref()
        .map(EtcdManifest::data_dir)
        .unwrap_or_else(|| configured_etcd_data_dir.to_path_buf());
    // kubeadm's layout puts the API server's CA and serving certificate in certificatesDir; a CA elsewhere (a
    // system bundle) does not make its directory the PKI to clean.
    let certificates_dir_from_manifest = files
        .read(&NodePaths::manifest("kube-apiserver"))?
        .and_then(|bytes| {
            let text = String::from_utf8_lossy(&bytes);
            let directory_of = |flag: &str| {
                flag_value(&text, flag)
                    .and_then(|file| Path::new(&file).parent().map(Path::to_path_buf))
            };
            let ca = directory_of("client-ca-file")?;
            (directory_of("tls-cert-file").as_ref() == Some(&ca)).then_some(ca)
        });
    let cri_socket_from_kubelet =
        files
            .read(Path::new(paths::KUBELET_FLAGS_ENV))?
            .and_then(|bytes| {
                flag_value(
                    &String::from_utf8_lossy(&bytes),
                    "container-runtime-endpoint",
                )
            });
    let node_name = files
        .read(Path::new(paths::KUBELET_CONF))?
        .and_then(|bytes| {
            String::from_utf8_lossy(&bytes)
                .split_whitespace()
                .find_map(|word| word.strip_prefix("system:node:").map(str::to_owned))
        })
        .filter(|name| !name.is_empty())
        .or_else(|| {
            etcd_member
                .as_ref()
                .map(|member| member.name.clone())
                .filter(|name| !name.is_empty())
        });
    let certificates_dir = certificates_dir_from_manifest
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CERTIFICATES_DIR));
    let control_plane = manifests
        .iter()
        .any(|path| path != &NodePaths::manifest("etcd"));
    let kind = if etcd_member.is_some() {
        NodeKind::ControlPlaneStackedEtcd
    } else if control_plane {
        NodeKind::ControlPlaneExternalEtcd
    } else if files.exists(Path::new(paths::ADMIN_CONF))?
        || files.exists(Path::new(paths::SUPER_ADMIN_CONF))?
        || files.exists(&certificates_dir.join("ca.key"))?
    {
        NodeKind::ControlPlanePartlyReset
    } else if files.exists(Path::new(paths::KUBELET_CONF))?
        || files.exists(Path::new(paths::BOOTSTRAP_KUBELET_CONF))?
        || files.exists(Path::new(paths::KUBELET_CONFIG))?
    {
        NodeKind::Worker
    } else {
        NodeKind::Clean
    };
    Ok(NodeSurvey {
        kind,
        manifests,
        etcd_member,
        etcd_data_dir,
        certificates_dir_from_manifest,
        cri_socket_from_kubelet,
        node_name,
    })
}

/// How to reach etcd: endpoints, TLS material (PEM), and a timeout per request.
#[derive(Clone)]
pub struct EtcdConnection {
    pub endpoints: Vec<String>,
    pub ca: Option<Vec<u8>>,
    pub cert: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
    pub timeout: Duration,
}

/// Makes etcd clients; the binary implements it with etcd-client.
pub trait EtcdConnector: Send + Sync {
    fn connect(&self, connection: &EtcdConnection) -> Result<Box<dyn EtcdClient>, EtcdError>;
}

/// Everything the `reset` phases read.
pub struct ResetData {
    pub survey: NodeSurvey,
    /// The certificates directory to clean: `--cert-dir`, else the ResetConfiguration's, else the API server
    /// manifest's, else the default.
    pub certificates_dir: PathBuf,
    /// The CRI socket whose containers go: `--cri-socket`, else the ResetConfiguration's, else the kubelet's, else
    /// the detected one.
    pub cri_socket: String,
    /// Also clean `/etc/kubernetes/tmp` (`--cleanup-tmp-dir`).
    pub cleanup_tmp_dir: bool,
    pub confirmation: Confirmation,
    pub unmount_flags: UnmountFlags,
    /// Preflight checks whose failures become warnings, lower-cased (`all` for every check).
    pub ignore_preflight_errors: BTreeSet<String>,
    /// Whether bosun runs as root.
    pub running_as_root: bool,
    /// The etcd API, for `remove-etcd-member`.
    pub etcd: Option<Arc<dyn EtcdConnector>>,
    /// Delete the Node object (`--delete-node`).
    pub delete_node: bool,
    /// The Node object's name (`--node-name`, else [`NodeSurvey::node_name`]).
    pub node_name: Option<String>,
    /// The Kubernetes API, for `delete-node`.
    pub cluster: Option<Arc<dyn crate::host::cluster::ClusterConnector>>,
    /// Per-request etcd timeout (`timeouts.etcdAPICall`, 2m by default; a short one is enough for a reachable member).
    pub etcd_timeout: Duration,
}

impl ResetData {
    /// Data for a node surveyed as `survey`, with the defaults of everything else.
    pub fn new(survey: NodeSurvey) -> Self {
        let certificates_dir = survey
            .certificates_dir_from_manifest
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CERTIFICATES_DIR));
        let cri_socket = survey
            .cri_socket_from_kubelet
            .clone()
            .unwrap_or_else(|| crate::node::runtime::KNOWN_SOCKETS[0].1.to_owned());
        let node_name = survey.node_name.clone();
        ResetData {
            survey,
            delete_node: false,
            node_name,
            cluster: None,
            certificates_dir,
            cri_socket,
            cleanup_tmp_dir: false,
            confirmation: Confirmation::NotInteractive,
            unmount_flags: UnmountFlags::default(),
            ignore_preflight_errors: BTreeSet::new(),
            running_as_root: true,
            etcd: None,
            etcd_timeout: Duration::from_secs(10),
        }
    }

    pub fn ignores_preflight_error(&self, name: &str) -> bool {
        self.ignore_preflight_errors.contains("all")
            || self
                .ignore_preflight_errors
                .contains(&name.to_ascii_lowercase())
    }
}

/// Parses ResetConfiguration `unmountFlags`.
pub fn unmount_flags(names: &[String]) -> Result<UnmountFlags, String> {
    let mut flags = UnmountFlags::default();
    for name in names {
        match name.trim() {
            "MNT_FORCE" => flags.force = true,
            "MNT_DETACH" => flags.detach = true,
            "MNT_EXPIRE" => flags.expire = true,
            "UMOUNT_NOFOLLOW" => flags.no_follow = true,
            other => {
                return Err(format!(
                    "unknown unmount flag {other:?}; the valid ones are MNT_FORCE, MNT_DETACH, MNT_EXPIRE and UMOUNT_NOFOLLOW"
                ))
            }
        }
    }
    Ok(flags)
}

fn preflight_phase() -> Phase<ResetData> {
    Phase::new("preflight", "Say what kind of node this is and confirm the reset")
        .long_about(
            "Find out from the files on the node whether it is a control-plane node (with a stacked etcd member or \
             external etcd) or a worker, check that bosun runs as root, and ask for confirmation unless --force is \
             given. Without a terminal on stdin, reset refuses unless --force is given.",
        )
        .run(|context: &mut PhaseCtx<'_, ResetData>| {
            let data = context.data;
            context.info(format!(
                "this node ({}) is {}",
                context.host.description,
                data.survey.kind.describe()
            ));
            if !data.running_as_root {
                let message = "bosun reset must run as root: it stops services and removes files under /etc and /var";
                if data.ignores_preflight_error("IsPrivilegedUser") {
                    context.warn(format!("{message} (ignored: IsPrivilegedUser)"));
                } else {
                    return Err(PhaseError::Preflight {
                        message: message.to_owned(),
                        hint: Some(
                            "run it with sudo, or --ignore-preflight-errors=IsPrivilegedUser for a scratch --root"
                                .to_owned(),
                        ),
                    });
                }
            }
            match data.confirmation {
                Confirmation::Forced => context.info("--force: not asking for confirmation"),
                Confirmation::Confirmed => context.info("confirmed"),
                Confirmation::DryRun => {}
                Confirmation::NotInteractive => {
                    return Err(PhaseError::Preflight {
                        message: "refusing to reset without confirmation: stdin is not a terminal, so nobody can be \
                                  asked"
                            .to_owned(),
                        hint: Some(
                            "pass --force to reset without asking, or --dry-run to see what would go".to_owned(),
                        ),
                    })
                }
            }
            Ok(())
        })
}

/// The `reset` workflow.
pub fn workflow() -> Workflow<ResetData> {
    Workflow::new("reset")
        .phase(preflight_phase())
        .phase(node::phase())
        .phase(member::phase())
        .phase(cleanup::phase())
}

/// The artefact for a file path.
fn file(path: impl Into<PathBuf>) -> Artefact {
    Artefact::File(path.into())
}

#[cfg(test)]
mod tests;
