//! Rendering node files from templates: a pure function of a typed context.
//!
//! The templates live in the repository's `templates/` directory and are embedded in the binary at build time
//! ([`Templates::embedded`]); a directory given with `--templates-dir` replaces any of them by file name
//! ([`Templates::with_overrides`]). Each template has exactly one context type in [`context`], which is plain data
//! (strings, numbers, lists), so the templates do not depend on the configuration types.
//!
//! Three filters are available to templates besides tera's own: `yaml` (a YAML scalar, quoted only when a plain
//! scalar would be read as something else), `toml` (a TOML basic string) and `go_quote` (a double-quoted string as
//! Go's `%q` writes it, for environment files).
//!
//! A template that fails to render produces a [`RenderError`] naming the template and the cause (for a missing
//! variable, the variable).

pub mod context;
#[cfg(test)]
pub(crate) mod golden;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::{Files, HostError};

pub use context::*;

/// A template bosun renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Template {
    /// A control-plane static pod ([`StaticPod`]).
    StaticPod,
    /// `/var/lib/kubelet/config.yaml` ([`KubeletConfigFile`]).
    KubeletConfig,
    /// `/var/lib/kubelet/kubeadm-flags.env` ([`KubeletFlags`]).
    KubeletFlags,
    /// The kubelet's systemd drop-in ([`KubeletDropIn`]).
    KubeletDropIn,
    /// containerd 1.x `config.toml`, format version 2 ([`ContainerdConfig`]).
    ContainerdV2,
    /// containerd 2.x `config.toml`, format version 3 ([`ContainerdConfig`]).
    ContainerdV3,
    /// CRI-O drop-in ([`CrioDropIn`]).
    CrioDropIn,
    /// `/etc/crictl.yaml` ([`CrictlConfig`]).
    Crictl,
    /// `/etc/sysctl.d/99-kubernetes.conf` ([`Sysctl`]).
    Sysctl,
    /// `/etc/modules-load.d/kubernetes.conf` ([`Modules`]).
    Modules,
    /// The CoreDNS addon's objects (`crate::cluster::addons::CoreDnsContext`).
    CoreDns,
    /// The kube-proxy addon's objects (`crate::cluster::addons::KubeProxyContext`).
    KubeProxy,
}

impl Template {
    /// Every template, for listing and for checking an overrides directory.
    pub const ALL: [Template; 12] = [
        Template::StaticPod,
        Template::KubeletConfig,
        Template::KubeletFlags,
        Template::KubeletDropIn,
        Template::ContainerdV2,
        Template::ContainerdV3,
        Template::CrioDropIn,
        Template::Crictl,
        Template::Sysctl,
        Template::Modules,
        Template::CoreDns,
        Template::KubeProxy,
    ];

    /// The template's file name in `templates/` and in an overrides directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Template::StaticPod => "static-pod.yaml",
            Template::KubeletConfig => "kubelet-config.yaml",
            Template::KubeletFlags => "kubeadm-flags.env",
            Template::KubeletDropIn => "10-kubeadm.conf",
            Template::ContainerdV2 => "containerd-config-v2.toml",
            Template::ContainerdV3 => "containerd-config-v3.toml",
            Template::CrioDropIn => "crio-kubernetes.conf",
            Template::Crictl => "crictl.yaml",
            Template::Sysctl => "sysctl-kubernetes.conf",
            Template::Modules => "modules-kubernetes.conf",
            Template::CoreDns => "coredns.yaml",
            Template::KubeProxy => "kube-proxy.yaml",
        }
    }

    fn embedded_text(self) -> &'static str {
        match self {
            Template::StaticPod => include_str!("../../../templates/static-pod.yaml"),
            Template::KubeletConfig => include_str!("../../../templates/kubelet-config.yaml"),
            Template::KubeletFlags => include_str!("../../../templates/kubeadm-flags.env"),
            Template::KubeletDropIn => include_str!("../../../templates/10-kubeadm.conf"),
            Template::ContainerdV2 => include_str!("../../../templates/containerd-config-v2.toml"),
            Template::ContainerdV3 => include_str!("../../../templates/containerd-config-v3.toml"),
            Template::CrioDropIn => include_str!("../../../templates/crio-kubernetes.conf"),
            Template::Crictl => include_str!("../../../templates/crictl.yaml"),
            Template::Sysctl => include_str!("../../../templates/sysctl-kubernetes.conf"),
            Template::Modules => include_str!("../../../templates/modules-kubernetes.conf"),
            Template::CoreDns => include_str!("../../../templates/addons/coredns.yaml"),
            Template::KubeProxy => include_str!("../../../templates/addons/kube-proxy.yaml"),
        }
    }
}

