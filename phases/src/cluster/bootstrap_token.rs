//! `bootstrap-token`: the tokens joining nodes authenticate with, the RBAC that lets them bootstrap, and the public
//! `kube-public/cluster-info` ConfigMap they discover the cluster from (kubeadm's phases/bootstraptoken).
//!
//! | object | grants |
//! |---|---|
//! | Secret `kube-system/bootstrap-token-<id>` per configured token | the token itself |
//! | ClusterRoleBinding `kubeadm:kubelet-bootstrap` | default-node-token group → `system:node-bootstrapper` |
//! | ClusterRole + ClusterRoleBinding `kubeadm:get-nodes` | that group may get nodes |
//! | ClusterRoleBinding `kubeadm:node-autoapprove-bootstrap` | its CSRs are approved (`…:nodeclient`) |
//! | ClusterRoleBinding `kubeadm:node-autoapprove-certificate-rotation` | `system:nodes` renewals are approved |
//! | ConfigMap `kube-public/cluster-info` | the server URL and CA, signed later by kube-controller-manager |
//! | Role + RoleBinding `kube-public/kubeadm:bootstrap-signer-clusterinfo` | anonymous users may read cluster-info |
//!
//! A token left empty in the configuration is generated; on a re-run the token a previous run generated (same
//! description, usages and groups, more than an hour left) is reused, so `init` converges instead of piling up
//! tokens. An existing token Secret keeps its expiration.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::{
    admin_conf, api_error, api_timeout, apply_all, connect, rbac, read_required, with_retry,
    DEFAULT_TOKEN_DESCRIPTION,
};
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::host::cluster::{self, to_value, ClusterApi};
use crate::init::{live, InitData};
use crate::paths;
use crate::token::secret::{NAMESPACE as TOKEN_NAMESPACE, SECRET_TYPE};
use crate::token::{Token, TokenSpec};

pub const CLUSTER_INFO: &str = "cluster-info";
pub const PUBLIC_NAMESPACE: &str = "kube-public";
pub const CLUSTER_INFO_KEY: &str = "kubeconfig";

/// The TLS-bootstrap RBAC objects.
pub fn rbac_objects() -> Vec<Value> {
    let default_group = [rbac::group(rbac::DEFAULT_NODE_TOKEN_GROUP)];
    vec![
        to_value(&rbac::cluster_role_binding(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            &default_group,
        )),
        to_value(&rbac::cluster_role(
            "kubeadm:get-nodes",
            vec![rbac::rule(&["get"], &["nodes"], &[])],
        )),
        to_value(&rbac::cluster_role_binding(
            "kubeadm:get-nodes",
            "kubeadm:get-nodes",
            &default_group,
        )),
        to_value(&rbac::cluster_role_binding(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &default_group,
        )),
        to_value(&rbac::cluster_role_binding(
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[rbac::group(rbac::NODES_GROUP)],
        )),
    ]
}

/// The cluster-info kubeconfig: admin.conf's current cluster (server and CA) under an empty name, nothing else.
pub fn cluster_info_kubeconfig(admin_conf: &[u8]) -> Result<String, PhaseError> {
    let unusable =
        |reason: String| PhaseError::failed(format!("{} is unusable: {reason}", paths::ADMIN_CONF));
    let admin = super::parse_kubeconfig(admin_conf, paths::ADMIN_CONF)?;
    let cluster = admin
        .current_cluster()
        .ok_or_else(|| unusable("its current context names no cluster".to_owned()))?;
    if cluster.certificate_authority_data.is_none() {
        return Err(unusable(
            "its cluster has no embedded certificate-authority-data".to_owned(),
        ));
    }
    let info = bosun_pki::Kubeconfig {
        api_version: "v1".to_owned(),
        clusters: vec![bosun_pki::kubeconfig::NamedCluster {
            name: String::new(),
            cluster: bosun_pki::kubeconfig::Cluster {
                certificate_authority: None,
                certificate_authority_data: cluster.certificate_authority_data.clone(),
                server: cluster.server.clone(),
                tls_server_name: None,
            },
        }],
        contexts: Vec::new(),
        current_context: String::new(),
        kind: "Config".to_owned(),
        preferences: BTreeMap::new(),
        users: Vec::new(),
    };
    bosun_config::yaml::to_string(&info).map_err(|error| unusable(error.to_string()))
}

