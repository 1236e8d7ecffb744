//! The cluster side of a migration, as `kubectl drain --ignore-daemonsets` and `kubectl uncordon` do it: cordon the
//! Node, evict its pods through the Eviction API (which honours PodDisruptionBudgets; a budget that forbids an
//! eviction now is retried until the timeout), leaving DaemonSet pods and mirror pods of static pods alone, wait
//! for the evicted pods to be gone; afterwards wait for the Node to report Ready from the restarted kubelet and
//! uncordon it. The `kubelet-config` ConfigMap gets the new `cgroupDriver` so that nodes joining later use it.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::edit;
use crate::host::cluster::{ClusterApi, ClusterError, ObjectRef};
use crate::host::Outcome;
use crate::node::cgroup::CgroupDriver;

/// The annotation the kubelet puts on the API copies of static pods.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// How long to wait between eviction attempts a disruption budget refused (kubectl waits 5 s).
const EVICTION_RETRY: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_secs(1);

/// Why a pod is left on the node, or why the drain cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodDecision {
    Evict,
    /// Left alone: a DaemonSet recreates it on the node anyway, or it is a static pod's mirror.
    Ignore(String),
    /// kubectl refuses these without an override flag; so does bosun.
    Refuse(String),
}

/// What the drain may do beyond kubectl's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainOptions {
    /// Evict pods no controller recreates (`--force`).
    pub force: bool,
    /// Evict pods with emptyDir volumes, whose data is lost (`--delete-emptydir-data`).
    pub delete_emptydir_data: bool,
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `namespace/name` of a pod.
pub fn pod_name(pod: &Value) -> String {
    format!(
        "{}/{}",
        text(pod, "/metadata/namespace"),
        text(pod, "/metadata/name")
    )
}

/// kubectl drain's filters, in its order: mirror pods, DaemonSet pods (ignored, as with `--ignore-daemonsets`),
/// pods that already finished (always evicted), unreplicated pods, pods with local storage.
pub fn decide(pod: &Value, options: DrainOptions) -> PodDecision {
    if pod
        .pointer(&format!(
            "/metadata/annotations/{}",
            MIRROR_ANNOTATION.replace('/', "~1")
        ))
        .is_some()
    {
        return PodDecision::Ignore("mirror pod of a static pod".to_owned());
    }
    let controller = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|owners| owners.iter().find(|owner| owner["controller"] == true));
    if let Some(owner) = controller.filter(|owner| owner["kind"] == "DaemonSet") {
        return PodDecision::Ignore(format!("managed by DaemonSet {}", text(owner, "/name")));
    }
    let phase = text(pod, "/status/phase");
    if phase == "Succeeded" || phase == "Failed" {
        return PodDecision::Evict;
    }
    if controller.is_none() && !options.force {
        return PodDecision::Refuse(format!(
            "pod {} declares no controller, so nothing recreates it elsewhere (pass --force to evict it anyway)",
            pod_name(pod)
        ));
    }
    let has_empty_dir = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .is_some_and(|volumes| {
            volumes
                .iter()
                .any(|volume| volume.get("emptyDir").is_some())
        });
    if has_empty_dir && !options.delete_emptydir_data {
        return PodDecision::Refuse(format!(
            "pod {} has emptyDir volumes whose data is lost on eviction (pass --delete-emptydir-data to evict it anyway)",
            pod_name(pod)
        ));
    }
    PodDecision::Evict
}

fn node_ref(node: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".to_owned(),
        kind: "Node".to_owned(),
        namespace: None,
        name: node.to_owned(),
    }
}

/// The Node object, or an error naming it when the cluster does not know it.
pub fn get_node(api: &dyn ClusterApi, node: &str) -> Result<Value, ClusterError> {
    api.get(&node_ref(node))?
        .ok_or_else(|| ClusterError::Invalid {
            reason: format!("the API server {} has no Node {node}", api.server()),
        })
}

/// Sets `spec.unschedulable`; returns whether it changed and whether it was set before.
pub fn set_unschedulable(
    api: &dyn ClusterApi,
    node: &str,
    unschedulable: bool,
) -> Result<(Outcome, bool), ClusterError> {
    let before = get_node(api, node)?
        .pointer("/spec/unschedulable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if before == unschedulable {
        return Ok((Outcome::Unchanged, before));
    }
    api.merge_patch(
        &node_ref(node),
        &json!({"spec": {"unschedulable": unschedulable}}),
    )?;
    Ok((Outcome::Updated, before))
}

