//! Writing configurations: v1beta4 documents with kubeadm's key order, `config print …-defaults`, and
//! `config migrate`.

use serde::Serialize;

use crate::load::{KUBELET_API_VERSION, KUBE_PROXY_API_VERSION, V1BETA4};
use crate::yaml::{self, Value, YamlError};

/// One document as a value with `apiVersion` and `kind` added and keys sorted.
pub fn document<T: Serialize>(
    api_version: &str,
    kind: &str,
    body: &T,
) -> Result<String, YamlError> {
    let mut value = yaml::to_value(body)?;
    if let Value::Mapping(mapping) = &mut value {
        mapping.insert(Value::from("apiVersion"), Value::from(api_version));
        mapping.insert(Value::from("kind"), Value::from(kind));
    }
    yaml::to_string_sorted(&value)
}

/// A kubeadm document in v1beta4.
pub fn v1beta4<T: Serialize>(kind: &str, body: &T) -> Result<String, YamlError> {
    document(V1BETA4, kind, body)
}

/// The kubelet document.
pub fn kubelet(kubelet: &crate::KubeletConfiguration) -> Result<String, YamlError> {
    document(KUBELET_API_VERSION, "KubeletConfiguration", kubelet)
}

/// The kube-proxy document.
pub fn kube_proxy(proxy: &crate::KubeProxyConfiguration) -> Result<String, YamlError> {
    document(KUBE_PROXY_API_VERSION, "KubeProxyConfiguration", proxy)
}

/// The component configurations `config print` can add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Kubelet,
    KubeProxy,
}

impl Component {
    /// Parses `KubeletConfiguration` / `KubeProxyConfiguration` (as kubeadm's `--component-configs` takes them).
    pub fn parse(name: &str) -> Result<Component, String> {
        match name.trim() {
            "KubeletConfiguration" => Ok(Component::Kubelet),
            "KubeProxyConfiguration" => Ok(Component::KubeProxy),
            other => Err(format!(
                "{other:?} is not a component configuration; use KubeletConfiguration and/or KubeProxyConfiguration"
            )),
        }
    }
}

/// Which defaults `config print` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultsKind {
    Init,
    Join,
    Reset,
    Upgrade,
}

/// The placeholder token kubeadm prints in its defaults.
pub const PLACEHOLDER_TOKEN: &str = "abcdef.0123456789abcdef";
/// The placeholder advertise address kubeadm prints in its defaults.
pub const PLACEHOLDER_ADDRESS: &str = "1.2.3.4";
/// The placeholder node name kubeadm prints in its defaults.
pub const PLACEHOLDER_NODE_NAME: &str = "node";
/// The placeholder API server endpoint of the join defaults.
pub const PLACEHOLDER_API_SERVER: &str = "kube-apiserver:6443";

fn placeholder_facts() -> crate::HostFacts {
    crate::HostFacts {
        hostname: PLACEHOLDER_NODE_NAME.to_owned(),
        default_address: PLACEHOLDER_ADDRESS.parse().ok(),
    }
}

/// `bosun config print <kind>-defaults`: the defaulted documents in v1beta4, with kubeadm's placeholders (token
/// `abcdef.0123456789abcdef`, address 1.2.3.4, node name `node`) where a real value only exists at run time.
/// Like kubeadm, the node's taints are left unset (`taints: null`, meaning "the default for this node's role").
pub fn defaults(kind: DefaultsKind, components: &[Component]) -> Result<String, YamlError> {
    let facts = placeholder_facts();
    let mut documents = Vec::new();
    match kind {
        DefaultsKind::Init => {
            let mut config = crate::defaults(&facts);
            for token in &mut config.init.bootstrap_tokens {
                token.token = PLACEHOLDER_TOKEN.to_owned();
            }
            config.init.node_registration.taints = None;
            documents.push(v1beta4("InitConfiguration", &config.init)?);
            documents.push(v1beta4("ClusterConfiguration", &config.cluster)?);
            for component in components {
                documents.push(match component {
                    Component::Kubelet => kubelet(&config.kubelet)?,
                    Component::KubeProxy => kube_proxy(&config.kube_proxy)?,
                });
            }
        }
        DefaultsKind::Join => {
            let mut join = crate::JoinConfiguration {
                discovery: crate::Discovery {
                    bootstrap_token: Some(crate::BootstrapTokenDiscovery {
                        token: PLACEHOLDER_TOKEN.to_owned(),
                        api_server_endpoint: PLACEHOLDER_API_SERVER.to_owned(),
                        ca_cert_hashes: Vec::new(),
                        unsafe_skip_ca_verification: true,
                    }),
                    ..crate::Discovery::default()
                },
                ..crate::JoinConfiguration::default()
            };
            crate::defaults::join(&mut join, &facts);
            join.node_registration.taints = None;
            documents.push(v1beta4("JoinConfiguration", &join)?);
        }
        DefaultsKind::Reset => {
            let mut reset = crate::ResetConfiguration::default();
            crate::defaults::reset(&mut reset);
            documents.push(v1beta4("ResetConfiguration", &reset)?);
        }
        DefaultsKind::Upgrade => {
            let mut upgrade = crate::UpgradeConfiguration::default();
            crate::defaults::upgrade(&mut upgrade);
            documents.push(v1beta4("UpgradeConfiguration", &upgrade)?);
        }
    }
    Ok(yaml::join_documents(&documents))
}

