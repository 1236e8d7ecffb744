//! `bosun etcd restore`: put a control-plane node's etcd back to the contents of a backup.
//!
//! # Steps
//! 1. Check, changing nothing: no earlier restore was interrupted (its staging directory holds no manifests); the
//!    etcd manifest exists; other members are stopped (a restore makes a new one-member cluster, and members still
//!    running would keep serving the old data); the restore tool is chosen (`--restore-tool`: `auto` takes `etcdutl`
//!    when it is on the `PATH` and bosun's native restore otherwise; `etcdutl`, `etcdctl` and `native` force one).
//! 2. Read the whole backup: decrypt it, check every frame's tag, the final frame, the SHA-256 and etcd's own trailing
//!    hash. A corrupt, tampered, truncated file or a wrong key is refused here, before anything changes.
//! 3. Write the decrypted snapshot to `/var/lib/bosun/etcd-restore-<time>/snapshot.db` (0600, directory 0700), and
//!    restore it into a new data directory `<data-dir>-restored-<time>` with a fresh `--initial-cluster-token`: with
//!    `etcdutl`/`etcdctl snapshot restore`, or natively ([`super::native_restore`]: the database copied with the new
//!    membership, a WAL and a v2 snapshot, built in `<dir>.partial` and renamed into place). Either way the member
//!    and cluster IDs are the ones etcd computes from the name, peer URL and token, and bosun reports them. The
//!    running etcd is not touched yet.
//! 4. Stop the API server, then etcd, by moving their manifests into `/etc/kubernetes/tmp/bosun-etcd-restore-<time>/`;
//!    wait until etcd no longer answers.
//! 5. Write the etcd manifest pointing at the new data directory (`--data-dir`, the `hostPath` volume and its mount,
//!    `--initial-cluster` of this member alone, the new token); wait until etcd is healthy and serves exactly the
//!    backup's revision.
//! 6. Move the API server manifest back, and remove the decrypted snapshot and the staging directory.
//!
//! # Guarantees
//! - Nothing changes before step 4 except the private copy of the snapshot and the new data directory, which a
//!   failure removes again.
//! - A failure in steps 4–6 puts everything back: the original etcd and API server manifests return to their places
//!   (byte for byte), the new data directory is removed, and the old data directory — never modified — is served
//!   again.
//! - On success the old data directory is kept where it was (the manifest no longer points at it), so the restore
//!   can be undone by hand; bosun reports its path.
//!
//! # Assumptions
//! - The node runs etcd as a kubelet static pod from a kubeadm-shaped manifest (see [`super::manifest`]); the kubelet
//!   stops a pod when its manifest leaves the directory and starts it when it returns.
//! - Safe to re-run: a run that was interrupted between steps 4 and 6 leaves the original manifests in the staging
//!   directory; the next run refuses to start and names it, so the operator moves them back first.
//!
//! # Caveats
//! - Pods and controllers see the cluster as it was at the backup; objects created since are gone.
//! - Other members of a multi-member cluster must be stopped first; after the restore they rejoin as new members
//!   (bosun prints the steps for each).
//! - The decrypted snapshot lies on this node's disk (0600) for the duration of the restore.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::backup::{self, BackupError};
use super::format::BackupKey;
use super::manifest::EtcdManifest;
use super::native_restore::{self, NewMember};
use super::{member_id_hex, EtcdClient, StreamStore};
use crate::host::{run_checked, CommandSpec, Commands, Files, HostError};
use crate::paths::{self, NodePaths};

/// Which program turns the snapshot into a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestoreTool {
    /// `etcdutl` when it is on the `PATH`, else [`RestoreTool::Native`].
    #[default]
    Auto,
    /// `etcdutl snapshot restore` (etcd 3.5 and later).
    Etcdutl,
    /// `ETCDCTL_API=3 etcdctl snapshot restore` (etcd 3.4).
    Etcdctl,
    /// bosun's own restore ([`super::native_restore`]), no etcd program needed.
    Native,
}

impl RestoreTool {
    pub fn name(self) -> &'static str {
        match self {
            RestoreTool::Auto => "auto",
            RestoreTool::Etcdutl => "etcdutl",
            RestoreTool::Etcdctl => "etcdctl",
            RestoreTool::Native => "native",
        }
    }
}

