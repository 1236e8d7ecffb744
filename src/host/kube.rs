//! The Kubernetes API client behind `bosun_phases::host::cluster`: kube-rs with k8s-openapi types, driven by a
//! single-threaded tokio runtime per connection so phases stay synchronous.
//!
//! Writes are server-side apply (`fieldManager=bosun`, `force=true`). Whether an apply created, changed or kept an
//! object is judged from the object before and its `resourceVersion` after (an apply that changes nothing does
//! not bump it). Connect, read and write timeouts are set on every client, so no call waits forever.

use std::sync::Once;
use std::time::Duration;

use bosun_phases::host::cluster::{
    ClusterApi, ClusterConnector, ClusterError, ObjectRef, ProbeAnswer, FIELD_MANAGER,
};
use bosun_phases::host::Outcome;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// Per-request limits: a dead server is reported within these, and the phase's retry loop decides what next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

static CRYPTO_PROVIDER: Once = Once::new();

/// rustls needs one process-wide crypto provider; bosun uses ring (as for its own hashing and HMAC).
fn install_crypto_provider() {
    CRYPTO_PROVIDER.call_once(|| {
        // An error means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn runtime() -> Result<tokio::runtime::Runtime, ClusterError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| ClusterError::Invalid {
            reason: format!("cannot start the Kubernetes client's runtime: {error}"),
        })
}

/// The real connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct KubeConnector;

impl ClusterConnector for KubeConnector {
    fn connect(
        &self,
        kubeconfig: &[u8],
        origin: &str,
    ) -> Result<Box<dyn ClusterApi>, ClusterError> {
        install_crypto_provider();
        let bad = |reason: String| ClusterError::Kubeconfig {
            origin: origin.to_owned(),
            reason,
        };
        let text =
            std::str::from_utf8(kubeconfig).map_err(|_| bad("it is not UTF-8".to_owned()))?;
        let parsed =
            kube::config::Kubeconfig::from_yaml(text).map_err(|error| bad(error.to_string()))?;
        let runtime = runtime()?;
        let mut config = runtime
            .block_on(kube::Config::from_custom_kubeconfig(
                parsed,
                &kube::config::KubeConfigOptions::default(),
            ))
            .map_err(|error| bad(error.to_string()))?;
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.read_timeout = Some(READ_TIMEOUT);
        config.write_timeout = Some(READ_TIMEOUT);
        KubeApi::new(runtime, config).map(|api| Box::new(api) as Box<dyn ClusterApi>)
    }

    fn anonymous(
        &self,
        server: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Box<dyn ClusterApi>, ClusterError> {
        install_crypto_provider();
        let mut config = config_for_url(server)?;
        match ca_pem {
            Some(pem) => {
                let certificates = bosun_pki::Certificate::chain_from_pem("the cluster CA", pem)
                    .map_err(|error| ClusterError::Invalid {
                        reason: error.to_string(),
                    })?;
                config.root_cert = Some(
                    certificates
                        .iter()
                        .map(|certificate| certificate.der().to_vec())
                        .collect(),
                );
            }
            None => config.accept_invalid_certs = true,
        }
        let runtime = runtime()?;
        KubeApi::new(runtime, config).map(|api| Box::new(api) as Box<dyn ClusterApi>)
    }

    fn probe(&self, url: &str, timeout: Duration) -> Result<ProbeAnswer, ClusterError> {
        install_crypto_provider();
        let uri: http::Uri = url.parse().map_err(|_| ClusterError::Invalid {
            reason: format!("{url:?} is not a URL"),
        })?;
        let base = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map(ToString::to_string).unwrap_or_default()
        );
        let mut config = config_for_url(&base)?;
        config.accept_invalid_certs = true;
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        let runtime = runtime()?;
        let api = KubeApi::new(runtime, config)?;
        api.get_path(
            uri.path_and_query()
                .map(|path| path.as_str())
                .unwrap_or("/"),
        )
    }

