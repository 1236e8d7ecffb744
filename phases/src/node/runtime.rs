//! The container runtime: which one the node has (CRI socket detection as kubeadm's util/runtime does), its
//! configuration (containerd `config.toml` in format 2 for containerd 1.x or 3 for 2.x, or a CRI-O drop-in),
//! crictl's configuration, the kernel settings Kubernetes networking needs, and reading back which cgroup driver a
//! runtime's configuration selects.
//!
//! containerd's `config.toml` is merged, not replaced: the keys bosun's template sets are bosun's, and every other
//! table, key and comment already in the file stays as the user wrote it.

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Table, TableLike};

use super::cgroup::CgroupDriver;
use super::NodeError;
use crate::host::{Files, HostError};
use crate::render::{
    ContainerdConfig, CrictlConfig, CrioDropIn, Modules, NameValue, Sysctl, Template, Templates,
};

/// containerd's configuration file.
pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
/// CRI-O's main configuration file and bosun's drop-in beside it.
pub const CRIO_CONFIG: &str = "/etc/crio/crio.conf";
pub const CRIO_DROP_IN_DIR: &str = "/etc/crio/crio.conf.d";
pub const CRIO_DROP_IN: &str = "/etc/crio/crio.conf.d/10-bosun.conf";
/// crictl's configuration.
pub const CRICTL_CONFIG: &str = "/etc/crictl.yaml";
/// Kernel parameters and modules.
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/99-kubernetes.conf";
pub const MODULES_FILE: &str = "/etc/modules-load.d/kubernetes.conf";
/// Where CNI plugins and network configurations live (upstream defaults).
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";
pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";

/// The CRI sockets kubeadm looks for, in its order.
pub const KNOWN_SOCKETS: [(RuntimeKind, &str); 3] = [
    (
        RuntimeKind::Containerd,
        "unix:///var/run/containerd/containerd.sock",
    ),
    (RuntimeKind::Crio, "unix:///var/run/crio/crio.sock"),
    (RuntimeKind::CriDockerd, "unix:///var/run/cri-dockerd.sock"),
];

/// A container runtime bosun knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeKind {
    Containerd,
    Crio,
    CriDockerd,
    /// A socket bosun does not recognise; it is used as given and not configured.
    Other,
}

impl RuntimeKind {
    /// The runtime a CRI socket URL belongs to.
    pub fn of_socket(socket: &str) -> RuntimeKind {
        let path = socket_path(socket);
        let name = Path::new(&path)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.as_str() {
            "containerd.sock" => RuntimeKind::Containerd,
            "crio.sock" => RuntimeKind::Crio,
            "cri-dockerd.sock" => RuntimeKind::CriDockerd,
            _ => RuntimeKind::Other,
        }
    }

    /// The service that runs it.
    pub fn service(self) -> Option<&'static str> {
        match self {
            RuntimeKind::Containerd => Some("containerd"),
            RuntimeKind::Crio => Some("crio"),
            RuntimeKind::CriDockerd => Some("cri-docker"),
            RuntimeKind::Other => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Containerd => "containerd",
            RuntimeKind::Crio => "CRI-O",
            RuntimeKind::CriDockerd => "cri-dockerd",
            RuntimeKind::Other => "the container runtime",
        }
    }
}

/// The filesystem path of a `unix://` socket URL (a bare path is returned as is).
pub fn socket_path(socket: &str) -> String {
    socket.strip_prefix("unix://").unwrap_or(socket).to_owned()
}

/// The CRI sockets present on the node, among [`KNOWN_SOCKETS`].
pub fn present_sockets(files: &dyn Files) -> Result<Vec<(RuntimeKind, &'static str)>, HostError> {
    let mut present = Vec::new();
    for (kind, socket) in KNOWN_SOCKETS {
        let path = PathBuf::from(socket_path(socket));
        // /var/run is a link to /run on most systems; look at both.
        let alternative = path
            .strip_prefix("/var")
            .map(|rest| Path::new("/").join(rest))
            .ok();
        if files.exists(&path)?
            || alternative.map(|path| files.exists(&path)).transpose()? == Some(true)
        {
            present.push((kind, socket));
        }
    }
    Ok(present)
}

