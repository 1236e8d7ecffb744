//! Reading a configuration stream: cut it into documents, identify each by apiVersion and kind, decode it
//! strictly (unknown fields are errors), convert v1beta3 to the internal form, apply defaults and validate.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::components::{KubeProxyConfiguration, KubeletConfiguration};
use crate::error::{ConfigError, Problem};
use crate::types::{
    ClusterConfiguration, InitConfiguration, JoinConfiguration, ResetConfiguration,
    UpgradeConfiguration,
};
use crate::yaml::{self, Document, YamlError};
use crate::{defaults, suggest, v1beta3, validate, Config, DocumentSource, HostFacts, Source};

pub const KUBEADM_GROUP: &str = "kubeadm.k8s.io";
pub const V1BETA3: &str = "kubeadm.k8s.io/v1beta3";
pub const V1BETA4: &str = "kubeadm.k8s.io/v1beta4";
pub const KUBELET_API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
pub const KUBE_PROXY_API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";

/// The kinds bosun reads.
pub const KUBEADM_KINDS: [&str; 5] = [
    "InitConfiguration",
    "ClusterConfiguration",
    "JoinConfiguration",
    "ResetConfiguration",
    "UpgradeConfiguration",
];

/// The documents of a stream, decoded but not yet defaulted.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    pub init: Option<InitConfiguration>,
    pub cluster: Option<ClusterConfiguration>,
    pub join: Option<JoinConfiguration>,
    pub reset: Option<ResetConfiguration>,
    pub upgrade: Option<UpgradeConfiguration>,
    pub kubelet: Option<KubeletConfiguration>,
    pub kube_proxy: Option<KubeProxyConfiguration>,
    pub source: Source,
    /// The text of each document by kind, for placing validation problems.
    pub texts: BTreeMap<String, (usize, String)>,
}

fn place(problem: &mut Problem, document: &Document, kind: Option<&str>) {
    problem.document = Some(document.number);
    problem.kind = kind.map(str::to_owned);
}

fn yaml_problem(name: &str, document: &Document, kind: Option<&str>, error: YamlError) -> Problem {
    let mut problem = Problem::new(name, describe(&error.message));
    place(&mut problem, document, kind);
    if !error.path.is_empty() {
        problem.field = Some(error.path.clone());
    }
    problem.line = error.line;
    problem.column = error.column;
    problem.hint = hint_for(&error.message, kind).or_else(|| shape_hint(&error));
    problem
}

/// A hint when extraArgs has the other version's shape.
fn shape_hint(error: &YamlError) -> Option<String> {
    let last = error.path.rsplit('.').next().unwrap_or_default();
    if last != "extraArgs" && last != "kubeletExtraArgs" {
        return None;
    }
    if error.message.contains("expected a sequence") {
        Some(format!(
            "in {V1BETA4} {last} is a list of name/value pairs (`- name: audit-log-maxage`, `value: \"30\"`); the map form is {V1BETA3}'s"
        ))
    } else if error.message.contains("expected a map") {
        Some(format!(
            "in {V1BETA3} {last} is a map of flag names to values; the name/value list is {V1BETA4}'s"
        ))
    } else {
        None
    }
}

/// serde's messages, made a little more direct.
fn describe(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, _)) = rest.split_once('`') {
            return format!("unknown field `{field}`");
        }
    }
    message.to_owned()
}

/// A hint for an unknown field: the closest known name, or the list of names.
fn hint_for(message: &str, kind: Option<&str>) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    let known: Vec<&str> = expected
        .split('`')
        .enumerate()
        .filter(|(index, _)| index % 2 == 1)
        .map(|(_, name)| name)
        .collect();
    if let Some(best) = suggest::closest(field, &known) {
        return Some(format!("did you mean `{best}`?"));
    }
    if field == "extraArgs" || field == "kubeletExtraArgs" {
        return None;
    }
    if !known.is_empty() {
        let kind = kind.unwrap_or("this object");
        return Some(format!("{kind} here accepts {}", known.join(", ")));
    }
    None
}

