//! The bosun etcd backup file, format version 1. docs/etcd.md describes it for users; this is the definition.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "BOSUNETC"
//! 8       1     format version (1)
//! 9       1     flags: bit 0 = encrypted (AES-256-GCM); other bits zero
//! 10      4     chunk size C, big-endian: plaintext bytes in every data frame but the last
//! 14      7     nonce prefix (random per file; zero when not encrypted)
//! 21      8     key id: the first 8 bytes of SHA-256("bosun-etcd-backup-key" || key); zero when not encrypted
//! 29      4     header slot length H, big-endian (4096)
//! 33      H     header: UTF-8 JSON (`BackupHeader`), padded with spaces to H bytes
//! 33+H    ...   frames, each: length L (4 bytes, big-endian), kind (1 byte: 0 = data, 1 = final), L payload bytes
//! ```
//!
//! The first 33 bytes are the *prelude*. Frame `i` (counting from 0, the final frame included) is sealed with
//! AES-256-GCM under the nonce `prefix(7) || i (4 bytes, big-endian) || kind (1 byte)` and the prelude as additional
//! data, so frames cannot be reordered, dropped, moved between files or turned into a final frame. Data frames carry
//! the etcd snapshot in order; every data frame but the last holds exactly C plaintext bytes, so frame `i` starts at
//! `33 + H + i * (5 + C + 16)` and can be read on its own. The final frame holds the `Trailer` JSON: SHA-256 of the
//! whole snapshot, its length, the number of data frames and SHA-256 of the header slot, which authenticates the
//! header. Nothing may follow the final frame. A file that ends before it is truncated.
//!
//! Unencrypted files (`--no-encrypt`) use the same layout with plaintext payloads and no tags; they are protected
//! against damage (the trailer's SHA-256 and etcd's own snapshot hash) but not against deliberate tampering.

use std::io::{self, Read, Seek, SeekFrom, Write};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::bolt::ReadAt;
use super::snapshot::{StreamDigest, StreamHasher};

pub const MAGIC: &[u8; 8] = b"BOSUNETC";
pub const VERSION: u8 = 1;
pub const PRELUDE_LEN: usize = 33;
pub const HEADER_SLOT: usize = 4096;
pub const DATA_START: u64 = (PRELUDE_LEN + HEADER_SLOT) as u64;
/// 1 MiB frames: large enough that the 21 bytes of framing and tag cost nothing, small enough to read one on its own.
pub const DEFAULT_CHUNK: u32 = 1 << 20;
const TAG_LEN: usize = 16;
const FRAME_HEADER: usize = 5;
const KIND_DATA: u8 = 0;
const KIND_FINAL: u8 = 1;
const FLAG_ENCRYPTED: u8 = 0x01;
/// The final frame is a small JSON document; anything larger is damage.
const MAX_TRAILER: usize = 4096;
/// The usual file name suffix of a backup.
pub const EXTENSION: &str = "bosun-etcd";

/// Why a backup file was refused.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("it is not a bosun etcd backup (the file does not start with \"BOSUNETC\")")]
    NotABackup,
    #[error("it uses backup format version {0}, and this bosun reads only version {VERSION}")]
    UnknownVersion(u8),
    #[error("it is encrypted and no key was given")]
    KeyRequired,
    #[error("it was encrypted with another key (key id {file}, the given key has id {given})")]
    WrongKey { file: String, given: String },
    #[error("it is truncated: {0}")]
    Truncated(String),
    #[error("it is damaged or was tampered with: {0}")]
    Damaged(String),
    #[error("the key file is not a bosun backup key: {0}")]
    BadKey(String),
    #[error("{0}")]
    Io(String),
}

impl From<io::Error> for FormatError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            FormatError::Truncated("the file ends in the middle of a frame".to_owned())
        } else {
            FormatError::Io(crate::host::describe_io_error(&error))
        }
    }
}

/// A 256-bit backup key. Its bytes never appear in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "BackupKey(id {})", self.id_hex())
    }
}

const KEY_FILE_PREFIX: &str = "bosun-etcd-backup-key-v1:";

