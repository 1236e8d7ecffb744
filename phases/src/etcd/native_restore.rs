//! `snapshot restore` without etcdutl: turns an etcd snapshot into the data directory of a new one-member cluster,
//! as `etcdutl snapshot restore` (etcd 3.5/3.6) and etcd 3.4's `etcdctl snapshot restore` make it.
//!
//! The data directory holds three things:
//! - `member/snap/db`: the snapshot's bolt database with the old membership removed (the `members` and
//!   `members_removed` buckets emptied, as `TrimMembershipFromBackend` does; the `cluster` bucket is kept), the new
//!   member written into `members` (key: its ID in lower-case hex; value: its JSON), and `meta`'s
//!   `consistent_index` and `term` set to the restore's commit index and term (1 and 1, 8-byte big-endian). The
//!   database is copied through [`super::bolt::scan`] into [`super::bolt_write::BoltWriter`] bucket by bucket, key by
//!   key, so memory stays flat however large it is; the page size is the source's.
//! - `member/wal/0000000000000000-0000000000000000.wal`: what `wal.Create`, `Save` and `SaveSnapshot` write: a CRC
//!   record, the metadata (`etcdserverpb.Metadata{NodeID, ClusterID}`), an empty snapshot record, one
//!   `EntryConfChange`/`ConfChangeAddNode` entry with the member's JSON as context, the hard state (term 1, vote
//!   for the member, commit 1) and the snapshot record (index 1, term 1, the member as the only voter). Records are
//!   framed as etcd frames them (a little-endian length whose top byte flags the padding to 8 bytes, a rolling
//!   CRC-32C over the records' data) and the file is extended to the 64 MB segment size.
//! - `member/snap/0000000000000001-0000000000000001.snap`: a `snappb.Snapshot` (CRC-32C and data) holding a
//!   `raftpb.Snapshot` whose data is the v2 store as `store.Save()` renders it with the member's `raftAttributes`
//!   (etcd 3.4 reads its membership from there), and whose metadata is the same index, term and voters.
//!
//! Member and cluster IDs are computed as etcd computes them: the member ID is the first 8 bytes (big-endian) of
//! SHA-1 over the sorted peer URLs joined, followed by the cluster token; the cluster ID is the first 8 bytes of
//! SHA-1 over the sorted member IDs as 8-byte big-endian numbers.
//!
//! Compared with etcd 3.4's `etcdctl snapshot restore`, whose layout 3.4 reads the same way, the result differs in
//! two ways that etcd 3.4 ignores and later versions expect: `members` holds the new member (3.4's etcdctl leaves the
//! old entries, since 3.4 reads membership from the v2 snapshot) and `meta` holds `term`.
//!
//! Directories are 0700 and files 0600 (etcd writes the `.snap` file 0666 less the umask; bosun keeps it private). Everything is built in `<data-dir>.partial` next to the target, each file
//! synced and renamed into place, and the directory renamed to `<data-dir>` last, so a failure never leaves a data
//! directory etcd could start from half-written.

use std::collections::BTreeMap;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::bolt::{self, BoltError, ScanEvent};
use super::bolt_write::{BoltWriter, WriteError};
use super::StreamStore;
use crate::host::Files;

/// The size etcd preallocates for a WAL segment (`wal.SegmentSizeBytes`).
pub const WAL_SEGMENT_BYTES: u64 = 64 * 1000 * 1000;
/// The raft term and index of the restored member's first state.
const TERM: u64 = 1;
const COMMIT: u64 = 1;
const SHA256_TRAILER: u64 = 32;

/// The member a restore creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub cluster_token: String,
}