/// Decodes one document body strictly, turning errors into placed problems.
fn decode<T: DeserializeOwned>(
    name: &str,
    document: &Document,
    kind: &str,
) -> Result<T, Box<Problem>> {
    yaml::from_document::<T>(&document.text)
        .map_err(|error| Box::new(yaml_problem(name, document, Some(kind), error)))
}

/// Cuts the stream, reads each document's type and decodes it.
pub fn decode_stream(name: &str, text: &str) -> Result<Decoded, ConfigError> {
    let mut decoded = Decoded {
        source: Source {
            name: name.to_owned(),
            ..Source::default()
        },
        ..Decoded::default()
    };
    let mut problems = Vec::new();
    for document in yaml::split_documents(text) {
        match decode_document(name, &document, &mut decoded) {
            Ok(()) => {}
            Err(problem) => problems.push(*problem),
        }
    }
    if problems.is_empty() {
        Ok(decoded)
    } else {
        Err(ConfigError { problems })
    }
}

fn decode_document(
    name: &str,
    document: &Document,
    decoded: &mut Decoded,
) -> Result<(), Box<Problem>> {
    let header = yaml::value_from_str(&document.text).map_err(|error| {
        let mut problem = yaml_problem(name, document, None, error);
        problem.message = format!("the YAML is malformed: {}", problem.message);
        problem
    })?;
    let mapping = match &header {
        yaml::Value::Mapping(mapping) => mapping,
        other => {
            let mut problem = Problem::new(
                name,
                format!(
                    "the document is {} where a mapping with apiVersion and kind was expected",
                    value_kind(other)
                ),
            );
            place(&mut problem, document, None);
            problem.line = Some(first_content_line(document));
            return Err(Box::new(problem));
        }
    };
    let field = |key: &str| {
        mapping
            .get(key)
            .and_then(|value| value.as_str())
            .map(str::to_owned)
    };
    let kind = field("kind");
    let api_version = field("apiVersion");
    let located = |key: &str| yaml::locate(&document.text, &yaml::parse_path(key));
    let (Some(api_version), Some(kind)) = (api_version, kind.clone()) else {
        let missing = if mapping.get("apiVersion").and_then(|v| v.as_str()).is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        let mut problem = Problem::new(name, format!("the document has no {missing}"));
        place(&mut problem, document, kind.as_deref());
        problem.line = Some(first_content_line(document));
        problem.column = Some(1);
        return Err(Box::new(problem.with_hint(
            "every document starts with apiVersion and kind, e.g. apiVersion: kubeadm.k8s.io/v1beta4 and kind: InitConfiguration",
        )));
    };
    let unknown = |field: &str, message: String, hint: String| {
        let mut problem = Problem::new(name, message);
        place(&mut problem, document, Some(&kind));
        problem.field = Some(field.to_owned());
        if let Some((line, column)) = yaml::locate_key(&document.text, &yaml::parse_path(field)) {
            problem.line = Some(line);
            problem.column = Some(column);
        }
        problem.with_hint(hint)
    };
    match (api_version.as_str(), kind.as_str()) {
        (V1BETA4, "InitConfiguration") => decoded.init = Some(decode(name, document, &kind)?),
        (V1BETA4, "ClusterConfiguration") => decoded.cluster = Some(decode(name, document, &kind)?),
        (V1BETA4, "JoinConfiguration") => decoded.join = Some(decode(name, document, &kind)?),
        (V1BETA4, "ResetConfiguration") => decoded.reset = Some(decode(name, document, &kind)?),
        (V1BETA4, "UpgradeConfiguration") => decoded.upgrade = Some(decode(name, document, &kind)?),
        (V1BETA3, "InitConfiguration") => {
            let external: v1beta3::InitConfiguration = decode(name, document, &kind)?;
            decoded.init = Some(external.into());
        }
        (V1BETA3, "ClusterConfiguration") => {
            let external: v1beta3::ClusterConfiguration = decode(name, document, &kind)?;
            let (cluster, timeout) = external.into_internal();
            if let Some(timeout) = timeout {
                decoded.source.v1beta3_control_plane_timeout = Some(timeout);
            }
            decoded.cluster = Some(cluster);
        }
        (V1BETA3, "JoinConfiguration") => {
            let external: v1beta3::JoinConfiguration = decode(name, document, &kind)?;
            decoded.join = Some(external.into());
        }
        (V1BETA3, "ResetConfiguration" | "UpgradeConfiguration") => {
            return Err(Box::new(unknown(
                "apiVersion",
                format!("{kind} does not exist in {V1BETA3}; it was added in {V1BETA4}"),
                format!("write apiVersion: {V1BETA4} for the {kind} document"),
            )));
        }
        (KUBELET_API_VERSION, "KubeletConfiguration") => {
            let mut kubelet: KubeletConfiguration = decode(name, document, &kind)?;
            crate::component_fields::check_kubelet(&kubelet).map_err(|(field, hint)| {
                Box::new(unknown(&field, format!("unknown field `{field}`"), hint))
            })?;
            kubelet.from_user = true;
            decoded.kubelet = Some(kubelet);
        }
        (KUBE_PROXY_API_VERSION, "KubeProxyConfiguration") => {
            let mut proxy: KubeProxyConfiguration = decode(name, document, &kind)?;
            crate::component_fields::check_kube_proxy(&proxy).map_err(|(field, hint)| {
                Box::new(unknown(&field, format!("unknown field `{field}`"), hint))
            })?;
            proxy.from_user = true;
            decoded.kube_proxy = Some(proxy);
        }
        (version, kind_name) => {
            return Err(Box::new(type_problem(
                name, document, version, kind_name, &located,
            )));
        }
    }
    if decoded
        .source
        .documents
        .iter()
        .any(|existing| existing.kind == kind)
    {
        let first = decoded
            .source
            .documents
            .iter()
            .find(|existing| existing.kind == kind)
            .map(|existing| existing.number)
            .unwrap_or_default();
        let mut problem = Problem::new(
            name,
            format!("{kind} is given twice (first in document {first})"),
        );
        place(&mut problem, document, Some(&kind));
        problem.line = Some(first_content_line(document));
        return Err(Box::new(
            problem.with_hint("merge the two documents into one"),
        ));
    }
    decoded.source.documents.push(DocumentSource {
        number: document.number,
        api_version: api_version.clone(),
        kind: kind.clone(),
        first_line: document.first_line,
    });
    decoded
        .texts
        .insert(kind, (document.number, document.text.clone()));
    Ok(())
}

