//! Following a DaemonSet rollout: after an addon phase (or `bosun addon rollback`) changes a DaemonSet, watch the
//! controller roll the new template out node by node, report progress, and give up after a timeout naming every
//! node whose pod is not updated and available, with the pod's status reason.
//!
//! A rollout is complete by kubectl's rule (`kubectl rollout status daemonset`): the controller has observed the
//! current generation, and `updatedNumberScheduled` and `numberAvailable` both reach `desiredNumberScheduled`.
//! The per-node view comes from the DaemonSet's own pods (their `controller-revision-hash` label against the
//! ControllerRevision that holds the current template) and the Nodes that match its `nodeSelector`.
//!
//! Reads only; the one write is [`apply_and_follow`]'s server-side apply of the addon's objects.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{api_error, api_timeout, with_retry};
use crate::engine::{PhaseCtx, PhaseError};
use crate::host::cluster::{self, ClusterApi, ClusterError, ObjectRef};
use crate::host::Outcome;
use crate::init::InitData;

/// The label the DaemonSet controller puts on its pods and ControllerRevisions.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// How long `init` follows a kube-proxy rollout unless `--kube-proxy-rollout-timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How often the follower looks again.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Where a follower reports: the engine's events inside a phase.
pub trait RolloutReporter {
    /// `done` of `total` nodes updated and available, with a one-line summary.
    fn progress(&self, done: u64, total: u64, text: String);
    /// A milestone (a node updated, the rollout complete).
    fn info(&self, text: String);
}

impl<C> RolloutReporter for PhaseCtx<'_, C> {
    fn progress(&self, done: u64, total: u64, text: String) {
        PhaseCtx::progress(self, done, total, text);
    }

    fn info(&self, text: String) {
        PhaseCtx::info(self, text);
    }
}

/// One node's part in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRollout {
    pub node: String,
    /// The DaemonSet's pod on the node; `None` when the controller has not created one yet.
    pub pod: Option<String>,
    /// The revision number of the pod's template, when its ControllerRevision still exists.
    pub revision: Option<i64>,
    /// Whether the pod runs the current template.
    pub updated: bool,
    /// Whether the pod is Ready.
    pub ready: bool,
    /// Why the node is not done yet (`Pending: ImagePullBackOff …`); `None` when updated and ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl NodeRollout {
    pub fn done(&self) -> bool {
        self.updated && self.ready
    }
}

/// The state of a DaemonSet's or Deployment's rollout at one moment.
///
/// For a DaemonSet the rows are nodes and the counts are kubectl's `desiredNumberScheduled`,
/// `updatedNumberScheduled`, `numberReady`, `numberAvailable`; for a Deployment the rows are pods and the counts are
/// `spec.replicas`, `updatedReplicas`, `readyReplicas`, `availableReplicas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRollout {
    /// `DaemonSet` or `Deployment`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    pub observed_generation: i64,
    /// The revision number holding the current template; `None` until the controller has recorded it.
    pub revision: Option<i64>,
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub complete: bool,
    /// kubectl's one-line status (`Waiting for daemon set "kube-proxy" rollout to finish: 0 out of 1 new pods …`).
    pub message: String,
    pub nodes: Vec<NodeRollout>,
}

impl WorkloadRollout {
    /// `DaemonSet kube-system/kube-proxy`.
    pub fn object(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    fn is_deployment(&self) -> bool {
        self.kind == "Deployment"
    }

    /// What the counts count: nodes for a DaemonSet, replicas for a Deployment.
    fn unit(&self) -> &'static str {
        if self.is_deployment() {
            "replicas"
        } else {
            "nodes"
        }
    }

    fn counts(&self) -> String {
        // Until the controller has seen the change, the status counts describe the old template.
        if self.generation > self.observed_generation {
            return format!(
                "waiting for the {} controller to observe generation {} (it has seen {})",
                self.kind, self.generation, self.observed_generation
            );
        }
        format!(
            "{} of {} {} updated, {} ready, {} available",
            self.updated,
            self.desired,
            self.unit(),
            self.ready,
            self.available
        )
    }

    /// The nodes that are not done, with their reasons, for an error message.
    pub fn pending_nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|node| !node.done())
            .map(|node| {
                let pod = node
                    .pod
                    .as_ref()
                    .map(|pod| format!("pod {pod}"))
                    .unwrap_or_else(|| "no pod".to_owned());
                if self.is_deployment() {
                    return format!(
                        "{pod} (node {}): {}",
                        node.node,
                        node.reason.as_deref().unwrap_or("not done")
                    );
                }
                format!(
                    "node {} ({pod}): {}",
                    node.node,
                    node.reason.as_deref().unwrap_or("not done")
                )
            })
            .collect()
    }
}

/// Why a follow ended without a complete rollout.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RolloutError {
    #[error("{object} does not exist")]
    Missing { object: String },
    #[error("{} did not finish rolling out within {}: {}; {}", .state.object(), humanize(*.timeout), .state.counts(), describe_pending(.state))]
    Timeout {
        timeout: Duration,
        state: Box<WorkloadRollout>,
    },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

fn describe_pending(state: &WorkloadRollout) -> String {
    let pending = state.pending_nodes();
    if pending.is_empty() {
        state.message.trim_end().to_owned()
    } else {
        pending.join("; ")
    }
}