/// Where a template's text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateOrigin {
    Embedded,
    Override(PathBuf),
}

impl std::fmt::Display for TemplateOrigin {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateOrigin::Embedded => formatter.write_str("embedded"),
            TemplateOrigin::Override(path) => write!(formatter, "{}", path.display()),
        }
    }
}

/// A template that could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template's text is not valid tera.
    #[error("template {template} ({origin}) is not valid: {reason}")]
    Parse {
        template: &'static str,
        origin: TemplateOrigin,
        reason: String,
    },
    /// Rendering failed; for a variable the context lacks, `reason` names it.
    #[error("cannot render template {template} ({origin}): {reason}")]
    Render {
        template: &'static str,
        origin: TemplateOrigin,
        reason: String,
    },
    /// An overrides directory holds a file that is no template bosun knows (most likely a misspelt name).
    #[error("{path} is not one of bosun's templates")]
    UnknownOverride { path: PathBuf, known: Vec<String> },
    #[error(transparent)]
    Host(#[from] HostError),
}

impl RenderError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            RenderError::UnknownOverride { known, .. } => Some(format!(
                "the templates directory may hold only these files: {}",
                known.join(", ")
            )),
            RenderError::Render {
                origin: TemplateOrigin::Override(_),
                ..
            }
            | RenderError::Parse {
                origin: TemplateOrigin::Override(_),
                ..
            } => Some(
                "compare the override with bosun's embedded template (`templates/` in bosun's source) for the variables it gets"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// The set of templates in use: the embedded ones, with some replaced from an overrides directory.
pub struct Templates {
    tera: tera::Tera,
    origins: BTreeMap<Template, TemplateOrigin>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Templates")
            .field("origins", &self.origins)
            .finish()
    }
}

impl Templates {
    /// bosun's own templates, as embedded at build time.
    pub fn embedded() -> Self {
        let sources = Template::ALL
            .iter()
            .map(|template| {
                (
                    *template,
                    template.embedded_text().to_owned(),
                    TemplateOrigin::Embedded,
                )
            })
            .collect::<Vec<_>>();
        match Self::build(sources) {
            Ok(templates) => templates,
            // The embedded templates are parsed by this crate's unit tests; a failure here is a build defect.
            Err(error) => panic!("bosun's embedded templates do not parse: {error}"),
        }
    }

    /// The embedded templates, with every file in `directory` (on the node, read through `files`) replacing the
    /// template of the same file name. A file that matches no template is an error.
    pub fn with_overrides(files: &dyn Files, directory: &Path) -> Result<Self, RenderError> {
        let mut overrides: HashMap<&'static str, (String, PathBuf)> = HashMap::new();
        for path in files.list_dir(directory)? {
            if files.metadata(&path)?.is_some_and(|meta| meta.is_dir) {
                continue;
            }
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(template) = Template::ALL
                .iter()
                .find(|template| template.file_name() == name)
            else {
                return Err(RenderError::UnknownOverride {
                    path,
                    known: Template::ALL
                        .iter()
                        .map(|template| template.file_name().to_owned())
                        .collect(),
                });
            };
            let bytes = files.read(&path)?.unwrap_or_default();
            let text = String::from_utf8(bytes).map_err(|_| RenderError::Parse {
                template: template.file_name(),
                origin: TemplateOrigin::Override(path.clone()),
                reason: "it is not UTF-8 text".to_owned(),
            })?;
            overrides.insert(template.file_name(), (text, path));
        }
        let sources = Template::ALL
            .iter()
            .map(|template| match overrides.remove(template.file_name()) {
                Some((text, path)) => (*template, text, TemplateOrigin::Override(path)),
                None => (
                    *template,
                    template.embedded_text().to_owned(),
                    TemplateOrigin::Embedded,
                ),
            })
            .collect();
        Self::build(sources)
    }