fn type_problem(
    name: &str,
    document: &Document,
    api_version: &str,
    kind: &str,
    located: &dyn Fn(&str) -> Option<(usize, usize)>,
) -> Problem {
    let component_kinds = [
        ("KubeletConfiguration", KUBELET_API_VERSION),
        ("KubeProxyConfiguration", KUBE_PROXY_API_VERSION),
    ];
    let mut problem;
    let known_kind =
        KUBEADM_KINDS.contains(&kind) || component_kinds.iter().any(|(known, _)| *known == kind);
    if known_kind {
        // The kind is right, the apiVersion is not.
        problem = Problem::new(
            name,
            format!("apiVersion {api_version:?} is not supported for {kind}"),
        );
        problem.field = Some("apiVersion".to_owned());
        let hint = if let Some((_, version)) =
            component_kinds.iter().find(|(known, _)| *known == kind)
        {
            format!("write apiVersion: {version}")
        } else if api_version.starts_with(KUBEADM_GROUP) {
            format!(
                "bosun reads {V1BETA3} and {V1BETA4}; convert older files with an older kubeadm's `kubeadm config migrate`, then `bosun config migrate`"
            )
        } else {
            format!("write apiVersion: {V1BETA4}")
        };
        problem = problem.with_hint(hint);
        if let Some((line, column)) = located("apiVersion") {
            problem.line = Some(line);
            problem.column = Some(column);
        }
    } else {
        problem = Problem::new(
            name,
            format!("unknown kind {kind:?} (apiVersion {api_version:?})"),
        );
        problem.field = Some("kind".to_owned());
        let mut all: Vec<&str> = KUBEADM_KINDS.to_vec();
        all.extend(component_kinds.iter().map(|(known, _)| *known));
        problem = match suggest::closest(kind, &all) {
            Some(best) => problem.with_hint(format!("did you mean `{best}`?")),
            None => problem.with_hint(format!("bosun reads {}", all.join(", "))),
        };
        if let Some((line, column)) = located("kind") {
            problem.line = Some(line);
            problem.column = Some(column);
        }
    }
    place(&mut problem, document, Some(kind));
    problem
}

