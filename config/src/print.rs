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