/// A restore to run.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// Which program restores the snapshot.
    pub tool: RestoreTool,
    /// The backup or etcd snapshot (a node path).
    pub backup: PathBuf,
    pub key: Option<BackupKey>,
    /// A UTC time stamp that names the new data dir and staging directories (`20261201T120000Z`).
    pub stamp: String,
    /// The new `--initial-cluster-token`.
    pub token: String,
    /// How long the kubelet may take to stop etcd after its manifest is moved away.
    pub stop_timeout: Duration,
    /// How long the restored etcd may take to become healthy.
    pub health_timeout: Duration,
    /// The operator has stopped the other members (checked when the cluster cannot tell).
    pub other_members_stopped: bool,
}

/// What the node needs from the outside.
pub struct RestoreHost<'host> {
    pub files: &'host dyn Files,
    pub commands: &'host dyn Commands,
    pub store: &'host dyn StreamStore,
    /// A client for the local member's endpoints (it must reconnect on every call).
    pub client: &'host dyn EtcdClient,
    /// Progress: (step name, text).
    pub report: &'host dyn Fn(&str, &str),
    pub sleep: &'host dyn Fn(Duration),
}

/// Another member, and what to do on it after the restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherMember {
    pub name: String,
    pub peer_url: String,
    pub steps: Vec<String>,
}

/// A finished restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreOutcome {
    pub member_name: String,
    pub revision: i64,
    pub data_dir: PathBuf,
    pub old_data_dir: PathBuf,
    pub initial_cluster_token: String,
    /// `etcdutl`, `etcdctl` or `native`.
    pub tool: String,
    /// The restored member's ID (lower-case hex), computed as etcd computes it.
    pub member_id: String,
    /// The new cluster's ID (lower-case hex).
    pub cluster_id: String,
    pub other_members: Vec<OtherMember>,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Refused before anything changed.
    #[error("{reason}; nothing was changed")]
    Refused {
        reason: String,
        hint: Option<String>,
    },
    /// Failed after the node was changed; `rollback` says how putting it back went.
    #[error("{reason}; {rollback}")]
    Failed { reason: String, rollback: String },
}

impl RestoreError {
    fn refused(reason: impl Into<String>) -> Self {
        RestoreError::Refused {
            reason: reason.into(),
            hint: None,
        }
    }

    fn refused_with_hint(reason: impl Into<String>, hint: impl Into<String>) -> Self {
        RestoreError::Refused {
            reason: reason.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            RestoreError::Refused { hint, .. } => hint.as_deref(),
            RestoreError::Failed { .. } => {
                Some("look at etcd's log; the node is back as it was before the restore")
            }
        }
    }

    pub fn changed_host(&self) -> bool {
        matches!(self, RestoreError::Failed { .. })
    }
}

const STAGING_PREFIX: &str = "bosun-etcd-restore-";

fn wait_until(
    host: &RestoreHost<'_>,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        (host.sleep)(Duration::from_millis(250));
    }
}

fn host_error(error: HostError) -> String {
    error.to_string()
}

/// Other members named by `--initial-cluster`: (name, peer URL).
fn initial_cluster_members(manifest: &EtcdManifest) -> Vec<(String, String)> {
    manifest
        .flag("initial-cluster")
        .unwrap_or_default()
        .split(',')
        .filter_map(|part| part.split_once('='))
        .map(|(name, url)| (name.trim().to_owned(), url.trim().to_owned()))
        .collect()
}