/// The cluster-info ConfigMap and the Role and RoleBinding that let anyone read it.
pub fn cluster_info_objects(kubeconfig: String) -> Vec<Value> {
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(CLUSTER_INFO.to_owned()),
            namespace: Some(PUBLIC_NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(CLUSTER_INFO_KEY.to_owned(), kubeconfig)])),
        ..ConfigMap::default()
    };
    let role_name = "kubeadm:bootstrap-signer-clusterinfo";
    vec![
        to_value(&config_map),
        to_value(&rbac::role(
            PUBLIC_NAMESPACE,
            role_name,
            vec![rbac::rule(&["get"], &["configmaps"], &[CLUSTER_INFO])],
        )),
        to_value(&rbac::role_binding(
            PUBLIC_NAMESPACE,
            role_name,
            role_name,
            &[rbac::user(rbac::ANONYMOUS_USER)],
        )),
    ]
}

/// The spec of configured token `index`, with a token given (`Some`) or to be generated.
fn configured_spec(
    data: &InitData,
    index: usize,
    token: Token,
    now: SystemTime,
) -> Result<TokenSpec, PhaseError> {
    let entry = &data.config.init.bootstrap_tokens[index];
    let description = if entry.token.is_empty() && entry.description.is_empty() {
        DEFAULT_TOKEN_DESCRIPTION
    } else {
        entry.description.as_str()
    };
    TokenSpec::new(
        token,
        description,
        entry.ttl.map(|ttl| ttl.as_std()),
        entry.expires.as_deref(),
        &entry.usages,
        &entry.groups,
        now,
    )
    .map_err(|error| {
        PhaseError::failed(format!(
            "InitConfiguration bootstrapTokens[{index}]: {error}"
        ))
    })
}

/// The token Secrets that exist now.
pub fn existing_tokens(
    api: &dyn ClusterApi,
    timeout: Duration,
) -> Result<Vec<TokenSpec>, PhaseError> {
    let selector = format!("type={SECRET_TYPE}");
    let secrets: Vec<Secret> = with_retry(timeout, || {
        cluster::list::<Secret>(api, Some(TOKEN_NAMESPACE), Some(&selector))
    })
    .map_err(api_error)?;
    Ok(secrets
        .iter()
        .filter_map(|secret| TokenSpec::from_secret(secret).ok())
        .collect())
}

