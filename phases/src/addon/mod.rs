//! `bosun addon history|status|rollback`: the rollout history of the addons bosun owns, their rollout state, and a
//! rollback to an earlier revision.
//!
//! kube-proxy is a DaemonSet, whose history is its ControllerRevisions: the DaemonSet controller records every
//! template it has rolled out as `{"spec":{"template":{"$patch":"replace",…}}}` with a revision number, and bumps an
//! old revision to the newest number when its template comes back. A rollback works as `kubectl rollout undo
//! daemonset` does: pick the revision (the second newest unless `--to-revision`), refuse if it does not exist, do
//! nothing if the DaemonSet already runs its template, and otherwise send the revision's data back as a
//! strategic-merge patch. The rollout that follows is the controller's; [`rollback_workflow`] follows it with
//! [`crate::cluster::rollout::follow`].
//!
//! CoreDNS is a Deployment, whose history is its ReplicaSets (numbered by `deployment.kubernetes.io/revision`).
//! Its rollback is `kubectl rollout undo deployment`'s: the chosen ReplicaSet's template without the
//! `pod-template-hash` label, and its annotations, replace the Deployment's (kubectl sends a JSON patch; bosun the
//! equivalent strategic-merge patch with `$patch: replace`).
//!
//! Guarantees: [`plan_rollback`] only reads; nothing changes unless it returns a [`RollbackPlan::Restore`], and then
//! only the workload's `spec.template` (and, for a Deployment, its annotations, as kubectl does). Assumptions: the DaemonSet controller runs (the planner waits until it has
//! recorded the current template, so that "previous" means previous to what runs now). Caveats: the next
//! `bosun init phase addon kube-proxy` applies the configuration's template again, as it should; a rollback is a
//! repair until the configuration is fixed.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use serde::Serialize;
use serde_json::Value;

use crate::cluster::rollout::{
    self, normalized_template, replica_set_revision, replica_set_template, replica_sets_of,
    revision_hash, revision_template, revisions_of, LiveDaemonSet, LiveDeployment, RolloutError,
    Workload, WorkloadRollout, POD_TEMPLATE_HASH_LABEL,
};
use crate::engine::{Phase, PhaseCtx, PhaseError, Workflow};
use crate::host::cluster::{ClusterApi, ClusterError, ObjectRef};
use crate::host::Outcome;

/// The annotation `kubectl rollout history` shows as CHANGE-CAUSE (copied from the DaemonSet to each revision).
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// How long the planner waits for the DaemonSet controller to record the current template.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(30);

/// An addon whose rollouts bosun manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addon {
    /// The DaemonSet `kube-system/kube-proxy`.
    KubeProxy,
    /// The Deployment `kube-system/coredns`.
    CoreDns,
}

impl Addon {
    /// The name users type (`kube-proxy`, `coredns`).
    pub fn name(self) -> &'static str {
        match self {
            Addon::KubeProxy => "kube-proxy",
            Addon::CoreDns => "coredns",
        }
    }

    pub fn namespace(self) -> &'static str {
        "kube-system"
    }

    /// What kind of workload runs it.
    pub fn workload(self) -> Workload {
        match self {
            Addon::KubeProxy => Workload::DaemonSet,
            Addon::CoreDns => Workload::Deployment,
        }
    }

    /// The name of the addon's workload.
    pub fn workload_name(self) -> &'static str {
        match self {
            Addon::KubeProxy => "kube-proxy",
            Addon::CoreDns => "coredns",
        }
    }

    fn reference(self) -> ObjectRef {
        match self.workload() {
            Workload::DaemonSet => {
                ObjectRef::of::<DaemonSet>(Some(self.namespace()), self.workload_name())
            }
            Workload::Deployment => {
                ObjectRef::of::<Deployment>(Some(self.namespace()), self.workload_name())
            }
        }
    }

    /// `DaemonSet kube-system/kube-proxy`.
    pub fn object(self) -> String {
        self.reference().to_string()
    }
}

/// Why an addon command refused or failed. Refusals change nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AddonError {
    #[error("{object} does not exist")]
    Missing { object: String },
    #[error("{object} has no recorded revisions: its controller has not recorded any template")]
    NoHistory { object: String },
    #[error(
        "{object} has only revision {revision}: there is no previous revision to roll back to"
    )]
    NoPrevious { object: String, revision: i64 },
    #[error("{object} has no revision {revision} (its revisions: {})", list(.available))]
    RevisionNotFound {
        object: String,
        revision: i64,
        available: Vec<i64>,
    },
    #[error("revision {revision} of {object} holds no pod template")]
    Unreadable { object: String, revision: i64 },
    #[error("the controller has not recorded the current template of {object} within {}", rollout::humanize(*.timeout))]
    NotObserved { object: String, timeout: Duration },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

