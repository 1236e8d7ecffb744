//! Backups: a snapshot streamed from the member into a bosun backup file, checked on the way and read back after,
//! `status` of a backup or a plain etcd snapshot, and retention in a backup directory.
//!
//! Guarantees: the file appears under its final name only complete, synced, and with both etcd's trailing hash and
//! the SHA-256 checked (a temporary file in the same directory is renamed over it); a failed backup leaves no file.
//! Memory stays flat: the snapshot passes through in 1 MiB pieces, and the database figures are read from the
//! written frames with a cache of eight frames (and one bit per frame to know which were read back).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use super::bolt::{self, DatabaseStats};
use super::format::{self, BackupHeader, BackupKey, BackupWriter, FormatError};
use super::snapshot::StreamHasher;
use super::{copy_stream, EtcdClient, StreamStore};
use crate::host::{Files, HostError};

/// Everything a backup can fail on, each naming its file or endpoint.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Etcd(#[from] super::EtcdError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("backup {path}: {source}")]
    Format { path: PathBuf, source: FormatError },
    #[error("the snapshot streamed from {endpoint} is damaged: {reason}")]
    Snapshot { endpoint: String, reason: String },
    #[error("{path}: {reason}")]
    Database { path: PathBuf, reason: String },
}

/// What to back up and where.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// The backup file (a node path).
    pub output: PathBuf,
    pub key: Option<BackupKey>,
    pub cluster_name: String,
    pub member_name: String,
    pub created: OffsetDateTime,
}

/// A finished backup.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupSummary {
    pub path: PathBuf,
    pub file_bytes: u64,
    pub header: BackupHeader,
}

/// The file name of a backup taken at `created`: `etcd-<cluster>-<UTC time>.bosun-etcd`, so names sort by age.
pub fn file_name(cluster_name: &str, created: OffsetDateTime) -> String {
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        created.year(),
        u8::from(created.month()),
        created.day(),
        created.hour(),
        created.minute(),
        created.second()
    );
    format!("etcd-{cluster_name}-{stamp}.{}", format::EXTENSION)
}

