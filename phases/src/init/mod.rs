//! The `init` workflow: the phases that turn a host into the first control-plane node, in kubeadm's order.
//!
//! The tree is assembled here from the phases the other modules export; each module owns its phases' needs, makes
//! and run functions. [`InitData`] is the typed data every phase reads: the resolved configuration and what is known
//! about the node. It is built once, before the run, and never mutated by phases (dry runs do not touch it either).

use std::collections::BTreeSet;
use std::path::PathBuf;

use bosun_config::Config;

use crate::engine::{Phase, Workflow};
use crate::paths::NodePaths;

/// Everything the `init` phases read.
pub struct InitData {
    /// The resolved (defaulted and validated) configuration.
    pub config: Config,
    /// Paths that depend on the configuration.
    pub paths: NodePaths,
    /// Preflight checks whose failures are reported as warnings (`--ignore-preflight-errors`), lower-cased; `all`
    /// ignores every check.
    pub ignore_preflight_errors: BTreeSet<String>,
    /// A directory whose templates replace the embedded ones (`--templates-dir`).
    pub templates_dir: Option<PathBuf>,
    /// Write files only: skip every phase that needs a live node (`--offline`), for building node images or
    /// inspecting what init makes under a scratch `--root`.
    pub offline: bool,
    /// Do not install the daily certificate renewal timer (`--no-certs-timer`).
    pub no_certs_timer: bool,
    /// What the cluster-side phases need besides the configuration: the API connector, `--upload-certs`, the
    /// kube-proxy rollout settings, and the token and certificate key generated during the run.
    pub cluster: crate::cluster::ClusterData,
    /// Facts about the machine the node phases decide from (cgroups, init system, ports in use, ...), gathered by
    /// the binary's `bosun::host::facts::node_facts(&node::fact_request(&config))` when a phase first asks.
    pub node: crate::node::LazyFacts,
    /// The keys of this run, generated in the background by the `certs` and `kubeconfig` parents for their children.
    pub keys: crate::certs::KeySupply,
    /// Scheduled etcd backups to install (`--etcd-backup-every`); `None`: not asked for.
    pub etcd_backup_schedule: Option<crate::etcd::schedule::InitSchedule>,
}

impl InitData {
    /// The data for a run with `config`.
    pub fn new(config: Config) -> Self {
        let etcd_data_dir = config
            .cluster
            .etcd
            .local
            .as_ref()
            .map(|local| local.data_dir.clone())
            .filter(|dir| !dir.is_empty())
            .unwrap_or_else(|| "/var/lib/etcd".to_owned());
        let paths = NodePaths::new(config.cluster.certificates_dir.clone(), etcd_data_dir);
        InitData {
            config,
            paths,
            ignore_preflight_errors: BTreeSet::new(),
            templates_dir: None,
            offline: false,
            no_certs_timer: false,
            cluster: crate::cluster::ClusterData::default(),
            node: crate::node::LazyFacts::default(),
            keys: crate::certs::KeySupply::default(),
            etcd_backup_schedule: None,
        }
    }

    /// Whether the failure of the preflight check `name` is only a warning.
    pub fn ignores_preflight_error(&self, name: &str) -> bool {
        self.ignore_preflight_errors.contains("all")
            || self
                .ignore_preflight_errors
                .contains(&name.to_ascii_lowercase())
    }
}

/// The reason a phase that needs a live node does not run offline.
fn offline_reason(data: &InitData) -> Option<String> {
    data.offline
        .then(|| "--offline: this phase needs a live node".to_owned())
}

/// Marks a phase as one that needs a live node (a kubelet, a runtime, an API server): `--offline` skips it.
pub fn live(phase: Phase<InitData>) -> Phase<InitData> {
    phase.skip_if(offline_reason)
}

/// Why the certificate renewal timer is not installed, when the user said so.
fn certs_timer_opted_out(data: &InitData) -> Option<String> {
    data.no_certs_timer
        .then(|| "--no-certs-timer: the daily certificate renewal is not installed".to_owned())
}

/// The `init` workflow, in kubeadm's order, with bosun's `container-runtime` phase before the files that the
/// kubelet and the runtime read.
pub fn workflow() -> Workflow<InitData> {
    let mut workflow = Workflow::new("init")
        .phase(live(crate::node::preflight_phase()))
        .phase(live(crate::node::container_runtime_phase()))
        .phase(crate::certs::certs_phase())
        .phase(crate::certs::kubeconfig_phase())
        .phase(crate::node::etcd_phase())
        .phase(crate::node::control_plane_phase())
        .phase(live(crate::node::kubelet_start_phase()))
        .phase(live(crate::certops::timer::init_phase(
            certs_timer_opted_out,
        )))
        .phase(live(crate::etcd::schedule::init_phase(
            crate::etcd::schedule::wanted_by_init,
        )));
    for phase in crate::cluster::phases() {
        workflow = workflow.phase(phase);
    }
    workflow
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_need_is_made_by_an_earlier_phase() {
        let data = InitData::new(bosun_config::defaults(&bosun_config::HostFacts {
            hostname: "node-1".to_owned(),
            default_address: Some("192.0.2.10".parse().expect("ip")),
        }));
        let violations = workflow().ordering_violations(&data);
        assert!(violations.is_empty(), "{violations:#?}");
    }
}