impl NewMember {
    /// A member with its peer URLs checked and written as etcd writes them (`types.NewURLs`: the scheme lower-case,
    /// `http`, `https`, `unix` or `unixs`; `host:port` and no path), sorted.
    pub fn new(
        name: &str,
        peer_urls: &[String],
        cluster_token: &str,
    ) -> Result<NewMember, NativeError> {
        let mut normalized = Vec::new();
        for url in peer_urls {
            let bad = |why: &str| NativeError::Snapshot(format!("the peer URL {url:?} {why}"));
            let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
            let scheme = scheme.to_ascii_lowercase();
            if !["http", "https", "unix", "unixs"].contains(&scheme.as_str()) {
                return Err(bad("does not use http, https, unix or unixs"));
            }
            if rest.contains(['/', '?', '#']) {
                return Err(bad("has a path; etcd takes only scheme://host:port"));
            }
            if (scheme == "http" || scheme == "https")
                && !rest
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            {
                return Err(bad("is not of the form scheme://host:port"));
            }
            normalized.push(format!("{scheme}://{rest}"));
        }
        if normalized.is_empty() {
            return Err(NativeError::Snapshot(format!(
                "the member {name} has no peer URL"
            )));
        }
        normalized.sort();
        Ok(NewMember {
            name: name.to_owned(),
            peer_urls: normalized,
            cluster_token: cluster_token.to_owned(),
        })
    }
}

/// What a native restore made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeOutcome {
    pub member_id: u64,
    pub cluster_id: u64,
    /// The size of the written database.
    pub db_bytes: u64,
}

/// Why a native restore failed (nothing is left behind).
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error("{0}")]
    Snapshot(String),
    #[error("{0}")]
    Write(String),
}

/// The member ID etcd gives a member with these peer URLs in a cluster with this token (`computeMemberID`).
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut sorted: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut input = sorted.concat().into_bytes();
    input.extend_from_slice(cluster_token.as_bytes());
    first_eight(&input)
}

/// The cluster ID etcd derives from its members' IDs (`RaftCluster.genID`).
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut sorted = member_ids.to_vec();
    sorted.sort_unstable();
    let input: Vec<u8> = sorted.iter().flat_map(|id| id.to_be_bytes()).collect();
    first_eight(&input)
}

fn first_eight(input: &[u8]) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, input);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// A JSON string as Go's `encoding/json` writes it (HTML-sensitive characters and U+2028/U+2029 escaped too).
fn go_json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(character)));
            }
            control if u32::from(control) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(control)));
            }
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

fn json_string_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| go_json_string(item)).collect();
    format!("[{}]", quoted.join(","))
}

/// `json.Marshal(membership.Member)` of a member that has not published its client URLs yet.
pub fn member_json(id: u64, member: &NewMember) -> String {
    let mut json = format!(
        "{{\"id\":{id},\"peerURLs\":{}",
        json_string_list(&member.peer_urls)
    );
    if !member.name.is_empty() {
        json.push_str(&format!(",\"name\":{}", go_json_string(&member.name)));
    }
    json.push('}');
    json
}

/// `json.Marshal(membership.RaftAttributes)` of a voting member.
fn raft_attributes_json(member: &NewMember) -> String {
    format!("{{\"peerURLs\":{}}}", json_string_list(&member.peer_urls))
}

/// One v2 store node as `store.Save()` renders it; `children` is `None` for a file (`"Children":null`).
fn v2_node(path: &str, index: u64, value: &str, children: Option<&[(String, String)]>) -> String {
    let children = match children {
        None => "null".to_owned(),
        Some(children) => {
            let mut sorted: Vec<&(String, String)> = children.iter().collect();
            sorted.sort();
            let rendered: Vec<String> = sorted
                .iter()
                .map(|(name, node)| format!("{}:{node}", go_json_string(name)))
                .collect();
            format!("{{{}}}", rendered.join(","))
        }
    };
    format!(
        "{{\"Path\":{},\"CreatedIndex\":{index},\"ModifiedIndex\":{index},\"ExpireTime\":\"0001-01-01T00:00:00Z\",\
         \"Value\":{},\"Children\":{children}}}",
        go_json_string(path),
        go_json_string(value)
    )
}

