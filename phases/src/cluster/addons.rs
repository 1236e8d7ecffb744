//! `addon/coredns` and `addon/kube-proxy`: the addons' objects, rendered from `templates/addons/` (or the
//! `--templates-dir` override of the same file name) and applied in order with server-side apply.
//!
//! kube-proxy is a DaemonSet with a RollingUpdate strategy whose `maxUnavailable`/`maxSurge` come from
//! [`super::Rollout`]; it tolerates control-plane nodes and runs only on Linux nodes. Its ConfigMap carries the
//! KubeProxyConfiguration of the configuration (`config.conf`) and an in-cluster kubeconfig (`kubeconfig.conf`)
//! pointing at the control-plane endpoint.

use serde::Serialize;
use serde_json::Value;

use super::{admin_conf, apply_all, connect, Rollout};
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::init::{live, InitData};
use crate::render::{Template, Templates};

/// The CoreDNS version bosun deploys unless `dns.imageTag` says otherwise: kubeadm v1.35's `CoreDNSVersion`
/// (`kubeadm config images list` names it), so the image a node pre-loads for kubeadm is the one bosun runs.
pub const DEFAULT_COREDNS_TAG: &str = "v1.13.1";

/// What `templates/addons/coredns.yaml` is rendered with.
#[derive(Debug, Clone, Serialize)]
pub struct CoreDnsContext {
    pub image: String,
    pub image_pull_policy: String,
    pub dns_domain: String,
    pub dns_ip: String,
    pub replicas: u32,
    /// Where queries outside the cluster domain go (`/etc/resolv.conf` of the node).
    pub upstream: String,
}

/// What `templates/addons/kube-proxy.yaml` is rendered with.
#[derive(Debug, Clone, Serialize)]
pub struct KubeProxyContext {
    pub image: String,
    pub image_pull_policy: String,
    /// The KubeProxyConfiguration document.
    pub config_conf: String,
    /// The API server kube-proxy talks to (the control-plane endpoint).
    pub server: String,
    /// An integer or a percentage, as the DaemonSet's IntOrString fields want.
    pub max_unavailable: Value,
    pub max_surge: Value,
}

fn int_or_string(text: &str) -> Value {
    match text.trim().parse::<i64>() {
        Ok(number) => Value::from(number),
        Err(_) => Value::from(text.trim()),
    }
}

fn failed(error: impl std::fmt::Display) -> PhaseError {
    PhaseError::failed(error.to_string())
}

fn pull_policy(data: &InitData) -> String {
    let policy = &data.config.init.node_registration.image_pull_policy;
    if policy.is_empty() {
        bosun_config::defaults::DEFAULT_IMAGE_PULL_POLICY.to_owned()
    } else {
        policy.clone()
    }
}

/// The CoreDNS image: `<repository>/coredns/coredns:<tag>` from the default registry, `<repository>/coredns:<tag>`
/// from a custom one (as kubeadm names it).
pub fn coredns_image(cluster: &bosun_config::ClusterConfiguration) -> String {
    let tag = if cluster.dns.image_tag.is_empty() {
        DEFAULT_COREDNS_TAG
    } else {
        &cluster.dns.image_tag
    };
    let repository = if !cluster.dns.image_repository.is_empty() {
        cluster.dns.image_repository.clone()
    } else if cluster.image_repository.is_empty()
        || cluster.image_repository == bosun_config::defaults::DEFAULT_IMAGE_REPOSITORY
    {
        format!(
            "{}/coredns",
            bosun_config::defaults::DEFAULT_IMAGE_REPOSITORY
        )
    } else {
        cluster.image_repository.clone()
    };
    format!("{repository}/coredns:{tag}")
}

pub fn coredns_context(data: &InitData) -> Result<CoreDnsContext, PhaseError> {
    let cluster = &data.config.cluster;
    let dns_domain = if cluster.networking.dns_domain.is_empty() {
        bosun_config::defaults::DEFAULT_DNS_DOMAIN.to_owned()
    } else {
        cluster.networking.dns_domain.clone()
    };
    Ok(CoreDnsContext {
        image: coredns_image(cluster),
        image_pull_policy: pull_policy(data),
        dns_domain,
        dns_ip: data.config.dns_service_ip().map_err(failed)?.to_string(),
        replicas: 2,
        upstream: "/etc/resolv.conf".to_owned(),
    })
}

