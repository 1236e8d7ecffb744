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
//! Guarantees: [`plan_rollback`] only reads; nothing changes unless it returns a [`RollbackPlan::Restore`], and then
//! only the DaemonSet's `spec.template`. Assumptions: the DaemonSet controller runs (the planner waits until it has
//! recorded the current template, so that "previous" means previous to what runs now). Caveats: the next
//! `bosun init phase addon kube-proxy` applies the configuration's template again, as it should; a rollback is a
//! repair until the configuration is fixed.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use serde::Serialize;

use crate::cluster::rollout::{
    self, revision_hash, revision_matches, revision_template, revisions_of, DaemonSetRollout,
    LiveDaemonSet, RolloutError,
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
}

impl Addon {
    /// The name users type (`kube-proxy`).
    pub fn name(self) -> &'static str {
        match self {
            Addon::KubeProxy => "kube-proxy",
        }
    }

    pub fn namespace(self) -> &'static str {
        "kube-system"
    }

    /// The name of the addon's DaemonSet.
    pub fn daemon_set(self) -> &'static str {
        match self {
            Addon::KubeProxy => "kube-proxy",
        }
    }

    /// `DaemonSet kube-system/kube-proxy`.
    pub fn object(self) -> String {
        ObjectRef::of::<DaemonSet>(Some(self.namespace()), self.daemon_set()).to_string()
    }
}

/// Why an addon command refused or failed. Refusals change nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AddonError {
    #[error("{object} does not exist")]
    Missing { object: String },
    #[error("{object} has no ControllerRevisions: the DaemonSet controller has not recorded any template")]
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
    #[error("the DaemonSet controller has not recorded the current template of {object} within {}", rollout::humanize(*.timeout))]
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
                "the DaemonSet controller runs in kube-controller-manager; check that it is running \
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
    /// The ControllerRevision's name (`kube-proxy-6c5d8b7f9`).
    pub name: String,
    /// The `controller-revision-hash` its pods carry.
    pub hash: String,
    /// The `kubernetes.io/change-cause` annotation, if any.
    pub change_cause: Option<String>,
    /// The container images of its template.
    pub images: Vec<String>,
    /// Whether the DaemonSet's template is this revision's.
    pub current: bool,
}

/// A DaemonSet's history, oldest revision first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
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
        let mut text = format!("daemonset.apps/{}\n", self.name);
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

fn images(revision: &ControllerRevision) -> Vec<String> {
    revision_template(revision)
        .and_then(|template| template.pointer("/spec/containers").cloned())
        .and_then(|containers| containers.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|container| container["image"].as_str().map(str::to_owned))
        .collect()
}

fn live(api: &dyn ClusterApi, addon: Addon) -> Result<LiveDaemonSet, AddonError> {
    LiveDaemonSet::get(api, addon.namespace(), addon.daemon_set())?.ok_or_else(|| {
        AddonError::Missing {
            object: addon.object(),
        }
    })
}

/// The addon's DaemonSet and its revisions as they are now.
fn snapshot(
    api: &dyn ClusterApi,
    addon: Addon,
) -> Result<(LiveDaemonSet, Vec<ControllerRevision>), AddonError> {
    let daemon_set = live(api, addon)?;
    let revisions = revisions_of(api, &daemon_set.typed)?;
    Ok((daemon_set, revisions))
}