/// RFC 3339 in UTC, seconds precision.
pub fn rfc3339(moment: OffsetDateTime) -> String {
    let utc = moment.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

/// Streams a snapshot from the client's first endpoint into `request.output`.
///
/// `progress(done, total)` is called as bytes arrive; `total` is the database size the member reported.
pub fn run_backup(
    client: &dyn EtcdClient,
    store: &dyn StreamStore,
    request: &BackupRequest,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupSummary, BackupError> {
    let endpoint = client.endpoints().first().cloned().unwrap_or_default();
    let status = client.status(&endpoint)?;
    let total = u64::try_from(status.db_size).unwrap_or(0);
    let path = &request.output;
    let format_error = |source: FormatError| BackupError::Format {
        path: path.clone(),
        source,
    };
    let staged = store.create(path, 0o600)?;
    let mut writer = BackupWriter::new(staged, request.key.as_ref(), format::DEFAULT_CHUNK)
        .map_err(format_error)?;
    let stream = client.snapshot()?;
    // Receiving and sealing overlap: one thread pulls the gRPC stream into 1 MiB pieces (at most eight in flight, so
    // memory stays bounded) while this one hashes, encrypts and writes.
    let mut done: u64 = 0;
    let streamed: Result<(), BackupError> = std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<Vec<u8>, String>>(8);
        scope.spawn(move || {
            let mut stream = stream;
            loop {
                let mut piece = vec![0u8; 1 << 20];
                let mut filled = 0;
                let result = loop {
                    match stream.read(&mut piece[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(count) => {
                            filled += count;
                            if filled == piece.len() {
                                break Ok(());
                            }
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(error) => break Err(error.to_string()),
                    }
                };
                piece.truncate(filled);
                let finished = filled == 0 || result.is_err();
                let message = match result {
                    Ok(()) if filled == 0 => break,
                    Ok(()) => Ok(piece),
                    Err(reason) => Err(reason),
                };
                // The receiver is gone when writing failed; stop pulling.
                if sender.send(message).is_err() || finished {
                    break;
                }
            }
        });
        for message in receiver {
            let piece = message.map_err(|reason| {
                BackupError::Etcd(super::EtcdError {
                    endpoint: endpoint.clone(),
                    message: format!("the snapshot stream broke: {reason}"),
                })
            })?;
            writer.write_snapshot(&piece).map_err(format_error)?;
            done += piece.len() as u64;
            progress(done, total);
        }
        Ok(())
    });
    streamed?;
    let (digest, data_frames) = writer.end_data().map_err(format_error)?;
    if !digest.etcd_hash_ok {
        return Err(BackupError::Snapshot {
            endpoint,
            reason: "its trailing SHA-256 does not match its contents".to_owned(),
        });
    }
    // The figures are read from the frames just written; for an encrypted backup that read, completed with the frames
    // it did not touch, is also the read-back of every data frame (each AES-GCM tag checked once).
    let stats = {
        let mut plaintext = writer
            .plaintext(request.key.as_ref(), data_frames)
            .map_err(format_error)?;
        let stats = bolt::stats(&mut plaintext, digest.database_bytes()).map_err(|error| {
            BackupError::Snapshot {
                endpoint: endpoint.clone(),
                reason: error.to_string(),
            }
        })?;
        if request.key.is_some() {
            plaintext.authenticate_rest().map_err(format_error)?;
        }
        stats
    };
    let header = BackupHeader {
        format: "bosun-etcd-backup".to_owned(),
        cluster_name: request.cluster_name.clone(),
        etcd_version: status.version.clone(),
        member_name: request.member_name.clone(),
        endpoint: endpoint.clone(),
        created: rfc3339(request.created),
        revision: stats.revision,
        total_keys: stats.total_keys,
        total_entries: stats.total_entries,
        total_size: stats.total_size,
        hash: stats.hash,
        snapshot_bytes: digest.total_bytes,
        snapshot_sha256: digest.sha256.clone(),
        encrypted: request.key.is_some(),
    };
    let mut staged = writer
        .finish(&header, &digest, data_frames)
        .map_err(format_error)?;
    // Read the file back before it gets its name: what was written is what will be restored. Encrypted: the data
    // frames were read back and authenticated above, so only the prelude, header and final frame remain. Unencrypted
    // frames have no tags: the whole file is read back and its SHA-256 checked.
    let file_bytes = match request.key.as_ref() {
        Some(key) => {
            format::verify_ends(&mut staged, key, &digest, data_frames).map_err(format_error)?
        }
        None => {
            staged
                .rewind()
                .map_err(|error| HostError::file("read back", path, &error))?;
            let mut counter = CountingReader {
                inner: &mut staged,
                count: 0,
            };
            let opened = format::open(&mut counter).map_err(format_error)?;
            opened
                .decrypt_to(None, &mut std::io::sink())
                .map_err(format_error)?;
            counter.count
        }
    };
    staged.commit()?;
    Ok(BackupSummary {
        path: path.clone(),
        file_bytes,
        header,
    })
}

struct CountingReader<'inner> {
    inner: &'inner mut dyn Read,
    count: u64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let count = self.inner.read(buffer)?;
        self.count += count as u64;
        Ok(count)
    }
}

/// What `bosun etcd backup status` reports, like `etcdctl snapshot status` plus what bosun knows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    pub path: PathBuf,
    /// `bosun` for a bosun backup file, `etcd` for a plain etcd snapshot.
    pub kind: String,
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    /// Entries of every bucket, etcd 3.4 etcdctl's `totalKey`.
    pub total_entries: u64,
    pub total_size: u64,
    pub snapshot_sha256: String,
    pub file_bytes: u64,
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<BackupHeader>,
}