impl BackupKey {
    /// A new random key.
    pub fn generate() -> Result<Self, FormatError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| FormatError::Io("the system random source failed".to_owned()))?;
        Ok(BackupKey { bytes })
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        BackupKey { bytes }
    }

    /// Parses a key file: `bosun-etcd-backup-key-v1:<64 hex digits>`, or 64 hex digits, or 32 raw bytes.
    pub fn parse(contents: &[u8]) -> Result<Self, FormatError> {
        if contents.len() == 32 && std::str::from_utf8(contents).is_err() {
            let mut bytes = [0u8; 32];
            bytes.copy_from_slice(contents);
            return Ok(BackupKey { bytes });
        }
        let text = std::str::from_utf8(contents)
            .map_err(|_| FormatError::BadKey("it is neither text nor 32 raw bytes".to_owned()))?
            .trim();
        let digits = text.strip_prefix(KEY_FILE_PREFIX).unwrap_or(text);
        let decoded = hex::decode(digits).map_err(|_| {
            FormatError::BadKey("it does not hold 64 hexadecimal digits".to_owned())
        })?;
        let bytes: [u8; 32] = decoded.try_into().map_err(|_| {
            FormatError::BadKey(
                "it does not hold exactly 32 bytes (64 hexadecimal digits)".to_owned(),
            )
        })?;
        Ok(BackupKey { bytes })
    }

    /// The contents of a key file bosun writes.
    pub fn to_file_contents(&self) -> Vec<u8> {
        format!("{KEY_FILE_PREFIX}{}\n", hex::encode(self.bytes)).into_bytes()
    }

    /// An identifier that names the key without revealing it.
    pub fn id(&self) -> [u8; 8] {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(b"bosun-etcd-backup-key");
        context.update(&self.bytes);
        let mut id = [0u8; 8];
        id.copy_from_slice(&context.finish().as_ref()[..8]);
        id
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id())
    }

    fn aead(&self) -> Result<LessSafeKey, FormatError> {
        UnboundKey::new(&aead::AES_256_GCM, &self.bytes)
            .map(LessSafeKey::new)
            .map_err(|_| FormatError::BadKey("AES-256-GCM refused it".to_owned()))
    }
}

/// The fixed first 33 bytes of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prelude {
    pub encrypted: bool,
    pub chunk_size: u32,
    pub nonce_prefix: [u8; 7],
    pub key_id: [u8; 8],
}

impl Prelude {
    pub fn to_bytes(&self) -> [u8; PRELUDE_LEN] {
        let mut bytes = [0u8; PRELUDE_LEN];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8] = VERSION;
        bytes[9] = if self.encrypted { FLAG_ENCRYPTED } else { 0 };
        bytes[10..14].copy_from_slice(&self.chunk_size.to_be_bytes());
        bytes[14..21].copy_from_slice(&self.nonce_prefix);
        bytes[21..29].copy_from_slice(&self.key_id);
        bytes[29..33].copy_from_slice(&(HEADER_SLOT as u32).to_be_bytes());
        bytes
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < 9 || &bytes[..8] != MAGIC {
            return Err(FormatError::NotABackup);
        }
        if bytes[8] != VERSION {
            return Err(FormatError::UnknownVersion(bytes[8]));
        }
        if bytes.len() < PRELUDE_LEN {
            return Err(FormatError::Truncated(
                "the file ends inside its prelude".to_owned(),
            ));
        }
        if bytes[9] & !FLAG_ENCRYPTED != 0 {
            return Err(FormatError::Damaged(format!(
                "unknown flags {:#04x}",
                bytes[9]
            )));
        }
        let chunk_size = u32::from_be_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
        let slot = u32::from_be_bytes([bytes[29], bytes[30], bytes[31], bytes[32]]);
        if slot as usize != HEADER_SLOT || chunk_size == 0 || chunk_size > 64 << 20 {
            return Err(FormatError::Damaged(
                "the prelude's sizes are out of range".to_owned(),
            ));
        }
        let mut nonce_prefix = [0u8; 7];
        nonce_prefix.copy_from_slice(&bytes[14..21]);
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bytes[21..29]);
        Ok(Prelude {
            encrypted: bytes[9] & FLAG_ENCRYPTED != 0,
            chunk_size,
            nonce_prefix,
            key_id,
        })
    }

    fn nonce(&self, counter: u32, kind: u8) -> Nonce {
        let mut bytes = [0u8; 12];
        bytes[..7].copy_from_slice(&self.nonce_prefix);
        bytes[7..11].copy_from_slice(&counter.to_be_bytes());
        bytes[11] = kind;
        Nonce::assume_unique_for_key(bytes)
    }

    /// Bytes one full data frame takes in the file.
    fn frame_stride(&self) -> u64 {
        FRAME_HEADER as u64
            + u64::from(self.chunk_size)
            + if self.encrypted { TAG_LEN as u64 } else { 0 }
    }
}

/// What a backup says about itself, readable without the key (and authenticated by the final frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupHeader {
    /// Always `bosun-etcd-backup`.
    pub format: String,
    pub cluster_name: String,
    /// The version the member reported.
    pub etcd_version: String,
    /// The member the snapshot was streamed from.
    pub member_name: String,
    pub endpoint: String,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub created: String,
    /// The newest revision in the snapshot.
    pub revision: i64,
    /// Entries of the `key` bucket (every revision of every key), as `etcdutl snapshot status` counts them.
    pub total_keys: u64,
    /// Entries of every bucket, as etcd 3.4's `etcdctl snapshot status` counted them.
    #[serde(default)]
    pub total_entries: u64,
    /// The bolt database size.
    pub total_size: u64,
    /// `etcdctl snapshot status`'s hash (CRC-32C of the database contents).
    pub hash: u32,
    /// Bytes of the snapshot (the database plus etcd's 32-byte trailing hash).
    pub snapshot_bytes: u64,
    /// SHA-256 of the snapshot, as `sha256sum` prints it for the decrypted snapshot.
    pub snapshot_sha256: String,
    pub encrypted: bool,
}

