//! Kubeconfig files as serde types (client-go's clientcmd v1 `Config`), with the field order kubectl writes. This
//! crate does not serialise them: callers use `bosun_config::yaml`, the one YAML module.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::cert::Certificate;
use crate::error::PkiError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    #[serde(default)]
    pub current_context: String,
    pub kind: String,
    /// Kept when read; kubeadm 1.35 writes none, so an empty one is not written either.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub preferences: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub users: Vec<NamedUser>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCluster {
    pub cluster: Cluster,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedContext {
    pub context: Context,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    pub user: User,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

fn encode(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem.as_bytes())
}

fn decode(data: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim().as_bytes())
        .ok()
}

impl Kubeconfig {
    /// One cluster, one user, one current context `<user>@<cluster>` (kubeadm's CreateBasic).
    fn basic(cluster_name: &str, server: &str, ca_pem: &str, user_name: &str, user: User) -> Self {
        let context_name = format!("{user_name}@{cluster_name}");
        Kubeconfig {
            api_version: "v1".to_owned(),
            clusters: vec![NamedCluster {
                name: cluster_name.to_owned(),
                cluster: Cluster {
                    certificate_authority_data: (!ca_pem.is_empty()).then(|| encode(ca_pem)),
                    server: server.to_owned(),
                    ..Cluster::default()
                },
            }],
            contexts: vec![NamedContext {
                name: context_name.clone(),
                context: Context {
                    cluster: cluster_name.to_owned(),
                    namespace: None,
                    user: user_name.to_owned(),
                },
            }],
            current_context: context_name,
            kind: "Config".to_owned(),
            preferences: BTreeMap::new(),
            users: vec![NamedUser {
                name: user_name.to_owned(),
                user,
            }],
        }
    }

    /// A kubeconfig with an embedded client certificate and key.
    pub fn with_client_certificate(
        cluster_name: &str,
        server: &str,
        ca_pem: &str,
        user_name: &str,
        certificate_pem: &str,
        key_pem: &str,
    ) -> Self {
        Kubeconfig::basic(
            cluster_name,
            server,
            ca_pem,
            user_name,
            User {
                client_certificate_data: (!certificate_pem.is_empty())
                    .then(|| encode(certificate_pem)),
                client_key_data: Some(encode(key_pem)),
                ..User::default()
            },
        )
    }

    /// A kubeconfig that authenticates with a bearer token (bootstrap-kubelet.conf).
    pub fn with_token(
        cluster_name: &str,
        server: &str,
        ca_pem: &str,
        user_name: &str,
        token: &str,
    ) -> Self {
        Kubeconfig::basic(
            cluster_name,
            server,
            ca_pem,
            user_name,
            User {
                token: Some(token.to_owned()),
                ..User::default()
            },
        )
    }

    fn current(&self) -> Option<&Context> {
        self.contexts
            .iter()
            .find(|context| context.name == self.current_context)
            .map(|named| &named.context)
    }

    /// The cluster the current context uses.
    pub fn current_cluster(&self) -> Option<&Cluster> {
        let context = self.current()?;
        self.clusters
            .iter()
            .find(|cluster| cluster.name == context.cluster)
            .map(|named| &named.cluster)
    }

    /// The user the current context uses, with its name.
    pub fn current_user(&self) -> Option<(&str, &User)> {
        let context = self.current()?;
        self.users
            .iter()
            .find(|user| user.name == context.user)
            .map(|named| (named.name.as_str(), &named.user))
    }

    /// The embedded CA bytes of the current cluster (PEM), if embedded.
    pub fn cluster_ca_pem(&self) -> Option<Vec<u8>> {
        decode(
            self.current_cluster()?
                .certificate_authority_data
                .as_deref()?,
        )
    }

    /// The embedded client certificate of the current user, parsed. `origin` names the file.
    pub fn client_certificate(&self, origin: &str) -> Result<Certificate, PkiError> {
        let (name, user) = self
            .current_user()
            .ok_or_else(|| PkiError::KubeconfigUser {
                origin: origin.to_owned(),
                user: self.current_context.clone(),
            })?;
        let pem = user
            .client_certificate_data
            .as_deref()
            .and_then(decode)
            .ok_or_else(|| PkiError::KubeconfigUser {
                origin: origin.to_owned(),
                user: name.to_owned(),
            })?;
        Certificate::from_pem(origin, &pem)
    }

    /// The embedded client key of the current user (PEM bytes), if embedded.
    pub fn client_key_pem(&self) -> Option<Vec<u8>> {
        decode(self.current_user()?.1.client_key_data.as_deref()?)
    }
}

/// Whether two CA PEMs are the same once surrounding whitespace is trimmed (how kubeadm compares them).
pub fn same_ca_bytes(left: &[u8], right: &[u8]) -> bool {
    left.trim_ascii() == right.trim_ascii()
}
