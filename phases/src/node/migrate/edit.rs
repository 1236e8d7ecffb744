//! The two edits of a migration, each changing one setting and leaving every other byte of the file alone:
//! containerd's `SystemdCgroup` (in the options of the default runtime, for config format 1, 2 or 3), CRI-O's
//! `cgroup_manager` (in bosun's drop-in), and the `cgroupDriver` key of a KubeletConfiguration document (the node's
//! `config.yaml` and the `kubelet-config` ConfigMap).
//!
//! Every edit is read back with the readers of [`crate::node::runtime`] (or a YAML parse) and refused if the result
//! does not select the wanted driver, so a file whose shape these edits do not understand is never half-changed.

use std::path::PathBuf;

use toml_edit::{value, DocumentMut, Item, Table};

use crate::node::cgroup::CgroupDriver;
use crate::node::runtime;
use crate::node::NodeError;

fn invalid(what: &str, reason: impl Into<String>) -> NodeError {
    NodeError::Invalid {
        what: what.to_owned(),
        reason: reason.into(),
    }
}

/// The table at `path` under `table`, created (implicit, so no empty headers are written) where missing.
fn table_at<'a>(
    table: &'a mut Table,
    path: &[&str],
    what: &str,
) -> Result<&'a mut Table, NodeError> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(table);
    };
    if !table.contains_key(first) {
        let mut child = Table::new();
        child.set_implicit(true);
        table.insert(first, Item::Table(child));
    }
    match table.get_mut(first) {
        Some(Item::Table(child)) => table_at(child, rest, what),
        _ => Err(invalid(
            what,
            format!(
                "`{first}` is not a table where bosun expects one (inline tables are not edited)"
            ),
        )),
    }
}

/// containerd's `config.toml` with `SystemdCgroup` of the default runtime set for `driver`; everything else kept.
pub fn containerd_with_driver(text: &str, driver: CgroupDriver) -> Result<String, NodeError> {
    let what = runtime::CONTAINERD_CONFIG;
    let mut document = text.parse::<DocumentMut>().map_err(|error| {
        invalid(
            what,
            format!("it is not valid TOML: {}", error.to_string().trim()),
        )
    })?;
    let version = document
        .get("version")
        .and_then(Item::as_integer)
        .unwrap_or(1);
    let plugin: &[&str] = match version {
        1 => &["plugins", "cri", "containerd"],
        2 => &["plugins", "io.containerd.grpc.v1.cri", "containerd"],
        3 => &["plugins", "io.containerd.cri.v1.runtime", "containerd"],
        other => {
            return Err(invalid(
                what,
                format!("configuration format version {other} is not one bosun knows (1, 2 or 3)"),
            ))
        }
    };
    let runtime_name = {
        let mut item: Option<&Item> = Some(document.as_item());
        for key in plugin.iter().chain(["default_runtime_name"].iter()) {
            item = item.and_then(|current| current.get(key));
        }
        item.and_then(Item::as_str).unwrap_or("runc").to_owned()
    };
    let options = table_at(
        document.as_table_mut(),
        &[plugin, &["runtimes", runtime_name.as_str(), "options"]].concat(),
        what,
    )?;
    let wanted = driver == CgroupDriver::Systemd;
    match options.get_mut("SystemdCgroup") {
        // Replace in place so that the key keeps its position and comments.
        Some(Item::Value(existing)) => {
            let decor = existing.decor().clone();
            *existing = toml_edit::Value::from(wanted);
            *existing.decor_mut() = decor;
        }
        _ => {
            options.insert("SystemdCgroup", value(wanted));
        }
    }
    let edited = document.to_string();
    let (read_back, _) = runtime::containerd_settings(&edited)?;
    if read_back != driver {
        return Err(invalid(
            what,
            format!("after setting SystemdCgroup it still selects {read_back}; bosun does not understand its layout"),
        ));
    }
    Ok(edited)
}

/// bosun's CRI-O drop-in with `cgroup_manager` and `conmon_cgroup` (which must follow it) set for `driver`;
/// `existing` is the drop-in's current text, if any.
pub fn crio_drop_in_with_driver(
    existing: Option<&str>,
    driver: CgroupDriver,
) -> Result<String, NodeError> {
    let what = runtime::CRIO_DROP_IN;
    let mut document = existing
        .unwrap_or_default()
        .parse::<DocumentMut>()
        .map_err(|error| {
            invalid(
                what,
                format!("it is not valid TOML: {}", error.to_string().trim()),
            )
        })?;
    let table = table_at(document.as_table_mut(), &["crio", "runtime"], what)?;
    table.set_implicit(false);
    table.insert("cgroup_manager", value(driver.as_str()));
    table.insert(
        "conmon_cgroup",
        value(match driver {
            CgroupDriver::Systemd => "system.slice",
            CgroupDriver::Cgroupfs => "pod",
        }),
    );
    let edited = document.to_string();
    let read_back = runtime::crio_cgroup_driver(&[(PathBuf::from(what), edited.clone())])?;
    if read_back != driver {
        return Err(invalid(
            what,
            format!("after the edit it still selects {read_back}"),
        ));
    }
    Ok(edited)
}