/// The final frame's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trailer {
    snapshot_sha256: String,
    snapshot_bytes: u64,
    data_frames: u32,
    header_sha256: String,
}

/// Writes a backup in one pass: the prelude and an empty header slot, then data frames as snapshot bytes arrive;
/// [`BackupWriter::finish`] fills the header slot in place and appends the final frame.
pub struct BackupWriter<S: Read + Write + Seek> {
    storage: S,
    prelude: Prelude,
    prelude_bytes: [u8; PRELUDE_LEN],
    key: Option<LessSafeKey>,
    buffer: Vec<u8>,
    counter: u32,
    hasher: StreamHasher,
}

impl<S: Read + Write + Seek> BackupWriter<S> {
    /// Starts a backup in `storage` (an empty file), encrypted under `key` when given.
    pub fn new(
        mut storage: S,
        key: Option<&BackupKey>,
        chunk_size: u32,
    ) -> Result<Self, FormatError> {
        let mut nonce_prefix = [0u8; 7];
        if key.is_some() {
            SystemRandom::new()
                .fill(&mut nonce_prefix)
                .map_err(|_| FormatError::Io("the system random source failed".to_owned()))?;
        }
        let prelude = Prelude {
            encrypted: key.is_some(),
            chunk_size,
            nonce_prefix,
            key_id: key.map(BackupKey::id).unwrap_or_default(),
        };
        let prelude_bytes = prelude.to_bytes();
        storage.write_all(&prelude_bytes)?;
        storage.write_all(&[b' '; HEADER_SLOT])?;
        Ok(BackupWriter {
            storage,
            prelude,
            prelude_bytes,
            key: key.map(BackupKey::aead).transpose()?,
            buffer: Vec::with_capacity(chunk_size as usize + TAG_LEN),
            counter: 0,
            hasher: StreamHasher::new(),
        })
    }

    /// Appends snapshot bytes.
    pub fn write_snapshot(&mut self, mut bytes: &[u8]) -> Result<(), FormatError> {
        self.hasher.update(bytes);
        let chunk = self.prelude.chunk_size as usize;
        while !bytes.is_empty() {
            let room = chunk - self.buffer.len();
            let take = room.min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == chunk {
                self.seal_buffer(KIND_DATA)?;
            }
        }
        Ok(())
    }

    fn seal_buffer(&mut self, kind: u8) -> Result<(), FormatError> {
        if let Some(key) = &self.key {
            let nonce = self.prelude.nonce(self.counter, kind);
            key.seal_in_place_append_tag(nonce, Aad::from(self.prelude_bytes), &mut self.buffer)
                .map_err(|_| FormatError::Io("AES-256-GCM sealing failed".to_owned()))?;
        }
        let mut frame_header = [0u8; FRAME_HEADER];
        frame_header[..4].copy_from_slice(&(self.buffer.len() as u32).to_be_bytes());
        frame_header[4] = kind;
        self.storage.write_all(&frame_header)?;
        self.storage.write_all(&self.buffer)?;
        self.buffer.clear();
        self.counter = self.counter.checked_add(1).ok_or_else(|| {
            FormatError::Io("the snapshot has more frames than the format allows".to_owned())
        })?;
        Ok(())
    }

    /// Ends the data frames. The digest says whether etcd's trailing hash matched; the returned reader gives random
    /// access to the plaintext snapshot (decrypting frames as needed) so the database can be inspected before the
    /// header is written.
    pub fn end_data(&mut self) -> Result<(StreamDigest, u32), FormatError> {
        if !self.buffer.is_empty() {
            self.seal_buffer(KIND_DATA)?;
        }
        let hasher = std::mem::take(&mut self.hasher);
        Ok((hasher.finish(), self.counter))
    }

    /// Random access to the plaintext already written (after [`BackupWriter::end_data`]).
    pub fn plaintext(
        &mut self,
        key: Option<&BackupKey>,
        data_frames: u32,
    ) -> Result<FrameReader<'_, S>, FormatError> {
        FrameReader::new(&mut self.storage, self.prelude, key, data_frames)
    }

    /// Writes the header into its slot and appends the final frame; returns the storage for syncing and renaming.
    pub fn finish(
        mut self,
        header: &BackupHeader,
        digest: &StreamDigest,
        data_frames: u32,
    ) -> Result<S, FormatError> {
        let mut header_bytes =
            serde_json::to_vec(header).map_err(|error| FormatError::Io(error.to_string()))?;
        if header_bytes.len() > HEADER_SLOT {
            return Err(FormatError::Io(format!(
                "the backup header is {} bytes, more than its {HEADER_SLOT}-byte slot (is the cluster name very long?)",
                header_bytes.len()
            )));
        }
        header_bytes.resize(HEADER_SLOT, b' ');
        self.storage.seek(SeekFrom::Start(PRELUDE_LEN as u64))?;
        self.storage.write_all(&header_bytes)?;
        self.storage.seek(SeekFrom::End(0))?;
        let trailer = Trailer {
            snapshot_sha256: digest.sha256.clone(),
            snapshot_bytes: digest.total_bytes,
            data_frames,
            header_sha256: hex::encode(digest::digest(&digest::SHA256, &header_bytes).as_ref()),
        };
        self.buffer =
            serde_json::to_vec(&trailer).map_err(|error| FormatError::Io(error.to_string()))?;
        self.seal_buffer(KIND_FINAL)?;
        self.storage.flush()?;
        Ok(self.storage)
    }
}

