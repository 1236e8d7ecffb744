//! kubeadm's `--patches` directories (util/patches/patches.go): files named `target[suffix][+patchtype].extension`
//! that change generated objects after bosun builds them.
//!
//! - `target` is one of [`TARGETS`]; `suffix` (any text) only orders files; `patchtype` is `strategic` (the
//!   default), `merge` (RFC 7386 JSON merge patch) or `json` (RFC 6902 JSON patch); the extension is `json` or
//!   `yaml`/`yml`.
//! - Files are applied in lexical order of their names. A YAML file may hold several documents (strategic and merge
//!   patches), applied in order.
//! - Strategic merge is Kubernetes' for the Pod fields a static pod has: lists of containers, volumes, env,
//!   volumeMounts and ports merge by their key (`name`, `mountPath`, `containerPort`), `$patch: delete` and
//!   `$patch: replace` work on maps and list items, and `null` deletes a key; other lists are replaced. For the
//!   KubeletConfiguration target it behaves like a merge patch, as in kubeadm (the type has no merge keys).
//! - Files that match no known target are reported (kubeadm logs them) and skipped.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::host::Files;

use super::NodeError;

/// The targets kubeadm knows.
pub const TARGETS: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubeletconfiguration",
    "corednsdeployment",
];

/// How a patch file changes its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Strategic,
    Merge,
    Json,
}

/// One patch file.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchFile {
    pub path: PathBuf,
    pub target: String,
    pub patch_type: PatchType,
    /// The patch documents, as JSON values.
    pub documents: Vec<Value>,
}

/// The patches of a directory, and the files in it that were not patches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatchSet {
    pub patches: Vec<PatchFile>,
    pub ignored: Vec<PathBuf>,
}

impl PatchSet {
    /// The patches for `target`, in application order.
    pub fn for_target<'a>(&'a self, target: &'a str) -> impl Iterator<Item = &'a PatchFile> + 'a {
        self.patches
            .iter()
            .filter(move |patch| patch.target == target)
    }

    pub fn has_target(&self, target: &str) -> bool {
        self.for_target(target).next().is_some()
    }
}

/// Splits a patch file name into (target, patch type); `None` if it is not a patch file.
pub fn parse_file_name(name: &str) -> Option<(String, PatchType)> {
    let (stem, extension) = name.rsplit_once('.')?;
    if !matches!(extension, "json" | "yaml" | "yml") {
        return None;
    }
    let (base, patch_type) = match stem.rsplit_once('+') {
        Some((base, "strategic")) => (base, PatchType::Strategic),
        Some((base, "merge")) => (base, PatchType::Merge),
        Some((base, "json")) => (base, PatchType::Json),
        Some(_) => return None,
        None => (stem, PatchType::Strategic),
    };
    // The target is the longest known name the base starts with; what follows is the ordering suffix.
    TARGETS
        .iter()
        .filter(|target| base.starts_with(*target))
        .max_by_key(|target| target.len())
        .map(|target| ((*target).to_owned(), patch_type))
}

/// Reads every patch of a directory on the node.
pub fn load(files: &dyn Files, directory: &Path) -> Result<PatchSet, NodeError> {
    let meta = files.metadata(directory)?;
    match meta {
        None => {
            return Err(NodeError::Invalid {
                what: format!("patches directory {}", directory.display()),
                reason: "it does not exist".to_owned(),
            })
        }
        Some(meta) if !meta.is_dir => {
            return Err(NodeError::Invalid {
                what: format!("patches directory {}", directory.display()),
                reason: "it is not a directory".to_owned(),
            })
        }
        Some(_) => {}
    }
    let mut set = PatchSet::default();
    let mut entries = files.list_dir(directory)?;
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((target, patch_type)) = parse_file_name(&name) else {
            set.ignored.push(path);
            continue;
        };
        let bytes = files.read(&path)?.unwrap_or_default();
        let text = String::from_utf8(bytes).map_err(|_| NodeError::Patch {
            path: path.clone(),
            reason: "it is not UTF-8 text".to_owned(),
        })?;
        let documents = parse_documents(&path, &text, patch_type)?;
        set.patches.push(PatchFile {
            path,
            target,
            patch_type,
            documents,
        });
    }
    Ok(set)
}

