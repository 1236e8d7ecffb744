//! The Kubernetes API as phases see it: a narrow, synchronous trait over the few operations bosun needs. The real
//! implementation (kube-rs on a tokio runtime) lives in the binary's `host/kube.rs`; phases stay testable and never
//! see HTTP.
//!
//! Objects cross the trait as JSON values built from k8s-openapi types ([`to_value`]), so no phase hand-writes an
//! object struct. Writes are server-side apply with the field manager `bosun` and `force`, which makes every phase
//! idempotent: applying the same object twice changes nothing and reports [`Outcome::Unchanged`].

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::Outcome;

/// The field manager bosun applies as.
pub const FIELD_MANAGER: &str = "bosun";

/// Which object: `apiVersion`, `kind`, namespace (for namespaced kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The reference of a k8s-openapi type's object.
    pub fn of<K: k8s_openapi::Resource>(namespace: Option<&str>, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: K::API_VERSION.to_owned(),
            kind: K::KIND.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// The reference of an object value (its `apiVersion`, `kind`, `metadata.namespace` and `metadata.name`).
    pub fn from_value(object: &Value) -> Result<ObjectRef, ClusterError> {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let missing = |field: &str| ClusterError::Invalid {
            reason: format!("an object to apply has no {field}"),
        };
        Ok(ObjectRef {
            api_version: text("/apiVersion").ok_or_else(|| missing("apiVersion"))?,
            kind: text("/kind").ok_or_else(|| missing("kind"))?,
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name").ok_or_else(|| missing("metadata.name"))?,
        })
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(formatter, "{} {namespace}/{}", self.kind, self.name),
            None => write!(formatter, "{} {}", self.kind, self.name),
        }
    }
}

/// An error from the API. It names the server and the object at fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach the API server {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("the API server {server} refused to {action} {object}: {reason}")]
    Refused {
        server: String,
        action: String,
        object: String,
        /// The HTTP status code (403 forbidden, 409 conflict, 422 invalid…).
        code: u16,
        reason: String,
    },
    #[error("cannot use the kubeconfig {origin}: {reason}")]
    Kubeconfig { origin: String, reason: String },
    #[error("{reason}")]
    Invalid { reason: String },
}

impl ClusterError {
    /// The HTTP status of a refusal, if the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClusterError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The answer to a plain HTTP(S) GET (health endpoints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    pub status: u16,
    pub body: String,
}

/// A connection to one API server as one user.
pub trait ClusterApi: Send + Sync {
    /// The server URL, for messages.
    fn server(&self) -> String;
    /// Server-side apply of `object` (field manager [`FIELD_MANAGER`], forced). Reports `Created` when it did not
    /// exist, `Updated` when the stored object changed, `Unchanged` otherwise.
    fn apply(&self, object: &Value) -> Result<Outcome, ClusterError>;
    /// Reads an object; `Ok(None)` when it does not exist.
    fn get(&self, object: &ObjectRef) -> Result<Option<Value>, ClusterError>;
    /// Lists objects of a kind (in a namespace, or cluster-wide for cluster-scoped kinds), with an optional field
    /// selector (`type=bootstrap.kubernetes.io/token`).
    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Vec<Value>, ClusterError>;
    /// Deletes an object; `Ok(false)` when it did not exist.
    fn delete(&self, object: &ObjectRef) -> Result<bool, ClusterError>;
    /// A raw GET of a path on the server (`/livez`, `/version`), with this connection's credentials.
    fn get_path(&self, path: &str) -> Result<ProbeAnswer, ClusterError>;
    /// Asks the server to evict a pod through the Eviction API, which honours PodDisruptionBudgets. `Ok(false)` when
    /// the pod does not exist; a budget that forbids the eviction now is [`ClusterError::Refused`] with code 429.
    fn evict(&self, namespace: &str, name: &str) -> Result<bool, ClusterError>;
    /// A JSON merge patch (RFC 7386) of an object, for fields bosun does not own (`spec.unschedulable` when
    /// cordoning); returns the patched object.
    fn merge_patch(&self, object: &ObjectRef, patch: &Value) -> Result<Value, ClusterError>;
    /// A strategic-merge patch of an object (field manager [`FIELD_MANAGER`]), as `kubectl rollout undo` sends a
    /// ControllerRevision's `{"spec":{"template":{"$patch":"replace",…}}}`; returns the patched object.
    fn strategic_patch(&self, object: &ObjectRef, patch: &Value) -> Result<Value, ClusterError>;
}