    fn fetch(&self, url: &str, timeout: Duration) -> Result<ProbeAnswer, ClusterError> {
        install_crypto_provider();
        let uri: http::Uri = url.parse().map_err(|_| ClusterError::Invalid {
            reason: format!("{url:?} is not a URL"),
        })?;
        if uri.scheme_str() != Some("https") {
            return Err(ClusterError::Invalid {
                reason: format!("{url} is not an https:// URL"),
            });
        }
        let base = format!(
            "https://{}",
            uri.authority().map(ToString::to_string).unwrap_or_default()
        );
        // No root certificates given: kube-rs verifies the server with the operating system's trusted CAs.
        let mut config = config_for_url(&base)?;
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        let runtime = runtime()?;
        let api = KubeApi::new(runtime, config)?;
        api.get_path(
            uri.path_and_query()
                .map(|path| path.as_str())
                .unwrap_or("/"),
        )
    }
}

fn config_for_url(server: &str) -> Result<kube::Config, ClusterError> {
    let uri: http::Uri = server.parse().map_err(|_| ClusterError::Invalid {
        reason: format!("{server:?} is not a URL"),
    })?;
    let mut config = kube::Config::new(uri);
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    config.write_timeout = Some(READ_TIMEOUT);
    Ok(config)
}

/// One connection.
pub struct KubeApi {
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    server: String,
}

impl KubeApi {
    fn new(
        runtime: tokio::runtime::Runtime,
        config: kube::Config,
    ) -> Result<KubeApi, ClusterError> {
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        // The client spawns its request buffer on the current runtime.
        let client = {
            let _entered = runtime.enter();
            kube::Client::try_from(config).map_err(|error| ClusterError::Invalid {
                reason: format!("cannot build a client for {server}: {}", describe(&error)),
            })?
        };
        Ok(KubeApi {
            runtime,
            client,
            server,
        })
    }