/// Reads a backup or a plain snapshot whole, checks it, and reports its figures. Nothing is written.
pub fn status(
    store: &dyn StreamStore,
    path: &Path,
    key: Option<&BackupKey>,
) -> Result<BackupStatus, BackupError> {
    let format_error = |source: FormatError| BackupError::Format {
        path: path.to_path_buf(),
        source,
    };
    let mut file = store.open(path)?;
    let mut magic = [0u8; 8];
    let is_bosun = file.read_exact(&mut magic).is_ok() && &magic == format::MAGIC;
    file.rewind()
        .map_err(|error| HostError::file("read", path, &error))?;
    let mut counter = CountingReader {
        inner: &mut file,
        count: 0,
    };
    if is_bosun {
        let opened = format::open(&mut counter).map_err(format_error)?;
        let header = opened.header.clone();
        let encrypted = opened.prelude.encrypted;
        let verified = opened
            .decrypt_to(key, &mut std::io::sink())
            .map_err(format_error)?;
        return Ok(BackupStatus {
            path: path.to_path_buf(),
            kind: "bosun".to_owned(),
            hash: header.hash,
            revision: header.revision,
            total_key: header.total_keys,
            total_entries: header.total_entries,
            total_size: header.total_size,
            snapshot_sha256: verified.digest.sha256,
            file_bytes: counter.count,
            encrypted,
            header: Some(header),
        });
    }
    let mut hasher = StreamHasher::new();
    copy_stream(
        &mut counter,
        |bytes| {
            hasher.update(bytes);
            Ok(())
        },
        |_| {},
    )
    .map_err(|reason| BackupError::Database {
        path: path.to_path_buf(),
        reason,
    })?;
    let file_bytes = counter.count;
    let digest = hasher.finish();
    // etcdctl's `snapshot save` keeps etcd's trailing hash; a bare copy of a data dir's `db` has none.
    let database_bytes = if digest.etcd_hash_ok {
        digest.database_bytes()
    } else {
        digest.total_bytes
    };
    let stats: DatabaseStats =
        bolt::stats(&mut file, database_bytes).map_err(|error| BackupError::Database {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    Ok(BackupStatus {
        path: path.to_path_buf(),
        kind: "etcd".to_owned(),
        hash: stats.hash,
        revision: stats.revision,
        total_key: stats.total_keys,
        total_entries: stats.total_entries,
        total_size: stats.total_size,
        snapshot_sha256: digest.sha256,
        file_bytes,
        encrypted: false,
        header: None,
    })
}

/// Removes the oldest backups of `cluster_name` in `directory` so that `keep` remain; returns what was removed.
/// Only files named like bosun's backups (`etcd-<cluster>-<time>.bosun-etcd`) are considered.
pub fn prune(
    files: &dyn Files,
    directory: &Path,
    cluster_name: &str,
    keep: usize,
) -> Result<Vec<PathBuf>, HostError> {
    let prefix = format!("etcd-{cluster_name}-");
    let suffix = format!(".{}", format::EXTENSION);
    let mut backups: Vec<PathBuf> = files
        .list_dir(directory)?
        .into_iter()
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&prefix) && name.ends_with(&suffix))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for path in backups.into_iter().take(excess) {
        if files.remove_file(&path)? {
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Loads the key from `path`, or creates one there (0600) when `create` is set and it does not exist.
/// Returns the key and whether it was created.
pub fn load_or_create_key(
    files: &dyn Files,
    path: &Path,
    create: bool,
) -> Result<(BackupKey, bool), BackupError> {
    match files.read(path)? {
        Some(contents) => {
            let key = BackupKey::parse(&contents).map_err(|source| BackupError::Format {
                path: path.to_path_buf(),
                source,
            })?;
            if let Some(meta) = files.metadata(path)? {
                if meta.mode & 0o077 != 0 {
                    return Err(BackupError::Database {
                        path: path.to_path_buf(),
                        reason: format!(
                            "the key file has mode {:04o}; others can read it (chmod 600 it)",
                            meta.mode
                        ),
                    });
                }
            }
            Ok((key, false))
        }
        None if create => {
            let key = BackupKey::generate().map_err(|source| BackupError::Format {
                path: path.to_path_buf(),
                source,
            })?;
            files.write_atomic(path, &key.to_file_contents(), 0o600)?;
            Ok((key, true))
        }
        None => Err(BackupError::Host(HostError::File {
            action: "read the backup key",
            path: path.to_path_buf(),
            reason: "no such file or directory".to_owned(),
        })),
    }
}

/// Writes the plaintext of a backup (or a plain snapshot, checked) to `writer`; for restore.
pub fn decrypt_into(
    store: &dyn StreamStore,
    path: &Path,
    key: Option<&BackupKey>,
    writer: &mut dyn Write,
) -> Result<Option<BackupHeader>, BackupError> {
    let format_error = |source: FormatError| BackupError::Format {
        path: path.to_path_buf(),
        source,
    };
    let mut file = store.open(path)?;
    let mut magic = [0u8; 8];
    let is_bosun = file.read_exact(&mut magic).is_ok() && &magic == format::MAGIC;
    file.rewind()
        .map_err(|error| HostError::file("read", path, &error))?;
    if is_bosun {
        let opened = format::open(&mut file).map_err(format_error)?;
        let header = opened.header.clone();
        opened.decrypt_to(key, writer).map_err(format_error)?;
        return Ok(Some(header));
    }
    let mut hasher = StreamHasher::new();
    copy_stream(
        &mut file,
        |bytes| {
            hasher.update(bytes);
            writer.write_all(bytes).map_err(|error| error.to_string())
        },
        |_| {},
    )
    .map_err(|reason| BackupError::Database {
        path: path.to_path_buf(),
        reason,
    })?;
    if !hasher.finish().etcd_hash_ok {
        return Err(BackupError::Database {
            path: path.to_path_buf(),
            reason:
                "it is neither a bosun backup nor an etcd snapshot with a valid trailing SHA-256"
                    .to_owned(),
        });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryFiles;

    #[test]
    fn names_sort_by_time_and_pruning_keeps_the_newest() {
        let files = MemoryFiles::default();
        let directory = Path::new("/backups");
        let mut names = Vec::new();
        for hour in [3u8, 1, 2, 5, 4] {
            let moment = time::macros::datetime!(2026-12-01 00:00 UTC)
                .replace_hour(hour)
                .expect("hour");
            let name = file_name("kubernetes", moment);
            files
                .write_atomic(&directory.join(&name), b"x", 0o600)
                .expect("write");
            names.push(name);
        }
        files
            .write_atomic(&directory.join("notes.txt"), b"keep me", 0o644)
            .expect("write");
        files
            .write_atomic(
                &directory.join(file_name(
                    "other",
                    time::macros::datetime!(2020-01-01 00:00 UTC),
                )),
                b"x",
                0o600,
            )
            .expect("write");
        let removed = prune(&files, directory, "kubernetes", 2).expect("prune");
        let removed: Vec<String> = removed
            .iter()
            .map(|path| {
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            removed,
            [
                "etcd-kubernetes-20261201T010000Z.bosun-etcd",
                "etcd-kubernetes-20261201T020000Z.bosun-etcd",
                "etcd-kubernetes-20261201T030000Z.bosun-etcd"
            ]
        );
        let left = files.list_dir(directory).expect("list");
        assert_eq!(left.len(), 4, "{left:?}");
    }

    #[test]
    fn a_created_key_is_private_and_loads_again() {
        let files = MemoryFiles::default();
        let path = Path::new("/etc/bosun/etcd-backup.key");
        let (key, created) = load_or_create_key(&files, path, true).expect("create");
        assert!(created);
        assert_eq!(
            files.metadata(path).expect("meta").expect("exists").mode,
            0o600
        );
        let (again, created) = load_or_create_key(&files, path, false).expect("load");
        assert!(!created);
        assert_eq!(again, key);
        files.set_mode(path, 0o644).expect("chmod");
        assert!(load_or_create_key(&files, path, false)
            .expect_err("readable")
            .to_string()
            .contains("0644"));
    }
}