/// `bosun config migrate`: the same configuration written as v1beta4. The input is loaded (and so validated)
/// first; the output holds the converted documents without defaults filled in, so it stays as short as the input
/// and carries nothing of the machine it was migrated on. Component configurations are kept as written.
pub fn migrate(
    name: &str,
    text: &str,
    facts: &crate::HostFacts,
) -> Result<String, crate::ConfigError> {
    crate::load(name, text, facts)?;
    let decoded = crate::load::decode_stream(name, text)?;
    let yaml_error = |error: YamlError| {
        crate::ConfigError::single(crate::Problem::new(
            name,
            format!("the migrated configuration could not be written: {error}"),
        ))
    };
    let mut documents = Vec::new();
    let timeout = decoded.source.v1beta3_control_plane_timeout;
    let mut init = decoded.init.clone();
    if let Some(timeout) = timeout {
        // v1beta3's apiServer.timeoutForControlPlane lives in InitConfiguration's timeouts in v1beta4.
        let init = init.get_or_insert_with(Default::default);
        let timeouts = init.timeouts.get_or_insert_with(Default::default);
        if timeouts.control_plane_component_health_check.is_none() {
            timeouts.control_plane_component_health_check = Some(timeout);
        }
    }
    // Keep the input's document order, adding an InitConfiguration before the ClusterConfiguration when the
    // timeout moved into one that did not exist.
    let mut order: Vec<String> = decoded
        .source
        .documents
        .iter()
        .map(|document| document.kind.clone())
        .collect();
    if init.is_some() && !order.iter().any(|kind| kind == "InitConfiguration") {
        let position = order
            .iter()
            .position(|kind| kind == "ClusterConfiguration")
            .unwrap_or(0);
        order.insert(position, "InitConfiguration".to_owned());
    }
    for kind in order {
        let document = match kind.as_str() {
            "InitConfiguration" => init.as_ref().map(|init| v1beta4(&kind, init)),
            "ClusterConfiguration" => decoded
                .cluster
                .as_ref()
                .map(|cluster| v1beta4(&kind, cluster)),
            "JoinConfiguration" => decoded.join.as_ref().map(|join| v1beta4(&kind, join)),
            "ResetConfiguration" => decoded.reset.as_ref().map(|reset| v1beta4(&kind, reset)),
            "UpgradeConfiguration" => decoded
                .upgrade
                .as_ref()
                .map(|upgrade| v1beta4(&kind, upgrade)),
            "KubeletConfiguration" => decoded.kubelet.as_ref().map(kubelet),
            "KubeProxyConfiguration" => decoded.kube_proxy.as_ref().map(kube_proxy),
            _ => None,
        };
        if let Some(document) = document {
            documents.push(document.map_err(yaml_error)?);
        }
    }
    Ok(yaml::join_documents(&documents))
}

/// The whole configuration as a v1beta4 stream with every default written out: InitConfiguration,
/// ClusterConfiguration, the optional kinds present, KubeletConfiguration and KubeProxyConfiguration.
pub fn full(config: &crate::Config) -> Result<String, YamlError> {
    let mut documents = vec![
        v1beta4("InitConfiguration", &config.init)?,
        v1beta4("ClusterConfiguration", &config.cluster)?,
    ];
    if let Some(join) = &config.join {
        documents.push(v1beta4("JoinConfiguration", join)?);
    }
    if let Some(reset) = &config.reset {
        documents.push(v1beta4("ResetConfiguration", reset)?);
    }
    if let Some(upgrade) = &config.upgrade {
        documents.push(v1beta4("UpgradeConfiguration", upgrade)?);
    }
    documents.push(kubelet(&config.kubelet)?);
    documents.push(kube_proxy(&config.kube_proxy)?);
    Ok(yaml::join_documents(&documents))
}