/// Random access to the plaintext of a backup's data frames, keeping a few decrypted frames in memory.
pub struct FrameReader<'storage, S: Read + Seek> {
    storage: &'storage mut S,
    prelude: Prelude,
    prelude_bytes: [u8; PRELUDE_LEN],
    key: Option<LessSafeKey>,
    data_frames: u32,
    cache: Vec<(u32, Vec<u8>)>,
    /// One bit per data frame: opened and authenticated at least once (encrypted backups).
    authenticated: Vec<u64>,
}

const FRAME_CACHE: usize = 8;

impl<'storage, S: Read + Seek> FrameReader<'storage, S> {
    fn new(
        storage: &'storage mut S,
        prelude: Prelude,
        key: Option<&BackupKey>,
        data_frames: u32,
    ) -> Result<Self, FormatError> {
        Ok(FrameReader {
            storage,
            prelude,
            prelude_bytes: prelude.to_bytes(),
            key: key.map(BackupKey::aead).transpose()?,
            data_frames,
            cache: Vec::with_capacity(FRAME_CACHE),
            authenticated: vec![0; (data_frames as usize).div_ceil(64)],
        })
    }

    fn is_authenticated(&self, index: u32) -> bool {
        let index = index as usize;
        self.authenticated
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    /// Reads and authenticates every data frame that earlier reads did not touch, so that every data frame of an
    /// encrypted backup has been read back from storage and its AES-GCM tag checked once. With [`verify_ends`] this
    /// replaces a second full pass over the file. Unencrypted frames carry no tag: this refuses them.
    pub fn authenticate_rest(&mut self) -> Result<(), FormatError> {
        if self.key.is_none() {
            return Err(FormatError::Io(
                "an unencrypted backup has no frame tags to check; read it back whole".to_owned(),
            ));
        }
        for index in 0..self.data_frames {
            if !self.is_authenticated(index) {
                self.frame(index).map_err(|error| {
                    FormatError::Damaged(format!("reading back frame {index}: {error}"))
                })?;
            }
        }
        Ok(())
    }

    fn frame(&mut self, index: u32) -> io::Result<&[u8]> {
        if let Some(position) = self.cache.iter().position(|(cached, _)| *cached == index) {
            let entry = self.cache.remove(position);
            self.cache.push(entry);
        } else {
            if index >= self.data_frames {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the snapshot's end",
                ));
            }
            self.storage.seek(SeekFrom::Start(
                DATA_START + u64::from(index) * self.prelude.frame_stride(),
            ))?;
            let mut frame_header = [0u8; FRAME_HEADER];
            self.storage.read_exact(&mut frame_header)?;
            let length = u32::from_be_bytes([
                frame_header[0],
                frame_header[1],
                frame_header[2],
                frame_header[3],
            ]);
            if frame_header[4] != KIND_DATA
                || u64::from(length) + FRAME_HEADER as u64 > self.prelude.frame_stride()
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a frame header is damaged",
                ));
            }
            let mut payload = if self.cache.len() == FRAME_CACHE {
                self.cache.remove(0).1
            } else {
                Vec::new()
            };
            payload.resize(length as usize, 0);
            self.storage.read_exact(&mut payload)?;
            if let Some(key) = &self.key {
                let nonce = self.prelude.nonce(index, KIND_DATA);
                let plain_length = key
                    .open_in_place(nonce, Aad::from(self.prelude_bytes), &mut payload)
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "a frame fails authentication")
                    })?
                    .len();
                payload.truncate(plain_length);
                if let Some(word) = self.authenticated.get_mut(index as usize / 64) {
                    *word |= 1 << (index % 64);
                }
            }
            self.cache.push((index, payload));
        }
        Ok(self
            .cache
            .last()
            .map(|(_, payload)| payload.as_slice())
            .unwrap_or_default())
    }
}