/// The v2 store holding one member's `raftAttributes` under `/0/members/<id>`, as `store.Save()` renders the store
/// `v2store.New("/0", "/1")` becomes after one `Create`: the tree, the watcher hub's event history (capacity 1000),
/// the current index, the statistics and the store version.
fn v2_store_json(id: u64, member: &NewMember) -> String {
    let id_hex = format!("{id:x}");
    let attributes_path = format!("/0/members/{id_hex}/raftAttributes");
    let attributes = raft_attributes_json(member);
    let attributes_node = v2_node(&attributes_path, COMMIT, &attributes, None);
    let member_node = v2_node(
        &format!("/0/members/{id_hex}"),
        COMMIT,
        "",
        Some(&[("raftAttributes".to_owned(), attributes_node)]),
    );
    let members_node = v2_node("/0/members", COMMIT, "", Some(&[(id_hex, member_node)]));
    let cluster_node = v2_node("/0", 0, "", Some(&[("members".to_owned(), members_node)]));
    let keys_node = v2_node("/1", 0, "", Some(&[]));
    let root = v2_node(
        "/",
        0,
        "",
        Some(&[("0".to_owned(), cluster_node), ("1".to_owned(), keys_node)]),
    );
    let capacity = 1000;
    let mut events = vec![format!(
        "{{\"action\":\"create\",\"node\":{{\"key\":{},\"value\":{},\"modifiedIndex\":{COMMIT},\"createdIndex\":{COMMIT}}}}}",
        go_json_string(&attributes_path),
        go_json_string(&attributes)
    )];
    events.resize(capacity, "null".to_owned());
    let statistics = [
        "getsSuccess",
        "getsFail",
        "setsSuccess",
        "setsFail",
        "deleteSuccess",
        "deleteFail",
        "updateSuccess",
        "updateFail",
        "createSuccess",
        "createFail",
        "compareAndSwapSuccess",
        "compareAndSwapFail",
        "compareAndDeleteSuccess",
        "compareAndDeleteFail",
        "expireCount",
        "watchers",
    ]
    .iter()
    .map(|name| format!("\"{name}\":{}", u8::from(*name == "createSuccess")))
    .collect::<Vec<_>>()
    .join(",");
    format!(
        "{{\"Root\":{root},\"WatcherHub\":{{\"EventHistory\":{{\"Queue\":{{\"Events\":[{}],\"Size\":1,\"Front\":0,\
         \"Back\":1,\"Capacity\":{capacity}}},\"StartIndex\":{COMMIT},\"LastIndex\":{COMMIT}}}}},\"CurrentIndex\":{COMMIT},\
         \"Stats\":{{{statistics}}},\"CurrentVersion\":2}}",
        events.join(",")
    )
}

/// Protocol buffer encoding, for the few gogo-generated messages the WAL and snapshot hold (proto2 with
/// non-nullable scalars: every scalar field is written, zero or not).
mod proto {
    pub fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    pub fn uint(out: &mut Vec<u8>, field: u64, value: u64) {
        varint(out, field << 3);
        varint(out, value);
    }

    pub fn bytes(out: &mut Vec<u8>, field: u64, value: &[u8]) {
        varint(out, (field << 3) | 2);
        varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }
}

/// `raftpb.ConfState{Voters}` (`auto_leave` is always written).
fn conf_state(voters: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for voter in voters {
        proto::uint(&mut out, 1, *voter);
    }
    proto::uint(&mut out, 5, 0);
    out
}

/// One WAL record type (`wal.go`).
#[derive(Clone, Copy)]
enum RecordType {
    Metadata = 1,
    Entry = 2,
    State = 3,
    Crc = 4,
    Snapshot = 5,
}

/// WAL records with etcd's framing and rolling CRC-32C.
struct WalEncoder {
    out: Vec<u8>,
    crc: u32,
}

impl WalEncoder {
    fn record(&mut self, kind: RecordType, data: Option<&[u8]>) {
        if let Some(data) = data {
            self.crc = crc32c::crc32c_append(self.crc, data);
        }
        let mut record = Vec::new();
        proto::uint(&mut record, 1, kind as u64);
        proto::uint(&mut record, 2, u64::from(self.crc));
        if let Some(data) = data {
            proto::bytes(&mut record, 3, data);
        }
        let padding = (8 - record.len() % 8) % 8;
        let mut length = record.len() as u64;
        if padding != 0 {
            length |= (0x80 | padding as u64) << 56;
        }
        self.out.extend_from_slice(&length.to_le_bytes());
        self.out.extend_from_slice(&record);
        self.out.extend(std::iter::repeat_n(0u8, padding));
    }
}