/// Makes connections. Kubeconfigs are passed as bytes, read by the phase through [`super::Files`], so the root
/// mapping stays in one place.
pub trait ClusterConnector: Send + Sync {
    /// Connects with a kubeconfig's current context.
    fn connect(&self, kubeconfig: &[u8], origin: &str)
        -> Result<Box<dyn ClusterApi>, ClusterError>;
    /// Connects without credentials. With `ca_pem` the server is verified against it; without, the server's
    /// certificate is **not verified** (discovery before the CA is pinned).
    fn anonymous(
        &self,
        server: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Box<dyn ClusterApi>, ClusterError>;
    /// A GET of an `http://` or `https://` URL without verifying the server's certificate (health checks of
    /// components that serve self-signed certificates), with a timeout.
    fn probe(&self, url: &str, timeout: Duration) -> Result<ProbeAnswer, ClusterError>;
    /// A GET of an `https://` URL whose server is verified against the system's trusted CAs (a `bosun join
    /// --discovery-file https://…`), with a timeout. Connectors that reach no web servers refuse it.
    fn fetch(&self, url: &str, timeout: Duration) -> Result<ProbeAnswer, ClusterError> {
        let _ = timeout;
        Err(ClusterError::Invalid {
            reason: format!("this connection cannot fetch {url}"),
        })
    }
}

/// The JSON value of a k8s-openapi object, with its `apiVersion` and `kind`.
pub fn to_value<K: k8s_openapi::Resource + Serialize>(object: &K) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert(
            "apiVersion".to_owned(),
            Value::String(K::API_VERSION.to_owned()),
        );
        map.insert("kind".to_owned(), Value::String(K::KIND.to_owned()));
    }
    value
}

/// Applies a k8s-openapi object.
pub fn apply<K: k8s_openapi::Resource + Serialize>(
    api: &dyn ClusterApi,
    object: &K,
) -> Result<Outcome, ClusterError> {
    api.apply(&to_value(object))
}

/// Reads an object as a k8s-openapi type.
pub fn get<K: k8s_openapi::Resource + DeserializeOwned>(
    api: &dyn ClusterApi,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<K>, ClusterError> {
    let reference = ObjectRef::of::<K>(namespace, name);
    match api.get(&reference)? {
        Some(value) => {
            serde_json::from_value(value)
                .map(Some)
                .map_err(|error| ClusterError::Invalid {
                    reason: format!(
                        "the API server returned a {reference} that is not a valid {}: {error}",
                        K::KIND
                    ),
                })
        }
        None => Ok(None),
    }
}

/// Lists objects as a k8s-openapi type.
pub fn list<K: k8s_openapi::Resource + DeserializeOwned>(
    api: &dyn ClusterApi,
    namespace: Option<&str>,
    field_selector: Option<&str>,
) -> Result<Vec<K>, ClusterError> {
    api.list(K::API_VERSION, K::KIND, namespace, field_selector)?
        .into_iter()
        .map(|value| {
            serde_json::from_value(value).map_err(|error| ClusterError::Invalid {
                reason: format!(
                    "the API server returned a {} that does not parse: {error}",
                    K::KIND
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn values_carry_api_version_and_kind() {
        let config_map = ConfigMap {
            metadata: ObjectMeta {
                name: Some("kubeadm-config".to_owned()),
                namespace: Some("kube-system".to_owned()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        let value = to_value(&config_map);
        let reference = ObjectRef::from_value(&value).expect("reference");
        assert_eq!(
            reference,
            ObjectRef::of::<ConfigMap>(Some("kube-system"), "kubeadm-config")
        );
        assert_eq!(
            reference.to_string(),
            "ConfigMap kube-system/kubeadm-config"
        );
    }

    #[test]
    fn objects_without_a_name_are_refused() {
        let error =
            ObjectRef::from_value(&serde_json::json!({"apiVersion": "v1", "kind": "Secret"}))
                .expect_err("no name");
        assert!(error.to_string().contains("metadata.name"));
    }
}