fn list(revisions: &[i64]) -> String {
    revisions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl AddonError {
    /// A `hint:` line for the user.
    pub fn hint(&self, addon: Addon) -> Option<String> {
        match self {
            AddonError::Missing { .. } => Some(format!(
                "the addon is installed by `bosun init phase addon {}`",
                addon.name()
            )),
            AddonError::RevisionNotFound { .. } | AddonError::NoPrevious { .. } => Some(format!(
                "`bosun addon history {}` lists the revisions that exist",
                addon.name()
            )),
            AddonError::NoHistory { .. } | AddonError::NotObserved { .. } => Some(
                "the DaemonSet and Deployment controllers run in kube-controller-manager; check that it is running \
                 (`kubectl --namespace kube-system get pods`)"
                    .to_owned(),
            ),
            _ => None,
        }
    }

    /// Whether the user asked for something that does not exist (as opposed to a cluster problem).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            AddonError::RevisionNotFound { .. } | AddonError::NoPrevious { .. }
        )
    }
}

impl From<RolloutError> for AddonError {
    fn from(error: RolloutError) -> Self {
        match error {
            RolloutError::Missing { object } => AddonError::Missing { object },
            RolloutError::Cluster(error) => AddonError::Cluster(error),
            // `observe` never times out; a timeout only comes from `follow`.
            timeout @ RolloutError::Timeout { .. } => AddonError::Cluster(ClusterError::Invalid {
                reason: timeout.to_string(),
            }),
        }
    }
}

/// One revision, as `bosun addon history` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRow {
    pub revision: i64,
    /// The ControllerRevision's or ReplicaSet's name (`kube-proxy-6c5d8b7f9`).
    pub name: String,
    /// The `controller-revision-hash` (DaemonSet) or `pod-template-hash` (Deployment) its pods carry.
    pub hash: String,
    /// The `kubernetes.io/change-cause` annotation, if any.
    pub change_cause: Option<String>,
    /// The container images of its template.
    pub images: Vec<String>,
    /// Whether the workload's template is this revision's.
    pub current: bool,
}

/// A workload's history, oldest revision first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub revisions: Vec<RevisionRow>,
}