    /// Templates from explicit texts (tests of bad templates; the embedded ones fill the rest).
    pub fn from_texts(texts: &[(Template, &str)]) -> Result<Self, RenderError> {
        let sources = Template::ALL
            .iter()
            .map(
                |template| match texts.iter().find(|(candidate, _)| candidate == template) {
                    Some((_, text)) => (
                        *template,
                        (*text).to_owned(),
                        TemplateOrigin::Override(PathBuf::from(template.file_name())),
                    ),
                    None => (
                        *template,
                        template.embedded_text().to_owned(),
                        TemplateOrigin::Embedded,
                    ),
                },
            )
            .collect();
        Self::build(sources)
    }

    fn build(sources: Vec<(Template, String, TemplateOrigin)>) -> Result<Self, RenderError> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(Vec::new());
        tera.register_filter("yaml", filter_yaml);
        tera.register_filter("toml", filter_toml);
        tera.register_filter("go_quote", filter_go_quote);
        let mut origins = BTreeMap::new();
        for (template, text, origin) in sources {
            tera.add_raw_template(template.file_name(), &text)
                .map_err(|error| RenderError::Parse {
                    template: template.file_name(),
                    origin: origin.clone(),
                    reason: error_chain(&error),
                })?;
            origins.insert(template, origin);
        }
        Ok(Templates { tera, origins })
    }

    /// Where a template's text comes from.
    pub fn origin(&self, template: Template) -> TemplateOrigin {
        self.origins
            .get(&template)
            .cloned()
            .unwrap_or(TemplateOrigin::Embedded)
    }

    /// Renders `template` with `context`. Pure: the same inputs give the same bytes.
    pub fn render<T: Serialize>(
        &self,
        template: Template,
        context: &T,
    ) -> Result<String, RenderError> {
        let render_error = |reason: String| RenderError::Render {
            template: template.file_name(),
            origin: self.origin(template),
            reason,
        };
        let context = tera::Context::from_serialize(context)
            .map_err(|error| render_error(error_chain(&error)))?;
        self.tera
            .render(template.file_name(), &context)
            .map_err(|error| render_error(error_chain(&error)))
    }
}

/// Tera's error and its causes as one line ("variable `image` not found in context ..."), without the
/// "Failed to render 'x'" wrapper that only repeats the template name.
fn error_chain(error: &tera::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(cause) = current {
        let text = cause.to_string();
        if !text.starts_with("Failed to render") && !text.starts_with("Failed to parse") {
            parts.push(text);
        }
        current = cause.source();
    }
    if parts.is_empty() {
        parts.push(error.to_string());
    }
    parts.join(": ").replace('\n', " ")
}

fn filter_yaml(
    value: &tera::Value,
    _arguments: &HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    Ok(tera::Value::String(match value {
        tera::Value::String(text) => yaml_scalar(text),
        tera::Value::Null => "null".to_owned(),
        other => other.to_string(),
    }))
}

fn filter_toml(
    value: &tera::Value,
    _arguments: &HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    Ok(tera::Value::String(match value {
        tera::Value::String(text) => toml_edit::Value::from(text.as_str())
            .to_string()
            .trim()
            .to_owned(),
        tera::Value::Bool(flag) => flag.to_string(),
        tera::Value::Number(number) => number.to_string(),
        other => {
            return Err(tera::Error::msg(format!(
                "the toml filter takes a string, a number or a boolean, not {other}"
            )))
        }
    }))
}

fn filter_go_quote(
    value: &tera::Value,
    _arguments: &HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    match value {
        tera::Value::String(text) => Ok(tera::Value::String(go_quote(text))),
        other => Err(tera::Error::msg(format!(
            "the go_quote filter takes a string, not {other}"
        ))),
    }
}