/// kubeadm's detection: no socket found gives containerd's, one gives it, several is an error.
pub fn detect_socket(files: &dyn Files) -> Result<String, NodeError> {
    let present = present_sockets(files)?;
    match present.as_slice() {
        [] => Ok(KNOWN_SOCKETS[0].1.to_owned()),
        [(_, socket)] => Ok((*socket).to_owned()),
        several => Err(NodeError::Invalid {
            what: "container runtime".to_owned(),
            reason: format!(
                "found several CRI sockets ({}); set nodeRegistration.criSocket to the one the kubelet should use",
                several
                    .iter()
                    .map(|(_, socket)| *socket)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// A containerd version as `containerd --version` prints it (`containerd github.com/containerd/containerd
/// 1.6.20~ds1 ...` or `... /v2 v2.0.1 ...`): the major and minor numbers.
pub fn parse_containerd_version(output: &str) -> Option<(u64, u64)> {
    output.split_whitespace().find_map(|word| {
        let word = word.trim_start_matches('v');
        let mut parts = word.split(['.', '~', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    })
}

/// The containerd config format for a containerd major version: 2 for 1.x, 3 for 2.x.
pub fn containerd_template(major: u64) -> Template {
    if major >= 2 {
        Template::ContainerdV3
    } else {
        Template::ContainerdV2
    }
}

/// The settings bosun manages in containerd's configuration.
pub fn containerd_context(
    cri_socket: &str,
    sandbox_image: &str,
    driver: CgroupDriver,
) -> ContainerdConfig {
    ContainerdConfig {
        address: socket_path(cri_socket),
        root: None,
        state: None,
        opt_path: None,
        netns_mounts_under_state_dir: false,
        sandbox_image: sandbox_image.to_owned(),
        systemd_cgroup: driver == CgroupDriver::Systemd,
        snapshotter: "overlayfs".to_owned(),
        cni_bin_dir: CNI_BIN_DIR.to_owned(),
        cni_conf_dir: CNI_CONF_DIR.to_owned(),
    }
}

fn parse_toml(text: &str, what: &str) -> Result<DocumentMut, NodeError> {
    text.parse::<DocumentMut>()
        .map_err(|error| NodeError::Invalid {
            what: what.to_owned(),
            reason: format!("it is not valid TOML: {}", error.to_string().trim()),
        })
}

/// containerd's `config.toml`: bosun's rendered settings laid over the existing file (if any), keeping the
/// user's other settings and comments.
pub fn containerd_config_file(
    templates: &Templates,
    template: Template,
    context: &ContainerdConfig,
    existing: Option<&str>,
) -> Result<String, NodeError> {
    let rendered_text = templates.render(template, context)?;
    let rendered = parse_toml(&rendered_text, &format!("the rendered {CONTAINERD_CONFIG}"))
        .map_err(|error| NodeError::Rendered {
            what: CONTAINERD_CONFIG.to_owned(),
            format: "TOML",
            reason: error.to_string(),
        })?;
    let Some(existing) = existing.filter(|text| !text.trim().is_empty()) else {
        return Ok(rendered_text);
    };
    let mut document = parse_toml(existing, CONTAINERD_CONFIG)?;
    let wanted = rendered
        .get("version")
        .and_then(Item::as_integer)
        .unwrap_or(2);
    let found = document
        .get("version")
        .and_then(Item::as_integer)
        .unwrap_or(1);
    if wanted != found {
        return Err(NodeError::Invalid {
            what: CONTAINERD_CONFIG.to_owned(),
            reason: format!(
                "it is in configuration format version {found}, but this containerd reads version {wanted}; \
                 run `containerd config migrate > {CONTAINERD_CONFIG}.new`, check it and move it into place"
            ),
        });
    }
    let mut rendered = rendered;
    for path in USER_OWNED_KEYS {
        if lookup(document.as_table(), path).is_some() {
            remove(rendered.as_table_mut(), path);
        }
    }
    overlay(document.as_table_mut(), rendered.as_table());
    Ok(document.to_string())
}

/// Keys of containerd's configuration that bosun sets only where the file has none: where the CNI plugins and
/// their configurations live belongs to whoever installed the network plugin (Debian's containerd package points
/// `bin_dir` at `/usr/lib/cni`, where its containernetworking-plugins are; bosun's `/opt/cni/bin` default would
/// leave every pod without a network).
const USER_OWNED_KEYS: [&[&str]; 4] = [
    &["plugins", "io.containerd.grpc.v1.cri", "cni", "bin_dir"],
    &["plugins", "io.containerd.grpc.v1.cri", "cni", "conf_dir"],
    &["plugins", "io.containerd.cri.v1.runtime", "cni", "bin_dirs"],
    &["plugins", "io.containerd.cri.v1.runtime", "cni", "conf_dir"],
];

/// Removes the key at `path` from `table`, if it is there.
fn remove(table: &mut dyn TableLike, path: &[&str]) {
    match path {
        [] => {}
        [key] => {
            table.remove(key);
        }
        [first, rest @ ..] => {
            if let Some(child) = table.get_mut(first).and_then(Item::as_table_like_mut) {
                remove(child, rest);
            }
        }
    }
}

/// Sets every value of `source` in `target`, creating tables as needed; leaves everything else alone.
fn overlay(target: &mut dyn TableLike, source: &Table) {
    for (key, item) in source.iter() {
        match item {
            Item::Table(source_table) => {
                let is_table = target.get(key).is_some_and(Item::is_table_like);
                if !is_table {
                    let mut table = Table::new();
                    table.set_implicit(true);
                    target.insert(key, Item::Table(table));
                }
                if let Some(child) = target.get_mut(key).and_then(Item::as_table_like_mut) {
                    overlay(child, source_table);
                }
            }
            Item::Value(value) => {
                let mut value = value.clone();
                match target.get_mut(key) {
                    // Replace in place, so the key keeps its position and the comments around it.
                    Some(existing) => {
                        if let Some(old) = existing.as_value() {
                            *value.decor_mut() = old.decor().clone();
                        } else {
                            value.decor_mut().clear();
                        }
                        *existing = Item::Value(value);
                    }
                    None => {
                        value.decor_mut().clear();
                        target.insert(key, Item::Value(value));
                    }
                }
            }
            Item::ArrayOfTables(_) | Item::None => {}
        }
    }
}

fn lookup<'a>(table: &'a dyn TableLike, path: &[&str]) -> Option<&'a Item> {
    let (first, rest) = path.split_first()?;
    let item = table.get(first)?;
    if rest.is_empty() {
        Some(item)
    } else {
        lookup(item.as_table_like()?, rest)
    }
}

/// The cgroup driver a containerd `config.toml` selects for its default runtime (containerd's own default is
/// cgroupfs), and the sandbox image it sets, if any.
pub fn containerd_settings(text: &str) -> Result<(CgroupDriver, Option<String>), NodeError> {
    let document = parse_toml(text, CONTAINERD_CONFIG)?;
    let root = document.as_table();
    let version = root.get("version").and_then(Item::as_integer).unwrap_or(1);
    let (runtime_plugin, images_path): (&[&str], &[&str]) = if version >= 3 {
        (
            &["plugins", "io.containerd.cri.v1.runtime", "containerd"],
            &[
                "plugins",
                "io.containerd.cri.v1.images",
                "pinned_images",
                "sandbox",
            ],
        )
    } else if version == 2 {
        (
            &["plugins", "io.containerd.grpc.v1.cri", "containerd"],
            &["plugins", "io.containerd.grpc.v1.cri", "sandbox_image"],
        )
    } else {
        (
            &["plugins", "cri", "containerd"],
            &["plugins", "cri", "sandbox_image"],
        )
    };
    let runtime_name = lookup(root, &[runtime_plugin, &["default_runtime_name"]].concat())
        .and_then(Item::as_str)
        .unwrap_or("runc")
        .to_owned();
    let systemd = lookup(
        root,
        &[
            runtime_plugin,
            &["runtimes", &runtime_name, "options", "SystemdCgroup"],
        ]
        .concat(),
    )
    .and_then(Item::as_bool)
    .unwrap_or(false);
    let sandbox = lookup(root, images_path)
        .and_then(Item::as_str)
        .map(str::to_owned);
    let driver = if systemd {
        CgroupDriver::Systemd
    } else {
        CgroupDriver::Cgroupfs
    };
    Ok((driver, sandbox))
}

/// The cgroup manager CRI-O's configuration selects: the last `cgroup_manager` in `crio.conf` and then its
/// drop-ins in name order (CRI-O's default is systemd). `texts` are (path, contents) in that order.
pub fn crio_cgroup_driver(texts: &[(PathBuf, String)]) -> Result<CgroupDriver, NodeError> {
    let mut driver = CgroupDriver::Systemd;
    for (path, text) in texts {
        let document = parse_toml(text, &path.display().to_string())?;
        if let Some(manager) = lookup(document.as_table(), &["crio", "runtime", "cgroup_manager"])
            .and_then(Item::as_str)
        {
            driver = CgroupDriver::parse(manager).ok_or_else(|| NodeError::Invalid {
                what: path.display().to_string(),
                reason: format!("cgroup_manager {manager:?} is neither systemd nor cgroupfs"),
            })?;
        }
    }
    Ok(driver)
}

/// The CRI-O drop-in.
pub fn crio_drop_in(
    templates: &Templates,
    sandbox_image: &str,
    driver: CgroupDriver,
) -> Result<String, NodeError> {
    let text = templates.render(
        Template::CrioDropIn,
        &CrioDropIn {
            cgroup_manager: driver.as_str().to_owned(),
            conmon_cgroup: match driver {
                CgroupDriver::Systemd => "system.slice".to_owned(),
                CgroupDriver::Cgroupfs => "pod".to_owned(),
            },
            sandbox_image: sandbox_image.to_owned(),
            cni_bin_dir: CNI_BIN_DIR.to_owned(),
            cni_conf_dir: CNI_CONF_DIR.to_owned(),
        },
    )?;
    parse_toml(&text, CRIO_DROP_IN).map_err(|error| NodeError::Rendered {
        what: CRIO_DROP_IN.to_owned(),
        format: "TOML",
        reason: error.to_string(),
    })?;
    Ok(text)
}

/// `/etc/crictl.yaml` pointing at the node's CRI socket.
pub fn crictl_config(templates: &Templates, cri_socket: &str) -> Result<String, NodeError> {
    let endpoint = if cri_socket.contains("://") {
        cri_socket.to_owned()
    } else {
        format!("unix://{cri_socket}")
    };
    let text = templates.render(
        Template::Crictl,
        &CrictlConfig {
            endpoint,
            timeout_seconds: 10,
        },
    )?;
    bosun_config::yaml::value_from_str(&text).map_err(|error| NodeError::Rendered {
        what: CRICTL_CONFIG.to_owned(),
        format: "YAML",
        reason: error.to_string(),
    })?;
    Ok(text)
}

/// The kernel parameters Kubernetes networking needs: forwarding (IPv4, and IPv6 for an IPv6 or dual-stack
/// cluster) and bridged traffic through iptables.
pub fn sysctl_settings(ipv6: bool) -> Vec<NameValue> {
    let mut settings = vec![
        NameValue::new("net.bridge.bridge-nf-call-ip6tables", "1"),
        NameValue::new("net.bridge.bridge-nf-call-iptables", "1"),
        NameValue::new("net.ipv4.ip_forward", "1"),
    ];
    if ipv6 {
        settings.push(NameValue::new("net.ipv6.conf.all.forwarding", "1"));
    }
    settings
}

/// `/etc/sysctl.d/99-kubernetes.conf`.
pub fn sysctl_file(templates: &Templates, ipv6: bool) -> Result<String, NodeError> {
    Ok(templates.render(
        Template::Sysctl,
        &Sysctl {
            settings: sysctl_settings(ipv6),
        },
    )?)
}

/// The kernel modules the runtime and bridged networking need.
pub const MODULES: [&str; 2] = ["overlay", "br_netfilter"];

/// `/etc/modules-load.d/kubernetes.conf`.
pub fn modules_file(templates: &Templates) -> Result<String, NodeError> {
    Ok(templates.render(
        Template::Modules,
        &Modules {
            modules: MODULES.iter().map(|module| (*module).to_owned()).collect(),
        },
    )?)
}

#[cfg(test)]
mod tests;