/// Like [`snapshot`], once the controller has observed the DaemonSet's generation and recorded its template.
fn settled_snapshot(
    api: &dyn ClusterApi,
    addon: Addon,
    timeout: Duration,
) -> Result<(LiveDaemonSet, Vec<ControllerRevision>), AddonError> {
    let deadline = Instant::now() + timeout;
    loop {
        let (daemon_set, revisions) = snapshot(api, addon)?;
        let generation = daemon_set.typed.metadata.generation.unwrap_or(0);
        let observed = daemon_set
            .typed
            .status
            .as_ref()
            .and_then(|status| status.observed_generation)
            .unwrap_or(0);
        let recorded = revisions
            .iter()
            .any(|revision| revision_matches(revision, &daemon_set.template));
        if observed >= generation && recorded {
            return Ok((daemon_set, revisions));
        }
        if Instant::now() >= deadline {
            return Err(if revisions.is_empty() {
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

fn rows(daemon_set: &LiveDaemonSet, revisions: &[ControllerRevision]) -> Vec<RevisionRow> {
    let name = daemon_set.typed.metadata.name.clone().unwrap_or_default();
    let current = revisions
        .iter()
        .filter(|revision| revision_matches(revision, &daemon_set.template))
        .map(|revision| revision.revision)
        .max();
    revisions
        .iter()
        .map(|revision| RevisionRow {
            revision: revision.revision,
            name: revision.metadata.name.clone().unwrap_or_default(),
            hash: revision_hash(revision, &name).unwrap_or_default(),
            change_cause: revision
                .metadata
                .annotations
                .as_ref()
                .and_then(|annotations| annotations.get(CHANGE_CAUSE_ANNOTATION).cloned()),
            images: images(revision),
            current: Some(revision.revision) == current,
        })
        .collect()
}

/// The addon's rollout history (read-only).
pub fn history(api: &dyn ClusterApi, addon: Addon) -> Result<History, AddonError> {
    let (daemon_set, revisions) = snapshot(api, addon)?;
    Ok(History {
        namespace: addon.namespace().to_owned(),
        name: addon.daemon_set().to_owned(),
        revisions: rows(&daemon_set, &revisions),
    })
}

/// The addon's rollout state (read-only).
pub fn status(api: &dyn ClusterApi, addon: Addon) -> Result<DaemonSetRollout, AddonError> {
    Ok(rollout::observe(
        api,
        addon.namespace(),
        addon.daemon_set(),
    )?)
}

/// What a rollback will do; only [`plan_rollback`] makes one, and only [`restore`] consumes a `Restore`.
#[derive(Debug, Clone, PartialEq)]
pub enum RollbackPlan {
    /// The DaemonSet already runs this revision's template: nothing to do.
    AlreadyCurrent { revision: i64 },
    /// Send this revision's recorded patch back to the DaemonSet.
    Restore {
        revision: i64,
        /// The revision the DaemonSet runs now.
        from: Option<i64>,
        patch: serde_json::Value,
        images: Vec<String>,
    },
}

/// Picks the revision to roll back to, as `kubectl rollout undo daemonset [--to-revision N]` does (read-only).
pub fn plan_rollback(
    api: &dyn ClusterApi,
    addon: Addon,
    to_revision: Option<i64>,
) -> Result<RollbackPlan, AddonError> {
    let (daemon_set, revisions) = settled_snapshot(api, addon, OBSERVE_TIMEOUT)?;
    let current = revisions
        .iter()
        .filter(|revision| revision_matches(revision, &daemon_set.template))
        .map(|revision| revision.revision)
        .max();
    let chosen = match to_revision {
        Some(wanted) => revisions
            .iter()
            .find(|revision| revision.revision == wanted)
            .ok_or_else(|| AddonError::RevisionNotFound {
                object: addon.object(),
                revision: wanted,
                available: revisions.iter().map(|revision| revision.revision).collect(),
            })?,
        // The second newest, as kubectl picks it.
        None => match revisions.len() {
            0 => {
                return Err(AddonError::NoHistory {
                    object: addon.object(),
                })
            }
            1 => {
                return Err(AddonError::NoPrevious {
                    object: addon.object(),
                    revision: revisions[0].revision,
                })
            }
            count => &revisions[count - 2],
        },
    };
    if revision_matches(chosen, &daemon_set.template) {
        return Ok(RollbackPlan::AlreadyCurrent {
            revision: chosen.revision,
        });
    }
    let patch = chosen
        .data
        .as_ref()
        .map(|data| data.0.clone())
        .filter(|data| data.pointer("/spec/template").is_some())
        .ok_or_else(|| AddonError::Unreadable {
            object: addon.object(),
            revision: chosen.revision,
        })?;
    Ok(RollbackPlan::Restore {
        revision: chosen.revision,
        from: current,
        patch,
        images: images(chosen),
    })
}

/// Sends a planned revision back to the DaemonSet (a strategic-merge patch of `spec.template`).
pub fn restore(
    api: &dyn ClusterApi,
    addon: Addon,
    plan: &RollbackPlan,
) -> Result<Outcome, AddonError> {
    match plan {
        RollbackPlan::AlreadyCurrent { .. } => Ok(Outcome::Unchanged),
        RollbackPlan::Restore { patch, .. } => {
            api.strategic_patch(
                &ObjectRef::of::<DaemonSet>(Some(addon.namespace()), addon.daemon_set()),
                patch,
            )?;
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
        addon.namespace(),
        addon.daemon_set(),
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
