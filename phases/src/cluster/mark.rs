//! `mark-control-plane`: the labels and taints that make this node a control-plane node (kubeadm's
//! phases/markcontrolplane): labels `node-role.kubernetes.io/control-plane` and
//! `node.kubernetes.io/exclude-from-external-load-balancers` (both empty), and the configured taints (default
//! `node-role.kubernetes.io/control-plane:NoSchedule`).
//!
//! The Node is made by the kubelet when it registers; this phase waits for it (up to `timeouts.kubernetesAPICall`)
//! and never creates it. Taints other components set are kept: the phase adds what is missing and leaves the rest.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint as NodeTaint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{admin_conf, api_error, api_timeout, connect, with_retry};
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::host::cluster::{self, to_value};
use crate::host::Outcome;
use crate::init::{live, InitData};

pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The taints a control-plane node carries: the configured ones, or the default control-plane taint.
pub fn desired_taints(registration: &bosun_config::NodeRegistration) -> Vec<NodeTaint> {
    let configured = match &registration.taints {
        Some(taints) => taints.clone(),
        None => vec![bosun_config::defaults::control_plane_taint()],
    };
    configured
        .into_iter()
        .map(|taint| NodeTaint {
            key: taint.key,
            value: (!taint.value.is_empty()).then_some(taint.value),
            effect: taint.effect,
            time_added: None,
        })
        .collect()
}

fn same_taint(left: &NodeTaint, right: &NodeTaint) -> bool {
    left.key == right.key
        && left.effect == right.effect
        && left.value.as_deref().unwrap_or("") == right.value.as_deref().unwrap_or("")
}

/// The Node object to apply, or `None` when `node` already carries every label and taint.
pub fn marked(node: &Node, taints: &[NodeTaint]) -> Option<Node> {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let existing_taints = node
        .spec
        .as_ref()
        .and_then(|spec| spec.taints.clone())
        .unwrap_or_default();
    let labels_present = [CONTROL_PLANE_LABEL, EXCLUDE_LB_LABEL]
        .iter()
        .all(|label| labels.get(*label).is_some_and(String::is_empty));
    let missing: Vec<NodeTaint> = taints
        .iter()
        .filter(|wanted| {
            !existing_taints
                .iter()
                .any(|taint| same_taint(taint, wanted))
        })
        .cloned()
        .collect();
    if labels_present && missing.is_empty() {
        return None;
    }
    let mut all_taints = existing_taints;
    all_taints.extend(missing);
    Some(Node {
        metadata: ObjectMeta {
            name: node.metadata.name.clone(),
            labels: Some(
                [CONTROL_PLANE_LABEL, EXCLUDE_LB_LABEL]
                    .iter()
                    .map(|label| ((*label).to_owned(), String::new()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: Some(all_taints),
            ..NodeSpec::default()
        }),
        status: None,
    })
}

fn run(ctx: &mut PhaseCtx<'_, InitData>) -> Result<(), PhaseError> {
    let registration = &ctx.data.config.init.node_registration;
    let name = registration.name.clone();
    let taints = desired_taints(registration);
    let Some(api) = connect(ctx)? else {
        ctx.info(format!(
            "would label Node {name} {CONTROL_PLANE_LABEL}, {EXCLUDE_LB_LABEL} and taint it {}",
            taints
                .iter()
                .map(|taint| format!("{}:{}", taint.key, taint.effect))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Ok(());
    };
    let timeout = api_timeout(ctx.data);
    let deadline = Instant::now() + timeout;
    let node = loop {
        if let Some(node) = with_retry(timeout, || cluster::get::<Node>(api.as_ref(), None, &name))
            .map_err(api_error)?
        {
            break node;
        }
        if Instant::now() >= deadline {
            return Err(PhaseError::failed(format!(
                "the Node {name} did not appear within {}s",
                timeout.as_secs()
            ))
            .with_hint("the kubelet registers the node: check that it runs and can reach the API server (its log is in /var/log/bosun/kubelet.log or `journalctl -u kubelet`)"));
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let artefact = format!("cluster: Node {name} (labels, taints)");
    match marked(&node, &taints) {
        None => ctx.record(artefact, Outcome::Unchanged),
        Some(patch) => {
            with_retry(timeout, || api.apply(&to_value(&patch))).map_err(api_error)?;
            ctx.record(artefact, Outcome::Updated);
        }
    }
    Ok(())
}

pub fn phase() -> Phase<InitData> {
    live(
        Phase::new(
            "mark-control-plane",
            "Label and taint this node as a control-plane node",
        )
        .needs(|_| vec![admin_conf()])
        .makes(|data: &InitData| {
            vec![Artefact::State(format!(
                "cluster: Node {} (labels, taints)",
                data.config.init.node_registration.name
            ))]
        })
        .run(run),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: &[(&str, &str)], taints: Vec<NodeTaint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("cp-1".to_owned()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..NodeSpec::default()
            }),
            status: None,
        }
    }

    fn taint(key: &str, effect: &str) -> NodeTaint {
        NodeTaint {
            key: key.to_owned(),
            value: None,
            effect: effect.to_owned(),
            time_added: None,
        }
    }

    #[test]
    fn default_taint_is_the_control_plane_no_schedule() {
        let taints = desired_taints(&bosun_config::NodeRegistration::default());
        assert_eq!(taints, vec![taint(CONTROL_PLANE_LABEL, "NoSchedule")]);
        let none = desired_taints(&bosun_config::NodeRegistration {
            taints: Some(Vec::new()),
            ..Default::default()
        });
        assert!(none.is_empty());
    }

    #[test]
    fn marking_keeps_other_taints_and_is_a_no_op_when_done() {
        let not_ready = taint("node.kubernetes.io/not-ready", "NoSchedule");
        let wanted = vec![taint(CONTROL_PLANE_LABEL, "NoSchedule")];
        let fresh = node(
            &[("kubernetes.io/hostname", "cp-1")],
            vec![not_ready.clone()],
        );
        let patch = marked(&fresh, &wanted).expect("changes");
        let taints = patch.spec.expect("spec").taints.expect("taints");
        assert_eq!(taints, vec![not_ready.clone(), wanted[0].clone()]);
        let labels = patch.metadata.labels.expect("labels");
        assert_eq!(
            labels.get(CONTROL_PLANE_LABEL).map(String::as_str),
            Some("")
        );
        assert_eq!(labels.get(EXCLUDE_LB_LABEL).map(String::as_str), Some(""));
        let done = node(
            &[(CONTROL_PLANE_LABEL, ""), (EXCLUDE_LB_LABEL, "")],
            vec![not_ready, wanted[0].clone()],
        );
        assert!(marked(&done, &wanted).is_none());
    }
}