    fn api(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        match namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    fn error(&self, action: &str, object: &str, error: kube::Error) -> ClusterError {
        match error {
            kube::Error::Api(status) => ClusterError::Refused {
                server: self.server.clone(),
                action: action.to_owned(),
                object: object.to_owned(),
                code: status.code,
                reason: if status.message.is_empty() {
                    status.reason.clone()
                } else {
                    status.message.clone()
                },
            },
            other => ClusterError::Unreachable {
                server: self.server.clone(),
                reason: describe(&other),
            },
        }
    }

    /// Patches `object` (as bosun's field manager) and returns it as it is now, with its apiVersion and kind.
    fn patch(&self, object: &ObjectRef, patch: &Patch<&Value>) -> Result<Value, ClusterError> {
        let api = self.api(
            &object.api_version,
            &object.kind,
            object.namespace.as_deref(),
        );
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let patched = self
            .runtime
            .block_on(api.patch(&object.name, &params, patch))
            .map_err(|error| self.error("patch", &object.to_string(), error))?;
        let mut value = serde_json::to_value(patched).map_err(|error| ClusterError::Invalid {
            reason: format!("cannot read {object}: {error}"),
        })?;
        if let Value::Object(map) = &mut value {
            map.insert(
                "apiVersion".to_owned(),
                Value::from(object.api_version.clone()),
            );
            map.insert("kind".to_owned(), Value::from(object.kind.clone()));
        }
        Ok(value)
    }
}

/// An error and its causes on one line, without Rust debug output.
fn describe(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

impl ClusterApi for KubeApi {
    fn server(&self) -> String {
        self.server.clone()
    }

    fn apply(&self, object: &Value) -> Result<Outcome, ClusterError> {
        let reference = ObjectRef::from_value(object)?;
        let api = self.api(
            &reference.api_version,
            &reference.kind,
            reference.namespace.as_deref(),
        );
        let shown = reference.to_string();
        let before = self
            .runtime
            .block_on(api.get_opt(&reference.name))
            .map_err(|error| self.error("read", &shown, error))?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let after = self
            .runtime
            .block_on(api.patch(&reference.name, &params, &Patch::Apply(object)))
            .map_err(|error| self.error("apply", &shown, error))?;
        Ok(match before {
            None => Outcome::Created,
            Some(before) if before.metadata.resource_version == after.metadata.resource_version => {
                Outcome::Unchanged
            }
            Some(_) => Outcome::Updated,
        })
    }

    fn get(&self, object: &ObjectRef) -> Result<Option<Value>, ClusterError> {
        let api = self.api(
            &object.api_version,
            &object.kind,
            object.namespace.as_deref(),
        );
        let found = self
            .runtime
            .block_on(api.get_opt(&object.name))
            .map_err(|error| self.error("read", &object.to_string(), error))?;
        found
            .map(|dynamic| {
                let mut value =
                    serde_json::to_value(dynamic).map_err(|error| ClusterError::Invalid {
                        reason: format!("cannot read {object}: {error}"),
                    })?;
                if let Value::Object(map) = &mut value {
                    map.insert(
                        "apiVersion".to_owned(),
                        Value::from(object.api_version.clone()),
                    );
                    map.insert("kind".to_owned(), Value::from(object.kind.clone()));
                }
                Ok(value)
            })
            .transpose()
    }

    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Vec<Value>, ClusterError> {
        let api = self.api(api_version, kind, namespace);
        let mut params = ListParams::default();
        if let Some(selector) = field_selector {
            params = params.fields(selector);
        }
        let shown = match namespace {
            Some(namespace) => format!("{kind} objects in {namespace}"),
            None => format!("{kind} objects"),
        };
        let list = self
            .runtime
            .block_on(api.list(&params))
            .map_err(|error| self.error("list", &shown, error))?;
        list.items
            .into_iter()
            .map(|item| {
                let mut value =
                    serde_json::to_value(item).map_err(|error| ClusterError::Invalid {
                        reason: format!("cannot read {shown}: {error}"),
                    })?;
                if let Value::Object(map) = &mut value {
                    map.insert("apiVersion".to_owned(), Value::from(api_version));
                    map.insert("kind".to_owned(), Value::from(kind));
                }
                Ok(value)
            })
            .collect()
    }

    fn delete(&self, object: &ObjectRef) -> Result<bool, ClusterError> {
        let api = self.api(
            &object.api_version,
            &object.kind,
            object.namespace.as_deref(),
        );
        match self
            .runtime
            .block_on(api.delete(&object.name, &DeleteParams::default()))
        {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(self.error("delete", &object.to_string(), error)),
        }
    }

    fn strategic_patch(&self, object: &ObjectRef, patch: &Value) -> Result<Value, ClusterError> {
        self.patch(object, &Patch::Strategic(patch))
    }

    fn evict(&self, namespace: &str, name: &str) -> Result<bool, ClusterError> {
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.client.clone(), namespace);
        match self
            .runtime
            .block_on(pods.evict(name, &kube::api::EvictParams::default()))
        {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(self.error("evict", &format!("Pod {namespace}/{name}"), error)),
        }
    }

    fn merge_patch(&self, object: &ObjectRef, patch: &Value) -> Result<Value, ClusterError> {
        self.patch(object, &Patch::Merge(patch))
    }

    fn get_path(&self, path: &str) -> Result<ProbeAnswer, ClusterError> {
        let request =
            http::Request::get(path)
                .body(Vec::new())
                .map_err(|error| ClusterError::Invalid {
                    reason: format!("{path:?} is not a request path: {error}"),
                })?;
        match self.runtime.block_on(self.client.request_text(request)) {
            Ok(body) => Ok(ProbeAnswer { status: 200, body }),
            Err(kube::Error::Api(status)) => Ok(ProbeAnswer {
                status: status.code,
                body: if status.message.is_empty() {
                    status.reason.clone()
                } else {
                    status.message.clone()
                },
            }),
            Err(error) => Err(ClusterError::Unreachable {
                server: self.server.clone(),
                reason: describe(&error),
            }),
        }
    }
}
