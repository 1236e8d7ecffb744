//! etcd day-2 care: encrypted backups, verified restores, members, defragmentation and checks.
//!
//! Map of the module:
//! - [`format`]: the bosun backup file (versioned header, AES-256-GCM frames, final authenticated frame).
//! - [`snapshot`]: etcd's own trailing SHA-256 of a snapshot, checked while it streams.
//! - [`bolt`]: a streaming reader of etcd's bolt database (`snapshot status` figures, the native restore's source).
//! - [`bolt_write`]: a one-pass writer of bolt databases (the native restore's output).
//! - [`native_restore`]: `snapshot restore` without etcdutl: the new data dir's db, WAL and v2 snapshot.
//! - [`manifest`]: the etcd static-pod manifest: endpoints, certificates, data dir; line-preserving edits.
//! - [`backup`]: streaming a snapshot from the member into a backup file, and retention.
//! - [`schedule`]: scheduled backups as a systemd timer or a cron entry.
//! - [`restore`]: the restore procedure (Steps, Guarantees, Assumptions and Caveats are documented there).
//! - [`members`]: member health, quorum rules for removal, member replacement.
//!
//! The etcd API is reached through [`EtcdClient`], implemented with `etcd-client` in the binary's `host/etcd.rs`;
//! streamed files go through [`StreamStore`]. Files on a node this module reads or writes:
//! `/etc/kubernetes/manifests/etcd.yaml` and `kube-apiserver.yaml` (read; moved and edited by restore),
//! `/etc/kubernetes/tmp/bosun-etcd-restore-*/` (restore staging), the etcd data dir and its restored sibling
//! (built as `<sibling>.partial` by the native restore),
//! `/etc/bosun/etcd-backup.key` (the default backup key, 0600), `/var/lib/bosun/etcd-restore-*/` (the decrypted
//! snapshot during a restore, 0600 in a 0700 directory), backup files (0600), and the schedule's
//! `/etc/systemd/system/bosun-etcd-backup.{service,timer}` or `/etc/cron.d/bosun-etcd-backup`.

pub mod backup;
pub mod bolt;
pub mod bolt_write;
pub mod format;
pub mod manifest;
pub mod members;
pub mod native_restore;
pub mod restore;
pub mod schedule;
pub mod snapshot;

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::HostError;

/// The default backup key file.
pub const DEFAULT_KEY_FILE: &str = "/etc/bosun/etcd-backup.key";
/// Where scheduled backups go unless `--dir` says otherwise.
pub const DEFAULT_BACKUP_DIR: &str = "/var/lib/bosun/etcd-backups";

/// An error from the etcd API, naming the endpoint.
#[derive(Debug, Clone, thiserror::Error)]
#[error("etcd at {endpoint}: {message}")]
pub struct EtcdError {
    pub endpoint: String,
    pub message: String,
}

/// A member as the cluster lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: u64,
    /// Empty for a member that was added but has not started yet.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// What one endpoint says about itself (`etcdctl endpoint status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    pub endpoint: String,
    pub member_id: u64,
    pub leader: u64,
    pub version: String,
    pub db_size: i64,
    pub db_size_in_use: i64,
    pub raft_term: u64,
    pub raft_index: u64,
    pub revision: i64,
    pub is_learner: bool,
    pub errors: Vec<String>,
}

/// A raised alarm (`NOSPACE`, `CORRUPT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alarm {
    pub member_id: u64,
    pub alarm: String,
}

/// The etcd API as bosun uses it. Every call carries its own timeout in the implementation.
pub trait EtcdClient {
    /// The endpoints this client talks to, first the preferred one.
    fn endpoints(&self) -> Vec<String>;
    /// Streams a snapshot from the first endpoint (etcd's bolt database followed by its SHA-256).
    fn snapshot(&self) -> Result<Box<dyn Read + Send + '_>, EtcdError>;
    fn status(&self, endpoint: &str) -> Result<EndpointStatus, EtcdError>;
    /// A linearizable read, as `etcdctl endpoint health` does it.
    fn health(&self, endpoint: &str) -> Result<(), EtcdError>;
    fn members(&self) -> Result<Vec<Member>, EtcdError>;
    fn remove_member(&self, id: u64) -> Result<(), EtcdError>;
    /// Adds a voting member; returns it (its name is empty until it starts) and the new member list.
    fn add_member(&self, peer_urls: &[String]) -> Result<(Member, Vec<Member>), EtcdError>;
    fn alarms(&self) -> Result<Vec<Alarm>, EtcdError>;
    fn defragment(&self, endpoint: &str) -> Result<(), EtcdError>;
}

/// A file being written in one stream: read back, seek, and either committed (synced and renamed over its final
/// path, so a crash leaves the old file or the new one) or dropped (the temporary file is removed).
pub trait StagedFile: Read + Write + Seek {
    fn commit(self: Box<Self>) -> Result<(), HostError>;
}

/// A file opened for reading in a stream.
pub trait ReadFile: Read + Seek {}
impl<T: Read + Seek> ReadFile for T {}

/// Streamed file access on a node, for files too large to hold in memory (snapshots, backups).
pub trait StreamStore {
    /// Starts writing `path` with `mode`; parents are created (0700 for new ones).
    fn create(&self, path: &Path, mode: u32) -> Result<Box<dyn StagedFile>, HostError>;
    fn open(&self, path: &Path) -> Result<Box<dyn ReadFile>, HostError>;
    /// Removes a directory tree; `Ok(false)` when it did not exist.
    fn remove_dir_all(&self, path: &Path) -> Result<bool, HostError>;
    /// Where a node path lives on the machine that runs programs (for their command lines).
    fn host_path(&self, path: &Path) -> PathBuf;
}

/// Renders an id as etcd prints it (lowercase hex).
pub fn member_id_hex(id: u64) -> String {
    format!("{id:x}")
}

/// Bytes in human units, as etcdctl prints them (decimal: kB, MB, GB).
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// A random token of 16 hex digits (fresh cluster tokens, temporary names).
pub fn random_token() -> Result<String, HostError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| HostError::Other("the system random source failed".to_owned()))?;
    Ok(hex::encode(bytes))
}

/// Copies a stream into a writer in 1 MiB pieces, calling `progress` with the bytes so far.
pub(crate) fn copy_stream(
    reader: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), String>,
    mut progress: impl FnMut(u64),
) -> Result<u64, String> {
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let count = match reader.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(count) => count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error.to_string()),
        };
        sink(&buffer[..count])?;
        total += count as u64;
        progress(total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_etcdctl() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2_109_440), "2.1 MB");
        assert_eq!(human_bytes(1_073_741_824), "1.1 GB");
    }
}