/// The records of the restored member's first WAL segment (without the preallocated zeros).
pub fn wal_records(member_id: u64, cluster_id: u64, member: &NewMember) -> Vec<u8> {
    let mut encoder = WalEncoder {
        out: Vec::new(),
        crc: 0,
    };
    encoder.record(RecordType::Crc, None);
    let mut metadata = Vec::new();
    proto::uint(&mut metadata, 1, member_id);
    proto::uint(&mut metadata, 2, cluster_id);
    encoder.record(RecordType::Metadata, Some(&metadata));
    let mut empty_snapshot = Vec::new();
    proto::uint(&mut empty_snapshot, 1, 0);
    proto::uint(&mut empty_snapshot, 2, 0);
    encoder.record(RecordType::Snapshot, Some(&empty_snapshot));
    let mut change = Vec::new();
    proto::uint(&mut change, 1, 0); // ID
    proto::uint(&mut change, 2, 0); // ConfChangeAddNode
    proto::uint(&mut change, 3, member_id);
    proto::bytes(&mut change, 4, member_json(member_id, member).as_bytes());
    let mut entry = Vec::new();
    proto::uint(&mut entry, 1, 1); // EntryConfChange
    proto::uint(&mut entry, 2, TERM);
    proto::uint(&mut entry, 3, COMMIT);
    proto::bytes(&mut entry, 4, &change);
    encoder.record(RecordType::Entry, Some(&entry));
    let mut hard_state = Vec::new();
    proto::uint(&mut hard_state, 1, TERM);
    proto::uint(&mut hard_state, 2, member_id);
    proto::uint(&mut hard_state, 3, COMMIT);
    encoder.record(RecordType::State, Some(&hard_state));
    let mut snapshot = Vec::new();
    proto::uint(&mut snapshot, 1, COMMIT);
    proto::uint(&mut snapshot, 2, TERM);
    proto::bytes(&mut snapshot, 3, &conf_state(&[member_id]));
    encoder.record(RecordType::Snapshot, Some(&snapshot));
    encoder.out
}

/// The `.snap` file: `snappb.Snapshot{Crc, Data: raftpb.Snapshot}`.
pub fn snap_file(member_id: u64, member: &NewMember) -> Vec<u8> {
    let mut metadata = Vec::new();
    proto::bytes(&mut metadata, 1, &conf_state(&[member_id]));
    proto::uint(&mut metadata, 2, COMMIT);
    proto::uint(&mut metadata, 3, TERM);
    let mut raft_snapshot = Vec::new();
    proto::bytes(
        &mut raft_snapshot,
        1,
        v2_store_json(member_id, member).as_bytes(),
    );
    proto::bytes(&mut raft_snapshot, 2, &metadata);
    let mut file = Vec::new();
    proto::uint(&mut file, 1, u64::from(crc32c::crc32c(&raft_snapshot)));
    proto::bytes(&mut file, 2, &raft_snapshot);
    file
}