/// A duration as a user typed it (`5m`, `90s`, `1m30s`).
pub fn humanize(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match (seconds / 60, seconds % 60) {
        (0, seconds) => format!("{seconds}s"),
        (minutes, 0) => format!("{minutes}m"),
        (minutes, seconds) => format!("{minutes}m{seconds}s"),
    }
}

impl RolloutError {
    /// The phase error a user sees, with a hint where one helps.
    pub fn into_phase_error(self, addon: &str) -> PhaseError {
        match self {
            RolloutError::Cluster(error) => api_error(error),
            RolloutError::Missing { .. } => PhaseError::failed(self.to_string())
                .with_hint(format!("it is created by `bosun init phase addon {addon}`")),
            RolloutError::Timeout { ref state, .. } => {
                let first_pod = state
                    .nodes
                    .iter()
                    .find(|node| !node.done())
                    .and_then(|node| node.pod.clone());
                let mut hint = format!("`bosun addon status {addon}` shows every node");
                if let Some(pod) = first_pod {
                    hint.push_str(&format!(
                        "; `kubectl --namespace {} describe pod {pod}` shows the pod's events",
                        state.namespace
                    ));
                }
                hint.push_str(&format!(
                    "; `bosun addon rollback {addon}` restores the previous template"
                ));
                PhaseError::failed(self.to_string()).with_hint(hint)
            }
        }
    }
}

/// Whether `owners` names `uid` as its controller (Kubernetes' `IsControlledBy`).
pub fn controlled_by(owners: Option<&Vec<OwnerReference>>, uid: &str) -> bool {
    owners.is_some_and(|owners| {
        owners
            .iter()
            .any(|owner| owner.controller == Some(true) && owner.uid == uid)
    })
}

