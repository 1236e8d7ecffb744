//! `delete-node` (with `--delete-node`): delete this node's Node object through the API, before the etcd member and
//! the kubeconfigs go.
//!
//! kubeadm's reset leaves the Node object; with `--delete-node` bosun deletes it with `admin.conf`, or
//! `super-admin.conf` when admin.conf is refused (before the cluster-admins binding exists), or `kubelet.conf` on a
//! worker. Guarantees: a dry run only reads the object. An API server that does not answer, or refuses, is reported
//! with the command that deletes the object from another node, and the reset goes on.

use std::path::Path;

use k8s_openapi::api::core::v1::Node;

use super::ResetData;
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::host::cluster::{ClusterError, ObjectRef};
use crate::host::Outcome;
use crate::paths;

/// The kubeconfigs tried, in order.
const KUBECONFIGS: [&str; 3] = [
    paths::ADMIN_CONF,
    paths::SUPER_ADMIN_CONF,
    paths::KUBELET_CONF,
];

pub(crate) fn phase() -> Phase<ResetData> {
    Phase::new("delete-node", "Delete this node's Node object from the cluster (--delete-node)")
        .long_about(
            "With --delete-node, delete the Node object of this node through the API server, with admin.conf (or \
             super-admin.conf, or kubelet.conf on a worker). Without it the Node object stays, as with kubeadm.",
        )
        .skip_if(|data: &ResetData| {
            (!data.delete_node).then(|| "the Node object stays (pass --delete-node to delete it)".to_owned())
        })
        .makes(|_| vec![Artefact::State("node-object-deleted".to_owned())])
        .run(run)
}

fn run(context: &mut PhaseCtx<'_, ResetData>) -> Result<(), PhaseError> {
    let data = context.data;
    let Some(name) = data.node_name.clone() else {
        return Err(PhaseError::failed(
            "the node's name is not known: /etc/kubernetes/kubelet.conf names no system:node user and there is no \
             etcd manifest",
        )
        .with_hint("pass --node-name NAME"));
    };
    let Some(connector) = data.cluster.as_ref() else {
        return Err(PhaseError::failed(
            "no Kubernetes API client is available to this run",
        ));
    };
    let later = format!("delete it from another node: kubectl delete node {name}");
    let object = ObjectRef::of::<Node>(None, &name);
    let mut refused = Vec::new();
    for kubeconfig in KUBECONFIGS {
        let Some(bytes) = context.host.files.read(Path::new(kubeconfig))? else {
            continue;
        };
        let api = match connector.connect(&bytes, kubeconfig) {
            Ok(api) => api,
            Err(error) => {
                refused.push(error.to_string());
                continue;
            }
        };
        let result = if context.host.dry_run {
            api.get(&object).map(|found| found.is_some())
        } else {
            api.delete(&object)
        };
        match result {
            Ok(true) => {
                context.record_with_detail(
                    format!("Node {name}"),
                    Outcome::Removed,
                    Some(if context.host.dry_run {
                        "dry run".to_owned()
                    } else {
                        format!("deleted through {} with {kubeconfig}", api.server())
                    }),
                );
                return Ok(());
            }
            Ok(false) => {
                context.record_with_detail(
                    format!("Node {name}"),
                    Outcome::Unchanged,
                    Some("not in the cluster".to_owned()),
                );
                return Ok(());
            }
            Err(error @ ClusterError::Refused { .. }) => refused.push(error.to_string()),
            Err(ClusterError::Unreachable { server, reason }) => {
                context.warn(format!(
                    "the API server {server} is not reachable ({}); the Node object {name} stays: {later}",
                    super::member::short_reason(&reason)
                ));
                return Ok(());
            }
            Err(error) => {
                context.warn(format!("{error}; the Node object {name} stays: {later}"));
                return Ok(());
            }
        }
    }
    context.warn(format!(
        "the Node object {name} could not be deleted ({}); {later}",
        if refused.is_empty() {
            "no kubeconfig is left on this node".to_owned()
        } else {
            refused.join("; ")
        }
    ));
    Ok(())
}
