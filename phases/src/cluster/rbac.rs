//! The RBAC objects the cluster-side phases create, built from k8s-openapi types (phases/bootstraptoken/node,
//! uploadconfig, copycerts in kubeadm).

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The group every default bootstrap token authenticates as.
pub const DEFAULT_NODE_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// The group of admin.conf's user.
pub const CLUSTER_ADMINS_GROUP: &str = "kubeadm:cluster-admins";
pub const NODES_GROUP: &str = "system:nodes";
pub const ANONYMOUS_USER: &str = "system:anonymous";

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

pub fn group(name: &str) -> Subject {
    Subject {
        api_group: Some(RBAC_GROUP.to_owned()),
        kind: "Group".to_owned(),
        name: name.to_owned(),
        namespace: None,
    }
}

pub fn user(name: &str) -> Subject {
    Subject {
        api_group: Some(RBAC_GROUP.to_owned()),
        kind: "User".to_owned(),
        name: name.to_owned(),
        namespace: None,
    }
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

/// A rule allowing `verbs` on `resources` of the core group, limited to `names` when given.
pub fn rule(verbs: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(resources.iter().map(|text| (*text).to_owned()).collect()),
        resource_names: (!names.is_empty())
            .then(|| names.iter().map(|text| (*text).to_owned()).collect()),
        verbs: verbs.iter().map(|text| (*text).to_owned()).collect(),
        non_resource_urls: None,
    }
}

pub fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, None),
        rules: Some(rules),
        ..ClusterRole::default()
    }
}

pub fn cluster_role_binding(
    name: &str,
    cluster_role: &str,
    subjects: &[Subject],
) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.to_owned(),
            kind: "ClusterRole".to_owned(),
            name: cluster_role.to_owned(),
        },
        subjects: Some(subjects.to_vec()),
    }
}

pub fn role(namespace: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
    Role {
        metadata: meta(name, Some(namespace)),
        rules: Some(rules),
    }
}

pub fn role_binding(namespace: &str, name: &str, role: &str, subjects: &[Subject]) -> RoleBinding {
    RoleBinding {
        metadata: meta(name, Some(namespace)),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.to_owned(),
            kind: "Role".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(subjects.to_vec()),
    }
}