pub fn kube_proxy_context(
    data: &InitData,
    rollout: &Rollout,
) -> Result<KubeProxyContext, PhaseError> {
    let cluster = &data.config.cluster;
    let repository = if cluster.image_repository.is_empty() {
        bosun_config::defaults::DEFAULT_IMAGE_REPOSITORY
    } else {
        cluster.image_repository.as_str()
    };
    let version = if cluster.kubernetes_version.trim().is_empty() {
        bosun_config::defaults::DEFAULT_KUBERNETES_VERSION.to_owned()
    } else {
        cluster.kubernetes_version.trim().to_owned()
    };
    let config_conf =
        bosun_config::print::kube_proxy(&data.config.kube_proxy).map_err(|error| {
            PhaseError::failed(format!(
                "cannot write the KubeProxyConfiguration for the kube-proxy ConfigMap: {error}"
            ))
        })?;
    Ok(KubeProxyContext {
        image: format!("{repository}/kube-proxy:{version}"),
        image_pull_policy: pull_policy(data),
        config_conf,
        server: data.config.control_plane_endpoint_url().map_err(failed)?,
        max_unavailable: int_or_string(&rollout.max_unavailable),
        max_surge: int_or_string(&rollout.max_surge),
    })
}

/// Parses a rendered multi-document stream into objects, naming the template at fault.
pub fn objects_of(template: Template, rendered: &str) -> Result<Vec<Value>, PhaseError> {
    let mut objects = Vec::new();
    for document in bosun_config::yaml::split_documents(rendered) {
        let value = bosun_config::yaml::value_from_str(&document.text).map_err(|error| {
            PhaseError::failed(format!(
                "template {} rendered invalid YAML: {error}",
                template.file_name()
            ))
        })?;
        if value.is_null() {
            continue;
        }
        let json = serde_json::to_value(&value).map_err(|error| {
            PhaseError::failed(format!(
                "template {} rendered a document that is not JSON-compatible: {error}",
                template.file_name()
            ))
        })?;
        objects.push(json);
    }
    Ok(objects)
}

fn templates(ctx: &PhaseCtx<'_, InitData>) -> Result<Templates, PhaseError> {
    match &ctx.data.templates_dir {
        Some(directory) => {
            Templates::with_overrides(ctx.host.files.as_ref(), directory).map_err(|error| {
                let hint = error.hint();
                let failed = PhaseError::failed(error.to_string());
                match hint {
                    Some(hint) => failed.with_hint(hint),
                    None => failed,
                }
            })
        }
        None => Ok(Templates::embedded()),
    }
}

fn render<T: Serialize>(
    ctx: &PhaseCtx<'_, InitData>,
    template: Template,
    context: &T,
) -> Result<Vec<Value>, PhaseError> {
    let rendered = templates(ctx)?.render(template, context).map_err(|error| {
        let hint = error.hint();
        let failed = PhaseError::failed(error.to_string());
        match hint {
            Some(hint) => failed.with_hint(hint),
            None => failed,
        }
    })?;
    objects_of(template, &rendered)
}

fn run_coredns(ctx: &mut PhaseCtx<'_, InitData>) -> Result<(), PhaseError> {
    let context = coredns_context(ctx.data)?;
    let objects = render(ctx, Template::CoreDns, &context)?;
    let api = connect(ctx)?;
    apply_all(ctx, api.as_deref(), &objects)
}

fn run_kube_proxy(ctx: &mut PhaseCtx<'_, InitData>) -> Result<(), PhaseError> {
    let context = kube_proxy_context(ctx.data, &ctx.data.cluster.kube_proxy_rollout)?;
    let objects = render(ctx, Template::KubeProxy, &context)?;
    let api = connect(ctx)?;
    // A changed DaemonSet is followed until every node runs the new template (or the timeout).
    let timeout = ctx.data.cluster.kube_proxy_rollout_timeout;
    super::rollout::apply_and_follow(ctx, api.as_deref(), &objects, "kube-proxy", timeout)
}