impl<S: Read + Seek> ReadAt for FrameReader<'_, S> {
    fn read_exact_at(&mut self, mut offset: u64, mut buffer: &mut [u8]) -> io::Result<()> {
        let chunk = u64::from(self.prelude.chunk_size);
        while !buffer.is_empty() {
            let index = u32::try_from(offset / chunk)
                .map_err(|_| io::Error::new(io::ErrorKind::UnexpectedEof, "offset out of range"))?;
            let within = (offset % chunk) as usize;
            let frame = self.frame(index)?;
            if within >= frame.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the snapshot's end",
                ));
            }
            let take = (frame.len() - within).min(buffer.len());
            buffer[..take].copy_from_slice(&frame[within..within + take]);
            buffer = &mut buffer[take..];
            offset += take as u64;
        }
        Ok(())
    }
}

/// Reads back the prelude, the header slot and the final frame of an encrypted backup whose data frames were already
/// read back and authenticated ([`FrameReader::authenticate_rest`]), and checks them as [`OpenedBackup::decrypt_to`]
/// does: the prelude is this backup's, the final frame opens, counts `data_frames`, records `digest` and the header
/// slot's SHA-256, and nothing follows it. Returns the file's length.
pub fn verify_ends<S: Read + Seek>(
    storage: &mut S,
    key: &BackupKey,
    digest: &StreamDigest,
    data_frames: u32,
) -> Result<u64, FormatError> {
    storage.seek(SeekFrom::Start(0))?;
    let opened = open(&mut *storage)?;
    if !opened.prelude.encrypted || opened.prelude.key_id != key.id() {
        return Err(FormatError::Damaged(
            "the prelude read back is not the one written".to_owned(),
        ));
    }
    if opened.header.snapshot_sha256 != digest.sha256 {
        return Err(FormatError::Damaged(
            "the header's SHA-256 does not match the snapshot".to_owned(),
        ));
    }
    let header_sha256 = hex::encode(digest::digest(&digest::SHA256, &opened.header_slot).as_ref());
    let prelude = opened.prelude;
    let prelude_bytes = opened.prelude_bytes;
    // Every data frame but the last holds a full chunk; the last holds the rest of the snapshot.
    let data_bytes = match u64::from(data_frames).checked_sub(1) {
        None => 0,
        Some(full_frames) => {
            let rest = digest
                .total_bytes
                .checked_sub(full_frames * u64::from(prelude.chunk_size))
                .ok_or_else(|| {
                    FormatError::Damaged(
                        "the frame count does not fit the snapshot's size".to_owned(),
                    )
                })?;
            full_frames * prelude.frame_stride() + FRAME_HEADER as u64 + rest + TAG_LEN as u64
        }
    };
    storage.seek(SeekFrom::Start(DATA_START + data_bytes))?;
    let mut frame_header = [0u8; FRAME_HEADER];
    if read_up_to(storage, &mut frame_header)? < FRAME_HEADER {
        return Err(FormatError::Truncated(
            "it ends before its final frame".to_owned(),
        ));
    }
    let length = u32::from_be_bytes([
        frame_header[0],
        frame_header[1],
        frame_header[2],
        frame_header[3],
    ]) as usize;
    if frame_header[4] != KIND_FINAL || !(TAG_LEN..=MAX_TRAILER + TAG_LEN).contains(&length) {
        return Err(FormatError::Damaged(
            "the final frame has an invalid header".to_owned(),
        ));
    }
    let mut payload = vec![0u8; length];
    if read_up_to(storage, &mut payload)? < length {
        return Err(FormatError::Truncated(
            "the file ends inside its final frame".to_owned(),
        ));
    }
    let plaintext = key
        .aead()?
        .open_in_place(
            prelude.nonce(data_frames, KIND_FINAL),
            Aad::from(prelude_bytes),
            &mut payload,
        )
        .map_err(|_| {
            FormatError::Damaged("the final frame fails AES-GCM authentication".to_owned())
        })?;
    let trailer: Trailer = serde_json::from_slice(plaintext)
        .map_err(|error| FormatError::Damaged(format!("the final frame is not valid: {error}")))?;
    if trailer.data_frames != data_frames
        || trailer.snapshot_sha256 != digest.sha256
        || trailer.snapshot_bytes != digest.total_bytes
        || trailer.header_sha256 != header_sha256
    {
        return Err(FormatError::Damaged(
            "the final frame read back does not record what was written".to_owned(),
        ));
    }
    let mut extra = [0u8; 1];
    if read_up_to(storage, &mut extra)? != 0 {
        return Err(FormatError::Damaged(
            "bytes follow the final frame".to_owned(),
        ));
    }
    Ok(storage.stream_position()?)
}

/// A backup opened for reading: its prelude and header are known, its frames not yet checked.
pub struct OpenedBackup<R: Read> {
    reader: R,
    pub prelude: Prelude,
    prelude_bytes: [u8; PRELUDE_LEN],
    header_slot: Vec<u8>,
    pub header: BackupHeader,
}