fn parse_documents(
    path: &Path,
    text: &str,
    patch_type: PatchType,
) -> Result<Vec<Value>, NodeError> {
    let patch_error = |reason: String| NodeError::Patch {
        path: path.to_path_buf(),
        reason,
    };
    let mut documents = Vec::new();
    for document in bosun_config::yaml::split_documents(text) {
        if document.text.trim().is_empty() {
            continue;
        }
        let value = bosun_config::yaml::value_from_str(&document.text)
            .map_err(|error| patch_error(error.to_string()))?;
        let json = serde_json::to_value(&value).map_err(|error| patch_error(error.to_string()))?;
        if json.is_null() {
            continue;
        }
        documents.push(json);
    }
    if patch_type == PatchType::Json && documents.len() > 1 {
        return Err(patch_error(
            "a JSON patch is one list of operations, not several documents".to_owned(),
        ));
    }
    Ok(documents)
}

/// Applies the patches for `target` to `object`, returning whether any applied.
pub fn apply(set: &PatchSet, target: &str, object: &mut Value) -> Result<bool, NodeError> {
    let mut applied = false;
    for patch in set.for_target(target) {
        let patch_error = |reason: String| NodeError::Patch {
            path: patch.path.clone(),
            reason,
        };
        for document in &patch.documents {
            match patch.patch_type {
                PatchType::Merge => json_patch::merge(object, document),
                PatchType::Strategic => {
                    if !document.is_object() {
                        return Err(patch_error(
                            "a strategic merge patch must be a mapping".to_owned(),
                        ));
                    }
                    strategic_merge(object, document, &[]);
                }
                PatchType::Json => {
                    let operations: json_patch::Patch = serde_json::from_value(document.clone())
                        .map_err(|error| patch_error(format!("it is not a JSON patch: {error}")))?;
                    json_patch::patch(object, &operations)
                        .map_err(|error| patch_error(format!("it does not apply: {error}")))?;
                }
            }
            applied = true;
        }
    }
    Ok(applied)
}

/// The merge key of a list at `path` (the field names from the root), as Kubernetes' Pod type declares it.
fn merge_key(path: &[String]) -> Option<&'static str> {
    let last = path.last()?.as_str();
    match last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => Some("containerPort"),
        "hostAliases" => Some("ip"),
        _ => None,
    }
}

/// A strategic merge of `patch` into `target` for Pod-shaped objects.
fn strategic_merge(target: &mut Value, patch: &Value, path: &[String]) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch_map.clone();
        replacement.remove("$patch");
        *target = Value::Object(replacement);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return;
    };
    for (key, value) in patch_map {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        let mut child_path = path.to_vec();
        child_path.push(key.clone());
        match (target_map.get_mut(key), value) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                if value.get("$patch").and_then(Value::as_str) == Some("delete") {
                    target_map.remove(key);
                } else {
                    strategic_merge(existing, value, &child_path);
                }
            }
            (Some(Value::Array(existing)), Value::Array(items)) => match merge_key(&child_path) {
                Some(merge_key) => merge_list(existing, items, merge_key, &child_path),
                None => *existing = items.clone(),
            },
            _ => {
                let mut fresh = Value::Null;
                strategic_merge_into_new(&mut fresh, value, &child_path);
                target_map.insert(key.clone(), fresh);
            }
        }
    }
}