pub fn phase() -> Phase<InitData> {
    live(
        Phase::new(
            "addon",
            "Install or update the CoreDNS and kube-proxy addons",
        )
        .child(
            Phase::new("coredns", "Install the CoreDNS addon")
                .skip_if(|data: &InitData| {
                    if data.offline {
                        Some("--offline: this phase needs a live node".to_owned())
                    } else {
                        data.config
                            .cluster
                            .dns
                            .disabled
                            .then(|| "dns.disabled is set".to_owned())
                    }
                })
                .needs(|_| vec![admin_conf()])
                .makes(|_| {
                    vec![Artefact::State(
                        "cluster: Deployment kube-system/coredns".to_owned(),
                    )]
                })
                .run(run_coredns),
        )
        .child(
            Phase::new("kube-proxy", "Install the kube-proxy addon")
                .skip_if(|data: &InitData| {
                    if data.offline {
                        Some("--offline: this phase needs a live node".to_owned())
                    } else {
                        data.config
                            .cluster
                            .proxy
                            .disabled
                            .then(|| "proxy.disabled is set".to_owned())
                    }
                })
                .needs(|_| vec![admin_conf()])
                .makes(|_| {
                    vec![Artefact::State(
                        "cluster: DaemonSet kube-system/kube-proxy".to_owned(),
                    )]
                })
                .run(run_kube_proxy),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> InitData {
        crate::cluster::test_data()
    }

    fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
        objects
            .iter()
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    #[test]
    fn coredns_objects_render_with_the_dns_service_ip() {
        let context = coredns_context(&data()).expect("context");
        let rendered = Templates::embedded()
            .render(Template::CoreDns, &context)
            .expect("render");
        let objects = objects_of(Template::CoreDns, &rendered).expect("objects");
        let kinds: Vec<&str> = objects
            .iter()
            .filter_map(|object| object["kind"].as_str())
            .collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "ConfigMap",
                "Deployment",
                "Service"
            ]
        );
        assert_eq!(
            find(&objects, "Service", "kube-dns")["spec"]["clusterIP"],
            "10.96.0.10"
        );
        let corefile = find(&objects, "ConfigMap", "coredns")["data"]["Corefile"]
            .as_str()
            .expect("Corefile");
        assert!(
            corefile.contains("kubernetes cluster.local in-addr.arpa ip6.arpa {"),
            "{corefile}"
        );
        let container =
            &find(&objects, "Deployment", "coredns")["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["image"],
            "registry.k8s.io/coredns/coredns:v1.13.1"
        );
        // Every object deserialises as its k8s-openapi type.
        serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(
            find(&objects, "Deployment", "coredns").clone(),
        )
        .expect("a valid Deployment");
        serde_json::from_value::<k8s_openapi::api::core::v1::Service>(
            find(&objects, "Service", "kube-dns").clone(),
        )
        .expect("a valid Service");
    }

    #[test]
    fn kube_proxy_daemon_set_rolls_out_with_the_configured_budget() {
        let rollout = Rollout {
            max_unavailable: "2".to_owned(),
            max_surge: "10%".to_owned(),
        };
        let context = kube_proxy_context(&data(), &rollout).expect("context");
        let rendered = Templates::embedded()
            .render(Template::KubeProxy, &context)
            .expect("render");
        let objects = objects_of(Template::KubeProxy, &rendered).expect("objects");
        let daemon_set = find(&objects, "DaemonSet", "kube-proxy");
        let typed: k8s_openapi::api::apps::v1::DaemonSet =
            serde_json::from_value(daemon_set.clone()).expect("a valid DaemonSet");
        let strategy = typed
            .spec
            .as_ref()
            .and_then(|spec| spec.update_strategy.clone())
            .expect("strategy");
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        let rolling = strategy.rolling_update.expect("rollingUpdate");
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(2)));
        assert_eq!(
            rolling.max_surge,
            Some(IntOrString::String("10%".to_owned()))
        );
        let pod = &daemon_set["spec"]["template"]["spec"];
        assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
        assert!(pod["tolerations"]
            .as_array()
            .expect("tolerations")
            .iter()
            .any(|toleration| {
                toleration["key"] == "node-role.kubernetes.io/control-plane"
                    && toleration["effect"] == "NoSchedule"
            }));
        assert_eq!(
            pod["containers"][0]["image"],
            "registry.k8s.io/kube-proxy:v1.35.4"
        );
        let config_map = find(&objects, "ConfigMap", "kube-proxy");
        assert_eq!(
            config_map["data"]["config.conf"].as_str(),
            Some(context.config_conf.as_str())
        );
        let kubeconfig = config_map["data"]["kubeconfig.conf"]
            .as_str()
            .expect("kubeconfig");
        assert!(
            kubeconfig.contains("server: https://10.0.0.5:6443"),
            "{kubeconfig}"
        );
    }

    #[test]
    fn coredns_image_follows_kubeadms_naming() {
        let mut cluster = bosun_config::ClusterConfiguration::default();
        assert_eq!(
            coredns_image(&cluster),
            "registry.k8s.io/coredns/coredns:v1.13.1"
        );
        cluster.image_repository = "mirror.example/k8s".to_owned();
        cluster.dns.image_tag = "v1.11.3".to_owned();
        assert_eq!(
            coredns_image(&cluster),
            "mirror.example/k8s/coredns:v1.11.3"
        );
    }
}