/// The pods bound to the node.
pub fn pods_on(api: &dyn ClusterApi, node: &str) -> Result<Vec<Value>, ClusterError> {
    api.list("v1", "Pod", None, Some(&format!("spec.nodeName={node}")))
}

/// Why a drain stopped.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("cannot drain node {node}: {}", reasons.join("; "))]
    Refused { node: String, reasons: Vec<String> },
    #[error("pod {pod} was not evicted within {seconds}s: {reason}")]
    Timeout {
        pod: String,
        seconds: u64,
        reason: String,
    },
}

/// Evicts `pods` (already filtered by [`decide`]) and waits until each is gone or `timeout` passes. `progress` is
/// told each pod as it goes.
pub fn evict_all(
    api: &dyn ClusterApi,
    pods: &[Value],
    timeout: Duration,
    mut progress: impl FnMut(usize, &str),
) -> Result<(), DrainError> {
    let deadline = Instant::now() + timeout;
    for (index, pod) in pods.iter().enumerate() {
        let name = pod_name(pod);
        progress(index, &name);
        let namespace = text(pod, "/metadata/namespace");
        let pod_name_only = text(pod, "/metadata/name");
        loop {
            match api.evict(namespace, pod_name_only) {
                Ok(_) => break,
                Err(error) if error.code() == Some(429) && Instant::now() < deadline => {
                    std::thread::sleep(EVICTION_RETRY);
                }
                Err(error) if error.code() == Some(429) => {
                    return Err(DrainError::Timeout {
                        pod: name,
                        seconds: timeout.as_secs(),
                        reason: format!("a PodDisruptionBudget keeps refusing it ({error})"),
                    })
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    for pod in pods {
        let uid = text(pod, "/metadata/uid").to_owned();
        let reference = ObjectRef {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            namespace: Some(text(pod, "/metadata/namespace").to_owned()),
            name: text(pod, "/metadata/name").to_owned(),
        };
        loop {
            let current = api.get(&reference)?;
            let gone = current
                .as_ref()
                .is_none_or(|current| text(current, "/metadata/uid") != uid);
            if gone {
                break;
            }
            if Instant::now() >= deadline {
                return Err(DrainError::Timeout {
                    pod: pod_name(pod),
                    seconds: timeout.as_secs(),
                    reason: "it was evicted but is still terminating".to_owned(),
                });
            }
            std::thread::sleep(POLL);
        }
    }
    Ok(())
}

/// The Ready condition of a Node: its status and last heartbeat.
pub fn ready_condition(node: &Value) -> Option<(String, Option<SystemTime>)> {
    let condition = node
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|condition| condition["type"] == "Ready")?;
    let heartbeat = condition["lastHeartbeatTime"]
        .as_str()
        .and_then(|stamp| OffsetDateTime::parse(stamp, &Rfc3339).ok())
        .map(SystemTime::from);
    Some((text(condition, "/status").to_owned(), heartbeat))
}

/// Waits until the Node is Ready with a heartbeat at or after `since` (so from the restarted kubelet, not a stale
/// condition), tolerating an API server that is briefly away (on a control-plane node it restarts with the kubelet).
pub fn wait_ready(
    api: &dyn ClusterApi,
    node: &str,
    since: SystemTime,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    // Heartbeats have whole seconds.
    let since = since.checked_sub(Duration::from_secs(1)).unwrap_or(since);
    let mut last_seen;
    loop {
        match api.get(&node_ref(node)) {
            Ok(Some(object)) => match ready_condition(&object) {
                Some((status, Some(heartbeat))) if status == "True" && heartbeat >= since => {
                    return Ok(())
                }
                Some((status, _)) if status == "True" => {
                    last_seen = "Ready, but no heartbeat from the restarted kubelet yet".to_owned()
                }
                Some((status, _)) => last_seen = format!("Ready is {status}"),
                None => last_seen = "no Ready condition".to_owned(),
            },
            Ok(None) => last_seen = format!("the API server has no Node {node}"),
            Err(error) => last_seen = error.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "node {node} did not become Ready within {}s (last seen: {last_seen})",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// Sets `cgroupDriver` in the `kube-system/kubelet-config` ConfigMap. `Ok(None)` when the cluster has no such
/// ConfigMap (not made by kubeadm or bosun).
pub fn update_kubelet_config_map(
    api: &dyn ClusterApi,
    driver: CgroupDriver,
) -> Result<Option<Outcome>, String> {
    let reference = ObjectRef {
        api_version: "v1".to_owned(),
        kind: "ConfigMap".to_owned(),
        namespace: Some(crate::cluster::upload_config::NAMESPACE.to_owned()),
        name: crate::cluster::upload_config::KUBELET_CONFIG.to_owned(),
    };
    let Some(config_map) = api.get(&reference).map_err(|error| error.to_string())? else {
        return Ok(None);
    };
    let key = crate::cluster::upload_config::KUBELET_CONFIG_KEY;
    let what = format!("{reference} key {key}");
    let current = config_map
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what} is missing"))?;
    let edited =
        edit::kubelet_with_driver(current, driver, &what).map_err(|error| error.to_string())?;
    if edited == current {
        return Ok(Some(Outcome::Unchanged));
    }
    api.merge_patch(&reference, &json!({"data": {key: edited}}))
        .map_err(|error| error.to_string())?;
    Ok(Some(Outcome::Updated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(extra: Value) -> Value {
        let mut pod = json!({"metadata": {"namespace": "default", "name": "web-1"}, "spec": {}, "status": {"phase": "Running"}});
        if let (Value::Object(base), Value::Object(extra)) = (&mut pod, extra) {
            for (key, value) in extra {
                base.insert(key, value);
            }
        }
        pod
    }

    #[test]
    fn drain_leaves_daemonset_and_mirror_pods_alone() {
        let daemon = pod(
            json!({"metadata": {"namespace": "kube-system", "name": "kube-proxy-x", "ownerReferences": [{"kind": "DaemonSet", "name": "kube-proxy", "controller": true}]}}),
        );
        assert_eq!(
            decide(&daemon, DrainOptions::default()),
            PodDecision::Ignore("managed by DaemonSet kube-proxy".to_owned())
        );
        let mirror = pod(
            json!({"metadata": {"namespace": "kube-system", "name": "etcd-n", "annotations": {"kubernetes.io/config.mirror": "abc"}}}),
        );
        assert!(matches!(
            decide(&mirror, DrainOptions::default()),
            PodDecision::Ignore(_)
        ));
        let replicated = pod(
            json!({"metadata": {"namespace": "default", "name": "web-1", "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "controller": true}]}}),
        );
        assert_eq!(
            decide(&replicated, DrainOptions::default()),
            PodDecision::Evict
        );
    }

    #[test]
    fn drain_refuses_bare_pods_and_local_data_without_the_override() {
        let bare = pod(json!({}));
        assert!(
            matches!(decide(&bare, DrainOptions::default()), PodDecision::Refuse(reason) if reason.contains("--force"))
        );
        assert_eq!(
            decide(
                &bare,
                DrainOptions {
                    force: true,
                    ..DrainOptions::default()
                }
            ),
            PodDecision::Evict
        );
        let scratch = pod(
            json!({"metadata": {"namespace": "default", "name": "s", "ownerReferences": [{"kind": "ReplicaSet", "name": "r", "controller": true}]}, "spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}}),
        );
        assert!(
            matches!(decide(&scratch, DrainOptions::default()), PodDecision::Refuse(reason) if reason.contains("--delete-emptydir-data"))
        );
        let finished = pod(json!({"status": {"phase": "Succeeded"}}));
        assert_eq!(
            decide(&finished, DrainOptions::default()),
            PodDecision::Evict
        );
    }

    #[test]
    fn the_ready_condition_is_read_with_its_heartbeat() {
        let node = json!({"status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-12-01T19:00:00Z"}]}});
        let (status, heartbeat) = ready_condition(&node).expect("ready");
        assert_eq!(status, "True");
        assert_eq!(
            heartbeat
                .expect("time")
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("after")
                .as_secs(),
            1_796_151_600
        );
        assert_eq!(ready_condition(&json!({})), None);
    }
}