/// A patch value placed where the target had nothing: directives are stripped.
fn strategic_merge_into_new(target: &mut Value, patch: &Value, path: &[String]) {
    match patch {
        Value::Object(_) => strategic_merge(target, patch, path),
        Value::Array(items) => {
            *target = Value::Array(
                items
                    .iter()
                    .filter(|item| item.get("$patch").and_then(Value::as_str) != Some("delete"))
                    .map(|item| {
                        let mut fresh = Value::Null;
                        strategic_merge_into_new(&mut fresh, item, path);
                        fresh
                    })
                    .collect(),
            )
        }
        other => *target = other.clone(),
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], merge_key: &str, path: &[String]) {
    if items
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *existing = items
            .iter()
            .filter(|item| item.get("$patch").is_none())
            .cloned()
            .collect();
        return;
    }
    for item in items {
        let Some(key_value) = item.get(merge_key) else {
            existing.push(item.clone());
            continue;
        };
        let position = existing
            .iter()
            .position(|candidate| candidate.get(merge_key) == Some(key_value));
        let deleting = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, deleting) {
            (Some(index), true) => {
                existing.remove(index);
            }
            (Some(index), false) => strategic_merge(&mut existing[index], item, path),
            (None, true) => {}
            (None, false) => {
                let mut fresh = Value::Null;
                strategic_merge_into_new(&mut fresh, item, path);
                existing.push(fresh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryFiles;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "kube-apiserver", "labels": {"tier": "control-plane"}},
            "spec": {"containers": [{
                "name": "kube-apiserver",
                "command": ["kube-apiserver", "--a=1"],
                "resources": {"requests": {"cpu": "250m"}},
                "volumeMounts": [{"name": "k8s-certs", "mountPath": "/etc/kubernetes/pki", "readOnly": true}]
            }]}
        })
    }

    fn set_with(files: &[(&str, &str)]) -> PatchSet {
        let memory = MemoryFiles::default();
        for (name, text) in files {
            memory
                .write_atomic(&Path::new("/patches").join(name), text.as_bytes(), 0o644)
                .expect("write");
        }
        load(&memory, Path::new("/patches")).expect("load")
    }

    #[test]
    fn file_names_give_target_and_type_as_kubeadm_reads_them() {
        assert_eq!(
            parse_file_name("kube-apiserver0+merge.yaml"),
            Some(("kube-apiserver".to_owned(), PatchType::Merge))
        );
        assert_eq!(
            parse_file_name("etcd.json"),
            Some(("etcd".to_owned(), PatchType::Strategic))
        );
        assert_eq!(
            parse_file_name("kubeletconfiguration+json.json"),
            Some(("kubeletconfiguration".to_owned(), PatchType::Json))
        );
        assert_eq!(parse_file_name("kube-apiserver+unknown.yaml"), None);
        assert_eq!(parse_file_name("README.md"), None);
        assert_eq!(parse_file_name("kube-proxy.yaml"), None);
    }

    #[test]
    fn strategic_patches_merge_containers_by_name_and_mounts_by_path() {
        let set = set_with(&[(
            "kube-apiserver.yaml",
            "spec:\n  containers:\n  - name: kube-apiserver\n    resources:\n      requests:\n        cpu: 500m\n    volumeMounts:\n    - name: audit\n      mountPath: /var/log/audit\n",
        )]);
        let mut object = pod();
        assert!(apply(&set, "kube-apiserver", &mut object).expect("apply"));
        let container = &object["spec"]["containers"][0];
        assert_eq!(container["resources"]["requests"]["cpu"], "500m");
        assert_eq!(container["command"], json!(["kube-apiserver", "--a=1"]));
        assert_eq!(container["volumeMounts"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn strategic_delete_directives_and_null_remove_things() {
        let set = set_with(&[(
            "kube-apiserver.yaml",
            "metadata:\n  labels:\n    tier: null\nspec:\n  containers:\n  - name: kube-apiserver\n    volumeMounts:\n    - mountPath: /etc/kubernetes/pki\n      $patch: delete\n",
        )]);
        let mut object = pod();
        apply(&set, "kube-apiserver", &mut object).expect("apply");
        assert_eq!(object["metadata"]["labels"], json!({}));
        assert_eq!(object["spec"]["containers"][0]["volumeMounts"], json!([]));
    }

    #[test]
    fn merge_patches_replace_lists_and_json_patches_are_applied_in_file_order() {
        let set = set_with(&[
            (
                "kube-apiserver1+json.json",
                r#"[{"op": "add", "path": "/spec/containers/0/command/-", "value": "--b=2"}]"#,
            ),
            (
                "kube-apiserver0+merge.yaml",
                "spec:\n  containers:\n  - name: kube-apiserver\n    command: [kube-apiserver]\n",
            ),
            ("notes.txt", "not a patch"),
        ]);
        assert_eq!(set.ignored, [PathBuf::from("/patches/notes.txt")]);
        let mut object = pod();
        apply(&set, "kube-apiserver", &mut object).expect("apply");
        assert_eq!(
            object["spec"]["containers"][0]["command"],
            json!(["kube-apiserver", "--b=2"])
        );
        assert!(object["spec"]["containers"][0].get("resources").is_none());
    }

    #[test]
    fn a_json_patch_that_does_not_apply_names_the_file() {
        let set = set_with(&[(
            "etcd+json.yaml",
            "- op: replace\n  path: /spec/nothing/here\n  value: 1\n",
        )]);
        let mut object = pod();
        let error = apply(&set, "etcd", &mut object).expect_err("bad path");
        assert!(
            error.to_string().contains("/patches/etcd+json.yaml"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_patches_directory_is_an_error_naming_it() {
        let error = load(&MemoryFiles::default(), Path::new("/nowhere")).expect_err("missing");
        assert!(error.to_string().contains("/nowhere"), "{error}");
    }
}