/// Drops `null` members, so that templates compare equal whichever serializer wrote them.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, member)| !member.is_null())
                .map(|(key, member)| (key.clone(), without_nulls(member)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The strategic-merge patch a ControllerRevision of a DaemonSet holds for `template`:
/// `{"spec": {"template": {…, "$patch": "replace"}}}` (what the DaemonSet controller records and what
/// `kubectl rollout undo` sends back).
pub fn template_patch(template: &Value) -> Value {
    let mut template = template.clone();
    if let Value::Object(map) = &mut template {
        map.insert("$patch".to_owned(), Value::from("replace"));
    }
    serde_json::json!({ "spec": { "template": template } })
}

/// Whether a revision records exactly `template` (kubectl's `daemonSetMatch`, compared as JSON values).
pub fn revision_matches(revision: &ControllerRevision, template: &Value) -> bool {
    revision
        .data
        .as_ref()
        .is_some_and(|data| without_nulls(&data.0) == without_nulls(&template_patch(template)))
}

/// The template a revision records (its patch without the `$patch` directive).
pub fn revision_template(revision: &ControllerRevision) -> Option<Value> {
    let mut template = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Value::Object(map) = &mut template {
        map.remove("$patch");
    }
    Some(template)
}

/// The hash a revision's pods carry (its label, else the suffix of its name).
pub fn revision_hash(revision: &ControllerRevision, owner: &str) -> Option<String> {
    revision
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(REVISION_HASH_LABEL).cloned())
        .or_else(|| {
            revision
                .metadata
                .name
                .as_deref()
                .and_then(|name| name.strip_prefix(&format!("{owner}-")))
                .map(str::to_owned)
        })
}

/// A workload as the API server returned it: typed, and its pod template as the server wrote it (compared with
/// recorded revisions as JSON, so a typed round trip cannot make a match fail).
#[derive(Debug, Clone)]
pub struct Live<K> {
    pub typed: K,
    pub template: Value,
}

/// A live DaemonSet.
pub type LiveDaemonSet = Live<DaemonSet>;
/// A live Deployment.
pub type LiveDeployment = Live<Deployment>;

impl<K: k8s_openapi::Resource + DeserializeOwned> Live<K> {
    pub fn from_value(value: Value) -> Result<Live<K>, ClusterError> {
        let template = value
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        let typed = serde_json::from_value(value).map_err(|error| ClusterError::Invalid {
            reason: format!(
                "the API server returned a {} that does not parse: {error}",
                K::KIND
            ),
        })?;
        Ok(Live { typed, template })
    }

    /// Reads the object; `Ok(None)` when it does not exist.
    pub fn get(
        api: &dyn ClusterApi,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Live<K>>, ClusterError> {
        api.get(&ObjectRef::of::<K>(Some(namespace), name))?
            .map(Live::from_value)
            .transpose()
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}

/// Why a node is not Ready, or `None` when it is.
fn node_problem(node: &Node) -> Option<String> {
    let conditions = node
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref());
    let ready = conditions.and_then(|conditions| {
        conditions
            .iter()
            .find(|condition| condition.type_ == "Ready")
    });
    match ready {
        None => Some("the node has never reported its status (is its kubelet running?)".to_owned()),
        Some(condition) if condition.status == "True" => None,
        Some(condition) => Some(format!(
            "the node is not Ready ({}{})",
            condition.reason.as_deref().unwrap_or(&condition.status),
            condition
                .message
                .as_deref()
                .map(|message| format!(": {message}"))
                .unwrap_or_default()
        )),
    }
}

/// Why a pod is not Ready: the first waiting or terminated container, an unschedulable condition, or the node.
fn pod_problem(pod: &Pod, node: Option<&Node>) -> String {
    if pod.metadata.deletion_timestamp.is_some() {
        return "Terminating".to_owned();
    }
    let status = pod.status.as_ref();
    let phase = status
        .and_then(|status| status.phase.clone())
        .unwrap_or_else(|| "Pending".to_owned());
    let containers = status
        .and_then(|status| status.container_statuses.clone())
        .unwrap_or_default();
    for container in &containers {
        let state = container.state.as_ref();
        if let Some(waiting) = state.and_then(|state| state.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or("Waiting");
            let message = waiting
                .message
                .as_deref()
                .map(|message| format!(" ({message})"))
                .unwrap_or_default();
            return format!("{phase}, container {} {reason}{message}", container.name);
        }
        if let Some(terminated) = state.and_then(|state| state.terminated.as_ref()) {
            return format!(
                "{phase}, container {} terminated ({}, exit code {})",
                container.name,
                terminated.reason.as_deref().unwrap_or("no reason"),
                terminated.exit_code
            );
        }
        if !container.ready {
            return format!(
                "{phase}, container {} not ready ({} restarts)",
                container.name, container.restart_count
            );
        }
    }
    let conditions = status
        .and_then(|status| status.conditions.clone())
        .unwrap_or_default();
    if let Some(unscheduled) = conditions
        .iter()
        .find(|condition| condition.type_ == "PodScheduled" && condition.status != "True")
    {
        return format!(
            "{phase}, not scheduled ({}{})",
            unscheduled.reason.as_deref().unwrap_or("no reason"),
            unscheduled
                .message
                .as_deref()
                .map(|message| format!(": {message}"))
                .unwrap_or_default()
        );
    }
    if let Some(problem) = node.and_then(node_problem) {
        return format!("{phase}, {problem}");
    }
    if let Some(reason) = status.and_then(|status| status.reason.clone()) {
        return format!("{phase}, {reason}");
    }
    format!("{phase}, not ready")
}

/// The node a DaemonSet pod is for: where it is bound, or, before the scheduler binds it, the node its required
/// affinity names (the controller pins each pod with `matchFields: metadata.name In [node]`).
fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = &spec.node_name {
        return Some(node.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|term| {
        term.match_fields.as_ref()?.iter().find_map(|field| {
            (field.key == "metadata.name" && field.operator == "In")
                .then(|| field.values.as_ref()?.first().cloned())
                .flatten()
        })
    })
}

fn node_matches(node: &Node, selector: &BTreeMap<String, String>) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// Judges a rollout from the DaemonSet, its ControllerRevisions, its pods and the cluster's Nodes (pure).
///
/// Nodes are those that run one of its pods plus those that match its `nodeSelector` (the addons bosun owns
/// tolerate every taint, so the selector decides where they run).
pub fn assess(
    live: &LiveDaemonSet,
    revisions: &[ControllerRevision],
    pods: &[Pod],
    nodes: &[Node],
) -> WorkloadRollout {
    let daemon_set = &live.typed;
    let name = daemon_set.metadata.name.clone().unwrap_or_default();
    let namespace = daemon_set.metadata.namespace.clone().unwrap_or_default();
    let generation = daemon_set.metadata.generation.unwrap_or(0);
    let status = daemon_set.status.clone().unwrap_or_default();
    let observed_generation = status.observed_generation.unwrap_or(0);
    let current = revisions
        .iter()
        .filter(|revision| revision_matches(revision, &live.template))
        .max_by_key(|revision| revision.revision);
    let current_hash = current.and_then(|revision| revision_hash(revision, &name));
    let revision_of_hash: BTreeMap<String, i64> = revisions
        .iter()
        .filter_map(|revision| Some((revision_hash(revision, &name)?, revision.revision)))
        .collect();
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    let observed = generation <= observed_generation;
    let (complete, message) = if !observed {
        (
            false,
            "Waiting for daemon set spec update to be observed...".to_owned(),
        )
    } else if updated < desired {
        (
            false,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
        )
    } else if available < desired {
        (
            false,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
            ),
        )
    } else {
        (true, format!("daemon set {name:?} successfully rolled out"))
    };

    let nodes_by_name: BTreeMap<String, &Node> = nodes
        .iter()
        .filter_map(|node| Some((node.metadata.name.clone()?, node)))
        .collect();
    let selector = daemon_set
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod_spec| pod_spec.node_selector.clone())
        .unwrap_or_default();
    let mut rows: BTreeMap<String, NodeRollout> = BTreeMap::new();
    let mut sorted_pods: Vec<&Pod> = pods.iter().collect();
    // A terminating pod and its replacement may share a node: let the live one speak for it.
    sorted_pods.sort_by_key(|pod| pod.metadata.deletion_timestamp.is_none());
    for pod in sorted_pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let node_name = target_node(pod).unwrap_or_else(|| format!("(unscheduled pod {pod_name})"));
        let hash = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(REVISION_HASH_LABEL).cloned());
        let updated = observed && hash.is_some() && hash == current_hash;
        let ready = pod_ready(pod) && pod.metadata.deletion_timestamp.is_none();
        let reason = if updated && ready {
            None
        } else {
            let revision = hash
                .as_ref()
                .and_then(|hash| revision_of_hash.get(hash))
                .map(|revision| format!("revision {revision}"))
                .unwrap_or_else(|| "an unknown revision".to_owned());
            let state = if ready {
                "Running".to_owned()
            } else {
                pod_problem(pod, nodes_by_name.get(&node_name).copied())
            };
            Some(if updated {
                state
            } else {
                format!("runs the old template ({revision}), {state}")
            })
        };
        rows.insert(
            node_name.clone(),
            NodeRollout {
                node: node_name,
                pod: Some(pod_name),
                revision: hash
                    .as_ref()
                    .and_then(|hash| revision_of_hash.get(hash))
                    .copied(),
                updated,
                ready,
                reason,
            },
        );
    }
    for (node_name, node) in &nodes_by_name {
        if rows.contains_key(node_name) || !node_matches(node, &selector) {
            continue;
        }
        let unschedulable = node.spec.as_ref().and_then(|spec| spec.unschedulable) == Some(true);
        let mut reason = "no pod yet".to_owned();
        if unschedulable {
            reason.push_str(" (the node is cordoned)");
        } else if let Some(problem) = node_problem(node) {
            reason.push_str(&format!(" ({problem})"));
        }
        rows.insert(
            node_name.clone(),
            NodeRollout {
                node: node_name.clone(),
                pod: None,
                revision: None,
                updated: false,
                ready: false,
                reason: Some(reason),
            },
        );
    }
    WorkloadRollout {
        kind: "DaemonSet".to_owned(),
        namespace,
        name,
        generation,
        observed_generation,
        revision: current.map(|revision| revision.revision),
        desired,
        updated,
        ready: status.number_ready,
        available,
        complete,
        message,
        nodes: rows.into_values().collect(),
    }
}