/// A string as Go's `%q` writes it (the quoting kubeadm uses in `kubeadm-flags.env`).
pub fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            control if control.is_control() => {
                quoted.push_str(&format!("\\x{:02x}", u32::from(control)))
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// A JSON value as a block-style YAML document with sorted keys, quoting strings as [`yaml_scalar`] does, so that
/// YAML 1.1 readers (Kubernetes' own) read back exactly the same value. Used for objects changed by patches.
pub fn to_yaml(value: &serde_json::Value) -> String {
    let mut out = String::new();
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => write_mapping(&mut out, map, 0),
        serde_json::Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0),
        other => {
            out.push_str(&inline_scalar(other));
            out.push('\n');
        }
    }
    out
}

fn inline_scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => yaml_scalar(text),
        serde_json::Value::Object(map) if map.is_empty() => "{}".to_owned(),
        serde_json::Value::Array(items) if items.is_empty() => "[]".to_owned(),
        other => other.to_string(),
    }
}

fn is_block(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(map) => !map.is_empty(),
        serde_json::Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

fn write_mapping(
    out: &mut String,
    map: &serde_json::Map<String, serde_json::Value>,
    indent: usize,
) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for (index, key) in keys.into_iter().enumerate() {
        // The first key of a mapping inside a sequence item follows the "- " on the same line.
        if index > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        let value = &map[key];
        out.push_str(&yaml_scalar(key));
        out.push(':');
        match value {
            serde_json::Value::Object(child) if !child.is_empty() => {
                out.push('\n');
                write_mapping(out, child, indent + 2);
            }
            serde_json::Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                write_sequence(out, items, indent);
            }
            other => {
                out.push(' ');
                out.push_str(&inline_scalar(other));
                out.push('\n');
            }
        }
    }
}

fn write_sequence(out: &mut String, items: &[serde_json::Value], indent: usize) {
    for (index, item) in items.iter().enumerate() {
        // The first item of a sequence inside a sequence item follows the outer "- " on the same line.
        if index > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match item {
            serde_json::Value::Object(map) if is_block(item) => write_mapping(out, map, indent + 2),
            serde_json::Value::Array(inner) if is_block(item) => {
                write_sequence(out, inner, indent + 2)
            }
            other => {
                out.push_str(&inline_scalar(other));
                out.push('\n');
            }
        }
    }
}

/// A string as a YAML scalar: plain when a YAML 1.1 or 1.2 reader would read it back as the same string, otherwise
/// double-quoted.
pub fn yaml_scalar(text: &str) -> String {
    if is_plain_safe(text) {
        text.to_owned()
    } else {
        // A JSON string is a valid YAML double-quoted scalar.
        serde_json::Value::String(text.to_owned()).to_string()
    }
}

fn is_plain_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    let allowed =
        |character: char| character.is_ascii_alphanumeric() || "/_.:=,+-*@".contains(character);
    if !text.chars().all(allowed) || !(first.is_ascii_alphanumeric() || "/_.-".contains(first)) {
        return false;
    }
    if text.ends_with(':') || text == "-" || text.starts_with("- ") {
        return false;
    }
    let lower = text.to_ascii_lowercase();
    const SPECIAL: [&str; 13] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", ".inf", ".nan", "-.inf",
    ];
    if SPECIAL.contains(&lower.as_str()) {
        return false;
    }
    !looks_like_number(&lower)
}

/// Whether YAML 1.1 or 1.2 would read a plain scalar as a number: decimal, float, `0x`/`0o`/`0b`, `_` separators,
/// or sexagesimal (`1:20`).
fn looks_like_number(lower: &str) -> bool {
    let body = lower.trim_start_matches(['-', '+']).replace('_', "");
    if body.is_empty() {
        return false;
    }
    if body.parse::<f64>().is_ok() {
        return true;
    }
    if let Some(digits) = ["0x", "0o", "0b"]
        .iter()
        .find_map(|prefix| body.strip_prefix(prefix))
    {
        return !digits.is_empty()
            && digits
                .chars()
                .all(|character| character.is_ascii_hexdigit());
    }
    let (whole, _fraction) = body.split_once('.').unwrap_or((&body, ""));
    let mut groups = whole.split(':');
    let first_is_digits = groups
        .next()
        .is_some_and(|group| !group.is_empty() && group.chars().all(|c| c.is_ascii_digit()));
    first_is_digits
        && whole.contains(':')
        && groups.all(|group| {
            !group.is_empty() && group.len() <= 2 && group.chars().all(|c| c.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests;