/// Runs the restore; see the module documentation for its steps and guarantees.
pub fn restore(
    host: &RestoreHost<'_>,
    request: &RestoreRequest,
) -> Result<RestoreOutcome, RestoreError> {
    // Step 1: checks.
    let staging_root = Path::new(paths::KUBERNETES_TMP_DIR);
    for directory in host
        .files
        .list_dir(staging_root)
        .map_err(|error| RestoreError::refused(host_error(error)))?
    {
        let name = directory
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(STAGING_PREFIX) {
            let leftover = host
                .files
                .list_dir(&directory)
                .map_err(|error| RestoreError::refused(host_error(error)))?;
            if leftover.iter().any(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "yaml")
            }) {
                return Err(RestoreError::refused_with_hint(
                    format!("an earlier restore was interrupted and left manifests in {}", directory.display()),
                    format!(
                        "move the manifests in {} back to {} (or decide which to keep), remove the directory, and run \
                         the restore again",
                        directory.display(),
                        paths::MANIFESTS_DIR
                    ),
                ));
            }
        }
    }
    let etcd_manifest_path = NodePaths::manifest("etcd");
    let apiserver_manifest_path = NodePaths::manifest("kube-apiserver");
    let original_etcd = host
        .files
        .read(&etcd_manifest_path)
        .map_err(|error| RestoreError::refused(host_error(error)))?
        .ok_or_else(|| {
            RestoreError::refused_with_hint(
                format!(
                    "{} does not exist, so this is not a control-plane node with a local etcd",
                    etcd_manifest_path.display()
                ),
                "run the restore on a control-plane node (bosun restores etcd run as a static pod)",
            )
        })?;
    let manifest = EtcdManifest::new(String::from_utf8_lossy(&original_etcd).into_owned());
    let member_name = manifest.member_name().ok_or_else(|| {
        RestoreError::refused(format!(
            "{} has no --name flag",
            etcd_manifest_path.display()
        ))
    })?;
    let peer_url = manifest
        .flag("initial-advertise-peer-urls")
        .and_then(|urls| urls.split(',').next().map(str::to_owned))
        .ok_or_else(|| {
            RestoreError::refused(format!(
                "{} has no --initial-advertise-peer-urls flag",
                etcd_manifest_path.display()
            ))
        })?;
    let endpoint = host.client.endpoints().first().cloned().unwrap_or_default();
    let old_data_dir = manifest.data_dir();
    let new_data_dir = PathBuf::from(format!(
        "{}-restored-{}",
        old_data_dir.display(),
        request.stamp
    ));

    let mut others: Vec<(String, String)> = Vec::new();
    match host.client.members() {
        Ok(members) => {
            for member in members.iter().filter(|member| member.name != member_name) {
                let url = member.peer_urls.first().cloned().unwrap_or_default();
                let running = member
                    .client_urls
                    .first()
                    .is_some_and(|client_url| host.client.status(client_url).is_ok());
                if running {
                    return Err(RestoreError::refused_with_hint(
                        format!("the etcd member {} is still running; a restore would split the cluster", member.name),
                        format!(
                            "on {name}, stop the API server and etcd first (move {} and {} out of {}), then run the \
                             restore again",
                            apiserver_manifest_path.display(),
                            etcd_manifest_path.display(),
                            paths::MANIFESTS_DIR,
                            name = member.name
                        ),
                    ));
                }
                others.push((member.name.clone(), url));
            }
        }
        Err(error) => {
            others = initial_cluster_members(&manifest)
                .into_iter()
                .filter(|(name, _)| *name != member_name)
                .collect();
            if !others.is_empty() && !request.other_members_stopped {
                return Err(RestoreError::refused_with_hint(
                    format!(
                        "the cluster cannot say whether the other members ({}) are stopped ({error})",
                        others.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                    "stop the API server and etcd on every other control-plane node, then run the restore again with \
                     --other-members-stopped",
                ));
            }
        }
    }
    let program = |name: &str| {
        host.commands.find_program(name).ok_or_else(|| {
            RestoreError::refused_with_hint(
                format!("--restore-tool {name} was asked for, but {name} is not on the PATH"),
                "install it, or leave --restore-tool at auto (bosun restores natively when etcdutl is missing)",
            )
        })
    };
    let tool = match request.tool {
        RestoreTool::Auto => match host.commands.find_program("etcdutl") {
            Some(path) => (RestoreTool::Etcdutl, Some(path)),
            None => (RestoreTool::Native, None),
        },
        RestoreTool::Etcdutl => (RestoreTool::Etcdutl, Some(program("etcdutl")?)),
        RestoreTool::Etcdctl => (RestoreTool::Etcdctl, Some(program("etcdctl")?)),
        RestoreTool::Native => (RestoreTool::Native, None),
    };
    let new_member = NewMember::new(
        &member_name,
        std::slice::from_ref(&peer_url),
        &request.token,
    )
    .map_err(|error| {
        RestoreError::refused(format!(
            "{} --initial-advertise-peer-urls: {error}",
            etcd_manifest_path.display()
        ))
    })?;
    let member_id = native_restore::member_id(&new_member.peer_urls, &new_member.cluster_token);
    let cluster_id = native_restore::cluster_id(&[member_id]);
    if host
        .files
        .exists(&new_data_dir)
        .map_err(|error| RestoreError::refused(host_error(error)))?
    {
        return Err(RestoreError::refused(format!(
            "the new data directory {} already exists",
            new_data_dir.display()
        )));
    }

    // Step 2: verify the backup whole.
    (host.report)(
        "verify",
        &format!("reading and checking {}", request.backup.display()),
    );
    let status =
        backup::status(host.store, &request.backup, request.key.as_ref()).map_err(refusal)?;
    (host.report)(
        "verify",
        &format!(
            "{} is intact: revision {}, {} keys, SHA-256 {}",
            request.backup.display(),
            status.revision,
            status.total_key,
            status.snapshot_sha256
        ),
    );

    // Step 3: private snapshot and new data dir.
    let work_dir = PathBuf::from(format!(
        "{}/etcd-restore-{}",
        paths::BOSUN_STATE_DIR,
        request.stamp
    ));
    let snapshot_path = work_dir.join("snapshot.db");
    let cleanup_work = || {
        let _ = host.store.remove_dir_all(&work_dir);
    };
    let prepared = (|| -> Result<(), RestoreError> {
        host.files
            .create_dir_all(&work_dir, 0o700)
            .map_err(|error| RestoreError::refused(host_error(error)))?;
        let mut staged = host
            .store
            .create(&snapshot_path, 0o600)
            .map_err(|error| RestoreError::refused(host_error(error)))?;
        backup::decrypt_into(
            host.store,
            &request.backup,
            request.key.as_ref(),
            &mut staged,
        )
        .map_err(refusal)?;
        staged
            .commit()
            .map_err(|error| RestoreError::refused(host_error(error)))?;
        (host.report)(
            "restore-data",
            &format!(
                "restoring into {} with {} (member {}, cluster {})",
                new_data_dir.display(),
                tool.0.name(),
                member_id_hex(member_id),
                member_id_hex(cluster_id)
            ),
        );
        let Some(tool_path) = &tool.1 else {
            let started = Instant::now();
            let made = native_restore::restore_data_dir(
                host.store,
                host.files,
                &snapshot_path,
                &new_data_dir,
                &new_member,
            )
            .map_err(|error| RestoreError::refused(error.to_string()))?;
            (host.report)(
                "restore-data",
                &format!(
                    "wrote {} ({} database, WAL, v2 snapshot) in {:.1}s",
                    new_data_dir.display(),
                    super::human_bytes(made.db_bytes),
                    started.elapsed().as_secs_f64()
                ),
            );
            return Ok(());
        };
        let mut command = CommandSpec::new(tool_path.display().to_string()).args([
            "snapshot".to_owned(),
            "restore".to_owned(),
            host.store.host_path(&snapshot_path).display().to_string(),
            "--data-dir".to_owned(),
            host.store.host_path(&new_data_dir).display().to_string(),
            "--name".to_owned(),
            member_name.clone(),
            "--initial-cluster".to_owned(),
            format!("{member_name}={peer_url}"),
            "--initial-cluster-token".to_owned(),
            request.token.clone(),
            "--initial-advertise-peer-urls".to_owned(),
            peer_url.clone(),
        ]);
        if tool.0 == RestoreTool::Etcdctl {
            command.env.push(("ETCDCTL_API".to_owned(), "3".to_owned()));
        }
        run_checked(host.commands, &command)
            .map_err(|error| RestoreError::refused(host_error(error)))?;
        host.files
            .set_mode(&new_data_dir, 0o700)
            .map_err(|error| RestoreError::refused(host_error(error)))?;
        Ok(())
    })();
    if let Err(error) = prepared {
        let _ = host.store.remove_dir_all(&new_data_dir);
        cleanup_work();
        return Err(error);
    }

    // Steps 4 to 6, with rollback.
    let staging = staging_root.join(format!("{STAGING_PREFIX}{}", request.stamp));
    let staged_etcd = staging.join("etcd.yaml");
    let staged_apiserver = staging.join("kube-apiserver.yaml");
    let had_apiserver = host.files.exists(&apiserver_manifest_path).unwrap_or(false);
    let restored_manifest = manifest
        .with_data_dir(&new_data_dir)
        .with_flag("initial-cluster", &format!("{member_name}={peer_url}"))
        .with_flag("initial-cluster-state", "new")
        .with_flag("initial-cluster-token", &request.token);
    let expected_revision = status.revision;
    let changed = (|| -> Result<(), String> {
        host.files
            .create_dir_all(&staging, 0o700)
            .map_err(host_error)?;
        if had_apiserver {
            (host.report)("stop", "stopping kube-apiserver (manifest moved aside)");
            host.files
                .rename(&apiserver_manifest_path, &staged_apiserver)
                .map_err(host_error)?;
        }
        (host.report)("stop", "stopping etcd (manifest moved aside)");
        host.files
            .rename(&etcd_manifest_path, &staged_etcd)
            .map_err(host_error)?;
        if !wait_until(host, request.stop_timeout, || {
            host.client.status(&endpoint).is_err()
        }) {
            return Err(format!(
                "etcd at {endpoint} still answers {}s after its manifest was moved away",
                request.stop_timeout.as_secs()
            ));
        }
        (host.report)(
            "start",
            &format!("starting etcd on {}", new_data_dir.display()),
        );
        host.files
            .write_atomic(
                &etcd_manifest_path,
                restored_manifest.text.as_bytes(),
                0o600,
            )
            .map_err(host_error)?;
        let mut last_problem = String::from("it did not answer");
        let healthy = wait_until(host, request.health_timeout, || {
            match host
                .client
                .health(&endpoint)
                .and_then(|()| host.client.status(&endpoint))
            {
                Ok(status) if status.revision == expected_revision => true,
                Ok(status) => {
                    last_problem = format!(
                        "it serves revision {}, the backup has {expected_revision}",
                        status.revision
                    );
                    false
                }
                Err(error) => {
                    last_problem = error.message;
                    false
                }
            }
        });
        if !healthy {
            return Err(format!(
                "the restored etcd at {endpoint} was not healthy within {}s: {last_problem}",
                request.health_timeout.as_secs()
            ));
        }
        if had_apiserver {
            (host.report)("start", "starting kube-apiserver");
            host.files
                .rename(&staged_apiserver, &apiserver_manifest_path)
                .map_err(host_error)?;
        }
        Ok(())
    })();
    if let Err(reason) = changed {
        (host.report)("rollback", &format!("putting the node back: {reason}"));
        let mut problems: Vec<String> = Vec::new();
        let mut undo = |result: Result<(), HostError>| {
            if let Err(error) = result {
                problems.push(error.to_string());
            }
        };
        if host.files.exists(&staged_etcd).unwrap_or(false) {
            undo(host.files.remove_file(&etcd_manifest_path).map(|_| ()));
            // Give the kubelet time to stop the restored etcd before the original comes back.
            let _ = wait_until(host, request.stop_timeout, || {
                host.client.status(&endpoint).is_err()
            });
            undo(host.files.rename(&staged_etcd, &etcd_manifest_path));
        }
        if host.files.exists(&staged_apiserver).unwrap_or(false) {
            undo(
                host.files
                    .rename(&staged_apiserver, &apiserver_manifest_path),
            );
        }
        undo(host.store.remove_dir_all(&new_data_dir).map(|_| ()));
        undo(host.store.remove_dir_all(&staging).map(|_| ()));
        cleanup_work();
        let rollback = if problems.is_empty() {
            format!(
                "the original manifests and data directory {} are back in place",
                old_data_dir.display()
            )
        } else {
            format!("putting the node back also failed: {}", problems.join("; "))
        };
        return Err(RestoreError::Failed { reason, rollback });
    }
    cleanup_work();
    let _ = host.store.remove_dir_all(&staging);

    let other_members = others
        .into_iter()
        .map(|(name, url)| OtherMember {
            steps: vec![
                format!(
                    "on {name}: keep etcd and the API server stopped; move its etcd data directory aside (it holds the old \
                     cluster)"
                ),
                format!("on {member_name}: bosun etcd member add {name} --peer-url {url}"),
                format!(
                    "on {name}: in {}, set the --initial-cluster and --initial-cluster-state=existing flags that \
                     `member add` printed, then move etcd.yaml and kube-apiserver.yaml back into {}",
                    etcd_manifest_path.display(),
                    paths::MANIFESTS_DIR
                ),
            ],
            name,
            peer_url: url,
        })
        .collect();
    Ok(RestoreOutcome {
        member_name,
        revision: expected_revision,
        data_dir: new_data_dir,
        old_data_dir,
        initial_cluster_token: request.token.clone(),
        tool: tool.0.name().to_owned(),
        member_id: member_id_hex(member_id),
        cluster_id: member_id_hex(cluster_id),
        other_members,
    })
}

fn refusal(error: BackupError) -> RestoreError {
    RestoreError::refused(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_cluster_names_the_other_members() {
        let manifest = EtcdManifest::new(
            "    - --initial-cluster=a=https://10.0.0.1:2380,b=https://10.0.0.2:2380\n    - --name=a\n",
        );
        assert_eq!(
            initial_cluster_members(&manifest),
            [
                ("a".to_owned(), "https://10.0.0.1:2380".to_owned()),
                ("b".to_owned(), "https://10.0.0.2:2380".to_owned())
            ]
        );
    }
}