/// The ControllerRevisions a DaemonSet controls, oldest first.
pub fn revisions_of(
    api: &dyn ClusterApi,
    daemon_set: &DaemonSet,
) -> Result<Vec<ControllerRevision>, ClusterError> {
    let uid = daemon_set.metadata.uid.clone().unwrap_or_default();
    let mut revisions: Vec<ControllerRevision> =
        cluster::list::<ControllerRevision>(api, daemon_set.metadata.namespace.as_deref(), None)?
            .into_iter()
            .filter(|revision| controlled_by(revision.metadata.owner_references.as_ref(), &uid))
            .collect();
    revisions.sort_by_key(|revision| revision.revision);
    Ok(revisions)
}

/// Which kind of workload a rollout is followed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    DaemonSet,
    Deployment,
}

impl Workload {
    pub fn kind(self) -> &'static str {
        match self {
            Workload::DaemonSet => "DaemonSet",
            Workload::Deployment => "Deployment",
        }
    }

    fn reference(self, namespace: &str, name: &str) -> ObjectRef {
        match self {
            Workload::DaemonSet => ObjectRef::of::<DaemonSet>(Some(namespace), name),
            Workload::Deployment => ObjectRef::of::<Deployment>(Some(namespace), name),
        }
    }
}

/// The ReplicaSets a Deployment controls, oldest revision first.
pub fn replica_sets_of(
    api: &dyn ClusterApi,
    deployment: &Deployment,
) -> Result<Vec<ReplicaSet>, ClusterError> {
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let mut replica_sets: Vec<ReplicaSet> =
        cluster::list::<ReplicaSet>(api, deployment.metadata.namespace.as_deref(), None)?
            .into_iter()
            .filter(|replica_set| {
                controlled_by(replica_set.metadata.owner_references.as_ref(), &uid)
            })
            .collect();
    replica_sets.sort_by_key(replica_set_revision);
    Ok(replica_sets)
}

/// Reads the workload and everything [`assess`] (or [`assess_deployment`]) needs.
pub fn observe(
    api: &dyn ClusterApi,
    workload: Workload,
    namespace: &str,
    name: &str,
) -> Result<WorkloadRollout, RolloutError> {
    let missing = || RolloutError::Missing {
        object: workload.reference(namespace, name).to_string(),
    };
    let nodes = cluster::list::<Node>(api, None, None)?;
    let pods_in_namespace = cluster::list::<Pod>(api, Some(namespace), None)?;
    match workload {
        Workload::DaemonSet => {
            let live = LiveDaemonSet::get(api, namespace, name)?.ok_or_else(missing)?;
            let uid = live.typed.metadata.uid.clone().unwrap_or_default();
            let revisions = revisions_of(api, &live.typed)?;
            let pods: Vec<Pod> = pods_in_namespace
                .into_iter()
                .filter(|pod| controlled_by(pod.metadata.owner_references.as_ref(), &uid))
                .collect();
            Ok(assess(&live, &revisions, &pods, &nodes))
        }
        Workload::Deployment => {
            let live = LiveDeployment::get(api, namespace, name)?.ok_or_else(missing)?;
            let replica_sets = replica_sets_of(api, &live.typed)?;
            let owners: BTreeSet<String> = replica_sets
                .iter()
                .filter_map(|replica_set| replica_set.metadata.uid.clone())
                .collect();
            let pods: Vec<Pod> = pods_in_namespace
                .into_iter()
                .filter(|pod| {
                    owners
                        .iter()
                        .any(|uid| controlled_by(pod.metadata.owner_references.as_ref(), uid))
                })
                .collect();
            Ok(assess_deployment(&live, &replica_sets, &pods, &nodes))
        }
    }
}

