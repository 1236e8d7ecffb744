//! `upload-config`: the cluster's configuration in ConfigMaps that joining nodes and upgrades read
//! (kubeadm's phases/uploadconfig and the kubelet part of phases/kubelet).
//!
//! - `kubeadm`: `kube-system/kubeadm-config`, key `ClusterConfiguration` (a v1beta4 document), readable by
//!   bootstrapping nodes and by nodes (Role and RoleBinding `kubeadm:nodes-kubeadm-config`).
//! - `kubelet`: `kube-system/kubelet-config`, key `kubelet` (the KubeletConfiguration every node starts from),
//!   readable the same way (`kubeadm:kubelet-config`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::{admin_conf, apply_all, connect, rbac};
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::host::cluster::to_value;
use crate::init::{live, InitData};

pub const NAMESPACE: &str = "kube-system";
pub const KUBEADM_CONFIG: &str = "kubeadm-config";
pub const KUBEADM_CONFIG_KEY: &str = "ClusterConfiguration";
pub const KUBELET_CONFIG: &str = "kubelet-config";
pub const KUBELET_CONFIG_KEY: &str = "kubelet";

fn config_map(name: &str, key: &str, text: String) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(key.to_owned(), text)])),
        ..ConfigMap::default()
    }
}

/// A ConfigMap with a Role that may read it and a RoleBinding for bootstrapping nodes and nodes.
fn readable_config_map(name: &str, key: &str, text: String, role_name: &str) -> Vec<Value> {
    let role = rbac::role(
        NAMESPACE,
        role_name,
        vec![rbac::rule(&["get"], &["configmaps"], &[name])],
    );
    let binding = rbac::role_binding(
        NAMESPACE,
        role_name,
        role_name,
        &[
            rbac::group(rbac::DEFAULT_NODE_TOKEN_GROUP),
            rbac::group(rbac::NODES_GROUP),
        ],
    );
    vec![
        to_value(&config_map(name, key, text)),
        to_value(&role),
        to_value(&binding),
    ]
}

/// The objects of `upload-config/kubeadm`.
pub fn kubeadm_objects(data: &InitData) -> Result<Vec<Value>, PhaseError> {
    let text = bosun_config::print::v1beta4("ClusterConfiguration", &data.config.cluster).map_err(
        |error| {
            PhaseError::failed(format!(
                "cannot write the ClusterConfiguration for {KUBEADM_CONFIG}: {error}"
            ))
        },
    )?;
    Ok(readable_config_map(
        KUBEADM_CONFIG,
        KUBEADM_CONFIG_KEY,
        text,
        "kubeadm:nodes-kubeadm-config",
    ))
}

/// The objects of `upload-config/kubelet`.
pub fn kubelet_objects(data: &InitData) -> Result<Vec<Value>, PhaseError> {
    let text = bosun_config::print::kubelet(&data.config.kubelet).map_err(|error| {
        PhaseError::failed(format!(
            "cannot write the KubeletConfiguration for {KUBELET_CONFIG}: {error}"
        ))
    })?;
    Ok(readable_config_map(
        KUBELET_CONFIG,
        KUBELET_CONFIG_KEY,
        text,
        "kubeadm:kubelet-config",
    ))
}

fn upload(
    ctx: &mut PhaseCtx<'_, InitData>,
    objects: fn(&InitData) -> Result<Vec<Value>, PhaseError>,
) -> Result<(), PhaseError> {
    let objects = objects(ctx.data)?;
    let api = connect(ctx)?;
    apply_all(ctx, api.as_deref(), &objects)
}

fn state(name: &str) -> Artefact {
    Artefact::State(format!("cluster: ConfigMap {NAMESPACE}/{name}"))
}

pub fn phase() -> Phase<InitData> {
    live(
        Phase::new(
            "upload-config",
            "Upload the kubeadm and kubelet configurations to ConfigMaps",
        )
        .child(live(
            Phase::new(
                "kubeadm",
                "Upload the ClusterConfiguration to the kubeadm-config ConfigMap",
            )
            .needs(|_| vec![admin_conf()])
            .makes(|_| vec![state(KUBEADM_CONFIG)])
            .run(|ctx| upload(ctx, kubeadm_objects)),
        ))
        .child(live(
            Phase::new(
                "kubelet",
                "Upload the KubeletConfiguration to the kubelet-config ConfigMap",
            )
            .needs(|_| vec![admin_conf()])
            .makes(|_| vec![state(KUBELET_CONFIG)])
            .run(|ctx| upload(ctx, kubelet_objects)),
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadm_config_holds_a_v1beta4_cluster_configuration_readable_by_nodes() {
        let data = crate::cluster::test_data();
        let objects = kubeadm_objects(&data).expect("objects");
        let text = objects[0]["data"][KUBEADM_CONFIG_KEY]
            .as_str()
            .expect("text");
        let document: bosun_config::yaml::Value =
            bosun_config::yaml::value_from_str(text).expect("yaml");
        assert_eq!(
            document["apiVersion"].as_str(),
            Some("kubeadm.k8s.io/v1beta4")
        );
        assert_eq!(document["kind"].as_str(), Some("ClusterConfiguration"));
        assert_eq!(objects[1]["kind"], "Role");
        assert_eq!(objects[1]["rules"][0]["resourceNames"][0], KUBEADM_CONFIG);
        let subjects: Vec<&str> = objects[2]["subjects"]
            .as_array()
            .expect("subjects")
            .iter()
            .filter_map(|subject| subject["name"].as_str())
            .collect();
        assert_eq!(
            subjects,
            [rbac::DEFAULT_NODE_TOKEN_GROUP, rbac::NODES_GROUP]
        );
    }

    #[test]
    fn kubelet_config_holds_a_kubelet_configuration() {
        let data = crate::cluster::test_data();
        let objects = kubelet_objects(&data).expect("objects");
        let text = objects[0]["data"][KUBELET_CONFIG_KEY]
            .as_str()
            .expect("text");
        assert!(text.contains("kind: KubeletConfiguration"), "{text}");
        assert_eq!(objects[0]["metadata"]["name"], KUBELET_CONFIG);
    }
}