/// The token specs to write: generated tokens resolved (a previous run's reused), existing expirations kept.
fn resolve(
    ctx: &PhaseCtx<'_, InitData>,
    existing: &[TokenSpec],
) -> Result<Vec<TokenSpec>, PhaseError> {
    let now = ctx.host.clock.now();
    let mut specs = Vec::new();
    for (index, entry) in ctx.data.config.init.bootstrap_tokens.iter().enumerate() {
        let spec = if entry.token.is_empty() {
            let remembered = (index == 0)
                .then(|| ctx.data.cluster.remembered_token())
                .flatten();
            let template = configured_spec(
                ctx.data,
                index,
                Token::generate().map_err(|error| PhaseError::failed(error.to_string()))?,
                now,
            )?;
            let margin = now + Duration::from_secs(3600);
            let previous = existing.iter().find(|candidate| match &remembered {
                Some(token) => candidate.token == *token,
                None => {
                    index == 0
                        && candidate.description == template.description
                        && candidate.usages == template.usages
                        && candidate.groups == template.groups
                        && !candidate.expired(margin)
                }
            });
            match previous {
                Some(previous) => previous.clone(),
                None => template,
            }
        } else {
            let token = Token::parse(&entry.token).map_err(|error| {
                PhaseError::failed(format!(
                    "InitConfiguration bootstrapTokens[{index}].token: {error}"
                ))
            })?;
            let mut spec = configured_spec(ctx.data, index, token, now)?;
            if let Some(previous) = existing
                .iter()
                .find(|candidate| candidate.token == spec.token)
            {
                let same_apart_from_expiration = previous.description == spec.description
                    && previous.usages == spec.usages
                    && previous.groups == spec.groups
                    && previous.expiration.is_some() == spec.expiration.is_some();
                if same_apart_from_expiration {
                    spec.expiration = previous.expiration;
                }
            }
            spec
        };
        if index == 0 && entry.token.is_empty() {
            ctx.data.cluster.remember_token(spec.token.clone());
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn run(ctx: &mut PhaseCtx<'_, InitData>) -> Result<(), PhaseError> {
    let admin = read_required(ctx, paths::ADMIN_CONF)?;
    let kubeconfig = cluster_info_kubeconfig(&admin)?;
    let api = connect(ctx)?;
    let existing = match api.as_deref() {
        Some(api) => existing_tokens(api, api_timeout(ctx.data))?,
        None => Vec::new(),
    };
    let specs = resolve(ctx, &existing)?;
    let mut objects: Vec<Value> = specs
        .iter()
        .map(|spec| to_value(&spec.to_secret()))
        .collect();
    objects.extend(rbac_objects());
    objects.extend(cluster_info_objects(kubeconfig));
    apply_all(ctx, api.as_deref(), &objects)
}

pub fn phase() -> Phase<InitData> {
    live(
        Phase::new(
            "bootstrap-token",
            "Create the bootstrap tokens, their RBAC rules and the cluster-info ConfigMap",
        )
        .long_about(
            "Creates the configured bootstrap tokens (generating one when none is given), lets their group post and \
             auto-approve node CSRs, and publishes kube-public/cluster-info (server URL and CA) for anonymous \
             discovery; kube-controller-manager signs it with every token that has the usage `signing`.",
        )
        .needs(|_| vec![admin_conf()])
        .makes(|_| {
            vec![Artefact::State(format!("cluster: ConfigMap {PUBLIC_NAMESPACE}/{CLUSTER_INFO}"))]
        })
        .run(run),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://10.0.0.1:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nkind: Config\npreferences: {}\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n";

    #[test]
    fn cluster_info_has_one_unnamed_cluster_and_no_credentials() {
        let text = cluster_info_kubeconfig(ADMIN.as_bytes()).expect("kubeconfig");
        let info =
            crate::cluster::parse_kubeconfig(text.as_bytes(), "cluster-info").expect("parse");
        assert_eq!(info.clusters.len(), 1);
        assert_eq!(info.clusters[0].name, "");
        assert_eq!(info.clusters[0].cluster.server, "https://10.0.0.1:6443");
        assert_eq!(
            info.clusters[0]
                .cluster
                .certificate_authority_data
                .as_deref(),
            Some("Q0E=")
        );
        assert!(info.users.is_empty() && info.contexts.is_empty());
        assert!(
            !text.contains("S0VZ") && !text.contains("Q0VSVA=="),
            "{text}"
        );
        assert_eq!(
            cluster_info_kubeconfig(ADMIN.as_bytes()).expect("again"),
            text,
            "deterministic"
        );
    }

    #[test]
    fn cluster_info_is_readable_by_anonymous() {
        let objects = cluster_info_objects("x".to_owned());
        assert_eq!(objects[0]["metadata"]["namespace"], "kube-public");
        assert_eq!(objects[1]["rules"][0]["resourceNames"][0], "cluster-info");
        assert_eq!(objects[2]["subjects"][0]["kind"], "User");
        assert_eq!(objects[2]["subjects"][0]["name"], "system:anonymous");
    }

    #[test]
    fn bootstrap_rbac_binds_the_default_group() {
        let objects = rbac_objects();
        let binding = |name: &str| {
            objects
                .iter()
                .find(|object| {
                    object["kind"] == "ClusterRoleBinding" && object["metadata"]["name"] == name
                })
                .unwrap_or_else(|| panic!("{name}"))
        };
        assert_eq!(
            binding("kubeadm:kubelet-bootstrap")["roleRef"]["name"],
            "system:node-bootstrapper"
        );
        assert_eq!(
            binding("kubeadm:node-autoapprove-bootstrap")["subjects"][0]["name"],
            rbac::DEFAULT_NODE_TOKEN_GROUP
        );
        assert_eq!(
            binding("kubeadm:node-autoapprove-certificate-rotation")["subjects"][0]["name"],
            "system:nodes"
        );
    }

    #[test]
    fn admin_conf_without_embedded_ca_is_refused() {
        let without_ca = ADMIN.replace("    certificate-authority-data: Q0E=\n", "");
        let error = cluster_info_kubeconfig(without_ca.as_bytes()).expect_err("no CA");
        assert!(error.to_string().contains("admin.conf"), "{error}");
    }
}