/// The annotation the Deployment controller numbers its ReplicaSets with.
pub const DEPLOYMENT_REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// The label the Deployment controller puts on a ReplicaSet's template and pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// A ReplicaSet's revision number (0 when it has none).
pub fn replica_set_revision(replica_set: &ReplicaSet) -> i64 {
    replica_set
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(DEPLOYMENT_REVISION_ANNOTATION))
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

/// A ReplicaSet's pod template as JSON (the typed round trip of the list).
pub fn replica_set_template(replica_set: &ReplicaSet) -> Value {
    replica_set
        .spec
        .as_ref()
        .and_then(|spec| spec.template.as_ref())
        .and_then(|template| serde_json::to_value(template).ok())
        .unwrap_or(Value::Null)
}

/// A template without nulls, empty objects and the `pod-template-hash` label: what kubectl's `equalIgnoreHash`
/// compares.
pub fn normalized_template(template: &Value) -> Value {
    let mut template = without_empties(template);
    if let Some(Value::Object(labels)) = template.pointer_mut("/metadata/labels") {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
        if labels.is_empty() {
            if let Some(Value::Object(metadata)) = template.pointer_mut("/metadata") {
                metadata.remove("labels");
            }
        }
    }
    template
}

/// Drops `null` members and empty objects, so a typed round trip and the server's JSON compare equal.
fn without_empties(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, member)| (key.clone(), without_empties(member)))
                .filter(|(_, member)| {
                    !member.is_null() && !matches!(member, Value::Object(inner) if inner.is_empty())
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_empties).collect()),
        other => other.clone(),
    }
}

/// Judges a Deployment's rollout (pure), by `kubectl rollout status deployment`'s rule, with one row per pod.
pub fn assess_deployment(
    live: &LiveDeployment,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    nodes: &[Node],
) -> WorkloadRollout {
    let deployment = &live.typed;
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let namespace = deployment.metadata.namespace.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    let status = deployment.status.clone().unwrap_or_default();
    let observed_generation = status.observed_generation.unwrap_or(0);
    let wanted = normalized_template(&live.template);
    let current = replica_sets
        .iter()
        .filter(|replica_set| normalized_template(&replica_set_template(replica_set)) == wanted)
        .max_by_key(|replica_set| replica_set_revision(replica_set));
    let hash_of = |replica_set: &ReplicaSet| {
        replica_set
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(POD_TEMPLATE_HASH_LABEL).cloned())
    };
    let current_hash = current.and_then(hash_of);
    let revision_of_hash: BTreeMap<String, i64> = replica_sets
        .iter()
        .filter_map(|replica_set| Some((hash_of(replica_set)?, replica_set_revision(replica_set))))
        .collect();
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let observed = generation <= observed_generation;
    let timed_out = status.conditions.as_ref().is_some_and(|conditions| {
        conditions.iter().any(|condition| {
            condition.type_ == "Progressing"
                && condition.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
    });
    let (complete, message) = if !observed {
        (
            false,
            "Waiting for deployment spec update to be observed...".to_owned(),
        )
    } else if timed_out {
        (
            false,
            format!("deployment {name:?} exceeded its progress deadline"),
        )
    } else if updated < desired {
        (
            false,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {desired} new replicas have been updated..."
            ),
        )
    } else if replicas > updated {
        (
            false,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
        )
    } else if available < updated {
        (
            false,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
        )
    } else {
        (true, format!("deployment {name:?} successfully rolled out"))
    };
    let nodes_by_name: BTreeMap<String, &Node> = nodes
        .iter()
        .filter_map(|node| Some((node.metadata.name.clone()?, node)))
        .collect();
    let mut rows: Vec<NodeRollout> = pods
        .iter()
        .map(|pod| {
            let node_name = target_node(pod).unwrap_or_else(|| "<unscheduled>".to_owned());
            let hash = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(POD_TEMPLATE_HASH_LABEL).cloned());
            let revision = hash
                .as_ref()
                .and_then(|hash| revision_of_hash.get(hash))
                .copied();
            let updated = observed && hash.is_some() && hash == current_hash;
            let ready = pod_ready(pod) && pod.metadata.deletion_timestamp.is_none();
            let reason = (!(updated && ready)).then(|| {
                let state = if ready {
                    "Running".to_owned()
                } else {
                    pod_problem(pod, nodes_by_name.get(&node_name).copied())
                };
                if updated {
                    state
                } else {
                    let from = revision
                        .map(|revision| format!("revision {revision}"))
                        .unwrap_or_else(|| "an unknown revision".to_owned());
                    format!("runs the old template ({from}), {state}")
                }
            });
            NodeRollout {
                node: node_name,
                pod: pod.metadata.name.clone(),
                revision,
                updated,
                ready,
                reason,
            }
        })
        .collect();
    rows.sort_by(|left, right| left.pod.cmp(&right.pod));
    WorkloadRollout {
        kind: "Deployment".to_owned(),
        namespace,
        name,
        generation,
        observed_generation,
        revision: current.map(replica_set_revision),
        desired,
        updated,
        ready: status.ready_replicas.unwrap_or(0),
        available,
        complete,
        message,
        nodes: rows,
    }
}