fn value_kind(value: &yaml::Value) -> &'static str {
    match value {
        yaml::Value::Null => "empty",
        yaml::Value::Bool(_) => "a boolean",
        yaml::Value::Number(_) => "a number",
        yaml::Value::String(_) => "a string",
        yaml::Value::Sequence(_) => "a list",
        yaml::Value::Mapping(_) => "a mapping",
        yaml::Value::Tagged(_) => "a tagged value",
    }
}

fn first_content_line(document: &Document) -> usize {
    document
        .text
        .lines()
        .enumerate()
        .find(|(_, line)| {
            let trimmed = line.trim();
            !trimmed.is_empty() && !trimmed.starts_with('#') && trimmed != "---"
        })
        .map(|(index, _)| index + 1)
        .unwrap_or(document.first_line)
}

/// Fills defaults into decoded documents, producing the full internal configuration.
pub fn assemble(decoded: Decoded, facts: &HostFacts) -> Config {
    let mut cluster = decoded.cluster.unwrap_or_default();
    defaults::cluster(&mut cluster);
    let mut init = decoded.init.unwrap_or_default();
    if let Some(timeout) = decoded.source.v1beta3_control_plane_timeout {
        let timeouts = init.timeouts.get_or_insert_with(Default::default);
        if timeouts.control_plane_component_health_check.is_none() {
            timeouts.control_plane_component_health_check = Some(timeout);
        }
    }
    defaults::init(&mut init, facts);
    let join = decoded.join.map(|mut join| {
        defaults::join(&mut join, facts);
        join
    });
    let reset = decoded.reset.map(|mut reset| {
        defaults::reset(&mut reset);
        reset
    });
    let upgrade = decoded.upgrade.map(|mut upgrade| {
        defaults::upgrade(&mut upgrade);
        upgrade
    });
    let mut config = Config {
        init,
        cluster,
        join,
        reset,
        upgrade,
        kubelet: decoded.kubelet.unwrap_or_default(),
        kube_proxy: decoded.kube_proxy.unwrap_or_default(),
        source: decoded.source,
    };
    let dns_ip = config.dns_service_ip().ok().map(|ip| ip.to_string());
    defaults::kubelet(&mut config.kubelet, &config.cluster, dns_ip);
    let ipv6 = config
        .advertise_address()
        .map(|address| address.is_ipv6())
        .unwrap_or(false);
    defaults::kube_proxy(&mut config.kube_proxy, &config.cluster, ipv6);
    config
}

/// Places validation problems in the file: the document of their kind, and the line and column of their field.
pub fn place_problems(
    name: &str,
    texts: &BTreeMap<String, (usize, String)>,
    problems: Vec<validate::FieldProblem>,
) -> Vec<Problem> {
    problems
        .into_iter()
        .map(|found| {
            let mut problem = Problem::new(name, found.message);
            problem.kind = Some(found.kind.to_owned());
            problem.field = Some(found.field.clone());
            problem.hint = found.hint;
            if let Some((number, text)) = texts.get(found.kind) {
                problem.document = Some(*number);
                if let Some((line, column)) = yaml::locate(text, &yaml::parse_path(&found.field)) {
                    problem.line = Some(line);
                    problem.column = Some(column);
                }
            } else {
                problem.message = format!("{} (the value is bosun's default)", problem.message);
            }
            problem
        })
        .collect()
}