/// The `cgroupDriver` a KubeletConfiguration document sets, or the kubelet's default (cgroupfs) when it sets none.
pub fn kubelet_driver(text: &str, what: &str) -> Result<CgroupDriver, NodeError> {
    let document = bosun_config::yaml::value_from_str(text)
        .map_err(|error| invalid(what, format!("it is not valid YAML: {error}")))?;
    match document
        .get("cgroupDriver")
        .and_then(|value| value.as_str())
    {
        None | Some("") => Ok(CgroupDriver::Cgroupfs),
        Some(name) => CgroupDriver::parse(name).ok_or_else(|| {
            invalid(
                what,
                format!("cgroupDriver {name:?} is neither systemd nor cgroupfs"),
            )
        }),
    }
}

/// A KubeletConfiguration document with its top-level `cgroupDriver` line set to `driver` (added at the end when it
/// has none); every other line is kept as it was.
pub fn kubelet_with_driver(
    text: &str,
    driver: CgroupDriver,
    what: &str,
) -> Result<String, NodeError> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let wanted = format!("cgroupDriver: {driver}");
    let existing = lines.iter().position(|line| {
        line.strip_prefix("cgroupDriver")
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    });
    match existing {
        Some(index) => lines[index] = wanted,
        None => {
            while lines.last().is_some_and(|line| line.trim().is_empty()) {
                lines.pop();
            }
            lines.push(wanted);
        }
    }
    let mut edited = lines.join("\n");
    edited.push('\n');
    if kubelet_driver(&edited, what)? != driver {
        return Err(invalid(
            what,
            "bosun cannot find its top-level cgroupDriver line (is it a flow-style document?)",
        ));
    }
    Ok(edited)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = r#"# site settings
version = 2
oom_score = -999

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.1"

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    BinaryName = "/usr/sbin/runc"
    SystemdCgroup = true # bosun
"#;

    #[test]
    fn containerd_keeps_every_other_setting_and_the_comment() {
        let edited = containerd_with_driver(V2, CgroupDriver::Cgroupfs).expect("edit");
        assert_eq!(
            edited,
            V2.replace(
                "SystemdCgroup = true # bosun",
                "SystemdCgroup = false # bosun"
            )
        );
        assert_eq!(
            containerd_with_driver(&edited, CgroupDriver::Systemd).expect("back"),
            V2
        );
    }

    #[test]
    fn containerd_gets_the_options_table_of_its_default_runtime() {
        let text = "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\".containerd]\n  default_runtime_name = \"crun\"\n";
        let edited = containerd_with_driver(text, CgroupDriver::Systemd).expect("edit");
        let (driver, _) = runtime::containerd_settings(&edited).expect("read");
        assert_eq!(driver, CgroupDriver::Systemd);
        assert!(edited.contains("runtimes.crun.options]"), "{edited}");
        assert!(edited.starts_with(text), "{edited}");
    }

    #[test]
    fn containerd_format_one_is_edited_too() {
        let edited =
            containerd_with_driver("oom_score = 0\n", CgroupDriver::Systemd).expect("edit");
        assert!(
            edited.contains("[plugins.cri.containerd.runtimes.runc.options]"),
            "{edited}"
        );
        assert!(containerd_with_driver("version = 9\n", CgroupDriver::Systemd).is_err());
    }

    #[test]
    fn crio_drop_in_sets_the_manager_and_conmon_cgroup() {
        let edited = crio_drop_in_with_driver(
            Some("[crio.image]\npause_image = \"p\"\n[crio.runtime]\ncgroup_manager = \"systemd\"\nconmon_cgroup = \"system.slice\"\n"),
            CgroupDriver::Cgroupfs,
        )
        .expect("edit");
        assert!(edited.contains("pause_image = \"p\""), "{edited}");
        assert!(edited.contains("cgroup_manager = \"cgroupfs\""), "{edited}");
        assert!(edited.contains("conmon_cgroup = \"pod\""), "{edited}");
        let created = crio_drop_in_with_driver(None, CgroupDriver::Systemd).expect("new");
        assert!(created.contains("[crio.runtime]"), "{created}");
    }

    #[test]
    fn kubelet_config_changes_one_line() {
        let text = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\n";
        let edited =
            kubelet_with_driver(text, CgroupDriver::Cgroupfs, "config.yaml").expect("edit");
        assert_eq!(
            edited,
            text.replace("cgroupDriver: systemd", "cgroupDriver: cgroupfs")
        );
        let added =
            kubelet_with_driver("kind: KubeletConfiguration\n\n", CgroupDriver::Systemd, "x")
                .expect("add");
        assert_eq!(added, "kind: KubeletConfiguration\ncgroupDriver: systemd\n");
        assert_eq!(
            kubelet_driver("kind: KubeletConfiguration\n", "x").expect("default"),
            CgroupDriver::Cgroupfs
        );
        assert!(kubelet_with_driver(
            "{kind: KubeletConfiguration, cgroupDriver: systemd}",
            CgroupDriver::Cgroupfs,
            "x"
        )
        .is_err());
    }
}