/// Follows a DaemonSet's rollout until it completes or `timeout` passes, reporting progress whenever the counts
/// change and a line for every node that becomes updated and available.
pub fn follow(
    api: &dyn ClusterApi,
    workload: Workload,
    namespace: &str,
    name: &str,
    timeout: Duration,
    reporter: &dyn RolloutReporter,
) -> Result<WorkloadRollout, RolloutError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_summary: Option<String> = None;
    let mut seen_pods: BTreeSet<String> = BTreeSet::new();
    let mut first = true;
    loop {
        let state = with_retry(timeout.min(Duration::from_secs(30)), || {
            match observe(api, workload, namespace, name) {
                Ok(state) => Ok(Ok(state)),
                Err(RolloutError::Cluster(error)) => Err(error),
                Err(other) => Ok(Err(other)),
            }
        })??;
        if first {
            // Pods that exist when the follow starts are not news, whatever their state: only their
            // replacements are.
            seen_pods.extend(state.nodes.iter().filter_map(|node| node.pod.clone()));
        }
        for node in state.nodes.iter().filter(|node| node.done()) {
            let Some(key) = node.pod.clone() else {
                continue;
            };
            if seen_pods.insert(key) {
                let pod = node.pod.as_deref().unwrap_or("?");
                reporter.info(if state.is_deployment() {
                    format!(
                        "{}: pod {pod} updated and available on node {}",
                        state.object(),
                        node.node
                    )
                } else {
                    format!(
                        "{}: node {} updated and available (pod {pod})",
                        state.object(),
                        node.node
                    )
                });
            }
        }
        first = false;
        if state.complete {
            let revision = state
                .revision
                .map(|revision| format!(" at revision {revision}"))
                .unwrap_or_default();
            reporter.info(format!(
                "{} rolled out{revision}: {} of {} {} updated and available in {}",
                state.object(),
                state.available,
                state.desired,
                state.unit(),
                humanize(started.elapsed())
            ));
            return Ok(state);
        }
        // One progress event per change of what the user sees.
        let summary = format!("{}: {}", state.object(), state.counts());
        if last_summary.as_deref() != Some(summary.as_str()) {
            let done = state.nodes.iter().filter(|node| node.done()).count();
            reporter.progress(
                u64::try_from(done).unwrap_or(0),
                u64::try_from(state.desired.max(0)).unwrap_or(0),
                summary.clone(),
            );
            last_summary = Some(summary);
        }
        if Instant::now() >= deadline {
            return Err(RolloutError::Timeout {
                timeout,
                state: Box::new(state),
            });
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// Applies an addon's objects in order, reporting each, and follows the rollout of its DaemonSet if the apply
/// changed it (a DaemonSet left unchanged is not waited for). A zero `timeout` applies without following; a dry
/// run (no connection) only lists the objects.
pub(crate) fn apply_and_follow(
    ctx: &mut PhaseCtx<'_, InitData>,
    api: Option<&dyn ClusterApi>,
    objects: &[Value],
    addon: &str,
    timeout: Duration,
) -> Result<(), PhaseError> {
    let Some(api) = api else {
        return super::apply_all(ctx, None, objects);
    };
    let api_call_timeout = api_timeout(ctx.data);
    let mut changed_daemon_sets = Vec::new();
    for object in objects {
        let reference = ObjectRef::from_value(object).map_err(api_error)?;
        let outcome = with_retry(api_call_timeout, || api.apply(object)).map_err(api_error)?;
        ctx.record(format!("cluster: {reference}"), outcome);
        if reference.kind == "DaemonSet" && outcome != Outcome::Unchanged {
            changed_daemon_sets.push(reference);
        }
    }
    for reference in changed_daemon_sets {
        if timeout.is_zero() {
            ctx.info(format!(
                "{reference} changed; not following its rollout (timeout 0)"
            ));
            continue;
        }
        let namespace = reference.namespace.clone().unwrap_or_default();
        follow(
            api,
            Workload::DaemonSet,
            &namespace,
            &reference.name,
            timeout,
            ctx,
        )
        .map_err(|error| error.into_phase_error(addon))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn daemon_set(generation: i64, status: Value) -> LiveDaemonSet {
        LiveDaemonSet::from_value(json!({
            "metadata": {"name": "kube-proxy", "namespace": "kube-system", "uid": "ds-uid", "generation": generation},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "kube-proxy"}, "creationTimestamp": null},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.35.4"}]
                    }
                }
            },
            "status": status,
        }))
        .expect("DaemonSet")
    }

    fn revision(number: i64, hash: &str, image: &str) -> ControllerRevision {
        serde_json::from_value(json!({
            "metadata": {
                "name": format!("kube-proxy-{hash}"),
                "labels": {"controller-revision-hash": hash},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-proxy", "uid": "ds-uid", "controller": true}]
            },
            "revision": number,
            "data": {"spec": {"template": {
                "$patch": "replace",
                "metadata": {"labels": {"k8s-app": "kube-proxy"}, "creationTimestamp": null},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "kube-proxy", "image": image}]
                }
            }}}
        }))
        .expect("ControllerRevision")
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool, waiting: Option<&str>) -> Pod {
        let mut container = json!({"name": "kube-proxy", "ready": ready, "restartCount": 0, "image": "x", "imageID": ""});
        if let Some(reason) = waiting {
            container["state"] =
                json!({"waiting": {"reason": reason, "message": "back-off pulling image"}});
        }
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": {"controller-revision-hash": hash},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-proxy", "uid": "ds-uid", "controller": true}]
            },
            "spec": {"nodeName": node, "containers": [{"name": "kube-proxy"}]},
            "status": {
                "phase": if ready { "Running" } else { "Pending" },
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": [container]
            }
        }))
        .expect("Pod")
    }

    fn node(name: &str, ready: Option<bool>) -> Node {
        let mut value =
            json!({"metadata": {"name": name, "labels": {"kubernetes.io/os": "linux"}}});
        if let Some(ready) = ready {
            value["status"] = json!({"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "reason": "KubeletNotReady"}]});
        }
        serde_json::from_value(value).expect("Node")
    }

    const NEW: &str = "registry.k8s.io/kube-proxy:v1.35.4";
    const OLD: &str = "registry.k8s.io/kube-proxy:v1.35.3";

    #[test]
    fn a_rollout_with_no_nodes_is_complete_once_observed() {
        let unobserved = assess(
            &daemon_set(
                2,
                json!({"observedGeneration": 1, "desiredNumberScheduled": 0, "currentNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}),
            ),
            &[revision(1, "aaa", NEW)],
            &[],
            &[],
        );
        assert!(!unobserved.complete);
        assert_eq!(
            unobserved.message,
            "Waiting for daemon set spec update to be observed..."
        );
        let observed = assess(
            &daemon_set(
                2,
                json!({"observedGeneration": 2, "desiredNumberScheduled": 0, "currentNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}),
            ),
            &[revision(1, "aaa", NEW)],
            &[],
            &[],
        );
        assert!(observed.complete, "{observed:?}");
        assert_eq!(observed.revision, Some(1));
        assert!(observed.nodes.is_empty());
    }

    #[test]
    fn nodes_on_the_old_template_and_not_ready_pods_are_named_with_their_reasons() {
        let state = assess(
            &daemon_set(
                3,
                json!({"observedGeneration": 3, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                       "numberMisscheduled": 0, "numberReady": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}),
            ),
            &[revision(1, "old", OLD), revision(2, "new", NEW)],
            &[
                pod("kube-proxy-a", "node-a", "new", true, None),
                pod(
                    "kube-proxy-b",
                    "node-b",
                    "new",
                    false,
                    Some("ImagePullBackOff"),
                ),
                pod("kube-proxy-c", "node-c", "old", true, None),
            ],
            &[
                node("node-a", Some(true)),
                node("node-b", Some(true)),
                node("node-c", Some(true)),
                node("node-d", None),
            ],
        );
        assert!(!state.complete);
        assert_eq!(state.revision, Some(2));
        assert_eq!(
            state.message,
            "Waiting for daemon set \"kube-proxy\" rollout to finish: 2 out of 3 new pods have been updated..."
        );
        let pending = state.pending_nodes();
        assert_eq!(
            pending,
            [
                "node node-b (pod kube-proxy-b): Pending, container kube-proxy ImagePullBackOff (back-off pulling image)",
                "node node-c (pod kube-proxy-c): runs the old template (revision 1), Running",
                "node node-d (no pod): no pod yet (the node has never reported its status (is its kubelet running?))",
            ]
        );
        assert_eq!(state.nodes[2].revision, Some(1));
    }

    #[test]
    fn a_pod_on_a_node_without_a_kubelet_says_so() {
        let mut pending: Pod = serde_json::from_value(json!({
            "metadata": {"name": "kube-proxy-x", "labels": {"controller-revision-hash": "new"}},
            "spec": {"nodeName": "ghost", "containers": [{"name": "kube-proxy"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
        }))
        .expect("Pod");
        pending.metadata.owner_references = None;
        let state = assess(
            &daemon_set(
                1,
                json!({"observedGeneration": 1, "desiredNumberScheduled": 1, "currentNumberScheduled": 1,
                                  "numberMisscheduled": 0, "numberReady": 0, "updatedNumberScheduled": 1}),
            ),
            &[revision(1, "new", NEW)],
            &[pending],
            &[node("ghost", None)],
        );
        assert_eq!(
            state.pending_nodes(),
            ["node ghost (pod kube-proxy-x): Pending, the node has never reported its status (is its kubelet running?)"]
        );
        let error = RolloutError::Timeout {
            timeout: Duration::from_secs(90),
            state: Box::new(state),
        };
        let text = error.to_string();
        assert!(
            text.starts_with("DaemonSet kube-system/kube-proxy did not finish rolling out within 1m30s: 1 of 1 nodes updated, 0 ready, 0 available; node ghost (pod kube-proxy-x)"),
            "{text}"
        );
        let phase_error = error.into_phase_error("kube-proxy");
        assert!(
            phase_error
                .hint()
                .is_some_and(|hint| hint.contains("describe pod kube-proxy-x")),
            "{phase_error:?}"
        );
    }

    #[test]
    fn an_unbound_pod_belongs_to_the_node_its_affinity_names() {
        let unbound: Pod = serde_json::from_value(json!({
            "metadata": {"name": "kube-proxy-y", "labels": {"controller-revision-hash": "new"}},
            "spec": {
                "containers": [{"name": "kube-proxy"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["ghost"]}]}
                ]}}}
            },
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Too many pods."}]}
        }))
        .expect("Pod");
        let state = assess(
            &daemon_set(
                1,
                json!({"observedGeneration": 1, "desiredNumberScheduled": 1, "currentNumberScheduled": 1,
                                  "numberMisscheduled": 0, "numberReady": 0, "updatedNumberScheduled": 1}),
            ),
            &[revision(1, "new", NEW)],
            &[unbound],
            &[node("ghost", None)],
        );
        assert_eq!(
            state.pending_nodes(),
            ["node ghost (pod kube-proxy-y): Pending, not scheduled (Unschedulable: 0/1 nodes are available: 1 Too many pods.)"]
        );
    }

    #[test]
    fn revisions_match_templates_whatever_nulls_the_serializer_wrote() {
        let live = daemon_set(1, json!({"desiredNumberScheduled": 0, "currentNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0})).template;
        assert!(revision_matches(&revision(1, "a", NEW), &live));
        assert!(!revision_matches(&revision(1, "a", OLD), &live));
        let template = revision_template(&revision(1, "a", OLD)).expect("template");
        assert!(template.get("$patch").is_none());
        assert_eq!(template["spec"]["containers"][0]["image"], OLD);
    }

    fn replica_set(revision: i64, hash: &str, image: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {
                "name": format!("coredns-{hash}"),
                "uid": format!("rs-{hash}"),
                "labels": {"k8s-app": "kube-dns", "pod-template-hash": hash},
                "annotations": {"deployment.kubernetes.io/revision": revision.to_string()}
            },
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "kube-dns", "pod-template-hash": hash}},
                    "spec": {"containers": [{"name": "coredns", "image": image, "resources": {}}]}
                }
            }
        }))
        .expect("ReplicaSet")
    }

    #[test]
    fn a_deployment_is_done_when_no_old_replica_is_left_and_all_are_available() {
        let deployment = |status: Value| -> LiveDeployment {
            Live::from_value(json!({
                "metadata": {"name": "coredns", "namespace": "kube-system", "uid": "d-uid", "generation": 2},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    "template": {
                        "metadata": {"labels": {"k8s-app": "kube-dns"}, "creationTimestamp": null},
                        "spec": {"containers": [{"name": "coredns", "image": "coredns:v2"}]}
                    }
                },
                "status": status
            }))
            .expect("Deployment")
        };
        let replica_sets = [
            replica_set(1, "old", "coredns:v1"),
            replica_set(2, "new", "coredns:v2"),
        ];
        let pod = |name: &str, hash: &str, ready: bool| -> Pod {
            let mut pod = pod(name, "node-a", "unused", ready, None);
            pod.metadata.labels = Some(BTreeMap::from([(
                POD_TEMPLATE_HASH_LABEL.to_owned(),
                hash.to_owned(),
            )]));
            pod
        };
        let rolling = assess_deployment(
            &deployment(
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2,
                               "readyReplicas": 2, "availableReplicas": 2}),
            ),
            &replica_sets,
            &[
                pod("coredns-new-a", "new", true),
                pod("coredns-new-b", "new", true),
                pod("coredns-old-a", "old", true),
            ],
            &[node("node-a", Some(true))],
        );
        assert_eq!(
            rolling.revision,
            Some(2),
            "the template matches revision 2 whatever its hash label"
        );
        assert!(!rolling.complete);
        assert_eq!(
            rolling.message,
            "Waiting for deployment \"coredns\" rollout to finish: 1 old replicas are pending termination..."
        );
        assert_eq!(
            rolling.pending_nodes(),
            ["pod coredns-old-a (node node-a): runs the old template (revision 1), Running"]
        );
        let done = assess_deployment(
            &deployment(
                json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                               "readyReplicas": 2, "availableReplicas": 2}),
            ),
            &replica_sets,
            &[
                pod("coredns-new-a", "new", true),
                pod("coredns-new-b", "new", true),
            ],
            &[node("node-a", Some(true))],
        );
        assert!(done.complete, "{done:?}");
        assert_eq!(done.object(), "Deployment kube-system/coredns");
        let stuck = assess_deployment(
            &deployment(
                json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1,
                               "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
            ),
            &replica_sets,
            &[],
            &[],
        );
        assert_eq!(
            stuck.message,
            "deployment \"coredns\" exceeded its progress deadline"
        );
    }

    #[test]
    fn durations_read_as_typed() {
        assert_eq!(humanize(Duration::from_secs(300)), "5m");
        assert_eq!(humanize(Duration::from_secs(5)), "5s");
        assert_eq!(humanize(Duration::from_secs(95)), "1m35s");
    }
}