/// What the copy changes in one bucket.
#[derive(Default)]
struct BucketEdit {
    /// Leave out every key of the source.
    clear: bool,
    /// Keys to write (over the source's, when it has them).
    puts: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The membership and index edits of a restore, by bucket name.
fn restore_edits(member_id: u64, member: &NewMember) -> BTreeMap<Vec<u8>, BucketEdit> {
    let mut edits = BTreeMap::new();
    edits.insert(
        b"members".to_vec(),
        BucketEdit {
            clear: true,
            puts: BTreeMap::from([(
                format!("{member_id:x}").into_bytes(),
                member_json(member_id, member).into_bytes(),
            )]),
        },
    );
    edits.insert(
        b"members_removed".to_vec(),
        BucketEdit {
            clear: true,
            puts: BTreeMap::new(),
        },
    );
    edits.insert(
        b"meta".to_vec(),
        BucketEdit {
            clear: false,
            puts: BTreeMap::from([
                (b"consistent_index".to_vec(), COMMIT.to_be_bytes().to_vec()),
                (b"term".to_vec(), TERM.to_be_bytes().to_vec()),
            ]),
        },
    );
    edits
}

/// Copies the bolt database in the first `length` bytes of `source` into `out`, applying `edits`; returns the
/// output and its size.
fn copy_database<W: Write + Seek>(
    source: &mut dyn bolt::ReadAt,
    length: u64,
    out: W,
    mut edits: BTreeMap<Vec<u8>, BucketEdit>,
) -> Result<(W, u64), NativeError> {
    // The page size must be known before the first page is written: the valid meta page's, as the scan uses.
    let page_size = bolt::layout(source, length)
        .map_err(|error| NativeError::Snapshot(error.to_string()))?
        .page_size;
    let mut writer = BoltWriter::new(out, page_size).map_err(|error| {
        NativeError::Snapshot(format!(
            "the snapshot's first meta page is damaged: {error}"
        ))
    })?;
    let mut current: Option<(Vec<u8>, BucketEdit)> = None;
    // A write error stops the scan; it is reported as the output's, not the snapshot's.
    let mut write_error: Option<WriteError> = None;

    fn write_bucket<W: Write + Seek>(
        writer: &mut BoltWriter<W>,
        name: &[u8],
        edit: BucketEdit,
    ) -> Result<(), WriteError> {
        writer.begin_bucket(name, 0)?;
        for (key, value) in &edit.puts {
            writer.put(key, value)?;
        }
        writer.end_bucket()
    }

    let scanned = bolt::scan(source, length, &mut |event| {
        let mut write_failed = |error: WriteError| {
            write_error = Some(error);
            BoltError::Io("the output failed".to_owned())
        };
        match event {
            ScanEvent::Bucket { name, sequence } => {
                // Buckets the source lacks come in their place in name order.
                let missing: Vec<Vec<u8>> = edits
                    .keys()
                    .filter(|missing| missing.as_slice() < name)
                    .cloned()
                    .collect();
                for missing in missing {
                    if let Some(edit) = edits.remove(&missing) {
                        write_bucket(&mut writer, &missing, edit).map_err(&mut write_failed)?;
                    }
                }
                writer
                    .begin_bucket(name, sequence)
                    .map_err(&mut write_failed)?;
                let edit = edits.remove(name).unwrap_or_default();
                current = Some((name.to_vec(), edit));
            }
            ScanEvent::Entry { key, value, nested } => {
                let Some((bucket, edit)) = current.as_mut() else {
                    return Err(BoltError::Corrupt("a key outside a bucket".to_owned()));
                };
                if nested {
                    return Err(BoltError::Corrupt(format!(
                        "the bucket {:?} holds a nested bucket {:?}, which etcd never makes",
                        String::from_utf8_lossy(bucket),
                        String::from_utf8_lossy(key)
                    )));
                }
                while let Some(first) = edit.puts.first_key_value().map(|(first, _)| first.clone())
                {
                    if first.as_slice() > key {
                        break;
                    }
                    if let Some(put) = edit.puts.remove(&first) {
                        writer.put(&first, &put).map_err(&mut write_failed)?;
                    }
                    if first.as_slice() == key {
                        return Ok(());
                    }
                }
                if !edit.clear {
                    writer.put(key, value).map_err(&mut write_failed)?;
                }
            }
            ScanEvent::EndBucket => {
                if let Some((_, edit)) = current.take() {
                    for (key, value) in &edit.puts {
                        writer.put(key, value).map_err(&mut write_failed)?;
                    }
                }
                writer.end_bucket().map_err(&mut write_failed)?;
            }
        }
        Ok(())
    });
    if let Some(error) = write_error {
        return Err(NativeError::Write(error.to_string()));
    }
    scanned.map_err(|error| NativeError::Snapshot(error.to_string()))?;
    for (name, edit) in std::mem::take(&mut edits) {
        write_bucket(&mut writer, &name, edit)
            .map_err(|error| NativeError::Write(error.to_string()))?;
    }
    writer
        .finish()
        .map_err(|error| NativeError::Write(error.to_string()))
}

/// Where the parts of a data directory live.
fn wal_path(data_dir: &Path) -> PathBuf {
    data_dir
        .join("member/wal")
        .join(format!("{:016x}-{:016x}.wal", 0, 0))
}

fn snap_path(data_dir: &Path) -> PathBuf {
    data_dir
        .join("member/snap")
        .join(format!("{TERM:016x}-{COMMIT:016x}.snap"))
}

/// Restores the snapshot file `snapshot` (etcd's bolt database, with or without its SHA-256 trailer, already
/// verified) into the new data directory `data_dir`, which must not exist.
pub fn restore_data_dir(
    store: &dyn StreamStore,
    files: &dyn Files,
    snapshot: &Path,
    data_dir: &Path,
    member: &NewMember,
) -> Result<NativeOutcome, NativeError> {
    let partial = PathBuf::from(format!("{}.partial", data_dir.display()));
    store
        .remove_dir_all(&partial)
        .map_err(|error| NativeError::Write(error.to_string()))?;
    let result = write_partial(store, files, snapshot, &partial, member).and_then(|outcome| {
        files
            .rename(&partial, data_dir)
            .map_err(|error| NativeError::Write(error.to_string()))?;
        Ok(outcome)
    });
    if result.is_err() {
        let _ = store.remove_dir_all(&partial);
    }
    result
}

fn write_partial(
    store: &dyn StreamStore,
    files: &dyn Files,
    snapshot: &Path,
    partial: &Path,
    member: &NewMember,
) -> Result<NativeOutcome, NativeError> {
    let write_error = |error: crate::host::HostError| NativeError::Write(error.to_string());
    let io_error = |path: &Path, error: std::io::Error| {
        NativeError::Write(format!("cannot write {}: {error}", path.display()))
    };
    if member.peer_urls.is_empty() {
        return Err(NativeError::Snapshot(format!(
            "the member {} has no peer URL",
            member.name
        )));
    }
    let member_id = member_id(&member.peer_urls, &member.cluster_token);
    let cluster_id = cluster_id(&[member_id]);
    for directory in ["", "member", "member/snap", "member/wal"] {
        files
            .create_dir_all(&partial.join(directory), 0o700)
            .map_err(write_error)?;
        files
            .set_mode(&partial.join(directory), 0o700)
            .map_err(write_error)?;
    }

    // The database.
    let mut source = store.open(snapshot).map_err(write_error)?;
    let file_length = source.seek(SeekFrom::End(0)).map_err(|error| {
        NativeError::Snapshot(format!("cannot read {}: {error}", snapshot.display()))
    })?;
    // etcd's `hasChecksum`: a snapshot from the maintenance API ends in its SHA-256.
    let length = if file_length % 512 == SHA256_TRAILER {
        file_length - SHA256_TRAILER
    } else {
        file_length
    };
    let db_path = partial.join("member/snap/db");
    let staged = store.create(&db_path, 0o600).map_err(write_error)?;
    let (written, db_bytes) = copy_database(
        &mut source,
        length,
        BufWriter::with_capacity(1 << 20, staged),
        restore_edits(member_id, member),
    )
    .map_err(|error| match error {
        NativeError::Snapshot(reason) => {
            NativeError::Snapshot(format!("{}: {reason}", snapshot.display()))
        }
        NativeError::Write(reason) => {
            NativeError::Write(format!("cannot write {}: {reason}", db_path.display()))
        }
    })?;
    let staged = written
        .into_inner()
        .map_err(|error| io_error(&db_path, error.into_error()))?;
    staged.commit().map_err(write_error)?;

    // The v2 snapshot.
    let snap = snap_path(partial);
    let mut staged = store.create(&snap, 0o600).map_err(write_error)?;
    staged
        .write_all(&snap_file(member_id, member))
        .map_err(|error| io_error(&snap, error))?;
    staged.commit().map_err(write_error)?;

    // The WAL, extended to a full segment as etcd preallocates it.
    let wal = wal_path(partial);
    let mut staged = store.create(&wal, 0o600).map_err(write_error)?;
    let records = wal_records(member_id, cluster_id, member);
    staged
        .write_all(&records)
        .and_then(|()| staged.seek(SeekFrom::Start(WAL_SEGMENT_BYTES - 1)))
        .and_then(|_| staged.write_all(&[0]))
        .map_err(|error| io_error(&wal, error))?;
    staged.commit().map_err(write_error)?;

    Ok(NativeOutcome {
        member_id,
        cluster_id,
        db_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// The member of the fixtures, which `etcdctl snapshot restore` (3.4.23) and `etcdutl snapshot restore`
    /// (3.6.16) wrote with `--name m1 --initial-cluster m1=https://10.0.0.1:2380 --initial-cluster-token tok1
    /// --initial-advertise-peer-urls https://10.0.0.1:2380`; both logged member d40d88cabb78acad in cluster
    /// d885bc7cb73dc016.
    fn fixture_member() -> NewMember {
        NewMember {
            name: "m1".to_owned(),
            peer_urls: vec!["https://10.0.0.1:2380".to_owned()],
            cluster_token: "tok1".to_owned(),
        }
    }

    #[test]
    fn ids_are_those_etcd_computes() {
        let member = fixture_member();
        let id = member_id(&member.peer_urls, &member.cluster_token);
        assert_eq!(format!("{id:x}"), "d40d88cabb78acad");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "d885bc7cb73dc016");
        // Peer URLs are sorted before hashing.
        let two = ["https://b:2380".to_owned(), "https://a:2380".to_owned()];
        let reversed = [two[1].clone(), two[0].clone()];
        assert_eq!(member_id(&two, "t"), member_id(&reversed, "t"));
        assert_ne!(member_id(&two, "t"), member_id(&two, "u"));
    }

    #[test]
    fn the_wal_is_byte_for_byte_etcd_3_6s() {
        let member = fixture_member();
        let id = member_id(&member.peer_urls, &member.cluster_token);
        let records = wal_records(id, cluster_id(&[id]), &member);
        let theirs = include_bytes!("testdata/restore-3.6.wal-records");
        assert_eq!(hex::encode(&records), hex::encode(theirs));
    }

    #[test]
    fn the_snap_file_is_byte_for_byte_etcd_3_4s() {
        let member = fixture_member();
        let id = member_id(&member.peer_urls, &member.cluster_token);
        let ours = snap_file(id, &member);
        let theirs = include_bytes!("testdata/0000000000000001-0000000000000001.snap");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(theirs)
        );
        assert_eq!(ours, theirs);
    }

    #[test]
    fn peer_urls_are_checked_and_written_as_etcd_writes_them() {
        let member = NewMember::new(
            "m1",
            &[
                "HTTPS://10.0.0.2:2380".to_owned(),
                "https://10.0.0.1:2380".to_owned(),
            ],
            "t",
        )
        .expect("valid");
        assert_eq!(
            member.peer_urls,
            ["https://10.0.0.1:2380", "https://10.0.0.2:2380"]
        );
        for bad in [
            "10.0.0.1:2380",
            "ftp://10.0.0.1:2380",
            "https://10.0.0.1:2380/x",
            "https://10.0.0.1",
        ] {
            let error = NewMember::new("m1", &[bad.to_owned()], "t").expect_err(bad);
            assert!(error.to_string().contains(bad), "{error}");
        }
        assert!(NewMember::new("m1", &[], "t").is_err());
    }

    #[test]
    fn json_strings_are_escaped_as_go_escapes_them() {
        assert_eq!(
            go_json_string("a\"b\\c<d>&\u{1}"),
            "\"a\\\"b\\\\c\\u003cd\\u003e\\u0026\\u0001\""
        );
        let member = NewMember {
            name: String::new(),
            ..fixture_member()
        };
        assert_eq!(
            member_json(1, &member),
            "{\"id\":1,\"peerURLs\":[\"https://10.0.0.1:2380\"]}"
        );
    }

    type Pairs<'a> = &'a [(&'a [u8], &'a [u8])];
    type Dump = Vec<(String, u64, Vec<(String, Vec<u8>)>)>;

    fn database(buckets: &[(&[u8], Pairs<'_>)]) -> Vec<u8> {
        let mut writer = BoltWriter::new(Cursor::new(Vec::new()), 4096).expect("writer");
        for (name, entries) in buckets {
            writer.begin_bucket(name, 3).expect("bucket");
            for (key, value) in *entries {
                writer.put(key, value).expect("put");
            }
            writer.end_bucket().expect("end");
        }
        writer.finish().expect("finish").0.into_inner()
    }

    fn dump(bytes: &[u8]) -> Dump {
        let mut out: Dump = Vec::new();
        bolt::scan(&mut Cursor::new(bytes), bytes.len() as u64, &mut |event| {
            match event {
                ScanEvent::Bucket { name, sequence } => out.push((
                    String::from_utf8_lossy(name).into_owned(),
                    sequence,
                    Vec::new(),
                )),
                ScanEvent::Entry { key, value, .. } => out
                    .last_mut()
                    .expect("bucket")
                    .2
                    .push((String::from_utf8_lossy(key).into_owned(), value.to_vec())),
                ScanEvent::EndBucket => {}
            }
            Ok(())
        })
        .expect("scan");
        out
    }

    #[test]
    fn a_nested_bucket_is_refused_with_its_name() {
        let mut source = database(&[(b"key", &[(b"inner", &[0u8; 16])])]);
        // Mark the element of the `key` bucket's leaf (the first data page, 3) as a bucket.
        let element = 3 * 4096 + 16;
        source[element..element + 4].copy_from_slice(&1u32.to_le_bytes());
        let member = fixture_member();
        let error = copy_database(
            &mut Cursor::new(&source),
            source.len() as u64,
            Cursor::new(Vec::new()),
            restore_edits(1, &member),
        )
        .expect_err("nested");
        assert!(
            error
                .to_string()
                .contains("the bucket \"key\" holds a nested bucket \"inner\""),
            "{error}"
        );
    }

    #[test]
    fn the_copy_replaces_membership_and_indexes_and_keeps_everything_else() {
        let source = database(&[
            (b"cluster", &[(b"clusterVersion", b"3.6.0")]),
            (b"key", &[(b"\x00\x01", b"one"), (b"\x00\x02", b"two")]),
            (
                b"members",
                &[(b"1111", b"{\"id\":4369}"), (b"ffff", b"{\"id\":65535}")],
            ),
            (b"members_removed", &[(b"2222", b"removed")]),
            (
                b"meta",
                &[
                    (b"confState", b"{}"),
                    (b"consistent_index", &[0, 0, 0, 0, 0, 0, 0, 99]),
                    (b"storageVersion", b"3.6.0"),
                ],
            ),
        ]);
        let member = fixture_member();
        let id = member_id(&member.peer_urls, &member.cluster_token);
        let (out, size) = copy_database(
            &mut Cursor::new(&source),
            source.len() as u64,
            Cursor::new(Vec::new()),
            restore_edits(id, &member),
        )
        .expect("copy");
        let bytes = out.into_inner();
        assert_eq!(bytes.len() as u64, size);
        let one = 1u64.to_be_bytes().to_vec();
        assert_eq!(
            dump(&bytes),
            vec![
                (
                    "cluster".to_owned(),
                    3,
                    vec![("clusterVersion".to_owned(), b"3.6.0".to_vec())]
                ),
                (
                    "key".to_owned(),
                    3,
                    vec![
                        ("\0\u{1}".to_owned(), b"one".to_vec()),
                        ("\0\u{2}".to_owned(), b"two".to_vec())
                    ]
                ),
                (
                    "members".to_owned(),
                    3,
                    vec![(
                        "d40d88cabb78acad".to_owned(),
                        member_json(id, &member).into_bytes()
                    )]
                ),
                ("members_removed".to_owned(), 3, vec![]),
                (
                    "meta".to_owned(),
                    3,
                    vec![
                        ("confState".to_owned(), b"{}".to_vec()),
                        ("consistent_index".to_owned(), one.clone()),
                        ("storageVersion".to_owned(), b"3.6.0".to_vec()),
                        ("term".to_owned(), one.clone()),
                    ]
                ),
            ]
        );
        // A source without the membership buckets gets them, in name order.
        let bare = database(&[(b"key", &[(b"\x00\x01", b"one")])]);
        let (out, _) = copy_database(
            &mut Cursor::new(&bare),
            bare.len() as u64,
            Cursor::new(Vec::new()),
            restore_edits(id, &member),
        )
        .expect("copy");
        let names: Vec<String> = dump(&out.into_inner())
            .into_iter()
            .map(|(name, _, _)| name)
            .collect();
        assert_eq!(names, ["key", "members", "members_removed", "meta"]);
    }
}
