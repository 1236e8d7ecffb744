//! The kubelet's files (phases/kubelet/flags.go, componentconfigs/kubelet.go): `/var/lib/kubelet/config.yaml`,
//! `/var/lib/kubelet/kubeadm-flags.env`, the systemd drop-in, and the service definition bosun installs.

use std::path::Path;

use bosun_config::{Arg, Config, KubeletConfiguration};

use super::args::command_line;
use super::cgroup::CgroupDriver;
use super::facts::{CgroupVersion, NodeFacts};
use super::patches::{self, PatchSet};
use super::NodeError;
use crate::host::{CommandSpec, ServiceSpec};
use crate::paths;
use crate::render::{KubeletConfigFile, KubeletDropIn, KubeletFlags, Template, Templates};

/// The kubelet's service name.
pub const KUBELET_SERVICE: &str = "kubelet";
/// The environment file a user may use for `KUBELET_EXTRA_ARGS` (Debian packaging's path).
pub const KUBELET_DEFAULTS_ENV: &str = "/etc/default/kubelet";
/// systemd-resolved's real resolv.conf (the kubelet must not hand pods the 127.0.0.53 stub).
pub const SYSTEMD_RESOLVED_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";
/// The patch target of the kubelet configuration.
pub const PATCH_TARGET: &str = "kubeletconfiguration";

/// The KubeletConfiguration bosun writes: the user's, with kubeadm's defaults (already applied by the config
/// crate), the cgroup driver decided for the host, and the settings a host needs to run a kubelet at all.
pub fn effective_configuration(
    config: &Config,
    driver: CgroupDriver,
    facts: &NodeFacts,
) -> KubeletConfiguration {
    let mut kubelet = config.kubelet.clone();
    kubelet.cgroup_driver = driver.as_str().to_owned();
    if kubelet.resolv_conf.is_none() && facts.systemd_resolved {
        kubelet.resolv_conf = Some(SYSTEMD_RESOLVED_RESOLV_CONF.to_owned());
    }
    // From v1.35 the kubelet refuses cgroup v1 unless told otherwise. Preflight reports cgroup v1 as an error; a
    // user who ignores it (SystemVerification) wants the kubelet to run, so bosun says so in the config.
    if facts.cgroup_version == CgroupVersion::V1 && kubelet.fail_cgroup_v1.is_none() {
        kubelet.fail_cgroup_v1 = Some(false);
    }
    kubelet
}

/// `/var/lib/kubelet/config.yaml`, with the `kubeletconfiguration` patches applied.
pub fn config_file(
    templates: &Templates,
    kubelet: &KubeletConfiguration,
    patch_set: Option<&PatchSet>,
) -> Result<String, NodeError> {
    let mut value = serde_json::to_value(kubelet).map_err(|error| NodeError::Invalid {
        what: "KubeletConfiguration".to_owned(),
        reason: error.to_string(),
    })?;
    if let Some(set) = patch_set {
        patches::apply(set, PATCH_TARGET, &mut value)?;
    }
    if let Some(map) = value.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    let body = crate::render::to_yaml(&value);
    let body = if body.trim() == "{}" {
        String::new()
    } else {
        body.trim_end().to_owned()
    };
    let text = templates.render(Template::KubeletConfig, &KubeletConfigFile { body })?;
    bosun_config::yaml::value_from_str(&text).map_err(|error| NodeError::Rendered {
        what: paths::KUBELET_CONFIG.to_owned(),
        format: "YAML",
        reason: error.to_string(),
    })?;
    Ok(text)
}

/// The flags in `kubeadm-flags.env`: the CRI endpoint, `--hostname-override` when the node name is not the
/// hostname, merged with `nodeRegistration.kubeletExtraArgs` by kubeadm's rule.
pub fn flags(config: &Config, cri_socket: &str, facts: &NodeFacts) -> Vec<String> {
    let registration = config.node_registration();
    let mut defaults = vec![Arg::new("container-runtime-endpoint", cri_socket)];
    if facts.gathered && !registration.name.is_empty() && registration.name != facts.hostname {
        defaults.push(Arg::new("hostname-override", registration.name.clone()));
    }
    command_line(&defaults, &registration.kubelet_extra_args)
}

/// `kubeadm-flags.env`.
pub fn flags_file(templates: &Templates, flags: Vec<String>) -> Result<String, NodeError> {
    Ok(templates.render(Template::KubeletFlags, &KubeletFlags { args: flags })?)
}

/// The systemd drop-in for a packaged `kubelet.service`.
pub fn drop_in(templates: &Templates, kubelet_binary: &Path) -> Result<String, NodeError> {
    Ok(templates.render(
        Template::KubeletDropIn,
        &KubeletDropIn {
            kubelet: kubelet_binary.display().to_string(),
            bootstrap_kubeconfig: paths::BOOTSTRAP_KUBELET_CONF.to_owned(),
            kubeconfig: paths::KUBELET_CONF.to_owned(),
            config: paths::KUBELET_CONFIG.to_owned(),
            flags_env: paths::KUBELET_FLAGS_ENV.to_owned(),
            defaults_env: KUBELET_DEFAULTS_ENV.to_owned(),
        },
    )?)
}

/// The kubelet as a service: the same command line the drop-in gives systemd, for any service backend.
pub fn service(kubelet_binary: &Path) -> ServiceSpec {
    ServiceSpec {
        name: KUBELET_SERVICE.to_owned(),
        description: "kubelet: The Kubernetes Node Agent".to_owned(),
        command: CommandSpec::new(kubelet_binary.display().to_string()).args([
            format!("--bootstrap-kubeconfig={}", paths::BOOTSTRAP_KUBELET_CONF),
            format!("--kubeconfig={}", paths::KUBELET_CONF),
            format!("--config={}", paths::KUBELET_CONFIG),
            "$KUBELET_KUBEADM_ARGS".to_owned(),
            "$KUBELET_EXTRA_ARGS".to_owned(),
        ]),
        environment_files: vec![paths::KUBELET_FLAGS_ENV.into(), KUBELET_DEFAULTS_ENV.into()],
        restart_after_seconds: 10,
    }
}

#[cfg(test)]
mod tests;