/// Reads and checks the prelude and header of a backup.
pub fn open<R: Read>(mut reader: R) -> Result<OpenedBackup<R>, FormatError> {
    let mut prelude_bytes = [0u8; PRELUDE_LEN];
    let read = read_up_to(&mut reader, &mut prelude_bytes)?;
    let prelude = Prelude::parse(&prelude_bytes[..read])?;
    let mut header_slot = vec![0u8; HEADER_SLOT];
    if read_up_to(&mut reader, &mut header_slot)? < HEADER_SLOT {
        return Err(FormatError::Truncated(
            "the file ends inside its header".to_owned(),
        ));
    }
    let text = std::str::from_utf8(&header_slot)
        .map_err(|_| FormatError::Damaged("the header is not UTF-8".to_owned()))?
        .trim_end_matches(' ');
    let header: BackupHeader = serde_json::from_str(text)
        .map_err(|error| FormatError::Damaged(format!("the header is not valid: {error}")))?;
    Ok(OpenedBackup {
        reader,
        prelude,
        prelude_bytes,
        header_slot,
        header,
    })
}

fn read_up_to(reader: &mut dyn Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// What a fully checked backup proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub digest: StreamDigest,
    pub data_frames: u32,
}

impl<R: Read> OpenedBackup<R> {
    /// Reads every frame, writes the plaintext snapshot to `output`, and checks everything: each frame's tag, frame
    /// order, the final frame, nothing after it, the snapshot's SHA-256, etcd's own trailing hash and the header.
    /// `output` holds unverified bytes until this returns `Ok`; callers write it somewhere private and discard it on
    /// error.
    pub fn decrypt_to(
        mut self,
        key: Option<&BackupKey>,
        output: &mut dyn Write,
    ) -> Result<Verified, FormatError> {
        let aead_key = match (self.prelude.encrypted, key) {
            (false, _) => None,
            (true, None) => return Err(FormatError::KeyRequired),
            (true, Some(key)) => {
                if key.id() != self.prelude.key_id {
                    return Err(FormatError::WrongKey {
                        file: hex::encode(self.prelude.key_id),
                        given: key.id_hex(),
                    });
                }
                Some(key.aead()?)
            }
        };
        let tag_length = if aead_key.is_some() { TAG_LEN } else { 0 };
        let max_payload = self.prelude.chunk_size as usize + tag_length;
        let mut hasher = StreamHasher::new();
        let mut payload = Vec::with_capacity(max_payload);
        let mut counter: u32 = 0;
        loop {
            let mut frame_header = [0u8; FRAME_HEADER];
            let read = read_up_to(&mut self.reader, &mut frame_header)?;
            if read == 0 {
                return Err(FormatError::Truncated(format!(
                    "it ends after {counter} frames without its final frame"
                )));
            }
            if read < FRAME_HEADER {
                return Err(FormatError::Truncated(
                    "the file ends inside a frame header".to_owned(),
                ));
            }
            let length = u32::from_be_bytes([
                frame_header[0],
                frame_header[1],
                frame_header[2],
                frame_header[3],
            ]) as usize;
            let kind = frame_header[4];
            let limit = if kind == KIND_FINAL {
                MAX_TRAILER + tag_length
            } else {
                max_payload
            };
            if (kind != KIND_DATA && kind != KIND_FINAL) || length > limit || length < tag_length {
                return Err(FormatError::Damaged(format!(
                    "frame {counter} has an invalid header"
                )));
            }
            payload.resize(length, 0);
            if read_up_to(&mut self.reader, &mut payload)? < length {
                return Err(FormatError::Truncated(format!(
                    "the file ends inside frame {counter}"
                )));
            }
            let plaintext: &[u8] = match &aead_key {
                Some(aead_key) => {
                    let nonce = self.prelude.nonce(counter, kind);
                    aead_key
                        .open_in_place(nonce, Aad::from(self.prelude_bytes), &mut payload)
                        .map_err(|_| {
                            FormatError::Damaged(format!(
                                "frame {counter} fails AES-GCM authentication"
                            ))
                        })?
                }
                None => &payload,
            };
            if kind == KIND_DATA {
                hasher.update(plaintext);
                output.write_all(plaintext)?;
                counter = counter
                    .checked_add(1)
                    .ok_or_else(|| FormatError::Damaged("too many frames".to_owned()))?;
                continue;
            }
            let trailer: Trailer = serde_json::from_slice(plaintext).map_err(|error| {
                FormatError::Damaged(format!("the final frame is not valid: {error}"))
            })?;
            let mut extra = [0u8; 1];
            if read_up_to(&mut self.reader, &mut extra)? != 0 {
                return Err(FormatError::Damaged(
                    "bytes follow the final frame".to_owned(),
                ));
            }
            let digest = hasher.finish();
            let header_sha256 =
                hex::encode(digest::digest(&digest::SHA256, &self.header_slot).as_ref());
            if trailer.data_frames != counter {
                return Err(FormatError::Damaged(format!(
                    "the final frame expects {} data frames, the file has {counter}",
                    trailer.data_frames
                )));
            }
            if trailer.snapshot_sha256 != digest.sha256
                || trailer.snapshot_bytes != digest.total_bytes
            {
                return Err(FormatError::Damaged(
                    "the snapshot's SHA-256 does not match the one recorded in the final frame"
                        .to_owned(),
                ));
            }
            if trailer.header_sha256 != header_sha256 {
                return Err(FormatError::Damaged(
                    "the header was changed after the backup was written".to_owned(),
                ));
            }
            if self.header.snapshot_sha256 != digest.sha256 {
                return Err(FormatError::Damaged(
                    "the header's SHA-256 does not match the snapshot".to_owned(),
                ));
            }
            if !digest.etcd_hash_ok {
                return Err(FormatError::Damaged(
                    "the snapshot's own trailing SHA-256 (written by etcd) does not match its contents".to_owned(),
                ));
            }
            output.flush()?;
            return Ok(Verified {
                digest,
                data_frames: counter,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn fake_snapshot(length: usize) -> Vec<u8> {
        let mut body: Vec<u8> = (0..length).map(|index| (index * 7 % 253) as u8).collect();
        let hash = digest::digest(&digest::SHA256, &body);
        body.extend_from_slice(hash.as_ref());
        body
    }

    fn header_for(digest: &StreamDigest, encrypted: bool) -> BackupHeader {
        BackupHeader {
            format: "bosun-etcd-backup".to_owned(),
            cluster_name: "kubernetes".to_owned(),
            etcd_version: "3.4.23".to_owned(),
            member_name: "node-1".to_owned(),
            endpoint: "https://127.0.0.1:2379".to_owned(),
            created: "2026-12-01T12:00:00Z".to_owned(),
            revision: 42,
            total_keys: 7,
            total_entries: 9,
            total_size: digest.database_bytes(),
            hash: 1,
            snapshot_bytes: digest.total_bytes,
            snapshot_sha256: digest.sha256.clone(),
            encrypted,
        }
    }

    fn write_backup(snapshot: &[u8], key: Option<&BackupKey>, chunk: u32) -> Vec<u8> {
        let mut writer = BackupWriter::new(Cursor::new(Vec::new()), key, chunk).expect("writer");
        for piece in snapshot.chunks(1000) {
            writer.write_snapshot(piece).expect("write");
        }
        let (digest, frames) = writer.end_data().expect("end");
        {
            let mut plain = writer.plaintext(key, frames).expect("plaintext");
            // A read across a frame boundary, from the frames alone.
            let start = snapshot.len() / 3;
            let mut middle = vec![0u8; snapshot.len() / 2];
            plain
                .read_exact_at(start as u64, &mut middle)
                .expect("random read");
            assert_eq!(middle, snapshot[start..start + middle.len()]);
        }
        let header = header_for(&digest, key.is_some());
        writer
            .finish(&header, &digest, frames)
            .expect("finish")
            .into_inner()
    }

    fn read_backup(file: &[u8], key: Option<&BackupKey>) -> Result<Vec<u8>, FormatError> {
        let opened = open(Cursor::new(file))?;
        let mut output = Vec::new();
        opened.decrypt_to(key, &mut output)?;
        Ok(output)
    }

    /// Writes an encrypted backup the way `run_backup` does (a partial random read of the frames, the rest
    /// authenticated, then the header and final frame, and only those read back). `damage_frames` changes the file
    /// after the data frames are written, `damage_ends` after the final frame is.
    fn read_back_by_frames(
        snapshot_length: usize,
        damage_frames: impl FnOnce(&mut Vec<u8>),
        damage_ends: impl FnOnce(&mut Vec<u8>),
    ) -> Result<u64, FormatError> {
        let key = BackupKey::from_bytes([7u8; 32]);
        let snapshot = fake_snapshot(snapshot_length);
        let mut writer =
            BackupWriter::new(Cursor::new(Vec::new()), Some(&key), 1024).expect("writer");
        writer.write_snapshot(&snapshot).expect("write");
        let (digest, frames) = writer.end_data().expect("end");
        damage_frames(writer.storage.get_mut());
        {
            let mut plain = writer.plaintext(Some(&key), frames).expect("plaintext");
            let mut first = [0u8; 100];
            plain.read_exact_at(0, &mut first).expect("read");
            plain.authenticate_rest()?;
        }
        let mut storage = writer
            .finish(&header_for(&digest, true), &digest, frames)
            .expect("finish");
        damage_ends(storage.get_mut());
        let length = verify_ends(&mut storage, &key, &digest, frames)?;
        assert_eq!(length, storage.get_ref().len() as u64);
        Ok(length)
    }

    #[test]
    fn frames_authenticated_once_and_the_ends_read_back_accept_a_good_backup() {
        // A short last data frame, a full one, and a single frame.
        for length in [10_000, 10 * 1024 - 32, 500] {
            read_back_by_frames(length, |_| {}, |_| {}).expect("verified");
        }
    }

    #[test]
    fn damage_after_writing_is_caught_by_the_frame_and_end_read_backs() {
        let frame_five = (DATA_START + 5 * (5 + 1024 + 16) + 100) as usize;
        let error = read_back_by_frames(10_000, |bytes| bytes[frame_five] ^= 1, |_| {})
            .expect_err("frame damaged");
        assert!(error.to_string().contains("frame 5"), "{error}");
        let error = read_back_by_frames(
            10_000,
            |_| {},
            |bytes| {
                let last = bytes.len() - 3;
                bytes[last] ^= 1;
            },
        )
        .expect_err("final frame damaged");
        assert!(error.to_string().contains("final frame"), "{error}");
        let error = read_back_by_frames(10_000, |_| {}, |bytes| bytes[PRELUDE_LEN + 5] = b'x')
            .expect_err("header damaged");
        assert!(matches!(error, FormatError::Damaged(_)), "{error}");
    }

    #[test]
    fn an_encrypted_backup_round_trips_and_hides_the_snapshot() {
        let key = BackupKey::generate().expect("key");
        let snapshot = fake_snapshot(10_000);
        let file = write_backup(&snapshot, Some(&key), 1024);
        assert_eq!(read_backup(&file, Some(&key)).expect("read"), snapshot);
        let needle = &snapshot[100..140];
        assert!(
            !file.windows(needle.len()).any(|window| window == needle),
            "plaintext leaked"
        );
        let opened = open(Cursor::new(&file)).expect("open");
        assert_eq!(opened.header.revision, 42);
        assert!(opened.prelude.encrypted);
    }

    #[test]
    fn an_unencrypted_backup_round_trips_without_a_key() {
        let snapshot = fake_snapshot(5_000);
        let file = write_backup(&snapshot, None, 1024);
        assert_eq!(read_backup(&file, None).expect("read"), snapshot);
    }

    #[test]
    fn every_flipped_byte_after_the_prelude_is_refused() {
        let key = BackupKey::generate().expect("key");
        let snapshot = fake_snapshot(3_000);
        let file = write_backup(&snapshot, Some(&key), 1024);
        // Every byte of the header slot and of every frame is covered by a tag or a recorded hash.
        for position in (PRELUDE_LEN..file.len()).step_by(37) {
            let mut damaged = file.clone();
            damaged[position] ^= 0x01;
            assert!(
                read_backup(&damaged, Some(&key)).is_err(),
                "flip at {position} accepted"
            );
        }
        for position in 9..PRELUDE_LEN {
            let mut damaged = file.clone();
            damaged[position] ^= 0x01;
            assert!(
                read_backup(&damaged, Some(&key)).is_err(),
                "prelude flip at {position} accepted"
            );
        }
    }

    #[test]
    fn truncation_anywhere_is_refused_as_truncated() {
        let key = BackupKey::generate().expect("key");
        let file = write_backup(&fake_snapshot(3_000), Some(&key), 1024);
        for length in [
            0,
            5,
            PRELUDE_LEN,
            100,
            DATA_START as usize,
            file.len() - 200,
            file.len() - 1,
        ] {
            let error = read_backup(&file[..length], Some(&key)).expect_err("truncated");
            assert!(
                matches!(error, FormatError::Truncated(_) | FormatError::NotABackup),
                "{length}: {error}"
            );
        }
        // Cutting exactly at a frame boundary before the final frame.
        let boundary = DATA_START as usize + 3 * (FRAME_HEADER + 1024 + TAG_LEN);
        let error = read_backup(&file[..boundary], Some(&key)).expect_err("truncated at boundary");
        assert!(matches!(error, FormatError::Truncated(_)), "{error}");
    }

    #[test]
    fn a_wrong_key_is_named_as_such() {
        let key = BackupKey::generate().expect("key");
        let other = BackupKey::generate().expect("other key");
        let file = write_backup(&fake_snapshot(2_000), Some(&key), 1024);
        let error = read_backup(&file, Some(&other)).expect_err("wrong key");
        assert!(matches!(error, FormatError::WrongKey { .. }), "{error}");
        assert!(matches!(
            read_backup(&file, None).expect_err("no key"),
            FormatError::KeyRequired
        ));
    }

    #[test]
    fn a_snapshot_without_etcds_trailing_hash_is_refused() {
        let mut snapshot = fake_snapshot(2_000);
        let last = snapshot.len() - 1;
        snapshot[last] ^= 0xff;
        let file = write_backup(&snapshot, None, 1024);
        let error = read_backup(&file, None).expect_err("bad etcd hash");
        assert!(error.to_string().contains("trailing SHA-256"), "{error}");
    }

    #[test]
    fn key_files_round_trip_and_never_show_in_debug() {
        let key = BackupKey::generate().expect("key");
        let contents = key.to_file_contents();
        assert_eq!(BackupKey::parse(&contents).expect("parse"), key);
        let text = String::from_utf8(contents).expect("utf-8");
        let digits = text.trim().trim_start_matches(KEY_FILE_PREFIX);
        assert!(!format!("{key:?}").contains(digits));
        assert!(BackupKey::parse(b"not a key").is_err());
    }
}