impl History {
    /// `kubectl rollout history`'s table: REVISION and CHANGE-CAUSE, plus the images and which one runs.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "REVISION".to_owned(),
            "CHANGE-CAUSE".to_owned(),
            "IMAGES".to_owned(),
            "CURRENT".to_owned(),
        ]];
        for revision in &self.revisions {
            rows.push([
                revision.revision.to_string(),
                revision
                    .change_cause
                    .clone()
                    .unwrap_or_else(|| "<none>".to_owned()),
                revision.images.join(","),
                if revision.current { "*" } else { "" }.to_owned(),
            ]);
        }
        let mut widths = [0usize; 4];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let mut text = format!("{}.apps/{}\n", self.kind.to_lowercase(), self.name);
        for row in &rows {
            let line = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ");
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// One recorded template of a workload: a ControllerRevision of a DaemonSet or a ReplicaSet of a Deployment.
#[derive(Debug, Clone)]
struct Recorded {
    number: i64,
    name: String,
    hash: String,
    change_cause: Option<String>,
    /// The pod template it records.
    template: Value,
    /// What restores it: the strategic-merge patch of the workload.
    patch: Value,
}

impl Recorded {
    fn matches(&self, template: &Value) -> bool {
        normalized_template(&self.template) == normalized_template(template)
    }

    fn images(&self) -> Vec<String> {
        self.template
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|containers| {
                containers
                    .iter()
                    .filter_map(|container| container["image"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A workload as it is now: its template, whether its controller has observed it, and its recorded revisions.
struct Snapshot {
    template: Value,
    observed: bool,
    recorded: Vec<Recorded>,
}

impl Snapshot {
    fn current(&self) -> Option<i64> {
        self.recorded
            .iter()
            .filter(|recorded| recorded.matches(&self.template))
            .map(|recorded| recorded.number)
            .max()
    }
}

/// The annotations `kubectl rollout undo deployment` keeps from the Deployment rather than the ReplicaSet.
const DEPLOYMENT_ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    rollout::DEPLOYMENT_REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

fn with_replace(value: Value) -> Value {
    let mut value = value;
    if let Value::Object(map) = &mut value {
        map.insert("$patch".to_owned(), Value::from("replace"));
    }
    value
}

fn observed<T>(generation: Option<i64>, observed_generation: Option<T>) -> bool
where
    T: Into<i64>,
{
    generation.unwrap_or(0) <= observed_generation.map(Into::into).unwrap_or(0)
}

fn change_cause(annotations: Option<&BTreeMap<String, String>>) -> Option<String> {
    annotations.and_then(|annotations| annotations.get(CHANGE_CAUSE_ANNOTATION).cloned())
}

fn snapshot(api: &dyn ClusterApi, addon: Addon) -> Result<Snapshot, AddonError> {
    let missing = || AddonError::Missing {
        object: addon.object(),
    };
    match addon.workload() {
        Workload::DaemonSet => {
            let live = LiveDaemonSet::get(api, addon.namespace(), addon.workload_name())?
                .ok_or_else(missing)?;
            let recorded = revisions_of(api, &live.typed)?
                .iter()
                .filter_map(|revision| {
                    Some(Recorded {
                        number: revision.revision,
                        name: revision.metadata.name.clone().unwrap_or_default(),
                        hash: revision_hash(revision, addon.workload_name()).unwrap_or_default(),
                        change_cause: change_cause(revision.metadata.annotations.as_ref()),
                        template: revision_template(revision)?,
                        // kubectl sends the revision's data back unchanged.
                        patch: revision.data.as_ref()?.0.clone(),
                    })
                })
                .collect();
            Ok(Snapshot {
                observed: observed(
                    live.typed.metadata.generation,
                    live.typed
                        .status
                        .as_ref()
                        .and_then(|status| status.observed_generation),
                ),
                template: live.template,
                recorded,
            })
        }
        Workload::Deployment => {
            let live = LiveDeployment::get(api, addon.namespace(), addon.workload_name())?
                .ok_or_else(missing)?;
            let kept: BTreeMap<String, String> = live
                .typed
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|(key, _)| DEPLOYMENT_ANNOTATIONS_TO_SKIP.contains(&key.as_str()))
                .collect();
            let recorded = replica_sets_of(api, &live.typed)?
                .iter()
                .map(|replica_set| {
                    let mut template = replica_set_template(replica_set);
                    let hash = template
                        .pointer(&format!("/metadata/labels/{POD_TEMPLATE_HASH_LABEL}"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    if let Some(Value::Object(labels)) = template.pointer_mut("/metadata/labels") {
                        labels.remove(POD_TEMPLATE_HASH_LABEL);
                    }
                    let mut annotations = kept.clone();
                    for (key, value) in replica_set.metadata.annotations.clone().unwrap_or_default()
                    {
                        if !DEPLOYMENT_ANNOTATIONS_TO_SKIP.contains(&key.as_str()) {
                            annotations.insert(key, value);
                        }
                    }
                    let patch = serde_json::json!({
                        "metadata": {"annotations": with_replace(serde_json::json!(annotations))},
                        "spec": {"template": with_replace(template.clone())},
                    });
                    Recorded {
                        number: replica_set_revision(replica_set),
                        name: replica_set.metadata.name.clone().unwrap_or_default(),
                        hash,
                        change_cause: change_cause(replica_set.metadata.annotations.as_ref()),
                        template,
                        patch,
                    }
                })
                .collect();
            Ok(Snapshot {
                observed: observed(
                    live.typed.metadata.generation,
                    live.typed
                        .status
                        .as_ref()
                        .and_then(|status| status.observed_generation),
                ),
                template: live.template,
                recorded,
            })
        }
    }
}

/// Like [`snapshot`], once the controller has observed the workload's generation and recorded its template.
fn settled_snapshot(
    api: &dyn ClusterApi,
    addon: Addon,
    timeout: Duration,
) -> Result<Snapshot, AddonError> {
    let deadline = Instant::now() + timeout;
    loop {
        let snapshot = snapshot(api, addon)?;
        if snapshot.observed && snapshot.current().is_some() {
            return Ok(snapshot);
        }
        if Instant::now() >= deadline {
            return Err(if snapshot.recorded.is_empty() {
                AddonError::NoHistory {
                    object: addon.object(),
                }
            } else {
                AddonError::NotObserved {
                    object: addon.object(),
                    timeout,
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The addon's rollout history (read-only).
pub fn history(api: &dyn ClusterApi, addon: Addon) -> Result<History, AddonError> {
    let snapshot = snapshot(api, addon)?;
    let current = snapshot.current();
    let mut revisions: Vec<RevisionRow> = snapshot
        .recorded
        .iter()
        .map(|recorded| RevisionRow {
            revision: recorded.number,
            name: recorded.name.clone(),
            hash: recorded.hash.clone(),
            change_cause: recorded.change_cause.clone(),
            images: recorded.images(),
            current: Some(recorded.number) == current,
        })
        .collect();
    revisions.sort_by_key(|row| row.revision);
    Ok(History {
        kind: addon.workload().kind().to_owned(),
        namespace: addon.namespace().to_owned(),
        name: addon.workload_name().to_owned(),
        revisions,
    })
}

/// The addon's rollout state (read-only).
pub fn status(api: &dyn ClusterApi, addon: Addon) -> Result<WorkloadRollout, AddonError> {
    Ok(rollout::observe(
        api,
        addon.workload(),
        addon.namespace(),
        addon.workload_name(),
    )?)
}

/// What a rollback will do; only [`plan_rollback`] makes one, and only [`restore`] consumes a `Restore`.
#[derive(Debug, Clone, PartialEq)]
pub enum RollbackPlan {
    /// The workload already runs this revision's template: nothing to do.
    AlreadyCurrent { revision: i64 },
    /// Send this revision's patch to the workload.
    Restore {
        revision: i64,
        /// The revision the workload runs now.
        from: Option<i64>,
        patch: Value,
        images: Vec<String>,
        /// A unified diff of the template, from what runs now to the revision.
        diff: String,
    },
}

/// Picks the revision to roll back to, as `kubectl rollout undo [--to-revision N]` does (read-only).
pub fn plan_rollback(
    api: &dyn ClusterApi,
    addon: Addon,
    to_revision: Option<i64>,
) -> Result<RollbackPlan, AddonError> {
    let snapshot = settled_snapshot(api, addon, OBSERVE_TIMEOUT)?;
    let mut recorded = snapshot.recorded.clone();
    recorded.sort_by_key(|recorded| recorded.number);
    let chosen = match to_revision {
        Some(wanted) => recorded
            .iter()
            .find(|recorded| recorded.number == wanted)
            .ok_or_else(|| AddonError::RevisionNotFound {
                object: addon.object(),
                revision: wanted,
                available: recorded.iter().map(|recorded| recorded.number).collect(),
            })?,
        // The second newest, as kubectl picks it.
        None => match recorded.len() {
            0 => {
                return Err(AddonError::NoHistory {
                    object: addon.object(),
                })
            }
            1 => {
                return Err(AddonError::NoPrevious {
                    object: addon.object(),
                    revision: recorded[0].number,
                })
            }
            count => &recorded[count - 2],
        },
    };
    if chosen.matches(&snapshot.template) {
        return Ok(RollbackPlan::AlreadyCurrent {
            revision: chosen.number,
        });
    }
    if chosen.patch.pointer("/spec/template").is_none() {
        return Err(AddonError::Unreadable {
            object: addon.object(),
            revision: chosen.number,
        });
    }
    Ok(RollbackPlan::Restore {
        revision: chosen.number,
        from: snapshot.current(),
        patch: chosen.patch.clone(),
        images: chosen.images(),
        diff: template_diff(addon, &snapshot.template, &chosen.template, chosen.number),
    })
}

/// A unified diff of the pod template as YAML, from what runs now to the revision (for `--dry-run`).
fn template_diff(addon: Addon, current: &Value, target: &Value, revision: i64) -> String {
    let yaml = |template: &Value| {
        bosun_config::yaml::to_string_sorted(&normalized_template(template)).unwrap_or_default()
    };
    let (before, after) = (yaml(current), yaml(target));
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{} spec.template (now)", addon.object()),
            &format!("{} spec.template (revision {revision})", addon.object()),
        )
        .to_string()
}

/// Sends a planned revision back to the workload (a strategic-merge patch of `spec.template`).
pub fn restore(
    api: &dyn ClusterApi,
    addon: Addon,
    plan: &RollbackPlan,
) -> Result<Outcome, AddonError> {
    match plan {
        RollbackPlan::AlreadyCurrent { .. } => Ok(Outcome::Unchanged),
        RollbackPlan::Restore { patch, .. } => {
            api.strategic_patch(&addon.reference(), patch)?;
            Ok(Outcome::Updated)
        }
    }
}

/// What the `addon rollback` workflow works with.
pub struct AddonData {
    pub api: Box<dyn ClusterApi>,
    pub addon: Addon,
    pub plan: RollbackPlan,
    /// How long to follow the rollout (zero: do not follow).
    pub timeout: Duration,
}

fn run_rollback(ctx: &mut PhaseCtx<'_, AddonData>) -> Result<(), PhaseError> {
    let data = ctx.data;
    let addon = data.addon;
    if ctx.host.dry_run {
        match &data.plan {
            RollbackPlan::AlreadyCurrent { revision } => ctx.record_with_detail(
                format!("cluster: {}", addon.object()),
                Outcome::Unchanged,
                Some(format!(
                    "current template already matches revision {revision}"
                )),
            ),
            RollbackPlan::Restore {
                revision,
                images,
                diff,
                ..
            } => {
                let mut text = format!(
                    "would restore revision {revision} of {} ({}):",
                    addon.object(),
                    images.join(", ")
                );
                for line in diff.lines() {
                    text.push_str("\n    ");
                    text.push_str(line);
                }
                ctx.info(text);
            }
        }
        return Ok(());
    }
    let outcome = restore(data.api.as_ref(), addon, &data.plan).map_err(|error| {
        let hint = error.hint(addon);
        let failed = PhaseError::failed(error.to_string());
        match hint {
            Some(hint) => failed.with_hint(hint),
            None => failed,
        }
    })?;
    let detail = match &data.plan {
        RollbackPlan::AlreadyCurrent { revision } => {
            format!("current template already matches revision {revision}")
        }
        RollbackPlan::Restore {
            revision,
            from,
            images,
            ..
        } => {
            let from = from
                .map(|from| format!(" (was revision {from})"))
                .unwrap_or_default();
            format!("restored revision {revision}{from}: {}", images.join(", "))
        }
    };
    ctx.record_with_detail(
        format!("cluster: {}", addon.object()),
        outcome,
        Some(detail),
    );
    if outcome == Outcome::Unchanged {
        return Ok(());
    }
    if data.timeout.is_zero() {
        ctx.info("not following the rollout (--timeout 0s)");
        return Ok(());
    }
    rollout::follow(
        data.api.as_ref(),
        addon.workload(),
        addon.namespace(),
        addon.workload_name(),
        data.timeout,
        ctx,
    )
    .map_err(|error| error.into_phase_error(addon.name()))?;
    Ok(())
}

/// `bosun addon rollback`: one phase that restores the planned revision and follows the rollout.
pub fn rollback_workflow() -> Workflow<AddonData> {
    Workflow::new("addon-rollback").phase(
        Phase::new(
            "rollback",
            "Restore an earlier revision of the addon and follow its rollout",
        )
        .run(run_rollback),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_reads_like_kubectl_rollout_history() {
        let history = History {
            kind: "DaemonSet".to_owned(),
            namespace: "kube-system".to_owned(),
            name: "kube-proxy".to_owned(),
            revisions: vec![
                RevisionRow {
                    revision: 1,
                    name: "kube-proxy-aaa".to_owned(),
                    hash: "aaa".to_owned(),
                    change_cause: None,
                    images: vec!["registry.k8s.io/kube-proxy:v1.35.4".to_owned()],
                    current: false,
                },
                RevisionRow {
                    revision: 2,
                    name: "kube-proxy-bbb".to_owned(),
                    hash: "bbb".to_owned(),
                    change_cause: Some("image bump".to_owned()),
                    images: vec!["mirror.example/k8s/kube-proxy:v1.35.4".to_owned()],
                    current: true,
                },
            ],
        };
        assert_eq!(
            history.table(),
            "daemonset.apps/kube-proxy\n\
             REVISION  CHANGE-CAUSE  IMAGES                                 CURRENT\n\
             1         <none>        registry.k8s.io/kube-proxy:v1.35.4\n\
             2         image bump    mirror.example/k8s/kube-proxy:v1.35.4  *\n"
        );
    }

    #[test]
    fn refusals_point_at_the_history() {
        let error = AddonError::RevisionNotFound {
            object: Addon::KubeProxy.object(),
            revision: 9,
            available: vec![1, 2],
        };
        assert_eq!(
            error.to_string(),
            "DaemonSet kube-system/kube-proxy has no revision 9 (its revisions: 1, 2)"
        );
        assert!(error.is_refusal());
        assert_eq!(
            error.hint(Addon::KubeProxy).as_deref(),
            Some("`bosun addon history kube-proxy` lists the revisions that exist")
        );
        assert_eq!(Addon::CoreDns.object(), "Deployment kube-system/coredns");
    }
}
